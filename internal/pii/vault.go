package pii

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A Vault holds the values one request's placeholders stand for, so that
// the answer can get them back. The same value gets the same placeholder
// within a request. It is not safe for concurrent use; a request's answer is
// relayed by one goroutine.
type Vault struct {
	byValue map[string]string // category + "\x00" + value -> placeholder
	values  map[string]string // placeholder -> value
	counts  map[string]int    // category -> placeholders made
	taken   []byte            // the prompt text: placeholders already in it are not made
	maxLen  int               // the longest placeholder
}

// newVault returns an empty Vault for a request whose prompt text is taken.
func newVault(taken []byte) *Vault {
	return &Vault{byValue: map[string]string{}, values: map[string]string{}, counts: map[string]int{}, taken: taken}
}

// Len returns the number of placeholders made.
func (v *Vault) Len() int {
	if v == nil {
		return 0
	}
	return len(v.values)
}

// Counts returns how many distinct values of each category were masked.
func (v *Vault) Counts() map[string]int { return v.counts }

// placeholder returns the placeholder of value: its own when it was seen
// before, else a new one, <CATEGORY_n>, numbered per category from 1 and
// never one the client's own text used already.
func (v *Vault) placeholder(category, value string) string {
	k := category + "\x00" + value
	if p, ok := v.byValue[k]; ok {
		return p
	}
	name := placeholderName(category)
	for {
		v.counts[category]++
		p := "<" + name + "_" + strconv.Itoa(v.counts[category]) + ">"
		if _, used := v.values[p]; used || bytes.Contains(v.taken, []byte(p)) {
			continue
		}
		v.byValue[k], v.values[p] = p, value
		v.maxLen = max(v.maxLen, len(p))
		return p
	}
}

// placeholderName spells a category in upper snake case: PhoneNumber is
// PHONE_NUMBER, IPAddress IP_ADDRESS.
func placeholderName(category string) string {
	var b strings.Builder
	rs := []rune(category)
	for i, r := range rs {
		upper := r >= 'A' && r <= 'Z'
		lowerOrDigit := (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')
		switch {
		case upper && i > 0 && b.Len() > 0:
			prev := rs[i-1]
			prevLower := (prev >= 'a' && prev <= 'z') || (prev >= '0' && prev <= '9')
			nextLower := i+1 < len(rs) && rs[i+1] >= 'a' && rs[i+1] <= 'z'
			prevUpper := prev >= 'A' && prev <= 'Z'
			if prevLower || (prevUpper && nextLower) {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		case upper:
			b.WriteRune(r)
		case lowerOrDigit:
			b.WriteString(strings.ToUpper(string(r)))
		default:
			if b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
		}
	}
	if b.Len() == 0 {
		return "PII"
	}
	return b.String()
}

// Restore returns s with every placeholder of the vault put back.
func (v *Vault) Restore(s string) string {
	out, _ := v.restore(s, true)
	return out
}

// restore puts the placeholders of s back. Unless final, an unfinished
// placeholder at the end of s (a prefix of one of the vault's) is held
// back: out is what may go on, hold what waits for the next piece.
func (v *Vault) restore(s string, final bool) (out, hold string) {
	if v.Len() == 0 {
		return s, ""
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '<' {
			continue
		}
		j := strings.IndexByte(s[i:], '>')
		if j < 0 || j >= v.maxLen {
			if !final && j < 0 && v.unfinished(s[i:]) {
				b.WriteString(s[last:i])
				return b.String(), s[i:]
			}
			continue
		}
		if val, ok := v.values[s[i:i+j+1]]; ok {
			b.WriteString(s[last:i])
			b.WriteString(val)
			last = i + j + 1
			i += j
		}
	}
	if last == 0 {
		return s, ""
	}
	b.WriteString(s[last:])
	return b.String(), ""
}

// unfinished reports whether tail could be the start of a placeholder.
func (v *Vault) unfinished(tail string) bool {
	if len(tail) >= v.maxLen {
		return false
	}
	for p := range v.values {
		if strings.HasPrefix(p, tail) {
			return true
		}
	}
	return false
}

// RestoreJSON returns a JSON document (a response body, an event's data)
// with the placeholders in its strings put back, escaped for JSON. A
// placeholder can only be inside a string, whether its angle brackets are
// written as they are or as \u003c and \u003e (Go's encoder), so the
// document stays valid. It returns raw itself when it has none.
func (v *Vault) RestoreJSON(raw []byte) []byte {
	if v.Len() == 0 {
		return raw
	}
	var out []byte
	last := 0
	for i := 0; i < len(raw); i++ {
		open := 0
		switch {
		case raw[i] == '<':
			open = 1
		case raw[i] == '\\' && i+6 <= len(raw) && (string(raw[i:i+6]) == `\u003c` || string(raw[i:i+6]) == `\u003C`):
			open = 6
		default:
			continue
		}
		j := i + open
		for j < len(raw) && j-i < 2*v.maxLen && (raw[j] >= 'A' && raw[j] <= 'Z' || raw[j] >= '0' && raw[j] <= '9' || raw[j] == '_') {
			j++
		}
		closeLen := 0
		switch {
		case j < len(raw) && raw[j] == '>':
			closeLen = 1
		case j+6 <= len(raw) && (string(raw[j:j+6]) == `\u003e` || string(raw[j:j+6]) == `\u003E`):
			closeLen = 6
		default:
			continue
		}
		val, ok := v.values["<"+string(raw[i+open:j])+">"]
		if !ok {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(raw)+64)
		}
		out = append(out, raw[last:i]...)
		out = appendEscaped(out, val)
		last = j + closeLen
		i = last - 1
	}
	if out == nil {
		return raw
	}
	return append(out, raw[last:]...)
}

// appendEscaped appends s as the contents of a JSON string, without quotes:
// quotes, backslashes and control characters escaped, invalid UTF-8 as
// U+FFFD, and angle brackets left as they are (placeholders stay readable).
func appendEscaped(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return dst
}
