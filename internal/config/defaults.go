package config

import "time"

// Defaults, as the doc comments in config.go and docs/configuration.md state
// them.
const (
	defaultListen            = "127.0.0.1:8080"
	defaultMaxRequestBytes   = 4 << 20
	defaultReadHeaderTimeout = 10 * time.Second
	defaultShutdownGrace     = 30 * time.Second
	defaultStateStore        = "memory"
	defaultOnStoreError      = "fail_open"
	defaultUsageStore        = "sqlite:sluice-usage.db"
	defaultCurrency          = "USD"
	defaultKind              = "azure-openai"
	defaultAPIVersion        = "2024-10-21"
	defaultTimeout           = 120 * time.Second
	defaultFailures          = 5
	defaultInterval          = time.Minute
	defaultTripDuration      = time.Minute
	defaultMIResource        = "https://cognitiveservices.azure.com"
	defaultStrategy          = "round_robin"
	defaultPriority          = 1
	defaultWeight            = 1
	defaultAttempts          = 1
	defaultLimitKey          = "subscription"
)

var (
	defaultDimensions  = []string{"subscription", "product", "model", "deployment", "backend", "region"}
	defaultStatusCodes = []string{"429", "500-599"}
	defaultErrors      = []string{"timeout", "connection"}
)

// applyDefaults fills every field the file left out with its default. present
// reports whether the file set a field path (to anything but null); an
// explicit zero such as "weight: 0" is kept, so that validation can reject it
// instead of a default hiding it. A nil present treats every zero field as
// left out, for a Config built in code. Bools need no default: false is the
// default of each.
func (c *Config) applyDefaults(present func(path string) bool) {
	if present == nil {
		present = func(string) bool { return false }
	}
	set := func(path string, zero bool, apply func()) {
		if zero && !present(path) {
			apply()
		}
	}
	str := func(path string, p *string, v string) { set(path, *p == "", func() { *p = v }) }
	dur := func(path string, p *Duration, v time.Duration) { set(path, *p == 0, func() { *p = Duration(v) }) }
	num := func(path string, p *int, v int) { set(path, *p == 0, func() { *p = v }) }
	list := func(path string, p *[]string, v []string) {
		set(path, *p == nil, func() { *p = append([]string(nil), v...) })
	}

	str("server.listen", &c.Server.Listen, defaultListen)
	set("server.max_request_bytes", c.Server.MaxRequestBytes == 0, func() { c.Server.MaxRequestBytes = defaultMaxRequestBytes })
	dur("server.read_header_timeout", &c.Server.ReadHeaderTimeout, defaultReadHeaderTimeout)
	dur("server.shutdown_grace", &c.Server.ShutdownGrace, defaultShutdownGrace)

	str("state.store", &c.State.Store, defaultStateStore)
	str("state.on_store_error", &c.State.OnStoreError, defaultOnStoreError)

	str("usage.store", &c.Usage.Store, defaultUsageStore)
	str("usage.prices.currency", &c.Usage.Prices.Currency, defaultCurrency)
	for name, p := range c.Usage.Prices.Models {
		if p.CachedInput == nil {
			in := p.Input
			p.CachedInput = &in
			c.Usage.Prices.Models[name] = p
		}
	}

	list("metrics.dimensions", &c.Metrics.Dimensions, defaultDimensions)

	for i := range c.Backends {
		b, path := &c.Backends[i], index("backends", i)
		str(field(path, "kind"), &b.Kind, defaultKind)
		if b.Kind == "azure-openai" {
			str(field(path, "api_version"), &b.APIVersion, defaultAPIVersion)
		}
		dur(field(path, "timeout"), &b.Timeout, defaultTimeout)
		if mi := b.Auth.ManagedIdentity; mi != nil {
			str(field(path, "auth.managed_identity.resource"), &mi.Resource, defaultMIResource)
		}
		if cb := b.CircuitBreaker; cb != nil {
			cbPath := field(path, "circuit_breaker")
			num(field(cbPath, "failures"), &cb.Failures, defaultFailures)
			dur(field(cbPath, "interval"), &cb.Interval, defaultInterval)
			list(field(cbPath, "status_codes"), &cb.StatusCodes, defaultStatusCodes)
			list(field(cbPath, "errors"), &cb.Errors, defaultErrors)
			dur(field(cbPath, "trip_duration"), &cb.TripDuration, defaultTripDuration)
		}
	}

	for i := range c.Pools {
		p, path := &c.Pools[i], index("pools", i)
		str(field(path, "strategy"), &p.Strategy, defaultStrategy)
		for j := range p.Members {
			m, mPath := &p.Members[j], index(field(path, "members"), j)
			num(field(mPath, "priority"), &m.Priority, defaultPriority)
			num(field(mPath, "weight"), &m.Weight, defaultWeight)
		}
		num(field(path, "retry.attempts"), &p.Retry.Attempts, defaultAttempts)
	}

	for i := range c.Products {
		for j := range c.Products[i].Limits {
			l := &c.Products[i].Limits[j]
			str(index(field(index("products", i), "limits"), j)+".key", &l.Key, defaultLimitKey)
		}
	}
}
