package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Validate checks every field and the relations between fields, and returns
// an Errors listing every problem, or nil. It does not apply defaults: Parse
// does that first, and a Config built in code must set what Parse would
// default. Its errors carry field paths but no file or line.
func (c *Config) Validate() error {
	return c.validate().err()
}

// problems collects validation errors.
type problems struct{ errs Errors }

func (p *problems) add(path, format string, args ...any) {
	p.errs = append(p.errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// validate returns every problem, in the order of the sections in the file.
func (c *Config) validate() Errors {
	var p problems
	c.validateServer(&p)
	c.validateAdmin(&p)
	c.validateState(&p)
	c.validateUsage(&p)
	c.validateMetrics(&p)
	c.validateTracing(&p)
	c.validateLogging(&p)
	c.validateBackends(&p)
	c.validatePools(&p)
	c.validateModels(&p)
	c.validateProducts(&p)
	c.validateCache(&p)
	c.validateSubscriptions(&p)
	c.validateAuth(&p)
	c.validateIdentity(&p)
	c.validateGuard(&p)
	return p.errs
}

func (c *Config) validateTracing(p *problems) {
	t := c.Tracing
	oneOf(p, "tracing.protocol", t.Protocol, "http", "grpc")
	if r := t.SampleRatio; r != nil && !(*r >= 0 && *r <= 1) {
		p.add("tracing.sample_ratio", "must be from 0 to 1")
	}
	if t.Endpoint != "" && strings.ContainsAny(t.Endpoint, " \t\n") {
		p.add("tracing.endpoint", "must not contain white space")
	}
	for name := range t.Headers {
		if !isToken(name) {
			p.add(key("tracing.headers", name), "%q is not a header name", name)
		}
	}
	if t.ServiceName == "" {
		p.add("tracing.service_name", "required; want a name such as sluice")
	}
}

func (c *Config) validateLogging(p *problems) {
	l := c.Logging
	if l.PromptMaxBytes < 1 {
		p.add("logging.prompt_max_bytes", "must be at least 1")
	}
	for i, re := range l.Redact {
		if _, err := regexp.Compile(re); err != nil {
			p.add(index("logging.redact", i), "not a regular expression: %v", err)
		}
	}
}

func (c *Config) validateServer(p *problems) {
	s := c.Server
	checkListen(p, "server.listen", s.Listen)
	if s.MaxRequestBytes <= 0 {
		p.add("server.max_request_bytes", "must be greater than 0")
	}
	positive(p, "server.read_header_timeout", s.ReadHeaderTimeout)
	positive(p, "server.read_body_timeout", s.ReadBodyTimeout)
	if s.MaxConnections <= 0 {
		p.add("server.max_connections", "must be greater than 0")
	}
	if s.MaxConnectionsPerIP <= 0 {
		p.add("server.max_connections_per_ip", "must be greater than 0")
	}
	for i, pre := range s.PathPrefixes {
		path := index("server.path_prefixes", i)
		switch {
		case !strings.HasPrefix(pre, "/") || pre == "/" || strings.HasSuffix(pre, "/"):
			p.add(path, "%s: want a path such as /myAPI, starting with / and not ending with one", quote(pre))
		case strings.ContainsAny(pre, "?#% \t"):
			p.add(path, "%s: a prefix is a plain path, without a query, fragment, escapes or spaces", quote(pre))
		case pre == "/v1" || pre == "/openai" || strings.HasPrefix(pre, "/v1/") || strings.HasPrefix(pre, "/openai/"):
			p.add(path, "%s would hide Sluice's own /v1 and /openai paths", quote(pre))
		}
	}
	for i, tp := range s.TrustedProxies {
		if _, err := ParsePrefix(tp); err != nil {
			p.add(index("server.trusted_proxies", i), "%v", err)
		}
	}
	checkTLS(p, "server.tls", s.TLS)
	// shutdown_grace may be 0: stop at once.
}

func (c *Config) validateAdmin(p *problems) {
	a := c.Admin
	if a.Listen == "" {
		if !a.APIKey.IsZero() {
			p.add("admin.api_key", "set, but admin.listen is empty, so there is no admin API to protect")
		}
		if len(a.JWTRoles) > 0 {
			p.add("admin.jwt_roles", "set, but admin.listen is empty, so there is no admin API to open")
		}
		if a.TLS != nil {
			p.add("admin.tls", "set, but admin.listen is empty, so there is no admin listener")
		}
		return
	}
	checkTLS(p, "admin.tls", a.TLS)
	if checkListen(p, "admin.listen", a.Listen) && sameListener(a.Listen, c.Server.Listen) {
		p.add("admin.listen", "must differ from server.listen (%s): the admin API never shares the client port", c.Server.Listen)
	}
	if k := a.APIKey.Reveal(); k != "" && strings.TrimSpace(k) != k {
		p.add("admin.api_key", "must not start or end with white space")
	}
}

func (c *Config) validateState(p *problems) {
	s := c.State
	if s.Store != "memory" {
		// The URL may hold a password, so it is never quoted.
		u, err := url.Parse(s.Store)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			p.add("state.store", "want memory or a redis:// or rediss:// URL with a host")
		}
	}
	oneOf(p, "state.on_store_error", s.OnStoreError, "fail_open", "fail_closed")
	positive(p, "state.timeout", s.Timeout)
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

func (c *Config) validateUsage(p *problems) {
	u := c.Usage
	// The store may hold a password, so it is never quoted.
	if path, ok := strings.CutPrefix(u.Store, "sqlite:"); ok {
		if path == "" {
			p.add("usage.store", "want sqlite:PATH with a file path after sqlite:")
		}
	} else if pu, err := url.Parse(u.Store); err != nil || (pu.Scheme != "postgres" && pu.Scheme != "postgresql") {
		p.add("usage.store", "want sqlite:PATH or a postgres:// or postgresql:// URL")
	}
	if !currencyCode.MatchString(u.Prices.Currency) {
		p.add("usage.prices.currency", "%s is not a currency code; want three capital letters such as USD or EUR", quote(u.Prices.Currency))
	}
	for _, name := range sortedKeys(u.Prices.Models) {
		path := key("usage.prices.models", name)
		if _, ok := c.Models[name]; !ok {
			p.add(path, "model %q is not in models", name)
		}
		price := u.Prices.Models[name]
		nonNegative(p, field(path, "input"), price.Input)
		nonNegative(p, field(path, "output"), price.Output)
		if price.CachedInput != nil {
			nonNegative(p, field(path, "cached_input"), *price.CachedInput)
		}
	}
}

// dimensions are the labels a metric may carry.
var dimensions = []string{"subscription", "product", "model", "deployment", "backend", "region", "client_ip"}

func (c *Config) validateMetrics(p *problems) {
	m := c.Metrics
	if m.Prometheus && c.Admin.Listen == "" {
		p.add("metrics.prometheus", "needs admin.listen: /metrics is served on the admin listener")
	}
	seen := map[string]bool{}
	for i, d := range m.Dimensions {
		path := index("metrics.dimensions", i)
		switch {
		case !slices.Contains(dimensions, d):
			p.add(path, "%s is not a dimension; want one of %s", quote(d), strings.Join(dimensions, ", "))
		case seen[d]:
			p.add(path, "%q is listed twice", d)
		}
		seen[d] = true
	}
}

// checkListen reports whether addr is host:port with a numeric port, and
// records a problem when it is not.
func checkListen(p *problems, path, addr string) bool {
	if addr == "" {
		p.add(path, "required; want host:port such as 127.0.0.1:8080")
		return false
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		if n, perr := strconv.Atoi(port); perr != nil || n < 0 || n > 65535 {
			err = fmt.Errorf("bad port")
		}
	}
	if err != nil {
		p.add(path, "%s is not host:port with a port from 0 to 65535, such as 127.0.0.1:8080", quote(addr))
		return false
	}
	return true
}

// sameListener reports whether two listen addresses would collide: the same
// port on the same host, or on a host that listens on every interface.
func sameListener(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	everywhere := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || everywhere(ha) || everywhere(hb)
}

// positive records a problem when d is not greater than 0.
func positive(p *problems, path string, d Duration) {
	if d <= 0 {
		p.add(path, "must be greater than 0")
	}
}

// nonNegative records a problem when a price is negative or not a number.
func nonNegative(p *problems, path string, v float64) {
	if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		p.add(path, "must be a number not below 0")
	}
}

// oneOf records a problem when v is not one of allowed.
func oneOf(p *problems, path, v string, allowed ...string) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	if v == "" {
		p.add(path, "required; want %s", orList(allowed))
	} else {
		p.add(path, "%s is not allowed; want %s", quote(v), orList(allowed))
	}
	return false
}

// orList writes "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// checkName records a problem when a name is empty or holds white space or
// control characters, which would break headers, logs and metric labels.
func checkName(p *problems, path, name string) bool {
	if name == "" {
		p.add(path, "required")
		return false
	}
	if strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		p.add(path, "%s must not contain white space or control characters", quote(name))
		return false
	}
	return true
}

// tokenSymbols are the characters besides letters and digits that a token
// may hold: a header name (RFC 9110, section 5.6.2) or a cookie name
// (RFC 6265, which takes the token of RFC 2616, the same set).
const tokenSymbols = "!#$%&'*+-.^_`|~"

// isToken reports whether s is a non-empty token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(tokenSymbols, r)) {
			return false
		}
	}
	return true
}

// names records where each name was first defined, to report duplicates.
type names map[string]string

// claim records that the element owning path (such as backends[2] for
// backends[2].name) is called name, or a problem when an earlier one is.
func (n names) claim(p *problems, path, name string) {
	if first, dup := n[name]; dup {
		p.add(path, "%q is already the name of %s", name, first)
		return
	}
	n[name] = parent(path)
}

// sortedKeys returns the keys of m in order, for errors in a stable order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ParsePrefix reads a trusted proxy: an IP address (a single host) or a CIDR
// range such as 10.0.0.0/8.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("want an IP address or a CIDR range such as 10.0.0.0/8, got %q", s)
		}
		return pf.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("want an IP address or a CIDR range such as 10.0.0.0/8, got %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
