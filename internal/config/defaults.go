package config

import (
	"net/url"
	"time"
)

// Defaults, as the doc comments in config.go and docs/configuration.md state
// them.
const (
	defaultListen            = "127.0.0.1:8080"
	defaultMaxRequestBytes   = 4 << 20
	defaultReadHeaderTimeout = 10 * time.Second
	defaultShutdownGrace     = 30 * time.Second
	defaultReadBodyTimeout   = 60 * time.Second
	defaultMaxConnections    = 10000
	defaultMaxConnsPerIP     = 1024
	defaultStateStore        = "memory"
	defaultOnStoreError      = "fail_open"
	defaultStoreTimeout      = 50 * time.Millisecond
	defaultUsageStore        = "sqlite:sluice-usage.db"
	defaultUsageJournal      = "sluice-usage.journal"
	defaultCurrency          = "USD"
	defaultKind              = "azure-openai"
	defaultAPIVersion        = "2024-10-21"
	defaultTimeout           = 120 * time.Second
	defaultConnectTimeout    = 10 * time.Second
	defaultFailures          = 5
	defaultMinRequests       = 10
	defaultInterval          = time.Minute
	defaultTripDuration      = time.Minute
	defaultMaxTripDuration   = 10 * time.Minute
	defaultProbeInterval     = 10 * time.Second
	defaultProbeTimeout      = 2 * time.Second
	defaultUnhealthy         = 2
	defaultHealthy           = 1
	defaultMIResource        = "https://cognitiveservices.azure.com"
	defaultStrategy          = "round_robin"
	defaultPriority          = 1
	defaultWeight            = 1
	defaultAttempts          = 1
	defaultBackoff           = 200 * time.Millisecond
	defaultAffinityCookie    = "sluice-affinity"
	defaultLimitKey          = "subscription"
	defaultMaxTokens         = 1024
	defaultProductPriority   = "high"
	defaultMaxWait           = 5 * time.Second
	defaultRolesClaim        = "roles"
	defaultClockSkew         = time.Minute
	defaultUnknownKey        = 5 * time.Minute
	defaultJWKSRefresh       = time.Hour
	defaultAuthorityHost     = "https://login.microsoftonline.com/"
	defaultEntraScope        = "https://cognitiveservices.azure.com/.default"
	defaultClientAuth        = "request"
)

var (
	defaultClientClaims = []string{"azp", "appid"}
	defaultAlgorithms   = []string{"RS256", "ES256"}
)

// defaultHeaders are the names of the limit headers; x-ratelimit-remaining-*
// are the names Azure OpenAI itself uses.
var defaultHeaders = LimitHeaders{
	RemainingTokens:      "x-ratelimit-remaining-tokens",
	RemainingRequests:    "x-ratelimit-remaining-requests",
	QuotaRemainingTokens: "x-sluice-quota-remaining-tokens",
	TokensConsumed:       "x-sluice-tokens-consumed",
}

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
	d := defaulter{present}

	d.str("server.listen", &c.Server.Listen, defaultListen)
	d.set("server.max_request_bytes", c.Server.MaxRequestBytes == 0, func() { c.Server.MaxRequestBytes = defaultMaxRequestBytes })
	d.dur("server.read_header_timeout", &c.Server.ReadHeaderTimeout, defaultReadHeaderTimeout)
	d.dur("server.shutdown_grace", &c.Server.ShutdownGrace, defaultShutdownGrace)
	d.dur("server.read_body_timeout", &c.Server.ReadBodyTimeout, defaultReadBodyTimeout)
	d.set("server.max_connections", c.Server.MaxConnections == 0, func() { c.Server.MaxConnections = defaultMaxConnections })
	d.set("server.max_connections_per_ip", c.Server.MaxConnectionsPerIP == 0, func() { c.Server.MaxConnectionsPerIP = defaultMaxConnsPerIP })
	d.tls("server.tls", c.Server.TLS)
	d.tls("admin.tls", c.Admin.TLS)
	for i := range c.Auth.JWT {
		d.jwt(index("auth.jwt", i), &c.Auth.JWT[i])
	}

	d.str("state.store", &c.State.Store, defaultStateStore)
	d.str("state.on_store_error", &c.State.OnStoreError, defaultOnStoreError)
	d.dur("state.timeout", &c.State.Timeout, defaultStoreTimeout)

	d.str("usage.store", &c.Usage.Store, defaultUsageStore)
	d.str("usage.journal", &c.Usage.Journal, defaultUsageJournal)
	d.str("usage.prices.currency", &c.Usage.Prices.Currency, defaultCurrency)
	for name, p := range c.Usage.Prices.Models {
		if p.CachedInput == nil {
			in := p.Input
			p.CachedInput = &in
			c.Usage.Prices.Models[name] = p
		}
	}

	d.list("metrics.dimensions", &c.Metrics.Dimensions, defaultDimensions)

	d.str("tracing.protocol", &c.Tracing.Protocol, "http")
	d.str("tracing.service_name", &c.Tracing.ServiceName, "sluice")
	if c.Tracing.SampleRatio == nil {
		one := 1.0
		c.Tracing.SampleRatio = &one
	}
	d.set("logging.prompt_max_bytes", c.Logging.PromptMaxBytes == 0, func() { c.Logging.PromptMaxBytes = 1024 })

	for i := range c.Backends {
		d.backend(index("backends", i), &c.Backends[i])
	}
	for i := range c.Pools {
		d.pool(index("pools", i), &c.Pools[i])
	}
	for i := range c.Products {
		d.product(index("products", i), &c.Products[i])
	}
	d.cache(c)
	d.guard(c)
}

// defaulter sets a field to its default when the field is zero and the file
// did not set it.
type defaulter struct {
	present func(path string) bool
}

func (d defaulter) set(path string, zero bool, apply func()) {
	if zero && !d.present(path) {
		apply()
	}
}

func (d defaulter) str(path string, p *string, v string) {
	d.set(path, *p == "", func() { *p = v })
}

func (d defaulter) dur(path string, p *Duration, v time.Duration) {
	d.set(path, *p == 0, func() { *p = Duration(v) })
}

func (d defaulter) num(path string, p *int, v int) {
	d.set(path, *p == 0, func() { *p = v })
}

func (d defaulter) list(path string, p *[]string, v []string) {
	d.set(path, *p == nil, func() { *p = append([]string(nil), v...) })
}

func (d defaulter) backend(path string, b *Backend) {
	d.str(field(path, "kind"), &b.Kind, defaultKind)
	if b.Kind == "azure-openai" {
		d.str(field(path, "api_version"), &b.APIVersion, defaultAPIVersion)
	}
	d.provider(path, b)
	d.dur(field(path, "timeout"), &b.Timeout, defaultTimeout)
	d.dur(field(path, "connect_timeout"), &b.ConnectTimeout, defaultConnectTimeout)
	d.dur(field(path, "first_byte_timeout"), &b.FirstByteTimeout, b.Timeout.D())
	// stream_timeout: 0, no bound, is its default.
	if mi := b.Auth.ManagedIdentity; mi != nil {
		d.str(field(path, "auth.managed_identity.resource"), &mi.Resource, defaultMIResource)
	}
	if cc := b.Auth.ClientCredentials; cc != nil {
		d.str(field(path, "auth.client_credentials.authority_host"), &cc.AuthorityHost, defaultAuthorityHost)
		d.str(field(path, "auth.client_credentials.scope"), &cc.Scope, defaultEntraScope)
	}
	if b.CircuitBreaker != nil {
		d.breaker(field(path, "circuit_breaker"), b.CircuitBreaker)
	}
	for i := range b.CircuitBreakers {
		d.breaker(index(field(path, "circuit_breakers"), i), &b.CircuitBreakers[i])
	}
	if hc := b.HealthCheck; hc != nil {
		hcPath := field(path, "health_check")
		d.str(field(hcPath, "path"), &hc.Path, healthCheckPath(b))
		d.dur(field(hcPath, "interval"), &hc.Interval, defaultProbeInterval)
		d.dur(field(hcPath, "timeout"), &hc.Timeout, defaultProbeTimeout)
		d.num(field(hcPath, "unhealthy_threshold"), &hc.UnhealthyThreshold, defaultUnhealthy)
		d.num(field(hcPath, "healthy_threshold"), &hc.HealthyThreshold, defaultHealthy)
	}
}

// tls fills a listener's TLS: client_auth defaults to request when client
// certificates are asked for at all.
func (d defaulter) tls(path string, t *TLS) {
	if t != nil && t.ClientCAFile != "" {
		d.str(field(path, "client_auth"), &t.ClientAuth, defaultClientAuth)
	}
}

// jwt fills an identity provider.
func (d defaulter) jwt(path string, j *JWTProvider) {
	d.list(field(path, "client_claims"), &j.ClientClaims, defaultClientClaims)
	d.str(field(path, "roles_claim"), &j.RolesClaim, defaultRolesClaim)
	d.list(field(path, "algorithms"), &j.Algorithms, defaultAlgorithms)
	d.dur(field(path, "clock_skew"), &j.ClockSkew, defaultClockSkew)
	d.dur(field(path, "unknown_key_refresh"), &j.UnknownKeyRefresh, defaultUnknownKey)
	d.dur(field(path, "refresh_interval"), &j.RefreshInterval, defaultJWKSRefresh)
}

// breaker fills a circuit breaker rule. Failures defaults to 5 only in count
// mode: a rule that sets percentage and not failures counts a share alone.
func (d defaulter) breaker(path string, cb *CircuitBreaker) {
	if cb.Percentage == 0 {
		d.num(field(path, "failures"), &cb.Failures, defaultFailures)
	}
	d.num(field(path, "min_requests"), &cb.MinRequests, defaultMinRequests)
	d.dur(field(path, "interval"), &cb.Interval, defaultInterval)
	d.list(field(path, "status_codes"), &cb.StatusCodes, defaultStatusCodes)
	d.list(field(path, "errors"), &cb.Errors, defaultErrors)
	d.dur(field(path, "trip_duration"), &cb.TripDuration, defaultTripDuration)
	d.dur(field(path, "max_trip_duration"), &cb.MaxTripDuration, defaultMaxTripDuration)
}

// healthCheckPath is the default probe path of a backend: a cheap GET that
// needs the backend's credential, so that a revoked key fails the probe too.
// It is empty for an unknown kind, which validation reports.
func healthCheckPath(b *Backend) string {
	switch b.Kind {
	case "azure-openai":
		return "/openai/models?api-version=" + url.QueryEscape(b.APIVersion)
	case "openai", "anthropic":
		return "/v1/models"
	case "gemini":
		return "/v1beta/models"
	}
	return ""
}

func (d defaulter) product(path string, pr *Product) {
	for j := range pr.Limits {
		l, lPath := &pr.Limits[j], index(field(path, "limits"), j)
		d.str(field(lPath, "key"), &l.Key, defaultLimitKey)
		d.set(field(lPath, "default_max_tokens"), l.DefaultMaxTokens == 0, func() { l.DefaultMaxTokens = defaultMaxTokens })
	}
	d.str(field(path, "priority"), &pr.Priority, defaultProductPriority)
	h, hPath := &pr.Headers, field(path, "headers")
	d.str(field(hPath, "remaining_tokens"), &h.RemainingTokens, defaultHeaders.RemainingTokens)
	d.str(field(hPath, "remaining_requests"), &h.RemainingRequests, defaultHeaders.RemainingRequests)
	d.str(field(hPath, "quota_remaining_tokens"), &h.QuotaRemainingTokens, defaultHeaders.QuotaRemainingTokens)
	d.str(field(hPath, "tokens_consumed"), &h.TokensConsumed, defaultHeaders.TokensConsumed)
}

func (d defaulter) pool(path string, p *Pool) {
	d.str(field(path, "strategy"), &p.Strategy, defaultStrategy)
	for j := range p.Members {
		m, mPath := &p.Members[j], index(field(path, "members"), j)
		d.num(field(mPath, "priority"), &m.Priority, defaultPriority)
		d.num(field(mPath, "weight"), &m.Weight, defaultWeight)
	}
	d.num(field(path, "retry.attempts"), &p.Retry.Attempts, defaultAttempts)
	d.dur(field(path, "retry.backoff"), &p.Retry.Backoff, defaultBackoff)
	if t := p.Throttle; t != nil {
		d.dur(field(path, "throttle.max_wait"), &t.MaxWait, defaultMaxWait)
	}
	if sa := p.SessionAffinity; sa != nil {
		d.str(field(path, "session_affinity.cookie"), &sa.Cookie, defaultAffinityCookie)
	}
}
