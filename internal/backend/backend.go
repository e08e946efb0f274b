// Package backend is one model server as the gateway sees it: where it is,
// how to address a model on it (Azure deployment paths or OpenAI model
// names), how to authenticate to it, and the live state (connections,
// counters) that outlives a config reload.
package backend

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/secret"
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
)

// String returns the kind as config spells it.
func (k Kind) String() string {
	switch k {
	case KindAzureOpenAI:
		return "azure-openai"
	case KindOpenAI:
		return "openai"
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
	}
	return 0, fmt.Errorf("unknown backend kind %q", s)
}

// State is a backend's live state. It survives a config reload for as long
// as a backend of the same name and URL exists. It is safe for concurrent use.
type State struct {
	transport *http.Transport

	inflight atomic.Int64
	requests atomic.Uint64
	errors   atomic.Uint64
}

// NewState returns the state of a new backend with its own connection pool.
func NewState() *State {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &State{transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		// The gateway passes bodies through as they come; transparent
		// decompression would hide the encoding and delay stream events.
		DisableCompression: true,
	}}
}

// Close releases the state's idle connections.
func (s *State) Close() { s.transport.CloseIdleConnections() }

// InFlight returns the number of requests being served now.
func (s *State) InFlight() int64 { return s.inflight.Load() }

// Requests returns the number of requests sent.
func (s *State) Requests() uint64 { return s.requests.Load() }

// Errors returns the number of requests that failed in transport or with a
// 5xx status.
func (s *State) Errors() uint64 { return s.errors.Load() }

// deployment is a model's address on a backend, prepared once.
type deployment struct {
	name   string // the deployment (Azure) or model (OpenAI) name
	quoted []byte // name as a JSON string, for rewriting "model"
	path   string // the escaped Azure path prefix /openai/deployments/{name}
}

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
	// State is the live state.
	State *State

	url         *url.URL // scheme, host and path prefix
	apiVersion  string
	key         secret.Value
	deployments map[string]deployment
}

// New compiles a validated backend config. st is the state to use: the
// previous config's for the same backend, or NewState().
func New(c config.Backend, st *State) (*Backend, error) {
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
	b := &Backend{
		Name: c.Name, Kind: kind, Region: c.Region, Timeout: c.Timeout.D(), State: st,
		url: u, apiVersion: c.APIVersion, key: c.Auth.APIKey,
		deployments: make(map[string]deployment, len(c.Deployments)),
	}
	for model, name := range c.Deployments {
		b.deployments[model] = deployment{
			name:   name,
			quoted: wire.QuoteJSON(name),
			path:   u.Path + "/openai/deployments/" + url.PathEscape(name),
		}
	}
	return b, nil
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
	u := *b.url
	body := c.Body
	switch b.Kind {
	case KindAzureOpenAI:
		if c.Op == wire.OpResponses {
			// Azure serves the Responses API only on its v1 surface, where the
			// deployment is named in the body.
			u.Path = b.url.Path + "/openai/v1/responses"
			body = withModel(c.Request, body, d)
		} else {
			u.Path = d.path + c.Op.Path()
			v := c.APIVersion
			if v == "" {
				v = b.apiVersion
			}
			u.RawQuery = "api-version=" + url.QueryEscape(v)
		}
	case KindOpenAI:
		u.Path = b.url.Path + "/v1" + c.Op.Path()
		body = withModel(c.Request, body, d)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", b.Name, err)
	}
	req.Header = outboundHeader(c.Header)
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.RequestID != "" {
		req.Header.Set("X-Request-Id", c.RequestID)
	}
	switch b.Kind {
	case KindAzureOpenAI:
		req.Header.Set("Api-Key", b.key.Reveal())
	case KindOpenAI:
		req.Header.Set("Authorization", "Bearer "+b.key.Reveal())
	}
	setBody(req, body)
	return req, nil
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
	return b.State.transport.RoundTrip(req)
}

// Done ends a request started with RoundTrip.
func (b *Backend) Done(failed bool) {
	b.State.inflight.Add(-1)
	if failed {
		b.State.errors.Add(1)
	}
}
