package config

import (
	"crypto/sha256"
	"math"
	"strings"

	"github.com/sluice-gateway/sluice/internal/secret"
)

// periods are the fixed UTC windows of quotas and budgets.
var periods = []string{"hourly", "daily", "weekly", "monthly", "yearly"}

func (c *Config) validateProducts(p *problems) {
	seen := names{}
	for i, pr := range c.Products {
		path := index("products", i)
		if checkName(p, field(path, "name"), pr.Name) {
			seen.claim(p, field(path, "name"), pr.Name)
		}
		c.checkProductModels(p, path, pr)
		c.checkProductRegions(p, path, pr)
		// Every key: global limit counts in one gateway-wide counter per
		// kind; two of a kind in one product would count a request twice.
		globals := map[string]string{}
		for k, l := range pr.Limits {
			lp := index(field(path, "limits"), k)
			checkLimit(p, lp, l)
			if l.Key != "global" {
				continue
			}
			for kind, set := range map[string]bool{
				"tokens_per_minute": l.TokensPerMinute > 0, "requests_per_minute": l.RequestsPerMinute > 0,
				"token_quota (" + l.TokenQuotaPeriod + ")": l.TokenQuota > 0,
			} {
				if !set {
					continue
				}
				if other, dup := globals[kind]; dup {
					p.add(field(lp, "key"), "%s of a key: global limit is set by %s already: the gateway-wide counter would count each request twice", kind, other)
				}
				globals[kind] = lp
			}
		}
		checkAdaptive(p, path, pr)
		oneOf(p, field(path, "priority"), pr.Priority, "high", "low")
		checkLimitHeaders(p, field(path, "headers"), pr.Headers)
		if pr.Budget != nil {
			c.checkBudget(p, field(path, "budget"), pr)
		}
	}
}

func (c *Config) checkProductModels(p *problems, path string, pr Product) {
	if len(pr.Models) == 0 {
		p.add(field(path, "models"), "at least one model is required")
	}
	listed := map[string]bool{}
	for j, m := range pr.Models {
		mp := index(field(path, "models"), j)
		if _, ok := c.Models[m]; !ok {
			p.add(mp, "model %q is not in models", m)
		} else if listed[m] {
			p.add(mp, "%q is listed twice", m)
		}
		listed[m] = true
	}
}

// checkProductRegions checks that each region of the product has a backend,
// and that each of its models can still be served inside its regions.
func (c *Config) checkProductRegions(p *problems, path string, pr Product) {
	if len(pr.Regions) == 0 {
		return
	}
	backendRegions := map[string]bool{}
	for _, b := range c.Backends {
		backendRegions[b.Region] = true
	}
	allowed := map[string]bool{}
	for j, r := range pr.Regions {
		rp := index(field(path, "regions"), j)
		switch {
		case !checkName(p, rp, r):
		case allowed[r]:
			p.add(rp, "%q is listed twice", r)
		case !backendRegions[r]:
			p.add(rp, "no backend is in region %q", r)
		}
		allowed[r] = true
	}
	pools, backends := c.poolIndex(), c.backendIndex()
	for j, m := range pr.Models {
		pi, ok := pools[c.Models[m]]
		if !ok {
			continue // reported under models
		}
		known, served := false, false
		for _, mem := range c.Pools[pi].Members {
			if bi, ok := backends[mem.Backend]; ok {
				known = true
				served = served || allowed[c.Backends[bi].Region]
			}
		}
		if known && !served { // a pool without known members is reported under pools
			p.add(index(field(path, "models"), j),
				"no backend of pool %q is in the product's regions, so model %q could never be served", c.Models[m], m)
		}
	}
}

func checkLimit(p *problems, path string, l Limit) {
	oneOf(p, field(path, "key"), l.Key, "subscription", "product", "subscription_model", "global")
	counts := []struct {
		name string
		v    int64
	}{
		{"tokens_per_minute", l.TokensPerMinute},
		{"requests_per_minute", l.RequestsPerMinute},
		{"token_quota", l.TokenQuota},
	}
	for _, n := range counts {
		if n.v < 0 {
			p.add(field(path, n.name), "must not be negative")
		}
	}
	if l.TokensPerMinute == 0 && l.RequestsPerMinute == 0 && l.TokenQuota == 0 {
		p.add(path, "sets none of tokens_per_minute, requests_per_minute and token_quota")
	}
	switch {
	case l.TokenQuota > 0 && l.TokenQuotaPeriod == "":
		p.add(field(path, "token_quota_period"), "required with token_quota; want %s", orList(periods))
	case l.TokenQuotaPeriod != "":
		if oneOf(p, field(path, "token_quota_period"), l.TokenQuotaPeriod, periods...) && l.TokenQuota == 0 {
			p.add(field(path, "token_quota_period"), "set, but token_quota is not")
		}
	}
	if l.EstimatePromptTokens && l.TokensPerMinute <= 0 && l.TokenQuota <= 0 {
		p.add(field(path, "estimate_prompt_tokens"), "needs tokens_per_minute or token_quota to count the estimate against")
	}
	if l.DefaultMaxTokens < 1 {
		p.add(field(path, "default_max_tokens"), "must be at least 1")
	}
}

// checkAdaptive checks the adaptive limits of a product: each adds a share of
// what remains of the product's one key: global tokens-per-minute limit to
// its own tokens_per_minute.
func checkAdaptive(p *problems, path string, pr Product) {
	var globals []string // paths of the limits whose remainder can be shared
	for k, l := range pr.Limits {
		if l.Key == "global" && l.TokensPerMinute > 0 {
			globals = append(globals, index(field(path, "limits"), k))
		}
	}
	for k, l := range pr.Limits {
		sp := field(index(field(path, "limits"), k), "adaptive_share")
		share := l.AdaptiveShare
		switch {
		case !(share >= 0 && share <= 1): // NaN too
			p.add(sp, "must be from 0 (off) to 1")
		case share == 0:
		case l.Key == "global":
			p.add(sp, "must not be set on a key: global limit: an adaptive limit shares what remains of the global one")
		case l.TokensPerMinute <= 0:
			p.add(sp, "needs tokens_per_minute, the base that the share of the global limit is added to")
		case len(globals) == 0:
			p.add(sp, "needs a limit with key: global and tokens_per_minute in the same product, whose remainder it shares")
		case len(globals) > 1:
			p.add(sp, "needs exactly one limit with key: global and tokens_per_minute in the same product, whose remainder it shares; there are %d: %s",
				len(globals), strings.Join(globals, ", "))
		}
	}
}

// checkLimitHeaders checks that the limit headers are header names and
// distinct; header names ignore case.
func checkLimitHeaders(p *problems, path string, h LimitHeaders) {
	headers := []struct{ name, value, def string }{
		{"remaining_tokens", h.RemainingTokens, defaultHeaders.RemainingTokens},
		{"remaining_requests", h.RemainingRequests, defaultHeaders.RemainingRequests},
		{"quota_remaining_tokens", h.QuotaRemainingTokens, defaultHeaders.QuotaRemainingTokens},
		{"tokens_consumed", h.TokensConsumed, defaultHeaders.TokensConsumed},
	}
	seen := map[string]string{} // lower-case name -> path of its first use
	for _, hd := range headers {
		hp := field(path, hd.name)
		switch {
		case hd.value == "":
			p.add(hp, "required; want a header name such as %s", hd.def)
			continue
		case !isToken(hd.value):
			p.add(hp, "%s is not a header name; use letters, digits and %s (RFC 9110)", quote(hd.value), tokenSymbols)
			continue
		}
		lower := strings.ToLower(hd.value)
		if first, dup := seen[lower]; dup {
			p.add(hp, "%s is the same header as %s (header names ignore case)", quote(hd.value), first)
			continue
		}
		seen[lower] = hp
	}
}

func (c *Config) checkBudget(p *problems, path string, pr Product) {
	b := pr.Budget
	if !(b.Amount > 0) || math.IsInf(b.Amount, 0) {
		p.add(field(path, "amount"), "must be greater than 0")
	}
	oneOf(p, field(path, "period"), b.Period, periods...)
	for _, m := range pr.Models {
		if _, ok := c.Usage.Prices.Models[m]; ok {
			return
		}
	}
	p.add(path, "needs a price in usage.prices.models for at least one of the product's models")
}

// validateSubscriptions checks subscriptions and that no key opens two doors:
// keys are compared by SHA-256 digest, and problems name paths, never keys.
func (c *Config) validateSubscriptions(p *problems) {
	products := map[string]bool{}
	for _, pr := range c.Products {
		products[pr.Name] = true
	}
	seen := names{}
	keys := map[[sha256.Size]byte]string{} // digest -> path of its first use
	for i, s := range c.Subscriptions {
		path := index("subscriptions", i)
		if checkName(p, field(path, "name"), s.Name) {
			seen.claim(p, field(path, "name"), s.Name)
		}
		switch {
		case s.Product == "":
			p.add(field(path, "product"), "required")
		case !products[s.Product]:
			p.add(field(path, "product"), "no product is named %q", s.Product)
		}
		if len(s.Keys) == 0 && len(s.Principals) == 0 {
			p.add(field(path, "keys"), "at least one key (or a principal) is required")
		}
		for j, k := range s.Keys {
			kp := index(field(path, "keys"), j)
			d, err := KeyDigest(k)
			if err != nil {
				p.add(kp, "%v", err)
				continue
			}
			if secret.LooksLikeJWT(k.Reveal()) {
				p.add(kp, "is shaped like a JWT (three base64url parts), so clients sending it would have it validated as a token; choose another key")
				continue
			}
			if first, dup := keys[d]; dup {
				p.add(kp, "same key as %s", first)
				continue
			}
			keys[d] = kp
		}
	}
	if admin := c.Admin.APIKey.Reveal(); admin != "" {
		if first, dup := keys[sha256.Sum256([]byte(admin))]; dup {
			p.add("admin.api_key", "same key as %s; the admin key must differ from every subscription key", first)
		}
	}
}
