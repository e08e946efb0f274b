// Package backend is one model server as the gateway sees it: where it is,
// how to address a model on it (Azure deployment paths or OpenAI model
// names), how to authenticate to it, and the live state (connections,
// counters) that outlives a config reload.
package backend

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/breaker"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// Kind is the API dialect a backend speaks.
type Kind uint8

// The kinds.
const (
	// KindAzureOpenAI is Azure OpenAI: /openai/deployments/{deployment}/...
	// with an api-version query and the api-key header.
	KindAzureOpenAI Kind = iota + 1
	// KindOpenAI is OpenAI or any OpenAI-compatible server: /v1/... with
	// Authorization: Bearer and the model in the body.
	KindOpenAI
	// KindAnthropic is Anthropic's Messages API, to which chat
	// completions are translated (provider.go).
	KindAnthropic
	// KindGemini is Gemini's generateContent API, likewise.
	KindGemini
)

// String returns the kind as config spells it.
func (k Kind) String() string {
	switch k {
	case KindAzureOpenAI:
		return "azure-openai"
	case KindOpenAI:
		return "openai"
	case KindAnthropic:
		return "anthropic"
	case KindGemini:
		return "gemini"
	}
	return "unknown"
}

// ParseKind parses a config kind.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "azure-openai":
		return KindAzureOpenAI, nil
	case "openai":
		return KindOpenAI, nil
	case "anthropic":
		return KindAnthropic, nil
	case "gemini":
		return KindGemini, nil
	}
	return 0, fmt.Errorf("unknown backend kind %q", s)
}

// deployment is a model's address on a backend, prepared once.
type deployment struct {
	name   string // the deployment (Azure) or model (OpenAI) name
	quoted []byte // name as a JSON string, for rewriting "model"
	// paths are the outbound URL paths by operation: the Azure deployment
	// paths /openai/deployments/{name}/..., or OpenAI's /v1/...
	paths [numOps]string
}

// numOps bounds the wire.Operation values, to index by operation.
const numOps = int(wire.OpMessages) + 1

// Backend is a backend's compiled configuration. It is immutable and safe for
// concurrent use; its State is shared with the backend of the same name in
// the configs before and after a reload.
type Backend struct {
	// Name is the backend's name.
	Name string
	// Kind is its dialect.
	Kind Kind
	// Region is its configured region.
	Region string
	// Timeout bounds a request; for streams, the silence between events.
	Timeout time.Duration
	// FirstByteTimeout bounds the wait for the response headers, and for a
	// stream for its first event.
	FirstByteTimeout time.Duration
	// StreamTimeout bounds a whole stream; 0 means no bound.
	StreamTimeout time.Duration
	// HealthCheck is the active health check; nil when there is none.
	HealthCheck *config.HealthCheck
	// State is the live state.
	State *State

	rules          []breaker.Rule
	connectTimeout time.Duration

	url         *url.URL // scheme, host and path prefix
	host        string   // url.Host as http.NewRequest leaves it
	apiVersion  string
	apiQuery    string // the query that sends apiVersion
	cred        Credential
	deployments map[string]deployment
	maxTokens   int64 // default_max_tokens, for anthropic
}

// New compiles a validated backend config. st is the state to use: the
// previous config's for the same backend, or NewState(). cred authenticates
// Sluice to the backend; nil means the static key of backends[].auth.api_key,
// sent as the kind expects it (api-key for Azure, Bearer for OpenAI).
func New(c config.Backend, st *State, cred Credential) (*Backend, error) {
	kind, err := ParseKind(c.Kind)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("backend %s: url: %w", c.Name, err)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	rules, err := breakerRules(c)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", c.Name, err)
	}
	b := &Backend{
		rules: rules, connectTimeout: c.ConnectTimeout.D(),
		Name: c.Name, Kind: kind, Region: c.Region, State: st,
		Timeout: c.Timeout.D(), FirstByteTimeout: c.FirstByteTimeout.D(), StreamTimeout: c.StreamTimeout.D(),
		HealthCheck: c.HealthCheck,
		url:         u, host: removeEmptyPort(u.Host),
		apiVersion: c.APIVersion, apiQuery: apiQuery(c.APIVersion),
		deployments: make(map[string]deployment, len(c.Deployments)),
	}
	b.cred = cred
	if b.cred == nil {
		switch kind {
		case KindAzureOpenAI:
			b.cred = APIKey(c.Auth.APIKey)
		case KindOpenAI:
			b.cred = BearerKey(c.Auth.APIKey)
		case KindAnthropic, KindGemini:
			b.cred = providerKey(kind, c.Auth.APIKey)
		}
	}
	b.maxTokens = int64(c.DefaultMaxTokens)
	for model, name := range c.Deployments {
		d := deployment{name: name, quoted: wire.QuoteJSON(name)}
		for op := wire.OpUnknown; int(op) < numOps; op++ {
			switch {
			case kind == KindAnthropic || kind == KindGemini:
				d.paths[op] = providerPath(kind, u.Path, name)
			case kind == KindOpenAI:
				d.paths[op] = u.Path + "/v1" + op.Path()
			case op == wire.OpResponses:
				// Azure serves the Responses API only on its v1 surface,
				// where the deployment is named in the body.
				d.paths[op] = u.Path + "/openai/v1/responses"
			default:
				d.paths[op] = u.Path + "/openai/deployments/" + name + op.Path() // unescaped, as url.URL.Path is
			}
		}
		b.deployments[model] = d
	}
	return b, nil
}

// apiQuery is the outbound query that sends the Azure api-version v.
func apiQuery(v string) string { return "api-version=" + url.QueryEscape(v) }

// removeEmptyPort strips a trailing ":" with no port from a host, as
// http.NewRequest does for Request.Host.
func removeEmptyPort(host string) string {
	if strings.LastIndex(host, ":") > strings.LastIndex(host, "]") {
		return strings.TrimSuffix(host, ":")
	}
	return host
}

// Activate applies the backend's breaker rules and connect timeout to its
// live State. The routing table calls it when it goes into service, so that
// a config refused half-way through compiling changes nothing.
func (b *Backend) Activate() {
	b.State.Breaker.SetRules(b.rules)
	if b.connectTimeout > 0 {
		b.State.connectTimeout.Store(int64(b.connectTimeout))
	}
}

// URL returns the backend's base URL, for comparing configs.
func (b *Backend) URL() string { return b.url.String() }

// Deployment returns the name of model's deployment on this backend.
func (b *Backend) Deployment(model string) (string, bool) {
	d, ok := b.deployments[model]
	return d.name, ok
}

// Call is one request to send to a backend.
type Call struct {
	// Op is the operation.
	Op wire.Operation
	// Model is the client-facing model name (a key of models:).
	Model string
	// APIVersion is the client's api-version, if it sent one.
	APIVersion string
	// Request is what was parsed from Body.
	Request wire.Request
	// Body is the client's request body.
	Body []byte
	// Header is the client's request header. Credentials and hop-by-hop
	// headers are never copied from it.
	Header http.Header
	// RequestID is sent as x-request-id.
	RequestID string
	// ForwardedFor is sent as X-Forwarded-For: the peer's address, after
	// what a trusted proxy sent.
	ForwardedFor string
	// TrustedPeer says the peer is a trusted proxy, whose Forwarded and
	// X-Forwarded-* headers are passed on; from anyone else they are dropped.
	TrustedPeer bool
}

// NewRequest builds the outbound request for c: the backend's path for the
// operation and model, its credential, and the client's headers less its
// credentials and hop-by-hop headers. The body is c.Body unchanged, except
// that an openai backend gets "model" set to its deployment name.
func (b *Backend) NewRequest(ctx context.Context, c *Call) (*http.Request, error) {
	d, ok := b.deployments[c.Model]
	if !ok {
		return nil, fmt.Errorf("backend %s has no deployment for model %q", b.Name, c.Model)
	}
	op := c.Op
	if int(op) >= numOps {
		op = wire.OpUnknown // no such operation: its path suffix is empty
	}
	if op == wire.OpMessages && (b.Kind == KindOpenAI || b.Kind == KindAzureOpenAI) {
		return b.newMessagesToChatRequest(ctx, c, d)
	}
	if op == wire.OpMessages && b.Kind != KindAnthropic {
		return nil, wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "unsupported_by_backend",
			"The Anthropic Messages API is served by anthropic, openai and azure-openai backends; this model's backend is kind "+b.Kind.String()+".")
	}
	if b.translates() {
		return b.newProviderRequest(ctx, c, d)
	}
	// One allocation for what the request points to; http.NewRequest
	// would parse the URL it is given, and Header.Set allocate each value.
	o := &outbound{url: *b.url}
	o.url.Host, o.url.Path = b.host, d.paths[op]
	body := c.Body
	if b.Kind == KindOpenAI || op == wire.OpResponses {
		body = withModel(c.Request, body, d)
	} else {
		o.url.RawQuery = b.apiQuery
		if v := c.APIVersion; v != "" && v != b.apiVersion {
			o.url.RawQuery = apiQuery(v)
		}
	}
	h, err := b.header(ctx, o, c.Header, c.TrustedPeer, c.ForwardedFor, c.RequestID)
	if err != nil {
		return nil, err
	}
	// A request with a context is only to be had from NewRequest or
	// WithContext; this one stays on the stack.
	return b.post(ctx, o, h, body), nil
}

// header builds an outbound request's header: the client's less its
// credentials, hop-by-hop headers and (unless the peer is a trusted proxy)
// forwarding headers, then X-Forwarded-For, the content type, the request id
// and the backend's credential.
func (b *Backend) header(ctx context.Context, o *outbound, client http.Header, trusted bool, forwardedFor, requestID string) (http.Header, error) {
	h := make(http.Header, len(client)+4)
	if trusted {
		wire.CopyHeader(h, client, func(k string) bool { return notForwarded[k] })
	} else {
		wire.CopyHeader(h, client, func(k string) bool { return notForwarded[k] || forwarding[k] })
	}
	if forwardedFor != "" {
		o.set(h, 2, "X-Forwarded-For", forwardedFor)
	}
	if h.Get("Content-Type") == "" {
		o.set(h, 0, "Content-Type", "application/json")
	}
	if requestID != "" {
		o.set(h, 1, "X-Request-Id", requestID)
	}
	if err := b.cred.Apply(ctx, h); err != nil {
		b.State.credentialErrors.Add(1)
		return nil, &CredentialError{Backend: b.Name, Err: err}
	}
	return h, nil
}

// ResponseCall is a call on a response the Responses API stored on a
// backend: retrieve (GET), delete (DELETE), its input items (GET with
// Action "input_items") or cancel (POST with Action "cancel").
type ResponseCall struct {
	Method string
	ID     string
	// Action is "", "input_items" or "cancel".
	Action string
	// RawQuery is the client's query (pagination, include[], stream);
	// credentials and api-version are not passed on.
	RawQuery string
	// Header, RequestID, ForwardedFor and TrustedPeer are as in Call.
	Header       http.Header
	RequestID    string
	ForwardedFor string
	TrustedPeer  bool
}

// ServesResponses reports whether the backend serves the Responses API,
// and so may hold stored responses.
func (b *Backend) ServesResponses() bool { return b.Kind == KindOpenAI || b.Kind == KindAzureOpenAI }

// NewResponseRequest builds the outbound request of a call on a stored
// response: /v1/responses/{id}[/action] on an OpenAI-compatible backend,
// /openai/v1/responses/{id}[/action] on Azure OpenAI.
func (b *Backend) NewResponseRequest(ctx context.Context, c *ResponseCall) (*http.Request, error) {
	o := &outbound{url: *b.url}
	o.url.Host = b.host
	prefix := "/v1/responses/"
	if b.Kind == KindAzureOpenAI {
		prefix = "/openai/v1/responses/"
	}
	o.url.Path = b.url.Path + prefix + c.ID
	if c.Action != "" {
		o.url.Path += "/" + c.Action
	}
	if c.RawQuery != "" {
		q, _ := url.ParseQuery(c.RawQuery)
		for _, k := range []string{"api-key", "subscription-key", "api-version"} {
			q.Del(k)
		}
		o.url.RawQuery = q.Encode()
	}
	h, err := b.header(ctx, o, c.Header, c.TrustedPeer, c.ForwardedFor, c.RequestID)
	if err != nil {
		return nil, err
	}
	tmpl := http.Request{
		Method: c.Method, URL: &o.url, Host: b.host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody,
	}
	return tmpl.WithContext(ctx), nil
}

// post builds the POST of body to o.url with h, carrying ctx.
func (b *Backend) post(ctx context.Context, o *outbound, h http.Header, body []byte) *http.Request {
	tmpl := http.Request{
		Method: http.MethodPost, URL: &o.url, Host: b.host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h,
	}
	req := tmpl.WithContext(ctx)
	setBody(req, &o.body, body)
	return req
}

// outbound is what an outbound request points to, allocated together.
type outbound struct {
	url  url.URL
	body bytes.Reader
	vals [3]string // header values
}

// set sets the canonical header key to v, the slice taken from o.vals[i].
func (o *outbound) set(h http.Header, i int, key, v string) {
	o.vals[i] = v
	h[key] = o.vals[i : i+1 : i+1]
}

// withModel rewrites "model" unless it already names the deployment.
func withModel(r wire.Request, body []byte, d deployment) []byte {
	if r.Model == d.name {
		return body
	}
	return r.WithModel(body, d.quoted)
}

// RoundTrip sends req on the backend's connection pool and counts it in
// flight; Done must follow once the response body is read or abandoned.
func (b *Backend) RoundTrip(req *http.Request) (*http.Response, error) {
	b.State.requests.Add(1)
	b.State.inflight.Add(1)
	if b.translates() {
		return b.roundTripProvider(req)
	}
	if req.Context().Value(translationKey{}) != nil {
		return b.roundTripProvider(req) // the Anthropic surface, translated to chat completions
	}
	return b.State.transport.RoundTrip(req)
}

// Done ends a request started with RoundTrip.
func (b *Backend) Done(failed bool) {
	b.State.inflight.Add(-1)
	if failed {
		b.State.errors.Add(1)
	}
}

// breakerRules compiles the backend's circuit_breaker and circuit_breakers.
func breakerRules(c config.Backend) ([]breaker.Rule, error) {
	var cbs []config.CircuitBreaker
	if c.CircuitBreaker != nil {
		cbs = append(cbs, *c.CircuitBreaker)
	}
	cbs = append(cbs, c.CircuitBreakers...)
	rules := make([]breaker.Rule, 0, len(cbs))
	for _, cb := range cbs {
		r := breaker.Rule{
			Failures: cb.Failures, Percentage: cb.Percentage, MinRequests: cb.MinRequests,
			Interval: cb.Interval.D(), TripDuration: cb.TripDuration.D(),
			AcceptRetryAfter: cb.AcceptRetryAfter, MaxTripDuration: cb.MaxTripDuration.D(),
		}
		for _, s := range cb.StatusCodes {
			lo, hi, err := config.ParseStatusRange(s)
			if err != nil {
				return nil, err
			}
			r.Statuses = append(r.Statuses, breaker.StatusRange{Lo: lo, Hi: hi})
		}
		for _, e := range cb.Errors {
			switch e {
			case "timeout":
				r.Timeouts = true
			case "connection":
				r.Connection = true
			}
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// NewProbeRequest builds a health-check request: GET of path (which may
// carry a query) on the backend, with its credential.
func (b *Backend) NewProbeRequest(ctx context.Context, path string) (*http.Request, error) {
	u := *b.url
	p, q, _ := strings.Cut(path, "?")
	u.Path, u.RawQuery = b.url.Path+p, q
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", b.Name, err)
	}
	if err := b.cred.Apply(ctx, req.Header); err != nil {
		return nil, &CredentialError{Backend: b.Name, Err: err}
	}
	if b.Kind == KindAnthropic {
		req.Header.Set("Anthropic-Version", b.apiVersion) // every Anthropic API call needs it
	}
	return req, nil
}

// Probe sends a health-check request on the backend's connection pool. It
// is not counted as traffic.
func (b *Backend) Probe(req *http.Request) (*http.Response, error) {
	return b.State.transport.RoundTrip(req)
}
