package limit

import (
	"strconv"
	"testing"
	"time"
)

// TestMemorySweep checks that idle windows are reclaimed without a goroutine:
// once their windows (plus the margin) have passed, the next calls drop them.
func TestMemorySweep(t *testing.T) {
	m := NewMemory()
	l := New(Options{Store: m})
	rules := []*Rule{{ID: "t", TokensPerMinute: 1000, RequestsPerMinute: 10}}
	admitAll := func(now time.Time) {
		for i := range 200 {
			d := l.Admit(t.Context(), Request{Rules: rules, Subject: Subject{Subscription: "s" + strconv.Itoa(i)}, Tokens: 10, Now: now})
			if !d.Allowed {
				t.Fatalf("Admit = %+v", d)
			}
		}
	}
	tests := []struct {
		name string
		at   string
		want int
	}{
		{"first minute", "12:00:00", 400},
		{"next minute: the first is still within its margin", "12:01:00", 800},
		{"ten minutes on: only the current window is left", "12:10:00", 400},
	}
	for _, tt := range tests {
		admitAll(clock(tt.at))
		if got := m.len(); got != tt.want {
			t.Errorf("%s: %d counters; want %d", tt.name, got, tt.want)
		}
	}
}

// TestMemoryAllocs holds the hot path to its budget: Admit and Settle of one
// rule allocate at most 2 objects (the reservation, and nothing else once the
// window's counters exist).
func TestMemoryAllocs(t *testing.T) {
	l := New(Options{Store: NewMemory()})
	for _, tc := range []struct {
		name  string
		rules []*Rule
	}{
		{"tokens per minute", []*Rule{tpm("t", 1<<60)}},
		{"tokens, requests and quota", []*Rule{{ID: "a", TokensPerMinute: 1 << 60, RequestsPerMinute: 1 << 60, TokenQuota: 1 << 60, QuotaPeriod: Month}}},
	} {
		now := clock("12:00:00")
		r := Request{Rules: tc.rules, Subject: Subject{Subscription: "alice", Product: "gold"}, Tokens: 1000, Now: now}
		got := testing.AllocsPerRun(1000, func() {
			d := l.Admit(t.Context(), r)
			if _, err := l.Settle(t.Context(), d.Reservation, 800, now); err != nil {
				t.Fatal(err)
			}
		})
		if got > 2 {
			t.Errorf("%s: Admit+Settle allocates %v objects; want at most 2", tc.name, got)
		}
	}
}
