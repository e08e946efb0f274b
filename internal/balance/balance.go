// Package balance chooses which backend of a pool serves a request: priority
// groups first (a higher number is used only while every member of the lower
// numbers is unavailable), then a strategy within the group.
// It is a mechanism: it knows backends, not requests.
package balance

import (
	"fmt"
	"sort"

	"github.com/sluice-gateway/sluice/internal/backend"
)

// Strategy chooses a member within a priority group.
type Strategy uint8

// The strategies.
const (
	RoundRobin Strategy = iota + 1
	LeastLatency
	LeastBusy
)

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

// Member is a backend's place in a pool.
type Member struct {
	Backend  *backend.Backend
	Priority int
	Weight   int
}

// Pool is a compiled pool. It is immutable and safe for concurrent use.
type Pool struct {
	// Name is the pool's name.
	Name string
	// Strategy is the strategy within a priority group.
	Strategy Strategy

	groups [][]Member // by ascending priority
}

// NewPool returns a pool of members.
func NewPool(name string, strategy Strategy, members []Member) *Pool {
	sorted := append([]Member(nil), members...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Priority < sorted[j].Priority })
	p := &Pool{Name: name, Strategy: strategy}
	for i, m := range sorted {
		if i == 0 || m.Priority != sorted[i-1].Priority {
			p.groups = append(p.groups, nil)
		}
		p.groups[len(p.groups)-1] = append(p.groups[len(p.groups)-1], m)
	}
	return p
}

// Members returns every member, by ascending priority.
func (p *Pool) Members() []Member {
	var out []Member
	for _, g := range p.groups {
		out = append(out, g...)
	}
	return out
}

// Pick returns the backend to try next. skip excludes backends that must not
// be used for this request (already tried, or outside the product's regions);
// it may be nil. Pick reports false when no member is left.
//
// For now a group is served by its first eligible member; weighted,
// latency-aware and least-busy choice within a group and the breaker's
// availability come with backend pools.
func (p *Pool) Pick(skip func(*backend.Backend) bool) (*backend.Backend, bool) {
	for _, g := range p.groups {
		for _, m := range g {
			if skip != nil && skip(m.Backend) {
				continue
			}
			return m.Backend, true
		}
	}
	return nil, false
}
