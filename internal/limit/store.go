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
type Store interface {
	// Reserve checks every op's counter against its limit and, only when all
	// pass, adds every op's Delta. An op passes when Used+Delta <= Limit, or,
	// with a Delta of 0 (tokens charged after the fact), when Used < Limit.
	// It sets each op's Used to the counter's value before the call and
	// reports whether it added. A counter that does not exist, or whose
	// Expires has passed, is 0; a counter it adds to lives at least until
	// the op's Expires.
	Reserve(ctx context.Context, now time.Time, ops []Op) (bool, error)
	// Adjust adds every op's Delta without checks, creating counters that do
	// not exist, and never lets a counter go below 0. It sets each op's Used
	// to the counter's new value; the counter lives at least until the op's
	// Expires.
	Adjust(ctx context.Context, now time.Time, ops []Op) error
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
	// after Adjust.
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
