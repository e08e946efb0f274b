// Package metrics is Sluice's Prometheus instrumentation: request, token and
// latency metrics named after OpenTelemetry's GenAI semantic conventions where
// they name a thing, and collectors that read backend, limiter and usage state
// live at scrape time. Each Metrics has its own registry, served by Handler
// on the admin listener, so two gateways in one process (tests) never collide
// and nothing is registered at import time.
//
// The package is a mechanism: the pipeline calls Observe once per client
// request with plain values, and the wiring hands it functions that read live
// state. It imports no other Sluice package.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Dimensions says which labels the request metrics keep, from the config's
// metrics.dimensions. A label that is off is always the empty string, so
// every request that differs only in it adds to the same series. The zero
// value keeps none of them.
type Dimensions struct {
	Subscription, Product, Model, Deployment, Backend, Region, ClientIP bool
}

// ParseDimensions turns the names of metrics.dimensions into Dimensions.
// The names are subscription, product, model, deployment, backend, region
// and client_ip; any other name, or one listed twice, is an error.
func ParseDimensions(names []string) (Dimensions, error) {
	var d Dimensions
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			return Dimensions{}, fmt.Errorf("metrics dimension %q listed twice", n)
		}
		seen[n] = true
		switch n {
		case "subscription":
			d.Subscription = true
		case "product":
			d.Product = true
		case "model":
			d.Model = true
		case "deployment":
			d.Deployment = true
		case "backend":
			d.Backend = true
		case "region":
			d.Region = true
		case "client_ip":
			d.ClientIP = true
		default:
			return Dimensions{}, fmt.Errorf("unknown metrics dimension %q (known: subscription, product, model, deployment, backend, region, client_ip)", n)
		}
	}
	return d, nil
}

// BackendSource returns the live backends of the routing table in force. It
// is called at every scrape, from the scraping goroutine, so it must be safe
// for concurrent use and cheap: a walk over the table reading atomics.
type BackendSource func() []BackendState

// BackendState is one backend as a scrape sees it.
type BackendState struct {
	Name, Region string
	// Breaker is the breaker's state: "closed", "open" or "half-open".
	Breaker string
	// InFlight is the number of requests being served now.
	InFlight int64
	// Latency is the moving average of time to first byte; 0 before the
	// first response.
	Latency time.Duration
	// Requests and Errors count since the backend's state was created; they
	// restart at 0 when a reload replaces the backend, which Prometheus
	// handles as a counter reset.
	Requests, Errors uint64
	// CredentialErrors counts the requests not sent because the backend's
	// credential could not be had; like Requests, since the state began.
	CredentialErrors uint64
	// TokenCredential is set for a backend with a token credential (managed
	// identity, client credentials, OAuth2); the fields below are read
	// only then. CredentialRefreshes and CredentialRefreshErrors count the
	// token fetches that succeeded and failed, CredentialExpiry is how long
	// the token in force has left (0: none).
	TokenCredential                              bool
	CredentialRefreshes, CredentialRefreshErrors uint64
	CredentialExpiry                             time.Duration
}

// TokenProviderStats is an auth.jwt provider's counters as a scrape sees
// them.
type TokenProviderStats struct {
	Name string
	// Results counts the tokens judged, by result (accepted, expired, ...).
	Results map[string]uint64
	// Fetches and FetchErrors count its key set fetches; Keys is the number
	// of keys known.
	Fetches, FetchErrors uint64
	Keys                 int
}

// LedgerStats is the usage ledger's state as a scrape sees it.
type LedgerStats struct {
	QueueDepth   int    // usage records waiting to be written
	JournalBytes int64  // size of the on-disk journal of records the store has not committed
	WriteErrors  uint64 // failed writes to the usage store since start
	Dropped      uint64 // records lost because neither the journal nor the store took them
	Degraded     bool   // the usage store does not answer: records wait in the journal
}

// ConnectionStats are the client listener's counters as a scrape sees them.
type ConnectionStats struct {
	Open                     int    // client connections open now
	Accepted                 uint64 // connections handed to the server
	RefusedMax, RefusedPerIP uint64 // refused over server.max_connections, and over server.max_connections_per_ip
	Ambiguous, Malformed     uint64 // requests refused for ambiguous framing, and for what net/http could not read
	PlainHTTP, Handshake     uint64 // TLS handshakes failed: plain HTTP sent to the TLS listener, and the others
}

// LimitStats are the limiter's queue of settlements and its fallback, as a
// scrape sees them (see limit.Stats).
type LimitStats struct {
	StoreDown        bool   // a store call failed and the queue has not drained: fail_open counts on its own
	QueueLen         int    // settlements waiting for the store
	Queued           uint64 // settlements ever queued
	Landed           uint64 // queued settlements the store took
	Dropped          uint64 // queued settlements given up: the store's counts lack them
	Expired          uint64 // queued settlements whose windows ended first
	RetryErrors      uint64 // failed sends of queued settlements
	FallbackAdmitted uint64 // requests the instance's own count admitted while the store was down
	FallbackRefused  uint64 // requests it refused
}

// Options configures New.
type Options struct {
	// Dimensions are the labels request metrics keep.
	Dimensions Dimensions
	// Backends reads the live backends; nil exports no backend metrics.
	Backends BackendSource
	// LimitStoreErrors reads the limiter's count of failed store calls
	// (limit.Limiter.StoreErrors); nil exports no such metric.
	LimitStoreErrors func() uint64
	// Ledger reads the usage ledger's state; nil exports no usage metrics.
	Ledger func() LedgerStats
	// Connections reads the client listener's counters; nil exports no
	// connection metrics.
	Connections func() ConnectionStats
	// Limits reads the limiter's settlement queue and fallback; nil exports
	// no such metrics.
	Limits func() LimitStats
	// Tokens reads the auth.jwt providers' counters; nil exports no token
	// metrics.
	Tokens func() []TokenProviderStats
	// Guard reads the guardrails' counters; nil exports no guard metrics.
	Guard func() GuardStats
}

// Metrics holds Sluice's metrics and their registry. Create it with New; its
// methods are safe for concurrent use, and Observe and QuotaRemaining do
// nothing on a nil *Metrics, so a gateway without metrics passes nil.
type Metrics struct {
	reg  *prometheus.Registry
	dims Dimensions

	requests   *prometheus.CounterVec
	tokens     *prometheus.CounterVec
	retries    *prometheus.CounterVec
	rejections *prometheus.CounterVec
	tokenUsage *prometheus.HistogramVec
	duration   *prometheus.HistogramVec
	ttft       *prometheus.HistogramVec
	tpot       *prometheus.HistogramVec
	overhead   *prometheus.HistogramVec
	quota      *prometheus.GaugeVec

	// series caches the label-curried children per label set, so Observe
	// does one map lookup instead of one label hash per metric.
	series seriesCache
}

// Bucket boundaries. The GenAI ones are OpenTelemetry's recommended
// boundaries, extended where LLM gateways see values beyond them.
var (
	// tokenBuckets are gen_ai.client.token.usage's boundaries, unchanged.
	tokenBuckets = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	// durationBuckets are gen_ai.server.request.duration's boundaries
	// (0.01 to 81.92 s, doubling), extended to 327.68 s because reasoning
	// models answer in minutes.
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 163.84, 327.68}
	// ttftBuckets are gen_ai.server.time_to_first_token's boundaries,
	// extended to 80 s for reasoning models that think before the first token.
	ttftBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80}
	// tpotBuckets are gen_ai.server.time_per_output_token's boundaries,
	// extended down to 1 ms because fast models stream hundreds of tokens a
	// second.
	tpotBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
	// overheadBuckets reach down to 10 µs: a request that needs no store
	// round trip spends tens of microseconds in Sluice.
	overheadBuckets = []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
)

// dimLabels are the dimension labels every request metric carries after its
// own labels and its model label; see seriesKey.labels.
var dimLabels = []string{"subscription", "product", "deployment", "backend", "region", "client_ip"}

func labels(first ...string) []string { return append(first, dimLabels...) }

// New creates the metrics on a new registry, together with the standard Go
// runtime and process collectors.
func New(opts Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), dims: opts.Dimensions}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_requests_total",
		Help: "Client requests served, by status class (2xx, 3xx, 4xx, 5xx, other).",
	}, labels("status_class", "operation", "model"))
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_tokens_total",
		Help: "Tokens used, by type (input, output, cached; cached tokens are part of input).",
	}, labels("type", "operation", "model"))
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_retries_total",
		Help: "Backend attempts beyond the first (retries and failovers); backend is the one that answered last.",
	}, labels("operation", "model"))
	m.rejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_limit_rejections_total",
		Help: "Requests refused by a limit, by reason.",
	}, labels("reason", "operation", "model"))
	m.tokenUsage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gen_ai_client_token_usage",
		Help:    "Tokens used per request (OpenTelemetry gen_ai.client.token.usage).",
		Buckets: tokenBuckets,
	}, labels("gen_ai_token_type", "gen_ai_operation_name", "gen_ai_request_model"))
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gen_ai_server_request_duration_seconds",
		Help:    "Time from request to the last byte of the response (OpenTelemetry gen_ai.server.request.duration).",
		Buckets: durationBuckets,
	}, labels("gen_ai_operation_name", "gen_ai_request_model", "error_type"))
	m.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gen_ai_server_time_to_first_token_seconds",
		Help:    "Time from request to the first token of a successful response (OpenTelemetry gen_ai.server.time_to_first_token).",
		Buckets: ttftBuckets,
	}, labels("gen_ai_operation_name", "gen_ai_request_model", "gen_ai_request_stream"))
	m.tpot = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gen_ai_server_time_per_output_token_seconds",
		Help:    "Time per output token after the first, of successful streamed responses (OpenTelemetry gen_ai.server.time_per_output_token).",
		Buckets: tpotBuckets,
	}, labels("gen_ai_operation_name", "gen_ai_request_model"))
	m.overhead = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_overhead_seconds",
		Help:    "Time a request spent inside Sluice, excluding the time waiting on backends.",
		Buckets: overheadBuckets,
	}, []string{"operation"})
	m.quota = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_quota_remaining_tokens",
		Help: "Tokens left in the subscription's quota period, as of its last request.",
	}, []string{"subscription"})

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.tokens, m.retries, m.rejections,
		m.tokenUsage, m.duration, m.ttft, m.tpot, m.overhead, m.quota,
	)
	if opts.Backends != nil {
		m.reg.MustRegister(newBackendCollector(opts.Backends))
	}
	if opts.LimitStoreErrors != nil {
		f := opts.LimitStoreErrors
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sluice_limit_store_errors_total",
			Help: "Limiter store calls that failed (Redis errors and timeouts), answered by the fail_open or fail_closed policy.",
		}, func() float64 { return float64(f()) }))
	}
	if opts.Ledger != nil {
		m.reg.MustRegister(newLedgerCollector(opts.Ledger))
	}
	if opts.Tokens != nil {
		m.reg.MustRegister(newTokenCollector(opts.Tokens))
	}
	if opts.Connections != nil {
		m.reg.MustRegister(newConnectionCollector(opts.Connections))
	}
	if opts.Guard != nil {
		m.reg.MustRegister(newGuardCollector(opts.Guard))
	}
	if opts.Limits != nil {
		m.reg.MustRegister(newLimitCollector(opts.Limits))
	}
	return m
}

// Registry returns the registry the metrics live on, for a caller that adds
// its own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format. A
// collector that fails costs its own metrics, logged through slog's default
// logger, not the whole scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(slog.Default().Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
}
