package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/balance"
	"github.com/sluice-gateway/sluice/internal/breaker"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// resilienceYAML is the fixture's three backends with breakers, pools with
// retries, and a product kept to one region. Its timeouts are real timers,
// far above any answer of a busy machine: a spurious first-byte timeout
// trips a breaker that the fake clock never lets reopen, and two spurious
// probe timeouts in a row take the PTU out. A hung backend costs seconds.
const resilienceYAML = `
server:
  listen: 127.0.0.1:0
  shutdown_grace: %s
admin:
  listen: 127.0.0.1:0
  api_key: "${FX_ADMIN_KEY}"
usage:
  store: "${FX_USAGE_STORE}"
  journal: "${FX_USAGE_JOURNAL}"
backends:
  - name: ptu-swedencentral
    url: %s
    region: swedencentral
    auth: { api_key: "${FX_PTU_KEY}" }
    deployments: { gpt-4o: gpt-4o-ptu, gpt-4o-flat: gpt-4o-ptu, gpt-4o-sticky: gpt-4o-ptu }
    first_byte_timeout: 2s
    circuit_breaker: { failures: 1, interval: 1m, status_codes: ["429"], errors: [timeout, connection], trip_duration: 1m, accept_retry_after: true }
    health_check: { interval: 250ms, timeout: 200ms, unhealthy_threshold: 2, healthy_threshold: 1 }
  - name: payg-westeurope
    url: %s
    region: westeurope
    auth: { api_key: "${FX_WEST_KEY}" }
    deployments: { gpt-4o: gpt-4o, gpt-4o-flat: gpt-4o, gpt-4o-fast: gpt-4o, gpt-4o-sticky: gpt-4o, gpt-4o-throttled: gpt-4o }
    first_byte_timeout: 2s
    circuit_breaker: { failures: 3, interval: 10s, status_codes: ["429", "500-599"], errors: [timeout, connection], trip_duration: 30s, accept_retry_after: true }
  - name: payg-francecentral
    kind: openai
    url: %s
    region: francecentral
    auth: { api_key: "${FX_FRANCE_KEY}" }
    deployments: { gpt-4o: gpt-4o, gpt-4o-flat: gpt-4o, gpt-4o-fast: gpt-4o, gpt-4o-sticky: gpt-4o }
    first_byte_timeout: 2s
    circuit_breaker: { failures: 3, interval: 10s, status_codes: ["429", "500-599"], errors: [timeout, connection], trip_duration: 30s, accept_retry_after: true }
pools:
  - name: chat
    members:
      - { backend: ptu-swedencentral, priority: 1 }
      - { backend: payg-westeurope, priority: 2, weight: 3 }
      - { backend: payg-francecentral, priority: 2, weight: 1 }
    retry: { attempts: 3, on: ["429", "500-599", timeout, connection], backoff: 10ms }
  - name: flat
    members: [{ backend: ptu-swedencentral }, { backend: payg-westeurope }, { backend: payg-francecentral }]
    retry: { attempts: 3, on: ["429", "500-599", timeout, connection], backoff: 10ms }
  - name: fast
    strategy: least_latency
    members: [{ backend: payg-westeurope }, { backend: payg-francecentral }]
  - name: sticky
    members: [{ backend: ptu-swedencentral }, { backend: payg-westeurope }, { backend: payg-francecentral }]
    session_affinity: {}
  - name: throttled
    members: [{ backend: payg-westeurope }]
    throttle: { min_remaining_tokens: 99800, max_wait: 100ms }
models:
  gpt-4o-throttled: throttled
  gpt-4o: chat
  gpt-4o-flat: flat
  gpt-4o-fast: fast
  gpt-4o-sticky: sticky
products:
  - name: standard
    models: [gpt-4o, gpt-4o-flat, gpt-4o-fast, gpt-4o-sticky, gpt-4o-throttled]
  - name: west-only
    models: [gpt-4o]
    regions: [westeurope]
subscriptions:
  - name: team-alpha
    product: standard
    keys: ["${FX_ALPHA_KEY}"]
  - name: team-west
    product: west-only
    keys: ["` + fxBetaKey + `"]
%s`

// resilienceFirstByte returns resilienceYAML with every backend's
// first_byte_timeout set to d.
func resilienceFirstByte(d string) string {
	const timeout = "first_byte_timeout: 2s"
	if strings.Count(resilienceYAML, timeout) != 3 {
		panic("resilienceYAML does not set " + timeout + " on its three backends")
	}
	return strings.ReplaceAll(resilienceYAML, timeout, "first_byte_timeout: "+d)
}

// fakeClock is the gateway's clock in tests that must not wait for a
// breaker's window to pass.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// chatVia sends a small chat request for model and returns the status, the
// backend that served it and the response.
func chatVia(t *testing.T, f *fixture, key, model string) (int, string, *http.Response) {
	t.Helper()
	resp, _ := do(t, "POST", f.url+"/v1/chat/completions", key,
		`{"model":"`+model+`","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`)
	return resp.StatusCode, resp.Header.Get("X-Sluice-Backend"), resp
}

func served(f *fixture, name string) int64 {
	var n int64
	for _, d := range f.sims[name].Stats().Deployments {
		for _, c := range d.Requests {
			n += c
		}
	}
	return n
}

// TestPTURetryAfterSpillover: the PTU answers 429 with Retry-After: 7. The
// request is served by pay-as-you-go; the PTU gets no traffic for 7 s, then
// gets it again.
func TestPTURetryAfterSpillover(t *testing.T) {
	clk := newFakeClock()
	f := newFixture(t, withConfig(resilienceYAML), withClock(clk.Now))
	f.sims["ptu-swedencentral"].SetFaults(simulator.Faults{RetryAfter: 7 * time.Second})

	status, backend, _ := chatVia(t, f, fxAlphaKey, "gpt-4o")
	if status != 200 || !strings.HasPrefix(backend, "payg-") {
		t.Fatalf("first request: %d from %q; want 200 from pay-as-you-go after the PTU's 429", status, backend)
	}
	if n := served(f, "ptu-swedencentral"); n != 1 {
		t.Fatalf("the PTU saw %d requests; want 1 (the 429)", n)
	}
	f.sims["ptu-swedencentral"].SetFaults(simulator.Faults{}) // capacity is back, but Retry-After holds
	for _, step := range []time.Duration{0, 3 * time.Second, 3900 * time.Millisecond} {
		clk.Advance(step)
		for range 5 {
			if status, backend, _ := chatVia(t, f, fxAlphaKey, "gpt-4o"); status != 200 || backend == "ptu-swedencentral" {
				t.Fatalf("%v after the 429: %d from %s; want 200 from pay-as-you-go", clk.Now().Sub(newFakeClock().t), status, backend)
			}
		}
	}
	if n := served(f, "ptu-swedencentral"); n != 1 {
		t.Fatalf("the PTU saw %d requests within its Retry-After; want none after the 429", n)
	}
	clk.Advance(200 * time.Millisecond) // 7.1 s after the 429
	for i := range 5 {
		if status, backend, _ := chatVia(t, f, fxAlphaKey, "gpt-4o"); status != 200 || backend != "ptu-swedencentral" {
			t.Fatalf("request %d after the Retry-After: %d from %s; want the PTU again", i, status, backend)
		}
	}
	if !strings.Contains(f.logs.String(), "retry-after 7s") {
		t.Errorf("the breaker's log line does not give the Retry-After:\n%s", f.logs.String())
	}
}

// TestFailoverUnderLoad: one of three backends returns 500s, then one hangs,
// then one drops connections, each under concurrent load: not one client
// request fails.
func TestFailoverUnderLoad(t *testing.T) {
	clk := newFakeClock()
	f := newFixture(t, withConfig(resilienceYAML), withClock(clk.Now))
	phases := []struct {
		backend string
		faults  simulator.Faults
	}{
		{"payg-westeurope", simulator.Faults{ErrorRate: 1, ErrorStatus: 500}},
		{"payg-francecentral", simulator.Faults{Hang: true}},
		{"ptu-swedencentral", simulator.Faults{Disconnect: true}},
	}
	const perPhase, workers = 700, 32
	for _, ph := range phases {
		t.Run(ph.backend, func(t *testing.T) {
			for _, sim := range f.sims {
				sim.SetFaults(simulator.Faults{})
			}
			clk.Advance(time.Minute) // every breaker's trip from the phase before is over
			f.sims[ph.backend].SetFaults(ph.faults)
			var failed, ok atomic.Int64
			var next atomic.Int64
			var firstFailure sync.Once
			var first string
			fail := func(why string) {
				failed.Add(1)
				firstFailure.Do(func() { first = why })
			}
			var wg sync.WaitGroup
			client := &http.Client{Timeout: 10 * time.Second}
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= perPhase {
						req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions",
							strings.NewReader(`{"model":"gpt-4o-flat","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`))
						req.Header.Set("Api-Key", fxAlphaKey)
						resp, err := client.Do(req)
						if err != nil {
							fail(err.Error())
							continue
						}
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							fail(fmt.Sprintf("%s from %q: %s", resp.Status, resp.Header.Get("X-Sluice-Backend"), body))
							continue
						}
						ok.Add(1)
					}
				}()
			}
			wg.Wait()
			// Connections dialled but never used count as new, not idle, for
			// five seconds of the gateway's shutdown: close them.
			client.CloseIdleConnections()
			if failed.Load() != 0 || ok.Load() != perPhase {
				t.Errorf("%d of %d requests failed; want none; the first: %s", failed.Load(), perPhase, first)
			}
		})
	}
}

// TestLeastLatencyFollowsSpeed: least_latency sends most traffic to a
// backend twenty times faster, and shifts when the slow one becomes the fast
// one. The latencies are injected, not slept: while a backend serves, the
// gateway's clock moves on by that backend's latency, so the time to first
// byte the balancer averages is exactly that however busy the machine is.
// What is left to chance is the balancer's own exploration (10% of picks),
// and the shares asserted are 20 points below the 90% it gives.
func TestLeastLatencyFollowsSpeed(t *testing.T) {
	clk := newFakeClock()
	var mu sync.Mutex // guards latency
	latency := map[string]time.Duration{}
	setLatency := func(west, france time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		latency["payg-westeurope"], latency["payg-francecentral"] = west, france
	}
	// The first-byte timeout is a real timer: no busy machine may reach it.
	f := newFixture(t, withConfig(resilienceFirstByte("1m")), withClock(clk.Now), withServing(func(backend string) {
		mu.Lock()
		d := latency[backend]
		mu.Unlock()
		clk.Advance(d)
	}))
	model, ok := f.gw.Table().Model("gpt-4o-fast")
	if !ok || model.Pool.Strategy() != balance.LeastLatency {
		t.Fatalf("model gpt-4o-fast: %v; want a least_latency pool", model)
	}
	backends := f.gw.Table().Backends
	west, france := backends["payg-westeurope"].State, backends["payg-francecentral"].State
	send := func() string {
		t.Helper()
		status, backend, _ := chatVia(t, f, fxAlphaKey, "gpt-4o-fast")
		if status != 200 {
			t.Fatalf("status %d from %q; want 200", status, backend)
		}
		return backend
	}
	share := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			got[send()]++
		}
		return got
	}
	// favourite is the member least_latency takes when it does not explore,
	// from the averages the gateway measured.
	favourite := func() string {
		t.Helper()
		exploit := balance.NewPool("fast", model.Pool.Members(), balance.Options{
			Strategy: balance.LeastLatency, Rand: func() uint64 { return math.MaxUint64 }})
		b, ticket, ok := exploit.Pick(clk.Now(), nil, balance.Affinity{})
		if !ok {
			t.Fatal("no member of the pool is available")
		}
		b.State.Breaker.Done(ticket, clk.Now(), breaker.Outcome{Ignore: true})
		return b.Name
	}
	const fast, slow = 3 * time.Millisecond, 60 * time.Millisecond

	setLatency(fast, slow)
	// A member without an average counts as fastest, so both are measured
	// within a few requests.
	for i := 0; west.Latency() == 0 || france.Latency() == 0; i++ {
		if i == 50 {
			t.Fatalf("after 50 requests the averages are west %v, france %v; want both measured", west.Latency(), france.Latency())
		}
		send()
	}
	if w, fr := west.Latency().Round(time.Microsecond), france.Latency().Round(time.Microsecond); w != fast || fr != slow {
		t.Fatalf("averages: west %v, france %v; want %v and %v, the injected latencies", w, fr, fast, slow)
	}
	if got := favourite(); got != "payg-westeurope" {
		t.Errorf("least_latency's choice is %s; want payg-westeurope, the faster", got)
	}
	if got := share(200); got["payg-westeurope"] < 140 || got["payg-francecentral"] == 0 {
		t.Errorf("200 requests went %v; want at least 70%% to the faster westeurope, and some exploring francecentral", got)
	}

	// The slow one becomes the fast one: west's average climbs as it serves,
	// france's falls once exploration tries it.
	setLatency(slow, fast)
	for i := 0; france.Latency() >= west.Latency(); i++ {
		if i == 500 {
			t.Fatalf("after 500 requests the averages are west %v, france %v; want francecentral found the faster", west.Latency(), france.Latency())
		}
		send()
	}
	if got := favourite(); got != "payg-francecentral" {
		t.Errorf("after the swap least_latency's choice is %s; want payg-francecentral, now the faster", got)
	}
	if got := share(200); got["payg-francecentral"] < 140 {
		t.Errorf("after the swap 200 requests went %v; want at least 70%% to the now faster francecentral", got)
	}
	if w, fr := west.Latency(), france.Latency(); fr >= w || fr > 10*time.Millisecond {
		t.Errorf("averages after the swap: west %v, france %v; want france near %v and below west", w, fr, fast)
	}
}

// TestAllTripped: when every member is tripped the answer is 503 with a
// Retry-After of the first reopening; before that, a backend's final 429
// passes through with its own Retry-After.
func TestAllTripped(t *testing.T) {
	clk := newFakeClock()
	f := newFixture(t, withConfig(resilienceYAML), withClock(clk.Now))
	f.sims["ptu-swedencentral"].SetFaults(simulator.Faults{RetryAfter: 7 * time.Second})
	f.sims["payg-westeurope"].SetFaults(simulator.Faults{RetryAfter: 9 * time.Second})
	f.sims["payg-francecentral"].SetFaults(simulator.Faults{RetryAfter: 12 * time.Second})
	var last *http.Response
	for i := 0; i < 10; i++ {
		status, _, resp := chatVia(t, f, fxAlphaKey, "gpt-4o")
		last = resp
		if status == 503 {
			break
		}
		if status != 429 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("request %d: %d with Retry-After %q; want the backend's 429 and its Retry-After", i, status, resp.Header.Get("Retry-After"))
		}
	}
	if last.StatusCode != 503 {
		t.Fatalf("after 10 requests the status is %d; want 503 once every breaker is open", last.StatusCode)
	}
	if ra, ms := last.Header.Get("Retry-After"), last.Header.Get("Retry-After-Ms"); ra != "7" || ms != "7000" {
		t.Errorf("503 Retry-After = %q, retry-after-ms = %q; want 7 and 7000 (the PTU reopens first)", ra, ms)
	}
	if last.Header.Get("X-Sluice-Backend") != "" {
		t.Errorf("the 503 names backend %q; want none", last.Header.Get("X-Sluice-Backend"))
	}
	clk.Advance(3 * time.Second)
	if status, _, resp := chatVia(t, f, fxAlphaKey, "gpt-4o"); status != 503 || resp.Header.Get("Retry-After") != "4" {
		t.Errorf("3 s later: %d Retry-After %q; want 503 and 4", status, resp.Header.Get("Retry-After"))
	}
}

// TestResidency: a product limited to one region never reaches another, even
// when its own region is down.
func TestResidency(t *testing.T) {
	clk := newFakeClock()
	f := newFixture(t, withConfig(resilienceYAML), withClock(clk.Now))
	for range 3 {
		if status, backend, _ := chatVia(t, f, fxBetaKey, "gpt-4o"); status != 200 || backend != "payg-westeurope" {
			t.Fatalf("team-west got %d from %s; want westeurope", status, backend)
		}
	}
	f.sims["payg-westeurope"].SetFaults(simulator.Faults{ErrorRate: 1, ErrorStatus: 503})
	sawGateway503 := false
	for range 6 {
		status, backend, _ := chatVia(t, f, fxBetaKey, "gpt-4o")
		if backend != "" && backend != "payg-westeurope" {
			t.Fatalf("team-west was served by %s; want never another region", backend)
		}
		if status == 200 {
			t.Fatalf("status 200 while its region is down")
		}
		if status == 503 && backend == "" {
			sawGateway503 = true
		}
	}
	if !sawGateway503 {
		t.Error("no gateway 503 once the region's only backend tripped")
	}
	if n := served(f, "ptu-swedencentral") + served(f, "payg-francecentral"); n != 0 {
		t.Errorf("backends in other regions saw %d requests; want none", n)
	}
}

// TestStreamCutMidway: the client sees the chunks, then an error event; the
// backend is charged a failure (its breaker trips on connection errors).
func TestStreamCutMidway(t *testing.T) {
	clk := newFakeClock()
	f := newFixture(t, withConfig(resilienceYAML), withClock(clk.Now))
	f.sims["ptu-swedencentral"].SetFaults(simulator.Faults{DropAfterChunks: 3})
	req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Api-Key", fxAlphaKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			events = append(events, line)
		}
	}
	if sc.Err() == nil {
		t.Error("the stream ended cleanly; want a broken connection")
	}
	if len(events) != 4 || !strings.Contains(events[3], `"code":"backend_broke_off"`) {
		t.Fatalf("events = %q; want the 3 chunks sent, then an error event", events)
	}
	var snap struct {
		Backends []struct {
			Name   string `json:"name"`
			State  string `json:"state"`
			Errors uint64 `json:"errors"`
		} `json:"backends"`
	}
	_, body := do(t, "GET", f.admin+"/admin/backends", fxAdminKey, "")
	if err := json.Unmarshal([]byte(body), &snap); err != nil {
		t.Fatal(err)
	}
	for _, b := range snap.Backends {
		if b.Name == "ptu-swedencentral" && (b.Errors != 1 || b.State != "open") {
			t.Errorf("ptu after the cut stream: errors %d, state %s; want 1 and open", b.Errors, b.State)
		}
	}
	// The next request goes elsewhere.
	if status, backend, _ := chatVia(t, f, fxAlphaKey, "gpt-4o"); status != 200 || backend == "ptu-swedencentral" {
		t.Errorf("next request: %d from %s; want pay-as-you-go while the PTU's breaker is open", status, backend)
	}
}

// TestStreamRetriedBeforeFirstByte: a backend that drops the connection
// before any event is retried like any request.
func TestStreamRetriedBeforeFirstByte(t *testing.T) {
	f := newFixture(t, withConfig(resilienceYAML))
	f.sims["ptu-swedencentral"].SetFaults(simulator.Faults{Disconnect: true})
	resp, body := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey,
		`{"model":"gpt-4o","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !strings.HasSuffix(body, "data: [DONE]\n\n") || resp.Header.Get("X-Sluice-Backend") == "ptu-swedencentral" {
		t.Errorf("got %d from %s, tail %q; want a whole stream from pay-as-you-go", resp.StatusCode, resp.Header.Get("X-Sluice-Backend"), tail(body))
	}
}

// TestHealthCheck: failing probes open the breaker before any client request
// fails there; passing probes close it.
func TestHealthCheck(t *testing.T) {
	f := newFixture(t, withConfig(resilienceYAML))
	state := func() string {
		_, body := do(t, "GET", f.admin+"/admin/backends", fxAdminKey, "")
		var snap struct {
			Backends []struct{ Name, State string } `json:"backends"`
		}
		_ = json.Unmarshal([]byte(body), &snap)
		for _, b := range snap.Backends {
			if b.Name == "ptu-swedencentral" {
				return b.State
			}
		}
		return ""
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for state() != want {
			if time.Now().After(deadline) {
				t.Fatalf("the PTU's breaker is %s; want %s within 5 s of probes every 250 ms", state(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	f.down["ptu-swedencentral"].Store(true)
	waitFor("open")
	if status, backend, _ := chatVia(t, f, fxAlphaKey, "gpt-4o"); status != 200 || backend == "ptu-swedencentral" {
		t.Errorf("with the PTU down: %d from %s; want pay-as-you-go", status, backend)
	}
	f.down["ptu-swedencentral"].Store(false)
	waitFor("closed")
	if status, backend, _ := chatVia(t, f, fxAlphaKey, "gpt-4o"); status != 200 || backend != "ptu-swedencentral" {
		t.Errorf("with the PTU back: %d from %s; want the PTU", status, backend)
	}
}

// TestSessionAffinity: a session key keeps its backend; the cookie pins too.
func TestSessionAffinity(t *testing.T) {
	f := newFixture(t, withConfig(resilienceYAML))
	send := func(hdr, cookie string) (string, *http.Response) {
		req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o-sticky","max_tokens":2,"messages":[]}`))
		req.Header.Set("Api-Key", fxAlphaKey)
		if hdr != "" {
			req.Header.Set("X-Sluice-Affinity", hdr)
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Sluice-Backend"), resp
	}
	for _, key := range []string{"conversation-1", "conversation-2", "conversation-3"} {
		first, _ := send(key, "")
		for range 5 {
			if got, _ := send(key, ""); got != first {
				t.Errorf("session %s went to %s, then %s; want the same backend", key, first, got)
			}
		}
	}
	backend, resp := send("", "")
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "sluice-affinity" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no sluice-affinity cookie on the response")
	}
	for range 5 {
		if got, _ := send("", cookie.Name+"="+cookie.Value); got != backend {
			t.Errorf("with the cookie of %s the request went to %s", backend, got)
		}
	}
	for _, r := range f.seen.all() {
		if r.header.Get("X-Sluice-Affinity") != "" {
			t.Errorf("the affinity header reached backend %s", r.backend)
		}
	}
}

// TestLowPriorityThrottled: when the pool's backends have less left than the
// floor, low-priority requests wait and are refused, high-priority requests
// keep succeeding.
func TestLowPriorityThrottled(t *testing.T) {
	f := newFixture(t, withConfig(resilienceYAML))
	low := func() *http.Response {
		req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o-throttled","max_tokens":60,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Api-Key", fxAlphaKey)
		req.Header.Set("X-Priority", "low")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	high := func() int {
		resp, _ := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey,
			`{"model":"gpt-4o-throttled","max_tokens":60,"messages":[{"role":"user","content":"hi"}]}`)
		return resp.StatusCode
	}
	if resp := low(); resp.StatusCode != 200 {
		t.Fatalf("low priority with capacity: %d; want 200", resp.StatusCode)
	}
	for i := range 4 { // about 70 tokens each: the backend drops below 99,800 left
		if s := high(); s != 200 {
			t.Fatalf("high-priority request %d: %d; want 200", i, s)
		}
	}
	start := time.Now()
	resp := low()
	if resp.StatusCode != 429 || resp.Header.Get("X-Sluice-Throttle-Reason") != "low-priority" {
		t.Errorf("low priority short of capacity: %d, reason %q; want 429 low-priority", resp.StatusCode, resp.Header.Get("X-Sluice-Throttle-Reason"))
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > 2*time.Second {
		t.Errorf("the low-priority request was refused after %v; want after waiting max_wait (100ms)", d)
	}
	for i := range 3 {
		if s := high(); s != 200 {
			t.Errorf("high priority while low is throttled, request %d: %d; want 200", i, s)
		}
	}
}
