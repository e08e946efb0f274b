package proxy

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/balance"
	"github.com/sluice-gateway/sluice/internal/breaker"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// run tries the pool's members until one answers in a way that is not
// retried, or the attempts are spent, and relays the last answer.
func (x *exchange) run(pool *route.Pool, call *backend.Call) error {
	var tried [8]*backend.Backend
	f := balance.Filter{Tried: tried[:0], Regions: x.req.Subscription.Product.Regions, Only: x.served.pin}
	aff := x.affinity(pool)
	if pool.Throttle != nil && x.lowPriority() && !x.waitForCapacity(pool, &f) {
		x.acct.rejection = "low_priority"
		if x.clientGone() {
			return errClientGone
		}
		x.w.Header().Set("X-Sluice-Throttle-Reason", "low-priority")
		e := wire.NewError(http.StatusTooManyRequests, wire.TypeRateLimit, "low_priority_throttled",
			"The backends of the model "+strconv.Quote(x.model)+" are short of capacity and low-priority requests are held back. Retry later.")
		e.RetryAfterMillis = 1000
		return e
	}
	var last *attempt
	// unsent counts attempts whose request was never sent (the backend's
	// credential could not be had): they do not use up retry.attempts, so
	// a credential outage fails over to another member even without
	// retries, and are never tried again on the same member.
	unsent := 0
	for n := 0; n < pool.Retry.Attempts+unsent; n++ {
		b, ticket, ok := x.pick(pool, &f, aff, last != nil && !last.unsent)
		if !ok {
			break
		}
		if last != nil {
			last.close()
		}
		x.served.attempts++
		last = x.send(b, ticket, call)
		x.served.current = last
		f.Tried = append(f.Tried, b)
		if x.clientGone() {
			last.abandon(x.h.now())
			return errClientGone
		}
		if last.unsent {
			unsent++
		}
		if n+1 == pool.Retry.Attempts+unsent || !x.retryable(pool, last) {
			break
		}
		// Tell the breaker now, so that the next pick knows.
		last.report(x.h.now(), last.outcome(x.h.now()))
	}
	if last == nil {
		return x.unavailable(pool, &f)
	}
	return x.deliver(pool, last)
}

// lowPriority reports whether the request is low priority: its product's, or
// lowered by the client with x-priority: low (never raised).
func (x *exchange) lowPriority() bool {
	return x.req.Subscription.Product.LowPriority || strings.EqualFold(x.r.Header.Get("X-Priority"), "low")
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
	if pool.Eligible(&balance.Filter{Regions: f.Regions, Only: f.Only}) != 1 {
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
	if a.unsent {
		return true // another member may have a credential to hand
	}
	if a.err != nil {
		return (a.kind == breaker.Timeout && pool.Retry.Timeout) ||
			(a.kind == breaker.Connection && pool.Retry.Connection)
	}
	return pool.Retry.RetriesStatus(a.status())
}

// unavailable is the 503 for when no member can serve, with Retry-After set
// to when the first one reopens. It names no backend.
func (x *exchange) unavailable(pool *route.Pool, f *balance.Filter) *wire.Error {
	e := wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "no_backend_available",
		"No backend can serve the model "+strconv.Quote(x.model)+" now. Retry later.")
	switch {
	case f.Only != "":
		e.Message = "The backend that holds the previous response is not available now. Retry later."
	case f.Regions != nil && pool.Eligible(&balance.Filter{Regions: f.Regions}) == 0:
		e.Message = "No backend in the regions your subscription may use serves the model " + strconv.Quote(x.model) + "."
	}
	if at := pool.NextAvailable(&balance.Filter{Regions: f.Regions, Only: f.Only}); !at.IsZero() {
		e.RetryAfterMillis = max(at.Sub(x.h.now()).Milliseconds(), 1)
	}
	return e
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
