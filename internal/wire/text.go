package wire

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on the strings a client sends that Sluice keeps (the usage ledger,
// logs, metrics) or repeats (error messages). docs/security.md lists them.
const (
	// MaxModelBytes bounds a model or deployment name as recorded; a longer
	// one cannot be configured, so it is unknown anyway.
	MaxModelBytes = 256
	// MaxIDBytes bounds the ids a client sends: x-request-id, x-user-id,
	// x-app-id.
	MaxIDBytes = 128
	// MaxEchoBytes bounds what of a client's string an error repeats.
	MaxEchoBytes = 64
)

// CleanText returns s fit to be stored or shown: control characters (C0,
// DEL, C1), line and paragraph separators, bidirectional overrides and
// invalid UTF-8 removed, then cut to at most max bytes on a rune boundary.
// A string that needs none of it is returned as it is, unallocated.
func CleanText(s string, max int) string {
	if len(s) <= max && plainASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), max))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if (r == utf8.RuneError && n == 1) || unsafeRune(r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// EchoText is CleanText cut for an error message: at most MaxEchoBytes,
// marked with an ellipsis when cut.
func EchoText(s string) string {
	c := CleanText(s, MaxEchoBytes)
	if len(c) < len(s) && len(s) > MaxEchoBytes {
		return c + "…"
	}
	return c
}

// plainASCII reports whether s is printable ASCII only.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// unsafeRune reports the runes CleanText removes besides invalid UTF-8:
// they break log lines and terminals, or reorder what a reader sees.
func unsafeRune(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u2028' || r == '\u2029': // line and paragraph separators
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069': // bidi embeddings, overrides, isolates
		return true
	}
	return false
}
