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

	"github.com/sluice-gateway/sluice/internal/admin"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/health"
	"github.com/sluice-gateway/sluice/internal/proxy"
	"github.com/sluice-gateway/sluice/internal/route"
)

// Gateway is a running Sluice: the routing table in force, swapped whole on
// reload, and the client and admin HTTP servers. It is safe for concurrent use.
type Gateway struct {
	source func() (*config.Config, error)
	log    *slog.Logger
	now    func() time.Time
	obs    observability

	table    atomic.Pointer[route.Table]
	health   *health.Checker
	reloadMu sync.Mutex // serialises reloads: guards the compile-and-swap and counters
	counters counterStore
	ready    atomic.Bool

	// Handler is the client-facing API.
	Handler http.Handler
	// Admin is the admin listener's handler.
	Admin http.Handler
}

// NewGateway loads a first config from source and compiles it. Reload calls
// source again. now is the clock of breakers and latency (nil: time.Now).
func NewGateway(source func() (*config.Config, error), log *slog.Logger, now func() time.Time) (*Gateway, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	g := &Gateway{source: source, log: log, now: now}
	cfg, err := source()
	if err != nil {
		return nil, err
	}
	if g.obs.metrics, err = newMetrics(cfg, g); err != nil {
		return nil, err
	}
	if g.obs.tracer, err = newTracer(context.Background(), cfg); err != nil {
		return nil, err
	}
	lim, commit, err := g.limiterFor(cfg)
	if err != nil {
		return nil, err
	}
	t, err := route.Compile(cfg, nil, route.Env{Log: log, Limiter: lim})
	if err != nil {
		closeStore(lim.Store(), log)
		return nil, err
	}
	if g.obs.ledger, g.obs.store, err = openLedger(context.Background(), cfg, g); err != nil {
		closeStore(lim.Store(), log)
		return nil, err
	}
	commit()
	t.Activate()
	g.table.Store(t)
	g.health = health.New(log, now)
	g.health.Sync(t.Backends)
	g.ready.Store(true)
	g.Handler = proxy.New(proxy.Options{Table: g.Table, Logger: log, Now: now, Metrics: g.obs.metrics, Ledger: g.obs.ledger, Tracer: g.obs.tracer})
	ao := admin.Options{Table: g.Table, Reload: g.Reload, Ready: g.ready.Load, LedgerDegraded: g.obs.ledgerDegraded,
		Logger: log, Now: now, Usage: g.obs.ledger.Report}
	if g.obs.metrics != nil {
		ao.Metrics = g.obs.metrics.Handler()
	}
	g.Admin = admin.New(ao)
	return g, nil
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
	lim, commit, err := g.limiterFor(cfg)
	if err != nil {
		return err
	}
	next, err := route.Compile(cfg, prev, route.Env{Log: g.log, Limiter: lim})
	if err != nil {
		if lim.Store() != g.counters.store {
			closeStore(lim.Store(), g.log)
		}
		return err
	}
	next.Activate()
	g.obs.limitErrors.Add(prev.Limiter.StoreErrors())
	g.table.Store(next)
	commit()
	g.health.Sync(next.Backends)
	route.Release(prev, next)
	g.log.Info("config reloaded", "backends", len(cfg.Backends), "subscriptions", len(cfg.Subscriptions))
	return nil
}

// Serve serves the client API on ln and the admin API on adminLn (which may
// be nil) until ctx ends, then shuts down gracefully: it stops accepting,
// lets requests and streams in flight finish for up to server.shutdown_grace,
// and closes what is left.
func (g *Gateway) Serve(ctx context.Context, ln, adminLn net.Listener) error {
	cfg := g.Table().Config
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout.D(),
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		}
	}
	servers := []*http.Server{newServer(g.Handler)}
	listeners := []net.Listener{ln}
	if adminLn != nil {
		servers = append(servers, newServer(g.Admin))
		listeners = append(listeners, adminLn)
	}
	errc := make(chan error, len(servers))
	for i, s := range servers {
		go func() { errc <- s.Serve(listeners[i]) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serving: %w", err)
	}
	g.ready.Store(false)
	grace := g.Table().Config.Server.ShutdownGrace.D()
	g.log.Info("shutting down", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if serr := s.Shutdown(sctx); serr != nil {
				g.log.Warn("requests still running at the end of the grace period were cut", "err", serr)
				_ = s.Close()
			}
		}()
	}
	wg.Wait()
	g.health.Close()
	// Every request has finished: what is queued goes to the store (or the
	// journal) before the process ends.
	lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
	if lerr := g.obs.ledger.Close(lctx); lerr != nil {
		g.log.Warn("closing the usage ledger", "err", lerr)
	}
	lcancel()
	if serr := g.obs.store.Close(); serr != nil {
		g.log.Warn("closing the usage store", "err", serr)
	}
	tctx, tcancel := context.WithTimeout(context.Background(), 5*time.Second)
	if terr := g.obs.tracer.Shutdown(tctx); terr != nil {
		g.log.Warn("flushing traces", "err", terr)
	}
	tcancel()
	g.reloadMu.Lock()
	closeStore(g.counters.store, g.log)
	g.reloadMu.Unlock()
	for _, b := range g.Table().Backends {
		b.State.Close()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
