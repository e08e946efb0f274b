package app

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/credential"
	"github.com/sluice-gateway/sluice/internal/metrics"
	"github.com/sluice-gateway/sluice/internal/oidc"
	"github.com/sluice-gateway/sluice/internal/trace"
	"github.com/sluice-gateway/sluice/internal/usage"
)

// observability is what the gateway keeps for metering and metrics: the
// usage ledger and the Prometheus metrics. Both are set up from the first
// config; changes to usage.store, usage.journal and metrics.* take effect on
// restart.
type observability struct {
	ledger  *usage.Ledger
	store   usage.Store // the ledger's; closed after it
	tracer  *trace.Tracer
	metrics *metrics.Metrics
}

// openLedger opens the usage store and starts the ledger. A SQLite file that
// cannot be opened is an error, as is a PostgreSQL URL that does not parse.
// A PostgreSQL server that does not answer is not: the gateway starts, the
// ledger keeps the records in its journal, and the schema is migrated and the
// journal replayed once the server answers. /readyz and sluice_usage_degraded
// say so meanwhile.
func openLedger(ctx context.Context, cfg *config.Config, g *Gateway) (*usage.Ledger, usage.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	store, err := usage.Open(ctx, cfg.Usage.Store)
	if err != nil {
		return nil, nil, fmt.Errorf("usage.store: %w", err)
	}
	l, err := usage.NewLedger(usage.Options{Store: store, Journal: cfg.Usage.Journal, Logger: g.log})
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("usage.journal: %w", err)
	}
	return l, store, nil
}

// ledgerDegraded reports whether the usage store does not answer, for
// /readyz.
func (o *observability) ledgerDegraded() bool { return o.ledger.Stats().Degraded }

// newMetrics builds the metrics when metrics.prometheus is on; nil otherwise.
func newMetrics(cfg *config.Config, g *Gateway) (*metrics.Metrics, error) {
	if !cfg.Metrics.Prometheus {
		return nil, nil
	}
	dims, err := metrics.ParseDimensions(cfg.Metrics.Dimensions)
	if err != nil {
		return nil, fmt.Errorf("metrics.dimensions: %w", err)
	}
	return metrics.New(metrics.Options{
		Dimensions:       dims,
		Backends:         g.backendStates,
		Guard:            g.guardStats,
		LimitStoreErrors: func() uint64 { _, n := g.registry.LimitStats(); return n },
		Limits: func() metrics.LimitStats {
			s, _ := g.registry.LimitStats()
			return metrics.LimitStats{StoreDown: s.StoreDown, QueueLen: s.QueueLen, Queued: s.Queued, Landed: s.Landed,
				Dropped: s.Dropped, Expired: s.Expired, RetryErrors: s.RetryErrors,
				FallbackAdmitted: s.FallbackAdmitted, FallbackRefused: s.FallbackRefused}
		},
		Ledger: func() metrics.LedgerStats {
			s := g.obs.ledger.Stats()
			return metrics.LedgerStats{QueueDepth: s.QueueDepth, JournalBytes: s.JournalBytes,
				WriteErrors: uint64(s.WriteErrors), Dropped: uint64(s.Dropped), Degraded: s.Degraded}
		},
		Tokens: func() []metrics.TokenProviderStats {
			var out []metrics.TokenProviderStats
			for _, p := range g.tokens.Stats() {
				ps := metrics.TokenProviderStats{Name: p.Name, Fetches: p.Fetches, FetchErrors: p.FetchErrors, Keys: p.Keys,
					Results: map[string]uint64{}}
				for i, name := range oidc.Checks() {
					ps.Results[name] = p.Results[i]
				}
				out = append(out, ps)
			}
			return out
		},
		Connections: func() metrics.ConnectionStats {
			s := g.Connections()
			return metrics.ConnectionStats{Open: s.Open, Accepted: s.Accepted, RefusedMax: s.RefusedMax,
				RefusedPerIP: s.RefusedPerIP, Ambiguous: s.Ambiguous, Malformed: s.Malformed,
				PlainHTTP: s.PlainHTTP, Handshake: s.HandshakeFailed}
		},
	}), nil
}

// backendStates reads the live backends of the table in force, for a scrape.
func (g *Gateway) backendStates() []metrics.BackendState {
	t := g.Table()
	now := g.now()
	out := make([]metrics.BackendState, 0, len(t.Config.Backends))
	for _, c := range t.Config.Backends {
		b := t.Backends[c.Name]
		st := metrics.BackendState{
			Name: b.Name, Region: b.Region, Breaker: b.State.Breaker.Snapshot(now).State.String(),
			InFlight: b.State.InFlight(), Latency: b.State.Latency(),
			Requests: b.State.Requests(), Errors: b.State.Errors(), CredentialErrors: b.State.CredentialErrors(),
		}
		if cc, ok := b.Credential().(*credential.Cache); ok {
			st.TokenCredential = true
			st.CredentialRefreshes, st.CredentialRefreshErrors = cc.Stats()
			if exp := cc.Expiry(); !exp.IsZero() {
				st.CredentialExpiry = exp.Sub(now)
			}
		}
		out = append(out, st)
	}
	return out
}

// newTracer starts OTLP trace export when tracing.endpoint is set; nil
// (tracing off, no cost) otherwise.
func newTracer(ctx context.Context, cfg *config.Config) (*trace.Tracer, error) {
	tc := cfg.Tracing
	if tc.Endpoint == "" {
		return nil, nil
	}
	headers := make(map[string]string, len(tc.Headers))
	for k, v := range tc.Headers {
		headers[k] = v.Reveal()
	}
	ratio := 1.0
	if tc.SampleRatio != nil {
		ratio = *tc.SampleRatio
	}
	t, err := trace.New(ctx, trace.Options{Endpoint: tc.Endpoint, Protocol: tc.Protocol, Insecure: tc.Insecure,
		Headers: headers, SampleRatio: ratio, ServiceName: tc.ServiceName, Version: versionString()})
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	return t, nil
}
