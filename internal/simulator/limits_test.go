package simulator

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/tokens"
)

// fakeClock is a settable clock for rate limit tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestTokensPerMinute(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	_, srv := serve(t, Options{APIKey: testKey, Now: clock.Now, Deployments: map[string]Deployment{
		"ptu": {Model: "gpt-4o", TokensPerMinute: 1000, RequestsPerMinute: 100},
	}})
	body := `{"messages":[{"role":"user","content":"hello world"}],"max_tokens":300}`
	prompt, _ := tokens.CountChatJSON("gpt-4o", []byte(body))
	cost := prompt + 300 // what each request is charged: 309
	p := "/openai/deployments/ptu/chat/completions?api-version=2024-10-21"

	for i := 1; i <= 3; i++ {
		resp, b := post(t, srv, p, body)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d; want 200\n%s", i, resp.StatusCode, b)
		}
		if got, want := resp.Header.Get("x-ratelimit-remaining-tokens"), strconv.Itoa(1000-i*cost); got != want {
			t.Errorf("request %d: x-ratelimit-remaining-tokens = %s; want %s", i, got, want)
		}
		if got, want := resp.Header.Get("x-ratelimit-remaining-requests"), strconv.Itoa(100-i); got != want {
			t.Errorf("request %d: x-ratelimit-remaining-requests = %s; want %s", i, got, want)
		}
		clock.Advance(10 * time.Second)
	}
	// 927 tokens in the window: a fourth request does not fit until the first
	// leaves it, 60 s after it was admitted, which is 30 s from now.
	clock.Advance(-500 * time.Millisecond) // now = first + 29.5 s
	resp, b := post(t, srv, p, body)
	if resp.StatusCode != 429 {
		t.Fatalf("status = %d; want 429\n%s", resp.StatusCode, b)
	}
	for h, want := range map[string]string{
		"Retry-After":              "31",
		"retry-after-ms":           "30500",
		"x-ratelimit-reset-tokens": "31",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q; want %q", h, got, want)
		}
	}
	m := decode(t, b)
	if str(m, "error", "code") != "429" || str(m, "error", "message") == "" {
		t.Errorf("429 body = %s", b)
	}
	if want := "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit"; str(m, "error", "message")[:len(want)] != want {
		t.Errorf("429 message = %q; want it to start %q", str(m, "error", "message"), want)
	}
	clock.Advance(30500 * time.Millisecond) // the first request leaves the window
	if resp, b := post(t, srv, p, body); resp.StatusCode != 200 {
		t.Fatalf("after the wait: status %d; want 200\n%s", resp.StatusCode, b)
	}
}

func TestRequestsPerMinute(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	_, srv := serve(t, Options{APIKey: testKey, Now: clock.Now, Deployments: map[string]Deployment{
		"emb": {Model: "text-embedding-3-small", RequestsPerMinute: 2},
	}})
	for i := range 2 {
		if resp, b := post(t, srv, "/v1/embeddings", `{"model":"emb","input":"hi"}`); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
		clock.Advance(time.Second)
	}
	resp, b := post(t, srv, "/v1/embeddings", `{"model":"emb","input":"hi"}`)
	if resp.StatusCode != 429 || resp.Header.Get("x-ratelimit-reset-requests") != "58" || resp.Header.Get("Retry-After") != "58" {
		t.Fatalf("third request: %d, reset-requests %q, Retry-After %q; want 429, 58, 58\n%s", resp.StatusCode,
			resp.Header.Get("x-ratelimit-reset-requests"), resp.Header.Get("Retry-After"), b)
	}
	if got := str(decode(t, b), "error", "code"); got != "rate_limit_exceeded" {
		t.Errorf("OpenAI-path 429 code = %q; want rate_limit_exceeded", got)
	}
	if resp.Header.Get("x-ratelimit-remaining-requests") != "" {
		t.Errorf("a 429 should not carry x-ratelimit-remaining-requests")
	}
}

func TestWindow(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name     string
		tpm, rpm int
		requests []struct {
			at     float64
			tokens int
		}
		want []string // "ok tokensLeft requestsLeft" or "429 wait tokens|requests"
	}{
		{
			name: "tokens slide out one by one",
			tpm:  100,
			requests: []struct {
				at     float64
				tokens int
			}{{0, 40}, {10, 40}, {20, 40}, {60, 40}, {60.5, 10}, {70, 40}},
			want: []string{"ok 60 0", "ok 20 0", "429 40s tokens", "ok 20 0", "ok 10 0", "ok 10 0"},
		},
		{
			name: "a request larger than the limit never fits",
			tpm:  100,
			requests: []struct {
				at     float64
				tokens int
			}{{0, 101}},
			want: []string{"429 1m0s tokens"},
		},
		{
			name: "requests",
			rpm:  2,
			requests: []struct {
				at     float64
				tokens int
			}{{0, 1}, {1, 1}, {2, 1}, {60, 1}, {60.5, 1}},
			want: []string{"ok 0 1", "ok 0 0", "429 58s requests", "ok 0 0", "429 500ms requests"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &window{tpm: tt.tpm, rpm: tt.rpm}
			for i, r := range tt.requests {
				v := w.admit(at(r.at), r.tokens)
				got := fmt.Sprintf("ok %d %d", max(v.tokensLeft, 0), max(v.requestsLeft, 0))
				if !v.ok {
					got = fmt.Sprintf("429 %v %s", v.wait, map[bool]string{true: "tokens", false: "requests"}[v.tokensExceeded])
				}
				if got != tt.want[i] {
					t.Errorf("request %d at %vs: got %q; want %q", i, r.at, got, tt.want[i])
				}
			}
		})
	}
}
