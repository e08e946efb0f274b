package limit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Retries of queued settlements: the worker sends up to retryBatch of them in
// one round trip, and after a failure waits retryMin, doubling up to
// retryMax, before it tries again.
const (
	retryMin   = 100 * time.Millisecond
	retryMax   = time.Second
	retryBatch = 64
)

// pending is a queued settlement, or the late charge of a reservation
// admitted while the store was down.
type pending struct {
	s Settlement
	// at is when s.Now was set, on the process's clock: the worker sends s
	// with s.Now plus the time since, so that the counters' lifetimes and
	// expiry are reckoned from the time of sending.
	at time.Time
	// res is the reservation whose late charge this is; nil for a
	// settlement.
	res *remote
	// busy says the worker took it to send: it is out of the queue, and
	// Settle must not replace it.
	busy bool
}

// queue holds what waits for the store, oldest first, and the state of the
// worker goroutine that sends it. The worker runs only while there is
// something to send (or the store is down), and stops by itself.
type queue struct {
	mu sync.Mutex // guards the fields down to wg, and every change of Limiter.down
	// ring holds the items waiting: ring[(head+i)%len(ring)] for i < n. It
	// grows up to size.
	ring    []*pending
	head, n int
	// size bounds the items held, waiting or being sent: n + sending.
	size    int
	sending int  // items the worker took and is sending, at most size-1
	running bool // the worker goroutine runs
	closed  bool // Close was called: nothing more is queued
	// stop is closed by Close, to wake a waiting worker.
	stop chan struct{}
	// ctx is the worker's store calls' context; Close cancels it when its
	// own context ends, and the worker then drops what is left.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the worker

	queued, landed, dropped, expired, retryErrors atomic.Uint64
}

func (q *queue) init(size int) {
	if size <= 0 {
		size = DefaultQueueSize
	}
	q.size = max(size, 2)
	q.stop = make(chan struct{})
	q.ctx, q.cancel = context.WithCancel(context.Background())
}

// pushLocked queues p behind the others, dropping the oldest waiting when
// the queue is full (since the worker sends at most size-1 at a time, one is
// waiting), and makes sure the worker runs. It reports false, queueing
// nothing, once the Limiter is closed.
func (l *Limiter) pushLocked(p *pending) bool {
	q := &l.q
	if q.closed {
		return false
	}
	if q.n+q.sending >= q.size {
		q.dropLocked(q.popLocked())
	}
	if q.n == len(q.ring) {
		q.growLocked()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = p
	q.n++
	q.queued.Add(1)
	l.startLocked()
	return true
}

// markDownLocked records that a store call failed: under FailOpen, own
// decides until the worker has emptied the queue.
func (l *Limiter) markDownLocked() {
	l.down.Store(true)
	l.startLocked()
}

// startLocked starts the worker unless it runs or the Limiter is closed.
func (l *Limiter) startLocked() {
	q := &l.q
	if q.running || q.closed {
		return
	}
	q.running = true
	q.wg.Add(1)
	go l.run()
}

func (q *queue) growLocked() {
	ring := make([]*pending, min(max(2*len(q.ring), 64), q.size))
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// popLocked takes the oldest item; the queue must not be empty.
func (q *queue) popLocked() *pending {
	p := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	return p
}

// pushFrontLocked puts an item the worker could not send back at the front.
// Items being sent count towards the bound, so there is room; were there
// none, the item would be the oldest and dropped.
func (q *queue) pushFrontLocked(p *pending) {
	p.busy = false
	if q.n >= q.size {
		q.dropLocked(p)
		return
	}
	if q.n == len(q.ring) {
		q.growLocked()
	}
	q.head = (q.head - 1 + len(q.ring)) % len(q.ring)
	q.ring[q.head] = p
	q.n++
}

// dropLocked counts p as given up.
func (q *queue) dropLocked(p *pending) {
	if p.res != nil && p.res.charge == p {
		p.res.charge = nil
	}
	q.dropped.Add(1)
}

// takeLocked moves up to retryBatch items (and fewer than size) out of the
// queue to send, with
// their time brought forward and their ended windows left out; items whose
// windows all ended are counted as expired and not sent.
func (q *queue) takeLocked(taken []*pending) []*pending {
	for q.n > 0 && len(taken) < min(retryBatch, q.size-1) {
		p := q.popLocked()
		now := p.s.Now.Add(time.Since(p.at))
		p.s.Now, p.at = now, time.Now()
		ops := p.s.Ops[:0]
		for _, op := range p.s.Ops {
			if op.Expires.After(now) {
				ops = append(ops, op)
			}
		}
		p.s.Ops = ops
		if len(ops) == 0 {
			if p.res != nil && p.res.charge == p {
				p.res.charge = nil
			}
			q.expired.Add(1)
			continue
		}
		p.busy = true
		taken = append(taken, p)
	}
	q.sending = len(taken)
	return taken
}

// run is the worker: it sends what is queued, in batches, until the queue
// is empty; after a failure it waits (retryMin, doubling up to retryMax) and
// sends the same items again, which the store applies once however often
// they arrive. It clears Limiter.down once the queue is empty after a
// success, or after waiting once with nothing to send. It stops when
// nothing is left, when the store was closed (dropping the rest), or when
// Close gives up (dropping the rest).
func (l *Limiter) run() {
	q := &l.q
	defer q.wg.Done()
	stop := q.stop
	backoff := retryMin
	waited := false // waited with nothing to send while down
	var taken []*pending
	var batch []Settlement
	for {
		q.mu.Lock()
		if q.ctx.Err() != nil {
			l.stopLocked()
			q.mu.Unlock()
			return
		}
		taken = q.takeLocked(taken[:0])
		if len(taken) == 0 {
			if !l.down.Load() || q.closed || waited {
				l.down.Store(false)
				q.running = false
				q.mu.Unlock()
				return
			}
			// Down with nothing to send (a request's Reserve failed):
			// wait, then let requests try the store again.
			q.mu.Unlock()
			stop = l.wait(stop, backoff)
			waited = true
			continue
		}
		batch = batch[:0]
		for _, p := range taken {
			batch = append(batch, p.s)
		}
		q.mu.Unlock()

		ctx, cancel := context.WithTimeout(q.ctx, l.timeout)
		err := l.store.Settle(ctx, batch)
		cancel()
		// The callers' clock, which the log's rate limit runs on.
		now := batch[0].Now
		clear(batch) // let the ops go

		q.mu.Lock()
		q.sending = 0
		if err == nil {
			for _, p := range taken {
				if p.res != nil && p.res.charge == p {
					p.res.charge = nil
				}
			}
			q.landed.Add(uint64(len(taken)))
			if q.n == 0 {
				l.down.Store(false)
			}
			q.mu.Unlock()
			clear(taken)
			backoff, waited = retryMin, false
			continue
		}
		for i := len(taken) - 1; i >= 0; i-- {
			q.pushFrontLocked(taken[i])
		}
		clear(taken)
		l.down.Store(true)
		if errors.Is(err, ErrStoreClosed) {
			l.stopLocked()
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		if q.ctx.Err() == nil {
			q.retryErrors.Add(1)
			l.logFailure(fmt.Errorf("limit store settle (retry): %w", err), now)
		}
		stop = l.wait(stop, backoff)
		backoff = min(2*backoff, retryMax)
	}
}

// stopLocked drops what is queued and marks the worker stopped.
func (l *Limiter) stopLocked() {
	q := &l.q
	for q.n > 0 {
		q.dropLocked(q.popLocked())
	}
	l.down.Store(false)
	q.running = false
}

// wait waits for d, or until stop is closed (once: it returns nil for stop
// after that), or until Close gives up.
func (l *Limiter) wait(stop chan struct{}, d time.Duration) chan struct{} {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
		return nil // Close: try again at once, and wait as before after that
	case <-l.q.ctx.Done():
	}
	return stop
}

// Close stops the Limiter's background work. It keeps sending the queued
// settlements until the queue is empty or ctx ends, then drops what is left
// (counted in Stats.Dropped), and returns once the worker goroutine has
// stopped, with an error when ctx ended first or settlements were dropped.
// Admit and Settle still work after Close, but nothing is queued any more: a
// settlement the store does not take is lost (Settle returns ErrNotCounted).
// Close does not close the Store; close it after. Closing twice is harmless.
// A Limiter on a MemoryStore has no background work.
func (l *Limiter) Close(ctx context.Context) error {
	if l.local {
		return nil
	}
	q := &l.q
	dropped := q.dropped.Load()
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.stop)
	}
	q.mu.Unlock()
	done := make(chan struct{})
	go func() {
		q.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		q.cancel()
		<-done
		err = fmt.Errorf("limit: close: %w", ctx.Err())
	}
	q.cancel()
	if n := q.dropped.Load() - dropped; n > 0 {
		err = errors.Join(err, fmt.Errorf("limit: close: %d queued settlements dropped", n))
	}
	return err
}

// Stats are a Limiter's counters, for metrics. Queued = Landed + Dropped +
// Expired + QueueLen. With a MemoryStore they stay zero: its calls never
// fail.
type Stats struct {
	// StoreDown says a store call failed and the queue has not drained
	// since: under FailOpen, the limiter's own count decides meanwhile.
	StoreDown bool
	// QueueLen is how many settlements and late charges wait for the
	// store, those being sent included.
	QueueLen int
	// Queued counts the settlements and late charges ever queued: those
	// the store did not take, or that were not sent because it was down.
	Queued uint64
	// Landed counts queued ones the store took.
	Landed uint64
	// Dropped counts queued ones given up: the oldest when the queue was
	// full, and what was left when Close gave up or the store was closed.
	// The store's counts lack their usage.
	Dropped uint64
	// Expired counts queued ones whose windows had all ended before the
	// store took them, so there was nothing left to count them in.
	Expired uint64
	// RetryErrors counts the worker's sends that failed.
	RetryErrors uint64
	// FallbackAdmitted and FallbackRefused count the requests the
	// limiter's own count admitted and refused (FailOpen only).
	FallbackAdmitted, FallbackRefused uint64
}

// Stats returns the Limiter's counters.
func (l *Limiter) Stats() Stats {
	q := &l.q
	q.mu.Lock()
	n := q.n + q.sending
	q.mu.Unlock()
	return Stats{
		StoreDown:        l.down.Load(),
		QueueLen:         n,
		Queued:           q.queued.Load(),
		Landed:           q.landed.Load(),
		Dropped:          q.dropped.Load(),
		Expired:          q.expired.Load(),
		RetryErrors:      q.retryErrors.Load(),
		FallbackAdmitted: l.fallbackAdmitted.Load(),
		FallbackRefused:  l.fallbackRefused.Load(),
	}
}
