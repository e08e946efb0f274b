package admin

import (
	"net/http"
	"time"

	"github.com/sluice-gateway/sluice/internal/limit"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// limitState is one limit of a subscription in GET /admin/limits.
type limitState struct {
	Rule string `json:"rule"`
	// Scope is whose counter it is: subscription, product,
	// subscription-model or global.
	Scope string `json:"scope"`
	// Kind is tokens_per_minute, requests_per_minute, token_quota or
	// budget.
	Kind   string `json:"kind"`
	Period string `json:"period"`
	Model  string `json:"model,omitempty"`
	// Unit is tokens, requests, or the budget's currency.
	Unit        string    `json:"unit"`
	Used        float64   `json:"used"`
	Limit       float64   `json:"limit"`
	WindowStart time.Time `json:"window_start"`
	ResetsAt    time.Time `json:"resets_at"`
}

// subscriptionLimits is one subscription in GET /admin/limits.
type subscriptionLimits struct {
	Name    string `json:"name"`
	Product string `json:"product"`
	// Source is config (the config file) or runtime (the admin API).
	Source string       `json:"source"`
	State  string       `json:"state"`
	Limits []limitState `json:"limits"`
}

// limits answers GET /admin/limits[?subscription=NAME]: every subscription
// (the config file's and the run-time ones) with each of its product's
// limits and its budget, as counted in the window that holds now. All the
// counters are read in one call to the limiter's store; when the store
// cannot be read the answer is 503, never this instance's guess.
func (a *handler) limits(w http.ResponseWriter, r *http.Request) {
	t := a.o.Table()
	now := a.o.Now()
	only := r.URL.Query().Get("subscription")
	var subs []*route.Subscription
	for _, s := range t.Subscriptions() {
		if only == "" || s.Name == only {
			subs = append(subs, s)
		}
	}
	if only != "" && len(subs) == 0 {
		wire.NewError(http.StatusNotFound, wire.TypeNotFound, "subscription_not_found",
			"No subscription "+only+".").Write(w)
		return
	}
	// Each subscription's probes: its product's rules and budget, then its
	// per-model rules once per model of the product.
	var probes []limit.Probe
	type part struct {
		sub        int  // index in subs
		modelRules bool // keep only the subscription-model rules' rows
	}
	var parts []part
	for i, s := range subs {
		p := s.Product
		var plain, perModel []*limit.Rule
		for _, rule := range p.Limits {
			if rule.Key == limit.KeySubscriptionModel {
				perModel = append(perModel, rule)
			} else {
				plain = append(plain, rule)
			}
		}
		if p.Budget != nil {
			plain = append(plain, p.Budget)
		}
		subject := limit.Subject{Subscription: s.Name, Product: p.Name}
		probes = append(probes, limit.Probe{Subject: subject, Rules: plain})
		parts = append(parts, part{sub: i})
		if len(perModel) == 0 {
			continue
		}
		// An adaptive rule's effective limit needs the rule it shares.
		for _, rule := range perModel {
			if rule.AdaptiveOf != nil {
				perModel = append(perModel, rule.AdaptiveOf)
			}
		}
		for _, m := range p.Models {
			subject.Model = m
			probes = append(probes, limit.Probe{Subject: subject, Rules: perModel})
			parts = append(parts, part{sub: i, modelRules: true})
		}
	}
	read, err := t.Limiter.Read(r.Context(), now, probes...)
	if err != nil {
		a.o.Logger.Warn("reading the limit counters", "err", err)
		wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "limits_unavailable",
			"The limit counters cannot be read now: their store does not answer.").Write(w)
		return
	}
	out := make([]subscriptionLimits, len(subs))
	for i, s := range subs {
		out[i] = subscriptionLimits{Name: s.Name, Product: s.Product.Name, Source: "config", State: "active",
			Limits: []limitState{}}
		if s.Runtime {
			out[i].Source = "runtime"
		}
		if err := s.Usable(now); err != nil {
			out[i].State = "suspended"
			if !s.Suspended {
				out[i].State = "expired"
			}
		}
	}
	for k, us := range read {
		pt := parts[k]
		sub := subs[pt.sub]
		for _, u := range us {
			if pt.modelRules && u.Rule.Key != limit.KeySubscriptionModel {
				continue
			}
			out[pt.sub].Limits = append(out[pt.sub].Limits, a.limitState(t, sub.Product, u))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"time": now.UTC(), "subscriptions": out})
}

// limitState describes u, a limit of product p.
func (a *handler) limitState(t *route.Table, p *route.Product, u limit.Usage) limitState {
	ls := limitState{Rule: u.Rule.ID, Scope: u.Rule.Key.String(), Period: u.Period.String(), Model: u.Model,
		Used: float64(u.Used), Limit: float64(u.Limit), WindowStart: u.Start, ResetsAt: u.Resets}
	switch {
	case u.Rule == p.Budget:
		ls.Kind, ls.Unit = "budget", "money"
		if t.Prices != nil && t.Prices.Currency != "" {
			ls.Unit = t.Prices.Currency
		}
		// Budgets count millionths of the currency.
		ls.Used, ls.Limit = float64(u.Used)/1e6, float64(u.Limit)/1e6
	case u.Kind == limit.TokensPerMinute:
		ls.Kind, ls.Unit = "tokens_per_minute", "tokens"
	case u.Kind == limit.RequestsPerMinute:
		ls.Kind, ls.Unit = "requests_per_minute", "requests"
	default:
		ls.Kind, ls.Unit = "token_quota", "tokens"
	}
	return ls
}
