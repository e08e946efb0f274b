package simulator

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/oidc"
	"github.com/sluice-gateway/sluice/internal/secret"
)

// Entra is the simulator's Microsoft Entra ID mode: it accepts bearer
// tokens of a tenant, as Azure OpenAI does for managed identities and
// applications, and with DisableLocalAuth refuses keys as an account with
// disableLocalAuth: true does.
type Entra struct {
	// JWKSURL is the tenant's key set (its keys are fetched in the
	// background; Close stops that).
	JWKSURL string
	// Issuers are the accepted iss values (v1 and v2 of the tenant).
	Issuers []string
	// Audience is the accepted aud. Default
	// https://cognitiveservices.azure.com, as Azure OpenAI's.
	Audience string
	// DisableLocalAuth refuses api-key (and a key as Bearer) with Azure's
	// 401 "Key based authentication is disabled for this resource."
	DisableLocalAuth bool
	// ClockSkew is the leeway on exp and nbf. Default 5m, as Entra's.
	ClockSkew time.Duration
}

// CognitiveServices is the audience of Azure OpenAI tokens.
const CognitiveServices = "https://cognitiveservices.azure.com"

// entraAuth is a compiled Entra mode.
type entraAuth struct {
	set      *oidc.Set
	verifier *oidc.Verifier
	noKeys   bool
}

func newEntraAuth(e *Entra, now func() time.Time) *entraAuth {
	aud := e.Audience
	if aud == "" {
		aud = CognitiveServices
	}
	skew := e.ClockSkew
	if skew == 0 {
		skew = 5 * time.Minute
	}
	set := oidc.NewSet(oidc.Options{Now: now, UnknownKeyWait: 2 * time.Second, RetryMax: 5 * time.Second})
	v := set.Update([]config.JWTProvider{{
		Name: "entra", JWKSURL: e.JWKSURL, Issuers: e.Issuers,
		Audiences:    []string{aud, strings.TrimSuffix(aud, "/") + "/"},
		ClientClaims: []string{"azp", "appid", "oid", "sub"}, RolesClaim: "roles", Algorithms: []string{"RS256"},
		ClockSkew: config.Duration(skew), UnknownKeyRefresh: config.Duration(time.Minute), RefreshInterval: config.Duration(time.Hour),
	}})
	return &entraAuth{set: set, verifier: v, noKeys: e.DisableLocalAuth}
}

// authorize judges r in Entra mode: a bearer JWT must verify; a key is
// refused when local auth is disabled, else checked against key. It reports
// whether r may go on, having answered it otherwise.
func (a *entraAuth) authorize(c *call, r *http.Request, key []byte, keyOK func() bool) bool {
	auth := r.Header.Get("Authorization")
	tok, isBearer := strings.CutPrefix(auth, "Bearer ")
	if isBearer && secret.LooksLikeJWT(tok) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if _, err := a.verifier.Verify(ctx, tok); err != nil {
			c.fail(http.StatusUnauthorized, "401", "Unauthorized. Access token is missing, invalid, audience is incorrect ("+
				CognitiveServices+"), or have expired.", "")
			return false
		}
		return true
	}
	if r.Header.Get("api-key") != "" || isBearer {
		if a.noKeys {
			c.fail(http.StatusUnauthorized, "AuthenticationTypeDisabled", "Key based authentication is disabled for this resource.", "")
			return false
		}
		if len(key) > 0 && !keyOK() {
			c.unauthorized()
			return false
		}
		return true
	}
	c.fail(http.StatusUnauthorized, "401", "Unauthorized. Access token is missing, invalid, audience is incorrect ("+
		CognitiveServices+"), or have expired.", "")
	return false
}

// Close stops what the simulator runs in the background: the Entra mode's
// key fetches. A simulator without Entra mode has nothing to stop.
func (s *Simulator) Close() {
	if s.entra != nil {
		s.entra.set.Close()
	}
}
