package limit

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// This file holds Admit's and Settle's ways with a store that can fail or
// time out (RedisStore), where a call's outcome may be unknown.
//
// Every reservation gets an id, so the store applies each of its steps once
// however many copies of a call arrive (see Store): a settlement the store
// did not take is queued and sent again until it lands (queue.go).
//
// Under FailOpen the Limiter keeps its own count (Limiter.own, a
// MemoryStore) of the requests it admits: a request is added to it before its
// Reserve goes out, and each answer from the store raises the count to at
// least the store's. When a store call fails, the store is considered down
// until the queue has drained; meanwhile own decides with the same rules, and
// each request it admits queues a late charge, so that the store counts it
// before this Limiter asks the store again. So one Limiter never admits more
// than a limit in a window by itself, store or no store.

// remote is a reservation's state in a store that can fail.
type remote struct {
	id string
	// unsure says the store may or may not hold the reservation: its
	// Reserve failed, or it was admitted by own and its late charge may or
	// may not have landed.
	unsure bool
	// refused says the request was refused after its Reserve failed: its
	// settlement takes back what that Reserve may have counted.
	refused bool
	// counted says the reservation is in own, so its settlement adjusts own
	// too.
	counted bool
	// charge is the queued late charge of a reservation admitted by own,
	// until the worker takes it. Guarded by the queue's mutex.
	charge *pending
}

// admitRemote decides a request in a store that can fail.
func (l *Limiter) admitRemote(ctx context.Context, now time.Time, res *reservation) Decision {
	rm := &remote{id: l.idPrefix + strconv.FormatUint(l.ids.Add(1), 36)}
	res.remote = rm
	if l.own != nil {
		if l.down.Load() {
			if d, ok := l.admitOwn(now, res); ok {
				return d
			}
		}
		// Counted as this instance's while its Reserve is out, so that a
		// request own admits meanwhile sees it.
		l.own.Adjust(ctx, now, res.ops)
		rm.counted = true
	}
	ok, err := l.reserve(ctx, now, rm.id, res.ops)
	if err == nil {
		if l.own != nil {
			l.own.reconcile(now, res.ops, ok)
		}
		if !ok {
			return Decision{Denial: denial(res.ops, now), Remaining: remaining(res.ops, false)}
		}
		res.remaining = remaining(res.ops, true)
		return Decision{Allowed: true, Remaining: res.remaining, Reservation: Reservation{res}}
	}
	// The Reserve may still run in the store, or may have run and lost its
	// answer: the settlement finds out which, by the reservation's id.
	cancelled := ctx.Err() != nil
	err = l.failed(ctx, "reserve", err, now)
	rm.unsure = true
	res.remaining = unknown
	switch {
	case l.policy == FailClosed:
		if !cancelled {
			l.q.mu.Lock()
			l.markDownLocked()
			l.q.mu.Unlock()
		}
		rm.refused = true
		return Decision{Remaining: unknown, StoreError: err, Reservation: Reservation{res}}
	case cancelled:
		// The client gave up, not the store; the request goes no further.
		return Decision{Allowed: true, Remaining: unknown, StoreError: err, Reservation: Reservation{res}}
	}
	return l.admitAfterFailure(now, res, err)
}

// admitOwn decides a request by own while the store is down. It reports
// false when the store came back meanwhile: then the store must decide.
func (l *Limiter) admitOwn(now time.Time, res *reservation) (Decision, bool) {
	l.q.mu.Lock()
	if !l.down.Load() || l.q.closed {
		l.q.mu.Unlock()
		return Decision{}, false
	}
	ok, _ := l.own.Reserve(context.Background(), now, "", res.ops)
	if ok {
		res.remote.unsure, res.remote.counted = true, true
		l.queueChargeLocked(res, now)
	}
	l.q.mu.Unlock()
	if !ok {
		l.fallbackRefused.Add(1)
		return Decision{Denial: denial(res.ops, now), Remaining: unknown, Fallback: true}, true
	}
	l.fallbackAdmitted.Add(1)
	res.remaining = unknown
	return Decision{Allowed: true, Remaining: unknown, StoreError: ErrStoreDown, Reservation: Reservation{res}, Fallback: true}, true
}

// admitAfterFailure marks the store down and decides by own a request whose
// Reserve failed; own holds its pre-charge. Both happen under the queue's
// lock, so that the worker cannot find the queue empty, and the store up,
// between them.
func (l *Limiter) admitAfterFailure(now time.Time, res *reservation, err error) Decision {
	rm := res.remote
	l.q.mu.Lock()
	l.markDownLocked()
	ok := l.own.holdOrRelease(now, res.ops)
	if ok {
		l.queueChargeLocked(res, now)
	}
	l.q.mu.Unlock()
	if !ok {
		rm.refused, rm.counted = true, false
		l.fallbackRefused.Add(1)
		return Decision{Denial: denial(res.ops, now), Remaining: unknown, Reservation: Reservation{res}, Fallback: true}
	}
	l.fallbackAdmitted.Add(1)
	return Decision{Allowed: true, Remaining: unknown, StoreError: err, Reservation: Reservation{res}, Fallback: true}
}

// queueChargeLocked queues the late charge of a reservation own admitted.
func (l *Limiter) queueChargeLocked(res *reservation, now time.Time) {
	// A copy of the ops: the worker writes their Used.
	p := &pending{
		s:   Settlement{ID: res.remote.id, Mode: ChargeLate, Tokens: res.tokens, Ops: slices.Clone(res.ops), Now: now},
		at:  time.Now(),
		res: res.remote,
	}
	if l.pushLocked(p) {
		res.remote.charge = p
	}
}

// settleRemote settles a reservation in a store that can fail.
func (l *Limiter) settleRemote(ctx context.Context, r *reservation, actualTokens int64, now time.Time) (Remaining, error) {
	rm := r.remote
	actual := max(actualTokens, 0)
	if rm.refused {
		actual = 0 // it was never served
	}
	delta := actual - r.tokens
	rem := r.remaining
	nowNs := now.UnixNano()
	var ops []Op
	for i := range r.ops {
		op := r.ops[i]
		if op.Expires.UnixNano() <= nowNs {
			continue
		}
		switch {
		case i < r.tokenOps && (delta != 0 || rm.unsure):
			op.Delta = delta
		case i >= r.tokenOps && rm.unsure:
			// Counted once the request was admitted: a refused one
			// takes its request back, an admitted one keeps it.
			op.Delta = 0
			if rm.refused {
				op.Delta = -1
			}
		default:
			continue
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return rem, nil
	}
	if rm.counted {
		l.own.Adjust(ctx, now, ops)
	}
	st := Settlement{ID: rm.id, Mode: SettleCounted, Tokens: r.tokens, Ops: ops, Now: now}
	if rm.unsure {
		st.Mode = SettleUnsure
	}
	queued := rem
	queued.Tokens, queued.QuotaTokens = -1, -1

	l.q.mu.Lock()
	if p := rm.charge; p != nil && !p.busy {
		// Its late charge was not sent yet: the settlement takes its place.
		p.s, p.at, p.res, rm.charge = st, time.Now(), nil, nil
		l.q.mu.Unlock()
		return queued, nil
	}
	if l.down.Load() && l.pushLocked(&pending{s: st, at: time.Now()}) {
		l.q.mu.Unlock()
		return queued, nil
	}
	l.q.mu.Unlock()

	err := l.settleNow(ctx, st)
	if err == nil {
		return settledRemaining(rem, ops), nil
	}
	err = l.failed(context.Background(), "settle", err, now)
	l.q.mu.Lock()
	l.markDownLocked()
	ok := l.pushLocked(&pending{s: st, at: time.Now()})
	l.q.mu.Unlock()
	if !ok {
		return queued, fmt.Errorf("%w: %w", ErrNotCounted, err)
	}
	return queued, nil
}

// reserve calls the store's Reserve with the limiter's deadline.
func (l *Limiter) reserve(ctx context.Context, now time.Time, id string, ops []Op) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	return l.store.Reserve(ctx, now, id, ops)
}

// settleNow sends one settlement with the limiter's deadline, detached from
// the caller's cancellation.
func (l *Limiter) settleNow(ctx context.Context, st Settlement) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	return l.store.Settle(ctx, []Settlement{st})
}
