package cache

import (
	"strings"
	"sync"
)

// Index is the semantic index: per partition, a slab of unit vectors
// searched by a flat scan, exact and fast enough at a cache's sizes (HNSW
// libraries for Go measured unreliable under constant deletes). It is safe
// for concurrent use: lookups share a read lock.
type Index struct {
	maxBytes int64

	mu    sync.RWMutex // guards parts and bytes
	parts map[string]*slab
	bytes int64
}

// slab is one partition's vectors, row i of vecs belonging to keys[i].
type slab struct {
	dims int
	keys []string
	exp  []int64 // expiry, Unix nanoseconds
	vecs []float32
}

// NewIndex returns an empty index that holds at most maxBytes of vectors
// and keys (0: no bound); beyond it, a partition's oldest vectors go first.
func NewIndex(maxBytes int64) *Index {
	return &Index{maxBytes: maxBytes, parts: map[string]*slab{}}
}

func rowBytes(dims int, key string) int64 { return int64(4*dims + len(key) + 40) }

// Add indexes vec under key in the partition until exp (Unix
// nanoseconds). vec must be of unit length; a vector of another length
// than the partition's replaces the partition (its embeddings model
// changed). A key already indexed there is replaced.
func (x *Index) Add(partition, key string, vec []float32, exp int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	s := x.parts[partition]
	if s != nil && s.dims != len(vec) {
		x.dropLocked(partition, s)
		s = nil
	}
	if s == nil {
		s = &slab{dims: len(vec)}
		x.parts[partition] = s
	}
	if i := s.find(key); i >= 0 {
		x.removeLocked(s, i)
	}
	s.keys = append(s.keys, key)
	s.exp = append(s.exp, exp)
	s.vecs = append(s.vecs, vec...)
	x.bytes += rowBytes(s.dims, key)
	for x.maxBytes > 0 && x.bytes > x.maxBytes && len(s.keys) > 1 {
		x.removeLocked(s, 0) // the oldest of the partition
	}
}

func (s *slab) find(key string) int {
	for i, k := range s.keys {
		if k == key {
			return i
		}
	}
	return -1
}

// removeLocked takes row i out of s, moving the last row into its place.
func (x *Index) removeLocked(s *slab, i int) {
	last := len(s.keys) - 1
	x.bytes -= rowBytes(s.dims, s.keys[i])
	s.keys[i], s.exp[i] = s.keys[last], s.exp[last]
	copy(s.vecs[i*s.dims:(i+1)*s.dims], s.vecs[last*s.dims:])
	s.keys, s.exp, s.vecs = s.keys[:last], s.exp[:last], s.vecs[:last*s.dims]
}

func (x *Index) dropLocked(partition string, s *slab) {
	for _, k := range s.keys {
		x.bytes -= rowBytes(s.dims, k)
	}
	delete(x.parts, partition)
}

// Nearest returns the key of the unexpired vector of the partition nearest
// to vec, and its cosine distance (1 minus the dot product of unit
// vectors).
func (x *Index) Nearest(partition string, vec []float32, now int64) (key string, dist float32, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s := x.parts[partition]
	if s == nil || s.dims != len(vec) {
		return "", 0, false
	}
	best, at := float32(-2), -1
	for i := range s.keys {
		if s.exp[i] <= now {
			continue
		}
		d := dot(vec, s.vecs[i*s.dims:(i+1)*s.dims])
		if d > best {
			best, at = d, i
		}
	}
	if at < 0 {
		return "", 0, false
	}
	return s.keys[at], max(1-best, 0), true
}

// dot is the dot product of two vectors of the same length, unrolled by
// four (the scan's whole cost).
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// Remove drops key's vector from the partition.
func (x *Index) Remove(partition, key string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s := x.parts[partition]; s != nil {
		if i := s.find(key); i >= 0 {
			x.removeLocked(s, i)
		}
		if len(s.keys) == 0 {
			delete(x.parts, partition)
		}
	}
}

// Sweep drops every vector expired at now.
func (x *Index) Sweep(now int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for p, s := range x.parts {
		for i := len(s.keys) - 1; i >= 0; i-- {
			if s.exp[i] <= now {
				x.removeLocked(s, i)
			}
		}
		if len(s.keys) == 0 {
			delete(x.parts, p)
		}
	}
}

// ClearPrefix drops the partitions whose name starts with prefix ("" for
// all).
func (x *Index) ClearPrefix(prefix string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for p, s := range x.parts {
		if strings.HasPrefix(p, prefix) {
			x.dropLocked(p, s)
		}
	}
}

// Stats returns the vectors and bytes held.
func (x *Index) Stats() (vectors, bytes int64) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, s := range x.parts {
		vectors += int64(len(s.keys))
	}
	return vectors, x.bytes
}
