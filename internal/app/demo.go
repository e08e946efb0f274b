package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/examples"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// demoBackend is one simulated backend of the demo, at the address the
// reference config gives it.
type demoBackend struct {
	name, addr, region string
	keyVar             string // the environment variable the reference config takes its key from
	ptu                bool   // reserved capacity, which the chat pool uses first
	deployments        map[string]simulator.Deployment
}

var demoBackends = []demoBackend{
	{
		// PTU-like: reserved capacity, a small token limit, so that it
		// throttles under the demo's load and the pool spills over.
		name: "ptu-swedencentral", addr: "127.0.0.1:9101", region: "swedencentral", keyVar: "PTU_API_KEY", ptu: true,
		deployments: map[string]simulator.Deployment{
			"gpt-4o-ptu": {Model: "gpt-4o", TokensPerMinute: 3000, RequestsPerMinute: 30},
		},
	},
	{
		name: "payg-westeurope", addr: "127.0.0.1:9102", region: "westeurope", keyVar: "PAYG_WESTEUROPE_API_KEY",
		deployments: map[string]simulator.Deployment{
			"gpt-4o":                 {Model: "gpt-4o", TokensPerMinute: 100000, RequestsPerMinute: 600},
			"text-embedding-3-small": {Model: "text-embedding-3-small", TokensPerMinute: 350000},
		},
	},
	{
		// Kind openai in the reference config: the simulator answers both
		// the Azure and the OpenAI paths.
		name: "payg-francecentral", addr: "127.0.0.1:9103", region: "francecentral", keyVar: "PAYG_FRANCECENTRAL_API_KEY",
		deployments: map[string]simulator.Deployment{
			"gpt-4o":                 {Model: "gpt-4o", TokensPerMinute: 100000, RequestsPerMinute: 600},
			"text-embedding-3-small": {Model: "text-embedding-3-small", TokensPerMinute: 350000},
		},
	},
}

// demoLatency is the simulators' latency with --latency: long enough to see
// a stream arrive token by token.
var demoLatency = simulator.Latency{Base: 40 * time.Millisecond, PerToken: 12 * time.Millisecond, PerTokenStdDev: 4 * time.Millisecond}

// The demo's two subscriptions of the reference config. The user's key is
// never used by the demo's load, so the snippets printed with it work
// however high --load is; the load's subscription, in a product with a small
// tokens-per-minute limit, is the one that reaches it.
const (
	demoUserSubscription = "team-beta"
	demoUserKeyVar       = "TEAM_BETA_KEY"
	demoLoadSubscription = "team-alpha"
	demoLoadKeyVar       = "TEAM_ALPHA_KEY"
	demoLoadMaxTokens    = 400
)

// demoEnv are the environment variables the reference config names, generated
// for the demo, and TEAM_BETA_KEY, whose digest the config holds.
type demoEnv map[string]string

func newDemoEnv() demoEnv {
	env := demoEnv{
		"SLUICE_ADMIN_KEY": "sk-admin-" + randomHex(12),
		demoLoadKeyVar:     "sk-alpha-" + randomHex(12),
		demoUserKeyVar:     "sk-beta-" + randomHex(12),
		demoSafetyKeyVar:   randomHex(16),
	}
	for _, b := range demoSimulators() {
		env[b.keyVar] = randomHex(16)
	}
	sum := sha256.Sum256([]byte(env[demoUserKeyVar]))
	env[demoUserKeyVar+"_SHA256"] = hex.EncodeToString(sum[:])
	return env
}

func (e demoEnv) lookup(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// demoConfig is the reference config with the demo's keys, the backends and
// listeners moved to the addresses actually bound, and its usage ledger in
// dir, so that each run starts with an empty one.
func demoConfig(env demoEnv, backendURL map[string]string, listen, adminListen, dir string) (*config.Config, error) {
	cfg, err := config.Parse("examples/sluice.yaml", examples.Reference, env.lookup)
	if err != nil {
		return nil, err
	}
	for i := range cfg.Backends {
		if u, ok := backendURL[cfg.Backends[i].Name]; ok {
			cfg.Backends[i].URL = u
		}
	}
	for i := range cfg.ContentSafety {
		if u, ok := backendURL[safetyURLKey(cfg.ContentSafety[i].Name)]; ok {
			cfg.ContentSafety[i].URL = u
		}
	}
	cfg.Server.Listen, cfg.Admin.Listen = listen, adminListen
	cfg.Usage.Store = "sqlite:" + filepath.Join(dir, "usage.db")
	cfg.Usage.Journal = filepath.Join(dir, "usage.journal")
	cfg.Server.ShutdownGrace = config.Duration(5 * time.Second)
	useDemoIdentity(cfg)
	cfg.UI.Chat, cfg.UI.Dashboard = true, true
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// listenOr listens on addr, or on a free port of the same host when addr is taken.
func listenOr(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	host, _, _ := net.SplitHostPort(addr)
	return net.Listen("tcp", net.JoinHostPort(host, "0"))
}

// demoFlags are the demo's command line.
type demoFlags struct {
	listen, adminListen string
	latency             bool
	load                float64
	logRequests         bool
	printConfig         bool
	log                 logFlags
}

// maxDemoLoad bounds --load: beyond it the demo would only measure itself.
const maxDemoLoad = 1000

func parseDemoFlags(args []string, stderr io.Writer) (*demoFlags, error) {
	fs := newFlags("demo", stderr)
	f := &demoFlags{}
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "gateway address (a free port is taken if it is busy)")
	fs.StringVar(&f.adminListen, "admin-listen", "127.0.0.1:8081", "admin address (a free port is taken if it is busy)")
	fs.BoolVar(&f.latency, "latency", true, "simulate realistic model latency")
	fs.Float64Var(&f.load, "load", 1, "requests per second the demo sends itself as "+demoLoadSubscription+
		", to show the PTU spilling over and a limit reached (0: none)")
	fs.BoolVar(&f.logRequests, "log-requests", false, "print the access log (a line per request) here, instead of into the demo's access.log file")
	fs.BoolVar(&f.printConfig, "print-config", false, "print the demo's config (examples/sluice.yaml) and, on standard error, "+
		"the commands that run it against its simulators with fresh keys; then exit")
	fs.StringVar(&f.log.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.log.format, "log-format", "text", "log format: text or json")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if !(f.load >= 0 && f.load <= maxDemoLoad) || math.IsNaN(f.load) {
		fmt.Fprintf(stderr, "sluice demo: --load: want requests per second from 0 to %d, got %v\n", maxDemoLoad, f.load)
		return nil, &ExitError{Code: 2}
	}
	return f, nil
}

func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseDemoFlags(args, stderr)
	if err != nil {
		return err
	}
	env := newDemoEnv()
	if f.printConfig {
		return printDemoConfig(stdout, stderr, env)
	}
	termLog, err := f.log.logger(stderr)
	if err != nil {
		return err
	}
	// Each run has its own directory, for a ledger that starts empty and
	// the access log; it goes when the demo stops.
	dir, err := os.MkdirTemp("", "sluice-demo-")
	if err != nil {
		return fmt.Errorf("demo directory: %w", err)
	}
	defer os.RemoveAll(dir)
	log, accessLog := termLog, ""
	if !f.logRequests {
		accessLog = filepath.Join(dir, "access.log")
		file, err := os.OpenFile(accessLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("demo access log: %w", err)
		}
		defer file.Close()
		fileLog, _ := f.log.logger(file) // the flags were checked above
		log = slog.New(accessSplit{access: fileLog.Handler(), rest: termLog.Handler()})
	}
	// The simulators log only their warnings: the demo's own lines tell the
	// story of the requests.
	simLF := f.log
	simLF.level = "warn"
	simLog, _ := simLF.logger(stderr)

	// On the way out the goroutines are told to stop, then waited for.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(demoSimulators())+2)
	urls := make(map[string]string, len(demoSimulators()))
	ptu := make(map[string]bool)
	ident, err := startDemoIdentity(ctx, &wg, errc)
	if err != nil {
		return err
	}
	defer ident.restore()
	env["IDENTITY_ENDPOINT"] = ident.url + "/msi/token" // for the banner
	faults := &demoFaults{}
	seen := &demoSeen{} // what the backends received of a masked prompt (demoguard.go)
	for _, db := range demoSimulators() {
		ln, err := listenOr(db.addr)
		if err != nil {
			return fmt.Errorf("demo backend %s: %w", db.name, err)
		}
		opts := simulator.Options{
			APIKey:      env[db.keyVar],
			Region:      db.region,
			Deployments: db.deployments,
			Logger:      simLog.With("simulator", db.name),
			OnRequest:   seen.observe,
		}
		if f.latency {
			opts.Latency = demoLatency
		}
		if db.name == demoIdentityBackend {
			opts.Entra = ident.id.Entra(ident.url)
		}
		urls[db.name] = "http://" + ln.Addr().String()
		ptu[db.name] = db.ptu
		sim := simulator.New(opts)
		defer sim.Close()
		faults.add(db.name, db.region, sim)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serveUntil(ctx, ln, sim); err != nil {
				errc <- fmt.Errorf("demo backend %s: %w", db.name, err)
			}
		}()
	}
	if ref, err := config.Parse("examples/sluice.yaml", examples.Reference, env.lookup); err == nil {
		if err := startDemoSafety(ctx, &wg, ref, urls, simLog); err != nil {
			return err
		}
	}
	ln, err := listenOr(f.listen)
	if err != nil {
		return err
	}
	adminLn, err := listenOr(f.adminListen)
	if err != nil {
		ln.Close()
		return err
	}
	source := func() (*config.Config, error) {
		return demoConfig(env, urls, ln.Addr().String(), adminLn.Addr().String(), dir)
	}
	var banner bytes.Buffer
	cfg, err := source()
	if err == nil {
		err = printBanner(&banner, bannerFor(cfg, env, urls, "http://"+ln.Addr().String(), "http://"+adminLn.Addr().String(),
			f.load, accessLog, dir))
	}
	var g *Gateway
	if err == nil {
		g, err = NewGateway(source, log, nil)
	}
	if err != nil {
		ln.Close()
		adminLn.Close()
		return fmt.Errorf("demo config: %w", err)
	}
	g.ui.SetDemo(faults)
	_, _ = banner.WriteTo(stdout)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- g.Serve(ctx, ln, adminLn)
	}()
	semantic := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(semantic)
		demoSemantic(ctx, &http.Client{Timeout: time.Minute}, "http://"+ln.Addr().String(), env[demoLoadKeyVar], stdout)
	}()
	showGuardrails(ctx, stdout, "http://"+ln.Addr().String(), env[demoLoadKeyVar], cfg, seen)
	// The failover moment's 429s come after the semantic cache's
	// questions are answered, and the load after it (demo_providers.go).
	select {
	case <-semantic:
	case <-ctx.Done():
	}
	showFailover(ctx, stdout, "http://"+ln.Addr().String(), demoLoadSubscription, env[demoLoadKeyVar], "gpt-4o", cfg, faults)
	if f.load > 0 {
		dl := &demoLoad{url: "http://" + ln.Addr().String(), name: demoLoadSubscription, key: env[demoLoadKeyVar], rate: f.load,
			maxTokens: demoLoadMaxTokens, ptu: ptu, providers: providerBackends(cfg), interval: 10 * time.Second, out: stdout,
			client: &http.Client{Timeout: time.Minute}, now: time.Now}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dl.run(ctx)
		}()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	wg.Wait()
	return err
}

// accessSplit sends the access log, the pipeline's "request" records, to
// one handler and every other record to another: the demo's terminal shows
// what happens to the backends and its story, not a line per request.
type accessSplit struct{ access, rest slog.Handler }

// accessMessage is the message of the pipeline's access-log records
// (docs/operations.md).
const accessMessage = "request"

func (s accessSplit) Enabled(ctx context.Context, level slog.Level) bool {
	return s.access.Enabled(ctx, level) || s.rest.Enabled(ctx, level)
}

func (s accessSplit) Handle(ctx context.Context, r slog.Record) error {
	h := s.rest
	if r.Message == accessMessage {
		h = s.access
	}
	if !h.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handle(ctx, r)
}

func (s accessSplit) WithAttrs(attrs []slog.Attr) slog.Handler {
	return accessSplit{access: s.access.WithAttrs(attrs), rest: s.rest.WithAttrs(attrs)}
}

func (s accessSplit) WithGroup(name string) slog.Handler {
	return accessSplit{access: s.access.WithGroup(name), rest: s.rest.WithGroup(name)}
}

// serveUntil serves h on ln until ctx ends, then shuts down within 5 s.
func serveUntil(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
