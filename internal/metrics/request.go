package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Request is one client request as the pipeline saw it, from the first byte
// in to the last byte out. Every string that becomes a label must come from
// a bounded set: configured names (the model as configured, "" when the
// client named an unknown one), never free text from the client; the only
// exception is ClientIP, which is why it is off by default.
type Request struct {
	// Operation is gen_ai.operation.name: chat, text_completion,
	// embeddings, responses.
	Operation string
	// Subscription, Product, Model, Deployment, Backend and Region name the
	// caller, the model and where it was served; "" when there was none
	// (a request refused before routing has no backend). Backend and Region
	// are those of the last attempt.
	Subscription, Product, Model, Deployment, Backend, Region string
	// ClientIP is the client's address, kept only with Dimensions.ClientIP.
	ClientIP string
	// Status is the HTTP status sent to the client.
	Status int
	// Stream says the client asked for a streamed (SSE) response.
	Stream bool
	// InputTokens, OutputTokens and CachedTokens are the usage the backend
	// reported (or Sluice counted); cached tokens are part of the input.
	InputTokens, OutputTokens, CachedTokens int64
	// Duration is the whole request, first byte in to last byte out.
	Duration time.Duration
	// TimeToFirstToken is the time to the first token: the first content
	// event of a stream, the first body byte otherwise; 0 when there was none.
	TimeToFirstToken time.Duration
	// Overhead is the time spent inside Sluice, excluding the time waiting
	// on backends; 0 when not measured.
	Overhead time.Duration
	// Attempts is the number of backend attempts, retries and failovers
	// included; 0 when no backend was tried.
	Attempts int
	// LimitRejection is why a limit refused the request: tokens_per_minute,
	// requests_per_minute, quota, budget, low_priority or store_unavailable;
	// "" when none did.
	LimitRejection string
}

// The token types, in the order of series.usage and series.tokens.
const (
	tokenInput = iota
	tokenOutput
	tokenCached
	numTokenTypes
)

var tokenTypes = [numTokenTypes]string{"input", "output", "cached"}

// seriesKey is the label set of one request after Dimensions and bounds are
// applied. It is comparable and holds everything the labels of every request
// metric derive from, so one lookup finds all of a request's series.
type seriesKey struct {
	operation, model string
	dims             [6]string // in dimLabels order
	reason           string    // a known rejection reason, "other" or ""
	status           int       // 100–599, or 0 for anything else
	stream           bool
}

// series holds one label set's children. The ones every request observes are
// created with it; the others on first use, so a label set that never sees
// cached tokens or a retry exports no such series.
type series struct {
	key        seriesKey
	requests   prometheus.Counter
	duration   prometheus.Observer
	rejections prometheus.Counter // nil when key.reason is ""
	retries    lazy[prometheus.Counter]
	overhead   lazy[prometheus.Observer]
	ttft, tpot lazy[prometheus.Observer]
	usage      [numTokenTypes]lazy[prometheus.Observer]
	tokens     [numTokenTypes]lazy[prometheus.Counter]
}

// lazy is a child created on first use. Two goroutines may both create it;
// the vector returns the same child to both, so either store is right.
type lazy[T any] struct{ p atomic.Pointer[T] }

func (l *lazy[T]) get(create func() T) T {
	if p := l.p.Load(); p != nil {
		return *p
	}
	v := create()
	l.p.Store(&v)
	return v
}

// labels returns the label values of a metric whose labels are own followed
// by the dimensions (dimLabels).
func (k *seriesKey) labels(own ...string) []string {
	return append(own, k.dims[:]...)
}

// Observe records a finished request. It is safe for concurrent use and
// costs one map lookup plus the metric updates once the request's label set
// has been seen.
func (m *Metrics) Observe(r *Request) {
	if m == nil || r == nil {
		return
	}
	s := m.seriesFor(r)
	s.requests.Inc()
	s.duration.Observe(r.Duration.Seconds())
	if r.Overhead > 0 {
		s.overhead.get(func() prometheus.Observer {
			return m.overhead.WithLabelValues(s.key.operation)
		}).Observe(r.Overhead.Seconds())
	}
	if s.rejections != nil {
		s.rejections.Inc()
	}
	if r.Attempts > 1 {
		s.retries.get(func() prometheus.Counter {
			return m.retries.WithLabelValues(s.key.labels(s.key.operation, s.key.model)...)
		}).Add(float64(r.Attempts - 1))
	}
	for t, n := range [numTokenTypes]int64{r.InputTokens, r.OutputTokens, r.CachedTokens} {
		if n <= 0 {
			continue
		}
		s.usage[t].get(func() prometheus.Observer {
			return m.tokenUsage.WithLabelValues(s.key.labels(tokenTypes[t], s.key.operation, s.key.model)...)
		}).Observe(float64(n))
		s.tokens[t].get(func() prometheus.Counter {
			return m.tokens.WithLabelValues(s.key.labels(tokenTypes[t], s.key.operation, s.key.model)...)
		}).Add(float64(n))
	}
	// OpenTelemetry records time to first token and per output token for
	// successful responses only; an error's first byte says nothing of the
	// model's speed.
	if r.Status < 200 || r.Status > 299 || r.TimeToFirstToken <= 0 {
		return
	}
	s.ttft.get(func() prometheus.Observer {
		return m.ttft.WithLabelValues(s.key.labels(s.key.operation, s.key.model, strconv.FormatBool(s.key.stream))...)
	}).Observe(r.TimeToFirstToken.Seconds())
	// Only a stream shows when the first token came: a plain response's
	// first byte is its whole body, and the rest is transfer time.
	if r.Stream && r.OutputTokens > 1 && r.Duration > r.TimeToFirstToken {
		s.tpot.get(func() prometheus.Observer {
			return m.tpot.WithLabelValues(s.key.labels(s.key.operation, s.key.model)...)
		}).Observe((r.Duration - r.TimeToFirstToken).Seconds() / float64(r.OutputTokens-1))
	}
}

// seriesFor returns the children of r's label set, creating them the first
// time the set is seen.
func (m *Metrics) seriesFor(r *Request) *series {
	k := m.keyOf(r)
	var buf [256]byte // a longer key spills to the heap
	return m.series.get(k.appendTo(buf[:0]), &k, m.newSeries)
}

// keyOf applies Dimensions and bounds to r's labels.
func (m *Metrics) keyOf(r *Request) seriesKey {
	d := &m.dims
	k := seriesKey{operation: r.Operation, stream: r.Stream}
	if d.Model {
		k.model = r.Model
	}
	if d.Subscription {
		k.dims[0] = r.Subscription
	}
	if d.Product {
		k.dims[1] = r.Product
	}
	if d.Deployment {
		k.dims[2] = r.Deployment
	}
	if d.Backend {
		k.dims[3] = r.Backend
	}
	if d.Region {
		k.dims[4] = r.Region
	}
	if d.ClientIP {
		k.dims[5] = r.ClientIP
	}
	if r.Status >= 100 && r.Status <= 599 {
		k.status = r.Status
	}
	if r.LimitRejection != "" {
		k.reason = rejectionReason(r.LimitRejection)
	}
	return k
}

func (m *Metrics) newSeries(k seriesKey) *series {
	s := &series{key: k}
	s.requests = m.requests.WithLabelValues(k.labels(statusClass(k.status), k.operation, k.model)...)
	s.duration = m.duration.WithLabelValues(k.labels(k.operation, k.model, errorType(k.status))...)
	if k.reason != "" {
		s.rejections = m.rejections.WithLabelValues(k.labels(k.reason, k.operation, k.model)...)
	}
	return s
}

// statusClass returns the class label of a status from seriesKey.status.
func statusClass(status int) string {
	switch status / 100 {
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	case 5:
		return "5xx"
	}
	return "other" // 1xx, or no valid status (0)
}

// errorType returns the error_type label of a status, following
// OpenTelemetry's HTTP convention for error.type: "" for a success, the
// status code for a 4xx or 5xx, "_OTHER" when there was no valid status.
func errorType(status int) string {
	switch {
	case status >= 400:
		return strconv.Itoa(status)
	case status >= 200:
		return ""
	}
	return "_OTHER"
}

// rejectionReason bounds the reason label to the reasons the pipeline knows.
func rejectionReason(r string) string {
	switch r {
	case "tokens_per_minute", "requests_per_minute", "quota", "budget", "low_priority", "store_unavailable":
		return r
	}
	return "other"
}

// QuotaRemaining records the tokens left in a subscription's quota period,
// as the limiter reported them for the subscription's latest request. With
// Dimensions.Subscription off it records nothing: one series shared by all
// subscriptions would say nothing true.
func (m *Metrics) QuotaRemaining(subscription string, tokens int64) {
	if m == nil || !m.dims.Subscription {
		return
	}
	m.quota.WithLabelValues(subscription).Set(float64(tokens))
}
