package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// identityBase is a small valid config with an identity provider, client
// certificates, a principal, a role and a product that requires a token.
const identityBase = `
server:
  tls: { cert_file: tls.crt, key_file: tls.key, client_ca_file: ca.crt }
admin:
  listen: 127.0.0.1:8081
  jwt_roles: [Sluice.Admin]
auth:
  jwt:
    - name: entra
      openid_configuration: https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration
      issuers: [https://login.microsoftonline.com/t/v2.0, https://sts.windows.net/t/]
      audiences: [api://sluice]
backends:
  - name: mi
    url: https://mi.example.com
    auth: { managed_identity: {} }
    deployments: { gpt-4o: gpt-4o }
  - name: cc
    kind: openai
    url: https://cc.example.com
    auth: { client_credentials: { tenant_id: t, client_id: c, client_secret: s } }
    deployments: { gpt-4o: gpt-4o }
  - name: o2
    kind: openai
    url: https://o2.example.com
    auth: { oauth2: { token_url: https://idp.example.com/token, client_id: c, client_secret: s, scopes: [inference] } }
    deployments: { gpt-4o: gpt-4o }
pools: [{ name: p, members: [{ backend: mi }, { backend: cc }, { backend: o2 }] }]
models: { gpt-4o: p }
products:
  - name: std
    models: [gpt-4o]
    roles: [Sluice.Standard]
  - name: strict
    models: [gpt-4o]
    require: [key, jwt]
subscriptions:
  - name: app
    product: std
    principals: [00000000-0000-0000-0000-000000000001, "cert:CN=client.example.com"]
  - name: both
    product: strict
    keys: [both-key]
`

func TestIdentityDefaults(t *testing.T) {
	c, err := Parse(testFile, []byte(identityBase), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := JWTProvider{
		Name:                "entra",
		OpenIDConfiguration: "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration",
		Issuers:             []string{"https://login.microsoftonline.com/t/v2.0", "https://sts.windows.net/t/"},
		Audiences:           []string{"api://sluice"},
		ClientClaims:        []string{"azp", "appid"}, RolesClaim: "roles", Algorithms: []string{"RS256", "ES256"},
		ClockSkew: Duration(60e9), UnknownKeyRefresh: Duration(300e9), RefreshInterval: Duration(3600e9),
	}
	if diff := cmp.Diff(want, c.Auth.JWT[0]); diff != "" {
		t.Errorf("auth.jwt[0] (-want +got):\n%s", diff)
	}
	if got := c.Server.TLS.ClientAuth; got != "request" {
		t.Errorf("server.tls.client_auth = %q; want request", got)
	}
	if mi := c.Backends[0].Auth.ManagedIdentity; mi.Resource != "https://cognitiveservices.azure.com" {
		t.Errorf("managed_identity.resource = %q", mi.Resource)
	}
	if cc := c.Backends[1].Auth.ClientCredentials; cc.AuthorityHost != "https://login.microsoftonline.com/" ||
		cc.Scope != "https://cognitiveservices.azure.com/.default" {
		t.Errorf("client_credentials = %+v", cc)
	}
}

func TestIdentityRules(t *testing.T) {
	for _, tt := range []struct {
		name     string
		old, new string
		want     string
	}{
		{"no key source", "      openid_configuration: https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration\n", "",
			"test.yaml:9: auth.jwt[0]: needs openid_configuration or jwks_url, where the provider's signing keys are found"},
		{"both key sources", "      issuers:", "      jwks_url: https://login.microsoftonline.com/t/keys\n      issuers:",
			"test.yaml:11: auth.jwt[0].jwks_url: set with openid_configuration; give one of them"},
		{"plain http provider", "openid_configuration: https://login", "openid_configuration: http://login",
			"test.yaml:10: auth.jwt[0].openid_configuration: must be https (plain http is allowed on a loopback address only)"},
		{"no audiences", "audiences: [api://sluice]", "audiences: []",
			"test.yaml:12: auth.jwt[0].audiences: at least one is required: an audience such as api://sluice"},
		{"alg none", "audiences: [api://sluice]", "audiences: [api://sluice]\n      algorithms: [RS256, none]",
			`test.yaml:13: auth.jwt[0].algorithms[1]: "none" is never accepted: a token must be signed with the provider's private key; want RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or ES512`},
		{"HMAC", "audiences: [api://sluice]", "audiences: [api://sluice]\n      algorithms: [HS256]",
			`test.yaml:13: auth.jwt[0].algorithms[0]: "HS256" is never accepted: a token must be signed with the provider's private key; want RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or ES512`},
		{"skew too large", "audiences: [api://sluice]", "audiences: [api://sluice]\n      clock_skew: 10m",
			"test.yaml:13: auth.jwt[0].clock_skew: at most 5m0s"},
		{"principal without providers", "      openid_configuration", "      openid_configuration", ""},
		{"role twice", "    require: [key, jwt]", "    require: [key, jwt]\n    roles: [Sluice.Standard]",
			`test.yaml:37: products[1].roles[0]: role "Sluice.Standard" already puts applications into products[0]`},
		{"require unknown", "require: [key, jwt]", "require: [key, cert]",
			`test.yaml:36: products[1].require[1]: "cert" is not allowed; want key or jwt`},
		{"principal twice", "keys: [both-key]", "keys: [both-key]\n    principals: [00000000-0000-0000-0000-000000000001]",
			`test.yaml:44: subscriptions[1].principals[0]: "00000000-0000-0000-0000-000000000001" is already a principal of subscriptions[0].principals[0]`},
		{"bad cert principal", "cert:CN=client.example.com", "cert:O=Contoso",
			`test.yaml:40: subscriptions[0].principals[1]: "cert:O=Contoso": a certificate principal is cert:CN=<common name>, cert:DNS=<name>, cert:URI=<uri> or cert:EMAIL=<address>`},
		{"cert principal without client CA", ", client_ca_file: ca.crt }", " }",
			"test.yaml:40: subscriptions[0].principals[1]: names a client certificate, but server.tls.client_ca_file is not set, so none is ever verified"},
		{"client_auth without CA", "client_ca_file: ca.crt }", "client_auth: require }",
			"test.yaml:3: server.tls.client_auth: needs client_ca_file, the authorities client certificates are verified against\n" +
				"test.yaml:40: subscriptions[0].principals[1]: names a client certificate, but server.tls.client_ca_file is not set, so none is ever verified"},
		{"tls without key", "key_file: tls.key, ", "",
			"test.yaml:3: server.tls.key_file: required: the PEM private key"},
		{"key shaped like a JWT", "keys: [both-key]", "keys: [eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln]",
			"test.yaml:43: subscriptions[1].keys[0]: is shaped like a JWT (three base64url parts), so clients sending it would have it validated as a token; choose another key"},
		{"two credentials", "auth: { managed_identity: {} }", "auth: { managed_identity: {}, api_key: k }",
			"test.yaml:16: backends[0].auth: sets api_key and managed_identity; give exactly one credential"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(identityBase, tt.old) {
				t.Fatalf("the base config lacks %q", tt.old)
			}
			text := strings.Replace(identityBase, tt.old, tt.new, 1)
			_, err := Parse(testFile, []byte(text), noEnv)
			var want []string
			if tt.want != "" {
				want = strings.Split(tt.want, "\n")
			}
			if diff := cmp.Diff(want, errorLines(err)); diff != "" {
				t.Errorf("Parse errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestIdentityNeedsProviders: principals naming applications, roles, a
// product requiring tokens and admin roles all need auth.jwt.
func TestIdentityNeedsProviders(t *testing.T) {
	start := strings.Index(identityBase, "auth:\n")
	end := strings.Index(identityBase, "backends:\n")
	text := identityBase[:start] + identityBase[end:]
	_, err := Parse(testFile, []byte(text), noEnv)
	want := []string{
		"test.yaml:6: admin.jwt_roles: needs auth.jwt: roles come from the tokens of its providers",
		"test.yaml:27: products[0].roles[0]: needs auth.jwt: roles come from the tokens of its providers",
		"test.yaml:30: products[1].require[1]: needs auth.jwt, the providers whose tokens are required",
		"test.yaml:34: subscriptions[0].principals[0]: names a token application, but auth.jwt lists no identity provider",
	}
	if diff := cmp.Diff(want, errorLines(err)); diff != "" {
		t.Errorf("Parse errors (-want +got):\n%s", diff)
	}
}
