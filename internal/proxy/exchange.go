package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/sluice-gateway/sluice/internal/limit"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/trace"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// exchange is one request's state, from arrival to the access-log line. Its
// parts are grouped by the step that owns them: req by the steps before the
// backend (and the stages, which see it), acct by admission and settlement,
// served by the attempts and the relay, head and the response fields by
// writeHead and fail.
type exchange struct {
	h     *Handler
	w     http.ResponseWriter
	r     *http.Request
	ctx   context.Context // the request's context, with its trace span when tracing
	start time.Time
	// id is the request id the client and the backends see: the client's
	// x-request-id when it sent a sane one (then also clientID), else
	// recordID, the ledger's and the logs' id for the request.
	id, recordID, clientID string
	table                  *route.Table
	span                   *trace.Span // the request's server span; nil when not tracing

	req Request // what the client asked for, as the stages see it
	// model is the model as the log, ledger and trace keep it: req.Model
	// once it is known to be configured (modelKnown), else what the client
	// asked for, cleaned and cut.
	model      string
	modelKnown bool
	stream     bool
	acct       accounting
	served     served
	meter      meter

	head      head      // the response headers Sluice sets
	status    int       // the status sent, or 499 when the client went away first
	started   bool      // the response status was written
	bodyRead  bool      // the request body was read whole
	abort     bool      // the response broke off: abort the connection after logging
	outcome   string    // why the request did not end well, for the log, metrics and span
	firstByte time.Time // when the first byte of the answer went to the client
}

// accounting is what admission reserved and settlement charged.
type accounting struct {
	prompt      int64 // the prompt's token count, -1 until counted
	usage       wire.Usage
	cost        float64
	settled     bool
	reservation limit.Reservation // what admit reserved; settled exactly once
	limited     bool              // a reservation awaits settling
	budget      limit.Reservation // the budget's admission, charged the cost
	budgeted    bool
	rejection   string     // why a limit refused the request, for metrics
	saved       wire.Usage // what a stage's answer saved (a cache hit)
}

// served is what the backends did for the request.
type served struct {
	backend      string        // the backend whose answer the client got
	deployment   string        // its deployment
	attempts     int           // backend calls made
	backendTime  time.Duration // spent waiting for and reading backends
	respModel    string        // the model the backend said it used, for the span
	completion   string        // a non-streaming response's text, kept only for prompt logging
	current      *attempt      // the attempt being relayed; closed by end at the latest
	pin          string        // the only backend that may serve: the one holding previous_response_id
	relayed      bool          // a backend's answer went out, or began to
	complete     bool          // the answer reached the client whole
	firstAttempt attempt       // the first attempt's storage; see send
}

// errClientGone ends a request whose client went away before it could be
// answered: there is nobody to write an error to.
var errClientGone = errors.New("proxy: the client went away")

// fixedHead is how many headers head holds without allocating: the request
// id, the backend and region, and the four limit headers, with room to spare.
const fixedHead = 10

// head is the response headers Sluice sets itself, kept apart until the
// status is written so that each step may set or replace them, and applied
// to the response in writeHead without allocating: each value slice is a
// slot of vals. Its zero value is empty.
type head struct {
	keys  [fixedHead]string
	vals  [fixedHead]string
	n     int
	extra http.Header // headers beyond fixedHead; rare
}

// set sets the canonical header key to v, replacing an earlier value.
func (h *head) set(key, v string) {
	for i := range h.n {
		if h.keys[i] == key {
			h.vals[i] = v
			return
		}
	}
	if h.n < fixedHead && h.extra[key] == nil {
		h.keys[h.n], h.vals[h.n] = key, v
		h.n++
		return
	}
	if h.extra == nil {
		h.extra = http.Header{}
	}
	h.extra[key] = []string{v}
}

// has reports whether key is set.
func (h *head) has(key string) bool {
	for i := range h.n {
		if h.keys[i] == key {
			return true
		}
	}
	return h.extra[key] != nil
}

// writeHead writes the response status with Sluice's headers added to what
// is in w.Header() already. It is the only place a status is written.
func (x *exchange) writeHead(status int) {
	h := x.w.Header()
	for i := range x.head.n {
		h[x.head.keys[i]] = x.head.vals[i : i+1 : i+1]
	}
	for k, v := range x.head.extra {
		h[k] = v
	}
	x.status, x.started = status, true
	x.w.WriteHeader(status)
}

// fail answers with err, unless the response has begun (then only the log
// hears of it). A *wire.Error is sent as it is; errClientGone sends nothing;
// anything else is a 500 whose detail goes to the log only. A refusal
// before the body was read closes the connection when the request has a
// body or is not authenticated: net/http would otherwise read what is left
// of the body before answering, so a stranger trickling a body would hold
// the connection, and a client without a key could keep one open forever
// with a 404 now and then.
func (x *exchange) fail(err error) {
	var e *wire.Error
	switch {
	case errors.Is(err, errClientGone):
		x.outcome = "client_closed"
		return
	case !errors.As(err, &e):
		x.logger().Error("serving request", "err", err)
		e = wire.NewError(http.StatusInternalServerError, wire.TypeServer, "internal_error",
			"Sluice failed to serve the request. The request id is "+x.id+".")
	}
	x.outcome = e.Code
	if x.started {
		return
	}
	closeConn := !x.bodyRead && (x.req.Subscription == nil || x.r.ContentLength != 0)
	if closeConn {
		x.w.Header().Set("Connection", "close")
	}
	body := e.Prepare(x.w.Header())
	x.writeHead(e.Status)
	_, _ = x.w.Write(body)
	if closeConn {
		// The answer is out; what the client still sends is not wanted.
		// An expired read deadline ends net/http's drain of the body at
		// once.
		setReadDeadline(x.w, time.Unix(1, 0))
	}
}

// setReadDeadline sets the read deadline of w's connection, as
// http.ResponseController does but without allocating one, and reports
// whether w has one (a ResponseRecorder in tests has not).
func setReadDeadline(w http.ResponseWriter, t time.Time) bool {
	d, ok := w.(interface{ SetReadDeadline(time.Time) error })
	return ok && d.SetReadDeadline(t) == nil
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
