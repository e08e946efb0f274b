package limit

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/redistest"
)

// TestConcurrentExact hammers one subscription from 64 goroutines with
// random estimates and random usage up to the estimate, through one Limiter
// on a MemoryStore and through two Limiters (two gateway instances) sharing
// one Redis, on a clock that advances across several minute windows and
// into the hour's quota. However the requests interleave, the tokens used by
// the requests admitted in a minute window never exceed the minute's limit,
// the requests never exceed the request limit, the hour's tokens never
// exceed the quota, and the counters end exactly where the requests put them.
func TestConcurrentExact(t *testing.T) {
	t.Run("memory, one instance", func(t *testing.T) {
		hammer(t, New(Options{Store: NewMemory()}))
	})
	t.Run("redis, two instances", func(t *testing.T) {
		srv := redistest.Start(t)
		// Timeouts long enough for a busy test machine, in the store's
		// sockets and pool as in the Limiter: this test is about
		// exactness, not outages.
		hammer(t,
			New(Options{Store: newRedisStore(t, srv, longTimeouts), Timeout: time.Second}),
			New(Options{Store: newRedisStore(t, srv, longTimeouts), Timeout: time.Second}),
		)
	})
}

func hammer(t *testing.T, limiters ...*Limiter) {
	const (
		workers     = 64
		perWorker   = 50
		maxEstimate = 1500
		tpmLimit    = 20_000
		rpmLimit    = 100
		quota       = 5 * tpmLimit
		tickEvery   = 40              // requests between clock ticks
		tick        = 5 * time.Second // so the run spans about 7 minutes
		windows     = workers * perWorker / tickEvery * int(tick/time.Second) / 60
	)
	rules := []*Rule{{ID: "hammer", TokensPerMinute: tpmLimit, RequestsPerMinute: rpmLimit, TokenQuota: quota, QuotaPeriod: Hour}}
	subject := Subject{Subscription: "alice", Product: "gold", Model: "gpt-4o"}
	start := clock("12:00:00")
	var (
		// clockMu is held for reading from reading the clock to the end of
		// the store call, and for writing to advance it: as with a real
		// clock, no call runs with a time minutes older than others'.
		clockMu  sync.RWMutex
		nowNs    atomic.Int64
		requests atomic.Int64
		// Per minute window since start: tokens used by, and count of,
		// the requests admitted in it.
		used     [windows + 2]atomic.Int64
		admitted [windows + 2]atomic.Int64
		denied   [3]atomic.Int64 // by Kind
	)
	nowNs.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, nowNs.Load()) }

	var wg sync.WaitGroup
	for w := range workers {
		l := limiters[w%len(limiters)]
		rng := rand.New(rand.NewPCG(uint64(w), 42))
		wg.Go(func() {
			for range perWorker {
				if requests.Add(1)%tickEvery == 0 {
					clockMu.Lock()
					nowNs.Add(int64(tick))
					clockMu.Unlock()
				}
				estimate := 1 + rng.Int64N(maxEstimate)
				clockMu.RLock()
				t0 := now()
				d := l.Admit(t.Context(), Request{Rules: rules, Subject: subject, Tokens: estimate, Now: t0})
				clockMu.RUnlock()
				if d.StoreError != nil {
					t.Errorf("store error: %v", d.StoreError)
					return
				}
				if !d.Allowed {
					if d.Denial == nil || d.Denial.Used+d.Denial.Want <= d.Denial.Limit {
						t.Errorf("refused without a limit passed: %+v", d.Denial)
						return
					}
					denied[d.Denial.Kind].Add(1)
					continue
				}
				actual := rng.Int64N(estimate + 1)
				w := int(t0.Sub(start) / time.Minute)
				used[w].Add(actual)
				admitted[w].Add(1)
				clockMu.RLock()
				_, err := l.Settle(t.Context(), d.Reservation, actual, now())
				clockMu.RUnlock()
				if err != nil {
					t.Errorf("Settle: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	var hour, busiest int64
	for w := range used {
		u, n := used[w].Load(), admitted[w].Load()
		hour += u
		busiest = max(busiest, u)
		if u > tpmLimit {
			t.Errorf("minute %d: admitted requests used %d tokens; limit %d", w, u, tpmLimit)
		}
		if n > rpmLimit {
			t.Errorf("minute %d: admitted %d requests; limit %d", w, n, rpmLimit)
		}
	}
	if hour > quota {
		t.Errorf("hour: admitted requests used %d tokens; quota %d", hour, quota)
	}
	// The test is only worth something when the limits were reached.
	if busiest < tpmLimit/2 || denied[TokensPerMinute].Load() == 0 {
		t.Errorf("busiest minute used %d of %d tokens, %d refusals by tokens per minute: the limit was never under pressure",
			busiest, tpmLimit, denied[TokensPerMinute].Load())
	}
	t.Logf("%d requests; refused by tokens %d, requests %d, quota %d; hour used %d of %d",
		workers*perWorker, denied[TokensPerMinute].Load(), denied[RequestsPerMinute].Load(), denied[Quota].Load(), hour, quota)

	// The counters hold exactly what the admitted requests used, once any
	// settlement the store did not take in time has landed: ask every
	// instance, with a request that charges no tokens.
	drain(t, limiters...)
	last := now()
	w := int(last.Sub(start) / time.Minute)
	for i, l := range limiters {
		d := l.Admit(t.Context(), Request{Rules: rules, Subject: subject, Now: last})
		if d.StoreError != nil {
			t.Fatal(d.StoreError)
		}
		if want := tpmLimit - used[w].Load(); d.Remaining.Tokens != want {
			t.Errorf("instance %d: tokens left in the last minute = %d; want %d", i, d.Remaining.Tokens, want)
		}
		if want := max(quota-hour, 0); d.Remaining.QuotaTokens != want {
			t.Errorf("instance %d: quota left = %d; want %d", i, d.Remaining.QuotaTokens, want)
		}
		d.Reservation = Reservation{} // charges nothing to settle
	}
}
