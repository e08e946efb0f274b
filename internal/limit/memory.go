package limit

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"time"
)

// shardCount is how many independently locked parts MemoryStore has, so
// requests of different subscriptions rarely wait for each other.
const shardCount = 64

// sweepEvery is how often (on the callers' clock) a shard drops its expired
// counters.
const sweepEvery = time.Minute

// MemoryStore is a Store that counts in this process: exact for one gateway
// instance, never shared. Counters are spread over 64 shards, each with its
// own mutex; a call that touches counters in several shards locks them in
// ascending order, so it stays atomic without deadlocks. Expired counters
// read as 0 and each shard drops them about once a minute, during a call, so
// no goroutine is needed; a call whose now lags the others' by more than the
// expiry margin may therefore find its window gone and count it afresh. The
// zero MemoryStore is not usable; call NewMemory. It is safe for concurrent
// use.
type MemoryStore struct {
	seed   maphash.Seed
	shards [shardCount]shard
}

type shard struct {
	mu sync.Mutex // guards counters and sweepAt
	// counters holds the live counters of this shard.
	counters map[Counter]*cell
	// sweepAt is when (Unix nanoseconds) the next call drops expired counters.
	sweepAt int64
	_       [40]byte // keeps each shard's mutex on its own cache line
}

type cell struct {
	n       int64
	expires int64 // Unix nanoseconds
}

// NewMemory returns an empty MemoryStore.
func NewMemory() *MemoryStore {
	m := &MemoryStore{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].counters = make(map[Counter]*cell)
	}
	return m
}

// maxStackOps is how many ops a call handles without allocating its lock
// set.
const maxStackOps = 8

// Reserve implements Store. It never blocks for long and ignores ctx and id:
// its calls cannot fail or be sent twice, so no reservation is ever in doubt.
func (m *MemoryStore) Reserve(_ context.Context, now time.Time, _ string, ops []Op) (bool, error) {
	var idxBuf, setBuf [maxStackOps]uint8
	idx, set := m.shardsOf(ops, idxBuf[:0], setBuf[:0])
	nowNs := now.UnixNano()
	m.lock(set, nowNs)
	defer m.unlock(set)
	for i := range ops {
		ops[i].Used = m.shards[idx[i]].valueLocked(ops[i].Counter, nowNs)
	}
	adapt(ops)
	ok := true
	for i := range ops {
		ok = ok && ops[i].fits()
	}
	if !ok {
		return false, nil
	}
	for i := range ops {
		if ops[i].Delta != 0 {
			m.shards[idx[i]].addLocked(&ops[i], nowNs)
		}
	}
	return true, nil
}

// Settle implements Store. A MemoryStore holds every reservation it was
// asked to count, so it adds every op's Delta whatever the mode and id.
func (m *MemoryStore) Settle(ctx context.Context, batch []Settlement) error {
	for i := range batch {
		m.Adjust(ctx, batch[i].Now, batch[i].Ops)
	}
	return nil
}

// Adjust adds every op's Delta without checks, creating counters that do not
// exist, and never lets a counter go below 0. It sets each op's Used to the
// counter's new value; the counter lives at least until the op's Expires. It
// never blocks for long and ignores ctx.
func (m *MemoryStore) Adjust(_ context.Context, now time.Time, ops []Op) error {
	var idxBuf, setBuf [maxStackOps]uint8
	idx, set := m.shardsOf(ops, idxBuf[:0], setBuf[:0])
	nowNs := now.UnixNano()
	m.lock(set, nowNs)
	defer m.unlock(set)
	for i := range ops {
		ops[i].Used = m.shards[idx[i]].addLocked(&ops[i], nowNs)
	}
	return nil
}

// Read implements Store. It never blocks for long, ignores ctx and never
// fails.
func (m *MemoryStore) Read(_ context.Context, now time.Time, counters []Counter) ([]int64, error) {
	ops := make([]Op, len(counters))
	for i := range counters {
		ops[i].Counter = counters[i]
	}
	idx, set := m.shardsOf(ops, make([]uint8, 0, len(ops)), make([]uint8, 0, len(ops)))
	nowNs := now.UnixNano()
	m.lock(set, nowNs)
	defer m.unlock(set)
	out := make([]int64, len(counters))
	for i := range counters {
		out[i] = m.shards[idx[i]].valueLocked(counters[i], nowNs)
	}
	return out, nil
}

// holdOrRelease decides a request whose ops' Deltas are already added to the
// counters (pre-charged while a shared store was asked): it passes when every
// counter, without this request's Delta, passes Reserve's check. When not,
// it takes the Deltas back. It sets each op's Used to the counter's value
// without the request, and applies adaptive shares as Reserve does.
func (m *MemoryStore) holdOrRelease(now time.Time, ops []Op) bool {
	var idxBuf, setBuf [maxStackOps]uint8
	idx, set := m.shardsOf(ops, idxBuf[:0], setBuf[:0])
	nowNs := now.UnixNano()
	m.lock(set, nowNs)
	defer m.unlock(set)
	for i := range ops {
		ops[i].Used = max(m.shards[idx[i]].valueLocked(ops[i].Counter, nowNs)-ops[i].Delta, 0)
	}
	adapt(ops)
	for i := range ops {
		if !ops[i].fits() {
			for j := range ops {
				m.shards[idx[j]].raiseLocked(&ops[j], -ops[j].Delta, 0, nowNs)
			}
			return false
		}
	}
	return true
}

// reconcile brings counters pre-charged with ops' Deltas in line with a
// shared store's answer to the same ops: it takes the Deltas back when the
// store refused, and raises each counter to at least the store's count (the
// op's Used, plus its Delta when the store added), so that the local count
// never trails what the shared store last reported.
func (m *MemoryStore) reconcile(now time.Time, ops []Op, added bool) {
	var idxBuf, setBuf [maxStackOps]uint8
	idx, set := m.shardsOf(ops, idxBuf[:0], setBuf[:0])
	nowNs := now.UnixNano()
	m.lock(set, nowNs)
	defer m.unlock(set)
	for i := range ops {
		op := &ops[i]
		if added {
			m.shards[idx[i]].raiseLocked(op, 0, op.Used+op.Delta, nowNs)
		} else {
			m.shards[idx[i]].raiseLocked(op, -op.Delta, op.Used, nowNs)
		}
	}
}

// shardsOf appends each op's shard to idx, and the distinct shards in
// ascending order (the order to lock them in) to set. A counter's shard
// depends only on its subject, so a request's counters for one subscription
// share one lock.
func (m *MemoryStore) shardsOf(ops []Op, idx, set []uint8) ([]uint8, []uint8) {
	for i := range ops {
		c := &ops[i].Counter
		h := maphash.String(m.seed, c.Subject)
		if c.Model != "" {
			h ^= maphash.String(m.seed, c.Model) * 0x9e3779b97f4a7c15
		}
		idx = append(idx, uint8(h%shardCount))
	}
	set = append(set, idx...)
	slices.Sort(set)
	return idx, slices.Compact(set)
}

// lock locks the shards in set, which is in ascending order, and lets each
// drop its expired counters when it is time.
func (m *MemoryStore) lock(set []uint8, nowNs int64) {
	for _, i := range set {
		s := &m.shards[i]
		s.mu.Lock()
		s.sweepLocked(nowNs)
	}
}

func (m *MemoryStore) unlock(set []uint8) {
	for i := len(set) - 1; i >= 0; i-- {
		m.shards[set[i]].mu.Unlock()
	}
}

// valueLocked returns the counter's value, 0 when it does not exist or has
// expired.
func (s *shard) valueLocked(c Counter, nowNs int64) int64 {
	if x := s.counters[c]; x != nil && x.expires > nowNs {
		return x.n
	}
	return 0
}

// addLocked adds op.Delta to its counter, creating it, flooring it at 0 and
// extending its life to op.Expires, and returns the new value.
func (s *shard) addLocked(op *Op, nowNs int64) int64 {
	x := s.counters[op.Counter]
	if x == nil {
		x = &cell{}
		s.counters[op.Counter] = x
	} else if x.expires <= nowNs {
		*x = cell{}
	}
	x.n = max(x.n+op.Delta, 0)
	x.expires = max(x.expires, op.Expires.UnixNano())
	return x.n
}

// raiseLocked adds delta to op's counter, creating it, and raises it to at
// least floor (and 0), extending its life to op.Expires.
func (s *shard) raiseLocked(op *Op, delta, floor int64, nowNs int64) {
	x := s.counters[op.Counter]
	if x == nil {
		x = &cell{}
		s.counters[op.Counter] = x
	} else if x.expires <= nowNs {
		*x = cell{}
	}
	x.n = max(x.n+delta, floor, 0)
	x.expires = max(x.expires, op.Expires.UnixNano())
}

// sweepLocked drops the shard's expired counters, at most once per
// sweepEvery.
func (s *shard) sweepLocked(nowNs int64) {
	if nowNs < s.sweepAt {
		return
	}
	s.sweepAt = nowNs + int64(sweepEvery)
	for c, x := range s.counters {
		if x.expires <= nowNs {
			delete(s.counters, c)
		}
	}
}

// len returns how many counters the store holds, expired ones included, for
// tests.
func (m *MemoryStore) len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.counters)
		s.mu.Unlock()
	}
	return n
}
