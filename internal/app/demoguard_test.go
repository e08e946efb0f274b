package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// TestDemoGuardrails runs the demo's guardrails as the demo does with the
// reference config: a simulated safety service with its blocklist made at
// start, then a refused prompt and a masked address in the output.
func TestDemoGuardrails(t *testing.T) {
	seen := &demoSeen{}
	backend := httptest.NewServer(simulator.New(simulator.Options{APIKey: "bk", OnRequest: seen.observe}))
	defer backend.Close()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`
server: { listen: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
usage: { store: "sqlite:%[1]s/usage.db", journal: "%[1]s/usage.journal" }
backends:
  - { name: b, kind: openai, url: %[2]s, auth: { api_key: bk }, deployments: { gpt-4o: gpt-4o } }
pools: [{ name: chat, members: [{ backend: b }] }]
models: { gpt-4o: chat }
content_safety:
  - { name: safety, url: "http://127.0.0.1:0", auth: { api_key: sk } }
products:
  - name: standard
    models: [gpt-4o]
    content_safety: { service: safety, blocklists: [banned-terms], completions: { mode: window } }
    pii: { restore: true }
subscriptions:
  - { name: team-alpha, product: standard, keys: [alpha] }
`, dir, backend.URL)
	cfg, err := config.Parse("demo.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	urls := map[string]string{}
	if err := startDemoSafety(ctx, &wg, cfg, urls, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	cfg.ContentSafety[0].URL = urls[safetyURLKey("safety")]
	g, err := NewGateway(func() (*config.Config, error) { return cfg, nil }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln, nil) }()
	var out bytes.Buffer
	showGuardrails(ctx, &out, "http://"+ln.Addr().String(), "alpha", cfg, seen)
	cancel()
	<-done
	got := out.String()
	for _, want := range []string{"403 content_filter: The prompt was refused by the content filter: blocklist banned-terms.",
		`the model received "Write a reply to <EMAIL_1> about the invoice."`} {
		if !strings.Contains(got, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, got)
		}
	}
}
