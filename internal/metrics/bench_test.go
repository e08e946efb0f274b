package metrics

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkObserve is the per-request cost on the hot path, with every
// metric a streamed chat request touches. In parallel, goroutines share
// sluice_overhead_seconds (one series per operation) whatever the label
// sets, and all series with one label set: the cost above the serial one is
// those atomics' cache lines moving between cores.
func BenchmarkObserve(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("label sets=%d", n), func(b *testing.B) {
			m := New(Options{Dimensions: all})
			reqs := make([]*Request, n)
			for i := range reqs {
				reqs[i] = streamed()
				reqs[i].Subscription = fmt.Sprintf("team-%d", i)
				m.Observe(reqs[i]) // warm: the first request of a label set creates its series
			}
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1))
				for pb.Next() {
					m.Observe(reqs[i%n])
					i++
				}
			})
		})
	}
}

func BenchmarkQuotaRemaining(b *testing.B) {
	m := New(Options{Dimensions: all})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.QuotaRemaining("team-a", 1000)
		}
	})
}
