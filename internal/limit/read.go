package limit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// Probe names a subject and the rules whose state Limiter.Read reports.
type Probe struct {
	Subject Subject
	Rules   []*Rule
}

// Usage is one limit of one rule in the window that holds the time read.
type Usage struct {
	Rule *Rule
	Kind Kind
	// Period is the window's length: Minute for the per-minute kinds, the
	// quota's period for a quota.
	Period Period
	// Subject is whose counter it is, by the rule's Key: the subscription,
	// the product, or "global"; with KeySubscriptionModel the subscription,
	// and Model the model.
	Subject, Model string
	// Used is what the counter holds: tokens, or requests. Limit is the
	// limit; for an adaptive tokens-per-minute limit, the effective one at
	// the time (its base plus its share of what the shared limit has left).
	Used, Limit int64
	// Start is when the window began and Resets when it ends, in UTC.
	Start, Resets time.Time
}

// Read reports, for each probe, the state of each of its rules' limits in
// the window that holds now, counting nothing: each rule's tokens per
// minute, requests per minute and quota, in that order, for the limits the
// rule sets, in the counters Admit counts in. Every probe is read in one store call, bounded by the
// limiter's Timeout. When the store fails, Read returns the error: it never
// reports this instance's own count in the store's place, since that is
// not what the instances share.
func (l *Limiter) Read(ctx context.Context, now time.Time, probes ...Probe) ([][]Usage, error) {
	sets := make([][]Op, len(probes))
	var counters []Counter
	for i := range probes {
		ops, _, _ := appendOps(nil, probes[i].Rules, &probes[i].Subject, now, 0, false)
		sets[i] = ops
		for j := range ops {
			counters = append(counters, ops[j].Counter)
		}
	}
	out := make([][]Usage, len(probes))
	if len(counters) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	vals, err := l.store.Read(ctx, now, counters)
	if err != nil {
		return nil, fmt.Errorf("limit store read: %w", err)
	}
	if len(vals) != len(counters) {
		return nil, fmt.Errorf("limit store read: %d values for %d counters", len(vals), len(counters))
	}
	k := 0
	for i, ops := range sets {
		for j := range ops {
			ops[j].Used = vals[k]
			k++
		}
		adapt(ops)
		// Reported rule by rule, each rule's limits in Kind's order.
		rank := func(r *Rule) int { return slices.Index(probes[i].Rules, r) }
		slices.SortStableFunc(ops, func(a, b Op) int {
			return cmp.Or(cmp.Compare(rank(a.rule), rank(b.rule)), cmp.Compare(a.Counter.Kind, b.Counter.Kind))
		})
		out[i] = make([]Usage, len(ops))
		for j := range ops {
			c := &ops[j].Counter
			out[i][j] = Usage{
				Rule: ops[j].rule, Kind: c.Kind, Period: c.Period, Subject: c.Subject, Model: c.Model,
				Used: ops[j].Used, Limit: ops[j].Limit,
				Start:  time.Unix(c.Start, 0).UTC(),
				Resets: time.Unix(c.Period.endUnix(c.Start), 0).UTC(),
			}
		}
	}
	return out, nil
}
