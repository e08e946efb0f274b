package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/limit"
	"github.com/sluice-gateway/sluice/internal/redistest"
	"github.com/sluice-gateway/sluice/internal/route"
)

const limitsYAML = `
admin: { listen: "127.0.0.1:0", api_key: admin-key-0123456789 }
usage:
  prices:
    currency: EUR
    models:
      m: { input: 1, output: 2 }
backends:
  - { name: a, url: "http://a.example", auth: { api_key: ka }, deployments: { m: m, n: n } }
pools:
  - { name: p, members: [{ backend: a }] }
models: { m: p, n: p }
products:
  - name: gold
    models: [m, n]
    limits:
      - { key: subscription, tokens_per_minute: 1000, requests_per_minute: 10, token_quota: 50000, token_quota_period: daily }
      - { key: subscription_model, tokens_per_minute: 600 }
    budget: { amount: 5, period: monthly }
  - name: free
    models: [m]
subscriptions:
  - { name: team-a, product: gold, keys: [key-a-0123456789] }
  - { name: team-b, product: free, keys: [key-b-0123456789] }
`

// TestLimitsEndpoint checks GET /admin/limits over HTTP, on a Redis store:
// what requests counted, per limit, with the window's reset; one
// subscription by name; the admin key required; and 503 once Redis is gone.
func TestLimitsEndpoint(t *testing.T) {
	srv := redistest.Start(t)
	store, err := limit.NewRedis(srv.URL() + "?dial_timeout=1s&read_timeout=1s&write_timeout=1s&pool_timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	lim := limit.New(limit.Options{Store: store, Timeout: 250 * time.Millisecond})
	t.Cleanup(func() { lim.Close(context.Background()) })
	cfg, err := config.Parse("limits.yaml", []byte(limitsYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := route.Compile(cfg, route.Env{Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 12, 0, 30, 0, time.UTC)
	// A request of team-a on model m: 120 tokens, and 0.25 EUR spent.
	gold, _ := tb.Subscription("key-a-0123456789")
	subject := limit.Subject{Subscription: "team-a", Product: "gold", Model: "m"}
	d := lim.Admit(t.Context(), limit.Request{Rules: gold.Product.Limits, Subject: subject, Tokens: 120, Now: now})
	b := lim.Admit(t.Context(), limit.Request{Rules: []*limit.Rule{gold.Product.Budget}, Subject: subject, Now: now})
	if !d.Allowed || !b.Allowed {
		t.Fatalf("admission refused: %+v %+v", d, b)
	}
	if _, err := lim.Settle(t.Context(), b.Reservation, 250_000, now); err != nil {
		t.Fatal(err)
	}

	api := httptest.NewServer(New(Options{Table: func() *route.Table { return tb }, Now: func() time.Time { return now }}))
	defer api.Close()
	get := func(path, key string) (int, []subscriptionLimits) {
		t.Helper()
		req, _ := http.NewRequest("GET", api.URL+path, nil)
		if key != "" {
			req.Header.Set("api-key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Subscriptions []subscriptionLimits `json:"subscriptions"`
		}
		if resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, body.Subscriptions
	}

	minute := [2]time.Time{time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC), time.Date(2026, 12, 2, 12, 1, 0, 0, time.UTC)}
	day := [2]time.Time{time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)}
	month := [2]time.Time{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := func(rule, scope, kind, period, model, unit string, used, lim float64, w [2]time.Time) limitState {
		return limitState{rule, scope, kind, period, model, unit, used, lim, w[0], w[1]}
	}
	wantA := subscriptionLimits{Name: "team-a", Product: "gold", Source: "config", State: "active", Limits: []limitState{
		st("gold/0", "subscription", "tokens_per_minute", "minute", "", "tokens", 120, 1000, minute),
		st("gold/0", "subscription", "requests_per_minute", "minute", "", "requests", 1, 10, minute),
		st("gold/0", "subscription", "token_quota", "daily", "", "tokens", 120, 50000, day),
		st("gold/budget", "subscription", "budget", "monthly", "", "EUR", 0.25, 5, month),
		st("gold/1", "subscription-model", "tokens_per_minute", "minute", "m", "tokens", 120, 600, minute),
		st("gold/1", "subscription-model", "tokens_per_minute", "minute", "n", "tokens", 0, 600, minute),
	}}
	wantB := subscriptionLimits{Name: "team-b", Product: "free", Source: "config", State: "active", Limits: []limitState{}}

	code, got := get("/admin/limits", "admin-key-0123456789")
	if code != 200 {
		t.Fatalf("GET /admin/limits: %d; want 200", code)
	}
	if diff := cmp.Diff([]subscriptionLimits{wantA, wantB}, got); diff != "" {
		t.Errorf("GET /admin/limits (-want +got):\n%s", diff)
	}
	code, got = get("/admin/limits?subscription=team-b", "admin-key-0123456789")
	if diff := cmp.Diff([]subscriptionLimits{wantB}, got); code != 200 || diff != "" {
		t.Errorf("GET /admin/limits?subscription=team-b: %d (-want +got):\n%s", code, diff)
	}
	if code, _ := get("/admin/limits?subscription=nobody", "admin-key-0123456789"); code != 404 {
		t.Errorf("an unknown subscription: %d; want 404", code)
	}
	if code, _ := get("/admin/limits", "wrong-key-0123456789"); code != 401 {
		t.Errorf("a wrong admin key: %d; want 401", code)
	}

	srv.Stop()
	start := time.Now()
	if code, _ := get("/admin/limits", "admin-key-0123456789"); code != 503 {
		t.Errorf("with Redis gone: %d; want 503", code)
	}
	if took := time.Since(start); took > 250*time.Millisecond+time.Second {
		t.Errorf("with Redis gone the answer took %v; want it bounded by the limiter's timeout", took)
	}
}
