package breaker

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2025, 3, 28, 12, 0, 0, 0, time.UTC)

var (
	s429 = []StatusRange{{429, 429}}
	s5xx = []StatusRange{{500, 599}}
)

// count returns a rule that trips after n failures (429 or 5xx, timeouts and
// connection errors) within 10s, for a minute.
func count(n int) Rule {
	return Rule{Failures: n, Interval: 10 * time.Second, Statuses: []StatusRange{{429, 429}, {500, 599}},
		Timeouts: true, Connection: true, TripDuration: time.Minute}
}

func status(code int) Outcome { return Outcome{Status: code} }

// step is a request sent at t0+at with outcome o.
type step struct {
	at time.Duration
	o  Outcome
}

// run sends the steps through b, each with Allow then Done, and fails the
// test when Allow refuses one.
func run(t *testing.T, b *Breaker, steps []step) {
	t.Helper()
	for i, s := range steps {
		tk, ok := b.Allow(t0.Add(s.at))
		if !ok {
			t.Fatalf("step %d (%+v): Allow refused; state %v", i, s, b.Snapshot(t0.Add(s.at)).State)
		}
		b.Done(tk, t0.Add(s.at), s.o)
	}
}

// repeat returns n steps of o, one a second from start.
func repeat(n int, start time.Duration, o Outcome) []step {
	steps := make([]step, n)
	for i := range steps {
		steps[i] = step{start + time.Duration(i)*time.Second, o}
	}
	return steps
}

func concat(parts ...[]step) []step {
	var all []step
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

func TestTrip(t *testing.T) {
	pct := Rule{Percentage: 50, MinRequests: 4, Interval: time.Minute, Statuses: s5xx, TripDuration: time.Minute}
	ra := Rule{Failures: 3, Interval: 10 * time.Second, Statuses: s429, TripDuration: time.Minute, AcceptRetryAfter: true}
	raCapped := ra
	raCapped.MaxTripDuration = 10 * time.Minute
	raOff := ra
	raOff.AcceptRetryAfter = false
	throttled := Outcome{Status: 429, RetryAfter: 7 * time.Second}
	multi := []Rule{
		{Failures: 2, Interval: 10 * time.Second, Statuses: s429, TripDuration: time.Minute},
		{Percentage: 50, MinRequests: 4, Interval: time.Minute, Statuses: s5xx, TripDuration: 5 * time.Minute},
	}

	tests := []struct {
		name       string
		rules      []Rule
		steps      []step
		want       State
		wantReopen time.Duration // from t0, when want is Open
		wantReason string        // when want is Open
	}{
		{name: "count trips at threshold", rules: []Rule{count(3)}, steps: repeat(3, 0, status(429)),
			want: Open, wantReopen: 2*time.Second + time.Minute, wantReason: "3 failures within 10s (last: status 429)"},
		{name: "count below threshold", rules: []Rule{count(3)}, steps: repeat(2, 0, status(429)), want: Closed},
		{name: "successes do not reset the count", rules: []Rule{count(3)},
			steps: []step{{0, status(429)}, {time.Second, status(200)}, {2 * time.Second, status(503)}, {3 * time.Second, status(200)}, {4 * time.Second, status(500)}},
			want:  Open, wantReopen: 4*time.Second + time.Minute, wantReason: "3 failures within 10s (last: status 500)"},
		{name: "statuses outside the ranges are successes", rules: []Rule{count(2)},
			steps: concat(repeat(5, 0, status(400)), repeat(5, 0, status(404)), repeat(5, 0, status(499)), repeat(5, 0, status(600))), want: Closed},
		{name: "timeout", rules: []Rule{count(2)}, steps: repeat(2, 0, Outcome{Err: Timeout}),
			want: Open, wantReopen: time.Second + time.Minute, wantReason: "2 failures within 10s (last: timeout)"},
		{name: "connection error", rules: []Rule{count(2)}, steps: repeat(2, 0, Outcome{Err: Connection}),
			want: Open, wantReopen: time.Second + time.Minute, wantReason: "2 failures within 10s (last: connection error)"},
		{name: "status with error", rules: []Rule{count(1)}, steps: repeat(1, 0, Outcome{Status: 200, Err: Timeout}),
			want: Open, wantReopen: time.Minute, wantReason: "1 failures within 10s (last: status 200, timeout)"},
		{name: "errors not counted", rules: []Rule{{Failures: 1, Interval: time.Second, Statuses: s5xx}},
			steps: concat(repeat(3, 0, Outcome{Err: Timeout}), repeat(3, 0, Outcome{Err: Connection})), want: Closed},
		{name: "ignored never counts", rules: []Rule{count(1)}, steps: repeat(5, 0, Outcome{Status: 500, Ignore: true}), want: Closed},
		{name: "no response and no error is a success", rules: []Rule{count(1)}, steps: repeat(5, 0, Outcome{}), want: Closed},

		// The window of count(3) is 10s in buckets of 1s.
		{name: "failures within the interval", rules: []Rule{count(3)},
			steps: []step{{0, status(500)}, {5 * time.Second, status(500)}, {10 * time.Second, status(500)}},
			want:  Open, wantReopen: 10*time.Second + time.Minute, wantReason: "3 failures within 10s (last: status 500)"},
		{name: "failure forgotten a bucket after the interval", rules: []Rule{count(3)},
			steps: []step{{0, status(500)}, {5 * time.Second, status(500)}, {11 * time.Second, status(500)}}, want: Closed},
		{name: "window keeps sliding", rules: []Rule{count(3)},
			steps: []step{{0, status(500)}, {8 * time.Second, status(500)}, {16 * time.Second, status(500)}, {24 * time.Second, status(500)}},
			want:  Closed},

		{name: "percentage trips", rules: []Rule{pct},
			steps: []step{{0, status(200)}, {time.Second, status(500)}, {2 * time.Second, status(200)}, {3 * time.Second, status(502)}},
			want:  Open, wantReopen: 3*time.Second + time.Minute, wantReason: "2 of 4 requests failed (50%) within 1m0s (last: status 502)"},
		{name: "percentage below min requests", rules: []Rule{pct}, steps: repeat(3, 0, status(500)), want: Closed},
		{name: "percentage below threshold", rules: []Rule{pct},
			steps: concat(repeat(3, 0, status(200)), repeat(2, 3*time.Second, status(500))), want: Closed},
		{name: "percentage is checked on failures", rules: []Rule{pct},
			steps: concat(repeat(3, 0, status(500)), repeat(1, 3*time.Second, status(200))), want: Closed},
		{name: "percentage trips on the next failure", rules: []Rule{pct},
			steps: concat(repeat(3, 0, status(500)), repeat(1, 3*time.Second, status(200)), repeat(1, 4*time.Second, status(500))),
			want:  Open, wantReopen: 4*time.Second + time.Minute, wantReason: "4 of 5 requests failed (80%) within 1m0s (last: status 500)"},
		{name: "percentage forgets old successes", rules: []Rule{pct},
			steps: concat(repeat(20, 0, status(200)), repeat(4, 2*time.Minute, status(500))),
			want:  Open, wantReopen: 2*time.Minute + 3*time.Second + time.Minute, wantReason: "4 of 4 requests failed (100%) within 1m0s (last: status 500)"},
		{name: "percentage within the window", rules: []Rule{pct},
			steps: concat(repeat(20, 0, status(200)), repeat(4, 30*time.Second, status(500))), want: Closed},
		{name: "count or percentage", rules: []Rule{{Failures: 10, Percentage: 50, MinRequests: 2, Interval: time.Minute, Statuses: s5xx, TripDuration: time.Minute}},
			steps: []step{{0, status(200)}, {0, status(500)}},
			want:  Open, wantReopen: time.Minute, wantReason: "1 of 2 requests failed (50%) within 1m0s (last: status 500)"},

		{name: "retry-after honoured", rules: []Rule{ra}, steps: repeat(3, 0, throttled),
			want: Open, wantReopen: 2*time.Second + 7*time.Second, wantReason: "3 failures within 10s (last: status 429); retry-after 7s"},
		{name: "retry-after shorter than trip duration", rules: []Rule{ra}, steps: repeat(3, 0, Outcome{Status: 429, RetryAfter: 20 * time.Millisecond}),
			want: Open, wantReopen: 2*time.Second + 20*time.Millisecond, wantReason: "3 failures within 10s (last: status 429); retry-after 20ms"},
		{name: "retry-after capped", rules: []Rule{raCapped}, steps: repeat(3, 0, Outcome{Status: 429, RetryAfter: 24 * time.Hour}),
			want: Open, wantReopen: 2*time.Second + 10*time.Minute, wantReason: "3 failures within 10s (last: status 429); retry-after 24h0m0s capped to 10m0s"},
		{name: "retry-after under the cap", rules: []Rule{raCapped}, steps: repeat(3, 0, throttled),
			want: Open, wantReopen: 2*time.Second + 7*time.Second, wantReason: "3 failures within 10s (last: status 429); retry-after 7s"},
		{name: "retry-after of the last failure", rules: []Rule{ra},
			steps: []step{{0, Outcome{Status: 429, RetryAfter: time.Hour}}, {time.Second, throttled}, {2 * time.Second, status(429)}},
			want:  Open, wantReopen: 2*time.Second + time.Minute, wantReason: "3 failures within 10s (last: status 429)"},
		{name: "retry-after not accepted", rules: []Rule{raOff}, steps: repeat(3, 0, throttled),
			want: Open, wantReopen: 2*time.Second + time.Minute, wantReason: "3 failures within 10s (last: status 429)"},

		{name: "first rule trips", rules: multi, steps: repeat(2, 0, status(429)),
			want: Open, wantReopen: time.Second + time.Minute, wantReason: "rule 1: 2 failures within 10s (last: status 429)"},
		{name: "second rule trips", rules: multi,
			steps: []step{{0, status(500)}, {time.Second, status(200)}, {2 * time.Second, status(503)}, {3 * time.Second, status(500)}},
			want:  Open, wantReopen: 3*time.Second + 5*time.Minute, wantReason: "rule 2: 3 of 4 requests failed (75%) within 1m0s (last: status 500)"},
		{name: "rules classify separately", rules: multi,
			steps: []step{{0, status(429)}, {time.Second, status(500)}, {2 * time.Second, status(500)}, {3 * time.Second, status(200)}, {4 * time.Second, status(200)}, {5 * time.Second, status(200)}},
			want:  Closed},
		{name: "longest trip wins", rules: []Rule{
			{Failures: 1, Interval: time.Second, Statuses: s5xx, TripDuration: time.Minute},
			{Failures: 1, Interval: time.Second, Statuses: s5xx, TripDuration: 5 * time.Minute},
			{Failures: 1, Interval: time.Second, Statuses: s5xx, TripDuration: 2 * time.Minute},
		}, steps: repeat(1, 0, status(500)), want: Open, wantReopen: 5 * time.Minute, wantReason: "rule 2: 1 failures within 1s (last: status 500)"},
		{name: "inactive rules are not numbered", rules: []Rule{{Interval: time.Second, Statuses: s5xx}, count(1)},
			steps: repeat(1, 0, status(500)), want: Open, wantReopen: time.Minute, wantReason: "1 failures within 10s (last: status 500)"},

		{name: "no rules never trip", rules: nil,
			steps: concat(repeat(50, 0, status(500)), repeat(50, 0, Outcome{Err: Timeout, RetryAfter: time.Hour})), want: Closed},
		{name: "rule without a mode never trips", rules: []Rule{{Interval: time.Second, Statuses: s5xx, Timeouts: true}},
			steps: repeat(20, 0, status(500)), want: Closed},
		{name: "rule without an interval never trips", rules: []Rule{{Failures: 1, Statuses: s5xx}},
			steps: repeat(20, 0, status(500)), want: Closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New("b", tt.rules, nil)
			run(t, b, tt.steps)
			last := t0.Add(tt.steps[len(tt.steps)-1].at)
			s := b.Snapshot(last)
			if s.State != tt.want {
				t.Fatalf("state %v (%q); want %v", s.State, s.LastReason, tt.want)
			}
			if tt.want != Open {
				return
			}
			if got, want := b.ReopenAt(), t0.Add(tt.wantReopen); !got.Equal(want) {
				t.Errorf("ReopenAt() = t0+%v; want t0+%v", got.Sub(t0), tt.wantReopen)
			}
			if s.LastReason != tt.wantReason {
				t.Errorf("reason %q; want %q", s.LastReason, tt.wantReason)
			}
			if s.Trips != 1 {
				t.Errorf("Trips = %d; want 1", s.Trips)
			}
			if _, ok := b.Allow(last); ok {
				t.Errorf("Allow right after the trip: allowed; want refused")
			}
		})
	}
}

// tripped returns a breaker with rules, tripped at t0 for a minute by one
// failure (the rules must trip on one 429 and for a minute).
func tripped(t *testing.T, rules []Rule, onChange func(Change)) *Breaker {
	t.Helper()
	b := New("b", rules, onChange)
	run(t, b, []step{{0, status(429)}})
	if s := b.Snapshot(t0); s.State != Open {
		t.Fatalf("state %v after a failure; want open", s.State)
	}
	return b
}

func TestOpen(t *testing.T) {
	b := tripped(t, []Rule{count(1)}, nil)
	for _, tt := range []struct {
		at   time.Duration
		want bool
	}{{0, false}, {30 * time.Second, false}, {time.Minute - 1, false}, {time.Minute, true}, {time.Hour, true}} {
		if got := b.Available(t0.Add(tt.at)); got != tt.want {
			t.Errorf("Available(t0+%v) = %t; want %t", tt.at, got, tt.want)
		}
	}
	if _, ok := b.Allow(t0.Add(time.Minute - 1)); ok {
		t.Errorf("Allow before the trip expired: allowed; want refused")
	}
	if s := b.Snapshot(t0.Add(time.Minute - 1)); s.State != Open {
		t.Errorf("state %v before the trip expired; want open", s.State)
	}
}

func TestProbe(t *testing.T) {
	rule := count(1)
	rule.Statuses = s429
	rule.AcceptRetryAfter = true
	tests := []struct {
		name       string
		o          Outcome
		want       State
		wantReason string
		wantReopen time.Duration // from the probe, when want is Open
	}{
		{name: "success closes", o: status(200), want: Closed, wantReason: "probe succeeded (status 200)"},
		{name: "status the rule does not count closes", o: status(500), want: Closed, wantReason: "probe succeeded (status 500)"},
		{name: "failure reopens", o: status(429), want: Open, wantReason: "probe failed (status 429)", wantReopen: time.Minute},
		{name: "failure reopens for retry-after", o: Outcome{Status: 429, RetryAfter: 30 * time.Second}, want: Open,
			wantReason: "probe failed (status 429); retry-after 30s", wantReopen: 30 * time.Second},
		{name: "timeout reopens", o: Outcome{Err: Timeout}, want: Open, wantReason: "probe failed (timeout)", wantReopen: time.Minute},
		{name: "ignored stays half-open", o: Outcome{Status: 429, Ignore: true}, want: HalfOpen, wantReason: "trip expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tripped(t, []Rule{rule}, nil)
			at := t0.Add(90 * time.Second)
			probe, ok := b.Allow(at)
			if !ok || !probe.probe {
				t.Fatalf("Allow after the trip = %+v, %t; want a probe", probe, ok)
			}
			if s := b.Snapshot(at); s.State != HalfOpen || s.LastReason != "trip expired" {
				t.Fatalf("state %v (%q) with the probe in flight; want half-open (trip expired)", s.State, s.LastReason)
			}
			if b.Available(at) {
				t.Errorf("Available with the probe in flight; want false")
			}
			if _, ok := b.Allow(at); ok {
				t.Errorf("second Allow with the probe in flight: allowed; want refused")
			}
			b.Done(probe, at, tt.o)
			s := b.Snapshot(at)
			if s.State != tt.want || s.LastReason != tt.wantReason {
				t.Errorf("after the probe: %v (%q); want %v (%q)", s.State, s.LastReason, tt.want, tt.wantReason)
			}
			wantTrips := uint64(1)
			switch tt.want {
			case Open:
				wantTrips = 2
				if got := b.ReopenAt(); !got.Equal(at.Add(tt.wantReopen)) {
					t.Errorf("ReopenAt() = probe+%v; want probe+%v", got.Sub(at), tt.wantReopen)
				}
				if b.Available(at) {
					t.Errorf("Available after the probe failed; want false")
				}
			case Closed:
				if !b.Available(at) || !b.ReopenAt().IsZero() {
					t.Errorf("closed: Available %t, ReopenAt %v; want true, zero", b.Available(at), b.ReopenAt())
				}
				if tk, ok := b.Allow(at); !ok || tk.probe {
					t.Errorf("closed: Allow = %+v, %t; want a ticket that is no probe", tk, ok)
				}
			case HalfOpen:
				if !b.Available(at) {
					t.Errorf("Available after the probe was ignored; want true")
				}
				next, ok := b.Allow(at)
				if !ok || !next.probe {
					t.Errorf("Allow after the probe was ignored = %+v, %t; want the next probe", next, ok)
				}
			}
			if s.Trips != wantTrips {
				t.Errorf("Trips = %d; want %d", s.Trips, wantTrips)
			}
		})
	}
}

// TestSingleProbe has many goroutines ask at once when the trip has expired,
// and when a probe was ignored: exactly one of them may send a request.
func TestSingleProbe(t *testing.T) {
	race := func(b *Breaker, at time.Time) []Ticket {
		var (
			mu      sync.Mutex
			tickets []Ticket
			wg      sync.WaitGroup
		)
		start := make(chan struct{})
		for range 64 {
			wg.Go(func() {
				<-start
				b.Available(at)
				if tk, ok := b.Allow(at); ok {
					mu.Lock()
					tickets = append(tickets, tk)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		return tickets
	}
	for round := range 50 {
		b := tripped(t, []Rule{count(1)}, func(Change) {})
		at := t0.Add(2 * time.Minute)
		got := race(b, at)
		if len(got) != 1 || !got[0].probe {
			t.Fatalf("round %d, trip expired: tickets %+v; want one probe", round, got)
		}
		b.Done(got[0], at, Outcome{Ignore: true})
		got = race(b, at)
		if len(got) != 1 || !got[0].probe {
			t.Fatalf("round %d, probe ignored: tickets %+v; want one probe", round, got)
		}
		if s := b.Snapshot(at); s.State != HalfOpen {
			t.Fatalf("round %d: state %v; want half-open", round, s.State)
		}
	}
}

// TestStaleGeneration reports outcomes whose tickets are from before a state
// change: they must change nothing.
func TestStaleGeneration(t *testing.T) {
	b := New("b", []Rule{count(2)}, nil)
	oldFailure, _ := b.Allow(t0)
	oldSuccess, _ := b.Allow(t0)
	run(t, b, repeat(2, 0, status(500))) // trips
	at := t0.Add(2 * time.Minute)

	b.Done(oldSuccess, at, status(200))
	if s := b.Snapshot(at); s.State != Open {
		t.Fatalf("a success from before the trip: state %v; want open", s.State)
	}
	probe, _ := b.Allow(at)
	b.Done(oldSuccess, at, status(200))
	b.Done(oldFailure, at, status(500))
	if s := b.Snapshot(at); s.State != HalfOpen {
		t.Fatalf("outcomes from before the trip while half-open: state %v; want half-open", s.State)
	}
	b.Done(probe, at, status(200))
	if s := b.Snapshot(at); s.State != Closed {
		t.Fatalf("after the probe succeeded: state %v; want closed", s.State)
	}

	b.Done(oldFailure, at, status(500))
	b.Done(probe, at, status(500))
	b.Done(Ticket{}, at, status(500))
	if s := b.Snapshot(at); s.State != Closed || s.Failures != 0 {
		t.Fatalf("stale failures after the close: state %v, %d failures; want closed, 0", s.State, s.Failures)
	}
	run(t, b, []step{{2 * time.Minute, status(500)}})
	if s := b.Snapshot(at); s.State != Closed || s.Failures != 1 {
		t.Fatalf("one current failure: state %v, %d failures; want closed, 1", s.State, s.Failures)
	}
}

func TestForce(t *testing.T) {
	b := New("b", []Rule{count(1)}, nil)
	check := func(what string, at time.Duration, want State, wantReopen time.Time, wantAvailable bool) {
		t.Helper()
		now := t0.Add(at)
		s := b.Snapshot(now)
		if s.State != want || !s.ReopenAt.Equal(wantReopen) || !b.ReopenAt().Equal(wantReopen) || b.Available(now) != wantAvailable {
			t.Errorf("%s: state %v, reopen %v, Available %t; want %v, %v, %t",
				what, s.State, s.ReopenAt, b.Available(now), want, wantReopen, wantAvailable)
		}
	}

	b.ForceClose(t0, "already closed")
	check("ForceClose while closed", 0, Closed, time.Time{}, true)

	b.ForceOpen(t0, 30*time.Second, "health check failed")
	check("ForceOpen for 30s", 0, Open, t0.Add(30*time.Second), false)
	check("ForceOpen for 30s, later", 30*time.Second, Open, t0.Add(30*time.Second), true)
	b.ForceOpen(t0, 10*time.Second, "shorter")
	check("shorter ForceOpen while open", 0, Open, t0.Add(30*time.Second), false)
	b.ForceOpen(t0, time.Minute, "longer")
	check("longer ForceOpen while open", 0, Open, t0.Add(time.Minute), false)
	if s := b.Snapshot(t0); s.LastReason != "longer" || s.Trips != 1 {
		t.Errorf("after extending: reason %q, %d trips; want %q, 1", s.LastReason, s.Trips, "longer")
	}

	b.ForceOpen(t0, 0, "until further notice")
	check("ForceOpen without end", 1000*time.Hour, Open, time.Time{}, false)
	if _, ok := b.Allow(t0.Add(1000 * time.Hour)); ok {
		t.Errorf("Allow while open without end: allowed; want refused")
	}
	b.ForceOpen(t0, time.Second, "ends sooner")
	check("ForceOpen with end after one without", 1000*time.Hour, Open, time.Time{}, false)

	b.ForceClose(t0, "health check passed")
	check("ForceClose", 0, Closed, time.Time{}, true)
	if s := b.Snapshot(t0); s.LastReason != "health check passed" || s.Trips != 1 {
		t.Errorf("after ForceClose: reason %q, %d trips; want %q, 1", s.LastReason, s.Trips, "health check passed")
	}

	// A probe in flight is forgotten by ForceOpen and by ForceClose.
	b.ForceOpen(t0, time.Second, "blip")
	probe, ok := b.Allow(t0.Add(time.Second))
	if !ok || !probe.probe {
		t.Fatalf("Allow after a forced trip = %+v, %t; want a probe", probe, ok)
	}
	b.ForceOpen(t0.Add(time.Second), time.Minute, "health check failed")
	b.Done(probe, t0.Add(time.Second), status(200))
	check("probe success after ForceOpen", time.Second, Open, t0.Add(time.Second+time.Minute), false)

	b.ForceOpen(t0, 0, "down")
	b.ForceClose(t0.Add(time.Hour), "up")
	probeAfterClose, _ := b.Allow(t0.Add(time.Hour))
	b.ForceOpen(t0.Add(time.Hour), time.Second, "blip")
	probe, _ = b.Allow(t0.Add(time.Hour + time.Second))
	b.ForceClose(t0.Add(time.Hour+time.Second), "up")
	b.Done(probe, t0.Add(time.Hour+time.Second), status(500))
	b.Done(probeAfterClose, t0.Add(time.Hour+time.Second), status(500))
	check("probe failure after ForceClose", time.Hour+time.Second, Closed, time.Time{}, true)
	if s := b.Snapshot(t0); s.Trips != 4 {
		t.Errorf("Trips = %d; want 4", s.Trips)
	}
}

func TestForceOpenWithoutRules(t *testing.T) {
	b := New("b", nil, nil)
	b.ForceOpen(t0, time.Second, "health check failed")
	probe, ok := b.Allow(t0.Add(time.Second))
	if !ok || !probe.probe {
		t.Fatalf("Allow after the forced trip = %+v, %t; want a probe", probe, ok)
	}
	b.Done(probe, t0.Add(time.Second), status(500))
	if s := b.Snapshot(t0); s.State != Closed {
		t.Errorf("a probe without rules: state %v; want closed (nothing is a failure)", s.State)
	}
}

func TestOnChange(t *testing.T) {
	var got []Change
	rule := count(3)
	rule.AcceptRetryAfter = true
	b := New("eastus", []Rule{rule}, func(c Change) { got = append(got, c) })

	run(t, b, repeat(3, 0, Outcome{Status: 429, RetryAfter: 7 * time.Second})) // open until 9s
	probe, _ := b.Allow(t0.Add(9 * time.Second))
	b.Done(probe, t0.Add(9*time.Second), status(503)) // open until 69s
	probe, _ = b.Allow(t0.Add(69 * time.Second))
	b.Done(probe, t0.Add(69*time.Second), Outcome{Ignore: true})
	probe, _ = b.Allow(t0.Add(70 * time.Second))
	b.Done(probe, t0.Add(70*time.Second), status(200))
	b.ForceOpen(t0.Add(80*time.Second), 0, "health check failed: 502")
	b.ForceOpen(t0.Add(80*time.Second), time.Minute, "health check failed again")
	b.ForceClose(t0.Add(90*time.Second), "health check passed")
	b.ForceClose(t0.Add(90*time.Second), "health check passed again")
	b.SetRules([]Rule{count(1)})

	want := []Change{
		{"eastus", Closed, Open, "3 failures within 10s (last: status 429); retry-after 7s", t0.Add(9 * time.Second)},
		{"eastus", Open, HalfOpen, "trip expired", time.Time{}},
		{"eastus", HalfOpen, Open, "probe failed (status 503)", t0.Add(69 * time.Second)},
		{"eastus", Open, HalfOpen, "trip expired", time.Time{}},
		{"eastus", HalfOpen, Closed, "probe succeeded (status 200)", time.Time{}},
		{"eastus", Closed, Open, "health check failed: 502", time.Time{}},
		{"eastus", Open, Closed, "health check passed", time.Time{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

// TestOnChangeReentrant calls the breaker from onChange: no deadlock, and
// the changes arrive in the order they were made.
func TestOnChangeReentrant(t *testing.T) {
	var got []string
	var b *Breaker
	b = New("b", []Rule{count(1)}, func(c Change) {
		got = append(got, c.From.String()+">"+c.To.String())
		b.Snapshot(t0)
		if c.To == Open {
			b.ForceClose(t0, "closed from onChange")
		}
	})
	run(t, b, []step{{0, status(500)}})
	if want := []string{"closed>open", "open>closed"}; !slices.Equal(got, want) {
		t.Errorf("changes %v; want %v", got, want)
	}
}

// TestOnChangePanic checks that a panicking onChange does not stop later
// changes from being reported.
func TestOnChangePanic(t *testing.T) {
	calls := 0
	b := New("b", nil, func(Change) {
		calls++
		if calls == 1 {
			panic("boom")
		}
	})
	func() {
		defer func() { recover() }()
		b.ForceOpen(t0, 0, "first")
	}()
	b.ForceClose(t0, "second")
	if calls != 2 {
		t.Errorf("onChange called %d times; want 2", calls)
	}
}

func TestSetRules(t *testing.T) {
	three := []Rule{count(3)}
	t.Run("same rules keep the counts", func(t *testing.T) {
		b := New("b", three, nil)
		run(t, b, repeat(2, 0, status(500)))
		b.SetRules([]Rule{count(3)})
		if s := b.Snapshot(t0.Add(time.Second)); s.Failures != 2 {
			t.Fatalf("failures %d after a reload with the same rules; want 2", s.Failures)
		}
		run(t, b, []step{{2 * time.Second, status(500)}})
		if s := b.Snapshot(t0.Add(2 * time.Second)); s.State != Open {
			t.Errorf("state %v after the third failure; want open", s.State)
		}
	})
	t.Run("changed rules forget the counts", func(t *testing.T) {
		b := New("b", three, nil)
		run(t, b, repeat(2, 0, status(500)))
		b.SetRules([]Rule{count(2)})
		if s := b.Snapshot(t0.Add(time.Second)); s.Failures != 0 {
			t.Fatalf("failures %d after a reload with other rules; want 0", s.Failures)
		}
		run(t, b, []step{{2 * time.Second, status(500)}})
		if s := b.Snapshot(t0.Add(2 * time.Second)); s.State != Closed {
			t.Errorf("state %v after one failure under the new rules; want closed", s.State)
		}
	})
	t.Run("tickets stay valid", func(t *testing.T) {
		b := New("b", three, nil)
		tk, _ := b.Allow(t0)
		b.SetRules([]Rule{count(1)})
		b.Done(tk, t0, status(500))
		if s := b.Snapshot(t0); s.State != Open {
			t.Errorf("state %v after a failure with a ticket from before the reload; want open", s.State)
		}
	})
	t.Run("state is kept and the probe uses the new rules", func(t *testing.T) {
		b := tripped(t, []Rule{count(1)}, nil)
		b.SetRules([]Rule{{Failures: 1, Interval: time.Second, Statuses: s5xx, TripDuration: time.Hour}})
		if s := b.Snapshot(t0); s.State != Open || !b.ReopenAt().Equal(t0.Add(time.Minute)) {
			t.Fatalf("after the reload: %v until %v; want open until t0+1m", s.State, b.ReopenAt())
		}
		probe, _ := b.Allow(t0.Add(time.Minute))
		b.SetRules([]Rule{{Failures: 1, Interval: time.Second, Statuses: s5xx, TripDuration: 2 * time.Hour}})
		b.Done(probe, t0.Add(time.Minute), status(500))
		if got, want := b.ReopenAt(), t0.Add(time.Minute+2*time.Hour); !got.Equal(want) {
			t.Errorf("probe failed: open until t0+%v; want t0+%v", got.Sub(t0), want.Sub(t0))
		}
	})
	t.Run("no rules never trip", func(t *testing.T) {
		b := New("b", three, nil)
		b.SetRules(nil)
		run(t, b, repeat(10, 0, status(500)))
		if s := b.Snapshot(t0); s.State != Closed {
			t.Errorf("state %v without rules; want closed", s.State)
		}
	})
	t.Run("rules are copied", func(t *testing.T) {
		rules := []Rule{count(1)}
		b := New("b", rules, nil)
		rules[0].Statuses[1] = StatusRange{600, 600}
		run(t, b, []step{{0, status(500)}})
		if s := b.Snapshot(t0); s.State != Open {
			t.Errorf("state %v after changing the caller's rules; want open (the breaker keeps its copy)", s.State)
		}
	})
}

// TestSameRule makes sure sameRule compares every field of Rule.
func TestSameRule(t *testing.T) {
	base := count(3)
	v := reflect.ValueOf(&base).Elem()
	for i := range v.NumField() {
		other := count(3)
		f := reflect.ValueOf(&other).Elem().Field(i)
		switch f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(f.Int() + 1)
		case reflect.Bool:
			f.SetBool(!f.Bool())
		case reflect.Slice:
			f.Set(reflect.ValueOf([]StatusRange{{1, 2}}))
		default:
			t.Fatalf("field %s: kind %v not handled", v.Type().Field(i).Name, f.Kind())
		}
		if sameRule(base, other) {
			t.Errorf("sameRule ignores field %s", v.Type().Field(i).Name)
		}
	}
	if !sameRule(base, count(3)) {
		t.Errorf("sameRule(count(3), count(3)) = false; want true")
	}
}

func TestSnapshot(t *testing.T) {
	rules := []Rule{
		{Failures: 100, Interval: 10 * time.Second, Statuses: s429},
		{Percentage: 90, MinRequests: 100, Interval: time.Minute, Statuses: s5xx, Timeouts: true},
	}
	b := New("b", rules, nil)
	run(t, b, []step{
		{0, status(429)}, {0, status(500)}, {0, status(200)}, {0, Outcome{Status: 500, Ignore: true}},
		{30 * time.Second, Outcome{Err: Timeout}}, {30 * time.Second, status(200)}, {30 * time.Second, status(404)},
	})
	want := Snapshot{State: Closed, Failures: 3, Requests: 6}
	if diff := cmp.Diff(want, b.Snapshot(t0.Add(30*time.Second))); diff != "" {
		t.Errorf("Snapshot (-want +got):\n%s", diff)
	}
	want = Snapshot{State: Closed, Failures: 1, Requests: 3}
	if diff := cmp.Diff(want, b.Snapshot(t0.Add(80*time.Second))); diff != "" {
		t.Errorf("Snapshot a minute later (-want +got):\n%s", diff)
	}

	countOnly := New("b", []Rule{count(5)}, nil)
	run(t, countOnly, []step{{0, status(429)}, {0, status(200)}, {0, status(200)}})
	want = Snapshot{State: Closed, Failures: 1, Requests: 0}
	if diff := cmp.Diff(want, countOnly.Snapshot(t0)); diff != "" {
		t.Errorf("Snapshot without a percentage rule (-want +got):\n%s", diff)
	}
}

func TestStateString(t *testing.T) {
	for _, tt := range []struct {
		s    State
		want string
	}{{Closed, "closed"}, {Open, "open"}, {HalfOpen, "half-open"}, {State(9), "state 9"}} {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("State(%d).String() = %q; want %q", tt.s, got, tt.want)
		}
	}
}

// TestConcurrent hammers a breaker from many goroutines with a moving clock,
// forced changes and reloads, and checks the invariants that must hold:
// never two probes of one generation in flight, and changes reported as an
// unbroken chain.
func TestConcurrent(t *testing.T) {
	var (
		mu          sync.Mutex
		changes     []Change
		outstanding = map[uint64]int{}
	)
	var clock atomic.Int64 // nanoseconds after t0
	now := func() time.Time { return t0.Add(time.Duration(clock.Load())) }
	rules := []Rule{
		{Failures: 5, Interval: time.Second, Statuses: s429, TripDuration: 50 * time.Millisecond, AcceptRetryAfter: true, MaxTripDuration: 80 * time.Millisecond},
		{Percentage: 40, MinRequests: 10, Interval: 2 * time.Second, Statuses: s5xx, Timeouts: true, TripDuration: 30 * time.Millisecond},
	}
	b := New("b", rules, func(c Change) {
		mu.Lock()
		changes = append(changes, c)
		mu.Unlock()
	})

	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 3000 {
				switch n := r.IntN(1000); {
				case n == 0 && g == 0:
					b.ForceOpen(now(), time.Duration(r.IntN(3))*10*time.Millisecond, "forced")
				case n == 1 && g == 0:
					b.ForceClose(now(), "forced")
				case n == 2 && g == 0:
					b.SetRules(rules[:r.IntN(3)])
				case n < 20:
					clock.Add(int64(r.IntN(int(20 * time.Millisecond))))
				case n < 30:
					b.Snapshot(now())
				}
				b.Available(now())
				tk, ok := b.Allow(now())
				if !ok {
					continue
				}
				if tk.probe {
					mu.Lock()
					if outstanding[tk.gen]++; outstanding[tk.gen] > 1 {
						t.Errorf("two probes of generation %d in flight", tk.gen)
					}
					mu.Unlock()
				}
				o := Outcome{Status: []int{200, 200, 200, 429, 500}[r.IntN(5)]}
				switch r.IntN(20) {
				case 0:
					o = Outcome{Err: Timeout}
				case 1:
					o.Ignore = true
				case 2:
					o.RetryAfter = time.Duration(r.IntN(200)) * time.Millisecond
				}
				if tk.probe {
					mu.Lock()
					outstanding[tk.gen]--
					mu.Unlock()
				}
				b.Done(tk, now(), o)
			}
		})
	}
	wg.Wait()

	t.Logf("%d changes", len(changes))
	if len(changes) < 10 {
		t.Errorf("only %d changes; the test does not exercise the breaker", len(changes))
	}
	for i := 1; i < len(changes); i++ {
		if changes[i].From != changes[i-1].To {
			t.Fatalf("change %d is %v>%v after %v>%v", i, changes[i].From, changes[i].To, changes[i-1].From, changes[i-1].To)
		}
	}
	if len(changes) > 0 && changes[0].From != Closed {
		t.Errorf("first change from %v; want closed", changes[0].From)
	}
	if s := b.Snapshot(now()); len(changes) > 0 && s.State != changes[len(changes)-1].To {
		t.Errorf("state %v; last change to %v", s.State, changes[len(changes)-1].To)
	}
	var trips uint64
	for _, c := range changes {
		if c.To == Open {
			trips++
		}
	}
	if s := b.Snapshot(now()); s.Trips != trips {
		t.Errorf("Trips = %d; %d changes to open", s.Trips, trips)
	}
}

func TestZeroAllocs(t *testing.T) {
	for _, tt := range []struct {
		name  string
		rules []Rule
	}{
		{"count", []Rule{count(5)}},
		{"percentage", []Rule{{Percentage: 50, MinRequests: 10, Interval: time.Minute, Statuses: s5xx}}},
		{"two rules", []Rule{count(5), {Percentage: 50, MinRequests: 10, Interval: time.Minute, Statuses: s5xx}}},
		{"none", nil},
	} {
		b := New("b", tt.rules, nil)
		if n := testing.AllocsPerRun(100, func() { b.Available(t0) }); n != 0 {
			t.Errorf("%s: Available allocates %v times; want 0", tt.name, n)
		}
		if n := testing.AllocsPerRun(100, func() {
			tk, _ := b.Allow(t0)
			b.Done(tk, t0, status(200))
		}); n != 0 {
			t.Errorf("%s: Allow and Done(success) allocate %v times; want 0", tt.name, n)
		}
		if n := testing.AllocsPerRun(100, func() { b.Snapshot(t0) }); n != 0 {
			t.Errorf("%s: Snapshot allocates %v times; want 0", tt.name, n)
		}
	}
}

// TestClaimInProgress covers the moment between a caller claiming the probe
// of an expired trip and the breaker turning half-open.
func TestClaimInProgress(t *testing.T) {
	b := tripped(t, []Rule{count(1)}, nil)
	at := t0.Add(time.Minute)
	if !b.claim(b.cur.Load().gen) {
		t.Fatal("claim of the expired trip failed")
	}
	if b.Available(at) {
		t.Errorf("Available with the probe claimed; want false")
	}
	if _, ok := b.Allow(at); ok {
		t.Errorf("Allow with the probe claimed: allowed; want refused")
	}
}

// TestStaleProbe reports the probe of an earlier half-open state while a
// later one waits for its own probe.
func TestStaleProbe(t *testing.T) {
	b := tripped(t, []Rule{count(1)}, nil)
	at := t0.Add(time.Minute)
	old, _ := b.Allow(at)
	b.ForceOpen(at, time.Second, "health check failed")
	at = at.Add(time.Second)
	current, ok := b.Allow(at)
	if !ok || !current.probe {
		t.Fatalf("Allow after the forced trip = %+v, %t; want a probe", current, ok)
	}
	b.Done(old, at, status(200))
	if s := b.Snapshot(at); s.State != HalfOpen {
		t.Errorf("the earlier probe succeeded: state %v; want half-open (its outcome is stale)", s.State)
	}
	b.Done(old, at, Outcome{Ignore: true})
	if b.Available(at) {
		t.Errorf("the earlier probe was ignored: Available; want false (the current probe is in flight)")
	}
}

// TestStaleTrip has a failure counted in a closed state that ended before
// the failure was checked: it must not trip the closed state that followed.
func TestStaleTrip(t *testing.T) {
	b := New("b", []Rule{count(2)}, nil)
	old := b.cur.Load()
	run(t, b, []step{{0, status(500)}})
	b.ForceOpen(t0, 0, "down")
	b.ForceClose(t0, "up")
	w := old.win[0]
	w.add(&w.fail, w.epoch(t0)) // the late failure, counted in the old phase
	b.check(old, t0, status(500))
	if s := b.Snapshot(t0); s.State != Closed {
		t.Errorf("state %v after a stale check; want closed", s.State)
	}
}
