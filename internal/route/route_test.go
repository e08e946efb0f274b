package route

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/balance"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/limit"
)

func compile(t *testing.T, reg *Registry, urlA, urlB string) *Table {
	t.Helper()
	yaml := fmt.Sprintf(`
backends:
  - { name: a, url: %q, auth: { api_key: ka }, deployments: { m: m } }
  - { name: b, url: %q, auth: { api_key: kb }, deployments: { m: m } }
pools:
  - { name: p, members: [{ backend: b, priority: 2 }, { backend: a, priority: 1 }] }
models: { m: p }
products: [{ name: prod, models: [m] }]
subscriptions: [{ name: s, product: prod, keys: [client-key] }]
`, urlA, urlB)
	cfg, err := config.Parse("t.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Compile(cfg, Env{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestCompile(t *testing.T) {
	tb := compile(t, nil, "http://a.example", "http://b.example")
	s, ok := tb.Subscription("client-key")
	if !ok || s.Name != "s" || !s.Product.Allows("m") || s.Product.Allows("x") {
		t.Fatalf("Subscription(client-key) = %+v, %v; want s of product prod allowing m only", s, ok)
	}
	if _, ok := tb.Subscription("other"); ok {
		t.Error("an unknown key found a subscription")
	}
	m, ok := tb.Model("m")
	if !ok {
		t.Fatal("model m not found")
	}
	now := time.Now()
	b, _, ok := m.Pool.Pick(now, nil, balance.Affinity{})
	if !ok || b.Name != "a" {
		t.Errorf("Pick = %v; want a, the member of priority 1", b)
	}
	b, _, ok = m.Pool.Pick(now, &balance.Filter{Tried: []*backend.Backend{tb.Backends["a"]}}, balance.Affinity{})
	if !ok || b.Name != "b" {
		t.Errorf("Pick after a was tried = %v; want b", b)
	}
	if m.Pool.Retry.Attempts != 1 || m.Pool.AffinityCookie != "" {
		t.Errorf("retry %+v, affinity %q; want the defaults: one attempt, no affinity", m.Pool.Retry, m.Pool.AffinityCookie)
	}
}

// TestCompileKeepsState: across a reload a backend keeps its live state when
// its name and URL stay, and gets a new one when its URL changes; the one it
// no longer uses is closed when the new table goes into force.
func TestCompileKeepsState(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	first := compile(t, reg, "http://a.example", "http://b.example")
	reg.Commit(first)
	second := compile(t, reg, "http://a.example", "http://b2.example")
	if second.Backends["a"].State != first.Backends["a"].State {
		t.Error("backend a lost its state across a reload")
	}
	if second.Backends["b"].State == first.Backends["b"].State {
		t.Error("backend b kept its state although its URL changed")
	}
	reg.Commit(second)
	states := func() (int, bool) {
		reg.mu.Lock()
		defer reg.mu.Unlock()
		return len(reg.states), reg.states[stateKey{"a", "http://a.example"}] != nil
	}
	// The old table held no request: its parts go at once, in the background.
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := states(); n != 2; n, _ = states() {
		if time.Now().After(deadline) {
			t.Fatalf("the registry holds %d backend states after the swap; want the 2 the table in force uses", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	third := compile(t, reg, "http://a3.example", "http://b2.example")
	third.Close() // refused after compiling: its new state for a goes
	if n, a := states(); n != 2 || !a {
		t.Errorf("after a refused table was closed the registry holds %d states (a's kept: %v); want the table in force's 2", n, a)
	}
	if err := reg.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRegistryKeepsLimiter: a reload that keeps state.* keeps the limiter
// (its counts and its queue); one that changes only its policy or timeout
// gets a new limiter on the same store, whose counts carry on; one that
// changes the store opens another, and the old one is closed only once the
// requests still running on the table it served are done.
func TestRegistryKeepsLimiter(t *testing.T) {
	var opened []string
	reg := NewRegistry(RegistryOptions{OpenStore: func(st config.State) (limit.Store, error) {
		opened = append(opened, st.Store)
		return limit.NewMemory(), nil
	}})
	first := compile(t, reg, "http://a.example", "http://b.example")
	reg.Commit(first)
	rule := &limit.Rule{ID: "q", TokenQuota: 1000, QuotaPeriod: limit.Month}
	admit := func(tb *Table, tokens int64) limit.Decision {
		return tb.Limiter.Admit(context.Background(), limit.Request{Rules: []*limit.Rule{rule},
			Subject: limit.Subject{Subscription: "s"}, Tokens: tokens, Now: time.Now()})
	}
	if d := admit(first, 900); !d.Allowed {
		t.Fatalf("first 900 tokens refused: %+v", d)
	}

	second := compile(t, reg, "http://a.example", "http://b.example")
	if second.Limiter != first.Limiter {
		t.Errorf("a reload with the same state.* made a new limiter")
	}
	reg.Commit(second)

	cfg := *second.Config
	cfg.State.Timeout = config.Duration(time.Second)
	third, err := Compile(&cfg, Env{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if third.Limiter == second.Limiter || len(opened) != 1 {
		t.Errorf("a reload changing state.timeout: new limiter %v, stores opened %v; want a new limiter on the same store",
			third.Limiter != second.Limiter, opened)
	}
	if !second.Hold() {
		t.Fatal("the table in force refused a request")
	}
	reg.Commit(third)
	if d := admit(third, 900); d.Allowed {
		t.Errorf("900 more tokens admitted after a reload changing state.timeout: the quota's count was lost")
	}

	// A new store; the old one stays open while second has a request.
	cfg2 := cfg
	cfg2.State.Store = "redis://elsewhere"
	fourth, err := Compile(&cfg2, Env{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	reg.Commit(fourth)
	if len(opened) != 2 {
		t.Errorf("stores opened %v; want the new one", opened)
	}
	if second.Hold() {
		t.Errorf("a replaced table took a new request")
	}
	second.Done()
	deadline := time.Now().Add(5 * time.Second)
	for {
		reg.mu.Lock()
		n, stores := len(reg.limiters), len(reg.stores)
		reg.mu.Unlock()
		if n == 1 && stores == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the old table's requests ended: %d limiters, %d stores; want the one in force of each", n, stores)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := reg.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCompileLimits(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`
backends: [{ name: a, url: "http://a.example", auth: { api_key: ka }, deployments: { m: m } }]
pools: [{ name: p, members: [{ backend: a }] }]
models: { m: p }
products:
  - name: prod
    models: [m]
    headers: { remaining_tokens: x-left }
    limits:
      - { key: global, tokens_per_minute: 1000 }
      - { key: subscription, tokens_per_minute: 100, adaptive_share: 0.1, estimate_prompt_tokens: true, default_max_tokens: 77 }
subscriptions: [{ name: s, product: prod, keys: [client-key] }]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Compile(cfg, Env{})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := tb.Subscription("client-key")
	p := s.Product
	if len(p.Limits) != 2 || p.Limits[0].ID != "global" || p.Limits[1].ID != "prod/1" {
		t.Fatalf("rules %+v; want the global one shared as \"global\", the other as prod/1", p.Limits)
	}
	if p.Limits[1].AdaptiveOf != p.Limits[0] || p.Limits[1].AdaptiveShare != 0.1 {
		t.Errorf("adaptive rule shares %v at %v; want the global rule at 0.1", p.Limits[1].AdaptiveOf, p.Limits[1].AdaptiveShare)
	}
	if !p.Estimate || p.DefaultMaxTokens != 77 || p.Headers.RemainingTokens != "X-Left" || p.Headers.TokensConsumed != "X-Sluice-Tokens-Consumed" {
		t.Errorf("product %+v; want estimation with default_max_tokens 77 and canonical header names", p)
	}
}
