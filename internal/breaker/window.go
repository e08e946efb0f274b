package breaker

import (
	"sync/atomic"
	"time"
)

// A window counts events over a sliding interval in a ring of time buckets,
// each a tenth of the interval but at least minBucket. It is exact to a
// bucket: an event is counted for at least the interval and forgotten at most
// two buckets after that, so a window errs towards tripping, never towards
// missing a failure.
//
// A bucket is one atomic word holding the bucket's epoch (the bucket number
// since 1970) in the high epochBits bits and a count in the low bits, so that
// adding to it and reusing it for a later epoch are a single compare-and-swap
// and a window needs no lock. The epoch is kept modulo 2^epochBits: a bucket
// is misread only if nobody touched it for 2^36 bucket widths, more than two
// years at the smallest width.
type window struct {
	width int64  // of a bucket, in nanoseconds
	n     uint64 // buckets that cover the interval; the ring holds one more
	req   [ringSize]atomic.Uint64
	fail  [ringSize]atomic.Uint64
}

const (
	bucketsPerInterval = 10
	minBucket          = time.Millisecond
	ringSize           = bucketsPerInterval + 1

	epochBits = 36
	countBits = 64 - epochBits
	epochMask = 1<<epochBits - 1
	countMask = 1<<countBits - 1
)

func newWindow(interval time.Duration) *window {
	width := max((interval+bucketsPerInterval-1)/bucketsPerInterval, minBucket)
	n := max((interval+width-1)/width, 1)
	return &window{width: int64(width), n: uint64(n)}
}

// epoch returns the number of the bucket that now falls in.
func (w *window) epoch(now time.Time) uint64 {
	return uint64(now.UnixNano() / w.width)
}

// add counts one event in bucket epoch e of ring.
func (w *window) add(ring *[ringSize]atomic.Uint64, e uint64) {
	c := &ring[e%(w.n+1)]
	tag := e & epochMask
	for {
		old := c.Load()
		var next uint64
		switch count, age := old&countMask, (tag-old>>countBits)&epochMask; {
		case count == 0:
			next = tag<<countBits | 1
		case age == 0:
			if count == countMask {
				return // saturated
			}
			next = old + 1
		case age > epochMask/2:
			// The bucket holds a later epoch: this event is from a caller
			// whose clock reading is older than the whole ring.
			return
		default:
			next = tag<<countBits | 1
		}
		if c.CompareAndSwap(old, next) {
			return
		}
	}
}

// sum returns the events of ring in the buckets from e-n to e.
func (w *window) sum(ring *[ringSize]atomic.Uint64, e uint64) int {
	tag := e & epochMask
	total := 0
	for i := range w.n + 1 {
		v := ring[i].Load()
		if age := (tag - v>>countBits) & epochMask; age <= w.n {
			total += int(v & countMask)
		}
	}
	return total
}
