// Package limit enforces token and request limits and token quotas, exactly
// under concurrency and across gateway instances. A request reserves its
// token estimate at admission, atomically across all its rules' counters, and
// settles with the real usage afterwards, so concurrent requests cannot slip
// past a limit while earlier ones are still running (the check-then-charge
// race of peers that charge only after the response).
//
// Limits count in fixed UTC windows, as Azure API Management's
// azure-openai-token-limit does: tokens and requests per minute, and token
// quotas per hour, day, week (from Monday), month or year. The counters live
// in a Store: MemoryStore for one instance, RedisStore for several sharing
// one Redis, where admission and settlement cost one round trip each, every
// call has a deadline, and a failing Redis answers by policy (fail open or
// closed) instead of hanging the request. A settlement Redis does not take is
// retried in the background until it lands, once; under fail_open, each
// instance meanwhile decides by its own count, so that it never admits more
// than a limit in a window by itself. Limiter.Read reports the counters of
// the current windows without changing them, for operators.
//
// The package is a mechanism: it knows counters, windows and stores, not
// HTTP, and imports no other Sluice package. Windows are reckoned on the
// times the caller passes; only the background retries wait on the process's
// clock.
package limit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"
)

// DefaultTimeout is how long a store call may take when Options.Timeout is
// not set.
const DefaultTimeout = 50 * time.Millisecond

// DefaultQueueSize is how many settlements wait for a failing store when
// Options.QueueSize is not set.
const DefaultQueueSize = 10000

// Expiry margins: how long a store keeps a counter after its window ends, so
// a request that settles after its window (a long stream) still finds the
// counter it reserved in, and instances whose clocks are slightly behind
// still see a window's count.
const (
	minuteMargin = time.Minute
	quotaMargin  = time.Hour
)

// logEvery is the least time between two log lines about store failures, so
// an outage does not flood the log.
const logEvery = 10 * time.Second

// ErrSettled is Settle's answer to a reservation that was settled before.
var ErrSettled = errors.New("limit: reservation already settled")

// ErrStoreDown is the StoreError of a decision made by the limiter's own
// count, without asking the store, because a store call failed moments ago
// (see Options.OnStoreError).
var ErrStoreDown = errors.New("limit: counter store unreachable; decided by this instance's count")

// ErrStoreClosed marks the errors of a store that was closed: the Limiter
// stops retrying calls to it.
var ErrStoreClosed = errors.New("limit: counter store closed")

// ErrNotCounted is Settle's error when the store failed and the settlement
// cannot be retried, because the Limiter is closed: the usage is missing
// from the store's count.
var ErrNotCounted = errors.New("limit: settlement lost")

// Key says which counter a rule uses: whose requests count together.
type Key uint8

// The keys.
const (
	KeySubscription      Key = iota // one counter per subscription
	KeyProduct                      // one per product, shared by its subscriptions
	KeySubscriptionModel            // one per subscription and model
	KeyGlobal                       // one for all requests
)

// String returns "subscription", "product", "subscription-model" or "global".
func (k Key) String() string {
	switch k {
	case KeySubscription:
		return "subscription"
	case KeyProduct:
		return "product"
	case KeySubscriptionModel:
		return "subscription-model"
	case KeyGlobal:
		return "global"
	}
	return "key " + strconv.Itoa(int(k))
}

// Kind is the kind of a limit.
type Kind uint8

// The kinds. Azure answers TokensPerMinute with 429 and Quota with 403.
const (
	TokensPerMinute Kind = iota
	RequestsPerMinute
	Quota
)

// String returns "tokens-per-minute", "requests-per-minute" or "quota".
func (k Kind) String() string {
	switch k {
	case TokensPerMinute:
		return "tokens-per-minute"
	case RequestsPerMinute:
		return "requests-per-minute"
	case Quota:
		return "quota"
	}
	return "kind " + strconv.Itoa(int(k))
}

// Rule is one limit definition: up to three limits on one counter key. A
// Rule must not change while a Limiter may use it.
type Rule struct {
	// ID names the rule in every counter key, so it must be unique and
	// stable across reloads and instances (such as "standard/0"): a rule
	// whose ID stays keeps its counts over a reload.
	ID  string
	Key Key
	// TokensPerMinute limits the tokens (prompt plus completion) per minute
	// window; 0: no limit.
	TokensPerMinute int64
	// RequestsPerMinute limits the requests per minute window; 0: no limit.
	RequestsPerMinute int64
	// TokenQuota limits the tokens per QuotaPeriod window; 0: no quota.
	TokenQuota  int64
	QuotaPeriod Period
	// AdaptiveShare, with AdaptiveOf, makes TokensPerMinute a base: the
	// effective limit is the base plus AdaptiveShare times what AdaptiveOf's
	// tokens-per-minute counter has left in the current minute, read in the
	// same atomic step as the check. AdaptiveOf must be in the same Request.
	AdaptiveShare float64
	AdaptiveOf    *Rule
}

// Validate reports a rule that Admit cannot use.
func (r *Rule) Validate() error {
	switch {
	case r.ID == "":
		return errors.New("limit rule without an id")
	case r.Key > KeyGlobal:
		return fmt.Errorf("limit rule %q: unknown %v", r.ID, r.Key)
	case r.TokensPerMinute < 0 || r.RequestsPerMinute < 0 || r.TokenQuota < 0:
		return fmt.Errorf("limit rule %q: negative limit", r.ID)
	case r.QuotaPeriod > Year:
		return fmt.Errorf("limit rule %q: unknown %v", r.ID, r.QuotaPeriod)
	}
	return nil
}

// counter returns the rule's counter of the kind for s in the window that
// starts at start.
func (r *Rule) counter(kind Kind, p Period, s *Subject, start int64) Counter {
	c := Counter{Rule: r.ID, Key: r.Key, Kind: kind, Period: p, Start: start}
	switch r.Key {
	case KeySubscription:
		c.Subject = s.Subscription
	case KeyProduct:
		c.Subject = s.Product
	case KeySubscriptionModel:
		c.Subject, c.Model = s.Subscription, s.Model
	default:
		c.Subject = "global"
	}
	return c
}

// Subject is who a request counts for; each rule picks its counter from
// these by its Key. Model should be the routed model or deployment, not a
// client's free text: every distinct value is a counter.
type Subject struct{ Subscription, Product, Model string }

// Request is a request asking for admission.
type Request struct {
	// Rules are the rules that apply, each at most once.
	Rules   []*Rule
	Subject Subject
	// Tokens is what to reserve now in every token counter: the prompt
	// estimate plus max_tokens. 0 charges after the fact (Azure's
	// estimate-prompt-tokens=false): the request is admitted while each
	// counter is under its limit, and Settle charges what it used.
	Tokens int64
	// RequestsOnly counts the request against the rules' requests per
	// minute alone, leaving their token counters and quotas untouched: an
	// answer that costs no tokens, such as a cache hit.
	RequestsOnly bool
	Now          time.Time
}

// Denial says which limit refused a request.
type Denial struct {
	Rule       *Rule
	Kind       Kind
	Limit      int64
	Used       int64         // the counter's value, without this request
	Want       int64         // what this request asked for: its tokens, or 1 request
	RetryAfter time.Duration // until the window (minute, or quota period) ends
	// TooLarge says Want alone exceeds Limit: the request can never fit,
	// and retrying it is pointless.
	TooLarge bool
}

// Remaining is the least left across the rules of each kind, after the
// request: what Azure's remaining-tokens and remaining-quota-tokens report.
// A field is -1 when no rule of that kind applies or the store could not
// tell.
type Remaining struct{ Tokens, Requests, QuotaTokens int64 }

var unknown = Remaining{-1, -1, -1}

// Reservation is what an admitted request holds until it settles: its
// counters, their windows, and the tokens reserved. The zero Reservation
// settles to nothing. Copies share one state, so settling any copy settles
// them all.
type Reservation struct{ r *reservation }

// Tokens returns the tokens reserved in each token counter: the request's
// Tokens, or 0 when it was refused or charges after the fact. A request
// admitted while the store failed reserved its Tokens in the limiter's own
// count.
func (r Reservation) Tokens() int64 {
	if r.r == nil || r.r.remote != nil && r.r.remote.refused {
		return 0
	}
	return r.r.tokens
}

// inlineOps is how many counters a reservation holds without a second
// allocation: one rule with all three limits, or two with two.
const inlineOps = 4

type reservation struct {
	settled atomic.Bool
	tokens  int64
	// ops are the counters: ops[:tokenOps] count tokens and are settled;
	// the rest count requests.
	ops       []Op
	tokenOps  int
	adaptive  bool      // some op's limit is a share of another's remainder
	remaining Remaining // after admission
	// remote is the reservation's state in a store that can fail; nil
	// with a MemoryStore.
	remote *remote
	inline [inlineOps]Op
}

// Decision is Admit's answer.
type Decision struct {
	Allowed bool
	Denial  *Denial // when refused by a limit; nil when admitted or refused by a store failure
	// Remaining is what is left after this request.
	Remaining Remaining
	// Reservation must be settled exactly once, whether Allowed or not.
	Reservation Reservation
	// StoreError is set when the store failed, or is considered down, and
	// the policy decided: FailClosed refuses (the gateway answers 503);
	// FailOpen decides by the limiter's own count, and an admitted request
	// carries the error too (a refused one has a Denial instead).
	StoreError error
	// Fallback says the limiter's own count decided, not the store.
	Fallback bool
}

// Policy says what Admit does when the store fails or times out.
type Policy uint8

// The policies.
const (
	// FailOpen decides by the limiter's own count of the requests it
	// admitted in each window (starting from what the store last
	// reported), with the same rules, until the store answers again and
	// has been charged everything admitted meanwhile: an outage lets each
	// instance admit up to the limit by itself rather than stopping
	// traffic.
	FailOpen Policy = iota
	// FailClosed refuses the request.
	FailClosed
)

// String returns "fail_open" or "fail_closed".
func (p Policy) String() string {
	switch p {
	case FailOpen:
		return "fail_open"
	case FailClosed:
		return "fail_closed"
	}
	return "policy " + strconv.Itoa(int(p))
}

// Options configure a Limiter.
type Options struct {
	// Store keeps the counters; nil: a new MemoryStore.
	Store Store
	// OnStoreError decides requests while the store fails; the zero
	// value is FailOpen.
	OnStoreError Policy
	// Timeout bounds each store call; 0: DefaultTimeout. MemoryStore
	// calls never wait for I/O and get no deadline. RedisStore's socket
	// timeouts default to DefaultTimeout too: set its URL's dial_timeout,
	// read_timeout and write_timeout when this is longer.
	Timeout time.Duration
	// Logger receives a warning about store failures, at most one per
	// 10 seconds; nil: no logging.
	Logger *slog.Logger
	// QueueSize bounds the settlements (and late charges) waiting to be
	// sent again after the store failed, at least 2; beyond it the oldest
	// waiting is dropped and counted in Stats.Dropped. 0:
	// DefaultQueueSize. A MemoryStore never fails and needs no queue.
	QueueSize int
}

// Limiter admits requests against their rules' limits and settles their
// usage. It is safe for concurrent use.
//
// With a store that can fail (not a MemoryStore), a settlement the store does
// not take is queued and retried in the background until it lands; Close
// stops that. Under FailOpen the Limiter also keeps its own count of what it
// admits, which decides while the store is down.
type Limiter struct {
	store   Store
	local   bool // the store is a MemoryStore: no deadlines, ids or retries needed
	policy  Policy
	timeout time.Duration
	log     *slog.Logger

	// With a store that can fail:
	idPrefix string        // names this limiter's reservations in the store
	ids      atomic.Uint64 // the last reservation number
	// own counts, per counter and window, what this limiter admitted
	// (reservations out to the store included) and at least what the store
	// last reported; under FailOpen it decides while the store is down. Nil
	// under FailClosed.
	own *MemoryStore
	// down is set when a store call fails, and cleared once the queue has
	// drained (or, with nothing queued, after a pause: then requests try
	// the store again); under FailOpen, own decides while it is set. It is
	// only set or cleared with q.mu held, so that no request is admitted by
	// own after the queue was found empty.
	down atomic.Bool
	q    queue

	failures atomic.Uint64
	loggedAt atomic.Int64  // when (Unix nanoseconds, callers' clock) the last failure was logged
	unlogged atomic.Uint64 // failures since that line

	fallbackAdmitted atomic.Uint64
	fallbackRefused  atomic.Uint64
}

// New returns a Limiter. With a store other than a MemoryStore, call Close
// when done with it.
func New(opts Options) *Limiter {
	l := &Limiter{
		store:   opts.Store,
		policy:  opts.OnStoreError,
		timeout: opts.Timeout,
		log:     opts.Logger,
	}
	if l.store == nil {
		l.store = NewMemory()
	}
	_, l.local = l.store.(*MemoryStore)
	if l.timeout <= 0 {
		l.timeout = DefaultTimeout
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if !l.local {
		l.idPrefix = strconv.FormatUint(rand.Uint64(), 36) + "-"
		if l.policy == FailOpen {
			l.own = NewMemory()
		}
		l.q.init(opts.QueueSize)
	}
	return l
}

// StoreErrors returns how many store calls made for a request (Admit's and
// Settle's) have failed, for a metric. Calls whose caller gave up (a
// cancelled context) are not counted; decisions made while the store is
// considered down make no call, and the background retries' failures are in
// Stats.RetryErrors.
func (l *Limiter) StoreErrors() uint64 { return l.failures.Load() }

// Admit decides whether a request may proceed. When it may, its tokens are
// reserved and 1 request is counted in every counter of every rule, all in
// one atomic store call; when any counter would pass its limit, nothing is
// counted. A request is admitted when, for each rule, the minute window's
// tokens plus r.Tokens stay within TokensPerMinute, its requests plus 1
// within RequestsPerMinute, and the quota period's tokens plus r.Tokens
// within TokenQuota (with r.Tokens 0: while each token counter is under its
// limit).
func (l *Limiter) Admit(ctx context.Context, r Request) Decision {
	n := 0
	for _, rule := range r.Rules {
		if r.RequestsOnly {
			n += b2i(rule.RequestsPerMinute > 0)
			continue
		}
		n += b2i(rule.TokensPerMinute > 0) + b2i(rule.RequestsPerMinute > 0) + b2i(rule.TokenQuota > 0)
	}
	if n == 0 {
		return Decision{Allowed: true, Remaining: unknown}
	}
	res := &reservation{tokens: max(r.Tokens, 0)}
	res.ops = res.inline[:0]
	if n > inlineOps {
		res.ops = make([]Op, 0, n)
	}
	res.ops, res.tokenOps, res.adaptive = appendOps(res.ops, r.Rules, &r.Subject, r.Now, res.tokens, r.RequestsOnly)

	if !l.local {
		return l.admitRemote(ctx, r.Now, res)
	}
	// A MemoryStore never fails.
	ok, _ := l.store.Reserve(ctx, r.Now, "", res.ops)
	if !ok {
		return Decision{Denial: denial(res.ops, r.Now), Remaining: remaining(res.ops, false)}
	}
	res.remaining = remaining(res.ops, true)
	return Decision{Allowed: true, Remaining: res.remaining, Reservation: Reservation{res}}
}

// appendOps appends to ops the counters of rules for subj at now, each with
// its limit, expiry and what a request adds (tokens, or 1 request): first
// every token counter (tokens per minute, then the quota, rule by rule;
// tokenOps of them), then every requests-per-minute counter, adaptive
// shares linked. requestsOnly leaves the token counters out. Admit and
// Read count in the same counters through it.
func appendOps(ops []Op, rules []*Rule, subj *Subject, now time.Time, tokens int64, requestsOnly bool) (_ []Op, tokenOps int, adaptive bool) {
	minute := Minute.startUnix(now)
	minuteExpires := time.Unix(minute+minuteSecs, 0).Add(minuteMargin)
	for _, rule := range rules {
		if requestsOnly {
			break
		}
		if rule.TokensPerMinute > 0 {
			if rule.AdaptiveOf != nil && rule.AdaptiveShare > 0 {
				adaptive = true
			}
			ops = append(ops, Op{
				Counter: rule.counter(TokensPerMinute, Minute, subj, minute),
				Delta:   tokens, Limit: rule.TokensPerMinute, Expires: minuteExpires, rule: rule,
			})
		}
		if rule.TokenQuota > 0 {
			p := rule.QuotaPeriod
			start := p.startUnix(now)
			ops = append(ops, Op{
				Counter: rule.counter(Quota, p, subj, start),
				Delta:   tokens, Limit: rule.TokenQuota,
				Expires: time.Unix(p.endUnix(start), 0).Add(quotaMargin), rule: rule,
			})
		}
	}
	tokenOps = len(ops)
	if adaptive {
		linkAdaptive(ops)
	}
	for _, rule := range rules {
		if rule.RequestsPerMinute > 0 {
			ops = append(ops, Op{
				Counter: rule.counter(RequestsPerMinute, Minute, subj, minute),
				Delta:   1, Limit: rule.RequestsPerMinute, Expires: minuteExpires, rule: rule,
			})
		}
	}
	return ops, tokenOps, adaptive
}

// linkAdaptive points each adaptive tokens-per-minute op at the op of the
// rule whose remainder it shares.
func linkAdaptive(ops []Op) {
	for i := range ops {
		r := ops[i].rule
		if ops[i].Counter.Kind != TokensPerMinute || r.AdaptiveOf == nil || r.AdaptiveShare <= 0 {
			continue
		}
		for j := range ops {
			if ops[j].rule == r.AdaptiveOf && ops[j].Counter.Kind == TokensPerMinute {
				ops[i].ShareOf, ops[i].Share = j+1, r.AdaptiveShare
			}
		}
	}
}

// Settle replaces a reservation by the real usage: it adds actualTokens minus
// the reserved tokens to the token counters the reservation was made in
// (their windows, not now's), so a refund makes room and an overrun is
// charged even past the limit. Counters whose window ended more than the
// expiry margin ago are left alone. It returns what is left in those
// windows; Requests is as at admission. A second Settle of the same
// reservation does nothing and returns ErrSettled; a refused request's
// reservation settles to nothing, except that one refused because the store
// failed takes back what its Reserve may have counted regardless.
//
// Settle runs even when ctx is cancelled, since the tokens were spent
// whether or not the client stayed; only its own timeout stops it. When the
// store fails, or is considered down, the settlement is queued and retried
// in the background until the store takes it, exactly once: Settle then
// returns no error and -1 (unknown) for Tokens and QuotaTokens. Only a
// settlement that can no longer be retried, because the Limiter is closed,
// returns an error (ErrNotCounted).
func (l *Limiter) Settle(ctx context.Context, res Reservation, actualTokens int64, now time.Time) (Remaining, error) {
	r := res.r
	if r == nil {
		return unknown, nil
	}
	if !r.settled.CompareAndSwap(false, true) {
		return unknown, ErrSettled
	}
	if r.remote != nil {
		return l.settleRemote(ctx, r, actualTokens, now)
	}
	delta := max(actualTokens, 0) - r.tokens
	rem := r.remaining
	if delta == 0 {
		return rem, nil
	}
	nowNs := now.UnixNano()
	ops := r.ops[:0]
	for i := range r.tokenOps {
		if r.ops[i].Expires.UnixNano() > nowNs {
			op := r.ops[i]
			op.Delta = delta
			ops = append(ops, op)
		}
	}
	if len(ops) == 0 {
		return rem, nil
	}
	// A MemoryStore never fails.
	l.store.(*MemoryStore).Adjust(ctx, now, ops)
	return settledRemaining(rem, ops), nil
}

// settledRemaining returns rem with the tokens left in the ops' counters,
// as a store's settlement set their Used.
func settledRemaining(rem Remaining, ops []Op) Remaining {
	after := remaining(ops, false)
	if after.Tokens >= 0 {
		rem.Tokens = after.Tokens
	}
	if after.QuotaTokens >= 0 {
		rem.QuotaTokens = after.QuotaTokens
	}
	return rem
}

// failed wraps a store error and, unless the caller's ctx was cancelled (the
// client gave up: not the store's fault), counts and logs it.
func (l *Limiter) failed(ctx context.Context, op string, err error, now time.Time) error {
	err = fmt.Errorf("limit store %s: %w", op, err)
	if ctx.Err() != nil {
		return err
	}
	l.failures.Add(1)
	l.logFailure(err, now)
	return err
}

// logFailure logs a store failure, at most once per logEvery on the callers'
// clock, with how many failures the line stands for.
func (l *Limiter) logFailure(err error, now time.Time) {
	l.unlogged.Add(1)
	t := now.UnixNano()
	last := l.loggedAt.Load()
	if since := t - last; last != 0 && since >= 0 && since < int64(logEvery) {
		return
	}
	if l.loggedAt.CompareAndSwap(last, t) {
		l.log.Warn("limit: counter store failed", "err", err, "failures", l.unlogged.Swap(0), "policy", l.policy.String())
	}
}

// fits reports whether the op passes its limit, as Store.Reserve checks.
func (op *Op) fits() bool {
	if op.Delta > 0 {
		return op.Used+op.Delta <= op.Limit
	}
	return op.Used < op.Limit
}

// denial returns the refusal to report among the ops that do not fit: one
// that can never fit first, else the one whose window ends last (a quota
// over a minute limit, since retrying after the minute would fail again),
// else the first.
func denial(ops []Op, now time.Time) *Denial {
	var d *Denial
	for i := range ops {
		op := &ops[i]
		if op.fits() {
			continue
		}
		c := &Denial{
			Rule: op.rule, Kind: op.Counter.Kind,
			Limit: op.Limit, Used: op.Used, Want: op.Delta,
			RetryAfter: time.Unix(op.Counter.Period.endUnix(op.Counter.Start), 0).Sub(now),
			TooLarge:   op.Delta > op.Limit,
		}
		if d == nil || c.TooLarge && !d.TooLarge || c.TooLarge == d.TooLarge && c.RetryAfter > d.RetryAfter {
			d = c
		}
	}
	if d == nil {
		// The store refused although every counter fits by the values it
		// returned; blame the first, retry after its window.
		op := &ops[0]
		d = &Denial{Rule: op.rule, Kind: op.Counter.Kind, Limit: op.Limit, Used: op.Used, Want: op.Delta,
			RetryAfter: time.Unix(op.Counter.Period.endUnix(op.Counter.Start), 0).Sub(now)}
	}
	return d
}

// remaining returns the least left per kind: Limit minus Used, minus Delta
// when charged, never below 0.
func remaining(ops []Op, charged bool) Remaining {
	rem := unknown
	for i := range ops {
		op := &ops[i]
		left := op.Limit - op.Used
		if charged {
			left -= op.Delta
		}
		left = max(left, 0)
		var p *int64
		switch op.Counter.Kind {
		case TokensPerMinute:
			p = &rem.Tokens
		case RequestsPerMinute:
			p = &rem.Requests
		default:
			p = &rem.QuotaTokens
		}
		if *p < 0 || left < *p {
			*p = left
		}
	}
	return rem
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Store returns the limiter's store.
func (l *Limiter) Store() Store { return l.store }
