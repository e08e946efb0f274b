package app

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/redistest"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// limitsYAML puts limits on the fixture's backends: a small per-minute token
// limit with estimation, a charge-after product, and a daily quota. The
// state store comes from FX_STATE_STORE and FX_ON_STORE_ERROR. Its timeout
// (1s, where production's default is 50ms) is one that no call to a healthy
// Redis reaches on a busy machine: under fail_closed that would be a 503.
const limitsYAML = `
server:
  listen: 127.0.0.1:0
  shutdown_grace: %s
admin:
  listen: 127.0.0.1:0
  api_key: "${FX_ADMIN_KEY}"
usage:
  store: "${FX_USAGE_STORE}"
  journal: "${FX_USAGE_JOURNAL}"
  prices:
    models:
      gpt-4o: { input: 2.50, output: 10.00 }
state:
  store: "${FX_STATE_STORE}"
  on_store_error: "${FX_ON_STORE_ERROR}"
  timeout: 1s
backends:
  - name: ptu-swedencentral
    url: %s
    region: swedencentral
    auth: { api_key: "${FX_PTU_KEY}" }
    deployments: { gpt-4o: gpt-4o-ptu }
    circuit_breaker: { failures: 1, status_codes: ["429"], trip_duration: 1m, accept_retry_after: true }
  - name: payg-westeurope
    url: %s
    region: westeurope
    auth: { api_key: "${FX_WEST_KEY}" }
    deployments: { gpt-4o: gpt-4o }
  - name: payg-francecentral
    kind: openai
    url: %s
    region: francecentral
    auth: { api_key: "${FX_FRANCE_KEY}" }
    deployments: { gpt-4o: gpt-4o }
pools:
  - name: chat
    members:
      - { backend: ptu-swedencentral, priority: 1 }
      - { backend: payg-westeurope, priority: 2 }
      - { backend: payg-francecentral, priority: 2 }
    retry: { attempts: 3, on: ["429", "500-599"] }
models:
  gpt-4o: chat
products:
  - name: metered
    models: [gpt-4o]
    limits:
      - key: subscription
        tokens_per_minute: 3000
        requests_per_minute: 1000
        estimate_prompt_tokens: true
  - name: after
    models: [gpt-4o]
    limits:
      - key: subscription
        tokens_per_minute: 100
  - name: quota
    models: [gpt-4o]
    limits:
      - key: subscription
        token_quota: 300
        token_quota_period: daily
        estimate_prompt_tokens: true
        default_max_tokens: 20
  - name: budgeted
    models: [gpt-4o]
    budget: { amount: 0.002, period: daily }
subscriptions:
  - name: team-budget
    product: budgeted
    keys: ["sk-fixture-budget-0123456789"]
  - name: team-alpha
    product: metered
    keys: ["${FX_ALPHA_KEY}"]
  - name: team-after
    product: after
    keys: ["sk-fixture-after-0123456789"]
  - name: team-quota
    product: quota
    keys: ["sk-fixture-quota-0123456789"]
%s`

func useStore(t *testing.T, store, onError string) {
	t.Setenv("FX_STATE_STORE", store)
	t.Setenv("FX_ON_STORE_ERROR", onError)
}

const limitedChat = `{"model":"gpt-4o","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`

// hammer sends requests from 64 clients at once until every client has been
// refused; it returns the statuses seen.
func hammer(t *testing.T, urls []string, key string) map[int]int {
	t.Helper()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				req, _ := http.NewRequest("POST", urls[i%len(urls)]+"/v1/chat/completions", strings.NewReader(limitedChat))
				req.Header.Set("Api-Key", key)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
				if resp.StatusCode == 429 {
					return
				}
			}
		}()
	}
	wg.Wait()
	client.CloseIdleConnections()
	return statuses
}

func servedTokens(fs ...*fixture) int64 {
	var n int64
	for _, f := range fs {
		for _, sim := range f.sims {
			for _, d := range sim.Stats().Deployments {
				n += d.TotalTokens
			}
		}
	}
	return n
}

// TestLimitExactUnderConcurrency: 64 clients on one subscription never get
// more tokens served within a minute than its limit allows, on the memory
// store with one gateway and on Redis with two gateways sharing it.
func TestLimitExactUnderConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name      string
		instances int
		redis     bool
	}{
		{"memory, one instance", 1, false},
		{"redis, two instances", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := "memory"
			if tc.redis {
				store = redistest.Start(t).URL()
			}
			useStore(t, store, "fail_closed")
			clk := newFakeClock() // one minute window for the whole run
			var fs []*fixture
			var urls []string
			// A more generous store timeout still: 64 clients at once.
			tmpl := strings.Replace(limitsYAML, "  timeout: 1s\n", "  timeout: 10s\n", 1)
			if tmpl == limitsYAML {
				t.Fatal("limitsYAML no longer sets state.timeout: 1s")
			}
			for range tc.instances {
				f := newFixture(t, withConfig(tmpl), withClock(clk.Now))
				fs = append(fs, f)
				urls = append(urls, f.url)
			}
			statuses := hammer(t, urls, fxAlphaKey)
			served := servedTokens(fs...)
			// One request reserves its prompt (8 tokens) plus max_tokens 50.
			if served > 3000 || served < 3000-2*58 {
				t.Errorf("%d tokens served in one minute window (statuses %v); want at most the limit 3000, and close to it", served, statuses)
			}
			if statuses[200] == 0 || statuses[429] != 64 {
				t.Errorf("statuses %v; want successes, then every client refused once", statuses)
			}
			// The next minute the subscription is served again.
			clk.Advance(time.Minute)
			if status, _, _ := chatVia(t, fs[0], fxAlphaKey, "gpt-4o"); status != 200 {
				t.Errorf("next minute: %d; want 200", status)
			}
		})
	}
}

func TestLimitHeadersAndErrors(t *testing.T) {
	useStore(t, "memory", "fail_open")
	clk := newFakeClock()
	f := newFixture(t, withConfig(limitsYAML), withClock(clk.Now))

	resp, body := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, limitedChat)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	consumed, _ := strconv.Atoi(resp.Header.Get("X-Sluice-Tokens-Consumed"))
	st := f.sims["ptu-swedencentral"].Stats().Deployments["gpt-4o-ptu"]
	if int64(consumed) != st.TotalTokens || consumed == 0 {
		t.Errorf("x-sluice-tokens-consumed = %d; the backend served %d", consumed, st.TotalTokens)
	}
	if got := resp.Header.Get("X-Ratelimit-Remaining-Tokens"); got != strconv.Itoa(3000-consumed) {
		t.Errorf("x-ratelimit-remaining-tokens = %q; want %d (the limit less what was used)", got, 3000-consumed)
	}
	if got := resp.Header.Get("X-Ratelimit-Remaining-Requests"); got != "999" {
		t.Errorf("x-ratelimit-remaining-requests = %q; want 999", got)
	}

	// Too large to ever fit.
	resp, body = do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey,
		`{"model":"gpt-4o","max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 429 || !strings.Contains(body, "can never fit") || resp.Header.Get("Retry-After") != "" {
		t.Errorf("too large: %d %s Retry-After %q; want 429 saying it can never fit, without Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}

	// Charge after the fact: the request that goes over passes, the next is refused until the window frees.
	const afterKey = "sk-fixture-after-0123456789"
	for i, want := range []int{200, 200, 429} {
		resp, body = do(t, "POST", f.url+"/v1/chat/completions", afterKey,
			`{"model":"gpt-4o","max_tokens":60,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != want {
			t.Fatalf("charge-after request %d: %d %s; want %d", i, resp.StatusCode, body, want)
		}
	}
	if !strings.Contains(body, `"code":"rate_limit_exceeded"`) || !strings.Contains(body, "100 tokens per minute") {
		t.Errorf("429 body %s; want rate_limit_exceeded naming the limit", body)
	}
	clk.Advance(30 * time.Second)
	resp, _ = do(t, "POST", f.url+"/v1/chat/completions", afterKey, limitedChat)
	if ra, ms := resp.Header.Get("Retry-After"), resp.Header.Get("Retry-After-Ms"); resp.StatusCode != 429 || ra != "30" || ms != "30000" {
		t.Errorf("30 s into the window: %d Retry-After %q retry-after-ms %q; want 429, 30, 30000", resp.StatusCode, ra, ms)
	}
	clk.Advance(30 * time.Second)
	if resp, _ = do(t, "POST", f.url+"/v1/chat/completions", afterKey, limitedChat); resp.StatusCode != 200 {
		t.Errorf("next window: %d; want 200", resp.StatusCode)
	}
}

// TestQuotaRollover: a daily quota refuses with 403 until the UTC day turns.
func TestQuotaRollover(t *testing.T) {
	useStore(t, "memory", "fail_open")
	clk := newFakeClock()
	f := newFixture(t, withConfig(limitsYAML), withClock(clk.Now))
	const key = "sk-fixture-quota-0123456789"
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}` // reserves 8 + default_max_tokens 20
	ok := 0
	var resp *http.Response
	var msg string
	for range 50 {
		resp, msg = do(t, "POST", f.url+"/v1/chat/completions", key, body)
		if resp.StatusCode != 200 {
			break
		}
		ok++
	}
	if resp.StatusCode != 403 || !strings.Contains(msg, `"code":"quota_exceeded"`) || ok == 0 {
		t.Fatalf("after %d requests: %d %s; want 403 quota_exceeded", ok, resp.StatusCode, msg)
	}
	if q := resp.Header.Get("X-Sluice-Quota-Remaining-Tokens"); q == "" {
		t.Error("no x-sluice-quota-remaining-tokens header")
	}
	clk.Advance(11 * time.Hour) // the fake clock starts at noon: still the same day
	if resp, _ = do(t, "POST", f.url+"/v1/chat/completions", key, body); resp.StatusCode != 403 {
		t.Errorf("at 23:00: %d; want 403", resp.StatusCode)
	}
	clk.Advance(time.Hour)
	if resp, _ = do(t, "POST", f.url+"/v1/chat/completions", key, body); resp.StatusCode != 200 {
		t.Errorf("after midnight UTC: %d; want 200", resp.StatusCode)
	}
}

// TestRetriedRequestChargedOnce: a request the PTU refused with 429 and
// pay-as-you-go served is charged what pay-as-you-go served, once.
func TestRetriedRequestChargedOnce(t *testing.T) {
	useStore(t, "memory", "fail_open")
	f := newFixture(t, withConfig(limitsYAML))
	f.sims["ptu-swedencentral"].SetFaults(simulator.Faults{RetryAfter: 5 * time.Second})
	resp, _ := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, limitedChat)
	consumed, _ := strconv.Atoi(resp.Header.Get("X-Sluice-Tokens-Consumed"))
	if resp.StatusCode != 200 || consumed == 0 || int64(consumed) != servedTokens(f) {
		t.Errorf("status %d, consumed %d; the backends served %d; want them equal", resp.StatusCode, consumed, servedTokens(f))
	}
	if got := resp.Header.Get("X-Ratelimit-Remaining-Tokens"); got != strconv.Itoa(3000-consumed) {
		t.Errorf("remaining %q; want %d: one charge", got, 3000-consumed)
	}
}

// TestRedisOutage: with Redis gone, fail_open goes on limiting by the
// instance's own count (requests within the limit pass) and fail_closed
// answers 503, both at once (a stopped Redis refuses connections), well
// within the store timeout; when Redis is back, counting resumes there.
func TestRedisOutage(t *testing.T) {
	for _, policy := range []string{"fail_open", "fail_closed"} {
		t.Run(policy, func(t *testing.T) {
			rs := redistest.Start(t)
			useStore(t, rs.URL(), policy)
			clk := newFakeClock()
			f := newFixture(t, withConfig(limitsYAML), withClock(clk.Now))
			const afterKey = "sk-fixture-after-0123456789"
			sendAs := func(key string) int {
				resp, _ := do(t, "POST", f.url+"/v1/chat/completions", key, limitedChat)
				return resp.StatusCode
			}
			send := func() int { return sendAs(afterKey) }
			if status := send(); status != 200 {
				t.Fatalf("with Redis up: %d", status)
			}
			rs.Stop()
			var slowest time.Duration
			want := map[string]int{"fail_open": 200, "fail_closed": 503}[policy]
			for range 5 {
				// team-alpha's 3,000 tokens a minute hold five requests of
				// about 58 tokens, by Redis or by the instance's own count.
				start := time.Now()
				status := sendAs(fxAlphaKey)
				slowest = max(slowest, time.Since(start))
				if status != want {
					t.Fatalf("with Redis down: %d; want %d", status, want)
				}
			}
			if slowest > time.Second {
				t.Errorf("a request took %v with Redis down; want less than the 1s store timeout", slowest)
			}
			if policy == "fail_open" {
				// The charge-after limit of 100 tokens still holds on this
				// instance: one more request fits, the next does not.
				if s1, s2 := send(), send(); s1 != 200 || s2 != 429 {
					t.Errorf("over the limit with Redis down: %d %d; want 200 then 429 by the instance's own count", s1, s2)
				}
			}
			rs.Restart()
			deadline := time.Now().Add(10 * time.Second)
			for {
				// The charge-after limit of 100 tokens: two requests of about
				// 58 go over it, and the third is refused.
				s1, s2, s3 := send(), send(), send()
				if s1 == 200 && s3 == 429 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Redis back: statuses %d %d %d; want counting to resume (200 then 429)", s1, s2, s3)
				}
				clk.Advance(time.Minute)
				time.Sleep(100 * time.Millisecond)
			}
			if !strings.Contains(f.logs.String(), "limit") {
				t.Errorf("no log line about the store failure")
			}
		})
	}
}

// TestBudget: once a subscription's spend for the day reaches its budget,
// the next request gets 403 budget_exceeded, until the day turns.
func TestBudget(t *testing.T) {
	useStore(t, "memory", "fail_open")
	clk := newFakeClock()
	f := newFixture(t, withConfig(limitsYAML), withClock(clk.Now))
	const key = "sk-fixture-budget-0123456789"
	ok := 0
	var resp *http.Response
	var body string
	for range 20 {
		resp, body = do(t, "POST", f.url+"/v1/chat/completions", key, limitedChat)
		if resp.StatusCode != 200 {
			break
		}
		ok++
	}
	if resp.StatusCode != 403 || !strings.Contains(body, `"code":"budget_exceeded"`) || !strings.Contains(body, "0.002 USD per day") {
		t.Fatalf("after %d requests: %d %s; want 403 budget_exceeded", ok, resp.StatusCode, body)
	}
	// Each request costs about (8 x 2.50 + 50 x 10.00) / 1e6 = 0.00052 USD.
	if ok < 3 || ok > 4 {
		t.Errorf("%d requests passed; want the 0.002 USD budget spent after 3 or 4", ok)
	}
	clk.Advance(12 * time.Hour)
	if resp, _ = do(t, "POST", f.url+"/v1/chat/completions", key, limitedChat); resp.StatusCode != 200 {
		t.Errorf("the next day: %d; want 200", resp.StatusCode)
	}
}
