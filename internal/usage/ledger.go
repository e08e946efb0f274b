package usage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options' zero fields.
const (
	DefaultQueueSize  = 10000
	DefaultBatchSize  = 500
	DefaultFlushEvery = time.Second
	DefaultRetryMin   = time.Second
	DefaultRetryMax   = 30 * time.Second
)

// writeTimeout bounds one store write, so a hung database delays batches by
// at most this long before they go to the journal.
const writeTimeout = 10 * time.Second

// Options configure a Ledger.
type Options struct {
	// Store keeps the records. Required. The Ledger does not close it: close
	// it after Ledger.Close.
	Store Store
	// Journal is the path of the local journal (JSON lines) for records the
	// store cannot take now: batches while the store fails, and records Add
	// finds no room for in the queue. Required; its directory is created.
	// The journal is replayed into the store, and emptied, once the store
	// works, including on start.
	Journal string
	// QueueSize bounds the records held in memory, queued or being written.
	// Default 10000.
	QueueSize int
	// BatchSize is the most records written in one transaction; a full batch
	// wakes the writer at once. Default 500.
	BatchSize int
	// FlushEvery is how often the writer writes what is queued, however
	// little; it is the longest a record waits in memory. Default 1s.
	FlushEvery time.Duration
	// RetryMin and RetryMax bound the wait before the writer tries a failing
	// store again; the wait doubles from RetryMin after each failure up to
	// RetryMax. Defaults 1s and 30s.
	RetryMin, RetryMax time.Duration
	// Logger receives store failures and recoveries, replays and losses.
	// Default: discard.
	Logger *slog.Logger
}

// Stats are a Ledger's counters, for metrics.
type Stats struct {
	// QueueDepth is the records in memory, queued or being written.
	QueueDepth int
	// Written counts records the store accepted, replayed ones included.
	Written int64
	// Journaled counts records appended to the journal.
	Journaled int64
	// JournalBytes is the journal's size now.
	JournalBytes int64
	// WriteErrors counts failed store writes (batches, not records).
	WriteErrors int64
	// Dropped counts records lost: the journal could not take them, or a
	// journal line could not be read back.
	Dropped int64
}

// Ledger writes records to a Store in batches from one goroutine, off the
// request path, and keeps them in a journal file while the store fails. Its
// methods are safe for concurrent use.
type Ledger struct {
	store      Store
	journal    *journal
	log        *slog.Logger
	queueSize  int
	batchSize  int
	flushEvery time.Duration
	retryMin   time.Duration
	retryMax   time.Duration

	// The queue is a list of blocks of up to BatchSize records, each a
	// batch for the writer, so Add never copies the queue to grow it and the
	// writer takes it whole in one swap. Blocks are reused.
	mu        sync.Mutex // guards blocks, free, queued, inflight and closed
	blocks    [][]Record // queued; only the last may have room
	free      [][]Record // empty blocks
	queued    int        // records in blocks
	inflight  int        // records the writer took and has not finished
	closed    bool       // the writer took its last batch: Add journals
	blockSize int        // min(BatchSize, QueueSize)

	wake   chan struct{}      // a full batch is queued; capacity 1
	stop   chan struct{}      // closed by Close
	done   chan struct{}      // closed when the writer returns
	ctx    context.Context    // the writer's store calls'; lives until Close
	cancel context.CancelFunc // aborts store calls when Close's context ends
	once   sync.Once

	// The writer's own state.
	spare    [][]Record    // the list the writer took last, reused for blocks
	down     bool          // the last store call failed
	backoff  time.Duration // wait before the next try while down
	retryAt  time.Time     // when to try the store again while down
	replayed int64         // journal bytes already in the store

	written     atomic.Int64
	journaled   atomic.Int64
	writeErrors atomic.Int64
	dropped     atomic.Int64
	overflowing atomic.Bool // Add found the queue full since the writer last took it
	failing     atomic.Bool // the last journal append failed
}

// NewLedger opens the journal and starts the writer goroutine, which first
// replays what the journal holds from before.
func NewLedger(opts Options) (*Ledger, error) {
	if opts.Store == nil {
		return nil, errors.New("usage: ledger without a store")
	}
	if opts.Journal == "" {
		return nil, errors.New("usage: ledger without a journal path")
	}
	if opts.QueueSize < 0 || opts.BatchSize < 0 || opts.FlushEvery < 0 || opts.RetryMin < 0 || opts.RetryMax < 0 {
		return nil, errors.New("usage: negative ledger option")
	}
	l := &Ledger{
		store:      opts.Store,
		log:        opts.Logger,
		queueSize:  cmp.Or(opts.QueueSize, DefaultQueueSize),
		batchSize:  cmp.Or(opts.BatchSize, DefaultBatchSize),
		flushEvery: cmp.Or(opts.FlushEvery, DefaultFlushEvery),
		retryMin:   cmp.Or(opts.RetryMin, DefaultRetryMin),
		retryMax:   cmp.Or(opts.RetryMax, DefaultRetryMax),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	l.retryMax = max(l.retryMax, l.retryMin)
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	j, err := openJournal(opts.Journal)
	if err != nil {
		return nil, err
	}
	l.journal = j
	l.blockSize = min(l.batchSize, l.queueSize)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.run()
	return l, nil
}

// Add queues a record for the writer. It never waits on the store: when the
// queue is full (the store is slower than the traffic) or the Ledger is
// closed, it appends the record to the journal itself, and when even that
// fails it counts the record as Dropped and logs it.
func (l *Ledger) Add(r Record) {
	if r.RequestID == "" {
		r.RequestID = NewID()
	}
	r.Time = r.Time.UTC()
	if math.IsNaN(r.Cost) || math.IsInf(r.Cost, 0) {
		r.Cost = 0 // JSON, and so the journal, has no NaN
	}
	l.mu.Lock()
	if !l.closed && l.queued+l.inflight < l.queueSize {
		n := len(l.blocks)
		if n == 0 || len(l.blocks[n-1]) == l.blockSize {
			l.blocks = append(l.blocks, l.blockLocked())
			n++
		}
		b := append(l.blocks[n-1], r)
		l.blocks[n-1] = b
		l.queued++
		l.mu.Unlock()
		if len(b) == l.blockSize {
			select {
			case l.wake <- struct{}{}:
				// Let the writer run now rather than when this goroutine
				// blocks or is preempted: a busy producer would otherwise
				// fill the queue first. Once per batch, so it costs
				// little per record.
				runtime.Gosched()
			default:
			}
		}
		return
	}
	closed := l.closed
	l.mu.Unlock()
	l.overflow(r, closed)
}

// blockLocked returns an empty block. A new one is allocated only when the
// queue is longer than it has been before.
func (l *Ledger) blockLocked() []Record {
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b
	}
	return make([]Record, 0, l.blockSize)
}

// overflow journals one record Add could not queue. It takes r by value and
// is kept apart from Add so that Add's own copy never escapes to the heap.
//
//go:noinline
func (l *Ledger) overflow(r Record, closed bool) {
	if !closed && l.overflowing.CompareAndSwap(false, true) {
		l.log.Warn("usage: queue full; journaling records until the writer catches up", "queue_size", l.queueSize)
	}
	l.toJournal([]Record{r}, false)
}

// toJournal appends records to the journal, counting them as Journaled or,
// when the append fails, as Dropped.
func (l *Ledger) toJournal(recs []Record, sync bool) {
	err := l.journal.append(recs, sync)
	if err == nil {
		l.journaled.Add(int64(len(recs)))
		l.failing.Store(false)
		return
	}
	l.dropped.Add(int64(len(recs)))
	// The writer's batches are logged each; Add's single records only when
	// the journal starts failing, so a full disk does not flood the log.
	if sync || l.failing.CompareAndSwap(false, true) {
		l.log.Error("usage: records lost: journal append failed", "records", len(recs), "journal", l.journal.path, "err", err)
	}
}

// Report sums the store's records; see Store.Report. Records still queued or
// journaled are not in it yet.
func (l *Ledger) Report(ctx context.Context, q Query) ([]Row, error) {
	return l.store.Report(ctx, q)
}

// Stats returns the Ledger's counters.
func (l *Ledger) Stats() Stats {
	l.mu.Lock()
	depth := l.queued + l.inflight
	l.mu.Unlock()
	return Stats{
		QueueDepth:   depth,
		Written:      l.written.Load(),
		Journaled:    l.journaled.Load(),
		JournalBytes: l.journal.Size(),
		WriteErrors:  l.writeErrors.Load(),
		Dropped:      l.dropped.Load(),
	}
}

// Close writes what is queued and stops the writer. It tries the store until
// ctx ends (unless the store is already failing) and journals what the store
// did not take, so records are lost only when the journal fails too. It
// returns once the writer has stopped, even when ctx ends first, with an
// error if ctx ended or records were lost. Records added after Close go
// straight to the journal. Close does not close the Store.
func (l *Ledger) Close(ctx context.Context) error {
	dropped := l.dropped.Load()
	l.once.Do(func() { close(l.stop) })
	var err error
	select {
	case <-l.done:
	case <-ctx.Done():
		l.cancel() // the writer journals the rest at once
		<-l.done
		err = fmt.Errorf("usage: close: store writes cut short, rest journaled: %w", ctx.Err())
	}
	l.cancel()
	if n := l.dropped.Load() - dropped; n > 0 {
		err = errors.Join(err, fmt.Errorf("usage: close: %d records lost", n))
	}
	return err
}

// run is the writer goroutine.
func (l *Ledger) run() {
	defer close(l.done)
	tick := time.NewTicker(l.flushEvery)
	defer tick.Stop()
	l.replay()
	for {
		select {
		case <-l.stop:
			l.flush(true)
			if err := l.journal.close(); err != nil {
				l.log.Error("usage: journal close failed", "journal", l.journal.path, "err", err)
			}
			return
		case <-l.wake:
		case <-tick.C:
		}
		l.flush(false)
	}
}

// flush writes everything queued in batches, to the store or, while it
// fails, to the journal, then syncs the journal and, unless this is the last
// flush, replays it when the store is due.
func (l *Ledger) flush(last bool) {
	for {
		taken := l.take(last)
		for i, b := range taken {
			l.write(b)
			clear(b) // let the records' strings go
			l.mu.Lock()
			l.inflight -= len(b)
			l.free = append(l.free, b[:0])
			l.mu.Unlock()
			taken[i] = nil
		}
		l.spare = taken[:0]
		l.mu.Lock()
		more := l.queued >= l.blockSize
		l.mu.Unlock()
		if !more || last {
			break
		}
	}
	if err := l.journal.sync(); err != nil {
		l.log.Error("usage: journal sync failed", "journal", l.journal.path, "err", err)
	}
	if !last {
		l.replay()
	}
}

// take swaps the queue's blocks for the spare list and returns them. With
// last set it also closes the queue.
func (l *Ledger) take(last bool) [][]Record {
	l.mu.Lock()
	taken := l.blocks
	l.blocks = l.spare
	l.inflight += l.queued
	l.queued = 0
	if last {
		l.closed = true
	}
	l.mu.Unlock()
	l.overflowing.Store(false)
	return taken
}

// write sends a batch to the store unless it is failing and not yet due for
// a retry; a batch the store did not take goes to the journal.
func (l *Ledger) write(batch []Record) {
	if l.due() && l.storeWrite(batch) == nil {
		return
	}
	l.toJournal(batch, true)
}

// due reports whether the store may be called: it works, or its retry wait
// is over.
func (l *Ledger) due() bool {
	return !l.down || !time.Now().Before(l.retryAt)
}

// storeWrite writes a batch to the store and tracks whether it works.
func (l *Ledger) storeWrite(batch []Record) error {
	ctx, cancel := context.WithTimeout(l.ctx, writeTimeout)
	err := l.store.Write(ctx, batch)
	cancel()
	if err != nil {
		l.writeErrors.Add(1)
		if !l.down {
			l.backoff = l.retryMin
			l.log.Warn("usage: store write failed; journaling records until it works", "records", len(batch), "err", err)
		} else {
			l.backoff = min(2*l.backoff, l.retryMax)
			l.log.Debug("usage: store still failing", "retry_in", l.backoff, "err", err)
		}
		l.down = true
		l.retryAt = time.Now().Add(l.backoff)
		return err
	}
	if l.down {
		l.log.Info("usage: store works again")
	}
	l.down, l.backoff = false, 0
	l.written.Add(int64(len(batch)))
	return nil
}

// replay writes the journal's records to the store when there are any and
// the store is due, then empties the journal. Lines appended meanwhile stay
// for the next replay. A replay the store interrupts resumes where it
// stopped; one a crash interrupts starts over, which writes nothing twice
// because the store skips ids it holds.
func (l *Ledger) replay() {
	size := l.journal.Size()
	if size == 0 || !l.due() {
		return
	}
	var n int
	done, bad, err := l.journal.scan(l.replayed, size, l.batchSize, func(b []Record) error {
		if err := l.storeWrite(b); err != nil {
			return err
		}
		n += len(b)
		return nil
	})
	l.replayed = done
	if bad > 0 {
		l.dropped.Add(int64(bad))
		l.log.Error("usage: records lost: unreadable journal lines skipped", "lines", bad, "journal", l.journal.path)
	}
	if err != nil {
		if !l.down { // not the store's failure, which storeWrite logged
			l.log.Error("usage: journal replay failed", "journal", l.journal.path, "err", err)
		}
		return
	}
	if err := l.journal.dropPrefix(size); err != nil {
		l.log.Error("usage: journal not emptied after replay", "journal", l.journal.path, "err", err)
		return
	}
	l.replayed = 0
	l.log.Info("usage: journal replayed into the store", "records", n)
}
