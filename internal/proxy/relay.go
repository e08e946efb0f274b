package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/breaker"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// deliver relays the attempt's answer to the client: the backend's response,
// or the gateway's error for a transport failure. The breaker hears the
// outcome once the relay is over.
func (x *exchange) deliver(pool *route.Pool, a *attempt) error {
	x.served.backend = a.b.Name
	x.served.deployment, _ = a.b.Deployment(x.req.Model)
	defer a.close()
	if a.unsent {
		now := x.h.now()
		a.report(now, a.outcome(now))
		if errors.As(a.err, new(*backend.CredentialError)) {
			return wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "backend_credential_unavailable",
				"The gateway cannot get a credential for its backend now. Retry later.")
		}
		if e := (*wire.Error)(nil); errors.As(a.err, &e) {
			return e // a request the backend's API cannot take (a translated kind): the client's to change
		}
		return a.err // a config fault: a 500, detail in the log
	}
	if a.err != nil {
		now := x.h.now()
		a.report(now, a.outcome(now))
		if a.kind == breaker.Timeout {
			return wire.NewError(http.StatusGatewayTimeout, wire.TypeServer, "backend_timeout",
				"The backend did not answer in time. Retry later.")
		}
		return wire.NewError(http.StatusBadGateway, wire.TypeServer, "backend_unreachable",
			"The backend could not be reached. Retry later.")
	}
	if a.authFailed() {
		now := x.h.now()
		a.report(now, a.outcome(now))
		x.logger().Error("the backend refused Sluice's credential", "backend", a.b.Name, "status", a.resp.StatusCode)
		return wire.NewError(http.StatusBadGateway, wire.TypeServer, "backend_auth_failed",
			"The backend refused the gateway's credential. This is a gateway configuration problem, not your key; retry later.")
	}
	resp := a.resp
	h := x.w.Header()
	wire.CopyHeader(h, resp.Header, dropFromBackend)
	x.replaceBackendLimits(h)
	x.head.set("X-Sluice-Backend", a.b.Name)
	if a.b.Region != "" && h.Get("X-Ms-Region") == "" {
		x.head.set("X-Ms-Region", a.b.Region)
	}
	if pool.AffinityCookie != "" {
		if c, err := x.r.Cookie(pool.AffinityCookie); err != nil || c.Value != url.QueryEscape(a.b.Name) {
			http.SetCookie(x.w, &http.Cookie{Name: pool.AffinityCookie, Value: url.QueryEscape(a.b.Name),
				Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
	}
	x.served.relayed = true
	x.status = resp.StatusCode // the status the meter judges by, until written

	var relayErr error
	if a.rd != nil {
		h.Del("Content-Length")
		relayErr = x.relayStream(a)
	} else {
		relayErr = x.relayBody(resp)
	}
	x.served.complete = relayErr == nil
	if relayErr != nil {
		// Charged as the backend answered it (the prompt, and what came of
		// the completion), whatever the client is told now.
		x.settle(false)
	}
	now := x.h.now()
	switch {
	case relayErr == nil:
		a.report(now, a.outcome(now))
	case isTapError(relayErr):
		// The backend did its part; a tap refused the answer.
		a.report(now, a.outcome(now))
		if !x.started {
			clear(h) // the backend's headers belong to the refused answer
			return errors.Unwrap(relayErr)
		}
		x.outcome = "tap_refused"
		x.abort = true
	case x.clientGone():
		x.outcome = "client_closed"
		a.report(now, breaker.Outcome{Ignore: true})
	default:
		kind := a.classify(relayErr)
		a.report(now, breaker.Outcome{Status: resp.StatusCode, Err: kind})
		x.logger().Warn("backend response broke off", "backend", a.b.Name, "err", relayErr)
		if !x.started {
			// Nothing went out yet: the client can get a clean error,
			// without the backend's headers.
			clear(h)
			if kind == breaker.Timeout {
				return wire.NewError(http.StatusGatewayTimeout, wire.TypeServer, "backend_timeout",
					"The backend did not finish its answer in time. Retry later.")
			}
			return wire.NewError(http.StatusBadGateway, wire.TypeServer, "backend_broke_off",
				"The backend's answer broke off before its end. Retry later.")
		}
		x.outcome = "backend_broke_off"
		if kind == breaker.Timeout {
			x.outcome = "backend_timeout"
		}
		// The status and part of the body are out: the only honest signal
		// left is to abort the connection, so the client sees a truncated
		// response and not a complete one.
		x.abort = true
	}
	return nil
}

// replaceBackendLimits drops the backend's figures of a limit whose
// remaining count Sluice sends itself: the backend's own limit and reset
// beside Sluice's remaining would mislead a client that throttles itself.
// (Sluice's remaining values replace the backend's in writeHead.)
func (x *exchange) replaceBackendLimits(h http.Header) {
	names := x.req.Subscription.Product.Headers
	if x.head.has(names.RemainingTokens) {
		h.Del("X-Ratelimit-Limit-Tokens")
		h.Del("X-Ratelimit-Reset-Tokens")
	}
	if x.head.has(names.RemainingRequests) {
		h.Del("X-Ratelimit-Limit-Requests")
		h.Del("X-Ratelimit-Reset-Requests")
	}
}

// tapError is a tap's refusal of an answer, told apart from the backend's
// and the client's failures.
type tapError struct{ err error }

func (e *tapError) Error() string { return "tap: " + e.err.Error() }
func (e *tapError) Unwrap() error { return e.err }

// isTapError reports whether err is a tap's refusal (kept apart from
// deliver so that its target does not escape on every request).
func isTapError(err error) bool {
	var te *tapError
	return errors.As(err, &te)
}

// dropFromBackend are backend response headers the client does not get:
// Sluice sets its own request id.
func dropFromBackend(k string) bool { return k == "X-Request-Id" }

func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	return len(ct) >= 17 && ct[:17] == "text/event-stream"
}

// relayStream passes a Server-Sent Events stream through the taps event by
// event, flushing as they arrive (events that arrived together, together);
// the attempt has read the first event already. On a broken stream it sends
// an SSE error event before the caller aborts the connection.
func (x *exchange) relayStream(a *attempt) error {
	rc := http.NewResponseController(x.w)
	x.writeHead(a.resp.StatusCode)
	ev, err := a.first, a.firstErr
	pending := false // written since the last flush
	for {
		if len(ev) > 0 {
			out, end, terr := x.tapEvent(ev)
			if terr != nil {
				x.writeErrorEvent(rc, terr)
				return &tapError{terr}
			}
			if len(out) > 0 {
				if x.firstByte.IsZero() {
					x.firstByte = x.h.now()
				}
				if _, werr := x.w.Write(out); werr != nil {
					return werr
				}
				pending = true
			}
			if end {
				return rc.Flush()
			}
		}
		// Flush before waiting for the backend: when the next event is here
		// already it goes out in the same write, and none waits for another.
		if pending && (err != nil || !a.rd.Buffered()) {
			if ferr := rc.Flush(); ferr != nil {
				return ferr
			}
			pending = false
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if !x.clientGone() {
				x.writeErrorEvent(rc, nil)
			}
			return err
		}
		ev, err = a.rd.Next()
		a.idle()
	}
}

// writeErrorEvent tells an SDK reading the stream that it broke off; the
// OpenAI SDKs raise an error on a data event that carries "error". A tap's
// *wire.Error is sent as it is.
func (x *exchange) writeErrorEvent(rc *http.ResponseController, err error) {
	ev := streamErrorEvent
	var e *wire.Error
	if errors.As(err, &e) {
		ev = []byte("\ndata: " + string(e.Body()) + "\n")
	}
	_, _ = x.w.Write(ev)
	_ = rc.Flush()
}

// streamErrorEvent is the error event of a stream that broke off.
var streamErrorEvent = []byte("\ndata: " + string(wire.NewError(http.StatusBadGateway, wire.TypeServer,
	"backend_broke_off", "The backend stream broke off before its end.").Body()) + "\n")

// maxBufferedBody bounds the non-streaming response bodies Sluice reads
// whole before answering, to put their usage in the headers. Larger ones
// (big embedding batches) are passed through as they come, and their usage
// is read from their tail.
const maxBufferedBody = 8 << 20

// relayBody relays a non-streaming response: it reads the body (up to
// maxBufferedBody), passes it through the taps, settles its usage so that
// the headers can carry it, then writes status, headers and body.
func (x *exchange) relayBody(resp *http.Response) error {
	bp := respBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		// The buffer is ours alone once written: keep it for the next
		// response, unless it grew large.
		if cap(buf) <= 1<<20 {
			*bp = buf[:0]
			respBufs.Put(bp)
		}
	}()
	if want := min(resp.ContentLength, maxBufferedBody) + 1; want > int64(cap(buf)) {
		buf = make([]byte, 0, want)
	}
	for len(buf) <= maxBufferedBody {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := resp.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return x.writeBody(resp.StatusCode, buf)
		}
		if err != nil {
			return err
		}
	}
	// Too large to hold: pass it through, keeping the tail for the usage.
	x.w.Header().Del("Content-Length")
	x.firstByte = x.h.now()
	x.writeHead(resp.StatusCode)
	if _, err := x.w.Write(buf); err != nil {
		return err
	}
	tail := &tailWriter{keep: 64 << 10}
	tail.Write(buf)
	_, err := io.Copy(io.MultiWriter(x.w, tail), resp.Body)
	if err == nil {
		x.meter.tail(tail.b)
		x.settle(false)
	}
	return err
}

// writeBody sends a whole non-streaming body read from the backend, after
// the meter and the taps.
func (x *exchange) writeBody(status int, body []byte) error {
	body, _ = x.meter.Body(body)
	if x.table.Redactor != nil {
		// What the backend answered, before the taps, as for a stream
		// (the meter keeps its text): a tap that restores masked
		// personal data must not put it into the access log.
		x.served.completion = strings.Clone(completionText(body))
	}
	for _, t := range x.req.taps {
		var err error
		if body, err = t.Body(body); err != nil {
			x.settle(false) // the backend served it all the same
			return &tapError{err}
		}
	}
	if x.span != nil {
		x.served.respModel = strings.Clone(responseModel(body))
	}
	x.settle(true)
	if len(x.req.taps) > 0 {
		x.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	x.firstByte = x.h.now()
	x.writeHead(status)
	_, err := x.w.Write(body)
	return err
}

// respBufs are the buffers non-streaming response bodies are read into.
var respBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// tailWriter keeps the last keep bytes written to it.
type tailWriter struct {
	keep int
	b    []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - t.keep; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}
