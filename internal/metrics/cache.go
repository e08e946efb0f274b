package metrics

import (
	"maps"
	"sync"
	"sync/atomic"
)

// seriesCache maps label sets to their series. Reads take no lock: they look
// in an immutable map behind an atomic pointer. A label set not yet in it is
// found or created under the mutex in the authoritative map, which is copied
// to the read side once the misses since the last copy equal its size, so
// copying costs O(1) per miss, amortized. Entries are never removed, as the
// metric vectors' children are not. The zero value is empty and ready; it is
// safe for concurrent use.
//
// Keys are the label set encoded as one string (seriesKey.appendTo): one
// hash over a short buffer costs a fraction of hashing ten strings apart,
// and a lookup with string(bytes) does not allocate.
type seriesCache struct {
	read atomic.Pointer[map[string]*series]

	mu     sync.Mutex // guards all and misses
	all    map[string]*series
	misses int
}

// get returns the series of k, whose encoding is enc, calling create under
// the mutex the first time k is seen.
func (c *seriesCache) get(enc []byte, k *seriesKey, create func(seriesKey) *series) *series {
	if r := c.read.Load(); r != nil {
		if s, ok := (*r)[string(enc)]; ok {
			return s
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.all[string(enc)]
	if !ok {
		if c.all == nil {
			c.all = make(map[string]*series)
		}
		s = create(*k)
		c.all[string(enc)] = s
	}
	c.misses++
	if c.misses >= len(c.all) {
		r := maps.Clone(c.all)
		c.read.Store(&r)
		c.misses = 0
	}
	return s
}

// appendTo appends k's encoding to b: every string behind its length, so
// that distinct keys never encode alike.
func (k *seriesKey) appendTo(b []byte) []byte {
	str := func(b []byte, s string) []byte {
		n := len(s)
		for n >= 0x80 {
			b = append(b, byte(n)|0x80)
			n >>= 7
		}
		return append(append(b, byte(n)), s...)
	}
	b = str(b, k.operation)
	b = str(b, k.model)
	for _, d := range k.dims {
		b = str(b, d)
	}
	b = str(b, k.reason)
	stream := byte(0)
	if k.stream {
		stream = 1
	}
	return append(b, byte(k.status>>8), byte(k.status), stream)
}
