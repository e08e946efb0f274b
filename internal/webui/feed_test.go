package webui

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/internal/route"
)

// TestFeedRates checks the snapshot's rates, quantiles and cache ratio
// from two samples of a registry.
func TestFeedRates(t *testing.T) {
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_requests_total"}, []string{"status_class"})
	toks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_tokens_total"}, []string{"type"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_server_request_duration_seconds",
		Buckets: []float64{0.1, 0.2, 0.4, 0.8}}, []string{"model"})
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_cache_lookups_total"}, []string{"kind", "result"})
	quota := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_quota_remaining_tokens"}, []string{"subscription"})
	reg.MustRegister(reqs, toks, dur, cache, quota)
	f := newFeed(Options{Table: func() *route.Table { return nil }, Gatherer: reg, Now: time.Now, Interval: time.Second, Window: time.Minute})
	s0, c0 := f.snapshot(time.Now())
	f.history = append(f.history, c0)
	_ = s0
	reqs.WithLabelValues("2xx").Add(8)
	reqs.WithLabelValues("5xx").Add(2)
	toks.WithLabelValues("input").Add(60)
	toks.WithLabelValues("output").Add(40)
	toks.WithLabelValues("cached").Add(1000) // part of input: not added again
	for range 9 {
		dur.WithLabelValues("gpt-4o").Observe(0.15)
	}
	dur.WithLabelValues("gpt-4o").Observe(0.7)
	cache.WithLabelValues("exact", "hit-exact").Add(3)
	cache.WithLabelValues("semantic", "hit-semantic").Add(1)
	cache.WithLabelValues("exact", "miss").Add(4)
	cache.WithLabelValues("none", "bypass").Add(100)
	quota.WithLabelValues("team-a").Set(1234)
	s, c := f.snapshot(time.Now())
	f.history = append(f.history, c)
	f.rates(&s)
	if s.RequestsPerSecond != 10 || s.ErrorsPerSecond["5xx"] != 2 || s.TokensPerMinute != 6000 {
		t.Errorf("rates: %v req/s, %v 5xx/s, %v tokens/min; want 10, 2, 6000", s.RequestsPerSecond, s.ErrorsPerSecond["5xx"], s.TokensPerMinute)
	}
	if s.LatencyP50 == nil || *s.LatencyP50 <= 0.1 || *s.LatencyP50 > 0.2 {
		t.Errorf("p50 = %v; want within the 0.1-0.2 bucket", s.LatencyP50)
	}
	if s.LatencyP95 == nil || *s.LatencyP95 <= 0.4 || *s.LatencyP95 > 0.8 {
		t.Errorf("p95 = %v; want within the 0.4-0.8 bucket", s.LatencyP95)
	}
	if s.CacheHitRatio == nil || math.Abs(*s.CacheHitRatio-0.5) > 1e-9 {
		t.Errorf("cache hit ratio = %v; want 0.5 (bypasses are no lookups)", s.CacheHitRatio)
	}
	if s.TTFTP50 != nil {
		t.Errorf("TTFT p50 = %v; want null without observations", *s.TTFTP50)
	}
	if s.QuotaRemaining["team-a"] != 1234 {
		t.Errorf("quota remaining = %v; want team-a 1234", s.QuotaRemaining)
	}
}
