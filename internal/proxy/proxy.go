// Package proxy is the request pipeline: it authenticates a client request,
// reads what routing needs from its body, picks a backend through the
// model's pool, forwards the request with the backend's credential, and
// passes the answer back, streams event by event.
//
// Dependencies point one way: proxy uses the route table and the mechanisms
// below it (balance, backend, auth, wire, sse); none of them imports proxy.
// The app package wires proxy to listeners; nothing below app imports it.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/auth"
	"github.com/sluice-gateway/sluice/internal/limit"
	"github.com/sluice-gateway/sluice/internal/metrics"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/trace"
	"github.com/sluice-gateway/sluice/internal/usage"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// Options configure a Handler.
type Options struct {
	// Table returns the routing table in force. It is called once per
	// request, so a reload never changes a request half-way.
	Table func() *route.Table
	// Logger receives one access-log line per request. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Metrics observes every request; nil: none.
	Metrics *metrics.Metrics
	// Ledger gets a usage record for every API request; nil: none.
	Ledger *usage.Ledger
	// Tracer exports a span per request and per backend attempt; nil: off,
	// at no cost.
	Tracer *trace.Tracer
}

// Handler serves the client-facing API. It is safe for concurrent use.
type Handler struct {
	table   func() *route.Table
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics.Metrics
	ledger  *usage.Ledger
	tracer  *trace.Tracer
}

// New returns a Handler.
func New(opts Options) *Handler {
	h := &Handler{table: opts.Table, log: opts.Logger, now: opts.Now, metrics: opts.Metrics, ledger: opts.Ledger, tracer: opts.Tracer}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// route is what the path says.
type pathKind uint8

const (
	pathUnknown pathKind = iota
	pathOperation
	pathModels
)

// parsePath recognises the client-facing paths:
//
//	/openai/deployments/{deployment}/chat/completions | completions | embeddings
//	/openai/v1/chat/completions | completions | embeddings | responses | models
//	/v1/chat/completions | completions | embeddings | responses | models
func parsePath(p string) (kind pathKind, op wire.Operation, deployment string) {
	switch {
	case strings.HasPrefix(p, "/openai/deployments/"):
		rest := p[len("/openai/deployments/"):]
		i := strings.IndexByte(rest, '/')
		if i <= 0 {
			return pathUnknown, 0, ""
		}
		op = wire.OperationFromPath(rest[i:])
		if op == wire.OpUnknown || op == wire.OpResponses {
			return pathUnknown, 0, ""
		}
		return pathOperation, op, rest[:i]
	case strings.HasPrefix(p, "/openai/v1/"):
		p = p[len("/openai/v1"):]
	case strings.HasPrefix(p, "/v1/"):
		p = p[len("/v1"):]
	default:
		return pathUnknown, 0, ""
	}
	if p == "/models" {
		return pathModels, 0, ""
	}
	if op = wire.OperationFromPath(p); op != wire.OpUnknown {
		return pathOperation, op, ""
	}
	return pathUnknown, 0, ""
}

// ServeHTTP serves one client request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := exchange{h: h, w: w, r: r, ctx: r.Context(), start: h.now(), prompt: -1}
	// The record's id is always Sluice's own: a client may send one
	// x-request-id twice, and the ledger keeps one record per id. The client
	// and the backend see the client's id when it sent a sane one.
	x.recordID = usage.NewID()
	x.id = x.recordID
	if c := clientRequestID(r.Header.Get("X-Request-Id")); c != "" {
		x.id, x.clientID = c, c
	}
	x.setHeader(hvRequestID, "X-Request-Id", x.id)
	defer x.finish()
	x.serve()
}

// exchange is one request's state, from arrival to the access-log line.
type exchange struct {
	h     *Handler
	w     http.ResponseWriter
	r     *http.Request
	start time.Time
	// id is the request id the client and the backends see: the client's
	// x-request-id when it sent a sane one (then also clientID), else
	// recordID, the ledger's and the logs' id for the request.
	id, recordID, clientID string

	table        *route.Table
	subscription *route.Subscription
	model        string
	backendName  string
	stream       bool
	attempts     int
	op           wire.Operation
	body         []byte
	prompt       int64 // the prompt's token count, -1 until counted
	meter        meter
	usage        wire.Usage
	settled      bool
	reservation  limit.Reservation // what admit reserved; settled exactly once
	limited      bool              // a reservation awaits settling
	budget       limit.Reservation // the budget's admission, charged the cost
	budgeted     bool
	cost         float64
	backendTime  time.Duration   // spent waiting for and reading backends
	firstByte    time.Time       // when the first byte of the answer went to the client
	deployment   string          // the deployment that served
	modelKnown   bool            // x.model is a configured model (bounded, fit for a label)
	rejection    string          // why a limit refused the request, for metrics
	completion   string          // a non-streaming response's text, kept only for prompt logging
	ctx          context.Context // the request's context, with its trace span when tracing
	span         *trace.Span     // the request's server span; nil when not tracing
	respModel    string          // the model the backend said it used, for the span
	status       int             // the status sent, or 499 when the client went away first
	started      bool            // the response status was written
	abort        bool            // the response broke off: abort the connection after logging
	outcome      string
	hv           [numHeaderValues]string // the values of the headers Sluice sets; see setHeader
	firstAttempt attempt                 // the first backend attempt's storage; see send
}

// The slots of exchange.hv, one per header Sluice sets on every request.
const (
	hvRequestID = iota
	hvBackend
	hvRegion
	hvRemainingTokens
	hvRemainingRequests
	hvQuotaRemainingTokens
	hvTokensConsumed
	numHeaderValues
)

// setHeader is w.Header().Set(key, v) for a canonical key, without
// allocating: the one-element value slice is the exchange's slot, which
// serves no other header. The server copies the header when the status is
// written, so a slot written again afterwards changes nothing sent.
func (x *exchange) setHeader(slot int, key, v string) {
	x.hv[slot] = v
	x.w.Header()[key] = x.hv[slot : slot+1 : slot+1]
}

func (x *exchange) serve() {
	kind, op, deployment := parsePath(x.r.URL.Path)
	switch kind {
	case pathUnknown:
		x.refuseUnread(wire.NewError(http.StatusNotFound, wire.TypeNotFound, "not_found",
			"No API at "+x.r.Method+" "+wire.EchoText(x.r.URL.Path)+". Sluice serves the OpenAI (/v1/...) and Azure OpenAI (/openai/deployments/{deployment}/...) APIs."))
		return
	case pathModels:
		if x.r.Method != http.MethodGet && x.r.Method != http.MethodHead {
			x.w.Header().Set("Allow", "GET, HEAD")
			x.refuseUnread(wire.NewError(http.StatusMethodNotAllowed, wire.TypeInvalidRequest, "method_not_allowed",
				"Use GET to list models."))
			return
		}
	case pathOperation:
		if x.r.Method != http.MethodPost {
			x.w.Header().Set("Allow", "POST")
			x.refuseUnread(wire.NewError(http.StatusMethodNotAllowed, wire.TypeInvalidRequest, "method_not_allowed",
				"Use POST for "+wire.EchoText(x.r.URL.Path)+"."))
			return
		}
	}
	x.table = x.h.table()
	if !x.authenticate() {
		return
	}
	if kind == pathModels {
		x.listModels()
		return
	}
	x.forward(op, deployment)
}

func (x *exchange) authenticate() bool {
	key, err := auth.KeyFromRequest(x.r)
	switch {
	case errors.Is(err, auth.ErrConflict):
		x.refuseUnread(wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "conflicting_credentials",
			"The request carries two different credentials (in api-key, Ocp-Apim-Subscription-Key, Authorization or the query). Send one."))
		return false
	case err != nil:
		x.refuseUnread(wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "missing_api_key",
			"No subscription key. Send it in the api-key header, Ocp-Apim-Subscription-Key, or Authorization: Bearer."))
		return false
	}
	sub, ok := x.table.Subscription(key)
	if !ok {
		x.refuseUnread(wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "invalid_api_key",
			"The subscription key is not valid."))
		return false
	}
	x.subscription = sub
	return true
}

// refuseUnread answers a request whose body Sluice will not read, and closes
// the connection after the answer when the request has a body or is not
// authenticated. net/http would otherwise read what is left of the body
// before answering, so a stranger trickling a body would hold the
// connection, and an unauthenticated client could keep it open for more.
func (x *exchange) refuseUnread(e *wire.Error) {
	closeConn := e.Status == http.StatusUnauthorized || x.r.ContentLength != 0
	if closeConn {
		x.w.Header().Set("Connection", "close")
	}
	x.fail(e)
	if closeConn {
		// The answer is out; what the client still sends is not wanted.
		// An expired read deadline ends net/http's drain of the body at
		// once (ErrNotSupported by writers that are not connections).
		setReadDeadline(x.w, time.Unix(1, 0))
	}
}

// fail answers with a gateway error, unless the response has begun.
func (x *exchange) fail(e *wire.Error) {
	x.outcome = e.Code
	if x.started {
		return
	}
	x.status = e.Status
	x.started = true
	e.Write(x.w)
}

// finish recovers a panic into a 500, writes the access-log line, and aborts
// the connection when the response broke off half-way.
func (x *exchange) finish() {
	if v := recover(); v != nil {
		x.logger().Error("panic serving request", "panic", v, "stack", string(debug.Stack()))
		if x.started {
			x.abort = true
		}
		x.fail(wire.NewError(http.StatusInternalServerError, wire.TypeServer, "internal_error",
			"Sluice failed to serve the request. The request id is "+x.id+"."))
	}
	// A request refused after admission (no backend, a transport
	// failure) used nothing: give its reservation back.
	x.settleLimits(0, 0, false)
	x.account(x.h.now())
	if x.abort {
		// The standard library's way to close the connection without
		// finishing the response; it logs nothing.
		panic(http.ErrAbortHandler)
	}
}

// maxLoggedPath bounds the request path in the access log: a client may send
// one of up to the header size limit.
const maxLoggedPath = 256

func (x *exchange) log(end time.Time) {
	if !x.h.log.Enabled(context.Background(), slog.LevelInfo) {
		return // at warn, the line would be built for nothing
	}
	status := x.status
	if status == 0 {
		status = 499
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String("request_id", x.recordID),
		slog.String("method", x.r.Method),
		slog.String("path", wire.CleanText(x.r.URL.Path, maxLoggedPath)),
		slog.Int("status", status),
		slog.Duration("duration", end.Sub(x.start)),
	)
	if x.clientID != "" {
		attrs = append(attrs, slog.String("client_request_id", x.clientID))
	}
	if x.subscription != nil {
		attrs = append(attrs, slog.String("subscription", x.subscription.Name))
	}
	if x.model != "" {
		attrs = append(attrs, slog.String("model", x.model))
	}
	if x.backendName != "" {
		attrs = append(attrs, slog.String("backend", x.backendName))
	}
	if x.stream {
		attrs = append(attrs, slog.Bool("stream", true))
	}
	if x.attempts > 1 {
		attrs = append(attrs, slog.Int("attempts", x.attempts))
	}
	if x.settled && x.usage.Total > 0 {
		attrs = append(attrs, slog.Int64("prompt_tokens", x.usage.Prompt), slog.Int64("completion_tokens", x.usage.Completion))
		if x.cost > 0 {
			attrs = append(attrs, slog.Float64("cost", x.cost))
		}
		if x.usage.Estimated {
			attrs = append(attrs, slog.Bool("usage_estimated", true))
		}
	}
	if x.outcome != "" {
		attrs = append(attrs, slog.String("error", x.outcome))
	}
	attrs = x.promptAttrs(attrs)
	x.h.log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

// logger is the handler's logger naming the request as the access log does,
// for the rare lines besides it (the client's id too, when it sent one).
func (x *exchange) logger() *slog.Logger {
	if x.clientID == "" {
		return x.h.log.With("request_id", x.recordID)
	}
	return x.h.log.With("request_id", x.recordID, "client_request_id", x.clientID)
}

// clientGone reports whether the client cancelled or disconnected.
func (x *exchange) clientGone() bool {
	return errors.Is(x.r.Context().Err(), context.Canceled)
}

// account writes the access-log line, the metrics and the usage record. A
// bug in them must never take the connection down: the response is out.
func (x *exchange) account(end time.Time) {
	defer func() {
		if v := recover(); v != nil {
			x.logger().Error("panic accounting for a request", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	x.log(end)
	x.observe(end)
	x.record(end)
	x.endSpan()
}

// endSpan finishes the request's span with what became of the request.
func (x *exchange) endSpan() {
	if x.span == nil {
		return
	}
	x.span.SetStatusCode(x.status)
	x.span.SetUsage(x.usage.Prompt, x.usage.Completion)
	if x.respModel != "" {
		x.span.SetResponseModel(x.respModel)
	}
	if x.subscription != nil {
		x.span.SetAttr("sluice.subscription", x.subscription.Name)
	}
	if x.backendName != "" {
		x.span.SetAttr("sluice.backend", x.backendName)
	}
	if x.outcome != "" {
		x.span.SetError(x.outcome)
	}
	x.span.End()
}

// observe reports the request to the metrics.
func (x *exchange) observe(end time.Time) {
	if x.h.metrics == nil {
		return
	}
	m := metrics.Request{
		Operation: x.op.String(), Backend: x.backendName, Deployment: x.deployment,
		Status: x.status, Stream: x.stream, Attempts: x.attempts, LimitRejection: x.rejection,
		InputTokens: x.usage.Prompt, OutputTokens: x.usage.Completion, CachedTokens: x.usage.Cached,
		Duration: end.Sub(x.start), ClientIP: x.clientIP(),
	}
	if m.Status == 0 {
		m.Status = 499
	}
	if x.modelKnown {
		m.Model = x.model
	}
	if x.subscription != nil {
		m.Subscription, m.Product = x.subscription.Name, x.subscription.Product.Name
	}
	if x.table != nil {
		if b, ok := x.table.Backends[x.backendName]; ok {
			m.Region = b.Region
		}
	}
	if !x.firstByte.IsZero() {
		m.TimeToFirstToken = x.firstByte.Sub(x.start)
	}
	if x.op != wire.OpUnknown {
		m.Overhead = max(m.Duration-x.backendTime, 0)
	}
	x.h.metrics.Observe(&m)
}

// peer is the address the connection came from.
func peer(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientIP is the client's address for the ledger, metrics and logs: the
// peer's, or, when the peer is a trusted proxy, the right-most address in
// X-Forwarded-For that is not a trusted proxy itself.
func (x *exchange) clientIP() string {
	p := peer(x.r)
	if x.table == nil || len(x.table.TrustedProxies) == 0 {
		return p
	}
	if a, err := netip.ParseAddr(p); err != nil || !x.table.Trusted(a) {
		return p
	}
	client := p
	xff := x.r.Header.Values("X-Forwarded-For")
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return client // not an address: believe no further
			}
			client = a.Unmap().String()
			if !x.table.Trusted(a) {
				return client
			}
		}
	}
	return client
}

// forwardedFor is the X-Forwarded-For a backend gets, and whether the peer
// is a trusted proxy whose forwarding headers are passed on: from a trusted
// proxy its list with the proxy's address added, from anyone else the peer
// alone (what a client says of its own address is not passed on).
func (x *exchange) forwardedFor() (string, bool) {
	p := peer(x.r)
	if len(x.table.TrustedProxies) == 0 {
		return p, false
	}
	if a, err := netip.ParseAddr(p); err != nil || !x.table.Trusted(a) {
		return p, false
	}
	if prior := x.r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		return strings.Join(prior, ", ") + ", " + p, true
	}
	return p, true
}

// record writes the request's usage record: one per API request that got as
// far as a subscription and a model, whatever its outcome.
func (x *exchange) record(end time.Time) {
	if x.h.ledger == nil || x.subscription == nil || x.op == wire.OpUnknown || x.model == "" {
		return
	}
	r := usage.Record{
		RequestID: x.recordID, ClientRequestID: x.clientID, Time: x.start.UTC(),
		Subscription: x.subscription.Name, Product: x.subscription.Product.Name,
		Model: x.model, Deployment: x.deployment, Backend: x.backendName,
		Status: x.status, Stream: x.stream,
		PromptTokens: x.usage.Prompt, CompletionTokens: x.usage.Completion, TotalTokens: x.usage.Total,
		CachedTokens: x.usage.Cached, ReasoningTokens: x.usage.Reasoning, Estimated: x.usage.Estimated,
		Attempts: x.attempts, Latency: end.Sub(x.start), Overhead: max(end.Sub(x.start)-x.backendTime, 0),
		Cost: x.cost, Currency: x.table.Prices.Currency,
		ClientIP: x.clientIP(),
		UserID:   wire.CleanText(x.r.Header.Get("X-User-Id"), wire.MaxIDBytes),
		AppID:    wire.CleanText(x.r.Header.Get("X-App-Id"), wire.MaxIDBytes),
	}
	if r.Status == 0 {
		r.Status = 499
	}
	if b, ok := x.table.Backends[x.backendName]; ok {
		r.Region = b.Region
	}
	if !x.firstByte.IsZero() {
		r.TimeToFirstByte = x.firstByte.Sub(x.start)
	}
	x.h.ledger.Add(r)
}
