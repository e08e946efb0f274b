package route

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/internal/auth"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// RuntimeSubscription is a subscription created at run time through the
// admin API and kept in the usage store, not in the config file. Its keys
// are held as digests only.
type RuntimeSubscription struct {
	Name       string
	Product    string
	Principals []string
	Digests    []auth.Digest
	Suspended  bool
	// ExpiresAt, when not zero, is when its keys stop working.
	ExpiresAt time.Time
}

// runtimeSet is the runtime subscriptions in force, replaced whole.
type runtimeSet struct {
	subs []RuntimeSubscription
}

// SetRuntime puts the runtime subscriptions in force, for every table of the
// registry, at once: the next lookup of any table sees them.
func (r *Registry) SetRuntime(subs []RuntimeSubscription) {
	r.runtime.Store(&runtimeSet{subs: slices.Clone(subs)})
}

// runtimeView is a table's compiled view of a runtimeSet: its subscriptions
// resolved against the table's products.
type runtimeView struct {
	src        *runtimeSet
	keys       *auth.Index[*Subscription]
	principals map[string]*Subscription
	subs       []*Subscription // sorted by name
}

// view returns the table's view of the registry's runtime subscriptions,
// compiling it when they changed.
func (t *Table) view() *runtimeView {
	src := t.registry.runtime.Load()
	if src == nil {
		return nil
	}
	if v := t.runtime.Load(); v != nil && v.src == src {
		return v
	}
	v := &runtimeView{src: src, keys: auth.NewIndex[*Subscription](), principals: map[string]*Subscription{}}
	for _, rs := range src.subs {
		p, ok := t.products[rs.Product]
		if !ok {
			continue // its product left the config: it serves nothing
		}
		s := &Subscription{Name: rs.Name, Product: p, Runtime: true, Suspended: rs.Suspended, ExpiresAt: rs.ExpiresAt,
			Principals: rs.Principals}
		v.subs = append(v.subs, s)
		for _, d := range rs.Digests {
			_ = v.keys.Add(d, s) // the store keeps digests unique
		}
		for _, pr := range rs.Principals {
			if _, dup := t.principals[pr]; !dup {
				v.principals[pr] = s
			}
		}
	}
	slices.SortFunc(v.subs, func(a, b *Subscription) int { return strings.Compare(a.Name, b.Name) })
	t.runtime.Store(v)
	return v
}

// Subscriptions returns the config file's subscriptions, in its order, then
// those created at run time whose product the table has, by name. The
// implicit subscriptions of token applications are not listed. The slice is
// the caller's; the subscriptions are shared and must not be changed.
func (t *Table) Subscriptions() []*Subscription {
	out := slices.Clone(t.subs)
	if v := t.view(); v != nil {
		out = append(out, v.subs...)
	}
	return out
}

// Subscription returns the subscription of a clear key: one of the config
// file's, or one created at run time.
func (t *Table) Subscription(key string) (*Subscription, bool) {
	if s, ok := t.keys.Lookup(key); ok {
		return s, true
	}
	if v := t.view(); v != nil {
		return v.keys.Lookup(key)
	}
	return nil, false
}

// Principal returns the subscription that lists principal (a token's
// application id, or cert:CN=...) among its principals.
func (t *Table) Principal(principal string) (*Subscription, bool) {
	if s, ok := t.principals[principal]; ok {
		return s, true
	}
	if v := t.view(); v != nil {
		s, ok := v.principals[principal]
		return s, ok
	}
	return nil, false
}

// implicitKey names an implicit subscription: an application in a product.
type implicitKey struct{ app, product string }

// implicit holds the implicit subscriptions a table made, so that each
// application has one Subscription per product for the table's life.
type implicit struct {
	m sync.Map // implicitKey -> *Subscription
}

// ForApplication returns the subscription a token's application acts as:
// the one that lists it among its principals, else an implicit
// subscription named after it in the first product whose roles one of
// roles is, else false.
func (t *Table) ForApplication(app string, roles []string) (*Subscription, bool) {
	if s, ok := t.Principal(app); ok {
		return s, true
	}
	for _, pc := range t.Config.Products {
		if !slices.ContainsFunc(pc.Roles, func(r string) bool { return slices.Contains(roles, r) }) {
			continue
		}
		k := implicitKey{app, pc.Name}
		if s, ok := t.implicit.m.Load(k); ok {
			return s.(*Subscription), true
		}
		s, _ := t.implicit.m.LoadOrStore(k, &Subscription{Name: app, Product: t.products[pc.Name], Implicit: true})
		return s.(*Subscription), true
	}
	return nil, false
}

// Usable reports whether s may be used now: a runtime subscription that is
// suspended or expired is refused with an error that says so.
func (s *Subscription) Usable(now time.Time) error {
	switch {
	case s.Suspended:
		return wire.NewError(http.StatusForbidden, wire.TypePermission, "subscription_suspended",
			"The subscription "+s.Name+" is suspended.")
	case !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt):
		return wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "subscription_expired",
			"The subscription "+s.Name+" expired on "+s.ExpiresAt.UTC().Format(time.RFC3339)+".")
	}
	return nil
}

// Requires returns the error of a request of the product that lacks a
// credential the product requires: key, token says what it carried.
func (p *Product) Requires(key, token bool) error {
	switch {
	case p.RequireKey && !key:
		return wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "subscription_key_required",
			"The product "+p.Name+" requires a subscription key as well as a token.")
	case p.RequireToken && !token:
		return wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "token_required",
			"The product "+p.Name+" requires a bearer token (JWT) as well as a subscription key.")
	}
	return nil
}

// compileIdentity fills the table's principal index and the products'
// requirements.
func (t *Table) compileIdentity(cfg *config.Config) {
	t.principals = map[string]*Subscription{}
	for _, pc := range cfg.Products {
		p := t.products[pc.Name]
		p.RequireKey = slices.Contains(pc.Require, "key")
		p.RequireToken = slices.Contains(pc.Require, "jwt")
	}
}
