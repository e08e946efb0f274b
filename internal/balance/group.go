package balance

import (
	"hash/maphash"
	"math"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/breaker"
)

// maxSequence bounds a group's round-robin sequence: weights whose sum is
// larger are scaled down to it.
const maxSequence = 4096

// group is the members of one priority.
type group struct {
	members []Member
	// seq is the smooth weighted round-robin order of member indexes, one
	// full cycle of the weights, computed once. A shared cursor walks it:
	// one atomic add per pick, no lock.
	seq    []uint16
	_      [64]byte // keep the cursor on its own cache line
	cursor atomic.Uint64
	_      [56]byte
}

func newGroup(ms []Member) *group {
	g := &group{members: ms}
	weights := make([]int, len(ms))
	total := 0
	for i, m := range ms {
		weights[i] = max(m.Weight, 1)
		total += weights[i]
	}
	if total > maxSequence {
		scaled := 0
		for i := range weights {
			weights[i] = max(weights[i]*maxSequence/total, 1)
			scaled += weights[i]
		}
		total = scaled
	}
	// Smooth weighted round-robin (as nginx does it): each turn every member
	// gains its weight, the richest is chosen and pays the total. Weights
	// 3:1 give a, a, b, a — never a burst of three.
	current := make([]int, len(ms))
	g.seq = make([]uint16, 0, total)
	for range total {
		best := 0
		for i := range current {
			current[i] += weights[i]
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		g.seq = append(g.seq, uint16(best))
	}
	return g
}

// usable reports whether m may serve now: the filter allows it and its
// breaker is closed, or its trip ended and no probe is in flight.
func usable(m *Member, now time.Time, f *Filter) bool {
	return f.allows(m.Backend) && m.Backend.State.Breaker.Available(now)
}

// pick chooses a member of the group, or reports false when none is usable.
func (g *group) pick(p *Pool, now time.Time, f *Filter, aff Affinity) (*backend.Backend, breaker.Ticket, bool) {
	// Candidates, on the stack for any pool of realistic size.
	var buf [32]int
	cands := buf[:0]
	for i := range g.members {
		if usable(&g.members[i], now, f) {
			cands = append(cands, i)
		}
	}
	for len(cands) > 0 {
		i := g.choose(p, cands, aff)
		if t, ok := g.members[cands[i]].Backend.State.Breaker.Allow(now); ok {
			return g.members[cands[i]].Backend, t, true
		}
		// Lost a race for a half-open probe: drop it and choose again.
		cands = append(cands[:i], cands[i+1:]...)
	}
	return nil, breaker.Ticket{}, false
}

// choose returns the index into cands of the member to use.
func (g *group) choose(p *Pool, cands []int, aff Affinity) int {
	if aff.Backend != "" {
		for i, c := range cands {
			if g.members[c].Backend.Name == aff.Backend {
				return i
			}
		}
	}
	if aff.Key != "" {
		return g.rendezvous(cands, aff.Key)
	}
	if len(cands) == 1 {
		return 0
	}
	switch p.strategy {
	case LeastLatency:
		return g.leastLatency(p, cands)
	case LeastBusy:
		return g.leastBusy(p, cands)
	}
	return g.roundRobin(cands)
}

// roundRobin walks the sequence from the shared cursor to the first usable member.
func (g *group) roundRobin(cands []int) int {
	start := g.cursor.Add(1) - 1
	n := uint64(len(g.seq))
	for k := uint64(0); k < n; k++ {
		member := int(g.seq[(start+k)%n])
		for i, c := range cands {
			if c == member {
				return i
			}
		}
	}
	return 0
}

// leastLatency takes the lowest moving average of time to first byte (a
// member with none yet counts as fastest, so new members are measured), and
// with probability Exploration another member at random.
func (g *group) leastLatency(p *Pool, cands []int) int {
	best := 0
	bestLat := math.Inf(1)
	for i, c := range cands {
		if l := g.members[c].Backend.State.LatencySeconds(); l < bestLat {
			best, bestLat = i, l
		}
	}
	if float64(p.rand()>>11)/(1<<53) < Exploration {
		other := int(p.rand() % uint64(len(cands)-1))
		if other >= best {
			other++
		}
		return other
	}
	return best
}

// leastBusy draws two members and takes the one with fewer requests in
// flight per unit of weight ("the power of two random choices").
func (g *group) leastBusy(p *Pool, cands []int) int {
	n := uint64(len(cands))
	a := int(p.rand() % n)
	b := int(p.rand() % (n - 1))
	if b >= a {
		b++
	}
	ma, mb := &g.members[cands[a]], &g.members[cands[b]]
	// inflight_a / weight_a <= inflight_b / weight_b, without division.
	if ma.Backend.State.InFlight()*int64(max(mb.Weight, 1)) <= mb.Backend.State.InFlight()*int64(max(ma.Weight, 1)) {
		return a
	}
	return b
}

// affinitySeed makes rendezvous scores stable for the life of the process.
var affinitySeed = maphash.MakeSeed()

// rendezvous is weighted rendezvous hashing: every member scores the key,
// the highest score wins, and only the keys of a member that goes away move.
func (g *group) rendezvous(cands []int, key string) int {
	best, bestScore := 0, math.Inf(-1)
	for i, c := range cands {
		m := &g.members[c]
		var h maphash.Hash
		h.SetSeed(affinitySeed)
		h.WriteString(key)
		h.WriteByte(0)
		h.WriteString(m.Backend.Name)
		u := (float64(h.Sum64()>>11) + 0.5) / (1 << 53) // in (0, 1)
		score := -float64(max(m.Weight, 1)) / math.Log(u)
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}
