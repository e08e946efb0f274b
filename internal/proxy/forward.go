package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/balance"
	"github.com/sluice-gateway/sluice/internal/breaker"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/tokens"
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
	x.op = op
	model := deployment
	if model == "" {
		model = req.Model
	}
	if model == "" {
		x.fail(wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "missing_model",
			"The request names no model: set \"model\" in the body, or use /openai/deployments/{deployment}/..."))
		return
	}
	m, ok := x.table.Model(model)
	// What the ledger, the log and the trace keep of a name the client
	// chose: a configured name as it is, anything else cleaned and cut.
	x.model = wire.CleanText(model, wire.MaxModelBytes)
	if x.h.tracer != nil {
		x.ctx, x.span = x.h.tracer.StartRequest(x.r.Context(), x.r, op.String(), x.model)
	}
	if !ok {
		x.fail(wire.NewError(http.StatusNotFound, wire.TypeInvalidRequest, "model_not_found",
			"The model or deployment "+strconv.Quote(wire.EchoText(model))+" does not exist."))
		return
	}
	x.modelKnown = true
	x.meter.enc = tokens.EncodingFor(model)
	if x.table.Redactor != nil {
		x.meter.keep = x.table.Config.Logging.PromptMaxBytes
	}
	if !x.subscription.Product.Allows(model) {
		x.fail(wire.NewError(http.StatusForbidden, wire.TypePermission, "model_not_allowed",
			"Your subscription may not use the model "+strconv.Quote(model)+"."))
		return
	}
	if req.Stream && !req.IncludeUsage && (op == wire.OpChatCompletions || op == wire.OpCompletions) {
		// Ask the backend for the usage chunk, and take it out of what the
		// client sees: Sluice needs exact usage, the client gets exactly the
		// stream it asked for.
		if withUsage := req.WithIncludeUsage(body); len(withUsage) != len(body) {
			if r2, err := wire.ParseRequest(withUsage); err == nil {
				body, req = withUsage, r2
				x.meter.injected = true
			}
		}
	}
	x.body = body
	if !x.admit(req) {
		return
	}
	call := backend.Call{
		Op:         op,
		Model:      model,
		APIVersion: wire.QueryValue(x.r.URL.RawQuery, "api-version"),
		Request:    req,
		Body:       body,
		Header:     x.r.Header,
		RequestID:  x.id,
	}
	call.ForwardedFor, call.TrustedPeer = x.forwardedFor()
	x.run(m.Pool, &call)
}

// run tries the pool's members until one answers in a way that is not
// retried, or the attempts are spent, and relays the last answer.
func (x *exchange) run(pool *route.Pool, call *backend.Call) {
	var tried [8]*backend.Backend
	f := balance.Filter{Tried: tried[:0], Regions: x.subscription.Product.Regions}
	aff := x.affinity(pool)
	if pool.Throttle != nil && x.lowPriority() && !x.waitForCapacity(pool, &f) {
		x.rejection = "low_priority"
		if !x.clientGone() {
			x.w.Header().Set("X-Sluice-Throttle-Reason", "low-priority")
			e := wire.NewError(http.StatusTooManyRequests, wire.TypeRateLimit, "low_priority_throttled",
				"The backends of the model "+strconv.Quote(x.model)+" are short of capacity and low-priority requests are held back. Retry later.")
			e.RetryAfterMillis = 1000
			x.fail(e)
		}
		return
	}
	var last *attempt
	for n := 0; n < pool.Retry.Attempts; n++ {
		b, ticket, ok := x.pick(pool, &f, aff, last != nil)
		if !ok {
			break
		}
		if last != nil {
			last.discard()
		}
		x.attempts++
		last = x.send(b, ticket, call)
		f.Tried = append(f.Tried, b)
		if x.clientGone() {
			last.abandon(x.h.now())
			x.outcome = "client_closed"
			return
		}
		if n+1 == pool.Retry.Attempts || !x.retryable(pool, last) {
			break
		}
		// Tell the breaker now, so that the next pick knows.
		last.report(x.h.now(), last.outcome(x.h.now()))
	}
	if last == nil {
		x.unavailable(pool, &f)
		return
	}
	x.deliver(pool, last)
}

// lowPriority reports whether the request is low priority: its product's, or
// lowered by the client with x-priority: low (never raised).
func (x *exchange) lowPriority() bool {
	return x.subscription.Product.LowPriority || strings.EqualFold(x.r.Header.Get("X-Priority"), "low")
}

// throttlePoll is how often a waiting low-priority request looks again.
const throttlePoll = 20 * time.Millisecond

// waitForCapacity holds a low-priority request while the pool's available
// members have less left than the throttle's floors, up to its MaxWait. It
// reports whether the request may go on.
func (x *exchange) waitForCapacity(pool *route.Pool, f *balance.Filter) bool {
	th := pool.Throttle
	short := func() bool {
		t, r, known := pool.Capacity(x.h.now(), f)
		return known && ((th.MinTokens > 0 && t < th.MinTokens) || (th.MinRequests > 0 && r < th.MinRequests))
	}
	if !short() {
		return true
	}
	deadline := time.NewTimer(th.MaxWait)
	defer deadline.Stop()
	tick := time.NewTicker(throttlePoll)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			return false
		case <-x.r.Context().Done():
			return false
		case <-tick.C:
			if !short() {
				return true
			}
		}
	}
}

// pick asks the pool for a member. When every member the request may use
// was tried, the same one is tried again only when it is the only one,
// after the pool's backoff.
func (x *exchange) pick(pool *route.Pool, f *balance.Filter, aff balance.Affinity, retry bool) (*backend.Backend, breaker.Ticket, bool) {
	b, t, ok := pool.Pick(x.h.now(), f, aff)
	if ok || !retry || len(f.Tried) == 0 {
		return b, t, ok
	}
	if pool.Eligible(&balance.Filter{Regions: f.Regions}) != 1 {
		return nil, t, false
	}
	timer := time.NewTimer(pool.Retry.Backoff)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-x.r.Context().Done():
		return nil, t, false
	}
	f.Tried = f.Tried[:0]
	return pool.Pick(x.h.now(), f, aff)
}

// retryable reports whether the pool's policy retries what a happened.
func (x *exchange) retryable(pool *route.Pool, a *attempt) bool {
	if a.err != nil {
		return (a.kind == breaker.Timeout && pool.Retry.Timeout) ||
			(a.kind == breaker.Connection && pool.Retry.Connection)
	}
	return pool.Retry.RetriesStatus(a.status())
}

// unavailable answers 503 when no member can serve, with Retry-After set to
// when the first one reopens. It names no backend.
func (x *exchange) unavailable(pool *route.Pool, f *balance.Filter) {
	e := wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "no_backend_available",
		"No backend can serve the model "+strconv.Quote(x.model)+" now. Retry later.")
	if f.Regions != nil && pool.Eligible(&balance.Filter{Regions: f.Regions}) == 0 {
		e.Message = "No backend in the regions your subscription may use serves the model " + strconv.Quote(x.model) + "."
	}
	if at := pool.NextAvailable(&balance.Filter{Regions: f.Regions}); !at.IsZero() {
		e.RetryAfterMillis = max(at.Sub(x.h.now()).Milliseconds(), 1)
	}
	x.fail(e)
}

// affinity reads the session-affinity cookie and header when the pool has
// session affinity.
func (x *exchange) affinity(pool *route.Pool) balance.Affinity {
	if pool.AffinityCookie == "" {
		return balance.Affinity{}
	}
	var aff balance.Affinity
	if c, err := x.r.Cookie(pool.AffinityCookie); err == nil {
		aff.Backend, _ = url.QueryUnescape(c.Value)
	}
	aff.Key = x.r.Header.Get("X-Sluice-Affinity")
	return aff
}

// deliver relays the attempt's answer to the client: the backend's response,
// or the gateway's error for a transport failure. The breaker hears the
// outcome once the relay is over.
func (x *exchange) deliver(pool *route.Pool, a *attempt) {
	x.backendName = a.b.Name
	x.deployment, _ = a.b.Deployment(x.model)
	defer a.close()
	if a.err != nil {
		now := x.h.now()
		a.report(now, a.outcome(now))
		if a.kind == breaker.Timeout {
			x.fail(wire.NewError(http.StatusGatewayTimeout, wire.TypeServer, "backend_timeout",
				"The backend did not answer in time. Retry later."))
			return
		}
		x.fail(wire.NewError(http.StatusBadGateway, wire.TypeServer, "backend_unreachable",
			"The backend could not be reached. Retry later."))
		return
	}
	if a.authFailed() {
		now := x.h.now()
		a.report(now, a.outcome(now))
		x.logger().Error("the backend refused Sluice's credential", "backend", a.b.Name, "status", a.resp.StatusCode)
		x.fail(wire.NewError(http.StatusBadGateway, wire.TypeServer, "backend_auth_failed",
			"The backend refused the gateway's credential. This is a gateway configuration problem, not your key; retry later."))
		return
	}
	resp := a.resp
	h := x.w.Header()
	wire.CopyHeader(h, resp.Header, dropFromBackend)
	x.setHeader(hvBackend, "X-Sluice-Backend", a.b.Name)
	if a.b.Region != "" && h.Get("X-Ms-Region") == "" {
		x.setHeader(hvRegion, "X-Ms-Region", a.b.Region)
	}
	if pool.AffinityCookie != "" {
		if c, err := x.r.Cookie(pool.AffinityCookie); err != nil || c.Value != url.QueryEscape(a.b.Name) {
			http.SetCookie(x.w, &http.Cookie{Name: pool.AffinityCookie, Value: url.QueryEscape(a.b.Name),
				Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
	}
	x.status = resp.StatusCode
	x.started = true

	var relayErr error
	if a.rd != nil {
		h.Del("Content-Length")
		relayErr = x.relayStream(a)
	} else {
		relayErr = x.relayBody(resp, func() { x.settle(true) })
	}
	if a.rd != nil || relayErr != nil {
		x.settle(false)
	}
	now := x.h.now()
	switch {
	case relayErr == nil:
		a.report(now, a.outcome(now))
	case x.clientGone():
		x.outcome = "client_closed"
		a.report(now, breaker.Outcome{Ignore: true})
	default:
		kind := a.classify(relayErr)
		x.outcome = "backend_broke_off"
		if kind == breaker.Timeout {
			x.outcome = "backend_timeout"
		}
		a.report(now, breaker.Outcome{Status: resp.StatusCode, Err: kind})
		x.logger().Warn("backend response broke off", "backend", a.b.Name, "err", relayErr)
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
// flushing as they arrive (events that arrived together, together); the
// attempt has read the first event already.
// It reads the usage on the way, and removes the usage Sluice asked for on
// the client's behalf. On a broken stream it sends an SSE error event before
// the caller aborts the connection.
func (x *exchange) relayStream(a *attempt) error {
	rc := http.NewResponseController(x.w)
	x.w.WriteHeader(a.resp.StatusCode)
	ev, err := a.first, a.firstErr
	pending := false // written since the last flush
	for {
		if len(ev) > 0 {
			if ev = x.meter.event(ev); len(ev) > 0 {
				if x.firstByte.IsZero() {
					x.firstByte = x.h.now()
				}
				if _, werr := x.w.Write(ev); werr != nil {
					return werr
				}
				pending = true
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
				_, _ = x.w.Write(streamErrorEvent)
				_ = rc.Flush()
			}
			return err
		}
		ev, err = a.rd.Next()
		a.idle()
	}
}

// streamErrorEvent tells an SDK reading the stream that it broke off; the
// OpenAI SDKs raise an error on a data event that carries "error".
var streamErrorEvent = []byte("\ndata: " + string(wire.NewError(http.StatusBadGateway, wire.TypeServer,
	"backend_broke_off", "The backend stream broke off before its end.").Body()) + "\n")

// maxBufferedBody bounds the non-streaming response bodies Sluice reads
// whole before answering, to put their usage in the headers. Larger ones
// (big embedding batches) are passed through as they come, and their usage
// is read from their tail.
const maxBufferedBody = 8 << 20

// relayBody relays a non-streaming response: it reads the body (up to
// maxBufferedBody) to learn its usage, lets settle set the usage headers,
// then writes status, headers and body.
func (x *exchange) relayBody(resp *http.Response, settle func()) error {
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
			x.meter.body(buf)
			if x.table.Redactor != nil {
				x.completion = strings.Clone(completionText(buf))
			}
			if x.span != nil {
				x.respModel = strings.Clone(responseModel(buf))
			}
			settle()
			x.firstByte = x.h.now()
			x.w.WriteHeader(resp.StatusCode)
			_, err = x.w.Write(buf)
			return err
		}
		if err != nil {
			return err
		}
	}
	// Too large to hold: pass it through, keeping the tail for the usage.
	x.firstByte = x.h.now()
	x.w.Header().Del("Content-Length")
	x.w.WriteHeader(resp.StatusCode)
	if _, err := x.w.Write(buf); err != nil {
		return err
	}
	tail := &tailWriter{keep: 64 << 10}
	tail.Write(buf)
	_, err := io.Copy(io.MultiWriter(x.w, tail), resp.Body)
	if err == nil {
		x.meter.tail(tail.b)
		settle()
	}
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

// readBody reads the request body up to the size limit, within
// server.read_body_timeout. The body is not pooled: the transport may still
// read it after RoundTrip returns.
func (x *exchange) readBody() ([]byte, bool) {
	max := x.table.Config.Server.MaxRequestBytes
	tooLarge := func() *wire.Error {
		return wire.NewError(http.StatusRequestEntityTooLarge, wire.TypeInvalidRequest, "request_too_large",
			"The request body is larger than the limit of "+strconv.FormatInt(max, 10)+" bytes.")
	}
	if x.r.ContentLength > max {
		x.refuseUnread(tooLarge())
		return nil, false
	}
	// A deadline on the connection's reads while the body comes in, so a
	// client trickling it cannot hold the connection; cleared once the body
	// is in, since net/http's watch for the client going away reads with it
	// too (a refusal leaves it expired: the connection is to close). Writers
	// that are not connections (tests, benchmarks) have no deadlines.
	deadline := setReadDeadline(x.w, time.Now().Add(x.table.Config.Server.ReadBodyTimeout.D()))
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
			x.refuseUnread(tooLarge())
			return nil, false
		}
		if err == io.EOF {
			if deadline {
				setReadDeadline(x.w, time.Time{})
			}
			return body, true
		}
		if err != nil {
			x.bodyFailed(err)
			return nil, false
		}
	}
}

// bodyFailed answers a request whose body could not be read: the client
// went away (nothing to answer), was too slow (408), or sent a body that is
// not HTTP (400: a malformed chunk size or extension). The connection is
// closed after the answer: what is left on it is not a request.
func (x *exchange) bodyFailed(err error) {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Before clientGone: net/http cancels the request's context on any
		// read error, the deadline's included.
		x.refuseUnread(wire.NewError(http.StatusRequestTimeout, wire.TypeInvalidRequest, "request_timeout",
			"The request body did not arrive within "+x.table.Config.Server.ReadBodyTimeout.D().String()+"."))
	case x.clientGone() || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		x.outcome = "client_closed"
	default:
		x.refuseUnread(wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "invalid_request_body",
			"The request body could not be read: its HTTP framing is malformed (such as a bad chunk size)."))
	}
}

// setReadDeadline sets the read deadline of w's connection, as
// http.ResponseController does but without allocating one, and reports
// whether w has one (a ResponseRecorder in tests has not).
func setReadDeadline(w http.ResponseWriter, t time.Time) bool {
	d, ok := w.(interface{ SetReadDeadline(time.Time) error })
	return ok && d.SetReadDeadline(t) == nil
}
