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
	DefaultSyncEvery  = 100 * time.Millisecond
	DefaultRetryMin   = time.Second
	DefaultRetryMax   = 30 * time.Second
)

// writeTimeout bounds one store call, so a hung database delays batches by
// at most this long before the ledger counts it as down.
const writeTimeout = 10 * time.Second

// Options configure a Ledger.
type Options struct {
	// Store keeps the records. Required. The Ledger does not close it: close
	// it after Ledger.Close.
	Store Store
	// Journal is the path of the local journal (JSON lines), the ledger's
	// write-ahead log: Add appends every record to it before it returns, and
	// records leave it once the store committed them. While the store is
	// down the records wait there, and they are written to the store when it
	// answers again, including after a restart. Sealed parts of the journal
	// are kept next to it as Journal.1, Journal.2, ... until the store holds
	// their records. Required; its directory is created.
	Journal string
	// QueueSize bounds the records held in memory, queued or being written.
	// A record Add finds no room for is in the journal only, and is read
	// back from it. Default 10000.
	QueueSize int
	// BatchSize is the most records written in one transaction; a full batch
	// wakes the writer at once. Default 500.
	BatchSize int
	// FlushEvery is how often the writer writes what is queued, however
	// little; it is the longest a record waits in memory. Default 1s.
	FlushEvery time.Duration
	// SyncEvery is how often the journal is fsynced, for the records
	// appended since the last time. A record is in the journal, safe from
	// the process being killed, when Add returns; it is safe from a power
	// loss or a kernel crash once the next fsync is over, at most SyncEvery
	// plus the fsync's own time later. Sync waits for that. Default 100ms.
	SyncEvery time.Duration
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
	// Journaled counts records the store is to get from the journal rather
	// than from memory: those Add found no room for in the queue, those of
	// batches the store did not take, and those added after Close.
	Journaled int64
	// JournalBytes is the journal's size now: the records the store has not
	// committed yet, a second's worth or so while it works.
	JournalBytes int64
	// WriteErrors counts failed store writes (batches, not records).
	WriteErrors int64
	// Dropped counts records lost: neither the journal nor the store took
	// them, or a journal line could not be read back.
	Dropped int64
	// Degraded reports that the store did not answer the ledger's last call
	// (a write, or a probe while it was down): records wait in the journal
	// until it does.
	Degraded bool
}

// Ledger keeps one record per request: Add appends it to the journal, the
// write-ahead log, and queues it for a writer goroutine that writes batches
// to the Store off the request path. The journal lets go of records once the
// store committed them, so a crash loses no record Add took. Its methods are
// safe for concurrent use.
type Ledger struct {
	store      Store
	ping       func(context.Context) error // the store's Ping, or one that always answers
	journal    *journal
	log        *slog.Logger
	queueSize  int
	batchSize  int
	flushEvery time.Duration
	syncEvery  time.Duration
	retryMin   time.Duration
	retryMax   time.Duration

	// The queue is a list of blocks of up to BatchSize records, each a
	// batch for the writer, so Add never copies the queue to grow it and the
	// writer takes it whole in one swap. Blocks are reused. A block holds
	// records the journal has, in the journal's order; orphans are records
	// the journal refused, which only memory holds.
	//
	// mu also orders journal appends with the queue: Add appends a record's
	// line and queues it under mu, and the writer seals the journal's active
	// segment and takes the queue under mu, so the blocks it takes hold the
	// sealed segment's records and no others.
	mu        sync.Mutex // guards blocks, free, orphans, queued, inflight, spilled and closed
	blocks    [][]Record // queued; only the last may have room
	free      [][]Record // empty blocks
	orphans   []Record   // queued records the journal refused
	queued    int        // records in blocks and orphans
	inflight  int        // records the writer took and has not finished
	spilled   bool       // the active segment holds records the queue does not: it is replayed from the file
	closed    bool       // the writer took its last batch: Add journals
	blockSize int        // min(BatchSize, QueueSize)

	lines sync.Pool // *[]byte buffers for Add's journal lines

	wake     chan struct{}      // a full batch is queued; capacity 1
	stop     chan struct{}      // closed by Close
	done     chan struct{}      // closed when the writer returns
	syncWake chan struct{}      // a Sync caller waits for a round; capacity 1
	syncStop chan struct{}      // closed by the writer when it is done
	syncDone chan struct{}      // closed when the syncer returns
	ctx      context.Context    // the writer's store calls'; lives until Close
	cancel   context.CancelFunc // aborts store calls when Close's context ends
	once     sync.Once

	// The writer's own state.
	spare        [][]Record    // the list the writer took last, reused for blocks
	spareOrphans []Record      // the orphans the writer took last, reused
	pending      []*segment    // sealed segments the store may not hold yet, oldest first
	sealFailing  bool          // the last seal of the journal, or the creation of the next segment, failed
	down         bool          // the last store call failed
	backoff      time.Duration // wait before the next try while down
	retryAt      time.Time     // when to try the store again while down

	written     atomic.Int64
	journaled   atomic.Int64
	writeErrors atomic.Int64
	dropped     atomic.Int64
	degraded    atomic.Bool // down, for Stats
	overflowing atomic.Bool // Add found the queue full since the writer last took it
	refusing    atomic.Bool // the journal refused Add's last record
	losing      atomic.Bool // records were lost since the journal last took one
	syncFailing atomic.Bool // the last fsync of the journal failed
}

// NewLedger opens the journal and starts the writer goroutine, which first
// asks the store whether it answers (PostgreSQL's schema is brought up to
// date then) and replays what the journal holds from before, and the syncer
// goroutine, which fsyncs the journal.
func NewLedger(opts Options) (*Ledger, error) {
	if opts.Store == nil {
		return nil, errors.New("usage: ledger without a store")
	}
	if opts.Journal == "" {
		return nil, errors.New("usage: ledger without a journal path")
	}
	if opts.QueueSize < 0 || opts.BatchSize < 0 || opts.FlushEvery < 0 || opts.SyncEvery < 0 || opts.RetryMin < 0 || opts.RetryMax < 0 {
		return nil, errors.New("usage: negative ledger option")
	}
	l := &Ledger{
		store:      opts.Store,
		log:        opts.Logger,
		queueSize:  cmp.Or(opts.QueueSize, DefaultQueueSize),
		batchSize:  cmp.Or(opts.BatchSize, DefaultBatchSize),
		flushEvery: cmp.Or(opts.FlushEvery, DefaultFlushEvery),
		syncEvery:  cmp.Or(opts.SyncEvery, DefaultSyncEvery),
		retryMin:   cmp.Or(opts.RetryMin, DefaultRetryMin),
		retryMax:   cmp.Or(opts.RetryMax, DefaultRetryMax),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		syncWake:   make(chan struct{}, 1),
		syncStop:   make(chan struct{}),
		syncDone:   make(chan struct{}),
	}
	l.retryMax = max(l.retryMax, l.retryMin)
	l.ping = func(context.Context) error { return nil }
	if p, ok := opts.Store.(Pinger); ok {
		l.ping = p.Ping
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	j, pending, err := openJournal(opts.Journal)
	if err != nil {
		return nil, err
	}
	l.journal, l.pending = j, pending
	l.blockSize = min(l.batchSize, l.queueSize)
	l.lines.New = func() any {
		b := make([]byte, 0, 1024)
		return &b
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.syncer()
	go l.run()
	return l, nil
}

// Add appends the record to the journal and queues it for the writer. It
// never waits on the store nor on a disk flush: the append is a copy into
// the journal's mapped segment, or one write(2), to the page cache, which a
// killed process does not lose. When the queue is
// full (the store is slower than the traffic) the record is in the journal
// only; when the journal refuses it (a full disk) it is in the queue only;
// when neither takes it, it is counted as Dropped and logged. After Close,
// Add appends to the journal and fsyncs it.
func (l *Ledger) Add(r Record) {
	if r.RequestID == "" {
		r.RequestID = NewID()
	}
	r.Time = r.Time.UTC()
	if math.IsNaN(r.SavedCost) || math.IsInf(r.SavedCost, 0) {
		r.SavedCost = 0
	}
	if math.IsNaN(r.Cost) || math.IsInf(r.Cost, 0) {
		r.Cost = 0 // JSON, and so the journal, has no NaN
	}
	buf := l.lines.Get().(*[]byte)
	line, err := appendLine((*buf)[:0], &r)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.addClosed(line, err)
		l.putLine(buf, line)
		return
	}
	if err == nil {
		err = l.journal.append(line)
	}
	room := l.queued+l.inflight < l.queueSize
	full := false
	switch {
	case room && err == nil:
		n := len(l.blocks)
		if n == 0 || len(l.blocks[n-1]) == l.blockSize {
			l.blocks = append(l.blocks, l.blockLocked())
			n++
		}
		b := append(l.blocks[n-1], r)
		l.blocks[n-1] = b
		l.queued++
		full = len(b) == l.blockSize
	case room:
		l.orphans = append(l.orphans, r)
		l.queued++
		full = len(l.orphans)%l.blockSize == 0
	case err == nil:
		l.spilled = true
	}
	l.mu.Unlock()
	l.putLine(buf, line)
	if full {
		select {
		case l.wake <- struct{}{}:
			// Let the writer run now rather than when this goroutine
			// blocks or is preempted: a busy producer would otherwise
			// fill the queue first. Once per batch, so it costs little
			// per record.
			runtime.Gosched()
		default:
		}
	}
	if err == nil && room {
		if l.refusing.Load() {
			l.refusing.Store(false)
		}
		l.tookOne()
		return
	}
	l.addTrouble(err, room)
}

// putLine gives Add's line buffer back, unless a huge record grew it.
func (l *Ledger) putLine(buf *[]byte, line []byte) {
	if cap(line) <= 64<<10 {
		*buf = line[:0]
		l.lines.Put(buf)
	}
}

// addTrouble counts and logs what became of a record the journal refused
// (err) or the queue had no room for. It is kept apart from Add, which runs
// once per request, so that Add stays small.
func (l *Ledger) addTrouble(err error, queued bool) {
	switch {
	case err == nil: // in the journal only
		l.journaled.Add(1)
		l.tookOne()
		if l.overflowing.CompareAndSwap(false, true) {
			l.log.Warn("usage: queue full; records wait in the journal until the writer catches up", "queue_size", l.queueSize)
		}
	case queued: // in memory only
		if l.refusing.CompareAndSwap(false, true) {
			l.log.Error("usage: journal append failed; records are in memory only until the store takes them",
				"journal", l.journal.path, "err", err)
		}
	default:
		l.lose(1, err, false)
	}
}

// addClosed journals a record added after Close.
func (l *Ledger) addClosed(line []byte, err error) {
	if err == nil {
		err = l.journal.append(line)
	}
	if err != nil {
		l.lose(1, err, false)
		return
	}
	l.journaled.Add(1)
	l.tookOne()
}

// tookOne notes that the journal took a record, so that the next loss is
// logged.
func (l *Ledger) tookOne() {
	if l.losing.Load() {
		l.losing.Store(false)
	}
}

// lose counts records that neither the store nor the journal took. The
// writer's batches are logged each; Add's single records only when losses
// start, so a full disk does not flood the log.
func (l *Ledger) lose(n int, err error, batch bool) {
	l.dropped.Add(int64(n))
	if batch || l.losing.CompareAndSwap(false, true) {
		l.log.Error("usage: records lost: journal append failed", "records", n, "journal", l.journal.path, "err", err)
	}
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

// Sync waits until every record added before it was called is on disk
// (fsynced), safe from a power loss, or until ctx ends. Callers waiting
// together share one fsync. The gateway does not call it per request: it
// would add a disk flush to every response's latency; see docs/usage.md.
func (l *Ledger) Sync(ctx context.Context) error {
	r := l.journal.nextRound()
	select {
	case l.syncWake <- struct{}{}:
	default:
	}
	return r.wait(ctx)
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
		Degraded:     l.degraded.Load(),
	}
}

// Close writes what is queued and stops the writer and the syncer. It tries
// the store until ctx ends (unless the store is already failing); what the
// store did not take stays in the journal, fsynced, for the next start. It
// returns once both goroutines have stopped, even when ctx ends first, with
// an error if ctx ended or records were lost. Records added after Close go
// straight to the journal. Close does not close the Store.
func (l *Ledger) Close(ctx context.Context) error {
	dropped := l.dropped.Load()
	l.once.Do(func() { close(l.stop) })
	var err error
	select {
	case <-l.done:
	case <-ctx.Done():
		l.cancel() // the writer leaves the rest in the journal at once
		<-l.done
		err = fmt.Errorf("usage: close: store writes cut short, rest journaled: %w", ctx.Err())
	}
	l.cancel()
	if n := l.dropped.Load() - dropped; n > 0 {
		err = errors.Join(err, fmt.Errorf("usage: close: %d records lost", n))
	}
	return err
}

// syncer is the goroutine that fsyncs the journal every SyncEvery, and at
// once when Sync asks, until the writer stops it.
func (l *Ledger) syncer() {
	defer close(l.syncDone)
	tick := time.NewTicker(l.syncEvery)
	defer tick.Stop()
	for {
		select {
		case <-l.syncStop:
			l.syncJournal()
			return
		case <-tick.C:
		case <-l.syncWake:
		}
		l.syncJournal()
	}
}

func (l *Ledger) syncJournal() {
	if err := l.journal.syncRound(); err != nil {
		if l.syncFailing.CompareAndSwap(false, true) {
			l.log.Error("usage: journal fsync failed; records are safe from a crash of sluice, not of the machine",
				"journal", l.journal.path, "err", err)
		}
		return
	}
	if l.syncFailing.Load() {
		l.syncFailing.Store(false)
		l.log.Info("usage: journal fsync works again", "journal", l.journal.path)
	}
}

// run is the writer goroutine.
func (l *Ledger) run() {
	defer close(l.done)
	tick := time.NewTicker(l.flushEvery)
	defer tick.Stop()
	l.probe()
	l.replay()
	for {
		select {
		case <-l.stop:
			l.flush(true)
			close(l.syncStop)
			<-l.syncDone
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

// flush writes everything queued in batches to the store, or leaves it in
// the journal while the store fails, then, unless this is the last flush,
// replays the journal's sealed segments.
func (l *Ledger) flush(last bool) {
	if l.down && l.due() {
		l.probe()
	}
	for {
		l.commit(l.take(last))
		l.mu.Lock()
		more := l.queued >= l.blockSize
		l.mu.Unlock()
		if !more || last {
			break
		}
	}
	if !last {
		l.replay()
	}
}

// taken is what the writer took from the queue in one go.
type taken struct {
	blocks  [][]Record
	orphans []Record
	// seg is the journal segment sealed with the take: it holds the blocks'
	// records in their order and, unless spilled, no others. Nil when
	// nothing was sealed: the store is down, the seal failed or the
	// journal is not a regular file.
	seg     *segment
	spilled bool
	sealErr error
}

// take swaps the queue's blocks for the spare list and returns them, with
// the journal segment that holds them sealed when the store is up. With last
// set it also closes the queue.
func (l *Ledger) take(last bool) taken {
	l.mu.Lock()
	t := taken{blocks: l.blocks, orphans: l.orphans}
	l.blocks, l.orphans = l.spare, l.spareOrphans
	l.spare, l.spareOrphans = nil, nil
	l.inflight += l.queued
	l.queued = 0
	if last {
		l.closed = true
	}
	if !l.down {
		t.seg, t.sealErr = l.journal.seal()
		t.spilled = l.spilled
		if t.seg != nil {
			l.spilled = false // the new active segment is empty
		} else if t.sealErr != nil && len(t.blocks) > 0 {
			l.spilled = true // written from memory, and kept in the file
		}
	} else if len(t.blocks) > 0 {
		l.spilled = true // the writer drops its copies: the file is the only one
	}
	l.mu.Unlock()
	l.overflowing.Store(false)
	err := l.journal.prepare()
	if t.sealErr != nil && err == nil {
		err = t.sealErr
	}
	switch {
	case err != nil && !l.sealFailing:
		l.sealFailing = true
		l.log.Error("usage: journal segment not sealed; the active one grows, and its records are written to the store again, harmlessly, once sealing works",
			"journal", l.journal.path, "err", err)
	case err == nil && t.seg != nil && l.sealFailing:
		l.sealFailing = false
		l.log.Info("usage: journal segments sealed again", "journal", l.journal.path)
	}
	return t
}

// commit writes what take returned, gives the blocks back to the queue, and
// drops the sealed segment once the store holds its records.
func (l *Ledger) commit(t taken) {
	written, n := 0, 0
	for _, b := range t.blocks {
		n += len(b)
	}
	canSkip := t.seg != nil && !t.spilled // the segment holds exactly the blocks
	mayWrite := t.seg == nil || !t.spilled
	for i, b := range t.blocks {
		if mayWrite && !l.down && l.storeWrite(b) == nil {
			written += len(b)
		}
		clear(b) // let the records' strings go
		l.mu.Lock()
		l.inflight -= len(b)
		l.free = append(l.free, b[:0])
		l.mu.Unlock()
		t.blocks[i] = nil
	}
	l.spare = t.blocks[:0]
	l.journaled.Add(int64(n - written))
	switch {
	case t.seg == nil:
		// The records are in the active segment too, marked spilled
		// unless all were written; a later replay writes them again,
		// which the store skips.
	case canSkip && written == n:
		l.removeSegment(t.seg)
	default:
		if canSkip {
			t.seg.skip = written // the first records the segment holds
		}
		l.pending = append(l.pending, t.seg)
	}
	l.writeOrphans(t.orphans)
}

// writeOrphans writes the records the journal refused to the store, and
// when that fails tries the journal again; what neither takes is lost.
func (l *Ledger) writeOrphans(orphans []Record) {
	for rest := orphans; len(rest) > 0; {
		b := rest[:min(len(rest), l.batchSize)]
		rest = rest[len(b):]
		ok := !l.down && l.storeWrite(b) == nil
		// Out of the queue before it is counted Journaled or Dropped, so
		// that Stats never shows a record both queued and settled.
		l.mu.Lock()
		l.inflight -= len(b)
		l.mu.Unlock()
		if !ok {
			l.toJournal(b)
		}
	}
	clear(orphans)
	l.spareOrphans = orphans[:0]
}

// toJournal appends records to the journal and fsyncs it, counting them as
// Journaled or, when the append fails, as Dropped. Only the writer calls it,
// so no seal comes between the append and the mark.
func (l *Ledger) toJournal(recs []Record) {
	var lines []byte
	var err error
	for i := range recs {
		if lines, err = appendLine(lines, &recs[i]); err != nil {
			break
		}
	}
	if err == nil {
		err = l.journal.append(lines)
	}
	if err == nil {
		l.mu.Lock()
		l.spilled = true // the active segment holds records no block does
		l.mu.Unlock()
	}
	if err == nil {
		err = l.journal.syncFile()
	}
	if err != nil {
		l.lose(len(recs), err, true)
		return
	}
	l.journaled.Add(int64(len(recs)))
	l.tookOne()
}

// removeSegment deletes a segment whose records the store holds.
func (l *Ledger) removeSegment(s *segment) {
	if err := l.journal.remove(s); err != nil {
		l.log.Error("usage: journal segment not removed; it is written again, harmlessly, after a restart", "segment", s.path, "err", err)
	}
}

// due reports whether the store may be called while down: its retry wait is
// over.
func (l *Ledger) due() bool {
	return !time.Now().Before(l.retryAt)
}

// probe asks the store whether it answers (see Pinger), and tracks the
// answer.
func (l *Ledger) probe() {
	ctx, cancel := context.WithTimeout(l.ctx, writeTimeout)
	err := l.ping(ctx)
	cancel()
	if err != nil {
		l.failed("usage: store unreachable; records wait in the journal until it answers", err)
		return
	}
	l.recovered()
}

// storeWrite writes a batch to the store and tracks whether it works.
func (l *Ledger) storeWrite(batch []Record) error {
	ctx, cancel := context.WithTimeout(l.ctx, writeTimeout)
	err := l.store.Write(ctx, batch)
	cancel()
	if err != nil {
		l.writeErrors.Add(1)
		l.failed("usage: store write failed; records wait in the journal until it works", err, "records", len(batch))
		return err
	}
	l.recovered()
	l.written.Add(int64(len(batch)))
	return nil
}

// failed notes a store call that failed and sets the wait before the next.
func (l *Ledger) failed(msg string, err error, args ...any) {
	if !l.down {
		l.backoff = l.retryMin
		l.log.Warn(msg, append(args, "err", err)...)
	} else {
		l.backoff = min(2*l.backoff, l.retryMax)
		l.log.Debug("usage: store still failing", "retry_in", l.backoff, "err", err)
	}
	l.down = true
	l.degraded.Store(true)
	l.retryAt = time.Now().Add(l.backoff)
}

// recovered notes a store call that worked.
func (l *Ledger) recovered() {
	if l.down {
		l.log.Info("usage: store works again")
	}
	l.down, l.backoff = false, 0
	l.degraded.Store(false)
}

// replay writes the records of the journal's sealed segments to the store,
// oldest first, deleting each segment once the store holds it. A replay the
// store interrupts resumes after the last batch written; one a crash
// interrupts starts that segment over, which writes nothing twice because
// the store skips ids it holds.
func (l *Ledger) replay() {
	if len(l.pending) == 0 || l.down {
		return
	}
	n := 0
	for len(l.pending) > 0 {
		s := l.pending[0]
		bad, err := scan(s, l.batchSize, func(b []Record) error {
			if err := l.storeWrite(b); err != nil {
				return err
			}
			n += len(b)
			return nil
		})
		if bad > 0 {
			l.dropped.Add(int64(bad))
			l.log.Error("usage: records lost: unreadable journal lines skipped", "lines", bad, "segment", s.path)
		}
		if err != nil {
			if !l.down { // not the store's failure, which storeWrite logged
				l.log.Error("usage: journal replay failed", "segment", s.path, "err", err)
			}
			break
		}
		l.removeSegment(s)
		l.pending[0] = nil
		l.pending = l.pending[1:]
	}
	if n > 0 {
		l.log.Info("usage: journal replayed into the store", "records", n)
	}
}
