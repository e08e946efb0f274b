package config

import (
	"crypto/sha256"
	"math"
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
		for k, l := range pr.Limits {
			checkLimit(p, index(field(path, "limits"), k), l)
		}
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
		if len(s.Keys) == 0 {
			p.add(field(path, "keys"), "at least one key is required")
		}
		for j, k := range s.Keys {
			kp := index(field(path, "keys"), j)
			d, err := KeyDigest(k)
			if err != nil {
				p.add(kp, "%v", err)
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
