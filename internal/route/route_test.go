package route

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/balance"
	"github.com/sluice-gateway/sluice/internal/config"
)

func compile(t *testing.T, prev *Table, urlA, urlB string) *Table {
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
	tb, err := Compile(cfg, prev, Env{})
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
// its name and URL stay, and gets a new one when its URL changes.
func TestCompileKeepsState(t *testing.T) {
	first := compile(t, nil, "http://a.example", "http://b.example")
	second := compile(t, first, "http://a.example", "http://b2.example")
	if second.Backends["a"].State != first.Backends["a"].State {
		t.Error("backend a lost its state across a reload")
	}
	if second.Backends["b"].State == first.Backends["b"].State {
		t.Error("backend b kept its state although its URL changed")
	}
	Release(first, second) // closes b's old idle connections; must not touch a's
}
