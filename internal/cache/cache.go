// Package cache is the response cache's mechanism: the canonical key of a
// request and its partitions, the stores that keep answers (memory, with
// least-recently-used eviction under a byte bound, and Redis, shared by
// every instance), the semantic index searched in process, and the
// coalescing of identical concurrent misses.
//
// It knows nothing of the request pipeline: the cachestage package plugs it
// into proxy as a Stage and a Tap.
package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// Entry is a stored answer. An Entry must not change once stored.
type Entry struct {
	// Status is the answer's HTTP status, a 2xx.
	Status int
	// ContentType is its Content-Type.
	ContentType string
	// Body is a whole body; or, for a stream, Events are its SSE events as
	// they went on the wire, [DONE] included.
	Body   []byte
	Events [][]byte
	// UsageEvent is the index in Events of the usage chunk, which is
	// replayed only to a client that asked for it; -1: none.
	UsageEvent int
	// Usage is what the answer cost when the backend made it: what a hit
	// saves.
	Usage wire.Usage
}

// Size is the entry's size in bytes, as the memory store counts it.
func (e *Entry) Size() int {
	n := 96 + len(e.ContentType) + len(e.Body) + 24*len(e.Events)
	for _, ev := range e.Events {
		n += len(ev)
	}
	return n
}

// entryVersion is the first byte of an encoded Entry.
const entryVersion = 1

// MarshalBinary encodes the entry, for a store that keeps bytes.
func (e *Entry) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, e.Size()+64)
	b = append(b, entryVersion)
	b = binary.AppendUvarint(b, uint64(e.Status))
	b = appendBytes(b, []byte(e.ContentType))
	b = binary.AppendVarint(b, int64(e.UsageEvent))
	for _, n := range [...]int64{e.Usage.Prompt, e.Usage.Completion, e.Usage.Total, e.Usage.Cached, e.Usage.Reasoning} {
		b = binary.AppendVarint(b, n)
	}
	b = appendBytes(b, e.Body)
	b = binary.AppendUvarint(b, uint64(len(e.Events)))
	for _, ev := range e.Events {
		b = appendBytes(b, ev)
	}
	return b, nil
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// errCorrupt is UnmarshalBinary's error for bytes it did not write.
var errCorrupt = errors.New("cache: corrupt entry")

// UnmarshalBinary decodes what MarshalBinary encoded. The entry refers into
// b.
func (e *Entry) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	if v := r.byte(); v != entryVersion {
		return errCorrupt
	}
	e.Status = int(r.uvarint())
	e.ContentType = string(r.bytes())
	e.UsageEvent = int(r.varint())
	for _, p := range [...]*int64{&e.Usage.Prompt, &e.Usage.Completion, &e.Usage.Total, &e.Usage.Cached, &e.Usage.Reasoning} {
		*p = r.varint()
	}
	if e.Body = r.bytes(); len(e.Body) == 0 {
		e.Body = nil
	}
	n := r.uvarint()
	if n > uint64(len(b)) {
		return errCorrupt
	}
	e.Events = nil
	if n > 0 {
		e.Events = make([][]byte, n)
		for i := range e.Events {
			e.Events[i] = r.bytes()
		}
	}
	if r.err || len(r.b) != 0 || e.Status < 200 || e.Status > 299 {
		return errCorrupt
	}
	return nil
}

type reader struct {
	b   []byte
	err bool
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.err = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		r.err = true
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

// A Store keeps entries under their keys, each for its TTL, and the
// semantic index. Implementations are safe for concurrent use; the memory
// store never fails, the Redis store's errors mean the cache cannot be
// reached (the caller treats them as misses).
type Store interface {
	// Get returns the entry under key, or nil when there is none (or it
	// has expired).
	Get(ctx context.Context, key string) (*Entry, error)
	// Put stores e under key for ttl and, with a vector, indexes it in
	// the partition for the same ttl.
	Put(ctx context.Context, key string, e *Entry, ttl time.Duration, v *Vector) error
	// Nearest returns the key of the stored vector of the partition
	// nearest to vec, and its cosine distance; ok is false when the
	// partition has none.
	Nearest(partition string, vec []float32) (key string, dist float32, ok bool)
	// Forget drops the vector of key from the partition's index: its
	// entry was found gone.
	Forget(partition, key string)
	// Clear drops the entries of a scope ("" for all) and their vectors,
	// and returns how many entries it dropped from the store.
	Clear(ctx context.Context, scope string) (int64, error)
	// Stats returns the entries and bytes held in process.
	Stats() (entries, bytes int64)
	// Close stops what the store runs in the background.
	Close() error
}

// Vector is an entry's place in the semantic index.
type Vector struct {
	Partition string
	V         []float32
}
