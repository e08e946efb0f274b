package pii

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// The built-in recognisers are hand-written scanners, one pass over the
// text each: Go's regular expressions for the same shapes cost about a
// millisecond per 2 KB of prompt, the scanners a few microseconds.

// builtinSet says which built-in categories a Masker looks for.
type builtinSet struct {
	email, phone, card, iban, ip bool
}

func (s builtinSet) any() bool { return s.email || s.phone || s.card || s.iban || s.ip }

// builtinNames are the built-in categories.
var builtinNames = map[string]func(*builtinSet){
	Email:            func(s *builtinSet) { s.email = true },
	PhoneNumber:      func(s *builtinSet) { s.phone = true },
	CreditCardNumber: func(s *builtinSet) { s.card = true },
	IBAN:             func(s *builtinSet) { s.iban = true },
	IPAddress:        func(s *builtinSet) { s.ip = true },
}

// find appends the built-in entities of text to es.
func (s builtinSet) find(text string, es []Entity) []Entity {
	if s.email && strings.IndexByte(text, '@') >= 0 {
		es = scanEmails(text, es)
	}
	if s.phone || s.card || s.ip {
		es = s.scanDigits(text, es)
	}
	if s.iban {
		es = scanIBANs(text, es)
	}
	if s.ip && strings.Count(text, ":") >= 2 {
		for _, loc := range ipv6.FindAllStringIndex(text, -1) {
			if ipValid(text[loc[0]:loc[1]]) {
				es = append(es, Entity{Category: IPAddress, Start: loc[0], End: loc[1]})
			}
		}
	}
	return es
}

var ipv6 = regexp.MustCompile(`(?i:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}`)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool {
	return isDigit(c) || isUpper(c) || (c >= 'a' && c <= 'z') || c >= 0x80
}

func localChar(c byte) bool {
	return isAlnum(c) && c < 0x80 || strings.IndexByte("._%+-", c) >= 0
}

func domainChar(c byte) bool { return isAlnum(c) && c < 0x80 || c == '-' || c == '.' }

// scanEmails finds addresses around each '@': a local part of
// [A-Za-z0-9._%+-] and a domain of dotted labels ending in a top-level
// domain of two letters or more.
func scanEmails(text string, es []Entity) []Entity {
	for i := 0; i < len(text); i++ {
		if text[i] != '@' {
			continue
		}
		l := i
		for l > 0 && localChar(text[l-1]) {
			l--
		}
		for l < i && text[l] == '.' {
			l++
		}
		r := i + 1
		for r < len(text) && domainChar(text[r]) {
			r++
		}
		for r > i+1 && (text[r-1] == '.' || text[r-1] == '-') {
			r--
		}
		if l == i || r == i+1 {
			continue
		}
		dom := text[i+1 : r]
		dot := strings.LastIndexByte(dom, '.')
		if dot <= 0 || strings.Contains(dom, "..") || dom[0] == '-' || dom[0] == '.' {
			continue
		}
		tld := dom[dot+1:]
		ok := len(tld) >= 2
		for j := 0; j < len(tld) && ok; j++ {
			ok = (tld[j] >= 'a' && tld[j] <= 'z') || isUpper(tld[j])
		}
		if ok {
			es = append(es, Entity{Category: Email, Start: l, End: r})
			i = r - 1
		}
	}
	return es
}

// scanDigits finds runs of digits joined by single separators (space, -,
// ., parentheses) and tells them apart: a dotted quad is an IP address, 13
// to 19 digits that pass the Luhn check a card, 7 to 15 digits a phone
// number (with a leading +, a separator, or at least 10 digits; not a date).
func (s builtinSet) scanDigits(text string, es []Entity) []Entity {
	for i := 0; i < len(text); i++ {
		c := text[i]
		start := i
		switch {
		case isDigit(c):
		case (c == '+' || c == '(') && i+1 < len(text) && isDigit(text[i+1]):
		default:
			continue
		}
		if start > 0 && (isAlnum(text[start-1]) || text[start-1] == '.' || text[start-1] == '-') {
			// Inside a word or a longer number: skip to its end.
			for i < len(text) && (isAlnum(text[i]) || text[i] == '.' || text[i] == '-') {
				i++
			}
			continue
		}
		end, digits, seps := start, 0, 0
		j := start
		for j < len(text) {
			switch ch := text[j]; {
			case isDigit(ch):
				digits++
				j++
				end = j
				continue
			case ch == ' ' || ch == '-' || ch == '.' || ch == '(' || ch == ')' || (ch == '+' && j == start):
				// At most two separators in a row, such as ") ".
				k := j
				for k < len(text) && k-j < 2 && strings.IndexByte(" -.()+", text[k]) >= 0 {
					k++
				}
				if k < len(text) && isDigit(text[k]) {
					seps++
					j = k
					continue
				}
			}
			break
		}
		i = max(end-1, i)
		if end < len(text) && isAlnum(text[end]) || digits == 0 {
			continue
		}
		run := text[start:end]
		switch {
		case s.ip && digits <= 12 && ipv4(run):
			es = append(es, Entity{Category: IPAddress, Start: start, End: end})
		case s.card && digits >= 13 && digits <= 19 && !strings.ContainsAny(run, ".()+") && luhn(run):
			es = append(es, Entity{Category: CreditCardNumber, Start: start, End: end})
		case s.phone && digits >= 7 && digits <= 15 && phoneValid(run, seps, digits):
			es = append(es, Entity{Category: PhoneNumber, Start: start, End: end})
		}
	}
	return es
}

// ipv4 reports whether s is a dotted quad.
func ipv4(s string) bool {
	if strings.Count(s, ".") != 3 || strings.ContainsAny(s, " -()+") {
		return false
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

// phoneValid tells a phone number from other numbers of 7 to 15 digits.
func phoneValid(s string, seps, digits int) bool {
	if !strings.HasPrefix(s, "+") && seps == 0 && digits < 10 {
		return false // an amount, an id
	}
	if strings.Count(s, ".") >= 2 && !strings.ContainsAny(s, " -()+") {
		return false // a version, an address
	}
	// A date: 2024-01-15, 15.01.2024.
	if len(s) == 10 && (s[4] == '-' && s[7] == '-' || s[2] == '.' && s[5] == '.' || s[2] == '/' && s[5] == '/') {
		return false
	}
	return true
}

// scanIBANs finds IBANs: two capital letters, two check digits, then 11 to
// 30 letters and digits, in groups of four or not, that pass the mod-97
// check.
func scanIBANs(text string, es []Entity) []Entity {
	for i := 0; i+15 <= len(text); i++ {
		if !isUpper(text[i]) || !isUpper(text[i+1]) || !isDigit(text[i+2]) || !isDigit(text[i+3]) ||
			(i > 0 && isAlnum(text[i-1])) {
			continue
		}
		// The candidate ends: after each group, longest first.
		var ends []int
		j, n := i, 0
		for j < len(text) && n < 34 {
			c := text[j]
			if isDigit(c) || isUpper(c) {
				j++
				n++
				if j == len(text) || !isAlnum(text[j]) {
					ends = append(ends, j)
				}
				continue
			}
			if c == ' ' && j+1 < len(text) && (isDigit(text[j+1]) || isUpper(text[j+1])) {
				j++
				continue
			}
			break
		}
		for k := len(ends) - 1; k >= 0; k-- {
			if ibanValid(text[i:ends[k]]) {
				es = append(es, Entity{Category: IBAN, Start: i, End: ends[k]})
				i = ends[k] - 1
				break
			}
		}
	}
	return es
}

// luhn reports whether the digits of s pass the Luhn check (ISO/IEC 7812).
func luhn(s string) bool {
	sum, n, double := 0, 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
		n++
	}
	return n >= 13 && n <= 19 && sum%10 == 0
}

// ibanValid reports whether s is an IBAN whose check digits are right
// (ISO 13616: the number, country and check digits moved to the end and
// letters written as 10 to 35, is 1 mod 97).
func ibanValid(s string) bool {
	s = strings.ReplaceAll(s, " ", "")
	if len(s) < 15 || len(s) > 34 {
		return false
	}
	rem := 0
	for _, c := range s[4:] + s[:4] {
		switch {
		case c >= '0' && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			for _, d := range strconv.Itoa(int(c - 'A' + 10)) {
				rem = (rem*10 + int(d-'0')) % 97
			}
		default:
			return false
		}
	}
	return rem == 1
}

// ipValid reports whether s is an IPv6 (or IPv4) address; "12:30:45" is a
// time, not an address: one written without "::" has eight groups.
func ipValid(s string) bool {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	if a.Is6() && !strings.Contains(s, "::") && strings.Count(s, ":") != 7 {
		return false
	}
	return true
}
