package usage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-gateway/sluice/internal/pgtest"
)

var errStoreDown = errors.New("store down")

// flakyStore wraps a real store to make it fail, or hang, on demand, and
// counts how often each id reached the store in a successful write: a
// ledger that sent a record twice shows up here even though the store
// itself keeps one.
type flakyStore struct {
	Store
	down atomic.Bool // Write fails as a dead database does

	mu        sync.Mutex     // guards gate and delivered
	gate      chan struct{}  // when set, Write waits until it is closed or ctx ends
	entered   chan struct{}  // receives a value when Write starts waiting at the gate
	delivered map[string]int // successful writes per id
}

func newFlaky(s Store) *flakyStore {
	return &flakyStore{Store: s, entered: make(chan struct{}, 100), delivered: map[string]int{}}
}

// hold makes writes wait until the returned function is called.
func (s *flakyStore) hold() (release func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.gate = gate
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.gate = nil
		s.mu.Unlock()
		close(gate)
	}
}

func (s *flakyStore) Write(ctx context.Context, batch []Record) error {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		s.entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.down.Load() {
		return errStoreDown
	}
	if err := s.Store.Write(ctx, batch); err != nil {
		return err
	}
	s.mu.Lock()
	for _, r := range batch {
		s.delivered[r.RequestID]++
	}
	s.mu.Unlock()
	return nil
}

// Ping fails while the store is down; it never waits at the gate, which
// holds writes only.
func (s *flakyStore) Ping(ctx context.Context) error {
	if s.down.Load() {
		return errStoreDown
	}
	if p, ok := s.Store.(Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// deliveredTwice returns the ids written more than once.
func (s *flakyStore) deliveredTwice() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, n := range s.delivered {
		if n > 1 {
			ids = append(ids, id)
		}
	}
	return ids
}

// logBuffer collects a Ledger's log.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func tempSQLite(t testing.TB) Store {
	return open(t, "sqlite:"+filepath.Join(t.TempDir(), "usage.db"))
}

func journalPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "journal", "usage.jsonl")
}

// newLedger starts a ledger and makes sure it is closed when the test ends.
func newLedger(t testing.TB, opts Options) *Ledger {
	t.Helper()
	l, err := NewLedger(opts)
	if err != nil {
		t.Fatalf("NewLedger: %v", err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func closeLedger(t testing.TB, l *Ledger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// record i has PromptTokens i, so a sum shows any record lost or doubled.
func record(i int) Record {
	return Record{RequestID: fmt.Sprint("req-", i), Time: t0.Add(time.Duration(i) * time.Millisecond),
		Subscription: "sub", Model: "gpt-4o", Status: 200, PromptTokens: int64(i), TotalTokens: int64(i)}
}

// addRange adds records from..to-1 from the given number of goroutines.
func addRange(l *Ledger, from, to, goroutines int) {
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := from + g; i < to; i += goroutines {
				l.Add(record(i))
			}
		})
	}
	wg.Wait()
}

// wantRecords fails unless the store holds exactly records 0..n-1.
func wantRecords(t testing.TB, s Store, n int) {
	t.Helper()
	got := total(t, s)
	if want := int64(n) * int64(n-1) / 2; got.Requests != int64(n) || got.PromptTokens != want {
		t.Errorf("store holds %d records with %d prompt tokens; want %d with %d", got.Requests, got.PromptTokens, n, want)
	}
}

// waitFor polls cond, which the ledger's writer makes true, until it holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestLedgerConcurrentAdds(t *testing.T) {
	store := newFlaky(tempSQLite(t))
	l := newLedger(t, Options{Store: store, Journal: journalPath(t)})
	const n = 10000
	addRange(l, 0, n, 32)
	closeLedger(t, l)

	wantRecords(t, store, n)
	if ids := store.deliveredTwice(); len(ids) > 0 {
		t.Errorf("records written twice: %v", ids)
	}
	want := Stats{Written: n}
	if diff := cmp.Diff(want, l.Stats()); diff != "" {
		t.Errorf("Stats differ (-want +got):\n%s", diff)
	}
}

func TestLedgerCloseFlushes(t *testing.T) {
	store := tempSQLite(t)
	// Neither a tick nor a full batch would write these before Close.
	l := newLedger(t, Options{Store: store, Journal: journalPath(t), FlushEvery: time.Hour, BatchSize: 1000})
	addRange(l, 0, 100, 4)
	if got := l.Stats().QueueDepth; got != 100 {
		t.Errorf("QueueDepth before Close = %d; want 100", got)
	}
	closeLedger(t, l)
	wantRecords(t, store, 100)
	if got := l.Stats(); got.Written != 100 || got.QueueDepth != 0 {
		t.Errorf("after Close: Written %d, QueueDepth %d; want 100, 0", got.Written, got.QueueDepth)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
}

func TestLedgerStoreOutage(t *testing.T) {
	store := newFlaky(tempSQLite(t))
	var log logBuffer
	l := newLedger(t, Options{Store: store, Journal: journalPath(t), BatchSize: 50,
		FlushEvery: 5 * time.Millisecond, RetryMin: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond, Logger: log.logger()})

	addRange(l, 0, 300, 8)
	waitFor(t, "the first records written", func() bool { return l.Stats().Written == 300 })

	store.down.Store(true)
	addRange(l, 300, 600, 8)
	waitFor(t, "the records journaled", func() bool { s := l.Stats(); return s.Journaled == 300 && s.QueueDepth == 0 })
	st := l.Stats()
	if st.JournalBytes == 0 || st.WriteErrors == 0 || st.Written != 300 || !st.Degraded {
		t.Errorf("during the outage: %+v; want JournalBytes and WriteErrors > 0, Written 300, Degraded", st)
	}
	wantRecords(t, store, 300)

	store.down.Store(false)
	waitFor(t, "the journal replayed", func() bool { return l.Stats().JournalBytes == 0 })
	closeLedger(t, l)

	wantRecords(t, store, 600)
	if ids := store.deliveredTwice(); len(ids) > 0 {
		t.Errorf("records written twice: %v", ids)
	}
	st = l.Stats()
	if st.Written != 600 || st.Journaled != 300 || st.Dropped != 0 || st.Degraded {
		t.Errorf("after the outage: %+v; want Written 600, Journaled 300, Dropped 0, not Degraded", st)
	}
	for _, msg := range []string{"store write failed", "store works again", "journal replayed"} {
		if !strings.Contains(log.String(), msg) {
			t.Errorf("log lacks %q:\n%s", msg, log.String())
		}
	}
}

// memStore is a store in memory for tests of timing, where SQLite's own
// goroutines would keep testing/synctest's clock from advancing.
type memStore struct {
	mu       sync.Mutex // guards all
	fail     bool
	records  map[string]Record
	attempts []time.Time // of Write and Ping
}

func (s *memStore) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts = append(s.attempts, time.Now())
	if s.fail {
		return errStoreDown
	}
	return nil
}

func (s *memStore) Write(ctx context.Context, batch []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts = append(s.attempts, time.Now())
	if s.fail {
		return errStoreDown
	}
	if s.records == nil {
		s.records = map[string]Record{}
	}
	for _, r := range batch {
		if _, ok := s.records[r.RequestID]; !ok {
			s.records[r.RequestID] = r
		}
	}
	return nil
}

func (s *memStore) Report(context.Context, Query) ([]Row, error) { return nil, nil }
func (s *memStore) Close() error                                 { return nil }

func TestLedgerBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{fail: true}
		l, err := NewLedger(Options{Store: store, Journal: journalPath(t), FlushEvery: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		l.Add(record(1))
		time.Sleep(2 * time.Minute)
		synctest.Wait()

		store.mu.Lock()
		var gaps []time.Duration
		for i, at := range store.attempts {
			if i == 0 {
				gaps = append(gaps, at.Sub(start))
			} else {
				gaps = append(gaps, at.Sub(store.attempts[i-1]))
			}
		}
		store.fail = false
		store.mu.Unlock()
		// The writer asks the store at once; then the waits double from 1s
		// up to 30s: tries at 0s, 1s, 3s, 7s, 15s, 31s, 61s, 91s (and 121s,
		// just after the two minutes).
		want := []time.Duration{0, 1 * time.Second, 2 * time.Second, 4 * time.Second,
			8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
		if diff := cmp.Diff(want, gaps); diff != "" {
			t.Errorf("store attempts' spacing differs (-want +got):\n%s", diff)
		}

		time.Sleep(30 * time.Second)
		synctest.Wait()
		store.mu.Lock()
		n := len(store.records)
		store.mu.Unlock()
		if st := l.Stats(); n != 1 || st.JournalBytes != 0 || st.Written != 1 {
			t.Errorf("after the store came back: %d records stored, %+v; want 1, JournalBytes 0, Written 1", n, st)
		}
		if err := l.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLedgerQueueFull(t *testing.T) {
	store := newFlaky(tempSQLite(t))
	var log logBuffer
	l := newLedger(t, Options{Store: store, Journal: journalPath(t), QueueSize: 10, BatchSize: 5,
		FlushEvery: time.Hour, Logger: log.logger()})
	release := store.hold()

	addRange(l, 0, 5, 1) // a full batch: the writer takes it and waits in Write
	<-store.entered
	addRange(l, 5, 10, 1) // fills the queue
	if st := l.Stats(); st.QueueDepth != 10 || st.Journaled != 0 {
		t.Fatalf("with the queue just full: %+v; want QueueDepth 10, Journaled 0", st)
	}
	addRange(l, 10, 30, 4) // no room: Add journals them itself, now
	st := l.Stats()
	if st.QueueDepth != 10 || st.Journaled != 20 || st.JournalBytes == 0 {
		t.Errorf("after overflowing: %+v; want QueueDepth 10, Journaled 20, JournalBytes > 0", st)
	}
	if got := strings.Count(log.String(), "queue full"); got != 1 {
		t.Errorf("log has %d \"queue full\" lines; want 1:\n%s", got, log.String())
	}

	release()
	waitFor(t, "the queue written and the journal replayed", func() bool {
		s := l.Stats()
		return s.QueueDepth == 0 && s.JournalBytes == 0
	})
	closeLedger(t, l)
	wantRecords(t, store, 30)
	if ids := store.deliveredTwice(); len(ids) > 0 {
		t.Errorf("records written twice: %v", ids)
	}
}

func TestLedgerJournalUnwritable(t *testing.T) {
	// Writes to /dev/full fail with ENOSPC, as they do on a full disk.
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("needs /dev/full")
	}
	t.Run("store down", func(t *testing.T) {
		store := newFlaky(tempSQLite(t))
		store.down.Store(true)
		var log logBuffer
		l := newLedger(t, Options{Store: store, Journal: "/dev/full", FlushEvery: 5 * time.Millisecond, Logger: log.logger()})
		addRange(l, 0, 10, 2)
		// The loss is counted, then logged.
		waitFor(t, "the records dropped", func() bool {
			return l.Stats().Dropped == 10 && strings.Contains(log.String(), "records lost")
		})
		if st := l.Stats(); st.Journaled != 0 || st.QueueDepth != 0 {
			t.Errorf("%+v; want Journaled 0, QueueDepth 0", st)
		}
		if !strings.Contains(log.String(), "records lost") || !strings.Contains(log.String(), "no space left") {
			t.Errorf("log lacks the loss and its cause:\n%s", log.String())
		}
	})
	t.Run("queue full", func(t *testing.T) {
		store := newFlaky(tempSQLite(t))
		var log logBuffer
		l := newLedger(t, Options{Store: store, Journal: "/dev/full", QueueSize: 2, BatchSize: 1,
			FlushEvery: time.Hour, Logger: log.logger()})
		release := store.hold()
		l.Add(record(0))
		<-store.entered
		l.Add(record(1))
		addRange(l, 2, 5, 3)
		if st := l.Stats(); st.Dropped != 3 {
			t.Errorf("Dropped = %d; want 3", st.Dropped)
		}
		// Logged when the journal starts failing, not for every record.
		if got := strings.Count(log.String(), "records lost"); got != 1 {
			t.Errorf("log has %d \"records lost\" lines; want 1:\n%s", got, log.String())
		}
		release()
		closeLedger(t, l)
		wantRecords(t, store, 2)
		if st := l.Stats(); st.Written != 2 || st.Dropped != 3 {
			t.Errorf("%+v; want Written 2, Dropped 3", st)
		}
	})
}

// breakJournal makes the journal's appends fail, as a full disk does, until
// the returned function is called: the active segment is closed and cannot
// be opened again.
func breakJournal(t *testing.T, j *journal) (heal func()) {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m != nil {
		if err := unmapSegment(j.m); err != nil {
			t.Fatal(err)
		}
		j.m = nil
	}
	if err := j.f.Close(); err != nil {
		t.Fatal(err)
	}
	active := j.active
	j.f, j.active = nil, filepath.Join(t.TempDir(), "missing", "segment")
	return func() {
		j.mu.Lock()
		j.active = active
		j.mu.Unlock()
	}
}

// A record the journal refused is written to the journal by the writer when
// the store fails too; once the store is back, it is replayed from there,
// not dropped with the segment it landed in.
func TestLedgerRejournaledRecord(t *testing.T) {
	store := newFlaky(tempSQLite(t))
	l := newLedger(t, Options{Store: store, Journal: journalPath(t), BatchSize: 1, FlushEvery: 5 * time.Millisecond,
		RetryMin: time.Millisecond, RetryMax: time.Millisecond})
	release := store.hold()
	l.Add(record(0)) // a full batch: the writer takes it and waits in Write
	<-store.entered

	heal := breakJournal(t, l.journal)
	l.Add(record(1)) // the journal refuses it: in memory only
	heal()
	store.down.Store(true)
	release() // record 0's write fails; record 1's is not tried, and the writer journals it
	waitFor(t, "both records journaled", func() bool { s := l.Stats(); return s.Journaled == 2 && s.QueueDepth == 0 })

	store.down.Store(false)
	waitFor(t, "the journal replayed", func() bool { s := l.Stats(); return !s.Degraded && s.JournalBytes == 0 })
	closeLedger(t, l)
	wantRecords(t, store, 2)
	if st := l.Stats(); st.Dropped != 0 {
		t.Errorf("Dropped = %d; want 0", st.Dropped)
	}
}

// A gateway restart with the store down: the first ledger journals, the next
// one replays the journal at start. The store already holds some of the
// journaled records, as after a replay a crash cut short; none is doubled.
func TestLedgerRestartSQLite(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "usage.db")
	journal := journalPath(t)
	opts := func(s Store) Options {
		return Options{Store: s, Journal: journal, BatchSize: 64, FlushEvery: 5 * time.Millisecond, RetryMin: time.Hour}
	}

	s1, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	f1 := newFlaky(s1)
	l1 := newLedger(t, opts(f1))
	addRange(l1, 0, 500, 8)
	waitFor(t, "the first records written", func() bool { return l1.Stats().Written == 500 })
	f1.down.Store(true)
	addRange(l1, 500, 1000, 8)
	waitFor(t, "the records journaled", func() bool { s := l1.Stats(); return s.Journaled == 500 && s.QueueDepth == 0 })
	addRange(l1, 1000, 1200, 8) // still queued at Close: journaled, the store being down
	closeLedger(t, l1)
	if st := l1.Stats(); st.Journaled != 700 || st.Dropped != 0 {
		t.Fatalf("first ledger: %+v; want Journaled 700, Dropped 0", st)
	}
	s1.Close()

	s2 := open(t, dsn)
	partial := make([]Record, 0, 100)
	for i := 500; i < 600; i++ {
		partial = append(partial, record(i))
	}
	write(t, s2, partial...)

	f2 := newFlaky(s2)
	l2 := newLedger(t, opts(f2))
	addRange(l2, 1200, 1500, 8)
	addRange(l2, 0, 100, 4) // ids the store has: kept once
	waitFor(t, "the journal replayed", func() bool { s := l2.Stats(); return s.JournalBytes == 0 && s.QueueDepth == 0 })
	closeLedger(t, l2)
	wantRecords(t, s2, 1500)
	if n := journalFileBytes(t, journal); n != 0 {
		t.Errorf("the journal's files hold %d bytes after the replay; want 0", n)
	}
}

// journalFileBytes sums the sizes of the journal's files on disk: its
// segments and a journal from before segments.
func journalFileBytes(t *testing.T, journal string) int64 {
	t.Helper()
	files, err := filepath.Glob(journal + "*")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// PostgreSQL stops in the middle of the traffic and comes back: every record
// lands once.
func TestLedgerPostgresOutage(t *testing.T) {
	pg := pgtest.Start(t)
	store := open(t, pg.URL())
	var log logBuffer
	l := newLedger(t, Options{Store: store, Journal: journalPath(t), BatchSize: 100,
		FlushEvery: 10 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: log.logger()})

	addRange(l, 0, 1000, 16)
	waitFor(t, "the first records written", func() bool { return l.Stats().Written >= 1000 })

	// Stop while a stream of records is being added.
	var wg sync.WaitGroup
	wg.Go(func() { addRange(l, 1000, 2000, 16) })
	pg.Stop()
	wg.Wait()
	addRange(l, 2000, 2500, 16)
	waitFor(t, "the outage noticed", func() bool { s := l.Stats(); return s.WriteErrors > 0 && s.QueueDepth == 0 })

	wg.Go(func() { addRange(l, 2500, 3500, 16) })
	pg.Restart()
	wg.Wait()
	addRange(l, 3500, 4000, 16)
	waitFor(t, "everything written", func() bool { s := l.Stats(); return s.QueueDepth == 0 && s.JournalBytes == 0 })
	closeLedger(t, l)

	wantRecords(t, store, 4000)
	if st := l.Stats(); st.Journaled == 0 || st.Dropped != 0 {
		t.Errorf("%+v; want Journaled > 0 (the outage was felt) and Dropped 0", st)
	}
}

// A torn last line (a crash mid-append) costs that record only.
func TestLedgerTornJournal(t *testing.T) {
	journal := journalPath(t)
	all := lines(t, record(0), record(1), record(2))
	torn := all[:len(all)-20]
	if err := os.MkdirAll(filepath.Dir(journal), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(journal, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	store := tempSQLite(t)
	var log logBuffer
	l := newLedger(t, Options{Store: store, Journal: journal, FlushEvery: 5 * time.Millisecond, Logger: log.logger()})
	l.Add(record(3)) // a record after the torn one is not lost with it
	waitFor(t, "the journal replayed", func() bool { s := l.Stats(); return s.JournalBytes == 0 && s.Written == 3 })
	closeLedger(t, l)

	got := total(t, store)
	if got.Requests != 3 || got.PromptTokens != 0+1+3 {
		t.Errorf("store holds %d records, %d prompt tokens; want 3 (records 0, 1, 3), 4", got.Requests, got.PromptTokens)
	}
	if st := l.Stats(); st.Dropped != 1 {
		t.Errorf("Dropped = %d; want 1 (the torn line)", st.Dropped)
	}
	if !strings.Contains(log.String(), "unreadable journal lines") {
		t.Errorf("log lacks the torn line:\n%s", log.String())
	}
}

// A Close whose context ends while the store hangs journals the rest and
// still returns with the writer stopped.
func TestLedgerCloseDeadline(t *testing.T) {
	store := newFlaky(tempSQLite(t))
	journal := journalPath(t)
	l := newLedger(t, Options{Store: store, Journal: journal, FlushEvery: time.Hour})
	store.hold() // never released
	addRange(l, 0, 10, 2)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := l.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v; want context.DeadlineExceeded", err)
	}
	if st := l.Stats(); st.Journaled != 10 || st.Dropped != 0 {
		t.Errorf("%+v; want Journaled 10, Dropped 0", st)
	}
	select {
	case <-l.done:
	default:
		t.Error("the writer still runs after Close returned")
	}

	// Records added after Close go to the journal too, and the next ledger
	// replays all of them.
	l.Add(record(10))
	if st := l.Stats(); st.Journaled != 11 {
		t.Errorf("Journaled after a late Add = %d; want 11", st.Journaled)
	}
	next := tempSQLite(t)
	l2 := newLedger(t, Options{Store: next, Journal: journal, FlushEvery: 5 * time.Millisecond})
	waitFor(t, "the journal replayed", func() bool { return l2.Stats().JournalBytes == 0 })
	closeLedger(t, l2)
	wantRecords(t, next, 11)
}

func TestLedgerAddFillsGaps(t *testing.T) {
	store := tempSQLite(t)
	l := newLedger(t, Options{Store: store, Journal: journalPath(t)})
	l.Add(Record{Time: time.Date(2026, 5, 20, 12, 0, 0, 0, time.FixedZone("X", 3600)), Cost: math.NaN()})
	l.Add(Record{Time: t0, Cost: math.Inf(1)})
	closeLedger(t, l)
	rows := report(t, store, Query{GroupBy: []string{"hour"}})
	want := []Row{
		row(g("hour", "2026-05-20T10:00:00Z"), 1, 0, 0, 0, 0, 0, 0),
		row(g("hour", "2026-05-20T11:00:00Z"), 1, 0, 0, 0, 0, 0, 0),
	}
	// Two records, so each got its own id; the times were made UTC; costs
	// that JSON cannot carry became 0.
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("Report differs (-want +got):\n%s", diff)
	}
	if rows, err := l.Report(context.Background(), Query{}); err != nil || len(rows) != 1 || rows[0].Requests != 2 {
		t.Errorf("Ledger.Report = %+v, %v; want the store's one row of 2 requests", rows, err)
	}
}

func TestNewLedgerRejects(t *testing.T) {
	store := &memStore{}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no store", Options{Journal: journalPath(t)}},
		{"no journal", Options{Store: store}},
		{"negative queue", Options{Store: store, Journal: journalPath(t), QueueSize: -1}},
		{"journal under a file", Options{Store: store, Journal: filepath.Join(file, "journal")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := NewLedger(tc.opts); err == nil {
				l.Close(context.Background())
				t.Errorf("NewLedger(%+v) succeeded; want an error", tc.opts)
			}
		})
	}
}

// No goroutine outlives Close, the store's own included once it is closed.
func TestLedgerGoroutines(t *testing.T) {
	kinds := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "usage.db") },
		"postgres": func(t *testing.T) string { return pgtest.Start(t).URL() },
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dsn := kinds[name](t)
			base := runtime.NumGoroutine()
			store, err := Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			l, err := NewLedger(Options{Store: store, Journal: journalPath(t), FlushEvery: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			addRange(l, 0, 1000, 8)
			closeLedger(t, l)
			if err := store.Close(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(3 * time.Second)
			for runtime.NumGoroutine() > base {
				if time.Now().After(deadline) {
					buf := make([]byte, 1<<20)
					t.Fatalf("%d goroutines 3s after Close; %d before the store:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}
