package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sluice-gateway/sluice/internal/secret"
)

// base is a valid configuration that uses every section. Each validation case
// edits it so that exactly one rule fails.
const base = `server:
  listen: 127.0.0.1:8080
admin:
  listen: 127.0.0.1:8081
  api_key: admin-key
state:
  store: memory
  on_store_error: fail_open
  timeout: 100ms
usage:
  store: sqlite:usage.db
  prices:
    currency: USD
    models:
      gpt-4o: { input: 2.5, output: 10 }
metrics:
  prometheus: true
  dimensions: [model, backend]
backends:
  - name: one
    kind: azure-openai
    url: https://one.example.com
    region: westeurope
    auth:
      api_key: backend-key-1
    deployments:
      gpt-4o: gpt-4o-one
      embed: embed-one
    timeout: 60s
    connect_timeout: 5s
    first_byte_timeout: 45s
    stream_timeout: 10m
    circuit_breaker:
      failures: 3
      interval: 10s
      status_codes: ["429"]
      errors: [timeout]
      trip_duration: 30s
      max_trip_duration: 5m
    circuit_breakers:
      - percentage: 50
        min_requests: 20
        interval: 30s
    health_check:
      path: /healthz
      interval: 15s
      timeout: 3s
      unhealthy_threshold: 3
      healthy_threshold: 2
  - name: two
    kind: openai
    url: http://127.0.0.1:9102/prefix
    region: francecentral
    auth:
      api_key: backend-key-2
    deployments:
      gpt-4o: gpt-4o
      embed: text-embedding-3-small
pools:
  - name: chat
    strategy: round_robin
    members:
      - { backend: one, priority: 1 }
      - { backend: two, priority: 2, weight: 3 }
    retry:
      attempts: 2
      on: ["429", timeout]
      backoff: 1s
    throttle:
      min_remaining_tokens: 2000
      min_remaining_requests: 5
      max_wait: 2s
    session_affinity:
      cookie: chat-affinity
  - name: embeddings
    members:
      - backend: two
models:
  gpt-4o: chat
  embed: embeddings
products:
  - name: standard
    models: [gpt-4o, embed]
    regions: [westeurope, francecentral]
    limits:
      - key: subscription
        tokens_per_minute: 1000
        token_quota: 100000
        token_quota_period: monthly
    headers:
      remaining_tokens: x-remaining-tokens
      remaining_requests: x-remaining-requests
      quota_remaining_tokens: x-quota-remaining
      tokens_consumed: x-tokens-consumed
    budget:
      amount: 10
      period: monthly
  - name: premium
    models: [gpt-4o]
    priority: low
    limits:
      - key: global
        tokens_per_minute: 20000
        estimate_prompt_tokens: true
        default_max_tokens: 512
      - key: product
        tokens_per_minute: 3000
        adaptive_share: 0.5
subscriptions:
  - name: alpha
    product: standard
    keys: [alpha-key]
  - name: beta
    product: premium
    keys: ["sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"]
`

// edit applies replacements to text; each old string must occur exactly once.
func edit(t *testing.T, text string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if n := strings.Count(text, pairs[i]); n != 1 {
			t.Fatalf("edit: %q occurs %d times in the config; want once", pairs[i], n)
		}
		text = strings.Replace(text, pairs[i], pairs[i+1], 1)
	}
	return text
}

var marker = regexp.MustCompile(`\{(#[!0-9])\}`)

// placeLines replaces {#!} (or {#2}, ...) in each wanted error with the
// number of the line of text that carries the comment #! (or #2, ...).
func placeLines(t *testing.T, text string, wants []string) []string {
	t.Helper()
	lines := strings.Split(text, "\n")
	var out []string
	for _, w := range wants {
		out = append(out, marker.ReplaceAllStringFunc(w, func(m string) string {
			mark := m[1 : len(m)-1]
			for i, l := range lines {
				if strings.HasSuffix(l, " "+mark) {
					return strconv.Itoa(i + 1)
				}
			}
			t.Fatalf("no line of the config ends with the marker %s", mark)
			return ""
		}))
	}
	return out
}

func sha256Hex(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

func TestBaseIsValid(t *testing.T) {
	if _, err := Parse(testFile, []byte(base), noEnv); err != nil {
		t.Fatalf("Parse(base) error:\n%v", err)
	}
}

func TestValidateRules(t *testing.T) {
	tests := []struct {
		name  string
		edits []string // old, new, old, new, ...
		want  []string // with {#!} for the line marked #!
	}{
		// server
		{"listen empty", []string{"listen: 127.0.0.1:8080", `listen: "" #!`},
			[]string{"test.yaml:{#!}: server.listen: required; want host:port such as 127.0.0.1:8080"}},
		{"listen without port", []string{"listen: 127.0.0.1:8080", "listen: localhost #!"},
			[]string{`test.yaml:{#!}: server.listen: "localhost" is not host:port with a port from 0 to 65535, such as 127.0.0.1:8080`}},
		{"listen port too high", []string{"listen: 127.0.0.1:8080", "listen: 127.0.0.1:70000 #!"},
			[]string{`test.yaml:{#!}: server.listen: "127.0.0.1:70000" is not host:port with a port from 0 to 65535, such as 127.0.0.1:8080`}},
		{"max_request_bytes zero", []string{"listen: 127.0.0.1:8080", "listen: 127.0.0.1:8080\n  max_request_bytes: 0 #!"},
			[]string{"test.yaml:{#!}: server.max_request_bytes: must be greater than 0"}},
		{"read_header_timeout zero", []string{"listen: 127.0.0.1:8080", "listen: 127.0.0.1:8080\n  read_header_timeout: 0s #!"},
			[]string{"test.yaml:{#!}: server.read_header_timeout: must be greater than 0"}},

		// admin
		{"admin on the client port", []string{"listen: 127.0.0.1:8081", "listen: 127.0.0.1:8080 #!"},
			[]string{"test.yaml:{#!}: admin.listen: must differ from server.listen (127.0.0.1:8080): the admin API never shares the client port"}},
		{"admin on every interface of the client port", []string{"listen: 127.0.0.1:8081", `listen: ":8080" #!`},
			[]string{"test.yaml:{#!}: admin.listen: must differ from server.listen (127.0.0.1:8080): the admin API never shares the client port"}},
		{"admin listen not host:port", []string{"listen: 127.0.0.1:8081", "listen: admin #!"},
			[]string{`test.yaml:{#!}: admin.listen: "admin" is not host:port with a port from 0 to 65535, such as 127.0.0.1:8080`}},
		{"admin key without listener", []string{"  listen: 127.0.0.1:8081\n", "", "api_key: admin-key", "api_key: admin-key #!", "prometheus: true", "prometheus: true #2"},
			[]string{
				"test.yaml:{#!}: admin.api_key: set, but admin.listen is empty, so there is no admin API to protect",
				"test.yaml:{#2}: metrics.prometheus: needs admin.listen: /metrics is served on the admin listener",
			}},
		{"admin key is a subscription key", []string{"api_key: admin-key", "api_key: alpha-key #!"},
			[]string{"test.yaml:{#!}: admin.api_key: same key as subscriptions[0].keys[0]; the admin key must differ from every subscription key"}},

		// state
		{"state store not redis", []string{"store: memory", "store: mysql://db:3306 #!"},
			[]string{"test.yaml:{#!}: state.store: want memory or a redis:// or rediss:// URL with a host"}},
		{"state store redis without host", []string{"store: memory", "store: redis:///0 #!"},
			[]string{"test.yaml:{#!}: state.store: want memory or a redis:// or rediss:// URL with a host"}},
		{"on_store_error", []string{"on_store_error: fail_open", "on_store_error: ignore #!"},
			[]string{`test.yaml:{#!}: state.on_store_error: "ignore" is not allowed; want fail_open or fail_closed`}},
		{"state timeout zero", []string{"timeout: 100ms", "timeout: 0s #!"},
			[]string{"test.yaml:{#!}: state.timeout: must be greater than 0"}},

		// usage
		{"usage store unknown", []string{"store: sqlite:usage.db", "store: mysql://db/usage #!"},
			[]string{"test.yaml:{#!}: usage.store: want sqlite:PATH or a postgres:// or postgresql:// URL"}},
		{"usage store sqlite without path", []string{"store: sqlite:usage.db", "store: \"sqlite:\" #!"},
			[]string{"test.yaml:{#!}: usage.store: want sqlite:PATH with a file path after sqlite:"}},
		{"currency", []string{"currency: USD", "currency: usd #!"},
			[]string{`test.yaml:{#!}: usage.prices.currency: "usd" is not a currency code; want three capital letters such as USD or EUR`}},
		{"negative price", []string{"{ input: 2.5, output: 10 }", "{ input: -1, output: 10, cached_input: -2 } #!"},
			[]string{
				"test.yaml:{#!}: usage.prices.models.gpt-4o.input: must be a number not below 0",
				"test.yaml:{#!}: usage.prices.models.gpt-4o.cached_input: must be a number not below 0",
			}},
		{"price not a number", []string{"{ input: 2.5, output: 10 }", "{ input: 1, output: .inf } #!"},
			[]string{"test.yaml:{#!}: usage.prices.models.gpt-4o.output: must be a number not below 0"}},
		{"price for unknown model", []string{"{ input: 2.5, output: 10 }", "{ input: 2.5, output: 10 }\n      gpt-5: { input: 1 } #!"},
			[]string{`test.yaml:{#!}: usage.prices.models.gpt-5: model "gpt-5" is not in models`}},

		// metrics
		{"unknown dimension", []string{"dimensions: [model, backend]", "dimensions: [model, user] #!"},
			[]string{`test.yaml:{#!}: metrics.dimensions[1]: "user" is not a dimension; want one of subscription, product, model, deployment, backend, region, client_ip`}},
		{"dimension twice", []string{"dimensions: [model, backend]", "dimensions: [model, model] #!"},
			[]string{`test.yaml:{#!}: metrics.dimensions[1]: "model" is listed twice`}},

		// backends
		{"no backends", []string{base, "backends: [] #!\npools: [] #2\nmodels: {} #3\n"},
			[]string{
				"test.yaml:{#!}: backends: at least one backend is required",
				"test.yaml:{#2}: pools: at least one pool is required",
				"test.yaml:{#3}: models: at least one model is required",
			}},
		{"backend name empty", []string{"pools:\n", "  - name: \"\" #!\n    url: http://x\n    auth: { api_key: k3 }\n    deployments: { m: d }\npools:\n"},
			[]string{"test.yaml:{#!}: backends[2].name: required"}},
		{"backend name twice", []string{"  - name: two", "  - name: one #!", "      - { backend: two, priority: 2, weight: 3 }", "      - { backend: one, priority: 2, weight: 3 } #2", "      - backend: two", "      - backend: one #3"},
			[]string{
				`test.yaml:{#!}: backends[1].name: "one" is already the name of backends[0]`,
				`test.yaml:{#2}: pools[0].members[1].backend: backend "one" is already in this pool as pools[0].members[0]`,
			}},
		{"backend name with space", []string{"  - name: two", `  - name: "two 2" #!`, "      - { backend: two, priority: 2, weight: 3 }", "      - { backend: \"two 2\", priority: 2, weight: 3 }", "      - backend: two", "      - backend: \"two 2\""},
			[]string{`test.yaml:{#!}: backends[1].name: "two 2" must not contain white space or control characters`}},
		{"kind", []string{"kind: azure-openai", "kind: bedrock #!"},
			[]string{`test.yaml:{#!}: backends[0].kind: "bedrock" is not allowed; want azure-openai, openai, anthropic or gemini`}},
		{"url not absolute", []string{"url: https://one.example.com", "url: one.example.com #!"},
			[]string{"test.yaml:{#!}: backends[0].url: must be an absolute http or https URL with a host, such as https://NAME.openai.azure.com"}},
		{"url not http", []string{"url: https://one.example.com", "url: ftp://one.example.com #!"},
			[]string{"test.yaml:{#!}: backends[0].url: must be an absolute http or https URL with a host, such as https://NAME.openai.azure.com"}},
		{"url missing", []string{"    url: https://one.example.com\n", "", "  - name: one", "  - name: one #!"},
			[]string{"test.yaml:{#!}: backends[0].url: required"}},
		{"url with query", []string{"url: https://one.example.com", "url: https://one.example.com/?x=1 #!"},
			[]string{"test.yaml:{#!}: backends[0].url: must not have a query"}},
		{"url with fragment", []string{"url: https://one.example.com", "url: https://one.example.com/#x #!"},
			[]string{"test.yaml:{#!}: backends[0].url: must not have a fragment"}},
		{"url with credentials", []string{"url: https://one.example.com", "url: https://user:pw@one.example.com #!"},
			[]string{"test.yaml:{#!}: backends[0].url: must not hold credentials; put the key in auth.api_key"}},
		{"api_version on openai", []string{"kind: openai", "kind: openai\n    api_version: 2024-10-21 #!"},
			[]string{"test.yaml:{#!}: backends[1].api_version: applies only to kinds azure-openai and anthropic"}},
		{"api_version malformed", []string{"kind: azure-openai", "kind: azure-openai\n    api_version: 2024 10 #!"},
			[]string{`test.yaml:{#!}: backends[0].api_version: "2024 10" is not an api-version such as 2024-10-21`}},
		{"api_key missing", []string{"api_key: backend-key-1", `api_key: "" #!`},
			[]string{"test.yaml:{#!}: backends[0].auth.api_key: required (or managed_identity, client_credentials or oauth2)"}},
		{"api_key with white space", []string{"api_key: backend-key-1", `api_key: "backend-key-1 " #!`},
			[]string{"test.yaml:{#!}: backends[0].auth.api_key: must not start or end with white space"}},
		{"managed identity with a key", []string{"    auth:\n      api_key: backend-key-1", "    auth: #!\n      api_key: backend-key-1\n      managed_identity: { client_id: abc }"},
			[]string{"test.yaml:{#!}: backends[0].auth: sets api_key and managed_identity; give exactly one credential"}},
		{"managed identity resource not a URI", []string{"api_key: backend-key-1", "managed_identity: { resource: cognitive } #!"},
			[]string{"test.yaml:{#!}: backends[0].auth.managed_identity.resource: must be an absolute URI such as https://cognitiveservices.azure.com"}},
		{"client credentials without a secret", []string{"api_key: backend-key-1", "client_credentials: { tenant_id: t, client_id: c } #!"},
			[]string{"test.yaml:{#!}: backends[0].auth.client_credentials: needs client_secret or federated_token_file"}},
		{"client credentials over http", []string{"api_key: backend-key-1", "client_credentials: { tenant_id: t, client_id: c, client_secret: s, authority_host: 'http://127.0.0.1:1/' } #!"},
			[]string{"test.yaml:{#!}: backends[0].auth.client_credentials.authority_host: must be an https URL such as https://login.microsoftonline.com/"}},
		{"oauth2 over plain http", []string{"api_key: backend-key-1", "oauth2: { token_url: 'http://idp.example.com/token', client_id: c, client_secret: s } #!"},
			[]string{"test.yaml:{#!}: backends[0].auth.oauth2.token_url: must be https (plain http is allowed on a loopback address only)"}},
		{"oauth2 without a secret", []string{"api_key: backend-key-1", "oauth2: { token_url: 'http://127.0.0.1:9/token', client_id: c } #!"},
			[]string{"test.yaml:{#!}: backends[0].auth.oauth2.client_secret: required"}},
		{"no deployments", []string{"    deployments:\n      gpt-4o: gpt-4o-one\n      embed: embed-one\n", "    deployments: {} #!\n"},
			[]string{
				"test.yaml:{#!}: backends[0].deployments: at least one deployment (model: deployment name) is required",
				`test.yaml:{#!}: backends[0].deployments: no deployment for model "gpt-4o", which pool "chat" sends to this backend`,
			}},
		{"deployment name empty", []string{"embed: embed-one", `embed: "" #!`},
			[]string{"test.yaml:{#!}: backends[0].deployments.embed: a deployment name is required"}},
		{"azure deployment name with slash", []string{"embed: embed-one", "embed: embed/one #!"},
			[]string{`test.yaml:{#!}: backends[0].deployments.embed: "embed/one" cannot be an Azure deployment name: it must not contain /, ?, # or %`}},
		{"missing deployment for a pool's model", []string{"    deployments:\n      gpt-4o: gpt-4o\n      embed: text-embedding-3-small\n", "    deployments: #!\n      gpt-4o: gpt-4o\n"},
			[]string{`test.yaml:{#!}: backends[1].deployments: no deployment for model "embed", which pool "embeddings" sends to this backend`}},
		{"timeout zero", []string{"timeout: 60s", "timeout: 0s #!"},
			[]string{"test.yaml:{#!}: backends[0].timeout: must be greater than 0"}},
		{"timeout zero with first_byte_timeout left out", []string{"timeout: 60s", "timeout: 0s #!", "    first_byte_timeout: 45s\n", ""},
			[]string{"test.yaml:{#!}: backends[0].timeout: must be greater than 0"}},
		{"connect_timeout zero", []string{"connect_timeout: 5s", "connect_timeout: 0s #!"},
			[]string{"test.yaml:{#!}: backends[0].connect_timeout: must be greater than 0"}},
		{"first_byte_timeout zero", []string{"first_byte_timeout: 45s", "first_byte_timeout: 0s #!"},
			[]string{"test.yaml:{#!}: backends[0].first_byte_timeout: must be greater than 0"}},
		{"health check path without slash", []string{"path: /healthz", "path: healthz #!"},
			[]string{"test.yaml:{#!}: backends[0].health_check.path: must start with /, such as /v1/models"}},
		{"health check path empty", []string{"path: /healthz", `path: "" #!`},
			[]string{"test.yaml:{#!}: backends[0].health_check.path: must start with /, such as /v1/models"}},
		{"health check path with space", []string{"path: /healthz", `path: "/health z" #!`},
			[]string{"test.yaml:{#!}: backends[0].health_check.path: must not contain white space, control characters or #"}},
		{"health check path with fragment", []string{"path: /healthz", `path: "/healthz#x" #!`},
			[]string{"test.yaml:{#!}: backends[0].health_check.path: must not contain white space, control characters or #"}},
		{"health check interval zero", []string{"interval: 15s", "interval: 0s #!"},
			[]string{"test.yaml:{#!}: backends[0].health_check.interval: must be greater than 0"}},
		{"health check timeout zero", []string{"timeout: 3s", "timeout: 0s #!"},
			[]string{"test.yaml:{#!}: backends[0].health_check.timeout: must be greater than 0"}},
		{"health check timeout equal to interval", []string{"timeout: 3s", "timeout: 15s #!"},
			[]string{"test.yaml:{#!}: backends[0].health_check.timeout: 15s must be shorter than interval (15s), so that a probe ends before the next starts"}},
		{"health check default timeout above interval", []string{"    health_check:\n", "    health_check: #!\n", "      timeout: 3s\n", "", "interval: 15s", "interval: 1s"},
			[]string{"test.yaml:{#!}: backends[0].health_check.timeout: 2s must be shorter than interval (1s), so that a probe ends before the next starts"}},
		{"health check unhealthy_threshold zero", []string{"unhealthy_threshold: 3", "unhealthy_threshold: 0 #!"},
			[]string{"test.yaml:{#!}: backends[0].health_check.unhealthy_threshold: must be at least 1"}},
		{"health check healthy_threshold zero", []string{"healthy_threshold: 2", "healthy_threshold: 0 #!"},
			[]string{"test.yaml:{#!}: backends[0].health_check.healthy_threshold: must be at least 1"}},
		{"health check of unknown kind", []string{"kind: azure-openai", "kind: bedrock #!", "      path: /healthz\n", ""},
			[]string{`test.yaml:{#!}: backends[0].kind: "bedrock" is not allowed; want azure-openai, openai, anthropic or gemini`}},
		{"breaker failures zero", []string{"failures: 3", "failures: 0 #!"},
			[]string{"test.yaml:{#!}: backends[0].circuit_breaker.failures: must be at least 1 unless percentage is set"}},
		{"breaker failures negative", []string{"failures: 3", "failures: -1 #!"},
			[]string{"test.yaml:{#!}: backends[0].circuit_breaker.failures: must not be negative"}},
		{"breaker percentage too high", []string{"failures: 3", "failures: 3\n      percentage: 101 #!"},
			[]string{"test.yaml:{#!}: backends[0].circuit_breaker.percentage: must be from 1 to 100, or 0 for off"}},
		{"breaker percentage negative", []string{"percentage: 50", "percentage: -5 #!"},
			[]string{"test.yaml:{#!}: backends[0].circuit_breakers[0].percentage: must be from 1 to 100, or 0 for off"}},
		{"breaker percentage off and failures zero", []string{"percentage: 50", "percentage: 0\n        failures: 0 #!"},
			[]string{"test.yaml:{#!}: backends[0].circuit_breakers[0].failures: must be at least 1 unless percentage is set"}},
		{"breaker min_requests zero", []string{"min_requests: 20", "min_requests: 0 #!"},
			[]string{"test.yaml:{#!}: backends[0].circuit_breakers[0].min_requests: must be at least 1"}},
		{"breaker max_trip_duration zero", []string{"max_trip_duration: 5m", "max_trip_duration: 0s #!"},
			[]string{"test.yaml:{#!}: backends[0].circuit_breaker.max_trip_duration: must be greater than 0"}},
		{"second breaker rule", []string{"        interval: 30s\n", "        interval: 30s\n      - status_codes: [\"4xx\"] #!\n        errors: [] #2\n        trip_duration: 0s #3\n"},
			[]string{
				`test.yaml:{#!}: backends[0].circuit_breakers[1].status_codes[0]: "4xx" is not a status code or range such as 429 or 500-599 (codes are 100 to 599)`,
				"test.yaml:{#3}: backends[0].circuit_breakers[1].trip_duration: must be greater than 0",
			}},
		{"second breaker rule counts nothing", []string{"        interval: 30s\n", "        interval: 30s\n      - status_codes: [] #!\n        errors: []\n"},
			[]string{"test.yaml:{#!}: backends[0].circuit_breakers[1]: counts no failures: status_codes and errors are both empty"}},
		{"breaker interval zero", []string{"interval: 10s", "interval: 0s #!"},
			[]string{"test.yaml:{#!}: backends[0].circuit_breaker.interval: must be greater than 0"}},
		{"breaker trip_duration zero", []string{"trip_duration: 30s", "trip_duration: 0s #!"},
			[]string{"test.yaml:{#!}: backends[0].circuit_breaker.trip_duration: must be greater than 0"}},
		{"breaker status code", []string{`status_codes: ["429"]`, `status_codes: ["429", "4xx"] #!`},
			[]string{`test.yaml:{#!}: backends[0].circuit_breaker.status_codes[1]: "4xx" is not a status code or range such as 429 or 500-599 (codes are 100 to 599)`}},
		{"breaker backwards range", []string{`status_codes: ["429"]`, `status_codes: ["599-500"] #!`},
			[]string{`test.yaml:{#!}: backends[0].circuit_breaker.status_codes[0]: "599-500" is not a range: 599 is above 500`}},
		{"breaker error kind", []string{"errors: [timeout]", "errors: [timeout, reset] #!"},
			[]string{`test.yaml:{#!}: backends[0].circuit_breaker.errors[1]: "reset" is not allowed; want timeout or connection`}},
		{"breaker error twice", []string{"errors: [timeout]", "errors: [timeout, timeout] #!"},
			[]string{`test.yaml:{#!}: backends[0].circuit_breaker.errors[1]: "timeout" is listed twice`}},
		{"breaker counts nothing", []string{"    circuit_breaker:", "    circuit_breaker: #!", `status_codes: ["429"]`, "status_codes: []", "errors: [timeout]", "errors: []"},
			[]string{"test.yaml:{#!}: backends[0].circuit_breaker: counts no failures: status_codes and errors are both empty"}},

		// pools
		{"pool name twice", []string{"  - name: embeddings", "  - name: chat #!", "  embed: embeddings", "  embed: embeddings #2"},
			[]string{
				`test.yaml:{#!}: pools[1].name: "chat" is already the name of pools[0]`,
				`test.yaml:{#2}: models.embed: no pool is named "embeddings"`,
			}},
		{"strategy", []string{"strategy: round_robin", "strategy: random #!"},
			[]string{`test.yaml:{#!}: pools[0].strategy: "random" is not allowed; want round_robin, least_latency or least_busy`}},
		{"no members", []string{"    members:\n      - backend: two\n", "    members: [] #!\n"},
			[]string{"test.yaml:{#!}: pools[1].members: at least one member is required"}},
		{"unknown member", []string{"      - backend: two", "      - backend: three #!"},
			[]string{`test.yaml:{#!}: pools[1].members[0].backend: no backend is named "three"`}},
		{"member twice", []string{"{ backend: two, priority: 2, weight: 3 }", "{ backend: one, priority: 2, weight: 3 } #!"},
			[]string{`test.yaml:{#!}: pools[0].members[1].backend: backend "one" is already in this pool as pools[0].members[0]`}},
		{"priority zero", []string{"{ backend: one, priority: 1 }", "{ backend: one, priority: 0 } #!"},
			[]string{"test.yaml:{#!}: pools[0].members[0].priority: must be at least 1"}},
		{"weight zero", []string{"priority: 2, weight: 3 }", "priority: 2, weight: 0 } #!"},
			[]string{"test.yaml:{#!}: pools[0].members[1].weight: must be at least 1"}},
		{"attempts zero", []string{"attempts: 2", "attempts: 0 #!"},
			[]string{"test.yaml:{#!}: pools[0].retry.attempts: must be from 1 to 10"}},
		{"attempts too many", []string{"attempts: 2", "attempts: 11 #!"},
			[]string{"test.yaml:{#!}: pools[0].retry.attempts: must be from 1 to 10"}},
		{"retry on unknown", []string{`on: ["429", timeout]`, `on: ["429", reset] #!`},
			[]string{`test.yaml:{#!}: pools[0].retry.on[1]: "reset" is not a status code, a range such as 500-599, timeout or connection`}},
		{"retry on twice", []string{`on: ["429", timeout]`, `on: ["429", "429"] #!`},
			[]string{`test.yaml:{#!}: pools[0].retry.on[1]: "429" is listed twice`}},
		{"retry without on", []string{`on: ["429", timeout]`, `on: [] #!`},
			[]string{`test.yaml:{#!}: pools[0].retry.on: empty, so attempts: 2 never retries; list what to retry, such as ["429", "500-599", timeout, connection]`}},
		{"affinity cookie empty", []string{"cookie: chat-affinity", `cookie: "" #!`},
			[]string{"test.yaml:{#!}: pools[0].session_affinity.cookie: required; want a cookie name such as sluice-affinity"}},
		{"affinity cookie with space", []string{"cookie: chat-affinity", `cookie: "chat affinity" #!`},
			[]string{`test.yaml:{#!}: pools[0].session_affinity.cookie: "chat affinity" is not a cookie name; use letters, digits and !#$%&'*+-.^_` + "`" + `|~ (RFC 6265)`}},
		{"affinity cookie with separator", []string{"cookie: chat-affinity", `cookie: "chat=affinity" #!`},
			[]string{`test.yaml:{#!}: pools[0].session_affinity.cookie: "chat=affinity" is not a cookie name; use letters, digits and !#$%&'*+-.^_` + "`" + `|~ (RFC 6265)`}},
		{"affinity cookie not ASCII", []string{"cookie: chat-affinity", `cookie: "café" #!`},
			[]string{`test.yaml:{#!}: pools[0].session_affinity.cookie: "café" is not a cookie name; use letters, digits and !#$%&'*+-.^_` + "`" + `|~ (RFC 6265)`}},
		{"throttle without floors", []string{"    throttle:\n", "    throttle: #!\n", "min_remaining_tokens: 2000", "min_remaining_tokens: 0", "min_remaining_requests: 5", "min_remaining_requests: 0"},
			[]string{"test.yaml:{#!}: pools[0].throttle: sets neither min_remaining_tokens nor min_remaining_requests, so it would never hold a request back"}},
		{"empty throttle", []string{"  - name: embeddings\n", "  - name: embeddings\n    throttle: {} #!\n"},
			[]string{"test.yaml:{#!}: pools[1].throttle: sets neither min_remaining_tokens nor min_remaining_requests, so it would never hold a request back"}},
		{"throttle tokens negative", []string{"min_remaining_tokens: 2000", "min_remaining_tokens: -1 #!", "min_remaining_requests: 5", "min_remaining_requests: 0"},
			[]string{"test.yaml:{#!}: pools[0].throttle.min_remaining_tokens: must not be negative"}},
		{"throttle requests negative", []string{"min_remaining_requests: 5", "min_remaining_requests: -5 #!"},
			[]string{"test.yaml:{#!}: pools[0].throttle.min_remaining_requests: must not be negative"}},

		// models
		{"model to unknown pool", []string{"  embed: embeddings", "  embed: nopool #!"},
			[]string{`test.yaml:{#!}: models.embed: no pool is named "nopool"`}},
		{"dotted model name", []string{"  embed: embeddings", "  embed: embeddings\n  gpt-4: chat\n  gpt-4.1: nopool #!", "      embed: embed-one", "      embed: embed-one\n      gpt-4: x", "      embed: text-embedding-3-small", "      embed: text-embedding-3-small\n      gpt-4: x"},
			[]string{`test.yaml:{#!}: models.gpt-4.1: no pool is named "nopool"`}},
		{"model to no pool", []string{"  embed: embeddings", `  embed: "" #!`},
			[]string{`test.yaml:{#!}: models.embed: a pool name is required`}},
		{"model name with space", []string{"  embed: embeddings", "  embed: embeddings\n  \"gpt 4o\": chat #!"},
			[]string{`test.yaml:{#!}: models.gpt 4o: "gpt 4o" must not contain white space or control characters`}},

		// products
		{"product name twice", []string{"  - name: premium", "  - name: standard #!", "product: premium", "product: standard"},
			[]string{`test.yaml:{#!}: products[1].name: "standard" is already the name of products[0]`}},
		{"product without models", []string{"models: [gpt-4o]", "models: [] #!"},
			[]string{"test.yaml:{#!}: products[1].models: at least one model is required"}},
		{"product model unknown", []string{"models: [gpt-4o]", "models: [gpt-4o, gpt-5] #!"},
			[]string{`test.yaml:{#!}: products[1].models[1]: model "gpt-5" is not in models`}},
		{"product model twice", []string{"models: [gpt-4o]", "models: [gpt-4o, gpt-4o] #!"},
			[]string{`test.yaml:{#!}: products[1].models[1]: "gpt-4o" is listed twice`}},
		{"region without backend", []string{"regions: [westeurope, francecentral]", "regions: [westeurope, mars] #!", "models: [gpt-4o, embed]", "models: [gpt-4o, embed] #2"},
			[]string{
				`test.yaml:{#2}: products[0].models[1]: no backend of pool "embeddings" is in the product's regions, so model "embed" could never be served`,
				`test.yaml:{#!}: products[0].regions[1]: no backend is in region "mars"`,
			}},
		{"region twice", []string{"regions: [westeurope, francecentral]", "regions: [westeurope, francecentral, westeurope] #!"},
			[]string{`test.yaml:{#!}: products[0].regions[2]: "westeurope" is listed twice`}},
		{"limit key", []string{"      - key: subscription", "      - key: team #!"},
			[]string{`test.yaml:{#!}: products[0].limits[0].key: "team" is not allowed; want subscription, product, subscription_model or global`}},
		{"limit sets nothing", []string{"      - key: subscription\n        tokens_per_minute: 1000\n        token_quota: 100000\n        token_quota_period: monthly\n", "      - key: product #!\n"},
			[]string{"test.yaml:{#!}: products[0].limits[0]: sets none of tokens_per_minute, requests_per_minute and token_quota"}},
		{"negative count", []string{"tokens_per_minute: 1000", "tokens_per_minute: 1000\n        requests_per_minute: -1 #!"},
			[]string{"test.yaml:{#!}: products[0].limits[0].requests_per_minute: must not be negative"}},
		{"quota without period", []string{"        token_quota_period: monthly\n", "", "      - key: subscription", "      - key: subscription #!"},
			[]string{"test.yaml:{#!}: products[0].limits[0].token_quota_period: required with token_quota; want hourly, daily, weekly, monthly or yearly"}},
		{"period without quota", []string{"        token_quota: 100000\n", "", "token_quota_period: monthly", "token_quota_period: monthly #!"},
			[]string{"test.yaml:{#!}: products[0].limits[0].token_quota_period: set, but token_quota is not"}},
		{"period unknown", []string{"token_quota_period: monthly", "token_quota_period: biweekly #!"},
			[]string{`test.yaml:{#!}: products[0].limits[0].token_quota_period: "biweekly" is not allowed; want hourly, daily, weekly, monthly or yearly`}},
		{"estimate without token limit", []string{"      - key: subscription\n        tokens_per_minute: 1000\n        token_quota: 100000\n        token_quota_period: monthly\n", "      - requests_per_minute: 5\n        estimate_prompt_tokens: true #!\n"},
			[]string{"test.yaml:{#!}: products[0].limits[0].estimate_prompt_tokens: needs tokens_per_minute or token_quota to count the estimate against"}},
		{"budget amount zero", []string{"amount: 10", "amount: 0 #!"},
			[]string{"test.yaml:{#!}: products[0].budget.amount: must be greater than 0"}},
		{"budget period", []string{"      period: monthly", "      period: quarterly #!"},
			[]string{`test.yaml:{#!}: products[0].budget.period: "quarterly" is not allowed; want hourly, daily, weekly, monthly or yearly`}},
		{"budget without prices", []string{"models: [gpt-4o]", "models: [embed]\n    budget: { amount: 5, period: daily } #!"},
			[]string{"test.yaml:{#!}: products[1].budget: needs a price in usage.prices.models for at least one of the product's models"}},
		{"default_max_tokens zero", []string{"default_max_tokens: 512", "default_max_tokens: 0 #!"},
			[]string{"test.yaml:{#!}: products[1].limits[0].default_max_tokens: must be at least 1"}},
		{"default_max_tokens negative", []string{"default_max_tokens: 512", "default_max_tokens: -1 #!"},
			[]string{"test.yaml:{#!}: products[1].limits[0].default_max_tokens: must be at least 1"}},
		{"adaptive_share above 1", []string{"adaptive_share: 0.5", "adaptive_share: 1.5 #!"},
			[]string{"test.yaml:{#!}: products[1].limits[1].adaptive_share: must be from 0 (off) to 1"}},
		{"adaptive_share negative", []string{"adaptive_share: 0.5", "adaptive_share: -0.1 #!"},
			[]string{"test.yaml:{#!}: products[1].limits[1].adaptive_share: must be from 0 (off) to 1"}},
		{"adaptive_share not a number", []string{"adaptive_share: 0.5", "adaptive_share: .nan #!"},
			[]string{"test.yaml:{#!}: products[1].limits[1].adaptive_share: must be from 0 (off) to 1"}},
		{"adaptive without tokens_per_minute", []string{"tokens_per_minute: 3000\n        adaptive_share: 0.5", "requests_per_minute: 10\n        adaptive_share: 0.5 #!"},
			[]string{"test.yaml:{#!}: products[1].limits[1].adaptive_share: needs tokens_per_minute, the base that the share of the global limit is added to"}},
		{"adaptive on the global limit", []string{"default_max_tokens: 512", "default_max_tokens: 512\n        adaptive_share: 0.2 #!"},
			[]string{"test.yaml:{#!}: products[1].limits[0].adaptive_share: must not be set on a key: global limit: an adaptive limit shares what remains of the global one"}},
		{"adaptive without a global limit", []string{"      - key: global", "      - key: subscription_model", "adaptive_share: 0.5", "adaptive_share: 0.5 #!"},
			[]string{"test.yaml:{#!}: products[1].limits[1].adaptive_share: needs a limit with key: global and tokens_per_minute in the same product, whose remainder it shares"}},
		{"adaptive with a global quota only", []string{"tokens_per_minute: 20000", "token_quota: 20000\n        token_quota_period: daily", "adaptive_share: 0.5", "adaptive_share: 0.5 #!"},
			[]string{"test.yaml:{#!}: products[1].limits[1].adaptive_share: needs a limit with key: global and tokens_per_minute in the same product, whose remainder it shares"}},
		{"adaptive with a global limit in another product", []string{"      - key: global\n        tokens_per_minute: 20000\n        estimate_prompt_tokens: true\n        default_max_tokens: 512\n", "", "      - key: subscription\n", "      - key: global\n", "adaptive_share: 0.5", "adaptive_share: 0.5 #!"},
			[]string{"test.yaml:{#!}: products[1].limits[0].adaptive_share: needs a limit with key: global and tokens_per_minute in the same product, whose remainder it shares"}},
		{"adaptive with two global limits", []string{"adaptive_share: 0.5", "adaptive_share: 0.5 #!\n      - key: global\n        tokens_per_minute: 100"},
			[]string{"test.yaml:{#!}: products[1].limits[1].adaptive_share: needs exactly one limit with key: global and tokens_per_minute in the same product, whose remainder it shares; there are 2: products[1].limits[0], products[1].limits[2]",
				"test.yaml:109: products[1].limits[2].key: tokens_per_minute of a key: global limit is set by products[1].limits[0] already: the gateway-wide counter would count each request twice"}},
		{"priority unknown", []string{"priority: low", "priority: urgent #!"},
			[]string{`test.yaml:{#!}: products[1].priority: "urgent" is not allowed; want high or low`}},
		{"priority empty", []string{"priority: low", `priority: "" #!`},
			[]string{"test.yaml:{#!}: products[1].priority: required; want high or low"}},
		{"header empty", []string{"tokens_consumed: x-tokens-consumed", `tokens_consumed: "" #!`},
			[]string{"test.yaml:{#!}: products[0].headers.tokens_consumed: required; want a header name such as x-sluice-tokens-consumed"}},
		{"header with space", []string{"remaining_tokens: x-remaining-tokens", `remaining_tokens: "x remaining" #!`},
			[]string{`test.yaml:{#!}: products[0].headers.remaining_tokens: "x remaining" is not a header name; use letters, digits and !#$%&'*+-.^_` + "`" + `|~ (RFC 9110)`}},
		{"header with colon", []string{"remaining_requests: x-remaining-requests", `remaining_requests: "x-remaining:" #!`},
			[]string{`test.yaml:{#!}: products[0].headers.remaining_requests: "x-remaining:" is not a header name; use letters, digits and !#$%&'*+-.^_` + "`" + `|~ (RFC 9110)`}},
		{"header not ASCII", []string{"quota_remaining_tokens: x-quota-remaining", `quota_remaining_tokens: "x-quöta" #!`},
			[]string{`test.yaml:{#!}: products[0].headers.quota_remaining_tokens: "x-quöta" is not a header name; use letters, digits and !#$%&'*+-.^_` + "`" + `|~ (RFC 9110)`}},
		{"header twice", []string{"tokens_consumed: x-tokens-consumed", "tokens_consumed: X-Remaining-Tokens #!"},
			[]string{`test.yaml:{#!}: products[0].headers.tokens_consumed: "X-Remaining-Tokens" is the same header as products[0].headers.remaining_tokens (header names ignore case)`}},
		{"header twice by default", []string{"  - name: premium\n", "  - name: premium\n    headers: { quota_remaining_tokens: X-RateLimit-Remaining-Tokens } #!\n"},
			[]string{`test.yaml:{#!}: products[1].headers.quota_remaining_tokens: "X-RateLimit-Remaining-Tokens" is the same header as products[1].headers.remaining_tokens (header names ignore case)`}},

		// subscriptions
		{"subscription name twice", []string{"  - name: beta", "  - name: alpha #!"},
			[]string{`test.yaml:{#!}: subscriptions[1].name: "alpha" is already the name of subscriptions[0]`}},
		{"subscription without product", []string{"product: premium", `product: "" #!`},
			[]string{"test.yaml:{#!}: subscriptions[1].product: required"}},
		{"subscription product unknown", []string{"product: premium", "product: gold #!"},
			[]string{`test.yaml:{#!}: subscriptions[1].product: no product is named "gold"`}},
		{"no keys", []string{"keys: [alpha-key]", "keys: [] #!"},
			[]string{"test.yaml:{#!}: subscriptions[0].keys: at least one key (or a principal) is required"}},
		{"empty key", []string{"keys: [alpha-key]", `keys: [alpha-key, ""] #!`},
			[]string{"test.yaml:{#!}: subscriptions[0].keys[1]: must not be empty"}},
		{"key with white space", []string{"keys: [alpha-key]", `keys: [" alpha-key"] #!`},
			[]string{"test.yaml:{#!}: subscriptions[0].keys[0]: must not start or end with white space"}},
		{"sha256 too short", []string{"keys: [alpha-key]", `keys: ["sha256:abc"] #!`},
			[]string{"test.yaml:{#!}: subscriptions[0].keys[0]: a sha256: key must be followed by exactly 64 hexadecimal characters"}},
		{"sha256 not hex", []string{"keys: [alpha-key]", `keys: ["sha256:` + strings.Repeat("z", 64) + `"] #!`},
			[]string{"test.yaml:{#!}: subscriptions[0].keys[0]: a sha256: key must be followed by exactly 64 hexadecimal characters"}},
		{"same key twice", []string{"keys: [alpha-key]", "keys: [alpha-key]\n  - name: gamma\n    product: premium\n    keys: [other, alpha-key] #!"},
			[]string{"test.yaml:{#!}: subscriptions[1].keys[1]: same key as subscriptions[0].keys[0]"}},
		{"same key as digest", []string{"keys: [alpha-key]", "keys: [\"sha256:" + strings.ToUpper(sha256Hex("alpha-key")) + "\", alpha-key] #!"},
			[]string{"test.yaml:{#!}: subscriptions[0].keys[1]: same key as subscriptions[0].keys[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := edit(t, base, tt.edits...)
			cfg, err := Parse(testFile, []byte(text), noEnv)
			if diff := cmp.Diff(placeLines(t, text, tt.want), errorLines(err)); diff != "" {
				t.Errorf("Parse errors mismatch (-want +got):\n%s\nconfig:\n%s", diff, numbered(text))
			}
			if cfg != nil {
				t.Errorf("Parse returned a Config with errors; want nil")
			}
		})
	}
}

// numbered prefixes each line with its number, for failure messages.
func numbered(text string) string {
	var b strings.Builder
	for i, l := range strings.Split(text, "\n") {
		fmt.Fprintf(&b, "%3d %s\n", i+1, l)
	}
	return b.String()
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name  string
		edits []string
	}{
		{"redis store", []string{"store: memory", "store: redis://:pw@redis:6379/0"}},
		{"rediss store", []string{"store: memory", "store: rediss://redis.example.com:6380"}},
		{"postgres store", []string{"store: sqlite:usage.db", "store: postgres://sluice:pw@db:5432/usage?sslmode=require"}},
		{"postgresql store", []string{"store: sqlite:usage.db", "store: postgresql:///usage?host=/var/run/postgresql"}},
		{"admin without listener", []string{"  listen: 127.0.0.1:8081\n  api_key: admin-key\n", "", "prometheus: true", "prometheus: false"}},
		{"admin on another port of every interface", []string{"listen: 127.0.0.1:8081", `listen: ":8081"`}},
		{"random ports", []string{"listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", "listen: 127.0.0.1:8081", "listen: 127.0.0.1:0"}},
		{"no breaker", []string{"    circuit_breaker:\n      failures: 3\n      interval: 10s\n      status_codes: [\"429\"]\n      errors: [timeout]\n      trip_duration: 30s\n      max_trip_duration: 5m\n", ""}},
		{"no breaker rules", []string{"    circuit_breakers:\n      - percentage: 50\n        min_requests: 20\n        interval: 30s\n", "    circuit_breakers: []\n"}},
		{"no health check", []string{"    health_check:\n      path: /healthz\n      interval: 15s\n      timeout: 3s\n      unhealthy_threshold: 3\n      healthy_threshold: 2\n", ""}},
		{"health check with every default", []string{"    health_check:\n      path: /healthz\n      interval: 15s\n      timeout: 3s\n      unhealthy_threshold: 3\n      healthy_threshold: 2\n", "    health_check: {}\n"}},
		{"health check path with query", []string{"path: /healthz", `path: "/openai/models?api-version=2024-10-21"`}},
		{"percentage without failures", []string{"failures: 3", "failures: 0\n      percentage: 100"}},
		{"percentage with failures", []string{"failures: 3", "failures: 3\n      percentage: 1"}},
		{"max_trip_duration below trip_duration", []string{"max_trip_duration: 5m", "max_trip_duration: 1s"}},
		{"connect_timeout above timeout", []string{"connect_timeout: 5s", "connect_timeout: 2m"}},
		{"first_byte_timeout above timeout", []string{"first_byte_timeout: 45s", "first_byte_timeout: 5m"}},
		{"stream_timeout zero", []string{"stream_timeout: 10m", "stream_timeout: 0s"}},
		{"backoff zero", []string{"backoff: 1s", "backoff: 0s"}},
		{"throttle on requests alone", []string{"min_remaining_tokens: 2000", "min_remaining_tokens: 0"}},
		{"throttle refuses at once", []string{"max_wait: 2s", "max_wait: 0s"}},
		{"throttle with every default but a floor", []string{"      min_remaining_requests: 5\n      max_wait: 2s\n", ""}},
		{"adaptive_share whole", []string{"adaptive_share: 0.5", "adaptive_share: 1"}},
		{"adaptive_share 0 needs no global limit", []string{"      - key: global", "      - key: subscription_model", "adaptive_share: 0.5", "adaptive_share: 0"}},
		{"adaptive beside a global quota", []string{"adaptive_share: 0.5", "adaptive_share: 0.5\n      - key: global\n        token_quota: 100\n        token_quota_period: daily"}},
		{"priority high", []string{"priority: low", "priority: high"}},
		{"headers with symbols and case", []string{"tokens_consumed: x-tokens-consumed", "tokens_consumed: \"X-Tokens_Consumed.!#$%&'*+^`|~\""}},
		{"headers of Azure and APIM", []string{"remaining_tokens: x-remaining-tokens", "remaining_tokens: x-apim-remaining-tokens", "tokens_consumed: x-tokens-consumed", "tokens_consumed: x-apim-consumed-tokens"}},
		{"headers with every default", []string{"      remaining_tokens: x-remaining-tokens\n      remaining_requests: x-remaining-requests\n      quota_remaining_tokens: x-quota-remaining\n      tokens_consumed: x-tokens-consumed\n", "", "    headers:\n", "    headers: {}\n"}},
		{"affinity with every default", []string{"    session_affinity:\n      cookie: chat-affinity\n", "    session_affinity: {}\n"}},
		{"affinity cookie with symbols", []string{"cookie: chat-affinity", "cookie: \"__Host-Sluice_1.!#$%&'*+^`|~\""}},
		{"shutdown at once", []string{"listen: 127.0.0.1:8080", "listen: 127.0.0.1:8080\n  shutdown_grace: 0s"}},
		{"preview api_version", []string{"kind: azure-openai", "kind: azure-openai\n    api_version: 2025-04-01-preview"}},
		{"openai model with slash", []string{"embed: text-embedding-3-small", "embed: org/text-embedding-3-small"}},
		{"status range", []string{`status_codes: ["429"]`, `status_codes: ["408", "429", "500-599"]`}},
		{"sha256 upper case", []string{"sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881", "sha256:" + strings.ToUpper(sha256Hex("x"))}},
		{"no subscriptions or products", []string{base[strings.Index(base, "products:"):], ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := edit(t, base, tt.edits...)
			if _, err := Parse(testFile, []byte(text), noEnv); err != nil {
				t.Errorf("Parse error:\n%v\nconfig:\n%s", err, numbered(text))
			}
		})
	}
}

func TestValidateWithoutParse(t *testing.T) {
	c := &Config{
		Server:  Server{Listen: "127.0.0.1:8080", MaxRequestBytes: 1, ReadHeaderTimeout: dur(1), ReadBodyTimeout: dur(1), MaxConnections: 1, MaxConnectionsPerIP: 1},
		State:   State{Store: "memory", OnStoreError: "fail_open", Timeout: dur(1)},
		Usage:   Usage{Store: "sqlite:x.db", Prices: Prices{Currency: "USD"}},
		Tracing: Tracing{Protocol: "http", ServiceName: "sluice"},
		Logging: Logging{PromptMaxBytes: 1024},
		Backends: []Backend{{
			Name: "b", Kind: "openai", URL: "http://b", Auth: BackendAuth{APIKey: secret.New("k")}, Deployments: map[string]string{"m": "m"},
			Timeout: dur(1), ConnectTimeout: dur(1), FirstByteTimeout: dur(1),
		}},
		Pools:  []Pool{{Name: "p", Strategy: "round_robin", Members: []Member{{Backend: "b", Priority: 1}}, Retry: Retry{Attempts: 1}}},
		Models: map[string]string{"m": "p"},
	}
	want := []string{"pools[0].members[0].weight: must be at least 1"}
	if diff := cmp.Diff(want, errorLines(c.Validate())); diff != "" {
		t.Errorf("Validate errors mismatch (-want +got):\n%s", diff)
	}
	c.Pools[0].Members[0].Weight = 1
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v; want nil", err)
	}

	// Durations from a file are never negative; a Config built in code may
	// hold any value. Validate applies no defaults, so the health check
	// needs its path.
	c.Backends[0].StreamTimeout = -1
	c.Backends[0].HealthCheck = &HealthCheck{Interval: dur(2), Timeout: dur(1), UnhealthyThreshold: 1, HealthyThreshold: 1}
	c.Pools[0].Retry.Backoff = -1
	c.Pools[0].Throttle = &Throttle{MinRemainingTokens: 1, MaxWait: -1}
	want = []string{
		"backends[0].stream_timeout: must not be negative; 0 means no bound",
		"backends[0].health_check.path: must start with /, such as /v1/models",
		"pools[0].retry.backoff: must not be negative; 0 retries at once",
		"pools[0].throttle.max_wait: must not be negative; 0 refuses at once",
	}
	if diff := cmp.Diff(want, errorLines(c.Validate())); diff != "" {
		t.Errorf("Validate errors mismatch (-want +got):\n%s", diff)
	}
}

func TestParseStatusRange(t *testing.T) {
	tests := []struct {
		in      string
		lo, hi  int
		wantErr bool
	}{
		{"429", 429, 429, false},
		{"500-599", 500, 599, false},
		{"100-100", 100, 100, false},
		{"599", 599, 599, false},
		{"99", 0, 0, true},
		{"600", 0, 0, true},
		{"500-600", 0, 0, true},
		{"599-500", 0, 0, true},
		{"5xx", 0, 0, true},
		{"", 0, 0, true},
		{"-", 0, 0, true},
		{"500-", 0, 0, true},
		{" 429", 0, 0, true},
		{"+429", 0, 0, true},
		{"0429", 0, 0, true},
		{"500-599-600", 0, 0, true},
	}
	for _, tt := range tests {
		lo, hi, err := ParseStatusRange(tt.in)
		if lo != tt.lo || hi != tt.hi || (err != nil) != tt.wantErr {
			t.Errorf("ParseStatusRange(%q) = %d, %d, %v; want %d, %d, error %t", tt.in, lo, hi, err, tt.lo, tt.hi, tt.wantErr)
		}
	}
}

func TestKeyDigest(t *testing.T) {
	clear := sha256.Sum256([]byte("alpha-key"))
	tests := []struct {
		key     string
		want    [32]byte
		wantErr bool
	}{
		{"alpha-key", clear, false},
		{"sha256:" + sha256Hex("alpha-key"), clear, false},
		{"sha256:" + strings.ToUpper(sha256Hex("alpha-key")), clear, false},
		{"sha256:" + sha256Hex("alpha-key")[:63], [32]byte{}, true},
		{"", [32]byte{}, true},
		{"alpha-key\n", [32]byte{}, true},
	}
	for _, tt := range tests {
		got, err := KeyDigest(secret.New(tt.key))
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("KeyDigest(%q) = %x, %v; want %x, error %t", tt.key, got, err, tt.want, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "alpha") {
			t.Errorf("KeyDigest(%q) error %q contains the key", tt.key, err)
		}
	}
}
