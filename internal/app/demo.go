package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
	deployments        map[string]simulator.Deployment
}

var demoBackends = []demoBackend{
	{
		// PTU-like: reserved capacity, a small token limit, so that it
		// throttles under load and the pool spills over.
		name: "ptu-swedencentral", addr: "127.0.0.1:9101", region: "swedencentral",
		deployments: map[string]simulator.Deployment{
			"gpt-4o-ptu": {Model: "gpt-4o", TokensPerMinute: 3000, RequestsPerMinute: 30},
		},
	},
	{
		name: "payg-westeurope", addr: "127.0.0.1:9102", region: "westeurope",
		deployments: map[string]simulator.Deployment{
			"gpt-4o":                 {Model: "gpt-4o", TokensPerMinute: 100000, RequestsPerMinute: 600},
			"text-embedding-3-small": {Model: "text-embedding-3-small", TokensPerMinute: 350000},
		},
	},
	{
		// Kind openai in the reference config: the simulator answers both
		// the Azure and the OpenAI paths.
		name: "payg-francecentral", addr: "127.0.0.1:9103", region: "francecentral",
		deployments: map[string]simulator.Deployment{
			"gpt-4o":                 {Model: "gpt-4o", TokensPerMinute: 100000, RequestsPerMinute: 600},
			"text-embedding-3-small": {Model: "text-embedding-3-small", TokensPerMinute: 350000},
		},
	},
}

// demoEnv are the environment variables the reference config names, generated
// for the demo.
type demoEnv map[string]string

func newDemoEnv() demoEnv {
	env := demoEnv{
		"SLUICE_ADMIN_KEY":           "sk-admin-" + randomHex(12),
		"PTU_API_KEY":                randomHex(16),
		"PAYG_WESTEUROPE_API_KEY":    randomHex(16),
		"PAYG_FRANCECENTRAL_API_KEY": randomHex(16),
		"TEAM_ALPHA_KEY":             "sk-alpha-" + randomHex(12),
		"TEAM_BETA_KEY":              "sk-beta-" + randomHex(12),
	}
	sum := sha256.Sum256([]byte(env["TEAM_BETA_KEY"]))
	env["TEAM_BETA_KEY_SHA256"] = hex.EncodeToString(sum[:])
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

// demoUsageDB is the demo's usage ledger.
var demoUsageDB = filepath.Join(os.TempDir(), "sluice-demo-usage.db")

// backendKeyVar names the env variable of each demo backend's key.
var backendKeyVar = map[string]string{
	"ptu-swedencentral":  "PTU_API_KEY",
	"payg-westeurope":    "PAYG_WESTEUROPE_API_KEY",
	"payg-francecentral": "PAYG_FRANCECENTRAL_API_KEY",
}

// demoConfig is the reference config with the demo's keys, and with the
// backends and listeners moved to the addresses actually bound.
func demoConfig(env demoEnv, backendURL map[string]string, listen, adminListen string) (*config.Config, error) {
	cfg, err := config.Parse("examples/sluice.yaml", examples.Reference, env.lookup)
	if err != nil {
		return nil, err
	}
	for i := range cfg.Backends {
		if u, ok := backendURL[cfg.Backends[i].Name]; ok {
			cfg.Backends[i].URL = u
		}
	}
	cfg.Server.Listen, cfg.Admin.Listen = listen, adminListen
	// The demo's ledger lives in the temporary directory, not wherever it
	// was started from.
	cfg.Usage.Store = "sqlite:" + demoUsageDB
	cfg.Usage.Journal = demoUsageDB + ".journal"
	cfg.Server.ShutdownGrace = config.Duration(5 * time.Second)
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

func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	listenAddr := fs.String("listen", "127.0.0.1:8080", "gateway address (a free port is taken if it is busy)")
	adminAddr := fs.String("admin-listen", "127.0.0.1:8081", "admin address (a free port is taken if it is busy)")
	latency := fs.Bool("latency", true, "simulate realistic model latency")
	load := fs.Float64("load", 2, "requests per second the demo sends itself as team-beta, and half as many as team-alpha, to show pools and limits at work (0: none)")
	var lf logFlags
	lf.bind(fs)
	lf.format = "text"
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	env := newDemoEnv()
	// The simulators log only their warnings: the gateway's access log tells
	// the story of each request.
	simLF := lf
	simLF.level = "warn"
	simLog, _ := simLF.logger(stderr)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, len(demoBackends)+1)
	urls := make(map[string]string, len(demoBackends))
	for _, db := range demoBackends {
		ln, err := listenOr(db.addr)
		if err != nil {
			return fmt.Errorf("demo backend %s: %w", db.name, err)
		}
		opts := simulator.Options{
			APIKey:      env[backendKeyVar[db.name]],
			Region:      db.region,
			Deployments: db.deployments,
			Logger:      simLog.With("simulator", db.name),
		}
		if *latency {
			opts.Latency = simulator.Latency{Base: 40 * time.Millisecond, PerToken: 12 * time.Millisecond, PerTokenStdDev: 4 * time.Millisecond}
		}
		urls[db.name] = "http://" + ln.Addr().String()
		sim := simulator.New(opts)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serveUntil(ctx, ln, sim); err != nil {
				errc <- fmt.Errorf("demo backend %s: %w", db.name, err)
			}
		}()
	}
	ln, err := listenOr(*listenAddr)
	if err != nil {
		return err
	}
	adminLn, err := listenOr(*adminAddr)
	if err != nil {
		ln.Close()
		return err
	}
	source := func() (*config.Config, error) {
		return demoConfig(env, urls, ln.Addr().String(), adminLn.Addr().String())
	}
	g, err := NewGateway(source, log, nil)
	if err != nil {
		ln.Close()
		adminLn.Close()
		return fmt.Errorf("demo config: %w", err)
	}
	printBanner(stdout, env, urls, "http://"+ln.Addr().String(), "http://"+adminLn.Addr().String(),
		strconv.FormatFloat(*load, 'g', -1, 64))
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- g.Serve(ctx, ln, adminLn)
	}()
	dl := &demoLoad{url: "http://" + ln.Addr().String(), interval: 10 * time.Second, out: stdout,
		client: &http.Client{Timeout: time.Minute}, senders: []demoSender{
			{name: "team-beta", key: env["TEAM_BETA_KEY"], rate: *load, maxTokens: 40},
			{name: "team-alpha", key: env["TEAM_ALPHA_KEY"], rate: *load / 2, maxTokens: 400},
		}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		dl.run(ctx)
	}()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	wg.Wait()
	return err
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

func printBanner(w io.Writer, env demoEnv, backends map[string]string, gw, adm, loadRate string) {
	fmt.Fprintf(w, `
Sluice demo: three simulated Azure OpenAI backends behind the gateway,
configured by examples/sluice.yaml.

  gateway        %s
  admin          %s   (admin key: %s)
  backends       ptu-swedencentral %s, payg-westeurope %s, payg-francecentral %s

  subscription   team-alpha (product standard)  key: %s
  subscription   team-beta  (product premium)   key: %s

Azure OpenAI style:

  curl -s '%s/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21' \
    -H "api-key: %s" -H "Content-Type: application/json" \
    -d '{"messages":[{"role":"user","content":"Hello!"}]}'

OpenAI style, streaming:

  curl -sN %s/v1/chat/completions \
    -H "Authorization: Bearer %s" -H "Content-Type: application/json" \
    -d '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hello!"}]}'

Python (pip install openai):

  from openai import OpenAI
  client = OpenAI(base_url="%s/v1", api_key="%s")
  print(client.chat.completions.create(model="gpt-4o",
        messages=[{"role": "user", "content": "Hello!"}]).choices[0].message.content)

Go (github.com/openai/openai-go/v3):

  client := openai.NewClient(option.WithBaseURL("%s/v1"), option.WithAPIKey("%s"))
  resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
      Model:    "gpt-4o",
      Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")},
  })

The demo sends itself %s request(s) per second as team-beta, and half as many as team-alpha
(--load), and every 10 s prints what happened to them: the PTU backend fills its small token
limit, answers 429, its circuit breaker opens for the Retry-After, and pay-as-you-go takes over
until it reopens; team-alpha, with 400-token requests, reaches its product's limit of 5,000
tokens per minute and is refused with 429 until the minute turns.
Live backend state: curl -s -H "api-key: %[18]s" %[19]s/admin/backends
Prometheus metrics: curl -s %[19]s/metrics
Usage report:       go run ./cmd/sluice usage --store sqlite:%[20]s --group-by subscription,backend
                    curl -s -H "api-key: %[18]s" '%[19]s/admin/usage?group_by=subscription,model'

Press Ctrl-C to stop.
`,
		gw, adm, env["SLUICE_ADMIN_KEY"],
		backends["ptu-swedencentral"], backends["payg-westeurope"], backends["payg-francecentral"],
		env["TEAM_ALPHA_KEY"], env["TEAM_BETA_KEY"],
		gw, env["TEAM_ALPHA_KEY"],
		gw, env["TEAM_ALPHA_KEY"],
		gw, env["TEAM_ALPHA_KEY"],
		gw, env["TEAM_ALPHA_KEY"],
		loadRate, env["SLUICE_ADMIN_KEY"], adm, demoUsageDB,
	)
}
