package app

import (
	"encoding/json"
	"fmt"
	"github.com/sluice-gateway/sluice/internal/webui"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sluice-gateway/sluice/internal/redistest"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// fxTinyKey is a subscription whose product allows one request a minute:
// its second request is refused 429 with Retry-After.
const fxTinyKey = "sk-fixture-tiny-0123456789"

// uiConfig is the fixture's config with the web UI on and the tiny product.
var uiConfig = strings.NewReplacer(
	"metrics:\n", "ui: { chat: true, dashboard: true }\nmetrics:\n",
	"  - name: chat-only\n    models: [gpt-4o]\n", "  - name: chat-only\n    models: [gpt-4o]\n"+
		"  - name: tiny\n    models: [gpt-4o]\n    limits:\n      - key: subscription\n        tokens_per_minute: 100000\n        requests_per_minute: 1\n",
	"subscriptions:\n", "subscriptions:\n  - name: team-tiny\n    product: tiny\n    keys: [\""+fxTinyKey+"\"]\n",
).Replace(fxConfigYAML)

// TestBrowserChat drives the chat in Chromium: sign in, a streamed answer
// with "Server on: <region>" and the backend, then a 429's message.
func TestBrowserChat(t *testing.T) {
	f := newFixture(t, withConfig(uiConfig), withLatency(simulator.Latency{Base: 30 * time.Millisecond, PerToken: 15 * time.Millisecond}))
	b := newBrowser(t)
	b.do("open the chat", chromedp.Navigate(f.url+"/chat/"), chromedp.WaitVisible(chromedp.CSS("#key")))
	b.screenshot("chat-signin.png")
	b.do("sign in", chromedp.SendKeys(chromedp.CSS("#key"), fxTinyKey), chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#prompt")))
	if got := eval[string](b, `sessionStorage.getItem("sluice.chat.key")`); got != fxTinyKey {
		t.Errorf("sessionStorage key = %q; want the subscription key", got)
	}
	if got := eval[string](b, `location.href`); strings.Contains(got, fxTinyKey) {
		t.Errorf("the key is in the URL: %s", got)
	}
	b.do("send", chromedp.SendKeys(chromedp.CSS("#prompt"), "Write a short poem about rivers."), chromedp.Click(chromedp.CSS("#send")))
	// Streamed: text shows before the answer's end (its meta line).
	b.waitFor("the first tokens", `(() => { const m = document.querySelector(".msg.assistant .content");
		return m && m.textContent.length > 0 && !document.querySelector(".msg.assistant .meta"); })()`, 20*time.Second)
	b.waitFor("the answer's end", `!!document.querySelector(".msg.assistant .meta .server")`, 30*time.Second)
	if got := b.text(".msg.assistant .meta .server"); got != "Server on: swedencentral" {
		t.Errorf("server = %q; want Server on: swedencentral", got)
	}
	if got := b.text(".msg.assistant .meta .backend"); !strings.Contains(got, "ptu-swedencentral") {
		t.Errorf("backend = %q; want ptu-swedencentral", got)
	}
	if got := b.text(".msg.assistant .meta .tokens"); !strings.Contains(got, "prompt") {
		t.Errorf("tokens = %q; want prompt and completion tokens", got)
	}
	if got := b.text(".msg.assistant .meta .remaining"); !strings.Contains(got, "remaining tokens:") {
		t.Errorf("remaining = %q; want the subscription's remaining tokens", got)
	}
	b.screenshot("chat.png")
	// The second request within the minute is refused. The limit counts
	// in minutes of the real clock: when one turned between the two
	// requests, the second is served and a third, at once, is refused.
	b.do("send again", chromedp.SendKeys(chromedp.CSS("#prompt"), "And another one."), chromedp.Click(chromedp.CSS("#send")))
	b.waitFor("the refusal or, past a minute's turn, an answer", `document.querySelectorAll(".msg.assistant .error").length === 1 ||
		document.querySelectorAll(".msg.assistant .meta .server").length === 2`, 30*time.Second)
	if eval[int](b, `document.querySelectorAll(".msg.assistant .error").length`) == 0 {
		b.do("send a third", chromedp.SendKeys(chromedp.CSS("#prompt"), "And one more."), chromedp.Click(chromedp.CSS("#send")))
		b.waitFor("the refusal", `document.querySelectorAll(".msg.assistant .error").length === 1`, 20*time.Second)
	}
	if got := b.text(".msg.assistant .error"); !strings.Contains(got, "Rate limited (429") || !strings.Contains(got, "Retry after") {
		t.Errorf("refusal = %q; want the 429's message with its Retry-After", got)
	}
	b.screenshot("chat-429.png")
	b.phoneWidth("chat-phone.png")
	b.dark("chat-dark.png")
	b.noConsoleErrors("status of 429")
	if strings.Contains(f.logs.String(), fxTinyKey) {
		t.Error("the subscription key is in the gateway's log")
	}
}

// uiBreakerConfig is uiConfig with a breaker on the PTU that trips on one
// 429 for as long as its Retry-After says.
var uiBreakerConfig = strings.NewReplacer("    deployments: { gpt-4o: gpt-4o-ptu }\n",
	"    deployments: { gpt-4o: gpt-4o-ptu }\n    circuit_breaker: { failures: 1, interval: 1m, status_codes: [\"429\"], trip_duration: 1m, accept_retry_after: true }\n",
	"      - { backend: payg-francecentral, priority: 2, weight: 1 }\n",
	"      - { backend: payg-francecentral, priority: 2, weight: 1 }\n    retry: { attempts: 3, on: [\"429\", \"500-599\"] }\n").Replace(uiConfig)

// chatOnce sends one chat completion as team-alpha and returns the backend
// that answered.
func chatOnce(t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`))
	req.Header.Set("Authorization", "Bearer "+fxAlphaKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("chat: status %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Sluice-Backend")
}

// TestBrowserDashboard drives the dashboard in Chromium: a wrong key is
// refused; signed in, the backends table shows the PTU open within 3 s of
// its 429 with Retry-After and closed again after it; the charts draw; a
// change sent from another origin is refused.
func TestBrowserDashboard(t *testing.T) {
	f := newFixture(t, withConfig(uiBreakerConfig))
	// A page of another origin (another port) that tries a change.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>evil</title><script>
fetch(%q, {method: "POST", mode: "no-cors", credentials: "include"}).then(() => document.title = "sent", () => document.title = "sent");
</script>`, f.admin+"/ui/api/admin/reload")
	}))
	t.Cleanup(evil.Close)
	b := newBrowser(t)
	b.do("open the dashboard", chromedp.Navigate(f.admin+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#key")))
	if got := eval[int](b, `document.querySelectorAll("#backends").length`); got != 0 {
		t.Error("the backends show before sign-in")
	}
	b.do("a wrong key", chromedp.SendKeys(chromedp.CSS("#key"), "sk-wrong-key-0123456789"), chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#signin-error")))
	if got := b.text("#signin-error"); !strings.Contains(got, "refused") {
		t.Errorf("wrong key: %q; want refused", got)
	}
	b.screenshot("dashboard-signin.png")
	eval[bool](b, `(document.querySelector("#key").value = "") === ""`)
	b.do("sign in", chromedp.SendKeys(chromedp.CSS("#key"), fxAdminKey),
		chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#backend-ptu-swedencentral")))
	if got := eval[string](b, `document.cookie`); got != "" {
		t.Errorf("document.cookie = %q; want the session cookie out of JavaScript's reach", got)
	}
	ptuState := `document.querySelector("#backend-ptu-swedencentral .state").textContent`
	if got := eval[string](b, ptuState); got != "closed" {
		t.Fatalf("PTU breaker %q; want closed", got)
	}
	for range 3 {
		chatOnce(t, f.url)
	}
	// The PTU answers 429 with Retry-After: the breaker opens for that long.
	f.sims["ptu-swedencentral"].SetFaults(simulator.Faults{RetryAfter: 3 * time.Second})
	if got := chatOnce(t, f.url); got == "ptu-swedencentral" {
		t.Fatalf("served by %s; want the pool to spill over to PAYG", got)
	}
	b.waitFor("PTU open", ptuState+` === "open"`, 3*time.Second)
	b.screenshot("dashboard.png")
	f.sims["ptu-swedencentral"].SetFaults(simulator.Faults{})
	deadline := time.Now().Add(15 * time.Second)
	for chatOnce(t, f.url) != "ptu-swedencentral" {
		if time.Now().After(deadline) {
			t.Fatal("the PTU serves nothing 15 s after its Retry-After of 3 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.waitFor("PTU closed", ptuState+` === "closed"`, 3*time.Second)
	// The charts draw on their canvases.
	b.waitFor("a drawn chart", `(() => { const c = document.querySelector("#chart-rps canvas"); if (!c) return false;
		const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
		for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true; return false; })()`, 5*time.Second)
	b.phoneWidth("dashboard-phone.png")
	b.dark("dashboard-dark.png")
	// A change from another origin is refused, though the browser sends the cookie.
	reloads := strings.Count(f.logs.String(), "config reloaded")
	b.do("the other origin's page", chromedp.Navigate(evil.URL))
	b.waitFor("the other origin's request", `document.title === "sent"`, 5*time.Second)
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(f.logs.String(), "dashboard request from another origin refused") {
		if time.Now().After(deadline) {
			t.Fatal("the other origin's request did not reach the dashboard")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := strings.Count(f.logs.String(), "config reloaded"); got != reloads {
		t.Error("a page of another origin reloaded the config")
	}
	b.noConsoleErrors("status of 401", "status of 403")
	if strings.Contains(f.logs.String(), fxAdminKey) {
		t.Error("the admin key is in the gateway's log")
	}
}

// TestBrowserUsage checks that the dashboard's usage table and its CSV
// match sluice usage for the same range.
func TestBrowserUsage(t *testing.T) {
	f := newFixture(t, withConfig(uiConfig))
	for range 3 {
		chatOnce(t, f.url)
	}
	// Wait for the ledger to write the three records.
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequest("GET", f.admin+"/admin/usage?group_by=subscription", nil)
		req.Header.Set("Authorization", "Bearer "+fxAdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var rep struct{ Rows []struct{ Requests int64 } }
		_ = json.NewDecoder(resp.Body).Decode(&rep)
		resp.Body.Close()
		if len(rep.Rows) == 1 && rep.Rows[0].Requests == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger holds %+v after 15 s; want 3 requests", rep.Rows)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b := newBrowser(t)
	// The top lists load after the table; editing the group-by field before
	// they render would race their re-render, which resets the field.
	b.do("sign in", chromedp.Navigate(f.admin+"/ui/#usage"), chromedp.SendKeys(chromedp.CSS("#key"), fxAdminKey),
		chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#usage-table")),
		chromedp.WaitVisible(chromedp.CSS("#top-subscriptions")))
	b.do("group by subscription, model, backend", chromedp.Evaluate[chromedp.Void](`document.querySelector("#usage-group").value = ""`),
		chromedp.SendKeys(chromedp.CSS("#usage-group"), "subscription,model,backend"), chromedp.Click(chromedp.CSS("#usage-run")))
	b.waitFor("the table grouped", `document.querySelectorAll("#usage-table thead th").length === 13`, 5*time.Second)
	from, to := eval[string](b, `document.querySelector("#usage-from").value`), eval[string](b, `document.querySelector("#usage-to").value`)
	var cli strings.Builder
	if err := usageCmd(t.Context(), []string{"--store", os.Getenv("FX_USAGE_STORE"), "--from", from, "--to", to,
		"--group-by", "subscription,model,backend", "--format", "csv"}, &cli, io.Discard); err != nil {
		t.Fatalf("sluice usage: %v", err)
	}
	// The table, as CSV lines: the header and each row, without the bar.
	table := eval[string](b, `[...document.querySelectorAll("#usage-table tr")].map(tr =>
		[...tr.children].slice(0, -1).map(c => c.textContent.replace(/\s+/g, "_")).join(",")).join("\n") + "\n"`)
	want := strings.ReplaceAll(cli.String(), "\r\n", "\n")
	if strings.Count(want, "\n") < 2 {
		t.Fatalf("sluice usage printed no rows:\n%s", want)
	}
	if table != want {
		t.Errorf("the dashboard's table:\n%s\nsluice usage --format csv:\n%s", table, want)
	}
	csvText, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`fetch(document.querySelector("#usage-csv").href).then(r => r.text())`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if strings.ReplaceAll(csvText, "\r\n", "\n") != want {
		t.Errorf("the dashboard's CSV:\n%s\nsluice usage --format csv:\n%s", csvText, want)
	}
	b.screenshot("dashboard-usage.png")
	b.noConsoleErrors()
}

// TestBrowserDemo runs the demo as a user does: the banner prints the chat
// and dashboard URLs, the dashboard's Demo tab makes the PTU answer 429 with
// Retry-After, its breaker shows open, and the chat is served elsewhere.
func TestBrowserDemo(t *testing.T) {
	if len(demoFaultSettings) != len(webui.Faults) {
		t.Fatalf("demo faults %v; the panel offers %v", demoFaultSettings, webui.Faults)
	}
	for _, name := range webui.Faults {
		if _, ok := demoFaultSettings[name]; !ok {
			t.Errorf("the panel's fault %q has no simulator setting", name)
		}
	}
	d := startDemo(t, "demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--load", "0")
	chatURL := bannerField(t, d.banner, `(?m)^\s+chat\s+(\S+)`)
	dashURL := bannerField(t, d.banner, `(?m)^\s+dashboard\s+(\S+)`)
	adminKey := bannerField(t, d.banner, `admin key: ([^)\s]+)`)
	userKey := bannerField(t, d.banner, `Your key: (\S+)`)
	b := newBrowser(t)
	b.do("sign in to the dashboard", chromedp.Navigate(dashURL), chromedp.SendKeys(chromedp.CSS("#key"), adminKey),
		chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#backend-ptu-swedencentral")),
		chromedp.Click(chromedp.CSS("#tab-demo")), chromedp.WaitVisible(chromedp.CSS("#fault-ptu-swedencentral")))
	b.do("the PTU answers 429", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector("#fault-ptu-swedencentral");
		s.value = "rate_limited"; s.dispatchEvent(new Event("change", {bubbles: true})); })()`))
	b.waitFor("the fault set", `document.querySelector("#fault-ptu-swedencentral").value === "rate_limited"`, 5*time.Second)
	b.screenshot("dashboard-demo.png")
	b.do("the chat", chromedp.Navigate(chatURL), chromedp.SendKeys(chromedp.CSS("#key"), userKey),
		chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#prompt")),
		chromedp.SendKeys(chromedp.CSS("#prompt"), "Which region answers me?"), chromedp.Click(chromedp.CSS("#send")))
	b.waitFor("the answer", `!!document.querySelector(".msg.assistant .meta .server")`, 30*time.Second)
	if got := b.text(".msg.assistant .meta .server"); got == "Server on: swedencentral" {
		t.Errorf("served by the PTU, which answers 429: %q", got)
	}
	b.screenshot("chat-demo.png")
	b.do("the dashboard again", chromedp.Navigate(dashURL+"#live"), chromedp.WaitVisible(chromedp.CSS("#backend-ptu-swedencentral")))
	b.waitFor("PTU open", `document.querySelector("#backend-ptu-swedencentral .state").textContent === "open"`, 5*time.Second)
	b.waitFor("a few snapshots", `document.querySelectorAll("#chart-rps canvas").length > 0`, 5*time.Second)
	b.screenshot("dashboard-demo-live.png")
	b.noConsoleErrors()
}

// TestBrowserSubscriptions creates a subscription from the dashboard, uses
// its key, suspends it from the dashboard, and reloads the config there.
func TestBrowserSubscriptions(t *testing.T) {
	// The tiny product with a daily token quota too: its bar keeps the
	// request's tokens whichever minute the page reads it in.
	f := newFixture(t, withConfig(strings.Replace(uiConfig, "        requests_per_minute: 1\n",
		"        requests_per_minute: 1\n        token_quota: 1000000\n        token_quota_period: daily\n", 1)))
	a := f.post(t, fxTinyKey, `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"Hello"}]}`)
	var answer struct {
		Usage struct {
			TotalTokens int64 `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(a.body, &answer); a.status != 200 || err != nil || answer.Usage.TotalTokens == 0 {
		t.Fatalf("the tiny subscription's request: %d %s", a.status, a.body)
	}
	b := newBrowser(t)
	b.do("sign in", chromedp.Navigate(f.admin+"/ui/#subscriptions"), chromedp.SendKeys(chromedp.CSS("#key"), fxAdminKey),
		chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#subscriptions")),
		chromedp.WaitVisible(chromedp.CSS("#limits")))
	// The quota's bar shows the request's tokens, as a meter with its value
	// in words and as text beside it.
	quota := `document.querySelector('#limits tr[data-sub="team-tiny"][data-kind="token_quota"] [role=meter]')`
	b.waitFor("the quota's bar", quota+` !== null`, 5*time.Second)
	if got := eval[string](b, quota+`.getAttribute("aria-valuenow")`); got != strconv.FormatInt(answer.Usage.TotalTokens, 10) {
		t.Errorf("quota meter aria-valuenow = %s; want %d (the request's total tokens)", got, answer.Usage.TotalTokens)
	}
	if got := eval[string](b, quota+`.getAttribute("aria-valuetext")`); !strings.HasPrefix(got, strconv.FormatInt(answer.Usage.TotalTokens, 10)+" / ") {
		t.Errorf("quota meter aria-valuetext = %q; want it to start with %d / ", got, answer.Usage.TotalTokens)
	}
	if got := eval[string](b, quota+`.getAttribute("aria-label")`); !strings.Contains(got, "team-tiny") || !strings.Contains(got, "token quota") {
		t.Errorf("quota meter aria-label = %q; want the subscription and the limit", got)
	}
	if got := eval[string](b, quota+`.parentElement.querySelector(".meter-text").textContent`); !strings.Contains(got, "1,000,000 tokens") {
		t.Errorf("the text beside the bar = %q; want used / 1,000,000 tokens", got)
	}
	if got := eval[float64](b, quota+`.firstElementChild.getBoundingClientRect().width`); got <= 0 {
		t.Errorf("the quota's bar is %v px wide; want some width for the tokens used", got)
	}
	// The requests-per-minute bar counts the request, unless the minute
	// turned meanwhile.
	if got := eval[string](b, `document.querySelector('#limits tr[data-sub="team-tiny"][data-kind="requests_per_minute"] [role=meter]').getAttribute("aria-valuemax")`); got != "1" {
		t.Errorf("requests per minute meter's max = %s; want 1", got)
	}
	b.dark("dashboard-limits-dark.png")
	b.do("back to the top", chromedp.WaitVisible(chromedp.CSS("#subscriptions")),
		chromedp.SendKeys(chromedp.CSS("#sub-name"), "team-ui"), chromedp.SendKeys(chromedp.CSS("#sub-product"), "standard"),
		chromedp.Click(chromedp.CSS("#sub-create")), chromedp.WaitVisible(chromedp.CSS("#new-keys")))
	key := eval[string](b, `document.querySelector("#new-keys code").textContent`)
	call := func() int {
		req, _ := http.NewRequest("GET", f.url+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := call(); got != 200 {
		t.Fatalf("the new key: status %d; want 200", got)
	}
	b.screenshot("dashboard-subscriptions.png")
	b.do("suspend", chromedp.Click(chromedp.CSS("#sub-team-ui button:nth-of-type(2)")))
	b.waitFor("suspended", `document.querySelector("#sub-team-ui td:nth-child(3)").textContent === "suspended"`, 5*time.Second)
	if got := call(); got != 401 && got != 403 {
		t.Errorf("the suspended key: status %d; want it refused", got)
	}
	b.do("config and reload", chromedp.Click(chromedp.CSS("#tab-config")), chromedp.WaitVisible(chromedp.CSS("#config")),
		chromedp.Click(chromedp.CSS("#reload")), chromedp.WaitVisible(chromedp.CSS("#reload-result")))
	if cfg := b.text("#config"); strings.Contains(cfg, fxAdminKey) || strings.Contains(cfg, fxPTUKey) || !strings.Contains(cfg, "[REDACTED]") {
		t.Error("the config shown is not redacted")
	}
	b.screenshot("dashboard-config.png")
	b.noConsoleErrors()
}

// TestBrowserCachePurge purges the response cache from the dashboard: the
// first click asks, the second purges, and the next request misses.
func TestBrowserCachePurge(t *testing.T) {
	f := newFixture(t, withConfig(strings.Replace(cacheConfig, "metrics:\n", "ui: { dashboard: true }\nmetrics:\n", 1)))
	const body = `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"Tell me about rivers."}]}`
	f.post(t, fxAlphaKey, body)
	if got := f.post(t, fxAlphaKey, body).header.Get("X-Sluice-Cache"); got != "hit-exact" {
		t.Fatalf("second request: x-sluice-cache = %q; want hit-exact", got)
	}
	b := newBrowser(t)
	b.do("sign in", chromedp.Navigate(f.admin+"/ui/#config"), chromedp.SendKeys(chromedp.CSS("#key"), fxAdminKey),
		chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#purge")), chromedp.WaitVisible(chromedp.CSS("#config")))
	b.do("ask, then cancel", chromedp.Click(chromedp.CSS("#purge")), chromedp.WaitVisible(chromedp.CSS("#purge-confirm")),
		chromedp.Click(chromedp.CSS("#purge-no")))
	if got := f.post(t, fxAlphaKey, body).header.Get("X-Sluice-Cache"); got != "hit-exact" {
		t.Errorf("after a cancelled purge: x-sluice-cache = %q; want hit-exact", got)
	}
	b.do("ask", chromedp.Click(chromedp.CSS("#purge")), chromedp.WaitVisible(chromedp.CSS("#purge-confirm")))
	b.waitFor("the focus on the confirming button", `document.activeElement.id === "purge-yes"`, 5*time.Second)
	b.screenshot("dashboard-cache-purge.png")
	stored, _ := f.gw.cache.Store().Stats()
	if stored < 1 {
		t.Fatalf("%d entries in the cache before the purge; want the answer", stored)
	}
	b.do("purge", chromedp.Click(chromedp.CSS("#purge-yes")), chromedp.WaitVisible(chromedp.CSS("#purge-result")))
	want := fmt.Sprintf("Purged %d entries.", stored)
	if stored == 1 {
		want = "Purged 1 entry."
	}
	if got := b.text("#purge-result"); got != want {
		t.Errorf("purge result = %q; want %q (every entry stored)", got, want)
	}
	if got := f.post(t, fxAlphaKey, body).header.Get("X-Sluice-Cache"); got != "miss" {
		t.Errorf("after the purge: x-sluice-cache = %q; want miss", got)
	}
	b.noConsoleErrors()
}

// TestBrowserLimitsAcrossInstances: two gateways share one Redis; signed in
// through one, the browser is signed in on the other (the sessions live in
// Redis); the tokens of a request one served show on the other's dashboard;
// with Redis gone the panel says the limits are unavailable instead of
// guessing, and a reload shows the sign-in form saying why.
func TestBrowserLimitsAcrossInstances(t *testing.T) {
	rs := redistest.Start(t)
	useStore(t, rs.URL(), "fail_open")
	clk := newFakeClock() // one window for the whole test
	tmpl := strings.Replace(limitsYAML, "state:\n", "ui: { dashboard: true }\nstate:\n", 1)
	a := newFixture(t, withConfig(tmpl), withClock(clk.Now))
	other := newFixture(t, withConfig(tmpl), withClock(clk.Now))
	ans := a.post(t, "sk-fixture-quota-0123456789", `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`)
	var answer struct {
		Usage struct {
			TotalTokens int64 `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(ans.body, &answer); ans.status != 200 || err != nil || answer.Usage.TotalTokens == 0 {
		t.Fatalf("team-quota's request on the first instance: %d %s", ans.status, ans.body)
	}
	b := newBrowser(t)
	b.do("sign in to the first instance", chromedp.Navigate(a.admin+"/ui/#subscriptions"), chromedp.SendKeys(chromedp.CSS("#key"), fxAdminKey),
		chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#limits")))
	// Cookies are per host, not per port: the other instance gets the
	// cookie, as it would behind a load balancer, and knows its session.
	b.do("open the other instance's dashboard", chromedp.Navigate(other.admin+"/ui/#subscriptions"), chromedp.WaitVisible(chromedp.CSS("#limits")))
	quota := `document.querySelector('#limits tr[data-sub="team-quota"][data-kind="token_quota"] [role=meter]')`
	b.waitFor("team-quota's bar", quota+` !== null`, 5*time.Second)
	if got := eval[string](b, quota+`.getAttribute("aria-valuenow")`); got != strconv.FormatInt(answer.Usage.TotalTokens, 10) {
		t.Errorf("the other instance's quota meter = %s; want %d, the tokens the first instance served", got, answer.Usage.TotalTokens)
	}
	budget := `document.querySelector('#limits tr[data-sub="team-budget"][data-kind="budget"] .meter-text').textContent`
	if got := eval[string](b, budget); !strings.HasSuffix(got, " / 0.002 USD") {
		t.Errorf("team-budget's budget = %q; want used / 0.002 USD", got)
	}
	rs.Stop()
	// The panel's next refresh (every 5 s) fails: its session cannot be
	// checked, let alone the counters read.
	b.do("wait for the panel's refresh with Redis gone", chromedp.WaitVisible(chromedp.CSS("#limits-error")))
	if got := b.text("#limits-error"); !strings.Contains(got, "Limits unavailable") {
		t.Errorf("with Redis gone the panel says %q; want Limits unavailable", got)
	}
	if got := eval[bool](b, `document.querySelector("#limits") === null`); !got {
		t.Error("with Redis gone the panel still shows bars; want none rather than stale numbers")
	}
	b.do("reload with Redis gone", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#signin-error")))
	if got := b.text("#signin-error"); !strings.Contains(got, "session store (Redis) is not answering") {
		t.Errorf("with Redis gone the sign-in form says %q; want that the session store is not answering", got)
	}
	b.noConsoleErrors("status of 503")
}
