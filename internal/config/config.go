// Package config is Sluice's configuration as plain data: the YAML file's
// shape, its strict decoding with file and line in every error, the defaults,
// and the validation of fields and of the relations between them.
// It knows nothing of the runtime; the route package compiles a validated
// Config into the immutable form the request path reads.
package config

import (
	"fmt"
	"time"

	"github.com/sluice-gateway/sluice/internal/secret"
	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file.
type Config struct {
	// Server configures the client-facing listener.
	Server Server `yaml:"server" json:"server"`
	// Admin configures the operator listener: health, metrics and the admin API.
	Admin Admin `yaml:"admin" json:"admin"`
	// State says where the counters of token limits and quotas live.
	State State `yaml:"state" json:"state"`
	// Usage configures the usage ledger and prices. Parsed and validated; takes
	// effect with usage metering.
	Usage Usage `yaml:"usage" json:"usage"`
	// Metrics configures Prometheus metrics. Parsed and validated; takes effect
	// with metrics.
	Metrics Metrics `yaml:"metrics" json:"metrics"`
	// Tracing configures OpenTelemetry trace export. Off unless an
	// endpoint is set.
	Tracing Tracing `yaml:"tracing" json:"tracing"`
	// Cache configures the response cache's store (see cache.go).
	Cache Cache `yaml:"cache" json:"cache"`
	// Logging configures the access log.
	Logging Logging `yaml:"logging" json:"logging"`
	// Auth configures how clients authenticate besides subscription keys:
	// JWT bearer tokens from identity providers such as Entra ID.
	Auth Auth `yaml:"auth" json:"auth"`
	// Backends are the model servers Sluice forwards to.
	Backends []Backend `yaml:"backends" json:"backends"`
	// Pools group backends; a model is served by one pool.
	Pools []Pool `yaml:"pools" json:"pools"`
	// Models maps the model or Azure deployment name a client asks for to the
	// name of the pool that serves it.
	Models map[string]string `yaml:"models" json:"models"`
	// Products are what subscriptions are entitled to: models, regions, limits.
	Products []Product `yaml:"products" json:"products"`
	// Subscriptions are the callers and their keys.
	Subscriptions []Subscription `yaml:"subscriptions" json:"subscriptions"`
	// UI serves the chat app and the operations dashboard (off by default).
	UI UI `yaml:"ui" json:"ui"`
	// ContentSafety are the content safety services products may use.
	ContentSafety []SafetyService `yaml:"content_safety" json:"content_safety,omitempty"`
}

// Server configures the client-facing listener.
type Server struct {
	// Listen is the address of the client-facing API. Default 127.0.0.1:8080.
	Listen string `yaml:"listen" json:"listen"`
	// MaxRequestBytes is the largest request body accepted; larger bodies get
	// 413. Default 4194304 (4 MiB).
	MaxRequestBytes int64 `yaml:"max_request_bytes" json:"max_request_bytes"`
	// ReadHeaderTimeout bounds how long a client may take to send its request
	// headers. Default 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout" json:"read_header_timeout"`
	// ShutdownGrace is how long, on SIGTERM, in-flight requests and streams may
	// take to finish after the listener stops accepting. Default 30s.
	ShutdownGrace Duration `yaml:"shutdown_grace" json:"shutdown_grace"`
	// ReadBodyTimeout bounds how long a client may take to send its request
	// body once its headers are in; a client that trickles its body gets 408
	// and the connection is closed. Default 60s.
	ReadBodyTimeout Duration `yaml:"read_body_timeout" json:"read_body_timeout"`
	// MaxConnections caps the client connections open at once, idle
	// keep-alive ones included; a connection beyond it gets 503 and is closed
	// before any of its requests is read. Default 10000, and never more than
	// three quarters of the process's file-descriptor limit.
	MaxConnections int `yaml:"max_connections" json:"max_connections"`
	// MaxConnectionsPerIP caps the client connections open at once from one
	// address (the peer's; a trusted proxy counts as itself), so one client
	// cannot take all of MaxConnections. Default 1024; 0 is not allowed.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip" json:"max_connections_per_ip"`
	// PathPrefixes are path prefixes under which every API is served too,
	// stripped before routing: with "/myAPI", a client of an API Management
	// API whose URL suffix was myAPI/openai calls
	// /myAPI/openai/deployments/{deployment}/chat/completions unchanged.
	// Each starts with "/", does not end with one, and is not /v1 or /openai
	// (or under them). Default: none.
	PathPrefixes []string `yaml:"path_prefixes" json:"path_prefixes"`
	// TrustedProxies are the addresses (IPs or CIDR ranges) of proxies in
	// front of Sluice. Only a request from one of them may bring
	// X-Forwarded-For and Forwarded headers, which then name the client in
	// the ledger and metrics and are passed on; from anyone else they are
	// dropped. Sluice sets X-Forwarded-For to the real peer either way.
	// Default: none.
	TrustedProxies []string `yaml:"trusted_proxies" json:"trusted_proxies"`
	// TLS serves HTTPS on server.listen, HTTP/2 offered, and optionally
	// asks clients for certificates. Nil (left out): plain HTTP. It takes
	// effect on restart; the certificate and key files are re-read when they
	// change.
	TLS *TLS `yaml:"tls" json:"tls,omitempty"`
}

// TLS is a listener's HTTPS. TLS 1.2 is the oldest version offered, and
// HTTP/2 is offered next to HTTP/1.1. The files are PEM and are re-read
// when they change (checked at most once a second, at a handshake), so that
// a renewed certificate needs no restart.
type TLS struct {
	// CertFile is the certificate chain, the server's certificate first.
	// Required.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	// KeyFile is the certificate's private key. Required.
	KeyFile string `yaml:"key_file" json:"key_file"`
	// ClientCAFile holds the certificates of the authorities that sign
	// client certificates. Set, clients are asked for a certificate, which
	// is verified against them; a verified certificate's subject or names
	// can name a subscription (subscriptions[].principals: cert:CN=...).
	// Default: none, no client certificates.
	ClientCAFile string `yaml:"client_ca_file" json:"client_ca_file"`
	// ClientAuth is request (a client may present a certificate; one that
	// does not verify fails the handshake) or require (every client must
	// present one that verifies). Only with ClientCAFile. Default request.
	ClientAuth string `yaml:"client_auth" json:"client_auth"`
}

// Admin configures the operator listener.
type Admin struct {
	// Listen is the address of /healthz, /readyz, /metrics and the admin API.
	// It must differ from server.listen. Empty: no admin listener.
	Listen string `yaml:"listen" json:"listen"`
	// APIKey is required, as api-key or Authorization: Bearer, for everything
	// under /admin/. Empty: the admin API is disabled (health stays served).
	// It must differ from every subscription key.
	APIKey secret.Value `yaml:"api_key" json:"api_key"`
	// JWTRoles are roles that open the admin API too: a bearer token valid
	// for one of the auth.jwt providers, whose roles claim holds one of
	// them, is let in like the admin key. Needs auth.jwt. Default: none.
	JWTRoles []string `yaml:"jwt_roles" json:"jwt_roles,omitempty"`
	// TLS serves the admin listener over HTTPS, as server.tls does the
	// client listener. Nil (left out): plain HTTP.
	TLS *TLS `yaml:"tls" json:"tls,omitempty"`
}

// Auth configures client authentication besides subscription keys.
type Auth struct {
	// JWT are the identity providers whose tokens clients may send as
	// Authorization: Bearer. A bearer that looks like a JWT (three
	// base64url parts, the first a JSON header) is validated against them;
	// anything else is taken for a subscription key. Default: none, tokens
	// are not accepted.
	JWT []JWTProvider `yaml:"jwt" json:"jwt,omitempty"`
}

// JWTProvider is an identity provider whose access tokens Sluice accepts,
// as Azure API Management's validate-jwt and validate-azure-ad-token do.
// A token is accepted when its signature verifies with a key of the
// provider's JWKS, it is within its exp and nbf (give or take ClockSkew),
// and its iss is one of Issuers and its aud one of Audiences. The calling
// application (ClientClaims) then names the subscription: see
// subscriptions[].principals and products[].roles.
type JWTProvider struct {
	// Name identifies the provider in logs and metrics. Required.
	Name string `yaml:"name" json:"name"`
	// OpenIDConfiguration is the provider's OpenID Connect discovery
	// document (.../.well-known/openid-configuration), from which its
	// jwks_uri is read. One of OpenIDConfiguration and JWKSURL is required.
	// https, or http on a loopback address only.
	OpenIDConfiguration string `yaml:"openid_configuration" json:"openid_configuration,omitempty"`
	// JWKSURL is the provider's key set, instead of OpenIDConfiguration.
	JWKSURL string `yaml:"jwks_url" json:"jwks_url,omitempty"`
	// Issuers are the accepted iss values. Entra ID issues v1 tokens
	// (https://sts.windows.net/{tenant}/) unless the application asks for v2
	// (https://login.microsoftonline.com/{tenant}/v2.0): list both. Required.
	Issuers []string `yaml:"issuers" json:"issuers"`
	// Audiences are the accepted aud values (a token with several must
	// carry one of them). Required.
	Audiences []string `yaml:"audiences" json:"audiences"`
	// ClientClaims name the claims that hold the calling application's id,
	// the first present wins: Entra's v2 tokens carry azp, v1 tokens appid.
	// Default [azp, appid].
	ClientClaims []string `yaml:"client_claims" json:"client_claims"`
	// RolesClaim names the claim that holds the application's roles (an
	// array, or a space-separated string such as scp). Default roles.
	RolesClaim string `yaml:"roles_claim" json:"roles_claim"`
	// Algorithms are the signature algorithms accepted: any of RS256,
	// RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512. none and the
	// HMAC algorithms never are. Default [RS256, ES256].
	Algorithms []string `yaml:"algorithms" json:"algorithms"`
	// ClockSkew is the leeway on exp and nbf, for clocks that disagree. At
	// most 5m. Default 60s.
	ClockSkew Duration `yaml:"clock_skew" json:"clock_skew"`
	// UnknownKeyRefresh is how often, at most, a token signed with a key id
	// the JWKS does not hold makes Sluice fetch the JWKS again (a provider
	// that rotated its keys). However many such tokens arrive, the provider
	// is asked once per interval, and a request waits at most 50ms for the
	// answer. Default 5m.
	UnknownKeyRefresh Duration `yaml:"unknown_key_refresh" json:"unknown_key_refresh"`
	// RefreshInterval is how often the JWKS is fetched again in the
	// background, so that removed keys stop being accepted. A fetch that
	// fails keeps the keys known. Default 1h.
	RefreshInterval Duration `yaml:"refresh_interval" json:"refresh_interval"`
}

// State says where the counters of token limits and quotas live.
type State struct {
	// Store is "memory", counters in the process, exact for one instance, or
	// "redis://host:port/db" ("rediss://" for TLS), counters in Redis, exact
	// across any number of instances; the dashboard's sessions live there
	// too (read at start). Default memory.
	Store string `yaml:"store" json:"store"`
	// OnStoreError is what happens when the store does not answer within
	// Timeout: fail_open limits by each instance's own count of what it
	// admitted, and charges the store once it answers; fail_closed answers
	// 503. Both count the miss in a metric and a log line. Default
	// fail_open.
	OnStoreError string `yaml:"on_store_error" json:"on_store_error"`
	// Timeout is the longest a request waits for the store before
	// OnStoreError applies, so that a Redis outage slows no request by more.
	// Default 50ms; must be greater than 0.
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// Usage configures the usage ledger.
type Usage struct {
	// Store is sqlite:PATH or postgres://... . Default sqlite:sluice-usage.db.
	Store string `yaml:"store" json:"store"`
	// Journal is the local file usage records go to while the store cannot
	// take them; they are written to the store when it is back. Default
	// sluice-usage.journal.
	Journal string `yaml:"journal" json:"journal"`
	// Prices are per million tokens; every usage record carries its cost.
	Prices Prices `yaml:"prices" json:"prices"`
}

// Prices is a price table.
type Prices struct {
	// Currency is the ISO 4217 code the prices and budgets are in. Default USD.
	Currency string `yaml:"currency" json:"currency"`
	// Models maps a model name (as in models:) to its prices.
	Models map[string]Price `yaml:"models" json:"models"`
}

// Price is what a million tokens of each kind cost.
type Price struct {
	// Input is the price of a million prompt tokens.
	Input float64 `yaml:"input" json:"input"`
	// Output is the price of a million completion tokens.
	Output float64 `yaml:"output" json:"output"`
	// CachedInput is the price of a million cached prompt tokens. Default: the
	// input price.
	CachedInput *float64 `yaml:"cached_input" json:"cached_input,omitempty"`
}

// Metrics configures Prometheus metrics.
type Metrics struct {
	// Prometheus serves /metrics on the admin listener. Default false.
	Prometheus bool `yaml:"prometheus" json:"prometheus"`
	// Dimensions are the labels metrics carry: any of subscription, product,
	// model, deployment, backend, region, client_ip. Default all but client_ip.
	Dimensions []string `yaml:"dimensions" json:"dimensions"`
}

// Tracing configures OpenTelemetry trace export over OTLP: a server span per
// request with the GenAI attributes and a child span per backend attempt,
// with W3C traceparent propagated to the backend. See docs/tracing.md.
type Tracing struct {
	// Endpoint is the OTLP collector: http://host:4318 for protocol http,
	// host:4317 for grpc. Empty (the default): tracing is off and costs
	// nothing.
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	// Protocol is http (OTLP/HTTP protobuf) or grpc. Default http.
	Protocol string `yaml:"protocol" json:"protocol"`
	// Insecure sends in plain text, without TLS; an http:// endpoint
	// implies it. Default false.
	Insecure bool `yaml:"insecure" json:"insecure"`
	// Headers are sent with every export, such as an authorization header
	// of a hosted collector. Their values are secrets: never logged.
	Headers map[string]secret.Value `yaml:"headers" json:"headers,omitempty"`
	// SampleRatio is the share of new traces recorded, 0 to 1; a trace the
	// client started and sampled is always followed. Default 1.
	SampleRatio *float64 `yaml:"sample_ratio" json:"sample_ratio,omitempty"`
	// ServiceName is the service.name of the spans. Default sluice.
	ServiceName string `yaml:"service_name" json:"service_name"`
}

// Logging configures the access log: one structured line per request.
type Logging struct {
	// Prompts adds the prompt and completion text to the access log line,
	// each cut at PromptMaxBytes and passed through Redact. Default false:
	// no prompt or completion text is ever logged.
	Prompts bool `yaml:"prompts" json:"prompts"`
	// PromptMaxBytes is the most prompt or completion text a line carries.
	// Default 1024.
	PromptMaxBytes int `yaml:"prompt_max_bytes" json:"prompt_max_bytes"`
	// Redact are regular expressions (Go syntax) whose matches in logged
	// text are replaced by [REDACTED], in addition to the built-in ones for
	// API keys, bearer tokens and e-mail addresses.
	Redact []string `yaml:"redact" json:"redact,omitempty"`
}

// Backend is one model server.
type Backend struct {
	// Name identifies the backend in pools, logs and the x-sluice-backend header.
	Name string `yaml:"name" json:"name"`
	// Kind is azure-openai (/openai/deployments/{deployment}/... with api-key),
	// openai (any OpenAI-compatible server: /v1/... with Authorization:
	// Bearer), anthropic (the Messages API, /v1/messages with x-api-key) or
	// gemini (generateContent, /v1beta/models/{model}:... with
	// x-goog-api-key). Chat completions to anthropic and gemini backends are
	// translated (docs/providers.md). Default azure-openai.
	Kind string `yaml:"kind" json:"kind"`
	// URL is the base URL, scheme and host, optionally with a path prefix.
	URL string `yaml:"url" json:"url"`
	// Region is returned to clients as x-ms-region when the backend does not
	// send one, and restricts products with regions: set.
	Region string `yaml:"region" json:"region"`
	// APIVersion is the api-version sent to an azure-openai backend when the
	// client did not send one. Default 2024-10-21 for azure-openai. For an
	// anthropic backend it is the anthropic-version header, default
	// 2023-06-01. Setting it on an openai or gemini backend is an error.
	APIVersion string `yaml:"api_version" json:"api_version"`
	// Auth is how Sluice authenticates to the backend.
	Auth BackendAuth `yaml:"auth" json:"auth"`
	// Deployments maps a model name that clients use to the deployment (Azure)
	// or model (OpenAI) name on this backend.
	Deployments map[string]string `yaml:"deployments" json:"deployments"`
	// DefaultMaxTokens is the max_tokens sent to an anthropic backend when the client sets none (see providers.go).
	DefaultMaxTokens int `yaml:"default_max_tokens" json:"default_max_tokens,omitempty"`
	// Timeout bounds the whole request; for streams, the longest silence
	// between chunks. An upstream timeout answers 504. Default 120s.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// ConnectTimeout bounds making the TCP connection and the TLS handshake,
	// so that an unreachable backend is given up on (and the request retried
	// elsewhere) long before Timeout. Expiry is a timeout (timeout in
	// circuit_breaker.errors and retry.on). It need not be shorter than
	// Timeout: whichever bound ends first ends the attempt. Default 10s.
	ConnectTimeout Duration `yaml:"connect_timeout" json:"connect_timeout"`
	// FirstByteTimeout bounds the wait for the response headers, and for a
	// stream the wait until its first event, so that a backend that hangs
	// before answering is given up on (and the request retried elsewhere)
	// early. Timeout still bounds that wait too, so a value above Timeout
	// has no effect. Expiry is a timeout (timeout in circuit_breaker.errors
	// and retry.on). Backends usually send the headers of a non-streaming
	// answer only once it is complete, so for those it bounds the whole
	// answer. Default: Timeout.
	FirstByteTimeout Duration `yaml:"first_byte_timeout" json:"first_byte_timeout"`
	// StreamTimeout bounds a whole stream, from the request to the last
	// event; when it expires the stream is ended with an error event, and
	// never retried, because the client already has part of it.
	// Non-streaming requests ignore it.
	// Default 0: no bound, a stream is bounded only by Timeout as the longest
	// silence between events.
	StreamTimeout Duration `yaml:"stream_timeout" json:"stream_timeout"`
	// CircuitBreaker takes the backend out of its pools after failures. Nil
	// (left out) means no breaker; an empty mapping enables one with every
	// default. CircuitBreakers adds further rules.
	CircuitBreaker *CircuitBreaker `yaml:"circuit_breaker" json:"circuit_breaker,omitempty"`
	// CircuitBreakers are further breaker rules of the same shape as
	// CircuitBreaker, each with its own defaults, window and trip duration;
	// the breaker trips when any rule, CircuitBreaker included, holds. Either
	// or both may be given; with neither, the backend has no breaker.
	CircuitBreakers []CircuitBreaker `yaml:"circuit_breakers" json:"circuit_breakers,omitempty"`
	// HealthCheck probes the backend actively, so that a backend that is down
	// is taken out of its pools before requests fail on it, and let back in
	// when it recovers. It works with or without a breaker rule. Nil (left
	// out) means no probes; an empty mapping enables them with every default.
	HealthCheck *HealthCheck `yaml:"health_check" json:"health_check,omitempty"`
}

// BackendAuth holds a backend's credential: exactly one of APIKey,
// ManagedIdentity, ClientCredentials and OAuth2. A token credential is sent
// as Authorization: Bearer, to either kind of backend, and no api-key goes
// with it. Tokens are cached per credential, refreshed in the background
// before they expire (at the earlier of 5 minutes before expiry and half
// their lifetime) and kept across reloads; a backend that answers 401 gets
// the request once more with a fresh token. A token that cannot be had
// fails the request over to another pool member, never the backend's
// breaker.
type BackendAuth struct {
	// APIKey is sent as api-key (azure-openai) or Authorization: Bearer
	// (openai). Never logged, never returned to a client.
	APIKey secret.Value `yaml:"api_key" json:"api_key"`
	// ManagedIdentity asks the host's Azure managed identity for an Entra ID
	// token, as API Management's authentication-managed-identity does. The
	// identity endpoint is found from the environment as on Azure: App
	// Service and Container Apps (IDENTITY_ENDPOINT, IDENTITY_HEADER), Azure
	// Arc, Azure ML, Cloud Shell, else the VM's IMDS.
	ManagedIdentity *ManagedIdentity `yaml:"managed_identity" json:"managed_identity,omitempty"`
	// ClientCredentials gets an Entra ID token for an application
	// registration, with a client secret or, for workload identity, a
	// federated token file.
	ClientCredentials *ClientCredentials `yaml:"client_credentials" json:"client_credentials,omitempty"`
	// OAuth2 gets a token from any OAuth2 token endpoint with the client
	// credentials grant (RFC 6749, section 4.4), for OpenAI-compatible
	// servers behind an identity provider.
	OAuth2 *OAuth2 `yaml:"oauth2" json:"oauth2,omitempty"`
}

// ManagedIdentity is an Azure managed identity.
type ManagedIdentity struct {
	// ClientID selects a user-assigned identity; empty means system-assigned.
	ClientID string `yaml:"client_id" json:"client_id"`
	// Resource is the token audience. Default https://cognitiveservices.azure.com.
	Resource string `yaml:"resource" json:"resource"`
}

// ClientCredentials is an Entra ID application's client credentials.
type ClientCredentials struct {
	// TenantID is the directory (tenant) id. Required.
	TenantID string `yaml:"tenant_id" json:"tenant_id"`
	// ClientID is the application (client) id. Required.
	ClientID string `yaml:"client_id" json:"client_id"`
	// ClientSecret is the application's secret. One of ClientSecret and
	// FederatedTokenFile is required.
	ClientSecret secret.Value `yaml:"client_secret" json:"client_secret"`
	// FederatedTokenFile is a file holding a federated token (Kubernetes
	// workload identity: AZURE_FEDERATED_TOKEN_FILE), read again for every
	// token request.
	FederatedTokenFile string `yaml:"federated_token_file" json:"federated_token_file,omitempty"`
	// AuthorityHost is the Entra ID authority, https only. Default
	// https://login.microsoftonline.com/.
	AuthorityHost string `yaml:"authority_host" json:"authority_host"`
	// Scope is the scope asked for. Default
	// https://cognitiveservices.azure.com/.default.
	Scope string `yaml:"scope" json:"scope"`
}

// OAuth2 is a client of an OAuth2 token endpoint.
type OAuth2 struct {
	// TokenURL is the token endpoint: https, or http on a loopback address
	// only. Required.
	TokenURL string `yaml:"token_url" json:"token_url"`
	// ClientID is the client's id. Required.
	ClientID string `yaml:"client_id" json:"client_id"`
	// ClientSecret is the client's secret. Required.
	ClientSecret secret.Value `yaml:"client_secret" json:"client_secret"`
	// Scopes are the scopes asked for. Default: none.
	Scopes []string `yaml:"scopes" json:"scopes,omitempty"`
}

// CircuitBreaker is a backend's failure rule. It counts failures in two
// modes: a count (Failures) and a share of requests (Percentage); with both
// set, either trips the breaker.
type CircuitBreaker struct {
	// Failures is how many failures within Interval trip the breaker; 0 turns
	// count mode off, which is allowed only with Percentage. Default 5, or 0
	// when Percentage is set.
	Failures int `yaml:"failures" json:"failures"`
	// Percentage, from 1 to 100, trips the breaker when at least this percent
	// of the requests within Interval failed, once there were MinRequests of
	// them. Default 0: percentage mode off.
	Percentage int `yaml:"percentage" json:"percentage"`
	// MinRequests is how many requests Interval must hold before Percentage
	// applies, so that one failure of the first request is not 100%. It has
	// no effect without Percentage. Default 10.
	MinRequests int `yaml:"min_requests" json:"min_requests"`
	// Interval is the window failures are counted in. Default 1m.
	Interval Duration `yaml:"interval" json:"interval"`
	// StatusCodes are the response statuses that count as failures, as codes
	// or ranges ("429", "500-599"). Default 429 and 500-599.
	StatusCodes []string `yaml:"status_codes" json:"status_codes"`
	// Errors are the transport errors that count as failures: timeout,
	// connection. Default both.
	Errors []string `yaml:"errors" json:"errors"`
	// TripDuration is how long a tripped breaker stays open. Default 1m.
	TripDuration Duration `yaml:"trip_duration" json:"trip_duration"`
	// AcceptRetryAfter trips for as long as the failing response's
	// Retry-After, retry-after-ms or x-ratelimit-reset-* says, instead of
	// TripDuration, but no longer than MaxTripDuration. Default false.
	AcceptRetryAfter bool `yaml:"accept_retry_after" json:"accept_retry_after"`
	// MaxTripDuration caps a trip whose length comes from the response under
	// AcceptRetryAfter: Azure OpenAI has sent Retry-After of a day. It may be
	// shorter than TripDuration. Default 10m.
	MaxTripDuration Duration `yaml:"max_trip_duration" json:"max_trip_duration"`
}

// HealthCheck configures a backend's active probes: a GET of Path, with the
// backend's credential, every Interval. A probe passes on a 2xx answer within
// Timeout and fails on anything else.
type HealthCheck struct {
	// Path is the path probed, after the URL's path prefix; it may carry a
	// query. It must start with /. Default: for azure-openai
	// /openai/models?api-version=<api_version>, for openai /v1/models.
	Path string `yaml:"path" json:"path"`
	// Interval is the time between the starts of two probes. Default 10s.
	Interval Duration `yaml:"interval" json:"interval"`
	// Timeout bounds one probe; it must be shorter than Interval. Default 2s.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// UnhealthyThreshold is how many probes in a row must fail to open the
	// backend's breaker, taking it out of its pools. Default 2.
	UnhealthyThreshold int `yaml:"unhealthy_threshold" json:"unhealthy_threshold"`
	// HealthyThreshold is how many probes in a row must pass to close the
	// breaker again; probes close only what probes opened, so a trip caused
	// by requests runs its course. Default 1.
	HealthyThreshold int `yaml:"healthy_threshold" json:"healthy_threshold"`
}

// Pool is a set of backends serving the same models.
type Pool struct {
	// Name identifies the pool in models:.
	Name string `yaml:"name" json:"name"`
	// Strategy picks a member within a priority group: round_robin (weighted),
	// least_latency or least_busy. Default round_robin.
	Strategy string `yaml:"strategy" json:"strategy"`
	// Members are the backends of the pool.
	Members []Member `yaml:"members" json:"members"`
	// Retry says when a failed attempt is sent again to another member.
	Retry Retry `yaml:"retry" json:"retry"`
	// Throttle holds low-priority requests back while the pool's backends
	// are short of capacity. Nil (left out) means off.
	Throttle *Throttle `yaml:"throttle" json:"throttle,omitempty"`
	// SessionAffinity pins a client to one backend of the pool while that
	// backend is available, for state that lives on the backend: stateful
	// APIs (the Responses API's previous_response_id) and prompt caches. Nil
	// (left out) means off; an empty mapping enables it with every default.
	SessionAffinity *SessionAffinity `yaml:"session_affinity" json:"session_affinity,omitempty"`
}

// SessionAffinity pins clients to backends. Requests with the same header
// x-sluice-affinity: <any session key> go to the same backend while it is
// available; the affinity cookie pins a client to the backend that served its
// first request. When the pinned backend is unavailable, the request is routed
// as without affinity.
type SessionAffinity struct {
	// Cookie is the name of the cookie Sluice sets to pin a client to a
	// backend. It must be a valid cookie name (an RFC 6265 token). Default
	// sluice-affinity.
	Cookie string `yaml:"cookie" json:"cookie"`
}

// Throttle is a pool's low-priority throttling, after the GenAI gateway
// toolkit's prioritization: Sluice learns what each member has left from the
// x-ratelimit-remaining-tokens and x-ratelimit-remaining-requests headers of
// its responses, and from its 429s (nothing left until the announced reset).
// While what is left across the pool's available members is below a floor,
// low-priority requests wait for capacity; high-priority requests are never
// held back.
type Throttle struct {
	// MinRemainingTokens is the token floor: while the tokens left across the
	// pool's available members, as their x-ratelimit-remaining-tokens headers
	// last said, are fewer, low-priority requests wait. 0: no token floor.
	// Must not be negative.
	MinRemainingTokens int64 `yaml:"min_remaining_tokens" json:"min_remaining_tokens"`
	// MinRemainingRequests is the request floor, the same for
	// x-ratelimit-remaining-requests. 0: no request floor. Must not be
	// negative, and at least one of the two floors must be greater than 0.
	MinRemainingRequests int64 `yaml:"min_remaining_requests" json:"min_remaining_requests"`
	// MaxWait is how long a low-priority request waits in the queue for
	// capacity; then it gets 429 with x-sluice-throttle-reason: low-priority.
	// 0 refuses at once. Default 5s.
	MaxWait Duration `yaml:"max_wait" json:"max_wait"`
}

// Member is a backend's place in a pool.
type Member struct {
	// Backend names a backend in backends:.
	Backend string `yaml:"backend" json:"backend"`
	// Priority orders groups: lower is used first; a higher number is used only
	// while every member of all lower numbers is unavailable. Default 1.
	Priority int `yaml:"priority" json:"priority"`
	// Weight is the member's share within its priority group. Default 1.
	Weight int `yaml:"weight" json:"weight"`
}

// Retry configures retries with failover.
type Retry struct {
	// Attempts is the number of tries in all, from 1 to 10. Default 1 (no
	// retry).
	Attempts int `yaml:"attempts" json:"attempts"`
	// On lists what is retried: status codes or ranges ("429", "500-599"),
	// timeout, connection. Default nothing; it must not be empty when
	// Attempts is above 1.
	On []string `yaml:"on" json:"on"`
	// Backoff is the wait before a retry goes to a backend that already
	// failed this request, which happens only when it is the only member the
	// request may use (a pool of one, or of one in the product's regions); a
	// retry to another member goes at once. 0 retries at once. Default 200ms.
	Backoff Duration `yaml:"backoff" json:"backoff"`
}

// Product is an entitlement: the models, regions and limits of its
// subscriptions.
type Product struct {
	// Name identifies the product in subscriptions:.
	Name string `yaml:"name" json:"name"`
	// Models are the model names (keys of models:) the product may use;
	// others get 403.
	Models []string `yaml:"models" json:"models"`
	// Regions, when set, restrict the product to backends in these regions.
	Regions []string `yaml:"regions" json:"regions"`
	// Limits are token and request limits; a request must fit all of them.
	Limits []Limit `yaml:"limits" json:"limits"`
	// Priority is the priority of the product's requests: high or low. A
	// request may lower its own with the header x-priority: low, never raise
	// it. Low-priority requests wait, or are refused, while a pool's Throttle
	// finds its backends short of capacity. Default high.
	Priority string `yaml:"priority" json:"priority"`
	// Headers names the response headers that report the product's limits.
	Headers LimitHeaders `yaml:"headers" json:"headers"`
	// Budget caps spend per period per subscription.
	Budget *Budget `yaml:"budget" json:"budget,omitempty"`
	// Roles are token roles (auth.jwt roles_claim) that put an application
	// into this product when no subscription names it among its
	// principals: it runs under an implicit subscription named after the
	// application, with the product's per-subscription limits to itself.
	// When roles of several products match, the first product in the file
	// wins. Needs auth.jwt. Default: none.
	Roles []string `yaml:"roles" json:"roles,omitempty"`
	// Require lists the credentials a request of this product must carry
	// together: key (a subscription key) and jwt (a valid token), as API
	// Management can ask for a subscription key plus validate-jwt. With
	// both, the key names the subscription and the token must be valid
	// (and name one of the subscription's principals, when it has any).
	// Default: either one.
	Require []string `yaml:"require" json:"require,omitempty"`
	// Cache answers the product's requests from stored answers (see
	// cache.go). Nil: no cache.
	Cache *ProductCache `yaml:"cache" json:"cache,omitempty"`
	// ContentSafety checks the product's prompts and answers; nil: none.
	ContentSafety *ContentSafety `yaml:"content_safety" json:"content_safety,omitempty"`
	// PII masks personal data in the product's prompts; nil: none.
	PII *PII `yaml:"pii" json:"pii,omitempty"`
}

// LimitHeaders names the response headers that report a product's limits and
// usage. Each must be a valid header name (an RFC 9110 token), and no two may
// be the same, ignoring case.
type LimitHeaders struct {
	// RemainingTokens carries the tokens left in the current minute, the
	// fewest of any tokens_per_minute limit that applies; when none applies,
	// the backend's x-ratelimit-remaining-tokens passes through. Default
	// x-ratelimit-remaining-tokens, the header Azure OpenAI sends.
	RemainingTokens string `yaml:"remaining_tokens" json:"remaining_tokens"`
	// RemainingRequests carries the requests left in the current minute, the
	// fewest of any requests_per_minute limit that applies; when none
	// applies, the backend's x-ratelimit-remaining-requests passes through.
	// Default x-ratelimit-remaining-requests.
	RemainingRequests string `yaml:"remaining_requests" json:"remaining_requests"`
	// QuotaRemainingTokens carries the tokens left in the current quota
	// period, the fewest of any token_quota that applies. Default
	// x-sluice-quota-remaining-tokens.
	QuotaRemainingTokens string `yaml:"quota_remaining_tokens" json:"quota_remaining_tokens"`
	// TokensConsumed carries the prompt plus completion tokens the request
	// was charged, on non-streaming responses only: a stream's headers leave
	// before its usage is known. Default x-sluice-tokens-consumed.
	TokensConsumed string `yaml:"tokens_consumed" json:"tokens_consumed"`
}

// Limit is one token or request limit.
type Limit struct {
	// Key selects the counter: subscription (one per subscription), product
	// (one shared by the product's subscriptions), subscription_model (one
	// per subscription and model) or global (one for all traffic under this
	// limit). Default subscription.
	Key string `yaml:"key" json:"key"`
	// TokensPerMinute caps prompt plus completion tokens per minute; over it, 429.
	TokensPerMinute int64 `yaml:"tokens_per_minute" json:"tokens_per_minute"`
	// RequestsPerMinute caps requests per minute; over it, 429.
	RequestsPerMinute int64 `yaml:"requests_per_minute" json:"requests_per_minute"`
	// TokenQuota caps tokens per TokenQuotaPeriod; over it, 403.
	TokenQuota int64 `yaml:"token_quota" json:"token_quota"`
	// TokenQuotaPeriod is hourly, daily, weekly (from Monday 00:00 UTC),
	// monthly or yearly, in fixed UTC windows. Required with TokenQuota.
	TokenQuotaPeriod string `yaml:"token_quota_period" json:"token_quota_period"`
	// EstimatePromptTokens counts the prompt with the model's tokenizer and
	// reserves it, plus the completion's max_tokens, before sending; a request
	// that cannot fit is refused before any backend is called, and the
	// reservation is replaced by the real usage when the response ends.
	// False charges the usage after the fact, as Azure does: the request that
	// goes over is served, and the next ones wait for the window. Default
	// false.
	EstimatePromptTokens bool `yaml:"estimate_prompt_tokens" json:"estimate_prompt_tokens"`
	// DefaultMaxTokens is, with EstimatePromptTokens, the completion tokens
	// reserved for a request that sets none of max_tokens,
	// max_completion_tokens and max_output_tokens. Without
	// EstimatePromptTokens it has no effect. Default 1024; at least 1.
	DefaultMaxTokens int64 `yaml:"default_max_tokens" json:"default_max_tokens"`
	// AdaptiveShare, from 0 (off) to 1, makes TokensPerMinute a base: the
	// limit in effect is TokensPerMinute plus AdaptiveShare times what
	// remains, in the current minute, of the product's key: global
	// tokens-per-minute limit, rounded down, as the APIM landing zone's
	// adaptive rate limiting does. It needs TokensPerMinute, must not be set
	// on a key: global limit, and needs exactly one limit of the same product
	// with key: global and TokensPerMinute. Default 0.
	AdaptiveShare float64 `yaml:"adaptive_share" json:"adaptive_share"`
}

// Budget is a money cap.
type Budget struct {
	// Amount is the most a subscription may spend per period, in usage.prices.currency.
	Amount float64 `yaml:"amount" json:"amount"`
	// Period is hourly, daily, weekly, monthly or yearly, in fixed UTC windows.
	Period string `yaml:"period" json:"period"`
}

// Subscription is a caller.
type Subscription struct {
	// Name identifies the subscription in logs, metrics and usage.
	Name string `yaml:"name" json:"name"`
	// Product names the product the subscription belongs to.
	Product string `yaml:"product" json:"product"`
	// Keys are the subscription's keys, in clear or as "sha256:<hex digest>"
	// (see KeyDigest). No key may appear twice across all subscriptions.
	// A subscription needs keys, principals or both.
	Keys []secret.Value `yaml:"keys" json:"keys"`
	// Principals are identities that act as this subscription without a
	// key: the application id of a token (auth.jwt client_claims), or a
	// verified client certificate as cert:CN=<common name>,
	// cert:DNS=<DNS name>, cert:URI=<URI> or cert:EMAIL=<address> (server.tls
	// client_ca_file). No principal may appear twice across all
	// subscriptions.
	Principals []string `yaml:"principals" json:"principals,omitempty"`
}

// Duration is a time.Duration written in Go syntax (90s, 5m, 1h); a negative
// duration is an error.
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as 90s, 5m or 1h")
	}
	v, err := time.ParseDuration(node.Value)
	if err != nil {
		return fmt.Errorf("%q is not a duration (use Go syntax: 90s, 5m, 1h)", node.Value)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", node.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration in Go syntax.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%q", time.Duration(d).String())), nil
}

// MarshalYAML writes the duration in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
