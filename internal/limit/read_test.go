package limit

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sluice-gateway/sluice/internal/redistest"
)

// usageRow is the part of a Usage a test compares.
type usageRow struct {
	Rule          string
	Kind          Kind
	Subject       string
	Used, Limit   int64
	Start, Resets string
}

func rows(us []Usage) []usageRow {
	out := make([]usageRow, len(us))
	for i, u := range us {
		out[i] = usageRow{u.Rule.ID, u.Kind, u.Subject + u.Model, u.Used, u.Limit,
			u.Start.Format(time.RFC3339), u.Resets.Format(time.RFC3339)}
	}
	return out
}

// TestRead checks that Read reports what admitted and settled requests
// counted, in the windows of the time read, and changes nothing.
func TestRead(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(t *testing.T) Store) {
		l := New(Options{Store: newStore(t), Timeout: patient})
		t.Cleanup(func() { l.Close(context.Background()) })
		sub := &Rule{ID: "gold/0", TokensPerMinute: 1000, RequestsPerMinute: 10, TokenQuota: 5000, QuotaPeriod: Day}
		perModel := &Rule{ID: "gold/1", Key: KeySubscriptionModel, TokensPerMinute: 700}
		budget := &Rule{ID: "gold/budget", TokenQuota: 2_000_000, QuotaPeriod: Month}
		alice := Subject{Subscription: "alice", Product: "gold", Model: "gpt-4o"}
		d := l.Admit(t.Context(), Request{Rules: []*Rule{sub, perModel}, Subject: alice, Tokens: 300, Now: clock("12:00:10")})
		if !d.Allowed {
			t.Fatalf("Admit refused: %+v", d.Denial)
		}
		if _, err := l.Settle(t.Context(), d.Reservation, 250, clock("12:00:12")); err != nil {
			t.Fatal(err)
		}
		b := l.Admit(t.Context(), Request{Rules: []*Rule{budget}, Subject: alice, Now: clock("12:00:12")})
		if _, err := l.Settle(t.Context(), b.Reservation, 1_250_000, clock("12:00:13")); err != nil {
			t.Fatal(err)
		}

		probes := []Probe{
			{Subject: alice, Rules: []*Rule{sub, perModel, budget}},
			{Subject: Subject{Subscription: "bob", Product: "gold", Model: "gpt-4o"}, Rules: []*Rule{sub}},
		}
		want := [][]usageRow{
			{
				{"gold/0", TokensPerMinute, "alice", 250, 1000, "2025-03-14T12:00:00Z", "2025-03-14T12:01:00Z"},
				{"gold/0", RequestsPerMinute, "alice", 1, 10, "2025-03-14T12:00:00Z", "2025-03-14T12:01:00Z"},
				{"gold/0", Quota, "alice", 250, 5000, "2025-03-14T00:00:00Z", "2025-03-15T00:00:00Z"},
				{"gold/1", TokensPerMinute, "alicegpt-4o", 250, 700, "2025-03-14T12:00:00Z", "2025-03-14T12:01:00Z"},
				{"gold/budget", Quota, "alice", 1_250_000, 2_000_000, "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z"},
			},
			{
				{"gold/0", TokensPerMinute, "bob", 0, 1000, "2025-03-14T12:00:00Z", "2025-03-14T12:01:00Z"},
				{"gold/0", RequestsPerMinute, "bob", 0, 10, "2025-03-14T12:00:00Z", "2025-03-14T12:01:00Z"},
				{"gold/0", Quota, "bob", 0, 5000, "2025-03-14T00:00:00Z", "2025-03-15T00:00:00Z"},
			},
		}
		for range 2 { // a read changes nothing
			got, err := l.Read(t.Context(), clock("12:00:30"), probes...)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if len(got) != len(want) {
				t.Fatalf("Read returned %d lists; want %d", len(got), len(want))
			}
			for i := range want {
				if diff := cmp.Diff(want[i], rows(got[i])); diff != "" {
					t.Errorf("probe %d (-want +got):\n%s", i, diff)
				}
			}
		}
		// The next minute starts from 0; the day's quota and the month's
		// budget keep their counts.
		got, err := l.Read(t.Context(), clock("12:01:05"), probes[0])
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		used := []int64{}
		for _, u := range got[0] {
			used = append(used, u.Used)
		}
		if diff := cmp.Diff([]int64{0, 0, 250, 0, 1_250_000}, used); diff != "" {
			t.Errorf("used in the next minute (-want +got):\n%s", diff)
		}
	})
}

// TestReadAdaptive checks that an adaptive limit reads as its effective
// limit: its base plus its share of what the shared limit has left.
func TestReadAdaptive(t *testing.T) {
	l := New(Options{})
	global := &Rule{ID: "global", Key: KeyGlobal, TokensPerMinute: 1000}
	tier := &Rule{ID: "p/1", TokensPerMinute: 100, AdaptiveShare: 0.1, AdaptiveOf: global}
	now := clock("12:00:00")
	s := Subject{Subscription: "a", Product: "p"}
	if d := l.Admit(t.Context(), Request{Rules: []*Rule{global, tier}, Subject: s, Tokens: 200, Now: now}); !d.Allowed {
		t.Fatalf("Admit refused: %+v", d.Denial)
	}
	got, err := l.Read(t.Context(), now, Probe{Subject: s, Rules: []*Rule{global, tier}})
	if err != nil {
		t.Fatal(err)
	}
	if u := got[0][1]; u.Used != 200 || u.Limit != 180 {
		t.Errorf("tier: used %d of %d; want 200 of 180 (100 + 0.1 * 800 left of the global)", u.Used, u.Limit)
	}
}

// TestMemoryReadExpired checks that a counter past its expiry reads 0,
// though the store has not dropped it yet.
func TestMemoryReadExpired(t *testing.T) {
	m := NewMemory()
	now := clock("12:00:00")
	c := Counter{Rule: "r", Kind: TokensPerMinute, Subject: "alice", Start: now.Unix()}
	if _, err := m.Reserve(t.Context(), now, "", []Op{{Counter: c, Delta: 5, Limit: 10, Expires: now.Add(time.Second)}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		want int64
	}{{now, 5}, {now.Add(2 * time.Second), 0}} {
		got, err := m.Read(t.Context(), tc.at, []Counter{c, {Rule: "other"}})
		if err != nil || got[0] != tc.want || got[1] != 0 {
			t.Errorf("Read at %v = %v, %v; want [%d 0]", tc.at, got, err, tc.want)
		}
	}
}

// TestReadTwoInstances checks that two limiters sharing one Redis each see
// what the other counted.
func TestReadTwoInstances(t *testing.T) {
	srv := redistest.Start(t)
	a := New(Options{Store: newRedisStore(t, srv, longTimeouts), Timeout: patient})
	b := New(Options{Store: newRedisStore(t, srv, longTimeouts), Timeout: patient})
	t.Cleanup(func() { a.Close(context.Background()); b.Close(context.Background()) })
	rule := &Rule{ID: "r", TokensPerMinute: 1000, TokenQuota: 10000, QuotaPeriod: Month}
	alice := Subject{Subscription: "alice"}
	now := clock("12:00:00")
	for i, l := range []*Limiter{a, b} {
		d := l.Admit(t.Context(), Request{Rules: []*Rule{rule}, Subject: alice, Tokens: 100 * int64(i+1), Now: now})
		if !d.Allowed || d.StoreError != nil {
			t.Fatalf("instance %d: Admit = %+v", i, d)
		}
	}
	for i, l := range []*Limiter{a, b} {
		got, err := l.Read(t.Context(), now, Probe{Subject: alice, Rules: []*Rule{rule}})
		if err != nil {
			t.Fatalf("instance %d: Read: %v", i, err)
		}
		if got[0][0].Used != 300 || got[0][1].Used != 300 {
			t.Errorf("instance %d reads %d tokens this minute and %d this month; want 300 and 300 (both instances' requests)",
				i, got[0][0].Used, got[0][1].Used)
		}
	}
}

// TestReadRedisDown checks that a Read fails, within the limiter's Timeout,
// when Redis hangs or is gone, rather than guessing or waiting.
func TestReadRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	l := New(Options{Store: newRedisStore(t, srv, longTimeouts), Timeout: outageTimeout})
	t.Cleanup(func() { l.Close(context.Background()) })
	rule := tpm("r", 1000)
	probe := Probe{Subject: Subject{Subscription: "alice"}, Rules: []*Rule{rule}}
	now := clock("12:00:00")
	if d := l.Admit(t.Context(), Request{Rules: []*Rule{rule}, Subject: probe.Subject, Tokens: 10, Now: now}); !d.Allowed {
		t.Fatalf("Admit: %+v", d)
	}
	if _, err := l.Read(t.Context(), now, probe); err != nil {
		t.Fatalf("Read before the outage: %v", err)
	}
	for _, tc := range []struct {
		name    string
		breakIt func()
	}{
		{"paused", srv.Pause},
		{"stopped", func() { srv.Resume(); srv.Stop() }},
	} {
		tc.breakIt()
		start := time.Now()
		got, err := l.Read(context.Background(), now, probe)
		if took := time.Since(start); took > outageTimeout+slack {
			t.Errorf("%s: Read took %v; want it bounded by the timeout %v", tc.name, took, outageTimeout)
		}
		if err == nil {
			t.Errorf("%s: Read = %+v, no error; want the store's error", tc.name, got)
		}
	}
}
