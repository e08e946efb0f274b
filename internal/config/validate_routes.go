package config

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// apiVersion is what an Azure api-version looks like (2024-10-21,
// 2025-04-01-preview, preview); it is sent in a query string.
var apiVersion = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func (c *Config) validateBackends(p *problems) {
	if len(c.Backends) == 0 {
		p.add("backends", "at least one backend is required")
	}
	seen := names{}
	for i, b := range c.Backends {
		path := index("backends", i)
		if checkName(p, field(path, "name"), b.Name) {
			seen.claim(p, field(path, "name"), b.Name)
		}
		oneOf(p, field(path, "kind"), b.Kind, "azure-openai", "openai", "anthropic", "gemini")
		checkBackendURL(p, field(path, "url"), b.URL)
		if b.Region != "" {
			checkName(p, field(path, "region"), b.Region)
		}
		switch {
		case b.Kind == "azure-openai" && b.APIVersion == "":
			p.add(field(path, "api_version"), "required for kind azure-openai")
		case b.Kind == "azure-openai" && !apiVersion.MatchString(b.APIVersion):
			p.add(field(path, "api_version"), "%s is not an api-version such as 2024-10-21", quote(b.APIVersion))
		case (b.Kind == "openai" || b.Kind == "gemini") && b.APIVersion != "":
			p.add(field(path, "api_version"), "applies only to kinds azure-openai and anthropic")
		}
		checkProvider(p, path, b)
		checkAuth(p, field(path, "auth"), b.Auth)
		checkDeployments(p, field(path, "deployments"), b)
		checkTimeouts(p, path, b)
		if b.CircuitBreaker != nil {
			checkBreaker(p, field(path, "circuit_breaker"), b.CircuitBreaker)
		}
		for j := range b.CircuitBreakers {
			checkBreaker(p, index(field(path, "circuit_breakers"), j), &b.CircuitBreakers[j])
		}
		if b.HealthCheck != nil {
			checkHealthCheck(p, field(path, "health_check"), b)
		}
	}
}

// checkTimeouts checks a backend's timeouts. None has to be shorter than
// another: each bounds its part of an attempt, and whichever ends first ends
// the attempt.
func checkTimeouts(p *problems, path string, b Backend) {
	positive(p, field(path, "timeout"), b.Timeout)
	positive(p, field(path, "connect_timeout"), b.ConnectTimeout)
	// first_byte_timeout defaults to timeout; when both are 0, the problem is
	// timeout, already reported.
	if b.FirstByteTimeout <= 0 && b.Timeout > 0 {
		p.add(field(path, "first_byte_timeout"), "must be greater than 0")
	}
	if b.StreamTimeout < 0 {
		p.add(field(path, "stream_timeout"), "must not be negative; 0 means no bound")
	}
}

// checkBackendURL never quotes the URL: it may carry credentials.
func checkBackendURL(p *problems, path, raw string) {
	if raw == "" {
		p.add(path, "required")
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		p.add(path, "must be an absolute http or https URL with a host, such as https://NAME.openai.azure.com")
	case u.User != nil:
		p.add(path, "must not hold credentials; put the key in auth.api_key")
	case u.RawQuery != "" || u.ForceQuery:
		p.add(path, "must not have a query")
	case u.Fragment != "":
		p.add(path, "must not have a fragment")
	}
}

func checkDeployments(p *problems, path string, b Backend) {
	if len(b.Deployments) == 0 {
		p.add(path, "at least one deployment (model: deployment name) is required")
	}
	for _, model := range sortedKeys(b.Deployments) {
		mp := key(path, model)
		if !checkName(p, mp, model) {
			continue
		}
		d := b.Deployments[model]
		switch {
		case d == "":
			p.add(mp, "a deployment name is required")
		case b.Kind == "azure-openai" && strings.ContainsAny(d, "/?#%"):
			p.add(mp, "%s cannot be an Azure deployment name: it must not contain /, ?, # or %%", quote(d))
		case strings.IndexFunc(d, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
			p.add(mp, "%s must not contain white space or control characters", quote(d))
		}
	}
}

// failureErrors are the transport errors a breaker or a retry can count.
var failureErrors = []string{"timeout", "connection"}

func checkBreaker(p *problems, path string, cb *CircuitBreaker) {
	switch {
	case cb.Failures < 0:
		p.add(field(path, "failures"), "must not be negative")
	case cb.Failures == 0 && cb.Percentage == 0:
		p.add(field(path, "failures"), "must be at least 1 unless percentage is set")
	}
	if cb.Percentage < 0 || cb.Percentage > 100 {
		p.add(field(path, "percentage"), "must be from 1 to 100, or 0 for off")
	}
	if cb.MinRequests < 1 {
		p.add(field(path, "min_requests"), "must be at least 1")
	}
	positive(p, field(path, "interval"), cb.Interval)
	for j, s := range cb.StatusCodes {
		if _, _, err := ParseStatusRange(s); err != nil {
			p.add(index(field(path, "status_codes"), j), "%v", err)
		}
	}
	seen := map[string]bool{}
	for j, e := range cb.Errors {
		ep := index(field(path, "errors"), j)
		if oneOf(p, ep, e, failureErrors...) && seen[e] {
			p.add(ep, "%q is listed twice", e)
		}
		seen[e] = true
	}
	if len(cb.StatusCodes) == 0 && len(cb.Errors) == 0 {
		p.add(path, "counts no failures: status_codes and errors are both empty")
	}
	positive(p, field(path, "trip_duration"), cb.TripDuration)
	positive(p, field(path, "max_trip_duration"), cb.MaxTripDuration)
}

func checkHealthCheck(p *problems, path string, b Backend) {
	hc := b.HealthCheck
	pp := field(path, "path")
	switch {
	case hc.Path == "" && healthCheckPath(&b) == "":
		// No default for an unknown kind; the kind is reported.
	case !strings.HasPrefix(hc.Path, "/"):
		p.add(pp, "must start with /, such as /v1/models")
	case strings.IndexFunc(hc.Path, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '#' }) >= 0:
		p.add(pp, "must not contain white space, control characters or #")
	}
	positive(p, field(path, "interval"), hc.Interval)
	positive(p, field(path, "timeout"), hc.Timeout)
	if hc.Interval > 0 && hc.Timeout >= hc.Interval {
		p.add(field(path, "timeout"), "%s must be shorter than interval (%s), so that a probe ends before the next starts",
			hc.Timeout.D(), hc.Interval.D())
	}
	if hc.UnhealthyThreshold < 1 {
		p.add(field(path, "unhealthy_threshold"), "must be at least 1")
	}
	if hc.HealthyThreshold < 1 {
		p.add(field(path, "healthy_threshold"), "must be at least 1")
	}
}

// backendIndex maps each backend name to the index of its first definition.
func (c *Config) backendIndex() map[string]int {
	idx := map[string]int{}
	for i, b := range c.Backends {
		if _, dup := idx[b.Name]; !dup {
			idx[b.Name] = i
		}
	}
	return idx
}

// poolIndex maps each pool name to the index of its first definition.
func (c *Config) poolIndex() map[string]int {
	idx := map[string]int{}
	for i, pl := range c.Pools {
		if _, dup := idx[pl.Name]; !dup {
			idx[pl.Name] = i
		}
	}
	return idx
}

const maxAttempts = 10

func (c *Config) validatePools(p *problems) {
	if len(c.Pools) == 0 {
		p.add("pools", "at least one pool is required")
	}
	backends := c.backendIndex()
	seen := names{}
	for i, pl := range c.Pools {
		path := index("pools", i)
		if checkName(p, field(path, "name"), pl.Name) {
			seen.claim(p, field(path, "name"), pl.Name)
		}
		oneOf(p, field(path, "strategy"), pl.Strategy, "round_robin", "least_latency", "least_busy")
		if len(pl.Members) == 0 {
			p.add(field(path, "members"), "at least one member is required")
		}
		inPool := map[string]string{}
		for j, m := range pl.Members {
			mp := index(field(path, "members"), j)
			bp := field(mp, "backend")
			if m.Backend == "" {
				p.add(bp, "required")
			} else {
				if _, ok := backends[m.Backend]; !ok {
					p.add(bp, "no backend is named %q", m.Backend)
				} else if first, dup := inPool[m.Backend]; dup {
					p.add(bp, "backend %q is already in this pool as %s", m.Backend, first)
				} else {
					inPool[m.Backend] = mp
				}
			}
			if m.Priority < 1 {
				p.add(field(mp, "priority"), "must be at least 1")
			}
			if m.Weight < 1 {
				p.add(field(mp, "weight"), "must be at least 1")
			}
		}
		checkRetry(p, field(path, "retry"), pl.Retry)
		if pl.Throttle != nil {
			checkThrottle(p, field(path, "throttle"), pl.Throttle)
		}
		if pl.SessionAffinity != nil {
			checkCookieName(p, field(path, "session_affinity.cookie"), pl.SessionAffinity.Cookie)
		}
	}
}

// checkCookieName checks that name is a cookie name: an RFC 6265 token.
func checkCookieName(p *problems, path, name string) {
	switch {
	case name == "":
		p.add(path, "required; want a cookie name such as sluice-affinity")
	case !isToken(name):
		p.add(path, "%s is not a cookie name; use letters, digits and %s (RFC 6265)", quote(name), tokenSymbols)
	}
}

// checkThrottle checks a pool's low-priority throttling.
func checkThrottle(p *problems, path string, t *Throttle) {
	if t.MinRemainingTokens < 0 {
		p.add(field(path, "min_remaining_tokens"), "must not be negative")
	}
	if t.MinRemainingRequests < 0 {
		p.add(field(path, "min_remaining_requests"), "must not be negative")
	}
	if t.MinRemainingTokens == 0 && t.MinRemainingRequests == 0 {
		p.add(path, "sets neither min_remaining_tokens nor min_remaining_requests, so it would never hold a request back")
	}
	if t.MaxWait < 0 {
		p.add(field(path, "max_wait"), "must not be negative; 0 refuses at once")
	}
}

func checkRetry(p *problems, path string, r Retry) {
	if r.Attempts < 1 || r.Attempts > maxAttempts {
		p.add(field(path, "attempts"), "must be from 1 to %d", maxAttempts)
	}
	seen := map[string]bool{}
	for j, on := range r.On {
		op := index(field(path, "on"), j)
		if _, _, err := ParseStatusRange(on); err != nil && !slices.Contains(failureErrors, on) {
			p.add(op, "%s is not a status code, a range such as 500-599, timeout or connection", quote(on))
		} else if seen[on] {
			p.add(op, "%q is listed twice", on)
		}
		seen[on] = true
	}
	if r.Backoff < 0 {
		p.add(field(path, "backoff"), "must not be negative; 0 retries at once")
	}
	if r.Attempts > 1 && len(r.On) == 0 {
		p.add(field(path, "on"), "empty, so attempts: %d never retries; list what to retry, such as [\"429\", \"500-599\", timeout, connection]", r.Attempts)
	}
}

// maxModelName bounds a model name: the gateway records at most this much of
// the name a client asks for (wire.MaxModelBytes).
const maxModelName = 256

func (c *Config) validateModels(p *problems) {
	if len(c.Models) == 0 {
		p.add("models", "at least one model is required")
	}
	pools, backends := c.poolIndex(), c.backendIndex()
	for _, model := range sortedKeys(c.Models) {
		path := key("models", model)
		if !checkName(p, path, model) {
			continue
		}
		if len(model) > maxModelName {
			p.add(path, "a model name may be at most %d bytes long", maxModelName)
			continue
		}
		name := c.Models[model]
		pi, ok := pools[name]
		switch {
		case name == "":
			p.add(path, "a pool name is required")
			continue
		case !ok:
			p.add(path, "no pool is named %q", name)
			continue
		}
		for _, m := range c.Pools[pi].Members {
			bi, ok := backends[m.Backend]
			if !ok {
				continue
			}
			if _, ok := c.Backends[bi].Deployments[model]; !ok {
				p.add(field(index("backends", bi), "deployments"),
					"no deployment for model %q, which pool %q sends to this backend", model, name)
			}
		}
	}
}
