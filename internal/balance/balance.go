// Package balance chooses which backend of a pool serves a request. Priority
// groups come first: a group is used only while every member of all groups
// before it is unavailable (its breaker open, or cooling down for a
// Retry-After), which is PTU first with spillover to pay-as-you-go. Within a
// group a strategy chooses: smooth weighted round-robin, least latency, or
// least busy. Selection takes no lock: it reads atomics only.
// It is a mechanism: it knows backends and their breakers, not requests.
package balance

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/breaker"
)

// Strategy chooses a member within a priority group.
type Strategy uint8

// The strategies.
const (
	// RoundRobin is smooth weighted round-robin: deterministic, in
	// proportion to the weights, without bursts.
	RoundRobin Strategy = iota + 1
	// LeastLatency prefers the lowest moving average of time to first
	// byte, exploring the others with probability Exploration.
	LeastLatency
	// LeastBusy takes the fewer requests in flight (per unit of weight) of
	// two members drawn at random.
	LeastBusy
)

// Exploration is the share of requests least_latency sends to a random
// member other than the fastest, so that a backend that got faster is
// noticed within seconds.
const Exploration = 0.1

// ParseStrategy parses a config strategy.
func ParseStrategy(s string) (Strategy, error) {
	switch s {
	case "round_robin", "":
		return RoundRobin, nil
	case "least_latency":
		return LeastLatency, nil
	case "least_busy":
		return LeastBusy, nil
	}
	return 0, fmt.Errorf("unknown strategy %q", s)
}

// String returns the strategy as config spells it.
func (s Strategy) String() string {
	switch s {
	case RoundRobin:
		return "round_robin"
	case LeastLatency:
		return "least_latency"
	case LeastBusy:
		return "least_busy"
	}
	return "unknown"
}

// Member is a backend's place in a pool.
type Member struct {
	Backend  *backend.Backend
	Priority int
	Weight   int
}

// Options configure a pool.
type Options struct {
	// Strategy chooses within a priority group. Default RoundRobin.
	Strategy Strategy
	// Rand returns uniformly random uint64s. Default math/rand/v2.Uint64,
	// which is safe for concurrent use and takes no lock.
	Rand func() uint64
}

// Pool is a compiled pool. It is immutable but for its round-robin cursors,
// and safe for concurrent use.
type Pool struct {
	// Name is the pool's name.
	Name     string
	strategy Strategy
	rand     func() uint64
	groups   []*group // by ascending priority
	members  []Member
}

// NewPool returns a pool of members.
func NewPool(name string, members []Member, opts Options) *Pool {
	sorted := append([]Member(nil), members...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Priority < sorted[j].Priority })
	p := &Pool{Name: name, strategy: opts.Strategy, rand: opts.Rand, members: sorted}
	if p.strategy == 0 {
		p.strategy = RoundRobin
	}
	if p.rand == nil {
		p.rand = rand.Uint64
	}
	for i := 0; i < len(sorted); {
		j := i
		for j < len(sorted) && sorted[j].Priority == sorted[i].Priority {
			j++
		}
		p.groups = append(p.groups, newGroup(sorted[i:j]))
		i = j
	}
	return p
}

// Strategy returns the pool's strategy.
func (p *Pool) Strategy() Strategy { return p.strategy }

// Members returns every member, by ascending priority.
func (p *Pool) Members() []Member { return p.members }

// Filter says which members a request may not use. The zero Filter allows all.
type Filter struct {
	// Tried are the backends this request has tried already.
	Tried []*backend.Backend
	// Regions, when not nil, are the only regions the request may be served
	// in (the product's data residency).
	Regions map[string]bool
	// Only, when set, is the one backend that may serve the request: the
	// one that holds what the request continues (a stored response).
	Only string
}

// allows reports whether the filter lets b serve, breaker aside.
func (f *Filter) allows(b *backend.Backend) bool {
	if f == nil {
		return true
	}
	if f.Regions != nil && !f.Regions[b.Region] {
		return false
	}
	if f.Only != "" && b.Name != f.Only {
		return false
	}
	for _, t := range f.Tried {
		if t == b {
			return false
		}
	}
	return true
}

// Affinity pins a request to a backend while that backend can serve.
type Affinity struct {
	// Backend is the name of the backend a cookie pinned; empty for none.
	Backend string
	// Key is a client's session key (x-sluice-affinity): requests with the
	// same key go to the same member of a group, chosen by rendezvous
	// hashing, so that they stay put while the group does not change.
	Key string
}

// Pick returns the backend to try next and the breaker ticket to report its
// outcome with. It reports false when no member the filter allows is
// available now.
func (p *Pool) Pick(now time.Time, f *Filter, aff Affinity) (*backend.Backend, breaker.Ticket, bool) {
	for _, g := range p.groups {
		if b, t, ok := g.pick(p, now, f, aff); ok {
			return b, t, true
		}
	}
	return nil, breaker.Ticket{}, false
}

// Eligible returns the number of members the filter allows, available or not.
func (p *Pool) Eligible(f *Filter) int {
	n := 0
	for _, m := range p.members {
		if f.allows(m.Backend) {
			n++
		}
	}
	return n
}

// NextAvailable returns when the first member the filter allows becomes
// available again (its breaker's trip ends); zero when none is open, or
// when no member is allowed.
func (p *Pool) NextAvailable(f *Filter) time.Time {
	var first time.Time
	for _, m := range p.members {
		if !f.allows(m.Backend) {
			continue
		}
		at := m.Backend.State.Breaker.ReopenAt()
		if !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first
}

// Capacity returns the tokens and requests the members the filter allows
// and that are available now have left, as their rate-limit headers last
// said. known is false when any of them has said nothing lately: the pool
// then cannot tell that it is short.
func (p *Pool) Capacity(now time.Time, f *Filter) (tokens, requests int64, known bool) {
	seen := false
	for i := range p.members {
		m := &p.members[i]
		if !usable(m, now, f) {
			continue
		}
		t, r := m.Backend.State.Capacity(now)
		if t < 0 && r < 0 {
			return 0, 0, false
		}
		seen = true
		tokens += max(t, 0)
		requests += max(r, 0)
	}
	return tokens, requests, seen
}
