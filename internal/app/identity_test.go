package app

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluice-gateway/sluice/internal/entratest"
	"github.com/sluice-gateway/sluice/internal/usage"
)

// identityConfig is the fixture with an identity provider, a product that
// tokens with a role get, a product that requires key and token, and
// subscriptions naming token applications.
func identityConfig() string {
	c := strings.Replace(fxConfigYAML, "backends:\n", `auth:
  jwt:
    - name: entra
      jwks_url: "${FX_JWKS}"
      issuers: ["${FX_ISSUER_V2}", "${FX_ISSUER_V1}"]
      audiences: [api://sluice]
backends:
`, 1)
	c = strings.Replace(c, "  - name: chat-only\n    models: [gpt-4o]\n", `  - name: chat-only
    models: [gpt-4o]
    roles: [Sluice.Chat]
  - name: strict
    models: [gpt-4o]
    require: [key, jwt]
`, 1)
	return c
}

const identitySubscriptions = `  - name: app-one
    product: standard
    principals: [app-1]
  - name: strict-sub
    product: strict
    keys: [sk-strict-key-0123456789]
    principals: [app-strict]
`

// staticToken is an azcore.TokenCredential with a fixed token, as the
// openai-go Azure mode takes one.
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s)}, nil
}

func tokenClients(f *fixture, token string) map[string]openai.Client {
	return map[string]openai.Client{
		"openai": openai.NewClient(option.WithBaseURL(f.url+"/v1"), option.WithAPIKey(token), option.WithMaxRetries(0)),
		"azure": openai.NewClient(azure.WithEndpoint(f.url, "2024-10-21"), azure.WithTokenCredential(staticToken(token)),
			azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0)),
	}
}

func newIdentityFixture(t *testing.T) (*fixture, *entratest.Server) {
	e := entratest.New(t)
	t.Setenv("FX_JWKS", e.JWKSURL())
	t.Setenv("FX_ISSUER_V2", e.IssuerV2())
	t.Setenv("FX_ISSUER_V1", e.IssuerV1())
	f := newFixture(t, withConfig(identityConfig()))
	f.writeConfig(identitySubscriptions)
	if err := f.gw.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, nil, "the provider's keys load", func() bool {
		st := f.gw.tokens.Stats()
		return len(st) == 1 && st[0].Keys > 0
	})
	return f, e
}

// TestSDKTokens: the official SDK, with an Entra token as its API key
// (OpenAI mode) or token credential (Azure mode), is served as the
// subscription that lists the token's application, or as an implicit
// subscription of the product its role names; a token that fails a check
// is 401 with an RFC 6750 challenge and no backend sees it.
func TestSDKTokens(t *testing.T) {
	f, e := newIdentityFixture(t)
	for _, tt := range []struct {
		name   string
		opts   entratest.TokenOptions
		status int
		code   string
		sub    string
	}{
		{"v2 principal", entratest.TokenOptions{Audience: "api://sluice", App: "app-1"}, 200, "", "app-one"},
		{"v1 principal", entratest.TokenOptions{Version: 1, Audience: "api://sluice", App: "app-1"}, 200, "", "app-one"},
		{"implicit by role", entratest.TokenOptions{Audience: "api://sluice", App: "app-2", Roles: []string{"Sluice.Chat"}}, 200, "", "app-2"},
		{"no subscription", entratest.TokenOptions{Audience: "api://sluice", App: "app-3"}, 403, "no_subscription_for_principal", ""},
		{"wrong audience", entratest.TokenOptions{Audience: "api://other", App: "app-1"}, 401, "invalid_token", ""},
		{"another tenant", entratest.TokenOptions{Audience: "api://sluice", App: "app-1", Tenant: "99999999-0000-0000-0000-000000000000"}, 401, "invalid_token", ""},
		{"alg none", entratest.TokenOptions{Audience: "api://sluice", App: "app-1", Alg: "none"}, 401, "invalid_token", ""},
		{"product requires a key too", entratest.TokenOptions{Audience: "api://sluice", App: "app-strict"}, 401, "subscription_key_required", ""},
	} {
		tok := e.Token(tt.opts)
		for mode, client := range tokenClients(f, tok) {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				before := len(f.seen.all())
				var resp *http.Response
				_, err := client.Chat.Completions.New(context.Background(), chatParams("gpt-4o"), option.WithResponseInto(&resp))
				if tt.status == 200 {
					if err != nil {
						t.Fatalf("chat: %v", err)
					}
					seen := f.seen.all()[before:]
					for _, s := range seen {
						if strings.Contains(s.header.Get("Authorization"), tok) || s.header.Get("Api-Key") == tok {
							t.Errorf("the client's token reached backend %s", s.backend)
						}
					}
					return
				}
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.status || apiErr.Code != tt.code {
					t.Fatalf("got %v; want %d %s", err, tt.status, tt.code)
				}
				if tt.status == 401 && tt.code == "invalid_token" &&
					!strings.HasPrefix(apiErr.Response.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token", error_description=`) {
					t.Errorf("WWW-Authenticate = %q", apiErr.Response.Header.Get("WWW-Authenticate"))
				}
				if strings.Contains(apiErr.RawJSON(), tok) {
					t.Errorf("the error echoes the token")
				}
				if n := len(f.seen.all()) - before; n != 0 {
					t.Errorf("a backend saw %d refused requests", n)
				}
			})
		}
	}
	waitFor(t, nil, "the ledger records the implicit subscription", func() bool {
		rows, err := f.gw.obs.ledger.Report(context.Background(), usage.Query{GroupBy: []string{"subscription"}})
		if err != nil {
			return false
		}
		for _, r := range rows {
			if r.Group["subscription"] == "app-2" {
				return true
			}
		}
		return false
	})
}

// TestKeyAndToken: a product that requires both gets a key and a token
// together, the key naming the subscription and the token one of its
// principals; the key alone is refused.
func TestKeyAndToken(t *testing.T) {
	f, e := newIdentityFixture(t)
	post := func(key, tok string) (int, string) {
		req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
		if key != "" {
			req.Header.Set("Api-Key", key)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	key := "sk-strict-key-0123456789"
	good := e.Token(entratest.TokenOptions{Audience: "api://sluice", App: "app-strict"})
	other := e.Token(entratest.TokenOptions{Audience: "api://sluice", App: "app-1"})
	if s, b := post(key, good); s != 200 {
		t.Errorf("key and token: %d %s", s, b)
	}
	if s, b := post(key, ""); s != 401 || !strings.Contains(b, "token_required") {
		t.Errorf("key alone: %d %s; want 401 token_required", s, b)
	}
	if s, b := post(key, other); s != 403 || !strings.Contains(b, "token_not_for_subscription") {
		t.Errorf("key with another application's token: %d %s; want 403", s, b)
	}
	if s, b := post(fxAlphaKey, good); s != 200 {
		t.Errorf("a key of a product without requirements, with a token: %d %s", s, b)
	}
}
