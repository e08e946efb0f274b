package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// ErrNotJSON is Canonical's error for a body that is not a JSON object.
var ErrNotJSON = errors.New("cache: the body is not a JSON object")

// ignored are the top-level fields that do not change the answer, left out
// of every key: how a stream reports usage, who asked, what to tag the
// answer with, whether the backend keeps it.
var ignored = map[string]bool{"stream_options": true, "user": true, "metadata": true, "store": true}

// Canonical appends to dst the canonical form of a JSON object body: keys
// sorted, no whitespace, strings re-escaped one way, numbers as written, and
// the top-level fields that do not change the answer (stream_options, user,
// metadata, store) left out. Two bodies a JSON reader reads the same have
// the same canonical form. Objects with a key given twice are not expected
// (wire.ParseRequest refuses them); the first is kept.
func Canonical(dst, body []byte) ([]byte, error) {
	v := gjson.ParseBytes(body)
	if !v.IsObject() || !gjson.ValidBytes(body) {
		return dst, ErrNotJSON
	}
	return appendObject(dst, v, ignored), nil
}

// field is one key and value of an object.
type field struct {
	key string
	val gjson.Result
}

func appendObject(dst []byte, v gjson.Result, skip map[string]bool) []byte {
	var buf [16]field
	fields := buf[:0]
	v.ForEach(func(k, val gjson.Result) bool {
		key := string(appendUnquoted(nil, k.Raw))
		if skip[key] || slices.ContainsFunc(fields, func(f field) bool { return f.key == key }) {
			return true
		}
		fields = append(fields, field{key, val})
		return true
	})
	slices.SortFunc(fields, func(a, b field) int { return strings.Compare(a.key, b.key) })
	dst = append(dst, '{')
	for i, f := range fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, f.key)
		dst = append(dst, ':')
		dst = appendValue(dst, f.val)
	}
	return append(dst, '}')
}

func appendValue(dst []byte, v gjson.Result) []byte {
	switch v.Type {
	case gjson.String:
		return appendRawString(dst, v.Raw)
	case gjson.Number:
		return append(dst, v.Raw...)
	case gjson.True:
		return append(dst, "true"...)
	case gjson.False:
		return append(dst, "false"...)
	case gjson.Null:
		return append(dst, "null"...)
	}
	if v.IsObject() {
		return appendObject(dst, v, nil)
	}
	dst = append(dst, '[')
	first := true
	v.ForEach(func(_, e gjson.Result) bool {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendValue(dst, e)
		return true
	})
	return append(dst, ']')
}

// appendString appends s as a JSON string, escaping only what JSON requires
// (quote, backslash, control characters) and invalid UTF-8 as U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			default:
				dst = append(dst, `\u00`...)
				dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, "\ufffd"...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// Hash is a SHA-256 digest of a key's parts, hex-encoded.
type Hash = string

// hashOf returns the hex SHA-256 of the parts, each length-prefixed so that
// no two lists of parts hash alike.
func hashOf(parts ...[]byte) Hash {
	h := sha256.New()
	var n [20]byte
	for _, p := range parts {
		h.Write(strconv.AppendInt(n[:0], int64(len(p)), 10))
		h.Write([]byte{':'})
		h.Write(p)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// appendRawString appends the canonical form of the raw JSON string raw
// (quotes included).
func appendRawString(dst []byte, raw string) []byte {
	if strings.IndexByte(raw, '\\') < 0 {
		return appendString(dst, raw[1:len(raw)-1])
	}
	var buf [256]byte
	return appendString(dst, string(appendUnquoted(buf[:0], raw)))
}

// appendUnquoted appends the text of the raw JSON string raw, as
// encoding/json reads it: a surrogate half that is not part of a pair is
// U+FFFD. (gjson pairs a high surrogate with whatever escape follows it.)
func appendUnquoted(dst []byte, raw string) []byte {
	s := raw[1 : len(raw)-1]
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			dst = append(dst, c)
			i++
			continue
		}
		switch e := s[i+1]; e {
		case 'u':
			r, n := hex4(s[i+2:])
			if n == 0 {
				return append(dst, s[i:]...) // not valid JSON; kept as it is
			}
			i += 2 + n
			if utf16.IsSurrogate(r) {
				r2, n2 := rune(-1), 0
				if strings.HasPrefix(s[i:], `\u`) {
					r2, n2 = hex4(s[i+2:])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r, i = d, i+2+n2
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			dst = append(dst, unescape(e))
			i += 2
		}
	}
	return dst
}

func unescape(e byte) byte {
	switch e {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return e // " \\ /
}

// hex4 reads four hex digits; n is 0 when there are not four.
func hex4(s string) (r rune, n int) {
	if len(s) < 4 {
		return 0, 0
	}
	for _, c := range []byte(s[:4]) {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, 0
		}
		r = r<<4 | rune(d)
	}
	return r, 4
}
