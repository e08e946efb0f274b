package app

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/credential"
	"github.com/sluice-gateway/sluice/internal/entratest"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// jwtShape matches a JWT anywhere in a text.
var jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.`)

// TestManagedIdentityFailover: a pool whose first member is on the
// gateway's managed identity (2-second tokens) and whose second has a key.
// While the identity endpoint answers, the first serves, its tokens
// refreshed in the background; once the endpoint is down and the token in
// force has run out, every request is served by the second member (no
// client sees an error), the first's breaker stays closed, and neither the
// token nor any JWT reaches the gateway's log, even at debug.
func TestManagedIdentityFailover(t *testing.T) {
	e := entratest.New(t)
	e.SetTokenLifetime(2 * time.Second)
	t.Setenv("IDENTITY_ENDPOINT", e.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", e.IdentityHeader)
	var unauthorized, sawKey atomic.Int64
	entra := simulator.New(simulator.Options{
		Deployments: map[string]simulator.Deployment{"gpt-4o-mini": {Model: "gpt-4o-mini"}},
		Entra:       &simulator.Entra{JWKSURL: e.JWKSURL(), Issuers: []string{e.IssuerV1()}, DisableLocalAuth: true},
		OnRequest: func(r *http.Request, _ []byte) {
			if r.Header.Get("Api-Key") != "" {
				sawKey.Add(1)
			}
		},
	})
	t.Cleanup(entra.Close)
	miSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		entra.ServeHTTP(rec, r)
		if rec.status == http.StatusUnauthorized {
			unauthorized.Add(1)
		}
	}))
	t.Cleanup(miSrv.Close)
	keyed := httptest.NewServer(simulator.New(simulator.Options{APIKey: "keyed-backend-key",
		Deployments: map[string]simulator.Deployment{"gpt-4o-mini": {Model: "gpt-4o-mini"}}}))
	t.Cleanup(keyed.Close)
	dir := t.TempDir()
	cfgText := `
server: { listen: 127.0.0.1:0 }
usage: { store: "sqlite:` + filepath.Join(dir, "u.db") + `", journal: "` + filepath.Join(dir, "u.journal") + `" }
backends:
  - name: mi
    url: ` + miSrv.URL + `
    auth: { managed_identity: { resource: https://cognitiveservices.azure.com } }
    deployments: { gpt-4o-mini: gpt-4o-mini }
    circuit_breaker: { failures: 1, status_codes: ["401", "500-599"] }
  - name: keyed
    url: ` + keyed.URL + `
    auth: { api_key: keyed-backend-key }
    deployments: { gpt-4o-mini: gpt-4o-mini }
pools: [{ name: small, members: [{ backend: mi, priority: 1 }, { backend: keyed, priority: 2 }] }]
models: { gpt-4o-mini: small }
products: [{ name: p, models: [gpt-4o-mini] }]
subscriptions: [{ name: s, product: p, keys: [sk-mi-failover-0123456789] }]
`
	path := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	g, err := NewGateway(func() (*config.Config, error) { return config.Load(path, os.LookupEnv) }, slogTo(&logs), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	client := openai.NewClient(option.WithBaseURL("http://"+ln.Addr().String()+"/v1"),
		option.WithAPIKey("sk-mi-failover-0123456789"), option.WithMaxRetries(0))
	served := func() string {
		t.Helper()
		var resp *http.Response
		if _, err := client.Chat.Completions.New(context.Background(), chatParams("gpt-4o-mini"), option.WithResponseInto(&resp)); err != nil {
			t.Fatalf("chat: %v; want every request served", err)
		}
		return resp.Header.Get("X-Sluice-Backend")
	}
	cache := g.Table().Backends["mi"].Credential().(*credential.Cache)
	deadline := time.Now().Add(time.Minute)
	byMI := 0
	for r, _ := cache.Stats(); r < 3; r, _ = cache.Stats() { // the first token and two refreshes
		// keyed serves only before the first token came, or if a
		// machine too busy let a 2-second token run out.
		if served() == "mi" {
			byMI++
		}
		if time.Now().After(deadline) {
			t.Fatalf("refreshes: %d after a minute", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if byMI == 0 {
		t.Fatal("mi served nothing while the identity endpoint answered")
	}
	e.SetDown(true)
	stopped := time.Now()
	for served() != "keyed" {
		if time.Since(stopped) > 30*time.Second {
			t.Fatal("still served by mi 30 s after the identity endpoint stopped, with 2-second tokens")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 5 {
		if got := served(); got != "keyed" {
			t.Errorf("served by %s once mi's token ran out; want keyed", got)
		}
	}
	if st := g.Table().Backends["mi"].State.Breaker.Snapshot(time.Now()).State.String(); st != "closed" {
		t.Errorf("mi's breaker is %s; want closed: a credential outage is not the backend's failure", st)
	}
	if n := g.Table().Backends["mi"].State.CredentialErrors(); n == 0 {
		t.Error("no request counted as unsent for want of a credential")
	}
	if unauthorized.Load() != 0 || sawKey.Load() != 0 {
		t.Errorf("mi's simulator answered 401 %d times and saw an api-key %d times; want neither", unauthorized.Load(), sawKey.Load())
	}
	if m := jwtShape.FindString(logs.String()); m != "" {
		t.Errorf("a JWT is in the gateway's log: %s…", m[:20])
	}
}
