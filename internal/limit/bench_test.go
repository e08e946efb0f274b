package limit

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/sluice-gateway/sluice/internal/redistest"
)

// benchRules are the rule sets the benchmarks admit against, with limits out
// of reach so every request is admitted and settled.
var benchRules = []struct {
	name  string
	rules []*Rule
}{
	{"tpm", []*Rule{tpm("t", 1<<60)}},
	{"tpm+rpm+quota", []*Rule{{ID: "a", TokensPerMinute: 1 << 60, RequestsPerMinute: 1 << 60, TokenQuota: 1 << 60, QuotaPeriod: Month}}},
}

// admitSettle is one request's whole cost: admit with an estimate, settle
// with less.
func admitSettle(b *testing.B, l *Limiter, r Request) {
	d := l.Admit(context.Background(), r)
	if !d.Allowed {
		b.Fatalf("refused: %+v %v", d.Denial, d.StoreError)
	}
	if _, err := l.Settle(context.Background(), d.Reservation, 800, r.Now); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMemoryAdmitSettle runs the hot path from every P at once, all on
// one subscription (one shard, contended) and on a subscription per
// goroutine (the shards' purpose).
func BenchmarkMemoryAdmitSettle(b *testing.B) {
	for _, br := range benchRules {
		for _, mode := range []string{"one subscription", "subscription per goroutine"} {
			b.Run(br.name+"/"+mode, func(b *testing.B) {
				l := New(Options{Store: NewMemory()})
				var n atomic.Int64
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					sub := "alice"
					if mode != "one subscription" {
						sub = "sub" + strconv.FormatInt(n.Add(1), 10)
					}
					r := Request{Rules: br.rules, Subject: Subject{Subscription: sub, Product: "gold"}, Tokens: 1000, Now: clock("12:00:00")}
					for pb.Next() {
						admitSettle(b, l, r)
					}
				})
			})
		}
	}
}

// BenchmarkRedisAdmitSettle is the same through a local redis-server: two
// round trips per request, one after the other and from every P at once.
func BenchmarkRedisAdmitSettle(b *testing.B) {
	srv := redistest.Start(b)
	for _, br := range benchRules {
		r := Request{Rules: br.rules, Subject: Subject{Subscription: "alice", Product: "gold"}, Tokens: 1000, Now: clock("12:00:00")}
		b.Run(br.name+"/serial", func(b *testing.B) {
			l := New(Options{Store: newRedisStore(b, srv)})
			b.ReportAllocs()
			for b.Loop() {
				admitSettle(b, l, r)
			}
		})
		b.Run(br.name+"/parallel", func(b *testing.B) {
			l := New(Options{Store: newRedisStore(b, srv)})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					admitSettle(b, l, r)
				}
			})
		})
	}
}
