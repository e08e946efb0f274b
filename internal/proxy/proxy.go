// Package proxy is the request pipeline: it names the caller, reads what
// routing needs from the body, runs the stages that may answer or change a
// request, admits it against its limits, picks a backend through the model's
// pool, forwards the request with the backend's credential, and passes the
// answer back through the taps, streams event by event.
//
// One request, in order (docs/architecture.md draws it):
//
//	path -> authenticate (Authenticators) -> body -> model and entitlement
//	     -> stages (Stage: pass, rewrite, answer) -> admission (limits, budget)
//	     -> attempts on the pool's members -> relay through taps (Tap) -> end
//
// Every step returns an error instead of writing the response; the response
// head is written in one place (writeHead), and the end of a request
// (settlement, breaker report, ledger record, metrics, access log, span)
// happens once, in end, whatever path the request took.
//
// Dependencies point one way: proxy uses the route table and the mechanisms
// below it (balance, backend, auth, limit, wire, sse); none of them imports
// proxy. The app package wires proxy to listeners; nothing below app imports
// it.
package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

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
	// Authenticators name the caller of a request, asked in order until one
	// finds a credential of its kind. Default: subscription keys (Keys).
	Authenticators []Authenticator
	// Stages run in order for every API request once its caller may use its
	// model, before admission and routing; see Stage. Default: none.
	Stages []Stage
}

// Handler serves the client-facing API. It is safe for concurrent use.
type Handler struct {
	table   func() *route.Table
	log     *slog.Logger
	lines   io.Writer // where access-log lines go ready-made; see JSONLines
	now     func() time.Time
	metrics *metrics.Metrics
	ledger  *usage.Ledger
	tracer  *trace.Tracer
	authn   []Authenticator
	stages  []Stage
	owners  *owners // which backend made each stored response
}

// New returns a Handler.
func New(opts Options) *Handler {
	h := &Handler{table: opts.Table, log: opts.Logger, now: opts.Now, metrics: opts.Metrics, ledger: opts.Ledger,
		tracer: opts.Tracer, authn: opts.Authenticators, stages: opts.Stages, owners: newOwners()}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if jl, ok := h.log.Handler().(JSONLines); ok {
		h.lines = jl.JSONLines()
	}
	if h.now == nil {
		h.now = time.Now
	}
	if len(h.authn) == 0 {
		h.authn = []Authenticator{Keys{}}
	}
	return h
}

// ServeHTTP serves one client request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := exchange{h: h, w: w, r: r, ctx: r.Context(), start: h.now()}
	x.acct.prompt = -1
	// The record's id is always Sluice's own: a client may send one
	// x-request-id twice, and the ledger keeps one record per id. The client
	// and the backend see the client's id when it sent a sane one.
	x.recordID = usage.NewID()
	x.id = x.recordID
	if c := clientRequestID(r.Header.Get("X-Request-Id")); c != "" {
		x.id, x.clientID = c, c
	}
	x.head.set("X-Request-Id", x.id)
	defer x.end()
	if err := x.serve(); err != nil {
		x.fail(err)
	}
}

// serve runs the request's steps; the first that fails returns why.
func (x *exchange) serve() error {
	x.table = x.h.table()
	for !x.table.Hold() {
		x.table = x.h.table() // replaced since loaded: take the new one
	}
	path := stripPrefix(x.r.URL.Path, x.table.PathPrefixes)
	t := parsePath(path)
	switch t.kind {
	case pathUnknown:
		return wire.NewError(http.StatusNotFound, wire.TypeNotFound, "not_found",
			"No API at "+x.r.Method+" "+wire.EchoText(x.r.URL.Path)+". Sluice serves the OpenAI API under /v1/... "+
				"(chat/completions, completions, embeddings, responses, models), the Azure OpenAI v1 API under /openai/v1/..., "+
				"and the Azure OpenAI deployment API under /openai/deployments/{deployment}/... with ?api-version=.")
	case pathModels, pathModel:
		if x.r.Method != http.MethodGet && x.r.Method != http.MethodHead {
			x.w.Header().Set("Allow", "GET, HEAD")
			return wire.NewError(http.StatusMethodNotAllowed, wire.TypeInvalidRequest, "method_not_allowed",
				"Use GET for "+wire.EchoText(x.r.URL.Path)+".")
		}
	case pathOperation:
		if x.r.Method != http.MethodPost {
			x.w.Header().Set("Allow", "POST")
			return wire.NewError(http.StatusMethodNotAllowed, wire.TypeInvalidRequest, "method_not_allowed",
				"Use POST for "+wire.EchoText(x.r.URL.Path)+".")
		}
	case pathResponse:
		if allow := responseMethods(t.action); !strings.Contains(allow, x.r.Method) {
			x.w.Header().Set("Allow", allow)
			return wire.NewError(http.StatusMethodNotAllowed, wire.TypeInvalidRequest, "method_not_allowed",
				"Use "+allow+" for "+wire.EchoText(x.r.URL.Path)+".")
		}
	}
	if err := x.authenticate(); err != nil {
		return err
	}
	switch t.kind {
	case pathModels:
		return x.listModels(t.azure)
	case pathModel:
		return x.getModel(t.id, t.azure)
	case pathResponse:
		return x.storedResponse(t)
	}
	return x.forward(t.op, t.deployment)
}
