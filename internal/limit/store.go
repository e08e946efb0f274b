package limit

import (
	"context"
	"strconv"
	"time"
)

// adapt applies the ops' adaptive shares once every Used is read.
func adapt(ops []Op) {
	for i := range ops {
		if j := ops[i].ShareOf - 1; j >= 0 && j < len(ops) {
			left := max(ops[j].Limit-ops[j].Used, 0)
			ops[i].Limit += int64(ops[i].Share * float64(left))
			ops[i].ShareOf = 0
		}
	}
}

// Store keeps the counters. MemoryStore counts for one gateway instance and
// RedisStore for any number sharing one Redis. Both must be safe for
// concurrent use, and each call must be atomic: no other call sees a state in
// which some of its counters changed and others not yet.
//
// A call to a store that can fail may time out at the caller and still run
// in the store later, or run and lose its answer; the caller may then send it
// again. Calls that name a reservation (a non-empty id) are therefore applied
// at most once per reservation and step, whatever order their copies arrive
// in: the store remembers each reservation it counted for HoldFor, and each it
// settled for SettledFor after that.
type Store interface {
	// Reserve checks every op's counter against its limit and, only when all
	// pass, adds every op's Delta. An op passes when Used+Delta <= Limit, or,
	// with a Delta of 0 (tokens charged after the fact), when Used < Limit.
	// It sets each op's Used to the counter's value before the call and
	// reports whether it added. A counter that does not exist, or whose
	// Expires has passed, is 0; a counter it adds to lives at least until
	// the op's Expires.
	//
	// With a non-empty id, a Reserve that adds also remembers the
	// reservation as counted, and a Reserve of a reservation the store
	// remembers (counted, or settled already: a late copy of a call that
	// timed out) adds nothing and reports false.
	Reserve(ctx context.Context, now time.Time, id string, ops []Op) (bool, error)
	// Settle applies every settlement of batch, in one round trip where the
	// store has round trips. Each settlement is applied atomically and at
	// most once (see SettleMode); the batch as a whole is not atomic. An
	// error means some may not have been applied: sending the whole batch
	// again is safe.
	Settle(ctx context.Context, batch []Settlement) error
	// Read returns the values of counters, in their order, without
	// changing any, in one atomic step and one round trip where the store
	// has round trips. A counter that does not exist, or has expired by
	// now, reads 0. A store that cannot be reached returns an error, never
	// a guess.
	Read(ctx context.Context, now time.Time, counters []Counter) ([]int64, error)
}

// HoldFor is how long a store remembers a reservation it counted and that
// was not settled: the longest a request's reservation can be in doubt. A
// settlement in doubt that arrives later charges as if the reservation had
// never been counted.
const HoldFor = 15 * time.Minute

// SettledFor is how long a store remembers a settled reservation, so that a
// late or repeated copy of its calls changes nothing. A late copy runs as
// soon as the store gets to it, and a caller that retries does so as soon as
// the store answers again, so this only has to outlast a hiccup.
const SettledFor = 2 * time.Minute

// SettleMode says how a Settlement relates to its reservation's Reserve.
type SettleMode uint8

// The modes. Every mode with an id changes nothing when the store remembers
// the reservation as settled.
const (
	// SettleCounted settles a reservation the store answered as counted:
	// it adds each op's Delta (the usage minus the reservation) and
	// remembers the reservation as settled.
	SettleCounted SettleMode = iota
	// SettleUnsure settles a reservation whose Reserve failed or was never
	// sent, so the store may hold it or not: it adds each op's Delta when
	// the store remembers the reservation as counted, and otherwise Delta
	// plus what the reservation would have added (Settlement.Tokens to each
	// token counter, 1 to each request counter), then remembers it as
	// settled.
	SettleUnsure
	// ChargeLate counts a reservation admitted without the store (the
	// store was unreachable): unless the store remembers the reservation,
	// it adds each op's Delta and remembers it as counted, as if Reserve
	// had added without checking.
	ChargeLate
)

// Settlement is a change to a reservation's counters after its Reserve: the
// real usage replacing the estimate, or a reservation counted late.
type Settlement struct {
	// ID is the reservation's id as given to Reserve; empty adds every
	// op's Delta unconditionally, whatever the Mode.
	ID   string
	Mode SettleMode
	// Tokens is what the reservation reserved in each of its token
	// counters; SettleUnsure uses it.
	Tokens int64
	// Ops are the counters and what to add to each. The store sets each
	// op's Used to the counter's value after the call, and keeps the
	// counter until at least the op's Expires.
	Ops []Op
	// Now is the caller's time of the call, which the counters' lifetimes
	// are reckoned from.
	Now time.Time
}

// Op is one counter's part in a store call.
type Op struct {
	Counter Counter
	// Delta is what the call adds: tokens, or 1 request; negative for a
	// refund.
	Delta int64
	// Limit is the counter's limit, for Reserve's check.
	Limit int64
	// Expires is when the store may forget the counter: its window's end
	// plus a margin, on the caller's clock.
	Expires time.Time
	// Used is set by the store: the counter's value before Reserve, or
	// after Settle.
	Used int64
	// ShareOf, when positive, makes the limit adaptive: Reserve raises
	// Limit (the base) by Share times what the counter of op ShareOf-1 has
	// left of its own limit, rounded down, read in the same atomic step, and
	// writes the effective limit back into Limit.
	ShareOf int
	Share   float64

	rule *Rule // the rule the counter belongs to, for the Denial
}

// Counter names one counter: a rule's count of one kind, for one subject, in
// one window. It is comparable, so MemoryStore uses it as a map key without
// building a string.
type Counter struct {
	Rule    string // the rule's ID
	Key     Key    // how the rule picks its subject
	Kind    Kind
	Period  Period // the window: Minute for TokensPerMinute and RequestsPerMinute
	Subject string // the subscription, the product, or "global", by Key
	Model   string // with KeySubscriptionModel, the model; otherwise empty
	Start   int64  // the window's start, in Unix seconds
}

// String returns the counter's Redis key:
//
//	"sluice:" rule ID ":" subject ":" kind ":" window start (Unix seconds)
//
// where the subject is the subscription, the product, subscription "/"
// model, or "global" (by the rule's Key), and the kind is "tpm", "rpm" or
// the quota's period ("hourly" … "yearly"). The kind keeps a rule's token,
// request and quota counters apart even when their windows start at the same
// second, as a minute and a day do at midnight.
func (c Counter) String() string {
	b := make([]byte, 0, 48+len(c.Rule)+len(c.Subject)+len(c.Model))
	b = append(b, "sluice:"...)
	b = append(b, c.Rule...)
	b = append(b, ':')
	b = append(b, c.Subject...)
	if c.Key == KeySubscriptionModel {
		b = append(b, '/')
		b = append(b, c.Model...)
	}
	b = append(b, ':')
	switch c.Kind {
	case TokensPerMinute:
		b = append(b, "tpm"...)
	case RequestsPerMinute:
		b = append(b, "rpm"...)
	default:
		b = append(b, c.Period.String()...)
	}
	b = append(b, ':')
	b = strconv.AppendInt(b, c.Start, 10)
	return string(b)
}
