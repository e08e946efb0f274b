// Package entratest is a fake Microsoft Entra ID on loopback for tests: the
// OpenID Connect discovery document and key set of a tenant, v1 and v2
// access tokens signed with go-jose (a library independent of the one the
// gateway verifies with), key rotation, the App Service managed identity
// endpoint (IDENTITY_ENDPOINT, IDENTITY_HEADER), Entra's client credentials
// token endpoint, and a plain OAuth2 token endpoint. It serves the same
// endpoints over http and over https (for MSAL, which insists on https), can
// be taken down and brought back, and counts what it was asked.
//
// Its shapes follow Entra's documented contract: v1 tokens carry iss
// https://sts.windows.net/{tenant}/ and appid, v2 tokens iss
// https://login.microsoftonline.com/{tenant}/v2.0 and azp.
package entratest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// CognitiveServices is the audience of tokens for Azure OpenAI.
const CognitiveServices = "https://cognitiveservices.azure.com"

// Server is a fake Entra ID tenant. Its methods are safe for concurrent use.
type Server struct {
	// Tenant is the tenant id.
	Tenant string
	// URL is the http base URL; TLSURL the https one (its certificate is
	// trusted by Client()).
	URL, TLSURL string
	// IdentityHeader is the secret the managed identity endpoint wants in
	// X-IDENTITY-HEADER.
	IdentityHeader string
	// ManagedIdentityApp is the application id of tokens the managed
	// identity endpoint issues.
	ManagedIdentityApp string
	// ClientID and ClientSecret are the credentials the token endpoints
	// accept.
	ClientID, ClientSecret string

	plain, secure *httptest.Server

	mu        sync.Mutex // guards what follows
	keys      map[string]*rsa.PrivateKey
	published []string // key ids in the key set, in order
	signer    string   // the key id that signs
	down      bool
	lifetime  time.Duration
	now       func() time.Time

	jwksFetches, discoveryFetches, identityRequests, tokenRequests atomic.Int64
	sawIdentityHeader                                              atomic.Bool
}

// New starts a fake tenant with one signing key, k1, and closes it when the
// test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		Tenant:             "11111111-2222-3333-4444-555555555555",
		IdentityHeader:     "identity-header-secret",
		ManagedIdentityApp: "mi-00000000-0000-0000-0000-000000000001",
		ClientID:           "sluice-client",
		ClientSecret:       "sluice-client-secret",
		keys:               map[string]*rsa.PrivateKey{},
		lifetime:           time.Hour,
		now:                time.Now,
	}
	s.AddKey("k1")
	s.UseKey("k1")
	s.plain = httptest.NewServer(http.HandlerFunc(s.serve))
	s.secure = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	s.URL, s.TLSURL = s.plain.URL, s.secure.URL
	t.Cleanup(func() {
		s.plain.Close()
		s.secure.Close()
	})
	return s
}

// Client returns an HTTP client that trusts TLSURL's certificate.
func (s *Server) Client() *http.Client { return s.secure.Client() }

// IssuerV1 and IssuerV2 are the tenant's issuers.
func (s *Server) IssuerV1() string { return "https://sts.windows.net/" + s.Tenant + "/" }

// IssuerV2 is the v2.0 issuer.
func (s *Server) IssuerV2() string { return "https://login.microsoftonline.com/" + s.Tenant + "/v2.0" }

// OpenIDConfiguration is the http URL of the v2.0 discovery document.
func (s *Server) OpenIDConfiguration() string {
	return s.URL + "/" + s.Tenant + "/v2.0/.well-known/openid-configuration"
}

// JWKSURL is the http URL of the key set.
func (s *Server) JWKSURL() string { return s.URL + "/" + s.Tenant + "/discovery/v2.0/keys" }

// IdentityEndpoint is the App Service managed identity endpoint, for
// IDENTITY_ENDPOINT.
func (s *Server) IdentityEndpoint() string { return s.URL + "/msi/token" }

// OAuth2TokenURL is the plain OAuth2 token endpoint.
func (s *Server) OAuth2TokenURL() string { return s.URL + "/oauth2/token" }

// AddKey makes a new RSA key; it is published in the key set.
func (s *Server) AddKey(kid string) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[kid] = k
	s.published = append(s.published, kid)
}

// UseKey makes kid the key that signs.
func (s *Server) UseKey(kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signer = kid
}

// RemoveKey takes kid out of the key set; tokens it signed stop verifying
// once a verifier fetches the set again.
func (s *Server) RemoveKey(kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range s.published {
		if k == kid {
			s.published = append(s.published[:i:i], s.published[i+1:]...)
		}
	}
}

// SetDown makes every endpoint answer 503 (true) or serve again (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetTokenLifetime sets the lifetime of the tokens the endpoints issue.
// Default 1h.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// JWKSFetches counts the key set fetches.
func (s *Server) JWKSFetches() int64 { return s.jwksFetches.Load() }

// IdentityRequests counts the managed identity endpoint's token requests.
func (s *Server) IdentityRequests() int64 { return s.identityRequests.Load() }

// TokenRequests counts the token endpoints' requests.
func (s *Server) TokenRequests() int64 { return s.tokenRequests.Load() }

// TokenOptions describe a token. The zero value is a v2 token for
// CognitiveServices from app "client-app", valid for an hour.
type TokenOptions struct {
	// Version is 1 or 2 (default).
	Version int
	// Audience is aud. Default CognitiveServices.
	Audience string
	// App is azp (v2) or appid (v1). Default client-app.
	App string
	// Roles are the roles claim.
	Roles []string
	// Issuer replaces the tenant's issuer; Tenant names another tenant's.
	Issuer, Tenant string
	// IssuedAt, NotBefore and Expiry default to now, now and now+lifetime.
	IssuedAt, NotBefore, Expiry time.Time
	// KeyID signs with that key, or names it in the header when it is not
	// a key of the tenant (signed with the current key). Default: the
	// current signing key.
	KeyID string
	// Alg forges the token: "none" (unsigned) or "HS256" (HMAC keyed with
	// the public key's PEM, the algorithm confusion attack).
	Alg string
}

// Token issues a token.
func (s *Server) Token(o TokenOptions) string {
	s.mu.Lock()
	now, lifetime, signer := s.now(), s.lifetime, s.signer
	key, ok := s.keys[o.KeyID]
	if ok {
		signer = o.KeyID
	} else {
		key = s.keys[signer]
	}
	s.mu.Unlock()
	kid := signer
	if o.KeyID != "" {
		kid = o.KeyID
	}
	if o.Audience == "" {
		o.Audience = CognitiveServices
	}
	if o.App == "" {
		o.App = "client-app"
	}
	tenant := s.Tenant
	if o.Tenant != "" {
		tenant = o.Tenant
	}
	iss := "https://login.microsoftonline.com/" + tenant + "/v2.0"
	if o.Version == 1 {
		iss = "https://sts.windows.net/" + tenant + "/"
	}
	if o.Issuer != "" {
		iss = o.Issuer
	}
	if o.IssuedAt.IsZero() {
		o.IssuedAt = now
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = o.IssuedAt
	}
	if o.Expiry.IsZero() {
		o.Expiry = o.IssuedAt.Add(lifetime)
	}
	claims := map[string]any{
		"aud": o.Audience, "iss": iss, "tid": tenant, "sub": "sub-" + o.App, "oid": "oid-" + o.App,
		"iat": o.IssuedAt.Unix(), "nbf": o.NotBefore.Unix(), "exp": o.Expiry.Unix(),
	}
	if o.Version == 1 {
		claims["ver"], claims["appid"] = "1.0", o.App
	} else {
		claims["ver"], claims["azp"] = "2.0", o.App
	}
	if len(o.Roles) > 0 {
		claims["roles"] = o.Roles
	}
	switch o.Alg {
	case "none":
		return forged(`{"alg":"none","typ":"JWT"}`, claims, nil)
	case "HS256":
		der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		secretKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		return forged(`{"alg":"HS256","typ":"JWT","kid":"`+kid+`"}`, claims, secretKey)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(err)
	}
	tok, err := josejwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		panic(err)
	}
	return tok
}

// forged builds a token by hand: unsigned, or HMAC-signed with hmacKey.
func forged(header string, claims map[string]any, hmacKey []byte) string {
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload)
	if hmacKey == nil {
		return signing + "."
	}
	m := hmac.New(sha256.New, hmacKey)
	m.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(m.Sum(nil))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	base := s.URL
	if r.TLS != nil {
		base = s.TLSURL
	}
	t := "/" + s.Tenant
	switch p := r.URL.Path; {
	case p == t+"/v2.0/.well-known/openid-configuration" || p == t+"/.well-known/openid-configuration":
		s.discoveryFetches.Add(1)
		writeJSON(w, map[string]any{
			"issuer":                                base + t + "/v2.0",
			"jwks_uri":                              base + t + "/discovery/v2.0/keys",
			"token_endpoint":                        base + t + "/oauth2/v2.0/token",
			"authorization_endpoint":                base + t + "/oauth2/v2.0/authorize",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"subject_types_supported":               []string{"pairwise"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	case p == t+"/discovery/v2.0/keys" || p == t+"/discovery/keys":
		s.jwksFetches.Add(1)
		writeJSON(w, s.keySet())
	case p == "/msi/token":
		s.identity(w, r)
	case p == t+"/oauth2/v2.0/token" || p == "/oauth2/token":
		s.token(w, r)
	default:
		http.NotFound(w, r)
	}
}

// keySet is the published keys as a JWKS.
func (s *Server) keySet() jose.JSONWebKeySet {
	s.mu.Lock()
	defer s.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, kid := range s.published {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &s.keys[kid].PublicKey, KeyID: kid, Use: "sig", Algorithm: "RS256"})
	}
	return set
}

// identity serves the App Service managed identity endpoint
// (api-version 2019-08-01).
func (s *Server) identity(w http.ResponseWriter, r *http.Request) {
	s.identityRequests.Add(1)
	if r.Header.Get("X-IDENTITY-HEADER") != s.IdentityHeader {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	s.sawIdentityHeader.Store(true)
	q := r.URL.Query()
	if q.Get("api-version") != "2019-08-01" || q.Get("resource") == "" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	app := s.ManagedIdentityApp
	if id := q.Get("client_id"); id != "" {
		app = id
	}
	s.mu.Lock()
	exp := s.now().Add(s.lifetime)
	s.mu.Unlock()
	tok := s.Token(TokenOptions{Version: 1, Audience: q.Get("resource"), App: app, Expiry: exp})
	writeJSON(w, map[string]any{
		"access_token": tok, "expires_on": strconv.FormatInt(exp.Unix(), 10), "resource": q.Get("resource"),
		"token_type": "Bearer", "client_id": app,
	})
}

// token serves the client credentials grant, for Entra's v2.0 endpoint and
// the plain OAuth2 one: the client authenticates in the form or with basic
// authentication.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.tokenRequests.Add(1)
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != s.ClientID || secret != s.ClientSecret {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`))
		return
	}
	aud := strings.TrimSuffix(r.PostForm.Get("scope"), "/.default")
	s.mu.Lock()
	lifetime := s.lifetime
	s.mu.Unlock()
	tok := s.Token(TokenOptions{Version: 2, Audience: aud, App: id})
	writeJSON(w, map[string]any{
		"token_type": "Bearer", "access_token": tok,
		"expires_in": int(lifetime.Seconds()), "ext_expires_in": int(lifetime.Seconds()),
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		panic(fmt.Sprint("entratest: ", err))
	}
}
