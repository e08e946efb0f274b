package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/breaker"
	"github.com/sluice-gateway/sluice/internal/sse"
	"github.com/sluice-gateway/sluice/internal/trace"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// attempt is one try of a request on one backend. Its breaker ticket is
// reported exactly once: when it is retried, abandoned or delivered.
type attempt struct {
	x      *exchange
	b      *backend.Backend
	ticket breaker.Ticket
	start  time.Time

	cancel   context.CancelFunc
	timer    *time.Timer // the first-byte, whole-request or idle deadline
	whole    *time.Timer // the stream_timeout deadline, when there is one
	timedOut atomic.Bool

	resp     *http.Response
	rd       *sse.Reader // set for an event stream
	first    []byte      // its first event
	firstErr error       // what reading the first event ended with (nil or io.EOF)

	err    error // the transport error, when there is no usable response
	kind   breaker.ErrorKind
	unsent bool // err is why the request could not be built: not the backend's failure

	sent, reported, closed bool
	span                   *trace.Span // the attempt's client span; nil when not tracing
}

// send tries call on b. It returns once the response headers have arrived,
// and for an event stream once its first event has, so that a stream that
// breaks before its first byte can still be retried.
func (x *exchange) send(b *backend.Backend, t breaker.Ticket, call *backend.Call) *attempt {
	a := &x.served.firstAttempt // most requests make one attempt: it comes with the exchange
	if x.served.attempts > 1 {
		a = new(attempt)
	}
	*a = attempt{x: x, b: b, ticket: t, start: x.h.now()}
	ctx, cancel := context.WithCancel(x.ctx)
	a.cancel = cancel
	a.timer = time.AfterFunc(min(b.FirstByteTimeout, b.Timeout), a.expire)

	req, err := b.NewRequest(ctx, call)
	if err != nil {
		// The backend's credential could not be had (a token endpoint
		// down), or a config the validation let through wrongly: the
		// request was not sent, and the backend is not to blame.
		if e := (*wire.Error)(nil); errors.As(err, &e) {
			x.logger().Info("backend refused the request before sending", "backend", b.Name, "err", err)
		} else {
			x.logger().Error("building backend request", "backend", b.Name, "err", err)
		}
		a.err, a.unsent = err, true
		return a
	}
	a.sent = true
	if x.span != nil {
		a.span = x.h.tracer.StartAttempt(x.ctx, req.Header, x.req.Op.String(), x.req.Model, b.Name, b.Kind.String(), b.URL(), x.served.attempts)
	}
	resp, err := b.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && b.Renew(req.Header) {
		// The backend refused Sluice's token (revoked, or rotated early):
		// once more, with a fresh one.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		b.Done(false)
		if req, err = b.NewRequest(ctx, call); err != nil {
			x.logger().Warn("renewing the backend credential after a 401", "backend", b.Name, "err", err)
			a.err, a.unsent, a.sent = err, true, false
			return a
		}
		resp, err = b.RoundTrip(req)
	}
	if err != nil {
		a.fail(err)
		return a
	}
	a.resp = resp
	now := x.h.now()
	ttfb := now.Sub(a.start)
	var retryAfter time.Duration
	if resp.StatusCode == http.StatusTooManyRequests {
		retryAfter, _ = wire.RetryAfter(resp.Header, now)
	}
	b.State.ObserveCapacity(resp.Header, resp.StatusCode, now, retryAfter)
	if isEventStream(resp.Header) && resp.StatusCode < 300 {
		a.rd = sse.NewReader(resp.Body)
		a.first, a.firstErr = a.rd.Next()
		if a.firstErr != nil && (a.firstErr != io.EOF || len(a.first) == 0) {
			err := a.firstErr
			resp.Body.Close()
			a.resp, a.rd = nil, nil
			a.fail(err)
			return a
		}
		if b.StreamTimeout > 0 {
			a.whole = time.AfterFunc(b.StreamTimeout-x.h.now().Sub(a.start), a.expire)
		}
		a.idle()
	} else {
		a.timer.Reset(b.Timeout - x.h.now().Sub(a.start))
	}
	if resp.StatusCode < 300 {
		b.State.ObserveLatency(ttfb)
	}
	return a
}

// expire runs when a deadline passes: it cancels the backend request.
func (a *attempt) expire() {
	a.timedOut.Store(true)
	a.cancel()
}

// idle restarts the silence deadline of a stream after an event.
func (a *attempt) idle() { a.timer.Reset(a.b.Timeout) }

// fail records a transport error.
func (a *attempt) fail(err error) {
	a.err = err
	a.kind = a.classify(err)
}

// classify tells a timeout from a connection failure, by type, never by message.
func (a *attempt) classify(err error) breaker.ErrorKind {
	if a.timedOut.Load() {
		return breaker.Timeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return breaker.Timeout // the connect timeout
	}
	return breaker.Connection
}

// status is the backend's status as Sluice treats it: a backend that
// refuses Sluice's own credential (401, 403) has failed like a 5xx, and its
// answer must not reach a client, who would think its own key bad.
func (a *attempt) status() int {
	if a.authFailed() {
		return http.StatusBadGateway
	}
	return a.resp.StatusCode
}

// authFailed reports whether the backend refused Sluice's credential.
func (a *attempt) authFailed() bool {
	return a.resp != nil && (a.resp.StatusCode == http.StatusUnauthorized || a.resp.StatusCode == http.StatusForbidden)
}

// outcome is what the breaker hears of the attempt as it stands.
func (a *attempt) outcome(now time.Time) breaker.Outcome {
	if a.unsent {
		return breaker.Outcome{Ignore: true}
	}
	if a.err != nil {
		return breaker.Outcome{Err: a.kind}
	}
	o := breaker.Outcome{Status: a.status()}
	if o.Status >= 400 {
		o.RetryAfter, _ = wire.RetryAfter(a.resp.Header, now)
	}
	return o
}

// report tells the backend's breaker and counters how the attempt went; only
// the first call counts.
func (a *attempt) report(now time.Time, o breaker.Outcome) {
	if a.reported {
		return
	}
	a.reported = true
	if a.sent {
		a.b.Done(!o.Ignore && (o.Err != breaker.NoError || o.Status >= 500 || o.Status == http.StatusTooManyRequests))
	}
	a.b.State.Breaker.Done(a.ticket, now, o)
}

// abandon ends an attempt the client walked away from: it counts as neither
// success nor failure.
func (a *attempt) abandon(now time.Time) {
	a.report(now, breaker.Outcome{Ignore: true})
	a.close()
}

// close releases the attempt's response and timers, and adds the time the
// backend took to the exchange's.
func (a *attempt) close() {
	if a.closed {
		return
	}
	a.closed = true
	a.x.served.backendTime += a.x.h.now().Sub(a.start)
	if a.span != nil {
		if a.resp != nil {
			a.span.SetStatusCode(a.resp.StatusCode)
		} else if a.err != nil {
			a.span.SetError(a.kind.String())
		}
		a.span.End()
	}
	a.timer.Stop()
	if a.whole != nil {
		a.whole.Stop()
	}
	if a.resp != nil {
		a.resp.Body.Close()
	}
	a.cancel()
}
