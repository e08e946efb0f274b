package wire

import (
	"net/http"
	"strings"
	"time"
)

// maxRetryAfter is the longest wait a throttling hint may ask for and still be
// believed. Azure OpenAI has asked for a day ("Please retry after 86400
// seconds"); a hint of more than a year is garbage, and is ignored rather than
// capped so that the caller falls back to its own default.
const maxRetryAfter = 366 * 24 * time.Hour

// retryHints are the response headers that say how long to wait before the
// next request, in canonical form: net/http canonicalises the names of the
// headers it reads, so a plain map index finds them without allocating.
var retryHints = [...]struct {
	name     string
	parse    func(v string, now time.Time) (time.Duration, bool)
	fallback bool // used only when no explicit retry header parses
}{
	// Azure OpenAI sends retry-after-ms on some 429s (PTU deployments).
	{"Retry-After-Ms", parseMillis, false},
	// The Azure SDKs treat x-ms-retry-after-ms like retry-after-ms.
	{"X-Ms-Retry-After-Ms", parseMillis, false},
	// RFC 9110 section 10.2.3: delay-seconds or an HTTP-date.
	{"Retry-After", parseRetryAfter, false},
	// Azure sends whole seconds; OpenAI sends durations such as "6m0s".
	// OpenAI sends these on every response, as the time until the limit
	// resets fully, which may be far longer than the wait a 429 asks for.
	{"X-Ratelimit-Reset-Tokens", parseReset, true},
	{"X-Ratelimit-Reset-Requests", parseReset, true},
}

// RetryAfter returns the longest wait that the throttling headers of a backend
// response ask for, and false when none of them parses. The explicit ones
// win: retry-after-ms and
// x-ms-retry-after-ms (milliseconds), Retry-After (seconds, or an HTTP-date
// taken relative to now; a date already past is a wait of 0); only when none
// of them is there, x-ratelimit-reset-tokens and x-ratelimit-reset-requests
// (seconds, or a duration such as "1.5s" or "6m0s"). Numbers may have a fractional part.
// Negative, unparsable and absurd values (more than a year) are skipped.
// h must have canonical keys, as net/http builds it.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	var longest time.Duration
	found := false
	for _, hint := range retryHints {
		if hint.fallback && found {
			break
		}
		for _, v := range h[hint.name] {
			if d, ok := hint.parse(strings.TrimSpace(v), now); ok {
				longest, found = max(longest, d), true
			}
		}
	}
	return longest, found
}

func parseMillis(v string, _ time.Time) (time.Duration, bool) {
	return number(v, time.Millisecond)
}

func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if d, ok := number(v, time.Second); ok {
		return d, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d > maxRetryAfter {
		return 0, false
	}
	return max(d, 0), true
}

func parseReset(v string, _ time.Time) (time.Duration, bool) {
	if d, ok := number(v, time.Second); ok {
		return d, true
	}
	return duration(v)
}

// number parses s, a non-negative decimal number such as "7", "1.5" or ".5",
// as a count of unit.
func number(s string, unit time.Duration) (time.Duration, bool) {
	dec, rest, ok := scanDecimal(s)
	if !ok || rest != "" {
		return 0, false
	}
	return dec.times(unit)
}

// duration parses s in the form of time.ParseDuration ("6m0s", "1.5s",
// "20ms", "2h3m"), but without a sign.
func duration(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var total time.Duration
	for s != "" {
		dec, rest, ok := scanDecimal(s)
		if !ok {
			return 0, false
		}
		i := 0
		for i < len(rest) && rest[i] != '.' && (rest[i] < '0' || rest[i] > '9') {
			i++
		}
		unit, ok := units[rest[:i]]
		if !ok {
			return 0, false
		}
		d, ok := dec.times(unit)
		if !ok {
			return 0, false
		}
		if total += d; total > maxRetryAfter {
			return 0, false
		}
		s = rest[i:]
	}
	return total, true
}

// units are the unit suffixes of time.ParseDuration.
var units = map[string]time.Duration{
	"ns": time.Nanosecond,
	"us": time.Microsecond,
	"µs": time.Microsecond, // U+00B5 micro sign
	"μs": time.Microsecond, // U+03BC Greek small letter mu
	"ms": time.Millisecond,
	"s":  time.Second,
	"m":  time.Minute,
	"h":  time.Hour,
}

// decimal is a non-negative decimal number: whole + frac/scale.
type decimal struct {
	whole, frac, scale uint64
}

// scanLimit bounds the whole part of a decimal while scanning, far above any
// believable wait in any unit (a year is 3.2e16 nanoseconds) and far below
// overflow.
const scanLimit = 1e17

// scanDecimal reads a decimal number from the start of s: digits, optionally
// followed by a point and more digits, with at least one digit in all. It
// returns the rest of s. ok is false when s does not start with a number or
// the number is absurdly large.
func scanDecimal(s string) (dec decimal, rest string, ok bool) {
	dec.scale = 1
	i, digits := 0, 0
	for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		if dec.whole = dec.whole*10 + uint64(s[i]-'0'); dec.whole > scanLimit {
			return dec, s, false
		}
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			// Digits beyond the 18th cannot change the result by a nanosecond.
			if dec.scale < 1e18 {
				dec.frac, dec.scale = dec.frac*10+uint64(s[i]-'0'), dec.scale*10
			}
			digits++
		}
	}
	return dec, s[i:], digits > 0
}

// times returns dec units, rounded down to the nanosecond, and false when
// that is more than maxRetryAfter.
func (dec decimal) times(unit time.Duration) (time.Duration, bool) {
	if dec.whole > uint64(maxRetryAfter/unit) {
		return 0, false
	}
	d := time.Duration(dec.whole)*unit + time.Duration(float64(dec.frac)*(float64(unit)/float64(dec.scale)))
	return d, d <= maxRetryAfter
}
