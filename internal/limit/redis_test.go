package limit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sluice-gateway/sluice/internal/redistest"
)

// slack is how much longer than its timeout a call may take: scheduling, and
// the race detector, on a machine that may be busy with other work. A call
// that did not give up would wait for Redis to resume, which the tests do
// only after the calls returned.
const slack = time.Second

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// waitHealthy admits probe requests (for another subscription) until the
// limiter's store answers again.
func waitHealthy(t *testing.T, l *Limiter, now time.Time) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := l.Admit(t.Context(), Request{Rules: []*Rule{tpm("probe", 1<<40)}, Subject: Subject{Subscription: "probe"}, Tokens: 1, Now: now})
		if d.StoreError == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store not back 5s after Redis restarted: %v", d.StoreError)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedisOutage stops Redis under two limiters, one failing open and one
// closed, then restarts it: while it is down, calls return within the
// timeout and are decided by policy (fail_open by the instance's own count:
// what it admitted before, plus what it admits meanwhile); after it is back,
// the same limiters count again, and usage admitted during the outage is
// charged.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	logs := &logBuffer{}
	const timeout = outageTimeout
	open := New(Options{Store: newRedisStore(t, srv, longTimeouts), OnStoreError: FailOpen, Timeout: timeout})
	closed := New(Options{Store: newRedisStore(t, srv, longTimeouts), OnStoreError: FailClosed, Timeout: timeout,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	rules := []*Rule{tpm("t", 1000)}
	alice := Subject{Subscription: "alice"}
	now := clock("12:00:00")

	if d := open.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: 400, Now: now}); !d.Allowed || d.StoreError != nil {
		t.Fatalf("before the outage: open.Admit = %+v", d)
	}
	if d := closed.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: 400, Now: now}); !d.Allowed || d.Remaining.Tokens != 200 {
		t.Fatalf("before the outage: closed.Admit = %+v; want allowed with 200 left (one counter for both)", d)
	}

	srv.Stop()
	const calls = 20
	var admittedDuringOutage Reservation
	for i := range calls {
		// The open instance admitted 400 before: it admits one more 400,
		// then refuses by its own count.
		ownUsed := int64(800)
		if i == 0 {
			ownUsed = 0
		}
		for _, tc := range []struct {
			name       string
			l          *Limiter
			allowed    bool
			storeError bool
			usedByOwn  int64 // the own count of a refusal by it; 0: no denial
		}{
			{"fail_open", open, i == 0, i == 0, ownUsed},
			{"fail_closed", closed, false, true, 0},
		} {
			start := time.Now()
			d := tc.l.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: 400, Now: now})
			if took := time.Since(start); took > timeout+slack {
				t.Errorf("%s: Admit with Redis down took %v; timeout %v", tc.name, took, timeout)
			}
			if d.Allowed != tc.allowed || (d.StoreError != nil) != tc.storeError {
				t.Errorf("%s, call %d: Admit with Redis down = allowed %v, store error %v; want allowed %v, store error %v",
					tc.name, i+1, d.Allowed, d.StoreError, tc.allowed, tc.storeError)
			}
			if tc.usedByOwn == 0 && d.Denial != nil || tc.usedByOwn != 0 && (d.Denial == nil || d.Denial.Used != tc.usedByOwn || !d.Fallback) {
				t.Errorf("%s, call %d: denial %+v, fallback %v; want a denial by the instance's own count (%d used): %v",
					tc.name, i+1, d.Denial, d.Fallback, tc.usedByOwn, tc.usedByOwn != 0)
			}
			if d.Remaining != unknown {
				t.Errorf("%s: Remaining with Redis down = %+v; want unknown", tc.name, d.Remaining)
			}
			if tc.allowed && i == 0 {
				admittedDuringOutage = d.Reservation
			}
		}
	}
	if got := closed.StoreErrors(); got != calls {
		t.Errorf("fail_closed StoreErrors() = %d; want %d", got, calls)
	}
	// The open instance asked the store once; after that it knew it down.
	if got := open.StoreErrors(); got != 1 {
		t.Errorf("fail_open StoreErrors() = %d; want 1", got)
	}
	if st := open.Stats(); !st.StoreDown || st.FallbackAdmitted != 1 || st.FallbackRefused != calls-1 {
		t.Errorf("fail_open Stats() = %+v; want the store down, 1 admitted and %d refused by the own count", st, calls-1)
	}
	// One log line for the whole burst (same 10s), then one with the count
	// of the failures it stood for.
	if got := logs.lines(); len(got) != 1 || !strings.Contains(got[0], "failures=1 ") || !strings.Contains(got[0], "policy=fail_closed") {
		t.Errorf("log during the outage:\n%s\nwant one line with failures=1 and policy=fail_closed", strings.Join(got, "\n"))
	}
	closed.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: 400, Now: now.Add(logEvery)})
	if got := logs.lines(); len(got) != 2 || !strings.Contains(got[1], "failures=20 ") {
		t.Errorf("log 10s later:\n%s\nwant a second line with failures=20", strings.Join(got, "\n"))
	}

	srv.Restart()
	waitHealthy(t, open, now)
	waitHealthy(t, closed, now)
	// Redis came back empty. The request admitted during the outage was
	// charged its reservation once Redis answered; its usage replaces it.
	if rem, err := open.Settle(t.Context(), admittedDuringOutage, 300, now); err != nil || rem.Tokens != 700 {
		t.Errorf("Settle of a request admitted during the outage = %+v, %v; want 700 tokens left", rem, err)
	}
	if d := closed.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: 700, Now: now}); !d.Allowed || d.StoreError != nil || d.Remaining.Tokens != 0 {
		t.Errorf("after the restart: closed.Admit(700) = %+v; want allowed with 0 left", d)
	}
	if d := open.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: 1, Now: now}); d.Allowed || d.Denial == nil {
		t.Errorf("after the restart: open.Admit(1) over the limit = %+v; want refused by the limit", d)
	}
}

// TestRedisHang freezes Redis (SIGSTOP): connections stay open and nothing
// answers. Admit and Settle must give up at the timeout, not hang the
// request, and recover when Redis resumes; the settlements sent meanwhile
// are counted once Redis answers.
func TestRedisHang(t *testing.T) {
	srv := redistest.Start(t)
	const timeout = outageTimeout
	rules := []*Rule{{ID: "t", TokensPerMinute: 1000, TokenQuota: 10000, QuotaPeriod: Month}}
	alice := Subject{Subscription: "alice"}
	now := clock("12:00:00")
	for _, tc := range []struct {
		name    string
		policy  Policy
		allowed bool
		want    int64 // the counters after the requests settled
	}{
		// The eight admitted while Redis hung used 30 tokens each.
		{"fail_open", FailOpen, true, 50 + 8*30},
		{"fail_closed", FailClosed, false, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newRedisStore(t, srv, longTimeouts)
			l := New(Options{Store: store, OnStoreError: tc.policy, Timeout: timeout})
			warm(t, l, now)
			before := l.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: 100, Now: now})
			if !before.Allowed || before.StoreError != nil {
				t.Fatalf("before the hang: Admit = %+v", before)
			}

			srv.Pause()
			var wg sync.WaitGroup
			var slowest atomic.Int64
			decisions := make([]Decision, 8)
			for i := range decisions {
				wg.Go(func() {
					start := time.Now()
					d := l.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: 100, Now: now})
					slowest.Store(max(slowest.Load(), int64(time.Since(start))))
					if d.Allowed != tc.allowed || d.StoreError == nil {
						t.Errorf("Admit with Redis hung = allowed %v, store error %v; want allowed %v with a store error", d.Allowed, d.StoreError, tc.allowed)
					}
					decisions[i] = d
				})
			}
			wg.Wait()
			start := time.Now()
			rem, err := l.Settle(t.Context(), before.Reservation, 50, now)
			settleTook := time.Since(start)
			if settleTook > timeout+slack {
				t.Errorf("Settle with Redis hung took %v; timeout %v", settleTook, timeout)
			}
			if err != nil || rem.Tokens != -1 || rem.QuotaTokens != -1 {
				t.Errorf("Settle with Redis hung = %+v, %v; want no error (it is retried) and the tokens left unknown", rem, err)
			}
			if took := time.Duration(slowest.Load()); took > timeout+slack {
				t.Errorf("slowest Admit with Redis hung took %v; timeout %v", took, timeout)
			}
			t.Logf("with Redis hung: slowest Admit %v, Settle %v (timeout %v)", time.Duration(slowest.Load()), settleTook, timeout)
			for _, d := range decisions {
				actual := int64(0)
				if d.Allowed {
					actual = 30
				}
				if _, err := l.Settle(t.Context(), d.Reservation, actual, now); err != nil {
					t.Errorf("Settle with Redis hung: %v", err)
				}
			}
			srv.Resume()
			drain(t, l)
			waitHealthy(t, l, now)
			for _, c := range []Counter{
				minuteCounter("t", TokensPerMinute, now),
				{Rule: "t", Kind: Quota, Period: Month, Subject: "alice", Start: Month.startUnix(now)},
			} {
				if got := counterValue(t, store, c); got != tc.want {
					t.Errorf("after Redis resumed: %s = %d; want %d", c, got, tc.want)
				}
			}
		})
	}
}

// roundTrips counts what a client sends to Redis: each command and each
// pipeline is one round trip.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestRedisRoundTrips counts round trips: an admitted request costs 2 (one
// to reserve, one to settle) however many rules and counters it has; a
// refused one 1; one that used exactly its estimate 1.
func TestRedisRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	store := newRedisStore(t, srv, longTimeouts)
	hook := &roundTrips{}
	store.client.AddHook(hook)
	l := New(Options{Store: store, Timeout: patient})
	tests := []struct {
		name    string
		rules   []*Rule
		tokens  int64
		actual  int64
		allowed bool
		want    int64
	}{
		{"one limit", []*Rule{tpm("a", 1<<40)}, 100, 80, true, 2},
		{"three limits", []*Rule{{ID: "b", TokensPerMinute: 1 << 40, RequestsPerMinute: 1 << 40, TokenQuota: 1 << 40, QuotaPeriod: Month}}, 100, 120, true, 2},
		{"two rules, six counters", []*Rule{
			{ID: "c", TokensPerMinute: 1 << 40, RequestsPerMinute: 1 << 40, TokenQuota: 1 << 40, QuotaPeriod: Month},
			{ID: "d", Key: KeyProduct, TokensPerMinute: 1 << 40, RequestsPerMinute: 1 << 40, TokenQuota: 1 << 40, QuotaPeriod: Day},
		}, 100, 50, true, 2},
		{"charge after the fact", []*Rule{tpm("e", 1<<40)}, 0, 70, true, 2},
		{"refused", []*Rule{tpm("f", 10)}, 100, 0, false, 1},
		{"used the estimate", []*Rule{tpm("g", 1<<40)}, 100, 100, true, 1},
	}
	now := clock("12:00:00")
	// The first call of each script may cost an extra EVAL.
	d := l.Admit(t.Context(), Request{Rules: tests[0].rules, Tokens: 1, Now: now})
	l.Settle(t.Context(), d.Reservation, 2, now)
	for _, tt := range tests {
		for i := range 3 {
			before := hook.n.Load()
			d := l.Admit(t.Context(), Request{Rules: tt.rules, Subject: Subject{Subscription: "alice", Product: "gold"}, Tokens: tt.tokens, Now: now})
			if d.Allowed != tt.allowed || d.StoreError != nil {
				t.Fatalf("%s: Admit = %+v; want allowed %v", tt.name, d, tt.allowed)
			}
			if _, err := l.Settle(t.Context(), d.Reservation, tt.actual, now); err != nil {
				t.Fatalf("%s: Settle: %v", tt.name, err)
			}
			if got := hook.n.Load() - before; got != tt.want {
				t.Errorf("%s, request %d: %d round trips; want %d", tt.name, i+1, got, tt.want)
			}
		}
	}
}

// TestRedisScriptFlushed checks the EVAL fallback: after Redis lost its
// script cache (a restart, SCRIPT FLUSH), the scripts still run.
func TestRedisScriptFlushed(t *testing.T) {
	srv := redistest.Start(t)
	store := newRedisStore(t, srv, longTimeouts)
	l := New(Options{Store: store, Timeout: patient})
	rules := []*Rule{tpm("t", 1000)}
	now := clock("12:00:00")
	for i := range 3 {
		if err := store.client.ScriptFlush(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		d := l.Admit(t.Context(), Request{Rules: rules, Subject: Subject{Subscription: "alice"}, Tokens: 300, Now: now})
		if !d.Allowed || d.StoreError != nil {
			t.Fatalf("Admit %d after SCRIPT FLUSH = %+v", i+1, d)
		}
		if err := store.client.ScriptFlush(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		rem, err := l.Settle(t.Context(), d.Reservation, 200, now)
		if want := 1000 - 200*int64(i+1); err != nil || rem.Tokens != want {
			t.Fatalf("Settle %d after SCRIPT FLUSH = %+v, %v; want %d tokens left", i+1, rem, err, want)
		}
	}
}

// TestRedisCounters checks the key layout and that keys expire on their own.
func TestRedisCounters(t *testing.T) {
	srv := redistest.Start(t)
	store := newRedisStore(t, srv, longTimeouts)
	l := New(Options{Store: store, Timeout: patient})
	rules := []*Rule{{ID: "standard/0", Key: KeySubscriptionModel, TokensPerMinute: 1000, RequestsPerMinute: 10, TokenQuota: 5000, QuotaPeriod: Month}}
	now := clock("12:00:30")
	d := l.Admit(t.Context(), Request{Rules: rules, Subject: Subject{Subscription: "alice", Model: "gpt-4o"}, Tokens: 300, Now: now})
	if !d.Allowed {
		t.Fatalf("Admit = %+v", d)
	}
	minute, month := clock("12:00:00").Unix(), at("2025-03-01T00:00:00Z").Unix()
	for _, k := range []struct {
		key      string
		value    string
		ttl, max time.Duration
	}{
		{"sluice:standard/0:alice/gpt-4o:tpm:" + itoa(minute), "300", 90 * time.Second, 90 * time.Second},
		{"sluice:standard/0:alice/gpt-4o:rpm:" + itoa(minute), "1", 90 * time.Second, 90 * time.Second},
		{"sluice:standard/0:alice/gpt-4o:monthly:" + itoa(month), "300", at("2025-04-01T01:00:00Z").Sub(now), at("2025-04-01T01:00:00Z").Sub(now)},
	} {
		v, err := store.client.Get(t.Context(), k.key).Result()
		if err != nil || v != k.value {
			t.Errorf("GET %s = %q, %v; want %q", k.key, v, err, k.value)
		}
		ttl, err := store.client.PTTL(t.Context(), k.key).Result()
		if err != nil || ttl > k.max || ttl < k.ttl-time.Second {
			t.Errorf("PTTL %s = %v, %v; want about %v: the window's end plus the margin", k.key, ttl, err, k.ttl)
		}
	}
	// And the key that remembers the reservation, until it is settled and
	// for SettledFor after.
	keys, err := store.client.Keys(t.Context(), "sluice:reservation:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("reservation keys: %q, %v; want one", keys, err)
	}
	if n, err := store.client.DBSize(t.Context()).Result(); err != nil || n != 4 {
		t.Errorf("DBSIZE = %d, %v; want 4: three counters and the reservation", n, err)
	}
	checkKey := func(when, want string, ttl time.Duration) {
		t.Helper()
		v, err := store.client.Get(t.Context(), keys[0]).Result()
		if err != nil || v != want {
			t.Errorf("%s: GET %s = %q, %v; want %q", when, keys[0], v, err, want)
		}
		got, err := store.client.PTTL(t.Context(), keys[0]).Result()
		if err != nil || got > ttl || got < ttl-time.Second {
			t.Errorf("%s: PTTL %s = %v, %v; want about %v", when, keys[0], got, err, ttl)
		}
	}
	checkKey("admitted", "r", HoldFor)
	if _, err := l.Settle(t.Context(), d.Reservation, 200, now); err != nil {
		t.Fatal(err)
	}
	checkKey("settled", "s", SettledFor)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRedisSettleAfterCancel settles with a cancelled context, as a gateway
// does when the client went away mid-stream: the tokens were spent and are
// charged.
func TestRedisSettleAfterCancel(t *testing.T) {
	srv := redistest.Start(t)
	l := New(Options{Store: newRedisStore(t, srv, longTimeouts), Timeout: patient})
	rules := []*Rule{tpm("t", 1000)}
	now := clock("12:00:00")
	ctx, cancel := context.WithCancel(t.Context())
	d := l.Admit(ctx, Request{Rules: rules, Subject: Subject{Subscription: "alice"}, Tokens: 100, Now: now})
	cancel()
	rem, err := l.Settle(ctx, d.Reservation, 600, now)
	if err != nil || rem.Tokens != 400 {
		t.Errorf("Settle with a cancelled context = %+v, %v; want 400 tokens left", rem, err)
	}
	// Admit with a cancelled context fails, but is not the store's fault.
	d = l.Admit(ctx, Request{Rules: rules, Subject: Subject{Subscription: "alice"}, Tokens: 100, Now: now})
	if !errors.Is(d.StoreError, context.Canceled) {
		t.Errorf("Admit with a cancelled context: store error %v; want context.Canceled", d.StoreError)
	}
	if n := l.StoreErrors(); n != 0 {
		t.Errorf("StoreErrors() = %d after a client's cancel; want 0", n)
	}
}

func TestNewRedisURL(t *testing.T) {
	tests := []struct {
		url     string
		wantErr bool
	}{
		{"redis://127.0.0.1:6379/0", false},
		{"redis://:s3cret@127.0.0.1:6379/2?read_timeout=200ms&pool_size=4", false},
		{"rediss://user:s3cret@redis.example:6380", false},
		{"redis://:s3cret@127.0.0.1:6379/0?bogus=1", true},
		{"http://:s3cret@127.0.0.1", true},
		{"redis://:s3cret@[::1", true},
	}
	for _, tt := range tests {
		s, err := NewRedis(tt.url)
		if (err != nil) != tt.wantErr {
			t.Errorf("NewRedis(%q) error = %v; want error %v", tt.url, err, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("NewRedis(%q) error %q shows the password", tt.url, err)
		}
		if s != nil {
			s.Close()
		}
	}
	s, err := NewRedis("redis://127.0.0.1:1/0?read_timeout=200ms")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := s.client.Options()
	if o.ReadTimeout != 200*time.Millisecond || o.WriteTimeout != DefaultTimeout || o.DialTimeout != DefaultTimeout || o.MaxRetries != 0 {
		t.Errorf("options: read %v, write %v, dial %v, retries %d; want 200ms, %v, %v, 0 (none)",
			o.ReadTimeout, o.WriteTimeout, o.DialTimeout, o.MaxRetries, DefaultTimeout, DefaultTimeout)
	}
}

// TestRedisCloseLeaksNothing closes stores, one with live connections and
// one during an outage (when go-redis probes in the background for Redis to
// come back): no goroutine outlives Close for long.
func TestRedisCloseLeaksNothing(t *testing.T) {
	srv := redistest.Start(t)
	rules := []*Rule{tpm("t", 100)}
	now := clock("12:00:00")
	use := func(s *RedisStore, n int) {
		l := New(Options{Store: s})
		for range n {
			l.Admit(t.Context(), Request{Rules: rules, Subject: Subject{Subscription: "alice"}, Tokens: 1, Now: now})
		}
	}
	closeAndWait := func(name string, s *RedisStore, base int) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("%s: %d goroutines 3s after Close; %d before the store:\n%s", name, runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	base := runtime.NumGoroutine()
	s, err := NewRedis(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	use(s, 20)
	closeAndWait("connected", s, base)

	srv.Stop()
	base = runtime.NumGoroutine()
	if s, err = NewRedis(srv.URL()); err != nil {
		t.Fatal(err)
	}
	// Enough failed dials for go-redis to start probing in the background,
	// when it does (its timing is its own): Close must stop that too.
	use(s, 20)
	closeAndWait("during an outage", s, base)
}

// counterValue reads a counter straight from Redis: 0 when it does not exist.
func counterValue(t *testing.T, s *RedisStore, c Counter) int64 {
	t.Helper()
	v, err := s.client.Get(context.Background(), c.String()).Result()
	if errors.Is(err, redis.Nil) {
		return 0
	}
	if err != nil {
		t.Fatalf("GET %s: %v", c, err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("GET %s = %q: %v", c, v, err)
	}
	return n
}

// minuteCounter names the tokens-per-minute (or requests-per-minute) counter
// of rule id for alice in now's minute.
func minuteCounter(id string, kind Kind, now time.Time) Counter {
	return Counter{Rule: id, Kind: kind, Period: Minute, Subject: "alice", Start: Minute.startUnix(now)}
}

// TestRedisReservationOnce checks the store's side of the idempotency: for
// one reservation (500 tokens and 1 request reserved, 200 tokens used), any
// order of its calls, and any copies of them, count it once.
func TestRedisReservationOnce(t *testing.T) {
	srv := redistest.Start(t)
	now := clock("12:00:00")
	rule := &Rule{ID: "once", TokensPerMinute: 100_000, RequestsPerMinute: 100}
	expires := now.Add(2 * time.Minute)
	ops := func(tokens, requests int64) []Op {
		return []Op{
			{Counter: rule.counter(TokensPerMinute, Minute, &Subject{Subscription: "alice"}, Minute.startUnix(now)), Delta: tokens, Limit: rule.TokensPerMinute, Expires: expires, rule: rule},
			{Counter: rule.counter(RequestsPerMinute, Minute, &Subject{Subscription: "alice"}, Minute.startUnix(now)), Delta: requests, Limit: rule.RequestsPerMinute, Expires: expires, rule: rule},
		}
	}
	// The calls: a reservation, its late charge, and the settlements of a
	// served request (200 used) and of a refused one.
	type call func(t *testing.T, s *RedisStore, id string)
	reserve := func(t *testing.T, s *RedisStore, id string) {
		if _, err := s.Reserve(t.Context(), now, id, ops(500, 1)); err != nil {
			t.Fatal(err)
		}
	}
	settle := func(mode SettleMode, tokens, requests int64) call {
		return func(t *testing.T, s *RedisStore, id string) {
			if err := s.Settle(t.Context(), []Settlement{{ID: id, Mode: mode, Tokens: 500, Ops: ops(tokens, requests), Now: now}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	late := settle(ChargeLate, 500, 1)
	counted := settle(SettleCounted, -300, 0)
	unsure := settle(SettleUnsure, -300, 0)
	unsureRefused := settle(SettleUnsure, -500, -1)
	tests := []struct {
		name             string
		calls            []call
		tokens, requests int64
	}{
		{"reserved, settled", []call{reserve, counted}, 200, 1},
		{"a settlement twice", []call{reserve, counted, counted}, 200, 1},
		{"a reservation twice", []call{reserve, reserve}, 500, 1},
		{"reserved, settled in doubt", []call{reserve, unsure}, 200, 1},
		{"settled in doubt, the reservation never came", []call{unsure}, 200, 1},
		{"settled in doubt, then the reservation came late", []call{unsure, reserve}, 200, 1},
		{"settled in doubt twice", []call{reserve, unsure, unsure}, 200, 1},
		{"refused, its reservation had counted", []call{reserve, unsureRefused}, 0, 0},
		{"refused, its reservation never came", []call{unsureRefused}, 0, 0},
		{"refused, then its reservation came late", []call{unsureRefused, reserve}, 0, 0},
		{"charged late, settled", []call{late, unsure}, 200, 1},
		{"charged late twice", []call{late, late}, 500, 1},
		{"reserved, then charged late too", []call{reserve, late, unsure}, 200, 1},
		{"charged late, then the reservation came", []call{late, reserve, unsure}, 200, 1},
		{"settled, then the late charge came", []call{unsure, late}, 200, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRedisStore(t, srv, longTimeouts)
			id := "test-" + strconv.Itoa(i)
			for _, c := range tt.calls {
				c(t, s, id)
			}
			tokens := counterValue(t, s, minuteCounter("once", TokensPerMinute, now))
			requests := counterValue(t, s, minuteCounter("once", RequestsPerMinute, now))
			if tokens != tt.tokens || requests != tt.requests {
				t.Errorf("counters = %d tokens, %d requests; want %d, %d", tokens, requests, tt.tokens, tt.requests)
			}
		})
	}
}
