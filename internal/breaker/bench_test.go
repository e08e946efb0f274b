package breaker

import (
	"testing"
	"time"
)

// benchRules are the rule sets the benchmarks run with: the default config
// rule (count mode), a percentage rule, and both.
var benchRules = []struct {
	name  string
	rules []Rule
}{
	{"count", []Rule{count(5)}},
	{"percentage", []Rule{{Percentage: 50, MinRequests: 10, Interval: time.Minute, Statuses: s5xx, Timeouts: true}}},
	{"count+percentage", []Rule{count(5), {Percentage: 50, MinRequests: 10, Interval: time.Minute, Statuses: s5xx, Timeouts: true}}},
}

func BenchmarkAvailable(b *testing.B) {
	br := New("b", []Rule{count(5)}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !br.Available(t0) {
				b.Fatal("not available")
			}
		}
	})
}

// BenchmarkAllowDone is the closed state's hot path: ask, then report a
// success.
func BenchmarkAllowDone(b *testing.B) {
	for _, bb := range benchRules {
		b.Run(bb.name, func(b *testing.B) {
			br := New("b", bb.rules, nil)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tk, ok := br.Allow(t0)
					if !ok {
						b.Fatal("refused")
					}
					br.Done(tk, t0, Outcome{Status: 200})
				}
			})
		})
	}
}

// BenchmarkFailure reports failures that never trip (the threshold is out of
// reach): counting and checking the rules without a state change.
func BenchmarkFailure(b *testing.B) {
	br := New("b", []Rule{count(1 << 30)}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tk, _ := br.Allow(t0)
			br.Done(tk, t0, Outcome{Status: 429})
		}
	})
}

// BenchmarkAllowOpen is a refusal while the trip lasts.
func BenchmarkAllowOpen(b *testing.B) {
	br := New("b", nil, nil)
	br.ForceOpen(t0, time.Hour, "bench")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := br.Allow(t0); ok {
				b.Fatal("allowed")
			}
		}
	})
}
