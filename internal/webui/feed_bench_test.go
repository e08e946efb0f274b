package webui

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/internal/route"
)

// BenchmarkFeedSample is the live feed's cost a second: one sample of a
// registry holding request, token, latency and TTFT series for 40 label
// sets, sent to 50 open streams. The feed samples once a second whatever
// the number of dashboards.
func BenchmarkFeedSample(b *testing.B) {
	reg := prometheus.NewRegistry()
	labels := []string{"status_class", "operation", "model", "subscription", "backend"}
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_requests_total"}, labels)
	toks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_tokens_total"}, append([]string{"type"}, labels...))
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_server_request_duration_seconds",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}, labels)
	ttft := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_server_time_to_first_token_seconds",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 17)}, append([]string{"gen_ai_request_stream"}, labels...))
	reg.MustRegister(reqs, toks, dur, ttft)
	for i := range 40 {
		l := []string{"2xx", "chat", "gpt-4o", fmt.Sprintf("team-%d", i%10), fmt.Sprintf("backend-%d", i%4)}
		reqs.WithLabelValues(l...).Add(100)
		toks.WithLabelValues(append([]string{"input"}, l...)...).Add(1000)
		toks.WithLabelValues(append([]string{"output"}, l...)...).Add(1000)
		dur.WithLabelValues(l...).Observe(0.3)
		ttft.WithLabelValues(append([]string{"true"}, l...)...).Observe(0.05)
	}
	f := newFeed(Options{Table: func() *route.Table { return nil }, Gatherer: reg, Now: time.Now, Interval: time.Second, Window: 15 * time.Minute})
	subs := make([]*subscriber, 50)
	for i := range subs {
		subs[i], _, _ = f.subscribe()
	}
	b.ReportAllocs()
	for b.Loop() {
		f.sample()
		for _, s := range subs {
			<-s.ch
		}
	}
}
