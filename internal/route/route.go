// Package route compiles a validated config into the immutable routing table
// the request path reads: key digests to subscriptions, subscriptions to
// products, model names to pools, pools to backends. A reload compiles a new
// Table and swaps it in whole; backends that still exist keep their live state.
package route

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/internal/auth"
	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/balance"
	"github.com/sluice-gateway/sluice/internal/breaker"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/limit"
	"github.com/sluice-gateway/sluice/internal/pricing"
	"github.com/sluice-gateway/sluice/internal/redact"
)

// Table is a compiled config. It is immutable and safe for concurrent use.
type Table struct {
	// Config is the effective config it was compiled from. Do not modify.
	Config *config.Config
	// Backends by name.
	Backends map[string]*backend.Backend
	// Limiter enforces the products' limits and budgets.
	Limiter *limit.Limiter
	// Prices prices usage (usage.prices).
	Prices *pricing.Table
	// Redactor cleans prompt and completion text for the access log; nil
	// when logging.prompts is off.
	Redactor *redact.Redactor
	// PathPrefixes are server.path_prefixes, longest first: stripped from a
	// request's path before routing.
	PathPrefixes []string
	// TrustedProxies are server.trusted_proxies: peers whose
	// X-Forwarded-For and Forwarded headers are believed and passed on.
	TrustedProxies []netip.Prefix

	registry   *Registry
	stateKeys  []stateKey   // the registry's backend states this table uses
	credKeys   []string     // the registry's token credentials this table uses
	inflight   atomic.Int64 // requests running on the table (Hold, Done)
	retired    atomic.Bool  // replaced: Hold refuses new requests
	keys       *auth.Index[*Subscription]
	principals map[string]*Subscription    // the config's principals
	subs       []*Subscription             // the config's subscriptions, in its order
	runtime    atomic.Pointer[runtimeView] // the runtime subscriptions, as this table sees them
	implicit   implicit                    // the implicit subscriptions of token applications
	models     map[string]*Model
	products   map[string]*Product
	pools      map[string]*Pool
}

// Subscription is a caller.
type Subscription struct {
	Name    string
	Product *Product
	// Principals are the identities that act as it (token applications,
	// cert:CN=...).
	Principals []string
	// Runtime marks a subscription created through the admin API; Implicit
	// one made for a token application by its product's roles.
	Runtime, Implicit bool
	// Suspended and ExpiresAt are a runtime subscription's state.
	Suspended bool
	ExpiresAt time.Time
}

// Product is what its subscriptions may use.
type Product struct {
	Name string
	// Models the product may use, sorted.
	Models []string
	// Regions, when not nil, are the only regions its requests may be
	// served in (data residency).
	Regions map[string]bool
	// LowPriority is set for products of priority low.
	LowPriority bool
	// Limits are the product's limits; empty when it has none.
	Limits []*limit.Rule
	// Estimate reserves the prompt and max_tokens at admission (a limit
	// sets estimate_prompt_tokens); otherwise usage is charged afterwards.
	Estimate bool
	// DefaultMaxTokens is reserved for a request that sets no max_tokens.
	DefaultMaxTokens int64
	// Headers are the names of the limit headers, in canonical form.
	Headers Headers
	// Budget caps each subscription's spend per period, as a quota counted
	// in millionths of the currency and charged after the fact; nil: none.
	Budget *limit.Rule
	// RequireKey and RequireToken say that a request must carry a
	// subscription key, a token, or both (products[].require).
	RequireKey, RequireToken bool
	// Cache is the product's response cache, as configured; nil: none.
	Cache   *config.ProductCache
	allowed map[string]bool
}

// GatewayProduct returns a product that may use every model of the table,
// with no limits: the product of Sluice's own requests, such as the
// response cache's embedding calls, which are metered to the gateway.
func GatewayProduct(t *Table, name string) *Product {
	p := &Product{Name: name, allowed: map[string]bool{}}
	for m := range t.models {
		p.allowed[m] = true
	}
	p.Models = slices.Sorted(maps.Keys(p.allowed))
	return p
}

// Allows reports whether the product may use model.
func (p *Product) Allows(model string) bool { return p.allowed[model] }

// Headers are a product's limit header names.
type Headers struct {
	RemainingTokens, RemainingRequests, QuotaRemainingTokens, TokensConsumed string
}

// Model is a model clients may ask for.
type Model struct {
	Name string
	Pool *Pool
}

// Pool is a compiled pool with its retry policy and session affinity.
type Pool struct {
	*balance.Pool
	// Retry says when a failed attempt is sent again.
	Retry Retry
	// AffinityCookie names the session-affinity cookie; empty when session
	// affinity is off.
	AffinityCookie string
	// Throttle holds low-priority requests back while the pool is short of
	// capacity; nil when off.
	Throttle *Throttle
}

// Throttle is a pool's low-priority throttling.
type Throttle struct {
	// MinTokens and MinRequests are the floors (0: none).
	MinTokens, MinRequests int64
	// MaxWait is how long a low-priority request waits for capacity.
	MaxWait time.Duration
}

// Retry is a pool's retry policy.
type Retry struct {
	// Attempts is the number of tries in all.
	Attempts int
	// Statuses are the response statuses that are retried.
	Statuses []breaker.StatusRange
	// Timeout and Connection retry those transport errors.
	Timeout, Connection bool
	// Backoff is the wait before trying the same backend again.
	Backoff time.Duration
}

// RetriesStatus reports whether a response with this status is retried.
func (r *Retry) RetriesStatus(code int) bool {
	for _, s := range r.Statuses {
		if code >= s.Lo && code <= s.Hi {
			return true
		}
	}
	return false
}

// Env is what a Table uses that outlives it.
type Env struct {
	// Log receives a line for every breaker state change; nil: discard.
	Log *slog.Logger
	// Registry keeps what outlives a table (backend states, limiters); a
	// table compiled against the registry of the table in force shares
	// them. nil: a registry of the table's own.
	Registry *Registry
	// Limiter enforces limits; nil: the registry's limiter for state.*.
	Limiter *limit.Limiter
	// Credential returns the credential of a backend whose auth is not a
	// static API key (managed identity, OAuth2); nil, or a nil Credential,
	// means the backend's api_key. The registry keeps what it returns
	// across reloads, by backend name and auth, and closes it (an
	// io.Closer) once no table in force uses it.
	Credential func(config.Backend) (backend.Credential, error)
}

// Compile builds a Table from a validated config. Backends take their live
// state from the registry by name and URL, so a reload keeps it for those
// that stay. The table serves once Registry.Commit puts it in force; one
// that never does is given back with Close.
func Compile(cfg *config.Config, env Env) (*Table, error) {
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := env.Registry
	if reg == nil {
		reg = NewRegistry(RegistryOptions{Log: log})
	}
	if env.Limiter == nil {
		lim, err := reg.limiter(cfg.State)
		if err != nil {
			return nil, fmt.Errorf("state.store: %w", err)
		}
		env.Limiter = lim
	}
	t := &Table{
		Config:   cfg,
		registry: reg,
		Limiter:  env.Limiter,
		Backends: make(map[string]*backend.Backend, len(cfg.Backends)),
		keys:     auth.NewIndex[*Subscription](),
		models:   make(map[string]*Model, len(cfg.Models)),
		products: make(map[string]*Product, len(cfg.Products)),
		pools:    make(map[string]*Pool, len(cfg.Pools)),
	}
	onChange := func(c breaker.Change) {
		level := slog.LevelWarn
		if c.To == breaker.Closed {
			level = slog.LevelInfo
		}
		attrs := []slog.Attr{slog.String("backend", c.Breaker), slog.String("from", c.From.String()),
			slog.String("to", c.To.String()), slog.String("reason", c.Reason)}
		if !c.Until.IsZero() {
			attrs = append(attrs, slog.Time("until", c.Until))
		}
		log.LogAttrs(context.Background(), level, "circuit breaker", attrs...)
	}
	prices := make(map[string]pricing.Price, len(cfg.Usage.Prices.Models))
	for m, pc := range cfg.Usage.Prices.Models {
		pr := pricing.Price{Input: pc.Input, Output: pc.Output, CachedInput: pc.Input}
		if pc.CachedInput != nil {
			pr.CachedInput = *pc.CachedInput
		}
		prices[m] = pr
	}
	t.Prices = pricing.New(cfg.Usage.Prices.Currency, prices)
	t.PathPrefixes = slices.Clone(cfg.Server.PathPrefixes)
	slices.SortFunc(t.PathPrefixes, func(a, b string) int { return len(b) - len(a) })
	for _, tp := range cfg.Server.TrustedProxies {
		pf, err := config.ParsePrefix(tp)
		if err != nil {
			return nil, fmt.Errorf("server.trusted_proxies: %w", err)
		}
		t.TrustedProxies = append(t.TrustedProxies, pf)
	}
	if cfg.Logging.Prompts {
		r, err := redact.New(cfg.Logging.Redact, cfg.Logging.PromptMaxBytes)
		if err != nil {
			return nil, fmt.Errorf("logging.redact: %w", err)
		}
		t.Redactor = r
	}
	for _, bc := range cfg.Backends {
		st := reg.state(bc.Name, bc.URL, onChange)
		t.stateKeys = append(t.stateKeys, stateKey{bc.Name, bc.URL})
		var cred backend.Credential
		if env.Credential != nil {
			k, c, err := reg.credential(bc, env.Credential)
			if err != nil {
				return nil, fmt.Errorf("backends %s: auth: %w", bc.Name, err)
			}
			cred = c
			if k != "" {
				t.credKeys = append(t.credKeys, k)
			}
		}
		b, err := backend.New(bc, st, cred)
		if err != nil {
			return nil, err
		}
		t.Backends[bc.Name] = b
	}
	for _, pc := range cfg.Pools {
		strategy, err := balance.ParseStrategy(pc.Strategy)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", pc.Name, err)
		}
		retry, err := compileRetry(pc.Retry)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", pc.Name, err)
		}
		members := make([]balance.Member, 0, len(pc.Members))
		for _, mc := range pc.Members {
			b, ok := t.Backends[mc.Backend]
			if !ok {
				return nil, fmt.Errorf("pool %s: no backend %q", pc.Name, mc.Backend)
			}
			members = append(members, balance.Member{Backend: b, Priority: mc.Priority, Weight: mc.Weight})
		}
		p := &Pool{Pool: balance.NewPool(pc.Name, members, balance.Options{Strategy: strategy}), Retry: retry}
		if pc.SessionAffinity != nil {
			p.AffinityCookie = pc.SessionAffinity.Cookie
		}
		if th := pc.Throttle; th != nil {
			p.Throttle = &Throttle{MinTokens: th.MinRemainingTokens, MinRequests: th.MinRemainingRequests, MaxWait: th.MaxWait.D()}
		}
		t.pools[pc.Name] = p
	}
	for name, pool := range cfg.Models {
		p, ok := t.pools[pool]
		if !ok {
			return nil, fmt.Errorf("model %s: no pool %q", name, pool)
		}
		t.models[name] = &Model{Name: name, Pool: p}
	}
	for _, pc := range cfg.Products {
		p := &Product{Name: pc.Name, allowed: make(map[string]bool, len(pc.Models)), LowPriority: pc.Priority == "low", Cache: pc.Cache}
		if len(pc.Regions) > 0 {
			p.Regions = make(map[string]bool, len(pc.Regions))
			for _, r := range pc.Regions {
				p.Regions[r] = true
			}
		}
		for _, m := range pc.Models {
			p.allowed[m] = true
			p.Models = append(p.Models, m)
		}
		sort.Strings(p.Models)
		if err := compileLimits(p, pc); err != nil {
			return nil, fmt.Errorf("product %s: %w", pc.Name, err)
		}
		t.products[pc.Name] = p
	}
	t.compileIdentity(cfg)
	for _, sc := range cfg.Subscriptions {
		p, ok := t.products[sc.Product]
		if !ok {
			return nil, fmt.Errorf("subscription %s: no product %q", sc.Name, sc.Product)
		}
		s := &Subscription{Name: sc.Name, Product: p, Principals: sc.Principals}
		t.subs = append(t.subs, s)
		for _, pr := range sc.Principals {
			t.principals[pr] = s
		}
		for i, k := range sc.Keys {
			d, err := auth.ParseKey(k.Reveal())
			if err != nil {
				return nil, fmt.Errorf("subscription %s: keys[%d]: %w", sc.Name, i, err)
			}
			if err := t.keys.Add(d, s); err != nil {
				return nil, fmt.Errorf("subscription %s: keys[%d]: %w", sc.Name, i, err)
			}
		}
	}
	return t, nil
}

// compileLimits turns a product's limits into limiter rules. A rule's ID is
// the product and the limit's place, so that counts survive a reload that
// keeps them; every key: global limit shares the gateway-wide counters.
func compileLimits(p *Product, pc config.Product) error {
	h := pc.Headers
	p.Headers = Headers{
		RemainingTokens:      http.CanonicalHeaderKey(h.RemainingTokens),
		RemainingRequests:    http.CanonicalHeaderKey(h.RemainingRequests),
		QuotaRemainingTokens: http.CanonicalHeaderKey(h.QuotaRemainingTokens),
		TokensConsumed:       http.CanonicalHeaderKey(h.TokensConsumed),
	}
	for i, lc := range pc.Limits {
		r := &limit.Rule{ID: pc.Name + "/" + strconv.Itoa(i), TokensPerMinute: lc.TokensPerMinute,
			RequestsPerMinute: lc.RequestsPerMinute, TokenQuota: lc.TokenQuota}
		switch lc.Key {
		case "subscription", "":
			r.Key = limit.KeySubscription
		case "product":
			r.Key = limit.KeyProduct
		case "subscription_model":
			r.Key = limit.KeySubscriptionModel
		case "global":
			r.Key, r.ID = limit.KeyGlobal, "global"
		default:
			return fmt.Errorf("limits[%d]: unknown key %q", i, lc.Key)
		}
		if lc.TokenQuota > 0 {
			period, err := limit.ParsePeriod(lc.TokenQuotaPeriod)
			if err != nil {
				return fmt.Errorf("limits[%d]: %w", i, err)
			}
			r.QuotaPeriod = period
		}
		if err := r.Validate(); err != nil {
			return err
		}
		if lc.EstimatePromptTokens {
			p.Estimate = true
			p.DefaultMaxTokens = max(p.DefaultMaxTokens, lc.DefaultMaxTokens)
		}
		r.AdaptiveShare = lc.AdaptiveShare
		p.Limits = append(p.Limits, r)
	}
	if b := pc.Budget; b != nil {
		period, err := limit.ParsePeriod(b.Period)
		if err != nil {
			return fmt.Errorf("budget: %w", err)
		}
		p.Budget = &limit.Rule{ID: pc.Name + "/budget", Key: limit.KeySubscription,
			TokenQuota: pricing.Micros(b.Amount), QuotaPeriod: period}
	}
	// An adaptive limit shares what the product's global tokens-per-minute
	// limit has left (validation makes sure there is exactly one).
	for _, r := range p.Limits {
		if r.AdaptiveShare <= 0 {
			continue
		}
		for _, g := range p.Limits {
			if g.Key == limit.KeyGlobal && g.TokensPerMinute > 0 {
				r.AdaptiveOf = g
			}
		}
	}
	return nil
}

func compileRetry(rc config.Retry) (Retry, error) {
	r := Retry{Attempts: max(rc.Attempts, 1), Backoff: rc.Backoff.D()}
	for _, on := range rc.On {
		switch on {
		case "timeout":
			r.Timeout = true
		case "connection":
			r.Connection = true
		default:
			lo, hi, err := config.ParseStatusRange(on)
			if err != nil {
				return r, err
			}
			r.Statuses = append(r.Statuses, breaker.StatusRange{Lo: lo, Hi: hi})
		}
	}
	return r, nil
}

// Activate puts the table's breaker rules and timeouts into the live
// backend states. Call it once the table is to serve, right before it is
// swapped in.
func (t *Table) Activate() {
	for _, b := range t.Backends {
		b.Activate()
	}
}

// Hold counts a request that runs on the table, until Done. It reports
// false, counting nothing, when the table has been replaced: the caller
// takes the table in force instead. A table's retired parts are closed only
// once every request it held is done.
func (t *Table) Hold() bool {
	t.inflight.Add(1)
	if t.retired.Load() {
		t.inflight.Add(-1)
		return false
	}
	return true
}

// Done ends a request Hold counted.
func (t *Table) Done() { t.inflight.Add(-1) }

// drainPoll is how often drain looks at the requests still running.
const drainPoll = 20 * time.Millisecond

// drain marks the table replaced and waits until the requests it held are
// done, or ctx ends.
func (t *Table) drain(ctx context.Context) {
	t.retired.Store(true)
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for t.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Close gives back what a table that was never put in force made for itself
// in its registry (backend states, a limiter and its store), keeping what
// the table in force uses. Closing the table in force does nothing: its
// registry's Close ends it.
func (t *Table) Close() { t.registry.Discard(t) }

// Model returns a model by the name a client uses.
func (t *Table) Model(name string) (*Model, bool) {
	m, ok := t.models[name]
	return m, ok
}

// Trusted reports whether addr is one of the trusted proxies.
func (t *Table) Trusted(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, pf := range t.TrustedProxies {
		if pf.Contains(addr) {
			return true
		}
	}
	return false
}
