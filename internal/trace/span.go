package trace

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// Attribute keys. Where OpenTelemetry's semantic conventions name an
// attribute (GenAI, HTTP, URL, server, error), this is that name; the
// sluice.* ones are Sluice's own. The deprecated gen_ai.system and
// gen_ai.usage.prompt_tokens / completion_tokens are never written.
const (
	keyOperation     = "gen_ai.operation.name"
	keyRequestModel  = "gen_ai.request.model"
	keyProvider      = "gen_ai.provider.name"
	keyResponseModel = "gen_ai.response.model"
	keyInputTokens   = "gen_ai.usage.input_tokens"
	keyOutputTokens  = "gen_ai.usage.output_tokens"
	keyMethod        = "http.request.method"
	keyStatusCode    = "http.response.status_code"
	keyURLPath       = "url.path"
	keyURLScheme     = "url.scheme"
	keyServerAddress = "server.address"
	keyServerPort    = "server.port"
	keyErrorType     = "error.type"
	keyBackend       = "sluice.backend"
	keyAttempt       = "sluice.attempt"
)

// otherValue is the semantic conventions' value for an error type or an
// HTTP method that has no more specific name.
const otherValue = "_OTHER"

// Span is one span Sluice started: a client request or one backend attempt.
// A nil *Span (tracing off, or a trace not sampled) ignores every call. A
// Span is safe for concurrent use.
type Span struct {
	span oteltrace.Span
	// client is true for an attempt span: an HTTP client span is an error
	// from 4xx on, a server span only from 5xx (HTTP semantic conventions,
	// "Status").
	client bool
	// errorSet is true once SetError named the error type, which then wins
	// over the status code's.
	errorSet atomic.Bool
}

// StartRequest starts the server span of one client request, continuing
// the trace of the client's W3C traceparent header if it sent a valid one.
// The span is named "{operation} {model}" ("chat gpt-4o"), or "{operation}"
// without a model, as the GenAI spans convention names inference spans.
// The returned context carries the span: pass it to StartAttempt. On a nil
// Tracer it returns ctx and a nil Span, without allocating.
func (t *Tracer) StartRequest(ctx context.Context, r *http.Request, operation, model string) (context.Context, *Span) {
	if t == nil {
		return ctx, nil
	}
	ctx = propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	scheme, defaultPort := "http", 80
	if r.TLS != nil {
		scheme, defaultPort = "https", 443
	}
	host, port := splitAddress(r.Host, defaultPort)
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs,
		attribute.String(keyOperation, operation),
		attribute.String(keyMethod, method(r.Method)),
		attribute.String(keyURLPath, r.URL.Path),
		attribute.String(keyURLScheme, scheme),
	)
	if model != "" {
		attrs = append(attrs, attribute.String(keyRequestModel, model))
	}
	if host != "" {
		attrs = append(attrs, attribute.String(keyServerAddress, host), attribute.Int(keyServerPort, port))
	}
	ctx, sp := t.tracer.Start(ctx, spanName(operation, model),
		oteltrace.WithSpanKind(oteltrace.SpanKindServer),
		oteltrace.WithAttributes(attrs...))
	if !sp.IsRecording() {
		return ctx, nil
	}
	return ctx, &Span{span: sp}
}

// StartAttempt starts the client span of one attempt at a backend, a child
// of the request span in ctx, and writes its W3C traceparent (and the
// trace's tracestate, if any) into h, the outbound request's header, so
// that a backend that traces joins the trace. provider is the backend's
// kind: "azure-openai" becomes gen_ai.provider.name "azure.ai.openai",
// "openai" stays "openai", and any other value is written as given; the
// request span takes the same provider, so that it names the last backend
// tried. serverAddress is the backend's base URL or host[:port]; without a
// port, server.port is 443, or 80 for an http:// URL. attempt counts from 1.
// On a nil Tracer it returns nil and leaves h alone, without allocating.
func (t *Tracer) StartAttempt(ctx context.Context, h http.Header, operation, model, backend, provider, serverAddress string, attempt int) *Span {
	if t == nil {
		return nil
	}
	host, port := splitAddress(serverAddress, 443)
	prov := providerName(provider)
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs,
		attribute.String(keyOperation, operation),
		attribute.String(keyBackend, backend),
		attribute.Int(keyAttempt, attempt),
	)
	if model != "" {
		attrs = append(attrs, attribute.String(keyRequestModel, model))
	}
	if prov != "" {
		attrs = append(attrs, attribute.String(keyProvider, prov))
		oteltrace.SpanFromContext(ctx).SetAttributes(attribute.String(keyProvider, prov))
	}
	if host != "" {
		attrs = append(attrs, attribute.String(keyServerAddress, host), attribute.Int(keyServerPort, port))
	}
	ctx, sp := t.tracer.Start(ctx, spanName(operation, model),
		oteltrace.WithSpanKind(oteltrace.SpanKindClient),
		oteltrace.WithAttributes(attrs...))
	if h != nil {
		// A tracestate the client sent and the outbound request copied
		// belongs to the client's traceparent, which this one replaces.
		h.Del("Tracestate")
		propagator.Inject(ctx, propagation.HeaderCarrier(h))
	}
	if !sp.IsRecording() {
		return nil
	}
	return &Span{span: sp, client: true}
}

// SetUsage records the tokens the backend reported (or Sluice counted) as
// gen_ai.usage.input_tokens and gen_ai.usage.output_tokens.
func (s *Span) SetUsage(input, output int64) {
	if s == nil {
		return
	}
	s.span.SetAttributes(attribute.Int64(keyInputTokens, input), attribute.Int64(keyOutputTokens, output))
}

// SetResponseModel records the model the backend says answered, as
// gen_ai.response.model.
func (s *Span) SetResponseModel(m string) {
	if s == nil || m == "" {
		return
	}
	s.span.SetAttributes(attribute.String(keyResponseModel, m))
}

// SetAttr sets one string attribute, such as sluice.subscription. A key
// the semantic conventions define should have the meaning they give it.
func (s *Span) SetAttr(key, value string) {
	if s == nil {
		return
	}
	s.span.SetAttributes(attribute.String(key, value))
}

// SetStatusCode records the HTTP status of the response (sent to the client
// for a request span, received from the backend for an attempt span) as
// http.response.status_code. A failure marks the span Error and sets
// error.type to the code ("502"), unless SetError named the error: for a
// request span 5xx, for an attempt span 4xx and 5xx, as the HTTP semantic
// conventions say for server and client spans. Code 0 means no status was
// sent or received: error.type "_OTHER".
func (s *Span) SetStatusCode(code int) {
	if s == nil {
		return
	}
	if code > 0 {
		s.span.SetAttributes(attribute.Int(keyStatusCode, code))
	}
	limit := 500
	if s.client {
		limit = 400
	}
	if code > 0 && code < limit {
		return
	}
	if !s.errorSet.Load() {
		et := otherValue
		if code > 0 {
			et = strconv.Itoa(code)
		}
		s.span.SetAttributes(attribute.String(keyErrorType, et))
	}
	s.span.SetStatus(codes.Error, "")
}

// SetError marks the span Error with error.type errType, a short,
// low-cardinality name of the failure such as "timeout" or a Go error type;
// it wins over the type SetStatusCode derives from a status code.
func (s *Span) SetError(errType string) {
	if s == nil {
		return
	}
	if errType == "" {
		errType = otherValue
	}
	s.errorSet.Store(true)
	s.span.SetAttributes(attribute.String(keyErrorType, errType))
	s.span.SetStatus(codes.Error, "")
}

// End ends the span and queues it for export. Calls after the first are
// ignored.
func (s *Span) End() {
	if s == nil {
		return
	}
	s.span.End()
}

// spanName is "{operation} {model}", or the operation alone without a
// model (GenAI spans convention, "Name").
func spanName(operation, model string) string {
	if model == "" {
		return operation
	}
	return operation + " " + model
}

// providerName maps a backend kind to its gen_ai.provider.name value.
func providerName(kind string) string {
	switch kind {
	case "azure-openai":
		return "azure.ai.openai"
	default:
		return kind
	}
}

// method is the http.request.method value: the method if the HTTP
// semantic conventions know it, "_OTHER" otherwise, so that a client
// cannot make up values.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	default:
		return otherValue
	}
}

// splitAddress splits a URL ("https://host:port/path") or a host[:port],
// such as a Host header, into server.address and server.port. The port is
// the URL scheme's without one (443 for https, 80 for http), defaultPort
// otherwise. IPv6 brackets are removed.
func splitAddress(s string, defaultPort int) (host string, port int) {
	port = defaultPort
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		s = rest
		switch strings.ToLower(scheme) {
		case "https":
			port = 443
		case "http":
			port = 80
		}
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	host = s
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i:], "]") {
		if p, err := strconv.Atoi(s[i+1:]); err == nil && p > 0 && p < 65536 {
			host, port = s[:i], p
		}
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return host, port
}
