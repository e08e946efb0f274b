package config

import (
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/secret"
)

// jwtAlgorithms are the signature algorithms a provider may accept: the
// asymmetric ones. HMAC would let anyone holding the public key (the JWKS is
// public) sign tokens, and none signs nothing.
var jwtAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

// maxClockSkew bounds auth.jwt[].clock_skew: Entra ID itself allows five
// minutes.
const maxClockSkew = 5 * time.Minute

// CertPrincipalPrefix starts a principal that a client certificate names.
const CertPrincipalPrefix = "cert:"

// certFields are the parts of a client certificate a principal may name.
var certFields = []string{"CN", "DNS", "URI", "EMAIL"}

func (c *Config) validateAuth(p *problems) {
	seen := names{}
	for i, j := range c.Auth.JWT {
		path := index("auth.jwt", i)
		if checkName(p, field(path, "name"), j.Name) {
			seen.claim(p, field(path, "name"), j.Name)
		}
		switch {
		case j.OpenIDConfiguration == "" && j.JWKSURL == "":
			p.add(path, "needs openid_configuration or jwks_url, where the provider's signing keys are found")
		case j.OpenIDConfiguration != "" && j.JWKSURL != "":
			p.add(field(path, "jwks_url"), "set with openid_configuration; give one of them")
		case j.OpenIDConfiguration != "":
			checkFetchURL(p, field(path, "openid_configuration"), j.OpenIDConfiguration)
		default:
			checkFetchURL(p, field(path, "jwks_url"), j.JWKSURL)
		}
		nonEmptyList(p, field(path, "issuers"), j.Issuers, "an issuer such as https://login.microsoftonline.com/TENANT/v2.0")
		nonEmptyList(p, field(path, "audiences"), j.Audiences, "an audience such as api://sluice")
		nonEmptyList(p, field(path, "client_claims"), j.ClientClaims, "a claim such as azp or appid")
		if j.RolesClaim == "" {
			p.add(field(path, "roles_claim"), "required; want a claim such as roles")
		}
		if len(j.Algorithms) == 0 {
			p.add(field(path, "algorithms"), "at least one algorithm is required, such as RS256")
		}
		algs := map[string]bool{}
		for k, a := range j.Algorithms {
			ap := index(field(path, "algorithms"), k)
			switch {
			case strings.EqualFold(a, "none") || strings.HasPrefix(strings.ToUpper(a), "HS"):
				p.add(ap, "%s is never accepted: a token must be signed with the provider's private key; want %s", quote(a), orList(jwtAlgorithms))
			case !slices.Contains(jwtAlgorithms, a):
				p.add(ap, "%s is not allowed; want %s", quote(a), orList(jwtAlgorithms))
			case algs[a]:
				p.add(ap, "%q is listed twice", a)
			}
			algs[a] = true
		}
		if j.ClockSkew > Duration(maxClockSkew) {
			p.add(field(path, "clock_skew"), "at most %s", maxClockSkew)
		}
		positive(p, field(path, "unknown_key_refresh"), j.UnknownKeyRefresh)
		positive(p, field(path, "refresh_interval"), j.RefreshInterval)
	}
	if len(c.Admin.JWTRoles) > 0 && len(c.Auth.JWT) == 0 {
		p.add("admin.jwt_roles", "needs auth.jwt: roles come from the tokens of its providers")
	}
	for i, r := range c.Admin.JWTRoles {
		checkName(p, index("admin.jwt_roles", i), r)
	}
}

// nonEmptyList records a problem when list is empty or holds an empty value.
func nonEmptyList(p *problems, path string, list []string, example string) {
	if len(list) == 0 {
		p.add(path, "at least one is required: %s", example)
	}
	for i, v := range list {
		if strings.TrimSpace(v) == "" || strings.TrimSpace(v) != v {
			p.add(index(path, i), "must not be empty or start or end with white space")
		}
	}
}

// checkFetchURL checks a URL Sluice fetches keys or tokens from: https, or
// http on a loopback address (a sidecar, a test), since anyone on the path
// of plain HTTP could hand Sluice keys or read its secret.
func checkFetchURL(p *problems, path, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		p.add(path, "must be an absolute https URL with a host")
	case u.User != nil:
		p.add(path, "must not hold credentials")
	case u.Scheme == "http" && !loopbackHost(u.Hostname()):
		p.add(path, "must be https (plain http is allowed on a loopback address only)")
	}
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkTLS checks a listener's TLS.
func checkTLS(p *problems, path string, t *TLS) {
	if t == nil {
		return
	}
	if t.CertFile == "" {
		p.add(field(path, "cert_file"), "required: the PEM certificate chain")
	}
	if t.KeyFile == "" {
		p.add(field(path, "key_file"), "required: the PEM private key")
	}
	switch {
	case t.ClientCAFile != "":
		oneOf(p, field(path, "client_auth"), t.ClientAuth, "request", "require")
	case t.ClientAuth != "":
		p.add(field(path, "client_auth"), "needs client_ca_file, the authorities client certificates are verified against")
	}
}

// checkAuth checks a backend's credential: exactly one kind.
func checkAuth(p *problems, path string, a BackendAuth) {
	var kinds []string
	if !a.APIKey.IsZero() {
		kinds = append(kinds, "api_key")
	}
	if a.ManagedIdentity != nil {
		kinds = append(kinds, "managed_identity")
	}
	if a.ClientCredentials != nil {
		kinds = append(kinds, "client_credentials")
	}
	if a.OAuth2 != nil {
		kinds = append(kinds, "oauth2")
	}
	switch len(kinds) {
	case 0:
		p.add(field(path, "api_key"), "required (or managed_identity, client_credentials or oauth2)")
		return
	case 1:
	default:
		p.add(path, "sets %s; give exactly one credential", strings.Join(kinds, " and "))
		return
	}
	switch {
	case !a.APIKey.IsZero():
		if k := a.APIKey.Reveal(); strings.TrimSpace(k) != k {
			p.add(field(path, "api_key"), "must not start or end with white space")
		}
	case a.ManagedIdentity != nil:
		mp := field(path, "managed_identity")
		if u, err := url.Parse(a.ManagedIdentity.Resource); err != nil || u.Scheme == "" || u.Host == "" {
			p.add(field(mp, "resource"), "must be an absolute URI such as https://cognitiveservices.azure.com")
		}
		if strings.ContainsAny(a.ManagedIdentity.ClientID, " \t\n&?#/") {
			p.add(field(mp, "client_id"), "must be an identity's client id, such as 00000000-0000-0000-0000-000000000000")
		}
	case a.ClientCredentials != nil:
		checkClientCredentials(p, field(path, "client_credentials"), a.ClientCredentials)
	case a.OAuth2 != nil:
		op := field(path, "oauth2")
		o := a.OAuth2
		if o.TokenURL == "" {
			p.add(field(op, "token_url"), "required")
		} else {
			checkFetchURL(p, field(op, "token_url"), o.TokenURL)
		}
		if o.ClientID == "" {
			p.add(field(op, "client_id"), "required")
		}
		checkSecret(p, field(op, "client_secret"), o.ClientSecret, true)
		for i, s := range o.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\n") {
				p.add(index(field(op, "scopes"), i), "a scope is one word, without white space")
			}
		}
	}
}

func checkClientCredentials(p *problems, path string, cc *ClientCredentials) {
	if cc.TenantID == "" {
		p.add(field(path, "tenant_id"), "required")
	} else if strings.ContainsAny(cc.TenantID, "/?#% \t") {
		p.add(field(path, "tenant_id"), "%s is not a tenant id or domain", quote(cc.TenantID))
	}
	if cc.ClientID == "" {
		p.add(field(path, "client_id"), "required")
	}
	switch {
	case cc.ClientSecret.IsZero() && cc.FederatedTokenFile == "":
		p.add(path, "needs client_secret or federated_token_file")
	case !cc.ClientSecret.IsZero() && cc.FederatedTokenFile != "":
		p.add(field(path, "federated_token_file"), "set with client_secret; give one of them")
	case !cc.ClientSecret.IsZero():
		checkSecret(p, field(path, "client_secret"), cc.ClientSecret, true)
	}
	// azidentity refuses a non-https authority, so that a secret never
	// travels in clear.
	if u, err := url.Parse(cc.AuthorityHost); err != nil || u.Scheme != "https" || u.Host == "" {
		p.add(field(path, "authority_host"), "must be an https URL such as https://login.microsoftonline.com/")
	}
	if cc.Scope == "" {
		p.add(field(path, "scope"), "required; want a scope such as https://cognitiveservices.azure.com/.default")
	}
}

// checkSecret checks a secret's value without ever quoting it.
func checkSecret(p *problems, path string, v secret.Value, required bool) {
	s := v.Reveal()
	switch {
	case s == "" && required:
		p.add(path, "required")
	case strings.TrimSpace(s) != s:
		p.add(path, "must not start or end with white space")
	}
}

// checkPrincipal checks a subscription's principal and reports whether it
// names a client certificate.
func checkPrincipal(p *problems, path, principal string) (cert bool) {
	if !checkName(p, path, principal) {
		return false
	}
	rest, ok := strings.CutPrefix(principal, CertPrincipalPrefix)
	if !ok {
		return false
	}
	name, value, ok := strings.Cut(rest, "=")
	if !ok || value == "" || !slices.Contains(certFields, name) {
		p.add(path, "%s: a certificate principal is cert:CN=<common name>, cert:DNS=<name>, cert:URI=<uri> or cert:EMAIL=<address>", quote(principal))
	}
	return true
}

// validateIdentity checks what ties subscriptions and products to client
// identities: principals, roles and require, each against auth.jwt and
// server.tls.
func (c *Config) validateIdentity(p *problems) {
	hasJWT := len(c.Auth.JWT) > 0
	hasCerts := c.Server.TLS != nil && c.Server.TLS.ClientCAFile != ""
	principals := map[string]string{} // principal -> path of its first use
	for i, s := range c.Subscriptions {
		path := index("subscriptions", i)
		for j, pr := range s.Principals {
			pp := index(field(path, "principals"), j)
			cert := checkPrincipal(p, pp, pr)
			switch {
			case cert && !hasCerts:
				p.add(pp, "names a client certificate, but server.tls.client_ca_file is not set, so none is ever verified")
			case !cert && !hasJWT:
				p.add(pp, "names a token application, but auth.jwt lists no identity provider")
			}
			if first, dup := principals[pr]; dup {
				p.add(pp, "%q is already a principal of %s", pr, first)
			} else {
				principals[pr] = pp
			}
		}
	}
	roles := map[string]string{}
	for i, pr := range c.Products {
		path := index("products", i)
		for j, r := range pr.Roles {
			rp := index(field(path, "roles"), j)
			if !checkName(p, rp, r) {
				continue
			}
			if !hasJWT {
				p.add(rp, "needs auth.jwt: roles come from the tokens of its providers")
			}
			if first, dup := roles[r]; dup {
				p.add(rp, "role %q already puts applications into %s", r, first)
			} else {
				roles[r] = path
			}
		}
		seen := map[string]bool{}
		for j, r := range pr.Require {
			rp := index(field(path, "require"), j)
			if !oneOf(p, rp, r, "key", "jwt") {
				continue
			}
			if seen[r] {
				p.add(rp, "%q is listed twice", r)
			}
			seen[r] = true
			if r == "jwt" && !hasJWT {
				p.add(rp, "needs auth.jwt, the providers whose tokens are required")
			}
		}
	}
}
