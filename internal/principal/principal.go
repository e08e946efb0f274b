// Package principal authenticates clients by who they are rather than by a
// subscription key: a JWT bearer token validated by package oidc, or a
// verified TLS client certificate. Each is a proxy.Authenticator (the
// interface is met structurally: this package sits below the pipeline and
// never imports it) that maps the principal to its subscription: the one
// listing it in subscriptions[].principals, or for a token application an
// implicit subscription in the product its roles name
// (products[].roles).
package principal

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/auth"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/oidc"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// Tokens authenticates bearer JWTs. A request without one passes to the
// next authenticator (auth.ErrNoCredential); one with a token that fails a
// check is refused with 401 and WWW-Authenticate: Bearer
// error="invalid_token". Safe for concurrent use.
type Tokens struct {
	// Verifier returns the verifier of the config in force; nil, or one
	// without providers, refuses every token.
	Verifier func() *oidc.Verifier
	// Now is the clock of subscription expiry. Default time.Now.
	Now func() time.Time
}

// Authenticate implements proxy.Authenticator.
func (a *Tokens) Authenticate(r *http.Request, t *route.Table) (*route.Subscription, error) {
	tok, err := auth.BearerToken(r.Header)
	switch {
	case errors.Is(err, auth.ErrNoCredential):
		return nil, auth.ErrNoCredential
	case errors.Is(err, auth.ErrConflict):
		return nil, wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "conflicting_credentials",
			"The request carries two different bearer tokens. Send one.")
	case err != nil:
		return nil, err
	}
	var v *oidc.Verifier
	if a.Verifier != nil {
		v = a.Verifier()
	}
	if v.Empty() {
		return nil, invalidToken("this gateway accepts no bearer tokens; send a subscription key")
	}
	claims, err := v.Verify(r.Context(), tok)
	if err != nil {
		return nil, refusal(err)
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	key, kerr := auth.KeyFromRequest(r)
	switch {
	case errors.Is(kerr, auth.ErrConflict):
		return nil, wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "conflicting_credentials",
			"The request carries two different subscription keys beside its token. Send one.")
	case kerr == nil:
		return withKey(t, key, claims, now())
	}
	sub, ok := t.ForApplication(claims.App, claims.Roles)
	if !ok {
		return nil, wire.NewError(http.StatusForbidden, wire.TypePermission, "no_subscription_for_principal",
			"The token is valid, but its application "+strconv.Quote(clip(claims.App))+
				" has no subscription and no role that gives it a product.")
	}
	if err := sub.Usable(now()); err != nil {
		return nil, err
	}
	if err := sub.Product.Requires(false, true); err != nil {
		return nil, err
	}
	return sub, nil
}

// withKey is a request with a key and a valid token: the key names the
// subscription, and the token must be one of its principals when it has
// any, as API Management's subscription key plus validate-jwt.
func withKey(t *route.Table, key string, c *oidc.Claims, now time.Time) (*route.Subscription, error) {
	sub, ok := t.Subscription(key)
	if !ok {
		return nil, wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "invalid_api_key",
			"The subscription key is not valid.")
	}
	if err := sub.Usable(now); err != nil {
		return nil, err
	}
	if len(sub.Principals) > 0 && !slices.Contains(sub.Principals, c.App) {
		return nil, wire.NewError(http.StatusForbidden, wire.TypePermission, "token_not_for_subscription",
			"The token's application is not a principal of the subscription its key names.")
	}
	return sub, sub.Product.Requires(true, true)
}

// refusal is the client's answer to a token that failed a check.
func refusal(err error) error {
	var e *oidc.Error
	if !errors.As(err, &e) {
		return invalidToken("the token could not be verified")
	}
	if e.Check == oidc.CheckKeysUnavailable {
		w := wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "token_keys_unavailable",
			"The gateway cannot verify tokens now: its identity provider's signing keys are not loaded yet. Retry later.")
		w.RetryAfterMillis = 5000
		return w
	}
	return invalidToken(e.Description)
}

// invalidToken is 401 with RFC 6750's challenge; description is the
// gateway's own words, never the token.
func invalidToken(description string) *wire.Error {
	w := wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "invalid_token",
		"The bearer token was refused: "+description+".")
	w.Challenge = `Bearer error="invalid_token", error_description="` + strings.ReplaceAll(description, `"`, "'") + `"`
	return w
}

// clip cuts a client-chosen string for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

// Certificates authenticates verified TLS client certificates
// (server.tls.client_ca_file): a certificate whose common name or subject
// alternative names name a subscription's principal (cert:CN=...,
// cert:DNS=..., cert:URI=..., cert:EMAIL=...) makes the request that
// subscription's. It is asked after keys and tokens, so a request that
// carries one of those is judged by it; a certificate that names no
// principal passes (auth.ErrNoCredential). Safe for concurrent use.
type Certificates struct {
	// Now is the clock of subscription expiry. Default time.Now.
	Now func() time.Time
}

// Authenticate implements proxy.Authenticator.
func (a *Certificates) Authenticate(r *http.Request, t *route.Table) (*route.Subscription, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, auth.ErrNoCredential
	}
	for _, p := range CertPrincipals(r) {
		sub, ok := t.Principal(p)
		if !ok {
			continue
		}
		now := time.Now
		if a.Now != nil {
			now = a.Now
		}
		if err := sub.Usable(now()); err != nil {
			return nil, err
		}
		if err := sub.Product.Requires(false, false); err != nil {
			return nil, err
		}
		return sub, nil
	}
	return nil, auth.ErrNoCredential
}

// CertPrincipals lists the principals a request's verified client
// certificate names, common name first.
func CertPrincipals(r *http.Request) []string {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	c := r.TLS.VerifiedChains[0][0]
	var out []string
	if c.Subject.CommonName != "" {
		out = append(out, config.CertPrincipalPrefix+"CN="+c.Subject.CommonName)
	}
	for _, d := range c.DNSNames {
		out = append(out, config.CertPrincipalPrefix+"DNS="+d)
	}
	for _, u := range c.URIs {
		out = append(out, config.CertPrincipalPrefix+"URI="+u.String())
	}
	for _, e := range c.EmailAddresses {
		out = append(out, config.CertPrincipalPrefix+"EMAIL="+e)
	}
	return out
}
