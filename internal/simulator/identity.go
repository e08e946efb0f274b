package simulator

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Identity is a simulated managed identity: the endpoint App Service and
// Container Apps give a process (IDENTITY_ENDPOINT and IDENTITY_HEADER,
// api-version 2019-08-01, GET /msi/token) and, for a simulator in Entra
// mode, the key set its tokens verify with (GET /keys). With it, a gateway
// reaches a simulated Azure OpenAI through azidentity's managed identity
// credential exactly as on Azure, with no Azure: the demo runs one backend
// so. The signing key is made by NewIdentity and never leaves memory.
// Safe for concurrent use.
type Identity struct {
	// Header is the secret a caller must send as X-IDENTITY-HEADER, as
	// IDENTITY_HEADER holds it.
	Header string
	// Tenant is the tenant id in the tokens' issuer.
	Tenant string
	// App is the identity's application id (appid of its v1 tokens).
	App string
	// Lifetime is a token's lifetime.
	Lifetime time.Duration

	key    *rsa.PrivateKey
	kid    string
	now    func() time.Time
	issued atomic.Int64
}

// NewIdentity returns an identity whose tokens live for lifetime (0: an
// hour, as Entra's), signed with a new RSA key.
func NewIdentity(lifetime time.Duration) (*Identity, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if lifetime <= 0 {
		lifetime = time.Hour
	}
	return &Identity{
		Header: randomID(16), Tenant: "00000000-5111-ce00-0000-000000000000", App: "sluice-demo-identity",
		Lifetime: lifetime, key: key, kid: randomID(8), now: time.Now,
	}, nil
}

// Issuer is the v1 issuer of the identity's tokens, as Entra's for managed
// identities.
func (id *Identity) Issuer() string { return "https://sts.windows.net/" + id.Tenant + "/" }

// Entra is the Entra mode of a simulator that accepts the identity's
// tokens, the identity being served at base; with local authentication
// disabled, as an Azure OpenAI account reached by managed identity has it.
func (id *Identity) Entra(base string) *Entra {
	return &Entra{JWKSURL: base + "/keys", Issuers: []string{id.Issuer()}, DisableLocalAuth: true}
}

// Issued counts the tokens issued.
func (id *Identity) Issued() int64 { return id.issued.Load() }

// ServeHTTP serves /msi/token and /keys.
func (id *Identity) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/keys":
		n := base64.RawURLEncoding.EncodeToString(id.key.N.Bytes())
		e := base64.RawURLEncoding.EncodeToString(big.NewInt(int64(id.key.E)).Bytes())
		writeIdentityJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{
			{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": id.kid, "n": n, "e": e}}})
	case "/msi/token":
		id.token(w, r)
	default:
		writeIdentityJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
	}
}

// token answers as the App Service endpoint does: the token, its expiry
// in Unix seconds as a string, the resource.
func (id *Identity) token(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-IDENTITY-HEADER") != id.Header {
		writeIdentityJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized",
			"error_description": "X-IDENTITY-HEADER is missing or wrong"})
		return
	}
	q := r.URL.Query()
	resource := q.Get("resource")
	if q.Get("api-version") != "2019-08-01" || resource == "" {
		writeIdentityJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request",
			"error_description": "api-version 2019-08-01 and a resource are required"})
		return
	}
	app := id.App
	if c := q.Get("client_id"); c != "" {
		app = c
	}
	now := id.now()
	exp := now.Add(id.Lifetime)
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"aud": resource, "iss": id.Issuer(), "tid": id.Tenant, "appid": app, "oid": app, "sub": app,
		"ver": "1.0", "iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
	})
	t.Header["kid"] = id.kid
	signed, err := t.SignedString(id.key)
	if err != nil {
		writeIdentityJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	id.issued.Add(1)
	writeIdentityJSON(w, http.StatusOK, map[string]string{
		"access_token": signed, "expires_on": strconv.FormatInt(exp.Unix(), 10), "resource": resource,
		"token_type": "Bearer", "client_id": app,
	})
}

// randomID is n random bytes in hex.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeIdentityJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
