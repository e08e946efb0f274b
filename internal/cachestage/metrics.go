package cachestage

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/internal/cache"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// Metrics are the response cache's metrics. Safe for concurrent use.
type Metrics struct {
	lookups         *prometheus.CounterVec
	tokensSaved     prometheus.Counter
	coalesced       prometheus.Counter
	stored          prometheus.Counter
	storeErrors     prometheus.Counter
	embeddings      prometheus.Counter
	embedErrors     prometheus.Counter
	semanticSeconds prometheus.Histogram
}

// NewMetrics creates the metrics and registers them on reg (nil: made but
// not registered), with gauges that read the store's entries and bytes at
// scrape time (store may be nil).
func NewMetrics(reg prometheus.Registerer, store cache.Store) *Metrics {
	m := &Metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_cache_lookups_total",
			Help: "Response cache lookups by kind (exact, semantic, none) and result (hit-exact, hit-semantic, miss, bypass)."},
			[]string{"kind", "result"}),
		tokensSaved: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_cache_tokens_saved_total",
			Help: "Tokens (prompt plus completion) that cache hits did not spend."}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_cache_coalesced_total",
			Help: "Misses that waited for an identical request in flight instead of calling a backend."}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_cache_stores_total",
			Help: "Answers stored in the response cache."}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_cache_store_errors_total",
			Help: "Calls to the cache store that failed; each request went on as a miss."}),
		embeddings: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_cache_embedding_calls_total",
			Help: "Embedding calls made for semantic lookups."}),
		embedErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_cache_embedding_errors_total",
			Help: "Embedding calls for semantic lookups that failed; the request went on as a miss."}),
		semanticSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_cache_semantic_lookup_seconds",
			Help:    "Time of a semantic lookup: the embedding call and the index search.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.lookups, m.tokensSaved, m.coalesced, m.stored, m.storeErrors, m.embeddings, m.embedErrors, m.semanticSeconds)
	if store != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_cache_entries",
				Help: "Entries held in this instance's cache store."},
				func() float64 { n, _ := store.Stats(); return float64(n) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_cache_bytes",
				Help: "Bytes held in this instance's cache store (answers, and the semantic index)."},
				func() float64 { _, b := store.Stats(); return float64(b) }),
		)
	}
	return m
}

func (m *Metrics) lookup(kind, result string) { m.lookups.WithLabelValues(kind, result).Inc() }

func (m *Metrics) saved(u wire.Usage) { m.tokensSaved.Add(float64(max(u.Total, 0))) }
