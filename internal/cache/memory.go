package cache

import (
	"container/list"
	"context"
	"strings"
	"sync"
	"time"
)

// Memory is the store of one instance: entries bounded by a byte budget,
// the least recently used evicted first, each dropped when its TTL is
// over. It never fails. Safe for concurrent use.
type Memory struct {
	now      func() time.Time
	maxBytes int64
	index    *Index

	mu    sync.Mutex // guards lru, items, bytes
	lru   *list.List // of *item, most recently used first
	items map[string]*list.Element
	bytes int64
}

type item struct {
	key  string
	e    *Entry
	exp  int64 // Unix nanoseconds
	size int64
}

// NewMemory returns a memory store of at most maxBytes (entries and
// semantic vectors together; 0: no bound). now is the clock (nil:
// time.Now).
func NewMemory(maxBytes int64, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	// The vectors get a quarter of the budget, the answers the rest.
	return &Memory{now: now, maxBytes: maxBytes - maxBytes/4, index: NewIndex(maxBytes / 4),
		lru: list.New(), items: map[string]*list.Element{}}
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) (*Entry, error) {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	el := m.items[key]
	if el == nil {
		return nil, nil
	}
	it := el.Value.(*item)
	if it.exp <= now {
		m.removeLocked(el)
		return nil, nil
	}
	m.lru.MoveToFront(el)
	return it.e, nil
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, key string, e *Entry, ttl time.Duration, v *Vector) error {
	now := m.now()
	exp := now.Add(ttl).UnixNano()
	it := &item{key: key, e: e, exp: exp, size: int64(e.Size() + len(key) + 64)}
	if m.maxBytes > 0 && it.size > m.maxBytes {
		return nil // larger than the whole store: not kept
	}
	m.mu.Lock()
	if el := m.items[key]; el != nil {
		m.removeLocked(el)
	}
	m.items[key] = m.lru.PushFront(it)
	m.bytes += it.size
	for m.maxBytes > 0 && m.bytes > m.maxBytes {
		m.removeLocked(m.lru.Back())
	}
	m.mu.Unlock()
	if v != nil {
		m.index.Add(v.Partition, key, v.V, exp)
	}
	return nil
}

func (m *Memory) removeLocked(el *list.Element) {
	it := m.lru.Remove(el).(*item)
	delete(m.items, it.key)
	m.bytes -= it.size
}

// Nearest implements Store.
func (m *Memory) Nearest(partition string, vec []float32) (string, float32, bool) {
	return m.index.Nearest(partition, vec, m.now().UnixNano())
}

// Forget implements Store.
func (m *Memory) Forget(partition, key string) { m.index.Remove(partition, key) }

// Clear implements Store.
func (m *Memory) Clear(_ context.Context, scope string) (int64, error) {
	prefix := ScopePrefix(scope)
	var n int64
	m.mu.Lock()
	for k, el := range m.items {
		if strings.HasPrefix(k, prefix) {
			m.removeLocked(el)
			n++
		}
	}
	m.mu.Unlock()
	m.index.ClearPrefix(prefix)
	return n, nil
}

// Stats implements Store.
func (m *Memory) Stats() (entries, bytes int64) {
	m.mu.Lock()
	entries, bytes = int64(len(m.items)), m.bytes
	m.mu.Unlock()
	_, vb := m.index.Stats()
	return entries, bytes + vb
}

// Close implements Store.
func (m *Memory) Close() error { return nil }
