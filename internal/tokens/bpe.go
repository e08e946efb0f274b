package tokens

import (
	"hash/maphash"
	"math"

	"github.com/tiktoken-go/tokenizer/codec"
)

// vocab is an encoding's byte-pair ranks in a compact, read-only hash table.
// The library keeps its ranks in a map it does not export; vocab copies them
// out once, through Decode, into one string and two small slices, so that a
// lookup hashes the piece in place and allocates nothing. It is safe for
// concurrent use.
type vocab struct {
	blob  string   // every token's bytes, back to back
	start []uint32 // start[rank] is where the token of that rank begins in blob
	end   []uint32 // end[rank] is where it ends; start == end for unused ranks
	slots []uint32 // open addressing, linear probing: rank+1, or 0 for empty
	seed  maphash.Seed
	split func(s string, i int) int // the encoding's pre-tokenizer
}

// maxRank bounds the ranks newVocab asks the codec for; o200k_base's highest
// is 199997.
const maxRank = 1 << 18

func newVocab(c *codec.Codec, split func(string, int) int) *vocab {
	v := &vocab{seed: maphash.MakeSeed(), split: split}
	var blob []byte
	for r := range maxRank {
		tok, err := c.Decode([]uint{uint(r)})
		if err != nil {
			continue // ranks reserved for special tokens, and past the end
		}
		for len(v.start) < r {
			v.start = append(v.start, uint32(len(blob)))
			v.end = append(v.end, uint32(len(blob)))
		}
		v.start = append(v.start, uint32(len(blob)))
		blob = append(blob, tok...)
		v.end = append(v.end, uint32(len(blob)))
	}
	v.blob = string(blob)
	size := 1
	for size < 2*len(v.start) {
		size <<= 1
	}
	v.slots = make([]uint32, size)
	mask := uint64(size - 1)
	for r := range v.start {
		if v.start[r] == v.end[r] {
			continue
		}
		i := maphash.String(v.seed, v.token(uint32(r))) & mask
		for v.slots[i] != 0 {
			i = (i + 1) & mask
		}
		v.slots[i] = uint32(r) + 1
	}
	return v
}

func (v *vocab) token(rank uint32) string { return v.blob[v.start[rank]:v.end[rank]] }

// rank returns the rank of the token s, if s is one.
func (v *vocab) rank(s string) (uint32, bool) {
	mask := uint64(len(v.slots) - 1)
	for i := maphash.String(v.seed, s) & mask; ; i = (i + 1) & mask {
		r := v.slots[i]
		if r == 0 {
			return 0, false
		}
		if v.token(r-1) == s {
			return r - 1, true
		}
	}
}

// count returns the number of tokens in text.
func (v *vocab) count(text string) int {
	n := 0
	for i := 0; i < len(text); {
		j := v.split(text, i)
		n += v.countPiece(text[i:j])
		i = j
	}
	return n
}

// countPiece returns the number of tokens byte-pair encoding makes of piece.
func (v *vocab) countPiece(piece string) int {
	if len(piece) == 1 {
		return 1
	}
	if _, ok := v.rank(piece); ok {
		return 1
	}
	if len(piece) <= smallPiece {
		return v.mergeSmall(piece)
	}
	return v.mergeLarge(piece)
}

const noRank = math.MaxUint32

// smallPiece is the longest piece mergeSmall takes: its quadratic scan beats
// a heap on short pieces, and its arrays fit on the stack.
const smallPiece = 64

// pairRank returns the rank of piece[a:b], or noRank.
func (v *vocab) pairRank(piece string, a, b int) uint32 {
	if r, ok := v.rank(piece[a:b]); ok {
		return r
	}
	return noRank
}

// mergeSmall is tiktoken's byte_pair_merge: repeatedly merge the adjacent
// pair of parts whose union has the lowest rank (the leftmost on a tie) until
// no union is a token, and return the number of parts left.
func (v *vocab) mergeSmall(piece string) int {
	var offBuf [smallPiece + 1]int32
	var rankBuf [smallPiece + 1]uint32
	n := len(piece) + 1 // part boundaries, including the end
	off, rank := offBuf[:n], rankBuf[:n]
	for i := range n {
		off[i] = int32(i)
		rank[i] = noRank
	}
	// rank[i] is the rank of parts i and i+1 merged: piece[off[i]:off[i+2]].
	for i := 0; i+2 < n; i++ {
		rank[i] = v.pairRank(piece, i, i+2)
	}
	for n > 1 {
		best, bestRank := -1, uint32(noRank)
		for i := 0; i < n-1; i++ {
			if rank[i] < bestRank {
				best, bestRank = i, rank[i]
			}
		}
		if best < 0 {
			break
		}
		copy(off[best+1:n-1], off[best+2:n])
		copy(rank[best+1:n-1], rank[best+2:n])
		n--
		rank[best] = noRank
		if best+2 < n {
			rank[best] = v.pairRank(piece, int(off[best]), int(off[best+2]))
		}
		if best > 0 {
			rank[best-1] = v.pairRank(piece, int(off[best-1]), int(off[best+1]))
		}
	}
	return n - 1
}

// mergeLarge gives the result of mergeSmall in O(n log n), with the parts in
// a linked list and the candidate merges in a heap, so that a long run of
// letters or symbols in a prompt cannot make counting quadratic.
func (v *vocab) mergeLarge(piece string) int {
	n := int32(len(piece))
	next := make([]int32, n+1) // next[i]: the boundary after i, or -1
	prev := make([]int32, n+1)
	rank := make([]uint32, n+1) // rank of merging the part at i with the next
	for i := range n + 1 {
		next[i], prev[i], rank[i] = i+1, i-1, noRank
	}
	next[n] = -1
	rankAt := func(i int32) uint32 {
		j := next[i]
		if j < 0 || next[j] < 0 {
			return noRank
		}
		return v.pairRank(piece, int(i), int(next[j]))
	}
	h := make(mergeHeap, 0, n)
	for i := int32(0); i+2 <= n; i++ {
		if rank[i] = rankAt(i); rank[i] != noRank {
			h = append(h, candidate{rank[i], i})
		}
	}
	h.init()
	parts := int(n)
	for len(h) > 0 {
		c := h.pop()
		if rank[c.at] != c.rank || next[c.at] < 0 {
			continue // stale: the part changed since this was pushed
		}
		i := c.at
		j := next[i]
		k := next[j]
		next[i], rank[j], prev[k] = k, noRank, i
		next[j] = -1
		parts--
		for _, b := range [2]int32{i, prev[i]} {
			if b < 0 {
				continue
			}
			if rank[b] = rankAt(b); rank[b] != noRank {
				h.push(candidate{rank[b], b})
			}
		}
	}
	return parts
}

type candidate struct {
	rank uint32
	at   int32
}

// mergeHeap is a min-heap of candidates by rank, then by position, so that
// equal ranks merge leftmost first as in mergeSmall.
type mergeHeap []candidate

func (h mergeHeap) less(a, b int) bool {
	return h[a].rank < h[b].rank || h[a].rank == h[b].rank && h[a].at < h[b].at
}

func (h mergeHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *mergeHeap) push(c candidate) {
	*h = append(*h, c)
	for i := len(*h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		(*h)[i], (*h)[p] = (*h)[p], (*h)[i]
		i = p
	}
}

func (h *mergeHeap) pop() candidate {
	old := *h
	top := old[0]
	old[0] = old[len(old)-1]
	*h = old[:len(old)-1]
	h.down(0)
	return top
}

func (h mergeHeap) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && h.less(r, c) {
			c = r
		}
		if !h.less(c, i) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
