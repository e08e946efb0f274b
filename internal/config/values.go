package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-gateway/sluice/internal/secret"
)

// Parsers for values that the runtime reads as well as the validator, so that
// both agree on what a value means.

// ParseStatusRange parses a status code ("429") or an inclusive range of
// status codes ("500-599"), as written in circuit_breaker.status_codes and
// retry.on. Codes are from 100 to 599, and lo <= hi.
func ParseStatusRange(s string) (lo, hi int, err error) {
	first, last, isRange := strings.Cut(s, "-")
	lo, okLo := statusCode(first)
	hi, okHi := lo, okLo
	if isRange {
		hi, okHi = statusCode(last)
	}
	switch {
	case !okLo || !okHi:
		return 0, 0, fmt.Errorf("%s is not a status code or range such as 429 or 500-599 (codes are 100 to 599)", quote(s))
	case lo > hi:
		return 0, 0, fmt.Errorf("%q is not a range: %d is above %d", s, lo, hi)
	}
	return lo, hi, nil
}

// statusCode parses three digits from 100 to 599.
func statusCode(s string) (int, bool) {
	if len(s) != 3 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 100 && n <= 599
}

// KeyDigest returns the SHA-256 digest a subscription key is known by: the
// digest of a key written in clear, or the digest written in hex after
// "sha256:". Its errors never contain the key.
func KeyDigest(key secret.Value) ([sha256.Size]byte, error) {
	k := key.Reveal()
	switch {
	case k == "":
		return [sha256.Size]byte{}, errors.New("must not be empty")
	case strings.TrimSpace(k) != k:
		return [sha256.Size]byte{}, errors.New("must not start or end with white space")
	}
	if digest, ok := strings.CutPrefix(k, "sha256:"); ok {
		var d [sha256.Size]byte
		if len(digest) != hex.EncodedLen(sha256.Size) {
			return d, errors.New("a sha256: key must be followed by exactly 64 hexadecimal characters")
		}
		if _, err := hex.Decode(d[:], []byte(digest)); err != nil {
			return d, errors.New("a sha256: key must be followed by exactly 64 hexadecimal characters")
		}
		return d, nil
	}
	return sha256.Sum256([]byte(k)), nil
}
