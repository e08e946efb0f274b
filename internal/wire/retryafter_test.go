package wire

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 28, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name   string
		header map[string][]string // lower-case names, canonicalised by the test
		want   time.Duration
		wantOK bool
	}{
		{name: "none", header: nil},
		{name: "unrelated", header: map[string][]string{"content-type": {"application/json"}}},

		{name: "retry-after seconds", header: map[string][]string{"retry-after": {"7"}}, want: 7 * time.Second, wantOK: true},
		{name: "retry-after zero", header: map[string][]string{"retry-after": {"0"}}, want: 0, wantOK: true},
		{name: "retry-after decimal", header: map[string][]string{"retry-after": {"1.5"}}, want: 1500 * time.Millisecond, wantOK: true},
		{name: "retry-after leading point", header: map[string][]string{"retry-after": {".25"}}, want: 250 * time.Millisecond, wantOK: true},
		{name: "retry-after trailing point", header: map[string][]string{"retry-after": {"3."}}, want: 3 * time.Second, wantOK: true},
		{name: "retry-after a day", header: map[string][]string{"retry-after": {"86400"}}, want: 24 * time.Hour, wantOK: true},
		{name: "retry-after white space", header: map[string][]string{"retry-after": {" 7\t"}}, want: 7 * time.Second, wantOK: true},
		{name: "retry-after leading zeros", header: map[string][]string{"retry-after": {"0007"}}, want: 7 * time.Second, wantOK: true},
		{name: "retry-after http-date", header: map[string][]string{"retry-after": {date(90 * time.Second)}}, want: 90 * time.Second, wantOK: true},
		{name: "retry-after rfc850 date", header: map[string][]string{"retry-after": {now.Add(time.Minute).Format(time.RFC850)}}, want: time.Minute, wantOK: true},
		{name: "retry-after asctime date", header: map[string][]string{"retry-after": {now.Add(2 * time.Minute).Format(time.ANSIC)}}, want: 2 * time.Minute, wantOK: true},
		{name: "retry-after past date", header: map[string][]string{"retry-after": {date(-time.Hour)}}, want: 0, wantOK: true},
		{name: "retry-after date too far", header: map[string][]string{"retry-after": {date(400 * 24 * time.Hour)}}},
		{name: "retry-after negative", header: map[string][]string{"retry-after": {"-5"}}},
		{name: "retry-after plus", header: map[string][]string{"retry-after": {"+5"}}},
		{name: "retry-after unit", header: map[string][]string{"retry-after": {"5s"}}},
		{name: "retry-after words", header: map[string][]string{"retry-after": {"soon"}}},
		{name: "retry-after empty", header: map[string][]string{"retry-after": {""}}},
		{name: "retry-after point only", header: map[string][]string{"retry-after": {"."}}},
		{name: "retry-after exponent", header: map[string][]string{"retry-after": {"1e3"}}},
		{name: "retry-after absurd", header: map[string][]string{"retry-after": {"99999999999"}}},
		{name: "retry-after overflow", header: map[string][]string{"retry-after": {"999999999999999999999999999"}}},
		{name: "retry-after just over a year", header: map[string][]string{"retry-after": {"31622401"}}},
		{name: "retry-after a year", header: map[string][]string{"retry-after": {"31622400"}}, want: maxRetryAfter, wantOK: true},

		{name: "retry-after-ms", header: map[string][]string{"retry-after-ms": {"1500"}}, want: 1500 * time.Millisecond, wantOK: true},
		{name: "retry-after-ms decimal", header: map[string][]string{"retry-after-ms": {"20.5"}}, want: 20500 * time.Microsecond, wantOK: true},
		{name: "retry-after-ms long fraction", header: map[string][]string{"retry-after-ms": {"1.0000015999999999999999"}}, want: time.Millisecond + 1, wantOK: true},
		{name: "retry-after-ms negative", header: map[string][]string{"retry-after-ms": {"-1"}}},
		{name: "retry-after-ms duration", header: map[string][]string{"retry-after-ms": {"1s"}}},
		{name: "x-ms-retry-after-ms", header: map[string][]string{"x-ms-retry-after-ms": {"250"}}, want: 250 * time.Millisecond, wantOK: true},

		{name: "reset-tokens azure seconds", header: map[string][]string{"x-ratelimit-reset-tokens": {"12"}}, want: 12 * time.Second, wantOK: true},
		{name: "reset-requests azure seconds", header: map[string][]string{"x-ratelimit-reset-requests": {"3"}}, want: 3 * time.Second, wantOK: true},
		{name: "reset-tokens openai minutes", header: map[string][]string{"x-ratelimit-reset-tokens": {"6m0s"}}, want: 6 * time.Minute, wantOK: true},
		{name: "reset-tokens openai seconds", header: map[string][]string{"x-ratelimit-reset-tokens": {"1s"}}, want: time.Second, wantOK: true},
		{name: "reset-tokens openai ms", header: map[string][]string{"x-ratelimit-reset-tokens": {"20ms"}}, want: 20 * time.Millisecond, wantOK: true},
		{name: "reset-tokens openai decimal", header: map[string][]string{"x-ratelimit-reset-tokens": {"1.5s"}}, want: 1500 * time.Millisecond, wantOK: true},
		{name: "reset-requests openai hours", header: map[string][]string{"x-ratelimit-reset-requests": {"2h3m"}}, want: 2*time.Hour + 3*time.Minute, wantOK: true},
		{name: "reset micro sign", header: map[string][]string{"x-ratelimit-reset-requests": {"7µs"}}, want: 7 * time.Microsecond, wantOK: true},
		{name: "reset greek mu", header: map[string][]string{"x-ratelimit-reset-requests": {"7μs8ns"}}, want: 7008 * time.Nanosecond, wantOK: true},
		{name: "reset all units", header: map[string][]string{"x-ratelimit-reset-requests": {"1h1m1s1ms1us1ns"}}, want: time.Hour + time.Minute + time.Second + time.Millisecond + time.Microsecond + time.Nanosecond, wantOK: true},
		{name: "reset negative", header: map[string][]string{"x-ratelimit-reset-requests": {"-1s"}}},
		{name: "reset missing unit", header: map[string][]string{"x-ratelimit-reset-requests": {"1m30"}}},
		{name: "reset unknown unit", header: map[string][]string{"x-ratelimit-reset-requests": {"1d"}}},
		{name: "reset upper-case unit", header: map[string][]string{"x-ratelimit-reset-requests": {"1S"}}},
		{name: "reset inner space", header: map[string][]string{"x-ratelimit-reset-requests": {"1m 30s"}}},
		{name: "reset unit only", header: map[string][]string{"x-ratelimit-reset-requests": {"s"}}},
		{name: "reset absurd", header: map[string][]string{"x-ratelimit-reset-requests": {"9000h"}}},
		{name: "reset absurd sum", header: map[string][]string{"x-ratelimit-reset-requests": {"8000h8000h"}}},

		{name: "longest wins", header: map[string][]string{
			"retry-after":                {"7"},
			"retry-after-ms":             {"7500"},
			"x-ratelimit-reset-tokens":   {"6s"},
			"x-ratelimit-reset-requests": {"1s"},
		}, want: 7500 * time.Millisecond, wantOK: true},
		{name: "explicit retry-after wins over a longer reset", header: map[string][]string{
			"retry-after":              {"1"},
			"x-ratelimit-reset-tokens": {"1m0s"},
		}, want: time.Second, wantOK: true},
		{name: "reset used when no explicit header parses", header: map[string][]string{
			"retry-after":              {"soon"},
			"x-ratelimit-reset-tokens": {"1m0s"},
		}, want: time.Minute, wantOK: true},
		{name: "bad one skipped", header: map[string][]string{
			"retry-after":    {"later"},
			"retry-after-ms": {"300"},
		}, want: 300 * time.Millisecond, wantOK: true},
		{name: "repeated header", header: map[string][]string{"retry-after": {"2", "9", "x"}}, want: 9 * time.Second, wantOK: true},
		{name: "zero and garbage", header: map[string][]string{"retry-after": {"junk"}, "retry-after-ms": {"0"}}, want: 0, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, vv := range tt.header {
				for _, v := range vv {
					h.Add(k, v)
				}
			}
			got, ok := RetryAfter(h, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("RetryAfter(%v) = %v, %t; want %v, %t", tt.header, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestRetryHintsCanonical guards the map index in RetryAfter: a name that is
// not canonical would never be found in a header net/http built.
func TestRetryHintsCanonical(t *testing.T) {
	for _, hint := range retryHints {
		if got := http.CanonicalHeaderKey(hint.name); got != hint.name {
			t.Errorf("header name %q: canonical form is %q", hint.name, got)
		}
	}
}

func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2025, 3, 28, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"7", "1.5", "-1", "0", ".", "6m0s", "1.5s", "2h3m", "20ms", "7µs", "1m30",
		"99999999999999999999", "1e3", now.Format(http.TimeFormat), "Sun, 06 Nov 1994 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Fri, 31 Dec 9999 23:59:59 GMT",
	} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, name := range []string{"Retry-After", "Retry-After-Ms", "X-Ms-Retry-After-Ms", "X-Ratelimit-Reset-Tokens", "X-Ratelimit-Reset-Requests"} {
			h := http.Header{name: {a, b}}
			d, ok := RetryAfter(h, now)
			if d < 0 || d > maxRetryAfter {
				t.Fatalf("RetryAfter(%s: %q, %q) = %v; want 0 to %v", name, a, b, d, maxRetryAfter)
			}
			if !ok && d != 0 {
				t.Fatalf("RetryAfter(%s: %q, %q) = %v, false; want 0 when not found", name, a, b, d)
			}
		}
	})
}

func BenchmarkRetryAfter(b *testing.B) {
	now := time.Date(2025, 3, 28, 12, 0, 0, 0, time.UTC)
	benches := []struct {
		name   string
		header http.Header
	}{
		{"seconds", http.Header{"Retry-After": {"7"}}},
		{"azure 429", http.Header{"Retry-After": {"7"}, "Retry-After-Ms": {"6843"}, "X-Ratelimit-Reset-Tokens": {"7"}}},
		{"openai duration", http.Header{"X-Ratelimit-Reset-Tokens": {"6m0s"}, "X-Ratelimit-Reset-Requests": {"1.5s"}}},
		{"http-date", http.Header{"Retry-After": {now.Add(time.Minute).Format(http.TimeFormat)}}},
		{"none", http.Header{"Content-Type": {"application/json"}}},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := RetryAfter(bb.header, now); !ok && bb.name != "none" {
					b.Fatal("not found")
				}
			}
		})
	}
}

func TestRetryAfterAllocs(t *testing.T) {
	now := time.Now()
	h := http.Header{"Retry-After": {"7"}, "X-Ratelimit-Reset-Tokens": {"6m0s"}}
	if n := testing.AllocsPerRun(100, func() { RetryAfter(h, now) }); n != 0 {
		t.Errorf("RetryAfter allocates %v times; want 0", n)
	}
}
