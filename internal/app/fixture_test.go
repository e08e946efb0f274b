package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/simulator"
	"github.com/sluice-gateway/sluice/internal/tokens"
)

// The keys of the test fixture. The backend keys must never reach a client
// or a log; the subscription keys must never reach a backend.
const (
	fxAlphaKey   = "sk-fixture-alpha-0123456789"
	fxBetaKey    = "sk-fixture-beta-0123456789"
	fxAdminKey   = "sk-fixture-admin-0123456789"
	fxPTUKey     = "fixture-ptu-backend-key"
	fxWestKey    = "fixture-west-backend-key"
	fxFranceKey  = "fixture-france-backend-key"
	fxConfigYAML = `
server:
  listen: 127.0.0.1:0
  shutdown_grace: %s
admin:
  listen: 127.0.0.1:0
  api_key: ${FX_ADMIN_KEY}
usage:
  store: "${FX_USAGE_STORE}"
  journal: "${FX_USAGE_JOURNAL}"
metrics:
  prometheus: true
backends:
  - name: ptu-swedencentral
    kind: azure-openai
    url: %s
    region: swedencentral
    auth: { api_key: "${FX_PTU_KEY}" }
    deployments: { gpt-4o: gpt-4o-ptu }
  - name: payg-westeurope
    kind: azure-openai
    url: %s
    region: westeurope
    auth: { api_key: "${FX_WEST_KEY}" }
    deployments: { gpt-4o: gpt-4o, text-embedding-3-small: text-embedding-3-small }
  - name: payg-francecentral
    kind: openai
    url: %s
    region: francecentral
    auth: { api_key: "${FX_FRANCE_KEY}" }
    deployments: { gpt-4o: gpt-4o, text-embedding-3-small: text-embedding-3-small, gpt-4o-fr: gpt-4o }
pools:
  - name: chat
    members:
      - { backend: ptu-swedencentral, priority: 1 }
      - { backend: payg-westeurope, priority: 2, weight: 3 }
      - { backend: payg-francecentral, priority: 2, weight: 1 }
  - name: embeddings
    members:
      - { backend: payg-westeurope }
  - name: france
    members:
      - { backend: payg-francecentral }
models:
  gpt-4o: chat
  text-embedding-3-small: embeddings
  gpt-4o-fr: france
products:
  - name: standard
    models: [gpt-4o, text-embedding-3-small, gpt-4o-fr]
  - name: chat-only
    models: [gpt-4o]
subscriptions:
  - name: team-alpha
    product: standard
    keys: ["${FX_ALPHA_KEY}"]
%s`
)

// fixture is a gateway in front of three simulators, all on real sockets.
type fixture struct {
	t          *testing.T
	sims       map[string]*simulator.Simulator
	simServers []*httptest.Server
	down       map[string]*atomic.Bool // a backend answers 503 to everything while set
	simURLs    map[string]string
	seen       *backendLog
	gw         *Gateway
	url, admin string
	logs       *lockedBuffer
	cfgPath    string
	grace      string
	template   string
	cancel     context.CancelFunc
	done       chan error
}

// backendLog keeps what reached the backends.
type backendLog struct {
	mu   sync.Mutex
	reqs []seenRequest
}

type seenRequest struct {
	backend string
	path    string
	query   string
	header  http.Header
	body    string
}

func (b *backendLog) add(r seenRequest) {
	b.mu.Lock()
	b.reqs = append(b.reqs, r)
	b.mu.Unlock()
}

func (b *backendLog) all() []seenRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seenRequest(nil), b.reqs...)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type fixtureOption func(*fixtureSettings)

type fixtureSettings struct {
	grace   string
	latency simulator.Latency
	now     func() time.Time
	config  string            // the config template; default fxConfigYAML
	serving func(name string) // called as each request reaches backend name; nil: nothing
}

// withClock gives the gateway a clock of the test's.
func withClock(now func() time.Time) fixtureOption { return func(s *fixtureSettings) { s.now = now } }

// withConfig replaces the config template. It takes the same five %s as
// fxConfigYAML: shutdown grace, the three backend URLs, extra subscriptions.
func withConfig(tmpl string) fixtureOption { return func(s *fixtureSettings) { s.config = tmpl } }

// withServing calls serving with the backend's name as each request reaches
// a backend, before it is answered: with withClock, a test moves the
// gateway's clock on by a backend's latency there, so that the latency the
// gateway measures is the test's and not the machine's.
func withServing(serving func(backend string)) fixtureOption {
	return func(s *fixtureSettings) { s.serving = serving }
}

func withGrace(d string) fixtureOption { return func(s *fixtureSettings) { s.grace = d } }

func withLatency(l simulator.Latency) fixtureOption {
	return func(s *fixtureSettings) { s.latency = l }
}

func newFixture(t *testing.T, opts ...fixtureOption) *fixture {
	t.Helper()
	// Build the tokenizers' tables now (tens of milliseconds, more under
	// -race), not in the first request, which has timeouts to keep.
	tokens.Count("gpt-4o", "warm up")
	tokens.Count("gpt-4", "warm up")
	s := fixtureSettings{grace: "5s", config: fxConfigYAML}
	for _, o := range opts {
		o(&s)
	}
	dir := t.TempDir()
	for k, v := range map[string]string{
		"FX_ADMIN_KEY": fxAdminKey, "FX_PTU_KEY": fxPTUKey, "FX_WEST_KEY": fxWestKey,
		"FX_FRANCE_KEY": fxFranceKey, "FX_ALPHA_KEY": fxAlphaKey,
		"FX_USAGE_STORE": "sqlite:" + filepath.Join(dir, "usage.db"), "FX_USAGE_JOURNAL": filepath.Join(dir, "usage.journal"),
	} {
		t.Setenv(k, v)
	}
	f := &fixture{t: t, sims: map[string]*simulator.Simulator{}, simURLs: map[string]string{}, down: map[string]*atomic.Bool{},
		seen: &backendLog{}, logs: &lockedBuffer{}, grace: s.grace, template: s.config}
	for _, b := range []struct {
		name, key, region string
		deps              map[string]simulator.Deployment
	}{
		{"ptu-swedencentral", fxPTUKey, "swedencentral", map[string]simulator.Deployment{"gpt-4o-ptu": {Model: "gpt-4o"}}},
		{"payg-westeurope", fxWestKey, "westeurope", map[string]simulator.Deployment{
			"gpt-4o": {Model: "gpt-4o", TokensPerMinute: 100000}, "text-embedding-3-small": {Model: "text-embedding-3-small"}}},
		{"payg-francecentral", fxFranceKey, "francecentral", map[string]simulator.Deployment{
			"gpt-4o": {Model: "gpt-4o"}, "text-embedding-3-small": {Model: "text-embedding-3-small"}}},
	} {
		name := b.name
		sim := simulator.New(simulator.Options{
			APIKey: b.key, Region: b.region, Deployments: b.deps, Seed: 1, Latency: s.latency,
			OnRequest: func(r *http.Request, body []byte) {
				f.seen.add(seenRequest{backend: name, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), body: string(body)})
			},
		})
		down := new(atomic.Bool)
		f.down[name] = down
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.serving != nil {
				s.serving(name)
			}
			if down.Load() {
				http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
				return
			}
			sim.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		f.simServers = append(f.simServers, srv)
		f.sims[name] = sim
		f.simURLs[name] = srv.URL
	}
	f.cfgPath = filepath.Join(t.TempDir(), "sluice.yaml")
	f.writeConfig("")
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	source := func() (*config.Config, error) { return config.Load(f.cfgPath, os.LookupEnv) }
	g, err := NewGateway(source, log, s.now)
	if err != nil {
		t.Fatalf("NewGateway: %v", err)
	}
	f.gw = g
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.url, f.admin = "http://"+ln.Addr().String(), "http://"+adminLn.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	go func() { f.done <- g.Serve(ctx, ln, adminLn) }()
	t.Cleanup(func() { f.stop() })
	return f
}

// writeConfig writes the fixture config with extra subscriptions appended.
func (f *fixture) writeConfig(extraSubscriptions string) {
	f.t.Helper()
	body := fmt.Sprintf(f.template, f.grace, f.simURLs["ptu-swedencentral"], f.simURLs["payg-westeurope"],
		f.simURLs["payg-francecentral"], extraSubscriptions)
	if err := os.WriteFile(f.cfgPath, []byte(body), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// stop shuts the gateway down and returns Serve's result.
func (f *fixture) stop() error {
	if f.cancel == nil {
		return nil
	}
	f.cancel()
	f.cancel = nil
	select {
	case err := <-f.done:
		return err
	case <-time.After(30 * time.Second):
		f.t.Error("the gateway did not shut down within 30s")
		return nil
	}
}
