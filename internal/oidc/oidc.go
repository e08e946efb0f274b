// Package oidc validates the JWT access tokens clients send, against the
// identity providers of auth.jwt: each provider's signing keys are found
// through its OpenID Connect discovery document (or a JWKS URL), fetched in
// the background and refreshed, and a token is accepted when its signature,
// exp, nbf, iss and aud hold. What the token's application may do is not
// decided here: package principal maps it to a subscription.
//
// Signatures are checked by github.com/golang-jwt/jwt/v5, with keys looked up
// by github.com/MicahParks/keyfunc/v3 in a github.com/MicahParks/jwkset
// store. Fetching the key set is this package's own, because the library's
// refresh on an unknown key id runs on the request's context (a short wait
// bound would cancel the fetch itself) and its first fetch blocks: here a
// token with an unknown key id starts at most one fetch per
// unknown_key_refresh, which runs to its end in the background, and the
// request waits at most UnknownKeyWait for it.
//
// The package is a mechanism: it imports config and secret only.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sluice-gateway/sluice/internal/config"
)

// Check names the check a token failed, for the client's error and the
// metrics.
type Check uint8

// The checks, in the order a token meets them.
const (
	CheckNone            Check = iota
	CheckMalformed             // not a JWT that parses
	CheckIssuer                // iss is not an accepted issuer (another tenant)
	CheckAlgorithm             // alg is not accepted (none, HMAC, ...)
	CheckUnknownKey            // kid is not in the provider's key set
	CheckSignature             // the signature does not verify
	CheckExpired               // exp has passed
	CheckNotYetValid           // nbf is in the future
	CheckAudience              // aud is not an accepted audience
	CheckClaims                // a required claim is missing (exp, the application)
	CheckKeysUnavailable       // the provider's keys are not loaded yet
	numChecks
)

var checkNames = [numChecks]string{"accepted", "malformed", "issuer", "algorithm", "unknown_key", "signature",
	"expired", "not_yet_valid", "audience", "claims", "keys_unavailable"}

// String returns the check's name as metrics label it.
func (c Check) String() string {
	if c < numChecks {
		return checkNames[c]
	}
	return "unknown"
}

// Checks lists every check's name, for metrics.
func Checks() []string { return checkNames[:] }

// Error is a token that was not accepted. Its Description says which check
// failed, for the client; it never holds the token.
type Error struct {
	Check       Check
	Description string
	err         error
}

func (e *Error) Error() string { return "oidc: " + e.Description }
func (e *Error) Unwrap() error { return e.err }

func fail(c Check, err error, format string, args ...any) *Error {
	return &Error{Check: c, Description: fmt.Sprintf(format, args...), err: err}
}

// Claims is what an accepted token says of its caller.
type Claims struct {
	// Provider is the name of the provider that issued the token.
	Provider string
	// Issuer and Subject are the token's iss and sub.
	Issuer, Subject string
	// App is the calling application's id: the value of the first of the
	// provider's client claims the token carries.
	App string
	// Roles are the values of the provider's roles claim.
	Roles []string
	// Expiry is exp.
	Expiry time.Time
}

// HasRole reports whether the claims carry one of roles.
func (c *Claims) HasRole(roles []string) bool {
	for _, r := range c.Roles {
		if slices.Contains(roles, r) {
			return true
		}
	}
	return false
}

// Options configure a Set.
type Options struct {
	// Client fetches discovery documents and key sets. Default: a client
	// with a 10s timeout.
	Client *http.Client
	// Logger receives fetch failures. Default: discard.
	Logger *slog.Logger
	// Now is the clock of exp, nbf and the refresh limits. Default time.Now.
	Now func() time.Time
	// UnknownKeyWait bounds how long a request with an unknown key id waits
	// for the key set fetch it starts or joins. Default 50ms.
	UnknownKeyWait time.Duration
	// RetryMax bounds the wait between fetches that fail. Default 1m.
	RetryMax time.Duration
}

// maxToken bounds a token's length: Entra tokens with many claims are a few
// kilobytes.
const maxToken = 32 << 10

// Set owns the providers: their key sets and background fetches, kept
// across config reloads for providers whose config did not change. It is
// safe for concurrent use; Close stops every fetch.
type Set struct {
	o Options

	mu        sync.Mutex // guards providers and closed
	providers []*Provider
	closed    bool
}

// NewSet returns an empty Set.
func NewSet(o Options) *Set {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.UnknownKeyWait <= 0 {
		o.UnknownKeyWait = 50 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = time.Minute
	}
	return &Set{o: o}
}

// Verifier validates tokens against a list of providers. It is immutable
// and safe for concurrent use; a nil Verifier accepts nothing.
type Verifier struct {
	providers []*Provider
}

// Update returns the Verifier of cfgs: providers whose config is unchanged
// keep their keys and fetches; the others start theirs now, in the
// background; those cfgs no longer name are stopped.
func (s *Set) Update(cfgs []config.JWTProvider) *Verifier {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &Verifier{}
	var keep []*Provider
	for _, c := range cfgs {
		var p *Provider
		for _, old := range s.providers {
			if reflect.DeepEqual(old.cfg, c) && !slices.Contains(keep, old) {
				p = old
				break
			}
		}
		if p == nil && !s.closed {
			p = newProvider(c, s.o)
		}
		if p != nil {
			keep = append(keep, p)
			v.providers = append(v.providers, p)
		}
	}
	for _, old := range s.providers {
		if !slices.Contains(keep, old) {
			old.close()
		}
	}
	s.providers = keep
	return v
}

// Close stops every provider's fetches and waits for them.
func (s *Set) Close() {
	s.mu.Lock()
	ps := s.providers
	s.providers, s.closed = nil, true
	s.mu.Unlock()
	for _, p := range ps {
		p.close()
	}
}

// Stats returns the counters of the providers in use.
func (s *Set) Stats() []Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Stats, 0, len(s.providers))
	for _, p := range s.providers {
		out = append(out, p.stats())
	}
	return out
}

// Empty reports whether v has no provider.
func (v *Verifier) Empty() bool { return v == nil || len(v.providers) == 0 }

// Verify validates token and returns its claims, or an *Error saying which
// check failed. ctx bounds the wait for a key set fetch.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) > maxToken {
		return nil, fail(CheckMalformed, nil, "the token is longer than %d bytes", maxToken)
	}
	var unverified jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &unverified); err != nil {
		return nil, fail(CheckMalformed, err, "the token is not a JWT that parses")
	}
	iss, _ := unverified["iss"].(string)
	if v != nil {
		for _, p := range v.providers {
			if slices.Contains(p.cfg.Issuers, iss) {
				c, err := p.verify(ctx, token)
				p.count(err)
				return c, err
			}
		}
	}
	if iss == "" {
		return nil, fail(CheckIssuer, nil, "the token has no issuer (iss)")
	}
	return nil, fail(CheckIssuer, nil, "the token's issuer is not accepted")
}

// Provider is one identity provider of auth.jwt: its key set and checks.
type Provider struct {
	cfg    config.JWTProvider
	o      Options
	keys   *keySet
	parser *jwt.Parser

	results [numChecks]atomic.Uint64
}

func newProvider(c config.JWTProvider, o Options) *Provider {
	p := &Provider{cfg: c, o: o}
	p.keys = newKeySet(c, o)
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(c.Algorithms),
		jwt.WithLeeway(c.ClockSkew.D()),
		jwt.WithTimeFunc(o.Now),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(c.Audiences...),
	}
	p.parser = jwt.NewParser(opts...)
	return p
}

func (p *Provider) close() { p.keys.close() }

// verify checks token's signature and claims against the provider.
func (p *Provider) verify(ctx context.Context, token string) (*Claims, error) {
	var mc jwt.MapClaims
	_, err := p.parser.ParseWithClaims(token, &mc, p.keys.keyfunc(ctx))
	if err != nil {
		return nil, p.classify(err)
	}
	c := &Claims{Provider: p.cfg.Name}
	c.Issuer, _ = mc["iss"].(string)
	c.Subject, _ = mc["sub"].(string)
	if exp, err := mc.GetExpirationTime(); err == nil && exp != nil {
		c.Expiry = exp.Time
	}
	for _, name := range p.cfg.ClientClaims {
		if app, ok := mc[name].(string); ok && app != "" {
			c.App = app
			break
		}
	}
	if c.App == "" {
		return nil, fail(CheckClaims, nil, "the token names no application (%s)", strings.Join(p.cfg.ClientClaims, ", "))
	}
	c.Roles = roles(mc[p.cfg.RolesClaim])
	return c, nil
}

// roles reads a roles claim: an array of strings or a space-separated
// string.
func roles(v any) []string {
	switch r := v.(type) {
	case string:
		return strings.Fields(r)
	case []any:
		out := make([]string, 0, len(r))
		for _, e := range r {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// classify turns a parser error into the check that failed.
func (p *Provider) classify(err error) *Error {
	var ke *Error
	switch {
	case errors.As(err, &ke):
		return ke
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fail(CheckMalformed, err, "the token is not a JWT that parses")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method"):
		return fail(CheckAlgorithm, err, "the token's signing algorithm is not accepted (want %s)", strings.Join(p.cfg.Algorithms, ", "))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return fail(CheckSignature, err, "the token's signature does not verify")
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail(CheckExpired, err, "the token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fail(CheckNotYetValid, err, "the token is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fail(CheckAudience, err, "the token's audience is not accepted")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fail(CheckClaims, err, "the token lacks a required claim (exp)")
	}
	return fail(CheckSignature, err, "the token could not be verified")
}

// count records how a token the provider judged fared.
func (p *Provider) count(err error) {
	var e *Error
	if errors.As(err, &e) {
		p.results[e.Check].Add(1)
		return
	}
	p.results[CheckNone].Add(1)
}

// Stats are a provider's counters.
type Stats struct {
	Name string
	// Results counts the tokens the provider judged, by Check (index
	// CheckNone: accepted).
	Results [numChecks]uint64
	// Fetches and FetchErrors count the key set (and discovery) fetches.
	Fetches, FetchErrors uint64
	// Keys is the number of keys known.
	Keys int
}

func (p *Provider) stats() Stats {
	s := Stats{Name: p.cfg.Name, Fetches: p.keys.fetches.Load(), FetchErrors: p.keys.fetchErrors.Load(), Keys: p.keys.count()}
	for i := range s.Results {
		s.Results[i] = p.results[i].Load()
	}
	return s
}
