// Package breaker is the per-backend circuit breaker: it takes a backend out
// of rotation after failures, for a set time or for as long as the backend's
// own Retry-After asks, then lets one probe request decide whether to put it
// back. Its rules are those of Azure API Management's backend circuit breaker
// (a count or a percentage of failures within an interval, status ranges and
// error kinds, trip duration, acceptRetryAfter), several per backend.
//
// Callers ask before a request (Allow, which hands out a Ticket) and report
// after it (Done). Every state change starts a new generation, and Done drops
// outcomes whose ticket is from an earlier one, so a slow request sent before
// a trip can neither trip the breaker again nor close it after the fact.
//
// The package is a mechanism: it imports no other Sluice package, reads no
// clock (every method that needs the time takes it) and starts no goroutines.
package breaker

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// State is a breaker's state.
type State uint8

// The states.
const (
	Closed   State = iota // requests flow and their outcomes are counted
	Open                  // requests are refused until the trip expires
	HalfOpen              // one probe request decides between Closed and Open
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "state " + strconv.Itoa(int(s))
}

// Outcome is what became of an allowed request.
type Outcome struct {
	// Status is the response's HTTP status, 0 when there was no response.
	Status int
	// Err is how the request failed without a response.
	Err ErrorKind
	// RetryAfter is how long the backend asked to be left alone (from
	// wire.RetryAfter), 0 when it did not say.
	RetryAfter time.Duration
	// Ignore says the client cancelled: the outcome is neither a success nor
	// a failure, and a probe's slot is released for the next request.
	Ignore bool
}

// Change is a state change, as the breaker's onChange function learns of it.
type Change struct {
	Breaker  string // the breaker's name
	From, To State
	// Reason says why, such as "3 failures within 10s (last: status 429);
	// retry-after 7s" or "probe succeeded (status 200)".
	Reason string
	// Until is, when To is Open, the moment the trip expires; it is zero
	// when the breaker stays open until ForceClose.
	Until time.Time
}

// Ticket is Allow's permission for one request; pass it to Done. The zero
// Ticket belongs to no generation and Done ignores it.
type Ticket struct {
	gen   uint64 // the generation Allow saw
	probe bool   // the request is the half-open probe of gen
}

// Snapshot is a breaker's state at a moment, for metrics and the admin API.
type Snapshot struct {
	// State is the state. A trip that expired still reads Open until the
	// next Allow makes the breaker half-open; ReopenAt is then in the past.
	State State
	// Failures is the failures by any rule within the longest rule interval.
	// Windows are emptied on every state change, so it is 0 unless closed.
	Failures int64
	// Requests is the requests within the same interval. Successes are
	// counted only when some rule uses Percentage (otherwise a success costs
	// nothing), so without one it is 0.
	Requests int64
	// ReopenAt is, when open, the moment the trip expires; it is zero when
	// closed, half-open or open until ForceClose.
	ReopenAt time.Time
	// LastReason is the reason of the last change of state.
	LastReason string
	// Trips counts the changes to Open since New.
	Trips uint64
}

// Breaker is a circuit breaker for one backend. Create it with New; it is
// safe for concurrent use. Available, and Allow and Done in the closed state,
// take no lock and allocate nothing; state changes take a mutex.
type Breaker struct {
	name     string
	onChange func(Change)

	// cur is the current phase. It is read without a lock, and replaced,
	// never modified, with mu held.
	cur atomic.Pointer[phase]

	// probe is the highest generation whose single probe has been claimed
	// (see claim); the probe of the current generation is in flight when it
	// equals cur's generation. It changes by compare-and-swap only, except
	// that the change to half-open sets it with mu held.
	probe atomic.Uint64

	// mu guards storing cur, and the changes waiting for onChange (pending,
	// notifying). Functions that need it held end in Locked.
	mu        sync.Mutex
	pending   []Change
	notifying bool // a goroutine is calling onChange; it delivers pending too
}

// phase is a stretch of a breaker's life between two state changes. It is
// immutable, but for the counters in its windows. Every new phase has a new,
// higher generation, except the copy SetRules makes, which keeps the state,
// the trip and the generation, and so the tickets handed out.
type phase struct {
	gen     uint64
	state   State
	until   time.Time // Open: when the trip expires, unless forever
	forever bool      // Open: until ForceClose
	reason  string    // why the breaker entered the state
	trips   uint64    // changes to Open, this one included
	rules   *ruleSet
	win     []*window // Closed: one per rule of rules
	all     *window   // Closed: failures by any rule over the longest interval; win[0] with one rule
}

func (p *phase) expired(now time.Time) bool {
	return !p.forever && !now.Before(p.until)
}

// New returns a closed breaker. onChange, when not nil, is called on every
// change of state, in order and outside any lock, so it may call the breaker.
// It should not block: the goroutine that calls it (the one that made the
// change, or one already calling it for an earlier change) waits for it. A
// breaker without rules never trips by itself; ForceOpen still opens it.
func New(name string, rules []Rule, onChange func(Change)) *Breaker {
	b := &Breaker{name: name, onChange: onChange}
	b.cur.Store(closed(1, compile(rules), "", 0))
	return b
}

// closed returns a closed phase with empty windows for rs.
func closed(gen uint64, rs *ruleSet, reason string, trips uint64) *phase {
	p := &phase{gen: gen, state: Closed, reason: reason, trips: trips, rules: rs, win: make([]*window, len(rs.rules))}
	for i, r := range rs.rules {
		p.win[i] = newWindow(r.Interval)
	}
	switch len(p.win) {
	case 0:
	case 1:
		p.all = p.win[0]
	default:
		p.all = newWindow(rs.longest)
	}
	return p
}

// SetRules replaces the rules, on a configuration reload. The state, and
// tickets already handed out, stay valid. Unless the rules are the same as
// before, the failures and requests counted so far are forgotten.
func (b *Breaker) SetRules(rules []Rule) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.cur.Load()
	if cur.rules.equal(rules) {
		return
	}
	rs := compile(rules)
	if cur.state == Closed {
		b.cur.Store(closed(cur.gen, rs, cur.reason, cur.trips))
		return
	}
	next := *cur
	next.rules = rs
	b.cur.Store(&next)
}

// Available reports whether Allow would let a request through now: the
// breaker is closed, or its trip expired and no probe is in flight. A pool
// uses it to skip a backend without claiming the probe.
func (b *Breaker) Available(now time.Time) bool {
	p := b.cur.Load()
	switch p.state {
	case Closed:
		return true
	case Open:
		return p.expired(now) && b.probe.Load() < p.gen
	}
	return b.probe.Load() < p.gen
}

// Allow asks to send a request. It refuses while the breaker is open and the
// trip has not expired, and while it is half-open with the probe in flight.
// Once the trip has expired, the first caller turns the breaker half-open
// and its request is the probe; everyone else is refused until the probe's
// outcome is reported. Every ticket must be passed to Done exactly once: a
// probe never reported keeps the breaker half-open.
func (b *Breaker) Allow(now time.Time) (Ticket, bool) {
	p := b.cur.Load()
	switch p.state {
	case Closed:
		return Ticket{gen: p.gen}, true
	case Open:
		if !p.expired(now) || !b.claim(p.gen) {
			return Ticket{}, false
		}
		return b.halfOpen(p.gen, now)
	}
	if !b.claim(p.gen) {
		return Ticket{}, false
	}
	return Ticket{gen: p.gen, probe: true}, true
}

// claim makes the caller the one prober of generation gen, and reports
// whether it is. Generations only grow, so a claim for an older generation
// than the one recorded comes from a stale reading and fails.
func (b *Breaker) claim(gen uint64) bool {
	for {
		c := b.probe.Load()
		if c >= gen {
			return false
		}
		if b.probe.CompareAndSwap(c, gen) {
			return true
		}
	}
}

// halfOpen turns the expired open phase gen half-open for the caller, who
// claimed its probe, and returns the probe's ticket.
func (b *Breaker) halfOpen(gen uint64, now time.Time) (Ticket, bool) {
	b.mu.Lock()
	cur := b.cur.Load()
	switch {
	case cur.gen == gen && cur.state == Open && cur.expired(now):
		next := &phase{gen: gen + 1, state: HalfOpen, reason: "trip expired", trips: cur.trips, rules: cur.rules}
		b.probe.Store(next.gen)
		b.publishLocked(cur, next)
		b.mu.Unlock()
		b.notify()
		return Ticket{gen: next.gen, probe: true}, true
	case cur.state == Closed:
		// ForceClose came first.
		b.mu.Unlock()
		return Ticket{gen: cur.gen}, true
	}
	// ForceOpen came first. The claim on gen can stay: the new phase has a
	// later generation, and a claim only blocks its own.
	b.mu.Unlock()
	return Ticket{}, false
}

// Done reports the outcome of the request Allow gave t for. An outcome whose
// ticket is from before the last state change is dropped; a probe's ticket is
// of the half-open state it started, so its outcome always settles that
// state, unless ForceOpen or ForceClose settled it first.
//
// A probe that is not a failure by any rule closes the breaker; a failing one
// opens it again. In the closed state a failure is counted for each rule it
// fails, and the breaker trips when a rule's condition holds; when several
// do, the one with the longest trip decides. A success writes nothing unless
// some rule uses Percentage, and then only atomic counters.
func (b *Breaker) Done(t Ticket, now time.Time, o Outcome) {
	if t.probe {
		b.doneProbe(t, now, o)
		return
	}
	p := b.cur.Load()
	if p.gen != t.gen || o.Ignore {
		return // only the closed state hands out tickets that are not probes
	}
	rs := p.rules
	failed := false
	for i := range rs.rules {
		r, w := &rs.rules[i], p.win[i]
		if r.Percentage > 0 {
			w.add(&w.req, w.epoch(now))
		}
		if r.fails(o) {
			w.add(&w.fail, w.epoch(now))
			failed = true
		}
	}
	if len(p.win) > 1 {
		if rs.requests {
			p.all.add(&p.all.req, p.all.epoch(now))
		}
		if failed {
			p.all.add(&p.all.fail, p.all.epoch(now))
		}
	}
	if failed {
		b.check(p, now, o)
	}
}

// check trips closed phase p if failure o made a rule's condition hold.
func (b *Breaker) check(p *phase, now time.Time, o Outcome) {
	rs := p.rules
	best, reason := -1, ""
	var trip time.Duration
	for i := range rs.rules {
		r, w := &rs.rules[i], p.win[i]
		if !r.fails(o) {
			continue
		}
		why, ok := r.holds(w, w.epoch(now))
		if !ok {
			continue
		}
		if d, note := r.trip(o); best < 0 || d > trip {
			best, trip = i, d
			reason = rs.prefix(i) + why + " (last: " + describe(o) + ")" + note
		}
	}
	if best < 0 {
		return
	}
	b.mu.Lock()
	cur := b.cur.Load()
	if cur.gen != p.gen || cur.state != Closed {
		b.mu.Unlock() // another failure tripped it, or ForceOpen did
		return
	}
	b.openLocked(cur, now.Add(trip), false, reason)
	b.mu.Unlock()
	b.notify()
}

func (b *Breaker) doneProbe(t Ticket, now time.Time, o Outcome) {
	if o.Ignore {
		b.probe.CompareAndSwap(t.gen, 0)
		return
	}
	b.mu.Lock()
	cur := b.cur.Load()
	if cur.gen != t.gen || cur.state != HalfOpen {
		b.mu.Unlock()
		return
	}
	rs := cur.rules
	best, note := -1, ""
	var trip time.Duration
	for i := range rs.rules {
		if !rs.rules[i].fails(o) {
			continue
		}
		if d, n := rs.rules[i].trip(o); best < 0 || d > trip {
			best, trip, note = i, d, n
		}
	}
	if best < 0 {
		b.publishLocked(cur, closed(cur.gen+1, rs, "probe succeeded ("+describe(o)+")", cur.trips))
	} else {
		b.openLocked(cur, now.Add(trip), false, rs.prefix(best)+"probe failed ("+describe(o)+")"+note)
	}
	b.mu.Unlock()
	b.notify()
}

// ReopenAt returns, when the breaker is open, the moment its trip expires
// (in the past when it has, but no request has come since). It returns the
// zero Time when the breaker is closed or half-open, or open until
// ForceClose.
func (b *Breaker) ReopenAt() time.Time {
	p := b.cur.Load()
	if p.state != Open || p.forever {
		return time.Time{}
	}
	return p.until
}

// Snapshot returns the breaker's state and counts at now.
func (b *Breaker) Snapshot(now time.Time) Snapshot {
	p := b.cur.Load()
	s := Snapshot{State: p.state, LastReason: p.reason, Trips: p.trips}
	if p.state == Open && !p.forever {
		s.ReopenAt = p.until
	}
	if w := p.all; w != nil {
		e := w.epoch(now)
		s.Failures, s.Requests = int64(w.sum(&w.fail, e)), int64(w.sum(&w.req, e))
	}
	return s
}

// ForceOpen opens the breaker for d, or, when d <= 0, until ForceClose; an
// active health check calls it. A probe in flight is forgotten. When the
// breaker is already open, the later of the two ends applies, and no Change
// is reported.
func (b *Breaker) ForceOpen(now time.Time, d time.Duration, reason string) {
	forever, until := d <= 0, time.Time{}
	if !forever {
		until = now.Add(d)
	}
	b.mu.Lock()
	cur := b.cur.Load()
	if cur.state == Open {
		if !cur.forever && (forever || until.After(cur.until)) {
			b.openLocked(cur, until, forever, reason)
		}
		b.mu.Unlock()
		return
	}
	b.openLocked(cur, until, forever, reason)
	b.mu.Unlock()
	b.notify()
}

// ForceClose closes the breaker with empty windows, unless it is closed
// already; an active health check calls it. A probe in flight is forgotten.
func (b *Breaker) ForceClose(now time.Time, reason string) {
	b.mu.Lock()
	cur := b.cur.Load()
	if cur.state == Closed {
		b.mu.Unlock()
		return
	}
	b.publishLocked(cur, closed(cur.gen+1, cur.rules, reason, cur.trips))
	b.mu.Unlock()
	b.notify()
}

// openLocked replaces cur with an open phase of the next generation.
func (b *Breaker) openLocked(cur *phase, until time.Time, forever bool, reason string) {
	next := &phase{gen: cur.gen + 1, state: Open, until: until, forever: forever, reason: reason, trips: cur.trips, rules: cur.rules}
	if cur.state != Open {
		next.trips++
	}
	b.publishLocked(cur, next)
}

// publishLocked makes next, which follows cur, the current phase, and queues
// the Change for notify.
func (b *Breaker) publishLocked(cur, next *phase) {
	b.cur.Store(next)
	if b.onChange == nil || cur.state == next.state {
		return
	}
	c := Change{Breaker: b.name, From: cur.state, To: next.state, Reason: next.reason}
	if next.state == Open && !next.forever {
		c.Until = next.until
	}
	b.pending = append(b.pending, c)
}

// notify calls onChange with the queued changes, in the order they were made,
// without holding mu. One goroutine delivers at a time: changes queued while
// it does, by others or by onChange itself, are delivered by it too.
func (b *Breaker) notify() {
	if b.onChange == nil {
		return
	}
	b.mu.Lock()
	if b.notifying {
		b.mu.Unlock()
		return
	}
	b.notifying = true
	for len(b.pending) > 0 {
		batch := b.pending
		b.pending = nil
		b.mu.Unlock()
		b.deliver(batch)
		b.mu.Lock()
	}
	b.notifying = false
	b.mu.Unlock()
}

// deliver calls onChange for each change of batch. Should onChange panic,
// another goroutine may deliver the changes that follow.
func (b *Breaker) deliver(batch []Change) {
	ok := false
	defer func() {
		if !ok {
			b.mu.Lock()
			b.notifying = false
			b.mu.Unlock()
		}
	}()
	for _, c := range batch {
		b.onChange(c)
	}
	ok = true
}
