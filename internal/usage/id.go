package usage

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// NewID returns a new request id: a UUID version 7 (RFC 9562), the Unix time
// in milliseconds followed by 74 random bits. Ids made later sort later, so
// the stores' primary-key index grows at its end: with random (version 4)
// ids, every insert lands on a random page of a large index, and a SQLite
// ledger of a few hundred thousand records spent three times the CPU per
// record.
func NewID() string { return newIDAt(time.Now()) }

func newIDAt(t time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:]) // never fails (crypto/rand)
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
