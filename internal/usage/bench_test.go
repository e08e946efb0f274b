package usage

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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

// cpuTime returns the CPU time the process used so far, all threads (the
// ledger's writer and syncer included), user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAdd is the request path's cost: one record added from many
// goroutines at once, appended to the journal (a copy into its mapped
// segment, no system call, no fsync) and queued. cpu-ns/op is the process's
// CPU time per record, the writer's and the syncer's (fsync every 100ms)
// included.
func BenchmarkAdd(b *testing.B) {
	l, err := NewLedger(Options{Store: &discardStore{}, Journal: journalPath(b), QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	r := record(1)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Add(r)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	// The queue must never have overflowed into the journal, or this
	// measured the slow path.
	b.ReportMetric(float64(l.Stats().Journaled)/float64(b.N), "journaled/op")
}

// BenchmarkAddLatency reports the distribution of one Add's duration, from
// many goroutines at once: the tail is where a request waits on another's
// journal append, or on the runtime.
func BenchmarkAddLatency(b *testing.B) {
	l, err := NewLedger(Options{Store: &discardStore{}, Journal: journalPath(b), QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	r := record(1)
	var mu sync.Mutex // guards all
	all := make([]time.Duration, 0, 1<<20)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mine := make([]time.Duration, 0, 1<<16)
		for pb.Next() {
			start := time.Now()
			l.Add(r)
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		all = append(all, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	slices.Sort(all)
	for _, q := range []struct {
		unit string
		p    float64
	}{{"p50-ns", 0.5}, {"p99-ns", 0.99}, {"p99.99-ns", 0.9999}} {
		b.ReportMetric(float64(all[int(q.p*float64(len(all)-1))]), q.unit)
	}
}

// BenchmarkAddSync is what a request would pay to wait, before its
// response's last byte, until its record is fsynced: Add, then Sync, which
// shares one fsync among the requests waiting together. 32 requests in
// flight. wait-ns/op is the time a request waits; the gateway does not do
// this (docs/usage.md has the figures).
func BenchmarkAddSync(b *testing.B) {
	l, err := NewLedger(Options{Store: &discardStore{}, Journal: journalPath(b), QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	r := record(1)
	var wait atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Add(r)
			start := time.Now()
			if err := l.Sync(context.Background()); err != nil {
				b.Error(err)
			}
			wait.Add(int64(time.Since(start)))
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(wait.Load())/float64(b.N), "wait-ns/op")
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStoreWrite is the writer's cost per record, in batches of 500:
// ns/record is wall time (fsyncs included), cpu-ns/record this process's
// CPU. Run it with -benchtime 300x or more: an index's cost shows as it
// grows.
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
			cpu := cpuTime(b)
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
			// The process's CPU (a PostgreSQL server's is not in it): the
			// wall time includes the waits for fsync.
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N*len(batch)), "cpu-ns/record")
		})
	}
}
