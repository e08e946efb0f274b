package limit

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sluice-gateway/sluice/internal/redistest"
)

// warm runs an admission and a settlement (of another subject) so that Redis
// has the scripts cached: a call that times out then still runs when Redis
// resumes, as it does in production, instead of failing with NOSCRIPT. A
// busy machine may make a call miss a short timeout (TestRedisPausedBursts
// keeps production's 50 ms): warm then lets the limiter drain and tries
// again, and returns once the settlement has landed too.
func warm(t *testing.T, l *Limiter, now time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := l.Admit(t.Context(), Request{Rules: []*Rule{tpm("warm", 1<<40)}, Subject: Subject{Subscription: "warm"}, Tokens: 10, Now: now})
		if d.Allowed && d.StoreError == nil {
			if _, err := l.Settle(t.Context(), d.Reservation, 5, now); err != nil {
				t.Fatalf("warming up: Settle: %v", err)
			}
			drain(t, l)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("warming up: Admit = %+v; want allowed by Redis within 10s", d)
		}
		drain(t, l)
	}
}

// reserveCalls counts the Reserve calls a client sends: EVALSHA of
// reserveScript (the tests warm the scripts up, so that no EVAL is needed).
type reserveCalls struct{ n atomic.Int64 }

func (h *reserveCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *reserveCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); len(a) > 1 && cmd.Name() == "evalsha" && a[1] == reserveScript.Hash() {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *reserveCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// drain waits until the limiters have nothing left to send to the store and
// consider it up again.
func drain(t *testing.T, ls ...*Limiter) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, l := range ls {
		for {
			st := l.Stats()
			if st.QueueLen == 0 && !st.StoreDown {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the limiter did not drain its queue within 10s of Redis answering: %+v", st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestFailOpenHoldsLimitWhileRedisHangs: with Redis hung and fail_open, an
// instance keeps admitting by its own count of the window (what it last saw in
// Redis plus what it admitted since), without waiting for Redis again, so a
// request over the limit is refused instead of admitted uncounted. Once Redis
// is back, it knows of the requests admitted meanwhile that still run, and
// after they settle, its counter holds exactly what the requests used.
func TestFailOpenHoldsLimitWhileRedisHangs(t *testing.T) {
	srv := redistest.Start(t)
	store := newRedisStore(t, srv, longTimeouts)
	hook := &reserveCalls{}
	store.client.AddHook(hook)
	l := New(Options{Store: store, OnStoreError: FailOpen, Timeout: outageTimeout})
	rules := []*Rule{tpm("t", 1000)}
	alice := Subject{Subscription: "alice"}
	now := clock("12:00:00")
	admit := func(tokens int64) Decision {
		return l.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: tokens, Now: now})
	}

	warm(t, l, now)
	d0 := admit(400)
	if !d0.Allowed || d0.StoreError != nil {
		t.Fatalf("Redis healthy: Admit(400) = %+v; want allowed", d0)
	}
	srv.Pause()
	d1 := admit(400)
	if !d1.Allowed || d1.StoreError == nil || !d1.Fallback {
		t.Errorf("Redis hung: Admit(400) with 400 of 1000 used = allowed %v, store error %v, fallback %v; want allowed by the own count, with a store error",
			d1.Allowed, d1.StoreError, d1.Fallback)
	}
	// The store failed moments ago: the next requests do not wait for it
	// (the worker sends the late charge of d1 meanwhile, which is not a
	// Reserve).
	calls := hook.n.Load()
	d2 := admit(400)
	if d2.Allowed || d2.Denial == nil || d2.Denial.Used != 800 || d2.Denial.Want != 400 {
		t.Errorf("Redis hung: Admit(400) with 800 of 1000 used = allowed %v, denial %+v; want refused by the limit, 800 used",
			d2.Allowed, d2.Denial)
	}
	d3 := admit(200)
	if !d3.Allowed || !errors.Is(d3.StoreError, ErrStoreDown) {
		t.Errorf("Redis hung: Admit(200) with 800 of 1000 used = %+v; want allowed, with ErrStoreDown", d3)
	}
	if n := hook.n.Load() - calls; n != 0 {
		t.Errorf("%d calls to Redis while it was known down; want none", n)
	}
	if st := l.Stats(); !st.StoreDown || st.FallbackAdmitted != 2 || st.FallbackRefused != 1 {
		t.Errorf("Stats() = %+v; want the store down, 2 admitted and 1 refused by the own count", st)
	}
	srv.Resume()
	// Back to Redis, which has been charged what the instance admitted
	// meanwhile: the three requests still running hold the whole limit.
	drain(t, l)
	if d := admit(200); d.Allowed || d.Fallback || d.Denial == nil || d.Denial.Used != 1000 {
		t.Errorf("Redis back: Admit(200) with 1000 of 1000 reserved = allowed %v, fallback %v, denial %+v; want refused by Redis, 1000 used",
			d.Allowed, d.Fallback, d.Denial)
	}
	for _, s := range []struct {
		d      Decision
		actual int64
	}{{d0, 300}, {d1, 350}, {d2, 0}, {d3, 150}} {
		if _, err := l.Settle(t.Context(), s.d.Reservation, s.actual, now); err != nil {
			t.Errorf("Settle(%d): %v", s.actual, err)
		}
	}
	drain(t, l)
	if got, want := counterValue(t, store, minuteCounter("t", TokensPerMinute, now)), int64(300+350+150); got != want {
		t.Errorf("after Redis is back: the minute's counter = %d; want %d, what the admitted requests used", got, want)
	}
}

// TestRedisStaleCopies: a call that timed out at the gateway may still run in
// Redis later (Redis was hung, not gone). Whatever order the late copies and
// the retries run in, each request counts exactly once.
func TestRedisStaleCopies(t *testing.T) {
	srv := redistest.Start(t)
	rules := []*Rule{tpm("t", 100_000)}
	alice := Subject{Subscription: "alice"}
	now := clock("12:00:00")
	c := minuteCounter("t", TokensPerMinute, now)
	tests := []struct {
		name string
		run  func(t *testing.T, l *Limiter, s *RedisStore)
	}{
		{"a reservation that ran late, then its settlement", func(t *testing.T, l *Limiter, s *RedisStore) {
			srv.Pause()
			d := l.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: 500, Now: now})
			srv.Resume()
			if !d.Allowed || d.StoreError == nil {
				t.Fatalf("Admit with Redis hung = %+v; want allowed with a store error", d)
			}
			// The reservation the gateway gave up on runs once Redis resumes.
			waitCounter(t, s, c, 500)
			if _, err := l.Settle(t.Context(), d.Reservation, 200, now); err != nil {
				t.Errorf("Settle: %v", err)
			}
		}},
		{"a reservation and its settlement both sent while Redis hung", func(t *testing.T, l *Limiter, s *RedisStore) {
			srv.Pause()
			d := l.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: 500, Now: now})
			l.Settle(t.Context(), d.Reservation, 200, now)
			srv.Resume()
		}},
		{"a settlement Redis ran after its timeout, then sent again", func(t *testing.T, l *Limiter, s *RedisStore) {
			d := l.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: 500, Now: now})
			if !d.Allowed || d.StoreError != nil {
				t.Fatalf("Admit = %+v; want allowed", d)
			}
			srv.Pause()
			l.Settle(t.Context(), d.Reservation, 200, now)
			srv.Resume()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRedisStore(t, srv, longTimeouts)
			l := New(Options{Store: s, OnStoreError: FailOpen, Timeout: outageTimeout})
			warm(t, l, now)
			tt.run(t, l, s)
			drain(t, l)
			if got := counterValue(t, s, c); got != 200 {
				t.Errorf("counter = %d; want 200, the request's usage counted once", got)
			}
		})
	}
}

// waitCounter waits until Redis's counter c holds want.
func waitCounter(t *testing.T, s *RedisStore, c Counter, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := counterValue(t, s, c)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter %s = %d 5s after Redis resumed; want %d", c, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRedisPausedBursts is item 9 of the hardening issue: two gateway
// instances share one Redis and a limit of 3,000 tokens a minute, many clients
// send at once, and Redis freezes (SIGSTOP) for 300 ms at a time, longer than
// state.timeout, from the start of the minute. Under fail_open, the tokens
// used by the requests admitted in the minute stay within the documented
// bound (each instance at most the limit: 2 × 3,000), and once Redis is back
// and the queues drained, Redis's counters hold exactly the tokens and
// requests the admitted requests used: no settlement lost, none counted
// twice. Two kinds of traffic: short answers, far below their max_tokens,
// that settle within a freeze; and long streams that use most of their
// reservation and are still running when Redis comes back.
func TestRedisPausedBursts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backend [2]int   // how long a request takes, ms: from, to
		used    [2]int64 // what it uses, % of its estimate: from, to
	}{
		{"short answers", [2]int{2, 12}, [2]int64{10, 40}},
		{"long streams", [2]int{50, 250}, [2]int64{70, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pausedBursts(t, func(rng *rand.Rand, estimate int64) (time.Duration, int64) {
				took := time.Duration(tc.backend[0]+rng.IntN(tc.backend[1]-tc.backend[0]+1)) * time.Millisecond
				pct := tc.used[0] + rng.Int64N(tc.used[1]-tc.used[0]+1)
				return took, estimate * pct / 100
			})
		})
	}
}

// pausedBursts runs TestRedisPausedBursts with requests that take and use
// what serve says.
func pausedBursts(t *testing.T, serve func(rng *rand.Rand, estimate int64) (time.Duration, int64)) {
	srv := redistest.Start(t)
	const (
		limit     = 3000
		instances = 2
		clients   = 8 // per instance
		pauses    = 8
		pause     = 300 * time.Millisecond
	)
	stores := make([]*RedisStore, instances)
	limiters := make([]*Limiter, instances)
	for i := range instances {
		stores[i] = newRedisStore(t, srv)
		limiters[i] = New(Options{Store: stores[i], OnStoreError: FailOpen, Timeout: 50 * time.Millisecond})
	}
	// One instant in the minute for every call, so that the window cannot
	// roll over however long the test takes.
	now := clock("12:00:05")
	for _, l := range limiters {
		warm(t, l, now)
	}
	rules := []*Rule{{ID: "burst", TokensPerMinute: limit, RequestsPerMinute: 1 << 30, TokenQuota: 1 << 40, QuotaPeriod: Hour}}
	alice := Subject{Subscription: "alice"}

	var (
		used, admitted, refused, fallback, errs atomic.Int64
		stop                                    = make(chan struct{})
		wg                                      sync.WaitGroup
	)
	for i := range instances * clients {
		l := limiters[i%instances]
		rng := rand.New(rand.NewPCG(uint64(i), 9))
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// A prompt of 50 to 300 tokens and a max_tokens of 256.
				estimate := 306 + rng.Int64N(251)
				d := l.Admit(context.Background(), Request{Rules: rules, Subject: alice, Tokens: estimate, Now: now})
				if d.Fallback {
					fallback.Add(1)
				}
				if !d.Allowed {
					refused.Add(1)
					if _, err := l.Settle(context.Background(), d.Reservation, 0, now); err != nil {
						errs.Add(1)
					}
					time.Sleep(5 * time.Millisecond) // the client backs off
					continue
				}
				took, actual := serve(rng, estimate)
				time.Sleep(took)
				used.Add(actual)
				admitted.Add(1)
				if _, err := l.Settle(context.Background(), d.Reservation, actual, now); err != nil {
					errs.Add(1)
				}
			}
		})
	}
	for range pauses {
		srv.Pause()
		time.Sleep(pause)
		srv.Resume()
		time.Sleep(pause)
	}
	close(stop)
	wg.Wait()

	t.Logf("%d requests admitted, using %d tokens; %d refused; %d decided by an instance's own count", admitted.Load(), used.Load(), refused.Load(), fallback.Load())
	if got, bound := used.Load(), int64(instances*limit); got > bound {
		t.Errorf("the admitted requests used %d tokens in the minute; the bound is %d (the limit of %d per instance)", got, bound, limit)
	}
	if n := errs.Load(); n > 0 {
		t.Errorf("%d settlements failed; want none (they are retried)", n)
	}
	// The test is only worth something when the instances decided by their
	// own counts and the limit refused requests.
	if fallback.Load() == 0 || refused.Load() == 0 {
		t.Errorf("%d decisions by an instance's own count, %d refusals; want both", fallback.Load(), refused.Load())
	}
	drain(t, limiters...)
	tokens := counterValue(t, stores[0], minuteCounter("burst", TokensPerMinute, now))
	requests := counterValue(t, stores[0], minuteCounter("burst", RequestsPerMinute, now))
	quota := counterValue(t, stores[0], Counter{Rule: "burst", Kind: Quota, Period: Hour, Subject: "alice", Start: Hour.startUnix(now)})
	if tokens != used.Load() || quota != used.Load() || requests != admitted.Load() {
		t.Errorf("Redis's counters: %d tokens this minute, %d this hour, %d requests; want %d tokens and %d requests, what the admitted requests used",
			tokens, quota, requests, used.Load(), admitted.Load())
	}
	for i, l := range limiters {
		st := l.Stats()
		t.Logf("instance %d: %+v", i, st)
		if st.Dropped != 0 || st.Queued != st.Landed+st.Expired {
			t.Errorf("instance %d: %d queued, %d landed, %d expired, %d dropped; want every queued settlement landed", i, st.Queued, st.Landed, st.Expired, st.Dropped)
		}
	}
}

// TestRedisQueueBound: while Redis is down, settlements wait in a bounded
// queue; beyond it older ones are dropped and counted, and the rest land once
// Redis is back. Redis is stopped (not frozen), so that no copy of a call
// sent meanwhile can land later.
func TestRedisQueueBound(t *testing.T) {
	srv := redistest.Start(t)
	// A stopped Redis refuses connections at once: timeouts as long as a
	// busy test machine may need cost nothing here.
	store := newRedisStore(t, srv, longTimeouts)
	l := New(Options{Store: store, OnStoreError: FailOpen, Timeout: time.Second, QueueSize: 3})
	rules := []*Rule{tpm("t", 1000)}
	now := clock("12:00:00")
	subject := func(i int) Subject { return Subject{Subscription: "s" + strconv.Itoa(i)} }
	var reservations []Reservation
	for i := range 5 {
		d := l.Admit(t.Context(), Request{Rules: rules, Subject: subject(i), Tokens: 100, Now: now})
		if !d.Allowed || d.StoreError != nil {
			t.Fatalf("Admit = %+v", d)
		}
		reservations = append(reservations, d.Reservation)
	}
	srv.Stop()
	// Each used 300 of its 100: the settlements charge 200 more.
	for _, r := range reservations {
		if _, err := l.Settle(t.Context(), r, 300, now); err != nil {
			t.Errorf("Settle with Redis down: %v", err)
		}
	}
	if st := l.Stats(); st.Queued != 5 || st.Dropped != 2 || st.QueueLen != 3 {
		t.Errorf("Stats() with Redis down = %+v; want 5 queued, 2 dropped, 3 held", st)
	}
	srv.Restart() // empty: each counter holds what its settlement adds
	drain(t, l)
	if st := l.Stats(); st.Landed != 3 || st.Dropped != 2 {
		t.Errorf("Stats() after Redis is back = %+v; want 3 landed, 2 dropped", st)
	}
	// Which older ones were dropped depends on which the worker was
	// sending at the time (those stay); the newest always lands.
	landed := 0
	for i := range 5 {
		c := Counter{Rule: "t", Kind: TokensPerMinute, Subject: subject(i).Subscription, Start: Minute.startUnix(now)}
		switch got := counterValue(t, store, c); {
		case got == 200:
			landed++
		case i == 4:
			t.Errorf("the newest settlement: counter = %d; want 200 (landed)", got)
		case got != 0:
			t.Errorf("settlement %d: counter = %d; want 200 (landed) or 0 (dropped)", i+1, got)
		}
	}
	if landed != 3 {
		t.Errorf("%d settlements counted; want 3", landed)
	}
}

// TestLimiterClose: Close sends what is queued once Redis answers, gives up
// (dropping and counting the rest) when its context ends first, and leaves
// no goroutine behind either way; a settlement after Close is not queued.
func TestLimiterClose(t *testing.T) {
	srv := redistest.Start(t)
	rules := []*Rule{tpm("t", 1000)}
	alice := Subject{Subscription: "alice"}
	now := clock("12:00:00")
	base := runtime.NumGoroutine()
	// queued returns a limiter with two settlements waiting for Redis,
	// which is stopped (and refuses connections at once).
	queued := func(t *testing.T) (*Limiter, *RedisStore) {
		srv.Restart()
		s, err := NewRedis(srv.URL() + longTimeouts)
		if err != nil {
			t.Fatal(err)
		}
		l := New(Options{Store: s, Timeout: time.Second})
		var rs []Reservation
		for range 3 {
			d := l.Admit(t.Context(), Request{Rules: rules, Subject: alice, Tokens: 100, Now: now})
			if !d.Allowed || d.StoreError != nil {
				t.Fatalf("Admit = %+v", d)
			}
			rs = append(rs, d.Reservation)
		}
		srv.Stop()
		for _, r := range rs[:2] {
			l.Settle(t.Context(), r, 300, now)
		}
		if st := l.Stats(); st.QueueLen != 2 {
			t.Fatalf("Stats() = %+v; want 2 settlements waiting", st)
		}
		t.Cleanup(func() {
			// The third was never settled: after Close it cannot be
			// queued, and with Redis down it is lost.
			if _, err := l.Settle(context.Background(), rs[2], 300, now); !errors.Is(err, ErrNotCounted) {
				t.Errorf("Settle after Close with Redis down: %v; want ErrNotCounted", err)
			}
			s.Close()
			noGoroutinesLeft(t, base)
		})
		return l, s
	}

	t.Run("drains", func(t *testing.T) {
		l, s := queued(t)
		closed := make(chan error, 1)
		go func() { closed <- l.Close(context.Background()) }()
		srv.Restart() // empty: the counter holds what the settlements add
		if err := <-closed; err != nil {
			t.Errorf("Close: %v", err)
		}
		if got := counterValue(t, s, minuteCounter("t", TokensPerMinute, now)); got != 400 {
			t.Errorf("counter after Close = %d; want 400, what the two settlements charged", got)
		}
		srv.Stop()
	})
	t.Run("gives up", func(t *testing.T) {
		l, _ := queued(t)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		err := l.Close(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close with Redis down = %v; want context.DeadlineExceeded", err)
		}
		if st := l.Stats(); st.Dropped != 2 || st.QueueLen != 0 {
			t.Errorf("Stats() after Close = %+v; want the 2 settlements dropped", st)
		}
	})
}

// noGoroutinesLeft waits until no more goroutines run than base.
func noGoroutinesLeft(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines 3s after Close; %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
