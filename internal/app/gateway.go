package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sluice-gateway/sluice/internal/admin"
	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/cachestage"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/credential"
	"github.com/sluice-gateway/sluice/internal/guard"
	"github.com/sluice-gateway/sluice/internal/health"
	"github.com/sluice-gateway/sluice/internal/listener"
	"github.com/sluice-gateway/sluice/internal/oidc"
	"github.com/sluice-gateway/sluice/internal/principal"
	"github.com/sluice-gateway/sluice/internal/proxy"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/usage"
	"github.com/sluice-gateway/sluice/internal/webui"
)

// Gateway is a running Sluice: the routing table in force, swapped whole on
// reload, what outlives a table (its registry), and the client and admin
// HTTP servers. It is safe for concurrent use.
type Gateway struct {
	source func() (*config.Config, error)
	log    *slog.Logger
	now    func() time.Time
	obs    observability

	table    atomic.Pointer[route.Table]
	tokens   *oidc.Set                     // the auth.jwt providers' keys, across reloads
	subs     *subscriptionSync             // runtime subscriptions from the usage store; nil when it keeps none
	verifier atomic.Pointer[oidc.Verifier] // the auth.jwt of the table in force
	registry *route.Registry               // backend states, limiters and health probes across reloads
	cache    *cachestage.Stage             // the response cache, across reloads
	reloadMu sync.Mutex                    // serialises reloads: guards the compile-and-commit
	ready    atomic.Bool
	conns    atomic.Pointer[listener.Listener] // the client listener, once serving
	tls      listenerCerts                     // server.tls and admin.tls, loaded; nil each when plain HTTP
	ui       *webui.UI                         // the chat and the dashboard (webui.go)
	uiRedis  *redis.Client                     // the dashboard's sessions' Redis (state.store); nil: in memory
	guard    *guard.Stage                      // the guardrails stage (guard.go)

	// Handler is the client-facing API.
	Handler http.Handler
	// Admin is the admin listener's handler.
	Admin http.Handler
}

// NewGateway loads a first config from source and compiles it. Reload calls
// source again. now is the clock of breakers and latency (nil: time.Now).
// On an error, whatever it had opened is closed again.
func NewGateway(source func() (*config.Config, error), log *slog.Logger, now func() time.Time) (g *Gateway, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	g = &Gateway{source: source, log: log, now: now}
	cfg, err := source()
	if err != nil {
		return nil, err
	}
	if g.tls, err = loadListenerCerts(cfg, log, now); err != nil {
		return nil, err
	}
	g.registry = route.NewRegistry(route.RegistryOptions{Log: log, OpenStore: openStore, Health: health.New(log, now),
		Drain: cfg.Server.ShutdownGrace.D()})
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	if g.obs.metrics, err = newMetrics(cfg, g); err != nil {
		return nil, err
	}
	if g.obs.tracer, err = newTracer(context.Background(), cfg); err != nil {
		return nil, err
	}
	g.tokens = oidc.NewSet(oidc.Options{Logger: log})
	t, err := route.Compile(cfg, route.Env{Log: log, Registry: g.registry, Credential: g.credential})
	if err != nil {
		return nil, err
	}
	if g.obs.ledger, g.obs.store, err = openLedger(context.Background(), cfg, g); err != nil {
		return nil, err
	}
	g.verifier.Store(g.tokens.Update(cfg.Auth.JWT))
	g.registry.Commit(t)
	g.table.Store(t)
	g.ready.Store(true)
	if g.cache, err = g.openCache(cfg); err != nil {
		return nil, err
	}
	g.guard = g.newGuard()
	authn := []proxy.Authenticator{gatewayCaller{}, &principal.Tokens{Verifier: g.verifier.Load}, proxy.Keys{}, &principal.Certificates{}}
	g.Handler = proxy.New(proxy.Options{Table: g.Table, Logger: log, Now: now, Metrics: g.obs.metrics, Ledger: g.obs.ledger,
		Tracer: g.obs.tracer, Authenticators: authn, Stages: g.stages()})
	ao := admin.Options{Table: g.Table, Reload: g.Reload, Ready: g.ready.Load, LedgerDegraded: g.obs.ledgerDegraded,
		Logger: log, Now: now, Usage: g.obs.ledger.Report, Tokens: g.verifier.Load,
		ClearCache: func(ctx context.Context, sub string) (int64, error) { return g.cache.Store().Clear(ctx, sub) }}
	if ss, ok := g.obs.store.(usage.Subscriptions); ok {
		g.subs = startSubscriptionSync(g, ss)
		ao.Subscriptions, ao.SubscriptionsChanged = ss, g.subs.changed
	}
	if g.obs.metrics != nil {
		ao.Metrics = g.obs.metrics.Handler()
	}
	g.Admin = admin.New(ao)
	if err = g.mountUI(cfg); err != nil {
		return nil, err
	}
	return g, nil
}

// credential makes the token credential of a backend whose auth is a
// managed identity, client credentials or OAuth2 (nil for an API key). The
// registry keeps it across reloads; its first token is fetched at once.
func (g *Gateway) credential(bc config.Backend) (backend.Credential, error) {
	src, err := credential.FromConfig(bc.Auth, nil)
	if err != nil || src == nil {
		return nil, err
	}
	return credential.New(src, credential.Options{Name: bc.Name, Logger: g.log}), nil
}

// Table returns the routing table in force.
func (g *Gateway) Table() *route.Table { return g.table.Load() }

// Reload loads and compiles the config again and swaps it in. Requests in
// flight finish on the table they started with. On error the table in force
// stays, and the error says why.
func (g *Gateway) Reload() error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	cfg, err := g.source()
	if err != nil {
		return err
	}
	prev := g.table.Load()
	if err := checkRestartOnly(prev.Config, cfg); err != nil {
		return err
	}
	next, err := route.Compile(cfg, route.Env{Log: g.log, Registry: g.registry, Credential: g.credential})
	if err != nil {
		return err
	}
	g.verifier.Store(g.tokens.Update(cfg.Auth.JWT))
	g.table.Store(next)
	g.registry.Commit(next)
	g.log.Info("config reloaded", "backends", len(cfg.Backends), "subscriptions", len(cfg.Subscriptions))
	return nil
}

// Serve serves the client API on ln and the admin API on adminLn (which may
// be nil) until ctx ends, then shuts down gracefully: it stops accepting
// client connections, lets requests and streams in flight finish for up to
// server.shutdown_grace, and closes what is left. The admin listener stays up
// meanwhile, /readyz answering 503, and closes once the client listener has
// drained.
//
// Client connections are capped at server.max_connections (and three
// quarters of the process's open-file limit) and server.max_connections_per_ip;
// beyond them a connection is answered 503 and closed before any request is
// read. Requests with ambiguous framing are refused, and the errors net/http
// answers itself are OpenAI-shaped, on both listeners (see package listener).
func (g *Gateway) Serve(ctx context.Context, ln, adminLn net.Listener) error {
	cfg := g.Table().Config
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler: h,
			// OPTIONS * goes to the handler too, which answers it 404
			// and closes, instead of a 200 that keeps a keyless
			// connection open.
			DisableGeneralOptionsHandler: true,
			ReadHeaderTimeout:            cfg.Server.ReadHeaderTimeout.D(),
			IdleTimeout:                  2 * time.Minute,
			ErrorLog:                     slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		}
	}
	fileLimit := listener.FileLimit()
	maxConns := listener.CapConnections(cfg.Server.MaxConnections, fileLimit)
	if maxConns < cfg.Server.MaxConnections {
		g.log.Warn("server.max_connections is lowered to three quarters of the open-file limit",
			"max_connections", cfg.Server.MaxConnections, "open_file_limit", fileLimit, "effective", maxConns)
	}
	client := listener.New(ln, listener.Options{MaxConns: maxConns, MaxConnsPerIP: cfg.Server.MaxConnectionsPerIP, Logger: g.log,
		TLS: g.tls.server.Config()})
	g.conns.Store(client)
	clientSrv := newServer(g.Handler)
	errc := make(chan error, 2)
	go func() { errc <- client.Serve(clientSrv) }()
	var adminSrv *http.Server
	if adminLn != nil {
		adminSrv = newServer(g.Admin)
		admin := listener.New(adminLn, listener.Options{Logger: g.log, TLS: g.tls.admin.Config()})
		go func() { errc <- admin.Serve(adminSrv) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serving: %w", err)
	}
	g.ready.Store(false)
	g.ui.Close() // the dashboards' live streams end, so that the admin listener can drain
	grace := g.Table().Config.Server.ShutdownGrace.D()
	g.log.Info("shutting down", "grace", grace.String())
	// The client listener drains first. The admin listener stays up
	// meanwhile, so that load balancers read /readyz 503 (not a refused
	// connection, which some take for a dead instance), /healthz stays 200
	// and /metrics can be scraped to the end.
	shutdown(clientSrv, grace, g.log, "requests still running at the end of the grace period were cut")
	if adminSrv != nil {
		shutdown(adminSrv, adminGrace, g.log, "admin requests still running after the client listener drained were cut")
	}
	// Every request has finished: what is queued goes to its store (or the
	// journal) before the process ends.
	if g.subs != nil {
		g.subs.stop()
	}
	g.closeObservability()
	g.tokens.Close()
	g.closeCache()
	g.closeUIRedis()
	g.guard.Close()
	g.reloadMu.Lock()
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	if rerr := g.registry.Close(rctx); rerr != nil {
		g.log.Warn("closing limiters and backends", "err", rerr)
	}
	rcancel()
	g.reloadMu.Unlock()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// adminGrace is how long admin requests (a profile, a usage report) may take
// to finish once the client listener has drained.
const adminGrace = 5 * time.Second

// shutdown shuts s down, closing what is still running after grace.
func shutdown(s *http.Server, grace time.Duration, log *slog.Logger, cut string) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		log.Warn(cut, "err", err)
		_ = s.Close()
	}
}

// listenerCerts are the listeners' TLS certificates, each nil for a
// listener that speaks plain HTTP.
type listenerCerts struct {
	server, admin *listener.Certs
}

// loadListenerCerts loads server.tls and admin.tls, so that a certificate
// that cannot be read stops the start, before anything listens. Their
// files are re-read when they change; the rest takes a restart.
func loadListenerCerts(cfg *config.Config, log *slog.Logger, now func() time.Time) (listenerCerts, error) {
	load := func(path string, t *config.TLS) (*listener.Certs, error) {
		if t == nil {
			return nil, nil
		}
		c, err := listener.LoadCerts(listener.TLSFiles{CertFile: t.CertFile, KeyFile: t.KeyFile,
			ClientCAFile: t.ClientCAFile, RequireClientCert: t.ClientAuth == "require"}, log.With("listener", path), now)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return c, nil
	}
	var lc listenerCerts
	var err error
	if lc.server, err = load("server.tls", cfg.Server.TLS); err != nil {
		return lc, err
	}
	if cfg.Admin.Listen != "" {
		lc.admin, err = load("admin.tls", cfg.Admin.TLS)
	}
	return lc, err
}

// Connections returns the client listener's counters (zero before Serve):
// connections open, accepted and refused over the caps, and requests refused
// for their framing or answered by net/http itself.
func (g *Gateway) Connections() listener.Stats {
	if l := g.conns.Load(); l != nil {
		return l.Stats()
	}
	return listener.Stats{}
}

// Close closes what NewGateway opened, for a gateway that will not serve (its
// listeners could not be opened); Serve closes it all itself when it ends.
func (g *Gateway) Close() {
	if g.ui != nil {
		g.ui.Close()
	}
	if g.subs != nil {
		g.subs.stop()
	}
	g.closeObservability()
	if g.tokens != nil {
		g.tokens.Close()
	}
	g.closeCache()
	g.closeUIRedis()
	if g.guard != nil {
		g.guard.Close()
	}
	if err := g.registry.Close(context.Background()); err != nil {
		g.log.Warn("closing limiters and backends", "err", err)
	}
}

// closeObservability closes the usage ledger (its queue goes to the store or
// the journal) and its store, and flushes the traces.
func (g *Gateway) closeObservability() {
	if g.obs.ledger != nil {
		lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := g.obs.ledger.Close(lctx); err != nil {
			g.log.Warn("closing the usage ledger", "err", err)
		}
		lcancel()
	}
	if g.obs.store != nil {
		if err := g.obs.store.Close(); err != nil {
			g.log.Warn("closing the usage store", "err", err)
		}
	}
	tctx, tcancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := g.obs.tracer.Shutdown(tctx); err != nil {
		g.log.Warn("flushing traces", "err", err)
	}
	tcancel()
}
