package proxy

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/sse"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// forward serves an API operation: body, model, backend, response.
func (x *exchange) forward(op wire.Operation, deployment string) {
	body, ok := x.readBody()
	if !ok {
		return
	}

	req, err := wire.ParseRequest(body)
	if err != nil {
		x.fail(wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "invalid_request_body", err.Error()))
		return
	}
	x.stream = req.Stream
	model := deployment
	if model == "" {
		model = req.Model
	}
	if model == "" {
		x.fail(wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "missing_model",
			"The request names no model: set \"model\" in the body, or use /openai/deployments/{deployment}/..."))
		return
	}
	x.model = model
	m, ok := x.table.Model(model)
	if !ok {
		x.fail(wire.NewError(http.StatusNotFound, wire.TypeInvalidRequest, "model_not_found",
			"The model or deployment "+strconv.Quote(model)+" does not exist."))
		return
	}
	if !x.subscription.Product.Allows(model) {
		x.fail(wire.NewError(http.StatusForbidden, wire.TypePermission, "model_not_allowed",
			"Your subscription may not use the model "+strconv.Quote(model)+"."))
		return
	}
	b, ok := m.Pool.Pick(nil)
	if !ok {
		x.fail(wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "no_backend_available",
			"No backend can serve the model "+strconv.Quote(model)+" now. Retry later."))
		return
	}
	call := backend.Call{
		Op:         op,
		Model:      model,
		APIVersion: x.r.URL.Query().Get("api-version"),
		Request:    req,
		Body:       body,
		Header:     x.r.Header,
		RequestID:  x.id,
	}
	x.attempt(b, &call)
}

// attempt sends call to b and relays the answer.
func (x *exchange) attempt(b *backend.Backend, call *backend.Call) {
	x.backendName = b.Name
	ctx, cancel := context.WithCancel(x.r.Context())
	defer cancel()
	// One timer serves both timeouts: the whole request, or for a stream the
	// silence before the first event and between events (it is reset on each).
	var timedOut atomic.Bool
	timer := time.AfterFunc(b.Timeout, func() {
		timedOut.Store(true)
		cancel()
	})
	defer timer.Stop()

	out, err := b.NewRequest(ctx, call)
	if err != nil {
		x.h.log.Error("building backend request", "request_id", x.id, "backend", b.Name, "err", err)
		x.fail(wire.NewError(http.StatusInternalServerError, wire.TypeServer, "internal_error",
			"Sluice failed to build the backend request. The request id is "+x.id+"."))
		return
	}
	resp, err := b.RoundTrip(out)
	if err != nil {
		gone := x.clientGone()
		b.Done(!gone)
		switch {
		case gone:
			x.outcome = "client_closed"
		case timedOut.Load():
			x.fail(wire.NewError(http.StatusGatewayTimeout, wire.TypeServer, "backend_timeout",
				"The backend did not answer in time. Retry later."))
		default:
			x.h.log.Warn("backend unreachable", "request_id", x.id, "backend", b.Name, "err", err)
			x.fail(wire.NewError(http.StatusBadGateway, wire.TypeServer, "backend_unreachable",
				"The backend could not be reached. Retry later."))
		}
		return
	}
	defer resp.Body.Close()

	h := x.w.Header()
	wire.CopyHeader(h, resp.Header, dropFromBackend)
	h.Set("X-Sluice-Backend", b.Name)
	if b.Region != "" && h.Get("X-Ms-Region") == "" {
		h.Set("X-Ms-Region", b.Region)
	}
	x.status = resp.StatusCode
	x.started = true

	var relayErr error
	if isEventStream(resp.Header) {
		h.Del("Content-Length")
		relayErr = x.relayStream(resp, timer, b.Timeout)
	} else {
		x.w.WriteHeader(resp.StatusCode)
		relayErr = x.relayBody(resp)
	}
	failed := resp.StatusCode >= 500
	if relayErr != nil {
		gone := x.clientGone()
		failed = !gone
		if gone {
			x.outcome = "client_closed"
		} else if timedOut.Load() {
			x.outcome = "backend_timeout"
		} else {
			x.outcome = "backend_broke_off"
		}
	}
	b.Done(failed)
	if relayErr != nil && !x.clientGone() {
		x.h.log.Warn("backend response broke off", "request_id", x.id, "backend", b.Name, "err", relayErr)
		// The status and part of the body are out: the only honest signal
		// left is to abort the connection, so the client sees a truncated
		// response and not a complete one.
		x.abort = true
	}
}

// dropFromBackend are backend response headers the client does not get:
// Sluice sets its own request id.
func dropFromBackend(k string) bool { return k == "X-Request-Id" }

func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	return len(ct) >= 17 && ct[:17] == "text/event-stream"
}

// relayStream passes a Server-Sent Events stream through event by event,
// flushing each as it arrives. On a broken stream it sends an SSE error event
// before the caller aborts the connection.
func (x *exchange) relayStream(resp *http.Response, timer *time.Timer, idle time.Duration) error {
	rc := http.NewResponseController(x.w)
	x.w.WriteHeader(resp.StatusCode)
	if err := rc.Flush(); err != nil {
		return err
	}
	rd := sse.NewReader(resp.Body)
	for {
		ev, err := rd.Next()
		if len(ev) > 0 {
			timer.Reset(idle)
			if _, werr := x.w.Write(ev); werr != nil {
				return werr
			}
			if ferr := rc.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if !x.clientGone() {
				_, _ = x.w.Write(streamErrorEvent)
				_ = rc.Flush()
			}
			return err
		}
	}
}

// streamErrorEvent tells an SDK reading the stream that it broke off; the
// OpenAI SDKs raise an error on a data event that carries "error".
var streamErrorEvent = []byte("\ndata: " + string(wire.NewError(http.StatusBadGateway, wire.TypeServer,
	"backend_broke_off", "The backend stream broke off before its end.").Body()) + "\n")

// relayBody copies a whole response body.
func (x *exchange) relayBody(resp *http.Response) error {
	_, err := io.Copy(x.w, resp.Body)
	return err
}

// readBody reads the request body up to the size limit. The body is not
// pooled: the transport may still read it after RoundTrip returns.
func (x *exchange) readBody() ([]byte, bool) {
	max := x.table.Config.Server.MaxRequestBytes
	tooLarge := func() *wire.Error {
		return wire.NewError(http.StatusRequestEntityTooLarge, wire.TypeInvalidRequest, "request_too_large",
			"The request body is larger than the limit of "+strconv.FormatInt(max, 10)+" bytes.")
	}
	if x.r.ContentLength > max {
		x.fail(tooLarge())
		return nil, false
	}
	size := x.r.ContentLength
	if size < 0 {
		size = 4 << 10
	}
	body := make([]byte, 0, size+1)
	for {
		if len(body) == cap(body) {
			body = append(body, 0)[:len(body)]
		}
		n, err := x.r.Body.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if int64(len(body)) > max {
			x.fail(tooLarge())
			return nil, false
		}
		if err == io.EOF {
			return body, true
		}
		if err != nil {
			x.outcome = "client_closed"
			return nil, false
		}
	}
}
