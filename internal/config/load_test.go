package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sluice-gateway/sluice/internal/secret"
)

const (
	testFile      = "test.yaml"
	referencePath = "../../examples/sluice.yaml"
	betaDigest    = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
)

// referenceEnv sets every variable examples/sluice.yaml uses.
var referenceEnv = map[string]string{
	"SLUICE_ADMIN_KEY":           "admin-secret",
	"PTU_API_KEY":                "ptu-secret",
	"PAYG_WESTEUROPE_API_KEY":    "westeurope-secret",
	"PAYG_FRANCECENTRAL_API_KEY": "francecentral-secret",
	"TEAM_ALPHA_KEY":             "alpha-secret",
	"TEAM_BETA_KEY_SHA256":       betaDigest,
	"CONTENT_SAFETY_KEY":         "safety-secret",
	"ANTHROPIC_API_KEY":          "anthropic-secret",
}

// envFrom returns a lookupEnv that knows only m.
func envFrom(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// noEnv is a lookupEnv with nothing set.
func noEnv(string) (string, bool) { return "", false }

// errorLines returns the lines of err, or nil for no error.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

var cmpSecrets = cmp.Comparer(func(a, b secret.Value) bool { return a.Reveal() == b.Reveal() })

func dur(d time.Duration) Duration { return Duration(d) }
func ptr[T any](v T) *T            { return &v }

func TestParseReference(t *testing.T) {
	data, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse("sluice.yaml", data, envFrom(referenceEnv))
	if err != nil {
		t.Fatalf("Parse(reference) error:\n%v", err)
	}
	breaker := func(failures int, interval time.Duration, codes ...string) *CircuitBreaker {
		return &CircuitBreaker{
			Failures: failures, Interval: dur(interval), StatusCodes: codes,
			MinRequests: 10, Errors: []string{"timeout", "connection"}, TripDuration: dur(interval * 3),
			AcceptRetryAfter: true, MaxTripDuration: dur(10 * time.Minute),
		}
	}
	ptuBreaker := breaker(1, time.Minute, "429")
	ptuBreaker.TripDuration = dur(time.Minute)
	retryOn := []string{"429", "500-599", "timeout", "connection"}
	timeouts := func(b Backend) Backend {
		b.Timeout, b.ConnectTimeout, b.FirstByteTimeout = dur(120*time.Second), dur(10*time.Second), dur(120*time.Second)
		return b
	}
	want := &Config{
		Server: Server{Listen: "127.0.0.1:8080", MaxRequestBytes: 4194304, ReadHeaderTimeout: dur(10 * time.Second), ShutdownGrace: dur(30 * time.Second),
			ReadBodyTimeout: dur(60 * time.Second), MaxConnections: 10000, MaxConnectionsPerIP: 1024, PathPrefixes: []string{"/myAPI"}},
		Admin: Admin{Listen: "127.0.0.1:8081", APIKey: secret.New("admin-secret")},
		State: State{Store: "memory", OnStoreError: "fail_open", Timeout: dur(50 * time.Millisecond)},
		Usage: Usage{Store: "sqlite:sluice-usage.db", Journal: "sluice-usage.journal", Prices: Prices{Currency: "USD", Models: map[string]Price{
			"gpt-4o":                 {Input: 2.5, Output: 10, CachedInput: ptr(1.25)},
			"text-embedding-3-small": {Input: 0.02, CachedInput: ptr(0.02)},
		}}},
		Metrics: Metrics{Prometheus: true, Dimensions: []string{"subscription", "product", "model", "deployment", "backend", "region", "client_ip"}},
		Tracing: Tracing{Protocol: "http", SampleRatio: ptr(1.0), ServiceName: "sluice"},
		Cache:   Cache{Store: "memory", MaxBytes: 256 << 20},
		Logging: Logging{PromptMaxBytes: 1024},
		Backends: []Backend{
			timeouts(Backend{
				Name: "ptu-swedencentral", Kind: "azure-openai", URL: "http://127.0.0.1:9101", Region: "swedencentral",
				APIVersion: "2024-10-21", Auth: BackendAuth{APIKey: secret.New("ptu-secret")},
				Deployments:    map[string]string{"gpt-4o": "gpt-4o-ptu"},
				CircuitBreaker: ptuBreaker,
			}),
			timeouts(Backend{
				Name: "payg-westeurope", Kind: "azure-openai", URL: "http://127.0.0.1:9102", Region: "westeurope",
				APIVersion: "2024-10-21", Auth: BackendAuth{APIKey: secret.New("westeurope-secret")},
				Deployments:    map[string]string{"gpt-4o": "gpt-4o", "text-embedding-3-small": "text-embedding-3-small"},
				CircuitBreaker: breaker(3, 10*time.Second, "429", "500-599"),
			}),
			timeouts(Backend{
				Name: "payg-francecentral", Kind: "openai", URL: "http://127.0.0.1:9103", Region: "francecentral",
				Auth:           BackendAuth{APIKey: secret.New("francecentral-secret")},
				Deployments:    map[string]string{"gpt-4o": "gpt-4o", "text-embedding-3-small": "text-embedding-3-small"},
				CircuitBreaker: breaker(3, 10*time.Second, "429", "500-599"),
			}),
			timeouts(Backend{
				Name: "claude", Kind: "anthropic", URL: "http://127.0.0.1:9106", Region: "westeurope", APIVersion: "2023-06-01",
				Auth:        BackendAuth{APIKey: secret.New("anthropic-secret")},
				Deployments: map[string]string{"gpt-4o": "claude-haiku-4-5"}, DefaultMaxTokens: 4096,
			}),
		},
		Pools: []Pool{
			{Name: "chat", Strategy: "round_robin", Members: []Member{
				{Backend: "ptu-swedencentral", Priority: 1, Weight: 1},
				{Backend: "payg-westeurope", Priority: 2, Weight: 3},
				{Backend: "payg-francecentral", Priority: 2, Weight: 1},
				{Backend: "claude", Priority: 3, Weight: 1},
			}, Retry: Retry{Attempts: 3, On: retryOn, Backoff: dur(200 * time.Millisecond)}},
			{Name: "embeddings", Strategy: "round_robin", Members: []Member{
				{Backend: "payg-westeurope", Priority: 1, Weight: 1},
				{Backend: "payg-francecentral", Priority: 1, Weight: 1},
			}, Retry: Retry{Attempts: 2, On: retryOn, Backoff: dur(200 * time.Millisecond)}},
		},
		Models: map[string]string{"gpt-4o": "chat", "text-embedding-3-small": "embeddings"},
		Products: []Product{
			{
				Name: "standard", Models: []string{"gpt-4o", "text-embedding-3-small"},
				Regions: []string{"swedencentral", "westeurope", "francecentral"},
				Limits: []Limit{{
					Key: "subscription", TokensPerMinute: 5000, RequestsPerMinute: 60,
					TokenQuota: 1000000, TokenQuotaPeriod: "monthly", EstimatePromptTokens: true, DefaultMaxTokens: 1024,
				}},
				Priority: "high", Headers: defaultHeaders,
				Budget: &Budget{Amount: 100, Period: "monthly"},
				Cache: &ProductCache{
					VaryBy: []string{"subscription"},
					Exact:  &ExactCache{TTL: dur(time.Hour)},
					Semantic: &SemanticCache{
						Embeddings: "text-embedding-3-small", ScoreThreshold: 0.05, IgnoreSystemMessages: true,
						MaxMessageCount: 10, Duration: dur(10 * time.Minute), Dimensions: 512,
					},
				},
				ContentSafety: &ContentSafety{
					Service: "safety", ShieldPrompt: true, OutputType: "FourSeverityLevels",
					Categories:  map[string]int{"Hate": 4, "SelfHarm": 4, "Sexual": 4, "Violence": 4},
					Blocklists:  []string{"banned-terms"},
					Completions: SafetyCompletions{Mode: "window", WindowSize: 1000, WindowOverlap: 100},
					OnError:     "fail_closed",
				},
				PII: &PII{
					Entities: []string{"Email", "PhoneNumber", "CreditCardNumber", "IBAN", "IPAddress"},
					Patterns: []PIIPattern{{Category: "EmployeeId", Regex: "EMP-[0-9]{6}"}},
					Restore:  true, OnError: "fail_closed",
				},
			},
			{
				Name: "premium", Models: []string{"gpt-4o", "text-embedding-3-small"},
				Limits: []Limit{
					{Key: "subscription", TokensPerMinute: 50000, DefaultMaxTokens: 1024},
					{Key: "product", TokensPerMinute: 200000, DefaultMaxTokens: 1024},
				},
				Priority: "high", Headers: defaultHeaders,
			},
		},
		Subscriptions: []Subscription{
			{Name: "team-alpha", Product: "standard", Keys: []secret.Value{secret.New("alpha-secret")}},
			{Name: "team-beta", Product: "premium", Keys: []secret.Value{secret.New("sha256:" + betaDigest)}},
		},
		UI: UI{Chat: true, Dashboard: true},
		ContentSafety: []SafetyService{{
			Name: "safety", URL: "http://127.0.0.1:9107", Auth: SafetyAuth{APIKey: secret.New("safety-secret")},
			Timeout: dur(2 * time.Second), APIVersion: "2024-09-01",
		}},
	}
	if diff := cmp.Diff(want, got, cmpSecrets); diff != "" {
		t.Errorf("Parse(reference) mismatch (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate() after Parse = %v; want nil", err)
	}
}

func TestParseDefaults(t *testing.T) {
	const text = `
backends:
  - name: b
    url: https://b.example.com
    auth: { api_key: k }
    deployments: { m: d }
    circuit_breaker: {}
    circuit_breakers: [{}]
    health_check: {}
pools:
  - name: p
    members: [{ backend: b }]
    throttle: { min_remaining_tokens: 100 }
    session_affinity: {}
models:
  m: p
usage:
  prices:
    models:
      m: { input: 3, output: 4 }
products:
  - name: pr
    models: [m]
    limits: [{ tokens_per_minute: 10 }]
    headers: { remaining_tokens: ~ }
`
	got, err := Parse(testFile, []byte(text), noEnv)
	if err != nil {
		t.Fatalf("Parse error:\n%v", err)
	}
	defaultBreaker := CircuitBreaker{
		Failures: 5, MinRequests: 10, Interval: dur(time.Minute), StatusCodes: []string{"429", "500-599"},
		Errors: []string{"timeout", "connection"}, TripDuration: dur(time.Minute), MaxTripDuration: dur(10 * time.Minute),
	}
	want := &Config{
		Server: Server{Listen: "127.0.0.1:8080", MaxRequestBytes: 4 << 20, ReadHeaderTimeout: dur(10 * time.Second), ShutdownGrace: dur(30 * time.Second),
			ReadBodyTimeout: dur(60 * time.Second), MaxConnections: 10000, MaxConnectionsPerIP: 1024},
		State:   State{Store: "memory", OnStoreError: "fail_open", Timeout: dur(50 * time.Millisecond)},
		Usage:   Usage{Store: "sqlite:sluice-usage.db", Journal: "sluice-usage.journal", Prices: Prices{Currency: "USD", Models: map[string]Price{"m": {Input: 3, Output: 4, CachedInput: ptr(3.0)}}}},
		Metrics: Metrics{Dimensions: []string{"subscription", "product", "model", "deployment", "backend", "region"}},
		Tracing: Tracing{Protocol: "http", SampleRatio: ptr(1.0), ServiceName: "sluice"},
		Cache:   Cache{Store: "memory", MaxBytes: 256 << 20},
		Logging: Logging{PromptMaxBytes: 1024},
		Backends: []Backend{{
			Name: "b", Kind: "azure-openai", URL: "https://b.example.com", APIVersion: "2024-10-21",
			Auth: BackendAuth{APIKey: secret.New("k")}, Deployments: map[string]string{"m": "d"},
			Timeout: dur(120 * time.Second), ConnectTimeout: dur(10 * time.Second), FirstByteTimeout: dur(120 * time.Second),
			CircuitBreaker:  ptr(defaultBreaker),
			CircuitBreakers: []CircuitBreaker{defaultBreaker},
			HealthCheck: &HealthCheck{
				Path: "/openai/models?api-version=2024-10-21", Interval: dur(10 * time.Second), Timeout: dur(2 * time.Second),
				UnhealthyThreshold: 2, HealthyThreshold: 1,
			},
		}},
		Pools: []Pool{{
			Name: "p", Strategy: "round_robin", Members: []Member{{Backend: "b", Priority: 1, Weight: 1}},
			Retry:    Retry{Attempts: 1, Backoff: dur(200 * time.Millisecond)},
			Throttle: &Throttle{MinRemainingTokens: 100, MaxWait: dur(5 * time.Second)}, SessionAffinity: &SessionAffinity{Cookie: "sluice-affinity"},
		}},
		Models: map[string]string{"m": "p"},
		Products: []Product{{
			Name: "pr", Models: []string{"m"}, Limits: []Limit{{Key: "subscription", TokensPerMinute: 10, DefaultMaxTokens: 1024}},
			Priority: "high",
			Headers: LimitHeaders{
				RemainingTokens: "x-ratelimit-remaining-tokens", RemainingRequests: "x-ratelimit-remaining-requests",
				QuotaRemainingTokens: "x-sluice-quota-remaining-tokens", TokensConsumed: "x-sluice-tokens-consumed",
			},
		}},
	}
	if diff := cmp.Diff(want, got, cmpSecrets); diff != "" {
		t.Errorf("defaults mismatch (-want +got):\n%s", diff)
	}
}

// TestParseBreakerFailuresDefault checks that failures defaults to 5 only in
// count mode: a rule with percentage and no failures counts a share alone.
func TestParseBreakerFailuresDefault(t *testing.T) {
	tests := []struct {
		name                 string
		rule                 string
		failures, percentage int
	}{
		{"empty", "{}", 5, 0},
		{"percentage alone", "{ percentage: 50 }", 0, 50},
		{"percentage and failures", "{ percentage: 50, failures: 3 }", 3, 50},
		{"percentage and failures 0", "{ percentage: 50, failures: 0 }", 0, 50},
		{"percentage 0 is off", "{ percentage: 0 }", 5, 0},
		{"percentage null is left out", "{ percentage: ~ }", 5, 0},
		{"failures alone", "{ failures: 2 }", 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(minimal, "      api_key: k",
				"      api_key: k\n    circuit_breaker: "+tt.rule+"\n    circuit_breakers: ["+tt.rule+"]", 1)
			cfg, err := Parse(testFile, []byte(text), noEnv)
			if err != nil {
				t.Fatalf("Parse error:\n%v", err)
			}
			b := cfg.Backends[0]
			for _, cb := range []*CircuitBreaker{b.CircuitBreaker, &b.CircuitBreakers[0]} {
				if cb.Failures != tt.failures || cb.Percentage != tt.percentage || cb.MinRequests != 10 {
					t.Errorf("rule %s: got failures %d, percentage %d, min_requests %d; want %d, %d, 10",
						tt.rule, cb.Failures, cb.Percentage, cb.MinRequests, tt.failures, tt.percentage)
				}
			}
		})
	}
}

// TestParseBackendDefaults checks the defaults that depend on other fields of
// the backend: the health check path on kind and api_version, and
// first_byte_timeout on timeout.
func TestParseBackendDefaults(t *testing.T) {
	tests := []struct {
		name          string
		fields        string
		path          string
		timeout       time.Duration
		firstByte     time.Duration
		streamTimeout time.Duration
	}{
		{"azure-openai", "kind: azure-openai", "/openai/models?api-version=2024-10-21", 120 * time.Second, 120 * time.Second, 0},
		{"azure-openai with its api_version", "api_version: 2025-04-01-preview", "/openai/models?api-version=2025-04-01-preview", 120 * time.Second, 120 * time.Second, 0},
		{"openai", "kind: openai", "/v1/models", 120 * time.Second, 120 * time.Second, 0},
		{"explicit path", "kind: openai\n    health_check: { path: /health }", "/health", 120 * time.Second, 120 * time.Second, 0},
		{"first byte follows timeout", "timeout: 30s", "/openai/models?api-version=2024-10-21", 30 * time.Second, 30 * time.Second, 0},
		{"explicit first byte", "timeout: 30s\n    first_byte_timeout: 90s\n    stream_timeout: 15m", "/openai/models?api-version=2024-10-21", 30 * time.Second, 90 * time.Second, 15 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(minimal, "  - name: b\n", "  - name: b\n    "+tt.fields+"\n", 1)
			if !strings.Contains(tt.fields, "health_check") {
				text = strings.Replace(text, "      api_key: k", "      api_key: k\n    health_check: {}", 1)
			}
			cfg, err := Parse(testFile, []byte(text), noEnv)
			if err != nil {
				t.Fatalf("Parse error:\n%v\nconfig:\n%s", err, text)
			}
			b := cfg.Backends[0]
			if b.HealthCheck.Path != tt.path {
				t.Errorf("health_check.path = %q; want %q", b.HealthCheck.Path, tt.path)
			}
			if b.Timeout.D() != tt.timeout || b.FirstByteTimeout.D() != tt.firstByte || b.StreamTimeout.D() != tt.streamTimeout {
				t.Errorf("timeout, first_byte_timeout, stream_timeout = %s, %s, %s; want %s, %s, %s",
					b.Timeout.D(), b.FirstByteTimeout.D(), b.StreamTimeout.D(), tt.timeout, tt.firstByte, tt.streamTimeout)
			}
			if b.ConnectTimeout.D() != 10*time.Second {
				t.Errorf("connect_timeout = %s; want 10s", b.ConnectTimeout.D())
			}
		})
	}
}

func TestParseDefaultsKeepExplicitValues(t *testing.T) {
	// Every value differs from its default, including explicit empty lists,
	// which must not be replaced by the default lists.
	const text = `
server: { listen: "0.0.0.0:9000", max_request_bytes: 100, read_header_timeout: 1s, shutdown_grace: 0s,
  read_body_timeout: 3s, max_connections: 5, max_connections_per_ip: 2, trusted_proxies: [10.0.0.0/8, "::1"] }
admin: { listen: "127.0.0.1:9001" }
state: { store: "redis://r:6379/0", on_store_error: fail_closed, timeout: 2s }
usage: { store: "postgres://u@db/usage", prices: { currency: EUR } }
metrics: { dimensions: [] }
backends:
  - name: b
    kind: openai
    url: https://b.example.com
    auth: { api_key: k }
    deployments: { m: d }
    timeout: 5s
    connect_timeout: 1s
    first_byte_timeout: 9s
    stream_timeout: 0s
    circuit_breaker:
      failures: 2
      percentage: 40
      min_requests: 3
      interval: 2s
      status_codes: []
      errors: [timeout]
      trip_duration: 3s
      accept_retry_after: true
      max_trip_duration: 1s
    circuit_breakers: []
    health_check: { path: "/health?deep=1", interval: 7s, timeout: 6s, unhealthy_threshold: 4, healthy_threshold: 5 }
pools:
  - name: p
    strategy: least_busy
    members: [{ backend: b, priority: 2, weight: 7 }]
    retry: { attempts: 4, on: [connection], backoff: 0s }
    throttle: { min_remaining_requests: 3, max_wait: 0s }
    session_affinity: { cookie: "__Host-pin" }
models: { m: p }
products:
  - name: pr
    models: [m]
    limits:
      - { key: global, requests_per_minute: 1, tokens_per_minute: 100 }
      - { tokens_per_minute: 5, estimate_prompt_tokens: true, default_max_tokens: 7, adaptive_share: 0.25 }
    priority: low
    headers: { remaining_tokens: a, remaining_requests: b, quota_remaining_tokens: c, tokens_consumed: d }
`
	got, err := Parse(testFile, []byte(text), noEnv)
	if err != nil {
		t.Fatalf("Parse error:\n%v", err)
	}
	want := &Config{
		Server: Server{Listen: "0.0.0.0:9000", MaxRequestBytes: 100, ReadHeaderTimeout: dur(time.Second),
			ReadBodyTimeout: dur(3 * time.Second), MaxConnections: 5, MaxConnectionsPerIP: 2, TrustedProxies: []string{"10.0.0.0/8", "::1"}},
		Admin:   Admin{Listen: "127.0.0.1:9001"},
		State:   State{Store: "redis://r:6379/0", OnStoreError: "fail_closed", Timeout: dur(2 * time.Second)},
		Usage:   Usage{Store: "postgres://u@db/usage", Journal: "sluice-usage.journal", Prices: Prices{Currency: "EUR"}},
		Metrics: Metrics{Dimensions: []string{}},
		Tracing: Tracing{Protocol: "http", SampleRatio: ptr(1.0), ServiceName: "sluice"},
		Cache:   Cache{Store: "memory", MaxBytes: 256 << 20},
		Logging: Logging{PromptMaxBytes: 1024},
		Backends: []Backend{{
			Name: "b", Kind: "openai", URL: "https://b.example.com",
			Auth: BackendAuth{APIKey: secret.New("k")}, Deployments: map[string]string{"m": "d"},
			Timeout: dur(5 * time.Second), ConnectTimeout: dur(time.Second), FirstByteTimeout: dur(9 * time.Second),
			CircuitBreaker: &CircuitBreaker{
				Failures: 2, Percentage: 40, MinRequests: 3, Interval: dur(2 * time.Second), StatusCodes: []string{},
				Errors: []string{"timeout"}, TripDuration: dur(3 * time.Second), AcceptRetryAfter: true, MaxTripDuration: dur(time.Second),
			},
			CircuitBreakers: []CircuitBreaker{},
			HealthCheck: &HealthCheck{
				Path: "/health?deep=1", Interval: dur(7 * time.Second), Timeout: dur(6 * time.Second),
				UnhealthyThreshold: 4, HealthyThreshold: 5,
			},
		}},
		Pools: []Pool{{
			Name: "p", Strategy: "least_busy", Members: []Member{{Backend: "b", Priority: 2, Weight: 7}},
			Retry:    Retry{Attempts: 4, On: []string{"connection"}},
			Throttle: &Throttle{MinRemainingRequests: 3}, SessionAffinity: &SessionAffinity{Cookie: "__Host-pin"},
		}},
		Models: map[string]string{"m": "p"},
		Products: []Product{{
			Name: "pr", Models: []string{"m"},
			Limits: []Limit{
				{Key: "global", RequestsPerMinute: 1, TokensPerMinute: 100, DefaultMaxTokens: 1024},
				{Key: "subscription", TokensPerMinute: 5, EstimatePromptTokens: true, DefaultMaxTokens: 7, AdaptiveShare: 0.25},
			},
			Priority: "low",
			Headers:  LimitHeaders{RemainingTokens: "a", RemainingRequests: "b", QuotaRemainingTokens: "c", TokensConsumed: "d"},
		}},
	}
	if diff := cmp.Diff(want, got, cmpSecrets); diff != "" {
		t.Errorf("explicit values mismatch (-want +got):\n%s", diff)
	}
}

// minimal is a valid configuration for tests that need one small enough to
// count lines in.
const minimal = `backends:
  - name: b
    url: https://b.example.com
    auth:
      api_key: k
    deployments: { m: d }
pools:
  - name: p
    members: [{ backend: b }]
models: { m: p }
`

func TestParseStructure(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"empty", "", []string{"test.yaml: the file is empty; want a mapping of sections (server, backends, pools, models, ...)"}},
		{"only comments", "# nothing\n\n", []string{"test.yaml: the file is empty; want a mapping of sections (server, backends, pools, models, ...)"}},
		{"null document", "---\n~\n", []string{"test.yaml:2: the file is empty; want a mapping of sections (server, backends, pools, models, ...)"}},
		{"list at top", "- a\n- b\n", []string{"test.yaml:1: want a mapping of sections (server, backends, pools, models, ...), got a list"}},
		{"two documents", minimal + "---\nserver: {}\n", []string{"test.yaml:12: a second YAML document starts here; the file must hold exactly one"}},
		{"syntax error", minimal + "server: 'x\n", []string{"test.yaml:11: found unexpected end of stream"}},
		{"bad indentation", minimal + "server:\n  listen: a\n bad: b\n", []string{"test.yaml:13: did not find expected key"}},
		{"unclosed flow list on line 1", "models: [a, b\n", []string{"test.yaml:2: did not find expected ',' or ']'"}},
		{"tab indentation", "server:\n\tlisten: a\n", []string{"test.yaml:2: found character that cannot start any token"}},
		{"unquoted variable in a flow mapping", minimal + "server: { listen: ${LISTEN} }\n",
			[]string{`test.yaml:11: did not find expected ',' or '}' (inside { } or [ ], quote a value that uses ${NAME}: "${NAME}")`}},
		{"section of wrong shape", minimal + "server: 5\n", []string{"test.yaml:11: server: want a mapping of fields, got a single value"}},
		{"list of wrong shape", minimal + "products: {}\n", []string{"test.yaml:11: products: want a list, got a mapping"}},
		{"map of wrong shape", "models: [a]\n", []string{"test.yaml:1: models: want a mapping of names to values, got a list"}},
		{"string of wrong shape", minimal + "server: { listen: [a] }\n", []string{"test.yaml:11: server.listen: want a string, got a list"}},
		{"fraction for a whole number", minimal + "server:\n  max_request_bytes: 1.5\n", []string{`test.yaml:12: server.max_request_bytes: want a whole number, got "1.5"`}},
		{"quoted number", minimal + "server:\n  max_request_bytes: \"10\"\n", []string{`test.yaml:12: server.max_request_bytes: want a whole number, got "10"`}},
		{"yes for a bool", minimal + "metrics:\n  prometheus: yes\n", []string{`test.yaml:12: metrics.prometheus: want true or false, got "yes"`}},
		{"duration without unit", minimal + "server:\n  shutdown_grace: 30\n", []string{`test.yaml:12: server.shutdown_grace: want a duration such as 90s, 5m or 1h, got "30"`}},
		{"negative duration", minimal + "server:\n  shutdown_grace: -1s\n", []string{`test.yaml:12: server.shutdown_grace: want a duration such as 90s, 5m or 1h, got "-1s"`}},
		{"secret of wrong shape", minimal + "admin:\n  api_key: { a: b }\n", []string{"test.yaml:12: admin.api_key: want a string, got a mapping"}},
		{"duplicate field", minimal + "server:\n  listen: 127.0.0.1:1\n  listen: 127.0.0.1:2\n", []string{"test.yaml:13: server.listen: duplicate field; first set at line 12"}},
		{"duplicate map key", "models:\n  m: p\n  m: q\n", []string{"test.yaml:3: models.m: duplicate key; first set at line 2"}},
		{"key that is not a name", "models:\n  [a]: p\n", []string{"test.yaml:2: models: want a name as key, got a list"}},
		{"alias cycle", minimal + "server: &s\n  listen: *s\n", []string{"test.yaml:12: server.listen: alias *s refers to a value that contains it"}},
		{"merge of a scalar", minimal + "server:\n  <<: 5\n", []string{"test.yaml:12: server: a merge key (<<) needs a mapping or a list of mappings that does not contain it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(testFile, []byte(tt.text), noEnv)
			if diff := cmp.Diff(tt.want, errorLines(err)); diff != "" {
				t.Errorf("Parse errors mismatch (-want +got):\n%s", diff)
			}
			if cfg != nil {
				t.Errorf("Parse returned a Config with errors; want nil")
			}
		})
	}
}

func TestParseUnknownField(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{"top level", minimal + "serverr: {}\n",
			"test.yaml:11: serverr: unknown field (known: server, admin, state, usage, metrics, tracing, cache, logging, auth, backends, pools, models, products, subscriptions, ui, content_safety)"},
		{"section", minimal + "server:\n  listn: 127.0.0.1:1\n",
			"test.yaml:12: server.listn: unknown field (known: listen, max_request_bytes, read_header_timeout, shutdown_grace, read_body_timeout, max_connections, max_connections_per_ip, path_prefixes, trusted_proxies, tls)"},
		{"list element", strings.Replace(minimal, "    url:", "    timeoutt: 5s\n    url:", 1),
			"test.yaml:3: backends[0].timeoutt: unknown field (known: name, kind, url, region, api_version, auth, deployments, default_max_tokens, timeout, connect_timeout, first_byte_timeout, stream_timeout, circuit_breaker, circuit_breakers, health_check)"},
		{"nested in list element", strings.Replace(minimal, "      api_key: k", "      api_key: k\n    circuit_breaker: { failure: 2 }", 1),
			"test.yaml:6: backends[0].circuit_breaker.failure: unknown field (known: failures, percentage, min_requests, interval, status_codes, errors, trip_duration, accept_retry_after, max_trip_duration)"},
		{"flow mapping in nested list", strings.Replace(minimal, "{ backend: b }", "{ backend: b, wieght: 2 }", 1),
			"test.yaml:9: pools[0].members[0].wieght: unknown field (known: backend, priority, weight)"},
		{"breaker rule in a list", strings.Replace(minimal, "      api_key: k", "      api_key: k\n    circuit_breakers: [{ percentage: 5 }, { percent: 5 }]", 1),
			"test.yaml:6: backends[0].circuit_breakers[1].percent: unknown field (known: failures, percentage, min_requests, interval, status_codes, errors, trip_duration, accept_retry_after, max_trip_duration)"},
		{"health check", strings.Replace(minimal, "      api_key: k", "      api_key: k\n    health_check:\n      pth: /x", 1),
			"test.yaml:7: backends[0].health_check.pth: unknown field (known: path, interval, timeout, unhealthy_threshold, healthy_threshold)"},
		{"pool", minimal[:strings.Index(minimal, "models:")] + "    sticky: true\nmodels: { m: p }\n",
			"test.yaml:10: pools[0].sticky: unknown field (known: name, strategy, members, retry, throttle, session_affinity)"},
		{"throttle", minimal[:strings.Index(minimal, "models:")] + "    throttle: { min_remaining_tokens: 5, min_tokens: 5 }\nmodels: { m: p }\n",
			"test.yaml:10: pools[0].throttle.min_tokens: unknown field (known: min_remaining_tokens, min_remaining_requests, max_wait)"},
		{"state", minimal + "state:\n  timout: 1s\n",
			"test.yaml:12: state.timout: unknown field (known: store, on_store_error, timeout)"},
		{"limit", minimal + "products:\n  - name: pr\n    models: [m]\n    limits: [{ tokens_per_minute: 5, adaptive: 0.5 }]\n",
			"test.yaml:14: products[0].limits[0].adaptive: unknown field (known: key, tokens_per_minute, requests_per_minute, token_quota, token_quota_period, estimate_prompt_tokens, default_max_tokens, adaptive_share)"},
		{"limit headers", minimal + "products:\n  - name: pr\n    models: [m]\n    headers:\n      remaining: x\n",
			"test.yaml:15: products[0].headers.remaining: unknown field (known: remaining_tokens, remaining_requests, quota_remaining_tokens, tokens_consumed)"},
		{"retry", minimal[:strings.Index(minimal, "models:")] + "    retry: { back_off: 1s }\nmodels: { m: p }\n",
			"test.yaml:10: pools[0].retry.back_off: unknown field (known: attempts, on, backoff)"},
		{"session affinity", minimal[:strings.Index(minimal, "models:")] + "    session_affinity: { cookies: x }\nmodels: { m: p }\n",
			"test.yaml:10: pools[0].session_affinity.cookies: unknown field (known: cookie)"},
		{"map value", minimal + "usage:\n  prices:\n    models:\n      m:\n        inptu: 1\n",
			"test.yaml:15: usage.prices.models.m.inptu: unknown field (known: input, output, cached_input)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(testFile, []byte(tt.text), noEnv)
			if diff := cmp.Diff([]string{tt.want}, errorLines(err)); diff != "" {
				t.Errorf("Parse errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMergeKeys(t *testing.T) {
	const withAnchor = `backends:
  - &common
    name: a
    url: https://a.example.com
    auth: { api_key: k }
    deployments: { m: d }
    timeout: 5s
  - <<: *common
    name: b
pools:
  - name: p
    members: [{ backend: a }, { backend: b }]
models: { m: p }
`
	cfg, err := Parse(testFile, []byte(withAnchor), noEnv)
	if err != nil {
		t.Fatalf("Parse error:\n%v", err)
	}
	b := cfg.Backends[1]
	if b.Name != "b" || b.URL != "https://a.example.com" || b.Timeout != dur(5*time.Second) || b.Deployments["m"] != "d" {
		t.Errorf("merged backend = %+v; want name b with the url, timeout and deployments of a", b)
	}
}

func TestParseEnv(t *testing.T) {
	env := map[string]string{
		"KEY": "k-from-env", "EMPTY": "", "MAX": "1024", "WORD": "lots", "GRACE": "5s",
		"YES": "true", "NUM": "0123", "HOST": "b.example.com",
	}
	tests := []struct {
		name  string
		edit  [2]string
		check func(*Config) string // returns what was wrong, or ""
		want  []string
	}{
		{name: "secret", edit: [2]string{"api_key: k", "api_key: ${KEY}"},
			check: func(c *Config) string { return want(c.Backends[0].Auth.APIKey.Reveal(), "k-from-env") }},
		{name: "part of a value", edit: [2]string{"https://b.example.com", "https://${HOST}:8443"},
			check: func(c *Config) string { return want(c.Backends[0].URL, "https://b.example.com:8443") }},
		{name: "escaped", edit: [2]string{"api_key: k", "api_key: $${KEY}"},
			check: func(c *Config) string { return want(c.Backends[0].Auth.APIKey.Reveal(), "${KEY}") }},
		{name: "other dollars are kept", edit: [2]string{"api_key: k", "api_key: pa$$w$rd${ not a name }$"},
			check: func(c *Config) string { return want(c.Backends[0].Auth.APIKey.Reveal(), "pa$$w$rd${ not a name }$") }},
		{name: "number looking string stays a string", edit: [2]string{"name: b", "name: b\n    region: ${NUM}"},
			check: func(c *Config) string { return want(c.Backends[0].Region, "0123") }},
		{name: "typed values", edit: [2]string{"models:", "server:\n  max_request_bytes: ${MAX}\n  shutdown_grace: ${GRACE}\nmetrics:\n  prometheus: ${YES}\nadmin: { listen: \"127.0.0.1:1\" }\nmodels:"},
			check: func(c *Config) string {
				if c.Server.MaxRequestBytes != 1024 || c.Server.ShutdownGrace != dur(5*time.Second) || !c.Metrics.Prometheus {
					return "max_request_bytes, shutdown_grace or prometheus not taken from the environment"
				}
				return ""
			}},
		{name: "typed values quoted in a flow mapping", edit: [2]string{"models:", "server: { max_request_bytes: \"${MAX}\" }\nmodels:"},
			check: func(c *Config) string {
				if c.Server.MaxRequestBytes != 1024 {
					return "max_request_bytes not taken from the environment"
				}
				return ""
			}},
		{name: "explicit string tag is kept", edit: [2]string{"models:", "server: { max_request_bytes: !!str \"${MAX}\" }\nmodels:"},
			want: []string{"test.yaml:10: server.max_request_bytes: want a whole number (the value comes from the environment)"}},
		{name: "unset", edit: [2]string{"api_key: k", "api_key: ${PTU_API_KEY}"},
			want: []string{"test.yaml:5: backends[0].auth.api_key: environment variable PTU_API_KEY is not set"}},
		{name: "two unset in one value", edit: [2]string{"https://b.example.com", "https://${A}.example.com/${B}"},
			want: []string{
				"test.yaml:3: backends[0].url: environment variable A is not set",
				"test.yaml:3: backends[0].url: environment variable B is not set",
			}},
		{name: "set but empty is judged by validation", edit: [2]string{"api_key: k", "api_key: ${EMPTY}"},
			want: []string{"test.yaml:5: backends[0].auth.api_key: required (or managed_identity, client_credentials or oauth2)"}},
		{name: "not a number", edit: [2]string{"models:", "server: { max_request_bytes: \"${WORD}\" }\nmodels:"},
			want: []string{"test.yaml:10: server.max_request_bytes: want a whole number (the value comes from the environment)"}},
		{name: "empty number", edit: [2]string{"models:", "server:\n  max_request_bytes: ${EMPTY}\nmodels:"},
			want: []string{"test.yaml:11: server.max_request_bytes: want a whole number (the value comes from the environment)"}},
		{name: "keys are not expanded", edit: [2]string{"{ m: d }", "{ m: d, \"${KEY}\": d }"},
			check: func(c *Config) string { return want(c.Backends[0].Deployments["${KEY}"], "d") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(minimal, tt.edit[0], tt.edit[1], 1)
			cfg, err := Parse(testFile, []byte(text), envFrom(env))
			if diff := cmp.Diff(tt.want, errorLines(err)); diff != "" {
				t.Fatalf("Parse errors mismatch (-want +got):\n%s", diff)
			}
			if tt.check != nil {
				if msg := tt.check(cfg); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}

// want returns "" when got equals want, or says how they differ.
func want(got, want string) string {
	if got == want {
		return ""
	}
	return "got " + got + "; want " + want
}

func TestParseReportsEveryProblem(t *testing.T) {
	const text = `server:
  listen: nowhere
  lisen: 127.0.0.1:1
backends:
  - name: b
    url: ftp://b.example.com
    auth:
      api_key: ${UNSET}
    deployments: { m: d }
    timeout: 0s
pools:
  - name: p
    strategy: fastest
    members: [{ backend: b, weight: 0 }, { backend: c }]
models: { m: p, n: q }
subscriptions:
  - name: s
    product: gold
    keys: [abc, abc]
`
	want := []string{
		`test.yaml:2: server.listen: "nowhere" is not host:port with a port from 0 to 65535, such as 127.0.0.1:8080`,
		"test.yaml:3: server.lisen: unknown field (known: listen, max_request_bytes, read_header_timeout, shutdown_grace, read_body_timeout, max_connections, max_connections_per_ip, path_prefixes, trusted_proxies, tls)",
		"test.yaml:6: backends[0].url: must be an absolute http or https URL with a host, such as https://NAME.openai.azure.com",
		"test.yaml:8: backends[0].auth.api_key: environment variable UNSET is not set",
		"test.yaml:10: backends[0].timeout: must be greater than 0",
		`test.yaml:13: pools[0].strategy: "fastest" is not allowed; want round_robin, least_latency or least_busy`,
		"test.yaml:14: pools[0].members[0].weight: must be at least 1",
		`test.yaml:14: pools[0].members[1].backend: no backend is named "c"`,
		`test.yaml:15: models.n: no pool is named "q"`,
		`test.yaml:18: subscriptions[0].product: no product is named "gold"`,
		"test.yaml:19: subscriptions[0].keys[1]: same key as subscriptions[0].keys[0]",
	}
	_, err := Parse(testFile, []byte(text), noEnv)
	if diff := cmp.Diff(want, errorLines(err)); diff != "" {
		t.Errorf("Parse errors mismatch (-want +got):\n%s", diff)
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("errors.As(err, *Errors) = false; want true")
	}
	var one *Error
	if !errors.As(err, &one) || one.File != testFile || one.Line != 2 || one.Path != "server.listen" {
		t.Errorf("errors.As(err, **Error) = %+v; want the first problem, at test.yaml:2 server.listen", one)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte(minimal+"server: { listen: oops }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, noEnv)
	wantLine := path + `:11: server.listen: "oops" is not host:port with a port from 0 to 65535, such as 127.0.0.1:8080`
	if diff := cmp.Diff([]string{wantLine}, errorLines(err)); diff != "" {
		t.Errorf("Load errors mismatch (-want +got):\n%s", diff)
	}

	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"), noEnv)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v; want an error wrapping fs.ErrNotExist", err)
	}

	t.Setenv("SLUICE_TEST_KEY", "from-os")
	if err := os.WriteFile(path, []byte(strings.Replace(minimal, "api_key: k", "api_key: ${SLUICE_TEST_KEY}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load(nil lookupEnv) error: %v", err)
	}
	if got := cfg.Backends[0].Auth.APIKey.Reveal(); got != "from-os" {
		t.Errorf("api_key with nil lookupEnv = %q; want %q from os.LookupEnv", got, "from-os")
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{File: "f.yaml", Line: 3, Path: "a.b", Msg: "bad"}, "f.yaml:3: a.b: bad"},
		{&Error{File: "f.yaml", Path: "a.b", Msg: "bad"}, "f.yaml: a.b: bad"},
		{&Error{File: "f.yaml", Line: 3, Msg: "bad"}, "f.yaml:3: bad"},
		{&Error{Path: "a.b", Msg: "bad"}, "a.b: bad"},
		{&Error{Line: 3, Msg: "bad"}, "line 3: bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q; want %q", got, tt.want)
		}
	}
	errs := Errors{tests[0].err, tests[3].err}
	if got, want := errs.Error(), "f.yaml:3: a.b: bad\na.b: bad"; got != want {
		t.Errorf("Errors.Error() = %q; want %q", got, want)
	}
}

// TestParseFullReference holds examples/reference.yaml, a verbatim copy of
// the reference configuration (every field the project promised to accept,
// as written there), to parsing and validating without a word changed.
// examples/sluice.yaml is the demo's subset of it.
func TestParseFullReference(t *testing.T) {
	data, err := os.ReadFile("../../examples/reference.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"TENANT_ID": "00000000-0000-0000-0000-000000000001", "SELFHOSTED_CLIENT_SECRET": "selfhosted-secret",
		"ANTHROPIC_API_KEY": "anthropic-secret", "GEMINI_API_KEY": "gemini-secret", "TEAM_GAMMA_APP_ID": "app-gamma",
	}
	for k, v := range referenceEnv {
		env[k] = v
	}
	got, err := Parse("reference.yaml", data, envFrom(env))
	if err != nil {
		t.Fatalf("Parse(reference.yaml) error:\n%v", err)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("Validate(reference.yaml) = %v", err)
	}
	kinds := map[string]bool{}
	for _, b := range got.Backends {
		kinds[b.Kind] = true
	}
	for _, k := range []string{"azure-openai", "openai", "anthropic", "gemini"} {
		if !kinds[k] {
			t.Errorf("reference.yaml has no %s backend", k)
		}
	}
	if len(got.Auth.JWT) != 1 || got.Products[0].Cache == nil || got.Products[0].ContentSafety == nil || got.Products[0].PII == nil || !got.UI.Chat {
		t.Errorf("reference.yaml lost a section: %+v", got)
	}
}
