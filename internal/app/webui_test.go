package app

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
	// The second request within the minute is refused.
	b.do("send again", chromedp.SendKeys(chromedp.CSS("#prompt"), "And another one."), chromedp.Click(chromedp.CSS("#send")))
	b.waitFor("the refusal", `document.querySelectorAll(".msg.assistant .error").length === 1`, 20*time.Second)
	if got := b.text(".msg.assistant .error"); !strings.Contains(got, "Rate limited (429") || !strings.Contains(got, "Retry after") {
		t.Errorf("refusal = %q; want the 429's message with its Retry-After", got)
	}
	b.screenshot("chat-429.png")
	b.noConsoleErrors("status of 429")
	if strings.Contains(f.logs.String(), fxTinyKey) {
		t.Error("the subscription key is in the gateway's log")
	}
}
