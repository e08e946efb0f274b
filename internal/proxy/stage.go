package proxy

import (
	"context"
	"net/http"
	"strconv"

	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// A Stage is a step every API request passes once its caller may use its
// model, before admission and routing: a response cache, a prompt guard, a
// translation. Stages run in the order of Options.Stages. Implementations
// must be safe for concurrent use.
type Stage interface {
	// Before returns nil, nil to let the request go on, perhaps with its
	// body replaced (Request.SetBody) or a tap added (Request.AddTap); an
	// Answer to answer the request itself, in place of any backend; or an
	// error to refuse it, a *wire.Error as it is. ctx ends with the
	// request.
	Before(ctx context.Context, r *Request) (*Answer, error)
}

// Request is a client request as the stages see it. A stage may read its
// fields, replace the body with SetBody, and add taps; it must not keep the
// Request, nor its Body, past the call.
type Request struct {
	// Subscription is the caller, with its product.
	Subscription *route.Subscription
	// Op is the operation.
	Op wire.Operation
	// Model is the configured model the request is for.
	Model string
	// Header is the client's request header. Read-only.
	Header http.Header
	// Body is the body that will be sent to the backend, and Parsed what
	// was read from it. Read-only: replace it with SetBody.
	Body   []byte
	Parsed wire.Request

	taps  []Tap
	head  *head  // the response headers Sluice sets, for SetResponseHeader
	cache string // the cache result a stage set, for the ledger
}

// SetCacheResult sets the response cache's result for the ledger, the
// access log and the trace ("miss", "bypass"); an Answer's Cache takes its
// place when a stage answers.
func (r *Request) SetCacheResult(result string) { r.cache = result }

// SetResponseHeader sets a header on the response, whatever answers the
// request (a backend, a stage, an error), such as a cache's result.
func (r *Request) SetResponseHeader(key, value string) {
	if r.head != nil {
		r.head.set(http.CanonicalHeaderKey(key), value)
	}
}

// SetBody replaces the request body, which must read as a valid request
// for the same model (a stage may mask text; it may not reroute).
func (r *Request) SetBody(body []byte) error {
	p, err := wire.ParseRequest(body)
	if err != nil {
		return err
	}
	if p.Model != r.Parsed.Model || p.Stream != r.Parsed.Stream {
		return wire.NewError(http.StatusInternalServerError, wire.TypeServer, "internal_error",
			"A stage changed the request's model or stream flag.")
	}
	r.Body, r.Parsed = body, p
	return nil
}

// AddTap adds a tap on the request's answer. Taps nest like the stages
// that add them: a tap added later sees the answer first, closer to the
// backend, and a tap added earlier sees what it passes on. A stage that
// rewrites the request (masking text, say) thus gets the answer back last,
// after the stages after it (a cache storing the answer) saw it as the
// backend gave it for the rewritten request. The usage meter comes before
// every tap.
func (r *Request) AddTap(t Tap) { r.taps = append([]Tap{t}, r.taps...) }

// An Answer is a response a stage gives in place of a backend's. It goes
// through the same end as any request: the access log, metrics, the ledger
// record, and the request's taps.
type Answer struct {
	// Status is the HTTP status.
	Status int
	// Header is added to the response headers.
	Header http.Header
	// Body is a whole body; or, when Events is set, the answer is a stream
	// of Events, each an SSE event as it goes on the wire.
	Body   []byte
	Events [][]byte
	// Usage is what the answer counts for in the ledger. An answer is not
	// admitted against token limits, so nothing is charged to them.
	Usage wire.Usage
	// Saved is what the answer saved: the usage of the backend's answer
	// it replays. The ledger records it, and its cost, as saved.
	Saved wire.Usage
	// Cache is the ledger's cache result for the answer, such as
	// "hit-exact".
	Cache string
	// CountRequest counts the answer as one request against the
	// product's requests_per_minute limits, and refuses it with 429 when
	// they are spent, as a cache hit is; no tokens are charged.
	CountRequest bool
}

// runStages runs the handler's stages on the request. It returns
// (nil, nil) when every stage let it go on.
func (x *exchange) runStages() (*Answer, error) {
	for _, s := range x.h.stages {
		a, err := s.Before(x.ctx, &x.req)
		if a != nil || err != nil {
			return a, err
		}
	}
	return nil, nil
}

// writeAnswer sends a stage's answer to the client and passes it through the
// request's taps, as a backend's would be.
func (x *exchange) writeAnswer(a *Answer) error {
	if a.CountRequest {
		if err := x.admitRequest(); err != nil {
			return err
		}
	}
	h := x.w.Header()
	for k, v := range a.Header {
		h[k] = v
	}
	x.meter.usage, x.meter.have = a.Usage, true
	x.req.cache, x.acct.saved = a.Cache, a.Saved
	if a.Events == nil {
		body := a.Body
		for _, t := range x.req.taps {
			var err error
			if body, err = t.Body(body); err != nil {
				clear(h) // the stage's headers belong to the refused answer
				return err
			}
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		x.firstByte = x.h.now()
		x.writeHead(a.Status)
		_, err := x.w.Write(body)
		x.served.complete = err == nil
		return nil
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "text/event-stream")
	}
	x.firstByte = x.h.now()
	x.writeHead(a.Status)
	rc := http.NewResponseController(x.w)
	for _, ev := range a.Events {
		out, end, err := x.tapEvent(ev)
		if err != nil {
			// As for a backend's stream: an error event, then the
			// connection is aborted, so no client takes it for whole.
			x.writeErrorEvent(rc, err)
			x.outcome, x.abort = "tap_refused", true
			return nil
		}
		if _, werr := x.w.Write(out); werr != nil {
			return nil // the client went away; end logs it
		}
		if end {
			break
		}
	}
	_ = rc.Flush()
	x.served.complete = true
	return nil
}
