package limit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sluice-gateway/sluice/internal/redistest"
)

// forEachStore runs f once per Store implementation, as subtests "memory" and
// "redis". newStore returns an empty store; the Redis ones share one server
// per call of forEachStore and start from an empty database.
func forEachStore(t *testing.T, f func(t *testing.T, newStore func(t *testing.T) Store)) {
	t.Run("memory", func(t *testing.T) {
		f(t, func(*testing.T) Store { return NewMemory() })
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		f(t, func(t *testing.T) Store { return newRedisStore(t, srv, longTimeouts) })
	})
}

// newRedisStore returns a RedisStore on srv with an empty database, closed
// when the test ends. query, if any, is added to the URL: "?read_timeout=1s".
func newRedisStore(t testing.TB, srv *redistest.Server, query ...string) *RedisStore {
	t.Helper()
	s, err := NewRedis(srv.URL() + strings.Join(query, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.client.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("FLUSHDB: %v", err)
	}
	return s
}

// longTimeouts gives a RedisStore's calls as long as a busy test machine may
// need, for tests in which Redis answers or refuses at once; their limiters
// take a Timeout of patient. Production's 50 ms (DefaultTimeout) is shorter
// than a call to a healthy Redis may take on a machine busy with other work.
const longTimeouts = "?dial_timeout=1s&read_timeout=1s&write_timeout=1s&pool_timeout=1s"

// patient is the Timeout of limiters whose Redis answers.
const patient = time.Second

// outageTimeout is the Timeout of limiters in the tests in which Redis hangs
// or goes away: every call to a hung Redis waits it out, and a call to a
// healthy one, before and after, must fit in it on a busy machine.
const outageTimeout = 250 * time.Millisecond

// day0 is the day the steps' clock times are on, a Friday.
const day0 = "2025-03-14"

// clock parses "15:04:05[.999]" on day0 in UTC, or a full RFC 3339 time.
func clock(s string) time.Time {
	if !strings.Contains(s, "T") {
		s = day0 + "T" + s + "Z"
	}
	return at(s)
}

// products maps the test subscriptions to their products.
var products = map[string]string{"alice": "gold", "bob": "gold", "carol": "silver"}

// step is one admission or, when settle > 0, the settlement of an earlier
// step's reservation.
type step struct {
	at     string // see clock
	who    string // the subscription; "" is alice
	model  string // "" is gpt-4o
	tokens int64
	settle int   // 1-based number of the step to settle instead of admitting
	actual int64 // the tokens the settled request used

	allowed bool
	denial  *wantDenial
	rem     Remaining // after the admission or settlement
	err     error     // Settle's error
}

type wantDenial struct {
	Rule       string
	Kind       Kind
	Limit      int64
	Used       int64
	Want       int64
	RetryAfter time.Duration
	TooLarge   bool
}

func denialOf(d *Denial) *wantDenial {
	if d == nil {
		return nil
	}
	return &wantDenial{d.Rule.ID, d.Kind, d.Limit, d.Used, d.Want, d.RetryAfter, d.TooLarge}
}

func rem(tokens, requests, quota int64) Remaining { return Remaining{tokens, requests, quota} }

func tpm(id string, n int64) *Rule { return &Rule{ID: id, TokensPerMinute: n} }

type behaviourCase struct {
	name  string
	rules []*Rule
	steps []step
}

func behaviourCases() []behaviourCase {
	cases := []behaviourCase{
		{
			name:  "tokens per minute fill, refuse, and free at the next minute",
			rules: []*Rule{tpm("t", 1000)},
			steps: []step{
				{at: "12:00:10", tokens: 600, allowed: true, rem: rem(400, -1, -1)},
				{at: "12:00:20", tokens: 400, allowed: true, rem: rem(0, -1, -1)},
				{at: "12:00:30", tokens: 1, denial: &wantDenial{"t", TokensPerMinute, 1000, 1000, 1, 30 * time.Second, false}, rem: rem(0, -1, -1)},
				{at: "12:00:30", who: "bob", tokens: 1000, allowed: true, rem: rem(0, -1, -1)},
				{at: "12:00:59.75", tokens: 1, denial: &wantDenial{"t", TokensPerMinute, 1000, 1000, 1, 250 * time.Millisecond, false}, rem: rem(0, -1, -1)},
				{at: "12:01:00", tokens: 1000, allowed: true, rem: rem(0, -1, -1)},
			},
		},
		{
			name:  "a request larger than the limit can never fit",
			rules: []*Rule{tpm("t", 1000)},
			steps: []step{
				{at: "12:00:10", tokens: 1001, denial: &wantDenial{"t", TokensPerMinute, 1000, 0, 1001, 50 * time.Second, true}, rem: rem(1000, -1, -1)},
				{at: "12:00:10", tokens: 1000, allowed: true, rem: rem(0, -1, -1)},
			},
		},
		{
			name:  "requests per minute",
			rules: []*Rule{{ID: "r", RequestsPerMinute: 2}},
			steps: []step{
				{at: "12:00:01", tokens: 5000, allowed: true, rem: rem(-1, 1, -1)},
				{at: "12:00:02", allowed: true, rem: rem(-1, 0, -1)},
				{at: "12:00:15", denial: &wantDenial{"r", RequestsPerMinute, 2, 2, 1, 45 * time.Second, false}, rem: rem(-1, 0, -1)},
				{at: "12:01:00", allowed: true, rem: rem(-1, 1, -1)},
			},
		},
		{
			name:  "tokens per minute and quota are charged all or none",
			rules: []*Rule{{ID: "tq", TokensPerMinute: 1000, TokenQuota: 1500, QuotaPeriod: Day}},
			steps: []step{
				{at: "12:00:00", tokens: 800, allowed: true, rem: rem(200, -1, 700)},
				// Refused by the minute: the quota is not charged.
				{at: "12:00:30", tokens: 300, denial: &wantDenial{"tq", TokensPerMinute, 1000, 800, 300, 30 * time.Second, false}, rem: rem(200, -1, 700)},
				// Refused by the quota: the new minute is not charged.
				{at: "12:01:00", tokens: 800, denial: &wantDenial{"tq", Quota, 1500, 800, 800, 11*time.Hour + 59*time.Minute, false}, rem: rem(1000, -1, 700)},
				{at: "12:01:00", tokens: 700, allowed: true, rem: rem(300, -1, 0)},
				{at: "12:02:00", denial: &wantDenial{"tq", Quota, 1500, 1500, 0, 11*time.Hour + 58*time.Minute, false}, rem: rem(1000, -1, 0)},
				{at: "2025-03-15T00:00:00Z", tokens: 1000, allowed: true, rem: rem(0, -1, 500)},
			},
		},
		{
			name: "subscription and product rules are charged all or none",
			rules: []*Rule{
				{ID: "sub", Key: KeySubscription, TokensPerMinute: 1000},
				{ID: "prod", Key: KeyProduct, TokensPerMinute: 1500},
			},
			steps: []step{
				{at: "12:00:00", tokens: 800, allowed: true, rem: rem(200, -1, -1)},
				// bob's own counter is not charged when the product refuses.
				{at: "12:00:01", who: "bob", tokens: 800, denial: &wantDenial{"prod", TokensPerMinute, 1500, 800, 800, 59 * time.Second, false}, rem: rem(700, -1, -1)},
				{at: "12:00:02", who: "bob", tokens: 700, allowed: true, rem: rem(0, -1, -1)},
				{at: "12:00:03", who: "carol", tokens: 1000, allowed: true, rem: rem(0, -1, -1)},
				{at: "12:00:04", tokens: 1, denial: &wantDenial{"prod", TokensPerMinute, 1500, 1500, 1, 56 * time.Second, false}, rem: rem(0, -1, -1)},
			},
		},
		{
			name:  "subscription and model",
			rules: []*Rule{{ID: "sm", Key: KeySubscriptionModel, TokensPerMinute: 100}},
			steps: []step{
				{at: "12:00:00", tokens: 100, allowed: true, rem: rem(0, -1, -1)},
				{at: "12:00:00", model: "gpt-4o-mini", tokens: 100, allowed: true, rem: rem(0, -1, -1)},
				{at: "12:00:00", who: "bob", tokens: 100, allowed: true, rem: rem(0, -1, -1)},
				{at: "12:00:00", tokens: 1, denial: &wantDenial{"sm", TokensPerMinute, 100, 100, 1, time.Minute, false}, rem: rem(0, -1, -1)},
			},
		},
		{
			name:  "global",
			rules: []*Rule{{ID: "g", Key: KeyGlobal, TokensPerMinute: 100}},
			steps: []step{
				{at: "12:00:00", tokens: 60, allowed: true, rem: rem(40, -1, -1)},
				{at: "12:00:00", who: "bob", tokens: 40, allowed: true, rem: rem(0, -1, -1)},
				{at: "12:00:00", who: "carol", tokens: 1, denial: &wantDenial{"g", TokensPerMinute, 100, 100, 1, time.Minute, false}, rem: rem(0, -1, -1)},
			},
		},
		{
			name:  "charge after the fact: admitted while under, blocked after an overrun until the window ends",
			rules: []*Rule{tpm("t", 100)},
			steps: []step{
				{at: "12:00:05", allowed: true, rem: rem(100, -1, -1)},
				{at: "12:00:06", allowed: true, rem: rem(100, -1, -1)},
				{at: "12:00:10", settle: 1, actual: 70, rem: rem(30, -1, -1)},
				{at: "12:00:20", settle: 2, actual: 80, rem: rem(0, -1, -1)},
				{at: "12:00:30", denial: &wantDenial{"t", TokensPerMinute, 100, 150, 0, 30 * time.Second, false}, rem: rem(0, -1, -1)},
				{at: "12:00:30", tokens: 10, denial: &wantDenial{"t", TokensPerMinute, 100, 150, 10, 30 * time.Second, false}, rem: rem(0, -1, -1)},
				{at: "12:01:00", allowed: true, rem: rem(100, -1, -1)},
			},
		},
		{
			name:  "a refund makes room",
			rules: []*Rule{tpm("t", 1000)},
			steps: []step{
				{at: "12:00:00", tokens: 800, allowed: true, rem: rem(200, -1, -1)},
				{at: "12:00:01", tokens: 300, denial: &wantDenial{"t", TokensPerMinute, 1000, 800, 300, 59 * time.Second, false}, rem: rem(200, -1, -1)},
				{at: "12:00:02", settle: 1, actual: 100, rem: rem(900, -1, -1)},
				{at: "12:00:03", tokens: 900, allowed: true, rem: rem(0, -1, -1)},
			},
		},
		{
			name:  "an overrun is charged past the limit",
			rules: []*Rule{{ID: "tq", TokensPerMinute: 1000, TokenQuota: 5000, QuotaPeriod: Month}},
			steps: []step{
				{at: "12:00:00", tokens: 100, allowed: true, rem: rem(900, -1, 4900)},
				{at: "12:00:01", settle: 1, actual: 1500, rem: rem(0, -1, 3500)},
				{at: "12:00:02", tokens: 1, denial: &wantDenial{"tq", TokensPerMinute, 1000, 1500, 1, 58 * time.Second, false}, rem: rem(0, -1, 3500)},
				{at: "12:01:00", tokens: 1000, allowed: true, rem: rem(0, -1, 2500)},
			},
		},
		{
			name:  "settle charges the windows reserved in, not now's",
			rules: []*Rule{{ID: "tq", TokensPerMinute: 1000, TokenQuota: 5000, QuotaPeriod: Hour}},
			steps: []step{
				{at: "12:59:50", tokens: 1000, allowed: true, rem: rem(0, -1, 4000)},
				{at: "13:00:10", tokens: 1000, allowed: true, rem: rem(0, -1, 4000)},
				{at: "13:00:20", settle: 1, actual: 200, rem: rem(800, -1, 4800)},
				{at: "13:00:30", tokens: 1, denial: &wantDenial{"tq", TokensPerMinute, 1000, 1000, 1, 30 * time.Second, false}, rem: rem(0, -1, 4000)},
			},
		},
		{
			name:  "a second settle does nothing",
			rules: []*Rule{tpm("t", 1000)},
			steps: []step{
				{at: "12:00:00", tokens: 800, allowed: true, rem: rem(200, -1, -1)},
				{at: "12:00:01", settle: 1, actual: 100, rem: rem(900, -1, -1)},
				{at: "12:00:02", settle: 1, actual: 1000, err: ErrSettled, rem: rem(-1, -1, -1)},
				{at: "12:00:03", tokens: 900, allowed: true, rem: rem(0, -1, -1)},
			},
		},
		{
			name:  "a refused request settles to nothing",
			rules: []*Rule{tpm("t", 100)},
			steps: []step{
				{at: "12:00:00", tokens: 100, allowed: true, rem: rem(0, -1, -1)},
				{at: "12:00:01", tokens: 50, denial: &wantDenial{"t", TokensPerMinute, 100, 100, 50, 59 * time.Second, false}, rem: rem(0, -1, -1)},
				{at: "12:00:02", settle: 2, actual: 50, rem: rem(-1, -1, -1)},
				{at: "12:00:03", settle: 1, actual: 60, rem: rem(40, -1, -1)},
				{at: "12:00:04", tokens: 41, denial: &wantDenial{"t", TokensPerMinute, 100, 60, 41, 56 * time.Second, false}, rem: rem(40, -1, -1)},
			},
		},
		{
			name:  "a settlement after the window expired is dropped",
			rules: []*Rule{tpm("t", 1000)},
			steps: []step{
				{at: "12:00:00", tokens: 1000, allowed: true, rem: rem(0, -1, -1)},
				{at: "12:05:00", settle: 1, actual: 5000, rem: rem(0, -1, -1)},
				{at: "12:05:01", tokens: 1000, allowed: true, rem: rem(0, -1, -1)},
			},
		},
		{
			name: "the refusal reported is the one that frees last",
			rules: []*Rule{
				tpm("t", 100),
				{ID: "q", TokenQuota: 100, QuotaPeriod: Day},
			},
			steps: []step{
				{at: "12:00:00", tokens: 100, allowed: true, rem: rem(0, -1, 0)},
				{at: "12:00:00", tokens: 1, denial: &wantDenial{"q", Quota, 100, 100, 1, 12 * time.Hour, false}, rem: rem(0, -1, 0)},
			},
		},
		{
			name: "a refusal that can never fit comes first",
			rules: []*Rule{
				tpm("t", 100),
				{ID: "q", TokenQuota: 1000, QuotaPeriod: Day},
			},
			steps: []step{
				{at: "12:00:00", tokens: 100, allowed: true, rem: rem(0, -1, 900)},
				{at: "12:01:00", tokens: 950, denial: &wantDenial{"t", TokensPerMinute, 100, 0, 950, time.Minute, true}, rem: rem(100, -1, 900)},
			},
		},
		{
			name: "remaining is the least across the rules",
			rules: []*Rule{
				{ID: "sub", TokensPerMinute: 1000, RequestsPerMinute: 10},
				{ID: "prod", Key: KeyProduct, TokensPerMinute: 5000, RequestsPerMinute: 3, TokenQuota: 10000, QuotaPeriod: Week},
			},
			steps: []step{
				{at: "12:00:00", tokens: 100, allowed: true, rem: rem(900, 2, 9900)},
				{at: "12:00:00", who: "bob", tokens: 900, allowed: true, rem: rem(100, 1, 9000)},
				{at: "12:00:00", settle: 2, actual: 300, rem: rem(700, 1, 9600)},
			},
		},
		{
			name:  "rules without limits admit everything",
			rules: []*Rule{{ID: "none"}},
			steps: []step{
				{at: "12:00:00", tokens: 1 << 40, allowed: true, rem: rem(-1, -1, -1)},
				{at: "12:00:01", settle: 1, actual: 1 << 41, rem: rem(-1, -1, -1)},
			},
		},
	}
	// Retry-After of a quota runs to the end of its period.
	now := "2025-03-14T12:34:56.5Z"
	for _, q := range []struct {
		p   Period
		end string
	}{
		{Hour, "2025-03-14T13:00:00Z"},
		{Day, "2025-03-15T00:00:00Z"},
		{Week, "2025-03-17T00:00:00Z"},
		{Month, "2025-04-01T00:00:00Z"},
		{Year, "2026-01-01T00:00:00Z"},
	} {
		cases = append(cases, behaviourCase{
			name:  "retry after a " + q.p.String() + " quota",
			rules: []*Rule{{ID: "q", TokenQuota: 10, QuotaPeriod: q.p}},
			steps: []step{
				{at: now, tokens: 10, allowed: true, rem: rem(-1, -1, 0)},
				{at: now, tokens: 1, denial: &wantDenial{"q", Quota, 10, 10, 1, at(q.end).Sub(at(now)), false}, rem: rem(-1, -1, 0)},
				{at: q.end, tokens: 10, allowed: true, rem: rem(-1, -1, 0)},
			},
		})
	}
	return cases
}

// TestBehaviour runs the same steps against every store.
func TestBehaviour(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(t *testing.T) Store) {
		for _, tc := range behaviourCases() {
			t.Run(tc.name, func(t *testing.T) {
				l := New(Options{Store: newStore(t), Timeout: patient})
				decisions := make([]Decision, len(tc.steps))
				for i, s := range tc.steps {
					now := clock(s.at)
					if s.settle > 0 {
						got, err := l.Settle(t.Context(), decisions[s.settle-1].Reservation, s.actual, now)
						if !errors.Is(err, s.err) {
							t.Fatalf("step %d: Settle(step %d, %d) error = %v; want %v", i+1, s.settle, s.actual, err, s.err)
						}
						if got != s.rem {
							t.Errorf("step %d: Settle(step %d, %d) = %+v; want %+v", i+1, s.settle, s.actual, got, s.rem)
						}
						continue
					}
					who := s.who
					if who == "" {
						who = "alice"
					}
					model := s.model
					if model == "" {
						model = "gpt-4o"
					}
					d := l.Admit(t.Context(), Request{
						Rules:   tc.rules,
						Subject: Subject{Subscription: who, Product: products[who], Model: model},
						Tokens:  s.tokens,
						Now:     now,
					})
					decisions[i] = d
					if d.StoreError != nil {
						t.Fatalf("step %d: store error: %v", i+1, d.StoreError)
					}
					if d.Allowed != s.allowed {
						t.Errorf("step %d: Allowed = %v; want %v", i+1, d.Allowed, s.allowed)
					}
					if diff := cmp.Diff(s.denial, denialOf(d.Denial)); diff != "" {
						t.Errorf("step %d: denial (-want +got):\n%s", i+1, diff)
					}
					if d.Remaining != s.rem {
						t.Errorf("step %d: Remaining = %+v; want %+v", i+1, d.Remaining, s.rem)
					}
				}
			})
		}
	})
}

// TestSettleOnce settles one reservation from many goroutines at once: one
// wins, the others get ErrSettled, and the counter moves once.
func TestSettleOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(t *testing.T) Store) {
		l := New(Options{Store: newStore(t), Timeout: patient})
		rules := []*Rule{tpm("t", 1000)}
		now := clock("12:00:00")
		d := l.Admit(t.Context(), Request{Rules: rules, Subject: Subject{Subscription: "alice"}, Tokens: 500, Now: now})
		if !d.Allowed || d.Reservation.Tokens() != 500 {
			t.Fatalf("Admit = %+v; want allowed with 500 reserved", d)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		settled := 0
		for range 16 {
			wg.Go(func() {
				_, err := l.Settle(t.Context(), d.Reservation, 100, now)
				if err == nil {
					mu.Lock()
					settled++
					mu.Unlock()
				} else if !errors.Is(err, ErrSettled) {
					t.Errorf("Settle: %v", err)
				}
			})
		}
		wg.Wait()
		if settled != 1 {
			t.Errorf("%d Settles succeeded; want 1", settled)
		}
		d = l.Admit(t.Context(), Request{Rules: rules, Subject: Subject{Subscription: "alice"}, Tokens: 900, Now: now})
		if !d.Allowed || d.Remaining.Tokens != 0 {
			t.Errorf("after settling 500 to 100, Admit(900) = allowed %v, remaining %d; want allowed, 0", d.Allowed, d.Remaining.Tokens)
		}
	})
}

func TestRuleValidate(t *testing.T) {
	tests := []struct {
		name    string
		rule    Rule
		wantErr string
	}{
		{"fine", Rule{ID: "a/0", Key: KeyProduct, TokensPerMinute: 10, TokenQuota: 5, QuotaPeriod: Month}, ""},
		{"no id", Rule{TokensPerMinute: 10}, "without an id"},
		{"unknown key", Rule{ID: "a", Key: 9}, "unknown key 9"},
		{"negative", Rule{ID: "a", RequestsPerMinute: -1}, "negative limit"},
		{"unknown period", Rule{ID: "a", TokenQuota: 1, QuotaPeriod: 42}, "unknown period 42"},
	}
	for _, tt := range tests {
		err := tt.rule.Validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: Validate() = %v; want %q", tt.name, err, tt.wantErr)
		}
	}
}

// TestRequestsOnly: an answer that costs no tokens (a cache hit) counts one
// request and is admitted while the token counters are full, which it
// leaves as they are.
func TestRequestsOnly(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(t *testing.T) Store) {
		l := New(Options{Store: newStore(t), Timeout: patient})
		rule := &Rule{ID: "r", Key: KeySubscription, TokensPerMinute: 100, RequestsPerMinute: 3, TokenQuota: 100, QuotaPeriod: Day}
		rules := []*Rule{rule}
		sub := Subject{Subscription: "alice"}
		now := clock("12:00:00")
		d := l.Admit(t.Context(), Request{Rules: rules, Subject: sub, Tokens: 100, Now: now})
		if !d.Allowed {
			t.Fatalf("Admit(100) = %+v; want allowed", d)
		}
		for i := range 2 {
			d := l.Admit(t.Context(), Request{Rules: rules, Subject: sub, RequestsOnly: true, Now: now})
			if !d.Allowed || d.Remaining.Requests != int64(1-i) {
				t.Fatalf("requests-only Admit %d = %+v; want allowed, %d requests left", i, d, 1-i)
			}
			if _, err := l.Settle(t.Context(), d.Reservation, 0, now); err != nil {
				t.Fatal(err)
			}
		}
		d = l.Admit(t.Context(), Request{Rules: rules, Subject: sub, RequestsOnly: true, Now: now})
		if d.Allowed || d.Denial == nil || d.Denial.Kind != RequestsPerMinute {
			t.Errorf("fourth request = %+v; want refused by requests-per-minute", d)
		}
		d = l.Admit(t.Context(), Request{Rules: rules, Subject: sub, Tokens: 1, Now: clock("12:01:00")})
		if d.Allowed || d.Denial.Kind != Quota || d.Denial.Used != 100 {
			t.Errorf("next minute Admit(1) = %+v; want refused by the quota at 100 used (untouched by the hits)", d.Denial)
		}
	})
}
