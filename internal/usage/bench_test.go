package usage

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/sluice-gateway/sluice/internal/pgtest"
)

// discardStore takes every batch at once, so a benchmark measures the
// ledger, not a database.
type discardStore struct{ n atomic.Int64 }

func (s *discardStore) Write(_ context.Context, b []Record) error {
	s.n.Add(int64(len(b)))
	return nil
}
func (s *discardStore) Report(context.Context, Query) ([]Row, error) { return nil, nil }
func (s *discardStore) Close() error                                 { return nil }

// BenchmarkAdd is the request path's cost: enqueueing one record from many
// goroutines at once.
func BenchmarkAdd(b *testing.B) {
	l, err := NewLedger(Options{Store: &discardStore{}, Journal: journalPath(b), QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	r := record(1)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Add(r)
		}
	})
	b.StopTimer()
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	// The queue must never have overflowed into the journal, or this
	// measured the slow path.
	b.ReportMetric(float64(l.Stats().Journaled)/float64(b.N), "journaled/op")
}

// BenchmarkStoreWrite is the writer's cost per record, in batches of 500.
// Run it with -benchtime 300x or more: an index's cost shows as it grows.
func BenchmarkStoreWrite(b *testing.B) {
	for _, kind := range []struct {
		name string
		dsn  func(b *testing.B) string
	}{
		{"sqlite", func(b *testing.B) string { return "sqlite:" + b.TempDir() + "/usage.db" }},
		{"postgres", func(b *testing.B) string { return pgtest.Start(b).URL() }},
	} {
		b.Run(kind.name, func(b *testing.B) {
			s := open(b, kind.dsn(b))
			batch := make([]Record, 500)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				for j := range batch {
					batch[j] = record(i*len(batch) + j)
					batch[j].RequestID = NewID() // as the gateway makes them
				}
				if err := s.Write(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/record")
		})
	}
}
