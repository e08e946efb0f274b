package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// TestManagedIdentityUnderLoad: a backend on the gateway's managed identity
// (the real azidentity, App Service endpoint on loopback issuing short
// tokens) behind a simulator in Entra mode with key auth disabled. Under
// load: no 401, at least two background refreshes, the simulator never
// sees an api-key. With the identity endpoint stopped, requests go on
// until the token runs out, then get 503 backend_credential_unavailable,
// and the backend's breaker never opens.
func TestManagedIdentityUnderLoad(t *testing.T) {
	e := entratest.New(t)
	e.SetTokenLifetime(4 * time.Second) // refreshed every 2 s; the 60 s tokens, shortened
	t.Setenv("IDENTITY_ENDPOINT", e.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", e.IdentityHeader)
	var sawKey, unauthorized atomic.Int64
	sim := simulator.New(simulator.Options{
		Deployments: map[string]simulator.Deployment{"gpt-4o-mini": {Model: "gpt-4o-mini"}},
		Entra:       &simulator.Entra{JWKSURL: e.JWKSURL(), Issuers: []string{e.IssuerV1()}, DisableLocalAuth: true},
		OnRequest: func(r *http.Request, _ []byte) {
			if r.Header.Get("Api-Key") != "" {
				sawKey.Add(1)
			}
		},
	})
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		sim.ServeHTTP(rec, r)
		if rec.status == http.StatusUnauthorized {
			unauthorized.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cfgText := `
server: { listen: 127.0.0.1:0 }
usage: { store: "sqlite:` + filepath.Join(dir, "u.db") + `", journal: "` + filepath.Join(dir, "u.journal") + `" }
backends:
  - name: payg-eastus
    url: ` + srv.URL + `
    auth: { managed_identity: { resource: https://cognitiveservices.azure.com } }
    deployments: { gpt-4o-mini: gpt-4o-mini }
    circuit_breaker: { failures: 1, status_codes: ["401", "500-599"] }
pools: [{ name: small, members: [{ backend: payg-eastus }] }]
models: { gpt-4o-mini: small }
products: [{ name: p, models: [gpt-4o-mini] }]
subscriptions: [{ name: s, product: p, keys: [sk-mi-test-0123456789] }]
`
	path := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := NewGateway(func() (*config.Config, error) { return config.Load(path, os.LookupEnv) }, nil, nil)
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
	client := openai.NewClient(option.WithBaseURL("http://"+ln.Addr().String()+"/v1"), option.WithAPIKey("sk-mi-test-0123456789"),
		option.WithMaxRetries(0))
	chat := func() error {
		_, err := client.Chat.Completions.New(context.Background(), chatParams("gpt-4o-mini"))
		return err
	}
	cache := g.Table().Backends["payg-eastus"].Credential().(*credential.Cache)
	// Load, from four clients, until two background refreshes happened
	// after the first token.
	deadline := time.Now().Add(time.Minute)
	for r, _ := cache.Stats(); r < 3; r, _ = cache.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("refreshes: %d after a minute of load", r)
		}
		errc := make(chan error, 4)
		for range 4 {
			go func() { errc <- chat() }()
		}
		for range 4 {
			if err := <-errc; err != nil {
				t.Fatalf("under load: %v", err)
			}
		}
	}
	if n := unauthorized.Load(); n != 0 {
		t.Errorf("the simulator answered 401 %d times", n)
	}
	if n := sawKey.Load(); n != 0 {
		t.Errorf("the simulator saw an api-key %d times", n)
	}
	// The identity endpoint stops: the token in force serves until it runs
	// out, then the client gets 503 and the breaker stays closed.
	e.SetDown(true)
	if err := chat(); err != nil {
		t.Errorf("right after the endpoint stopped: %v; want served by the cached token", err)
	}
	var apiErr *openai.Error
	deadline = time.Now().Add(30 * time.Second)
	for {
		err := chat()
		if errors.As(err, &apiErr) {
			break
		}
		if err != nil {
			t.Fatalf("%v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("still served 30 s after the identity endpoint stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if apiErr.StatusCode != 503 || apiErr.Code != "backend_credential_unavailable" {
		t.Errorf("once the token ran out: %d %s; want 503 backend_credential_unavailable", apiErr.StatusCode, apiErr.Code)
	}
	if st := g.Table().Backends["payg-eastus"].State.Breaker.Snapshot(time.Now()).State.String(); st != "closed" {
		t.Errorf("breaker %s; want closed", st)
	}
	if n := unauthorized.Load(); n != 0 {
		t.Errorf("the simulator answered 401 %d times", n)
	}
	if _, f := cache.Stats(); f == 0 {
		t.Errorf("no refresh failure counted")
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
