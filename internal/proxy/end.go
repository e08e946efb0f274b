package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/metrics"
	"github.com/sluice-gateway/sluice/internal/usage"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// end is the one end of every request, whatever path it took: it recovers
// a panic into a 500, closes the attempt still open (its breaker hears
// nothing of a request cut short by a panic), settles the usage (a request
// that got no answer gives its reservation back), tells the taps, writes
// the access-log line, the metrics, the ledger record and the span, and
// aborts the connection when the response broke off half-way.
func (x *exchange) end() {
	if v := recover(); v != nil {
		x.logger().Error("panic serving request", "panic", v, "stack", string(debug.Stack()))
		if x.started {
			x.abort = true
		}
		x.fail(wire.NewError(http.StatusInternalServerError, wire.TypeServer, "internal_error",
			"Sluice failed to serve the request. The request id is "+x.id+"."))
	}
	if a := x.served.current; a != nil && !a.closed {
		a.abandon(x.h.now())
	}
	x.account(x.h.now())
	if x.table != nil {
		x.table.Done()
	}
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
	if x.req.Subscription != nil {
		attrs = append(attrs, slog.String("subscription", x.req.Subscription.Name))
	}
	if x.model != "" {
		attrs = append(attrs, slog.String("model", x.model))
	}
	if x.served.backend != "" {
		attrs = append(attrs, slog.String("backend", x.served.backend))
	}
	if x.stream {
		attrs = append(attrs, slog.Bool("stream", true))
	}
	if x.served.attempts > 1 {
		attrs = append(attrs, slog.Int("attempts", x.served.attempts))
	}
	if x.acct.settled && x.acct.usage.Total > 0 {
		attrs = append(attrs, slog.Int64("prompt_tokens", x.acct.usage.Prompt), slog.Int64("completion_tokens", x.acct.usage.Completion))
		if x.acct.cost > 0 {
			attrs = append(attrs, slog.Float64("cost", x.acct.cost))
		}
		if x.acct.usage.Estimated {
			attrs = append(attrs, slog.Bool("usage_estimated", true))
		}
	}
	if x.req.cache != "" {
		attrs = append(attrs, slog.String("cache", x.req.cache))
	}
	if x.outcome != "" {
		attrs = append(attrs, slog.String("error", x.outcome))
	}
	attrs = x.promptAttrs(attrs)
	if x.h.lines != nil {
		writeLine(x.h.lines, time.Now(), attrs) // the wall clock, as slog's record has
		return
	}
	x.h.log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

// account writes the access-log line, the metrics and the usage record. A
// bug in them must never take the connection down: the response is out.
func (x *exchange) account(end time.Time) {
	defer func() {
		if v := recover(); v != nil {
			x.logger().Error("panic accounting for a request", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	if x.table != nil {
		x.settle(false)
	}
	x.endTaps()
	x.log(end)
	x.observe(end)
	x.record(end)
	x.endSpan()
}

// endTaps tells the request's taps how it ended.
func (x *exchange) endTaps() {
	if len(x.req.taps) == 0 {
		return
	}
	o := Outcome{Status: x.status, Stream: x.stream, Usage: x.acct.usage, Complete: x.served.complete && !x.abort}
	if o.Status == 0 {
		o.Status = 499
	}
	for _, t := range x.req.taps {
		t.End(o)
	}
}

// endSpan finishes the request's span with what became of the request.
func (x *exchange) endSpan() {
	if x.span == nil {
		return
	}
	x.span.SetStatusCode(x.status)
	x.span.SetUsage(x.acct.usage.Prompt, x.acct.usage.Completion)
	if x.served.respModel != "" {
		x.span.SetResponseModel(x.served.respModel)
	}
	if x.req.Subscription != nil {
		x.span.SetAttr("sluice.subscription", x.req.Subscription.Name)
	}
	if x.served.backend != "" {
		x.span.SetAttr("sluice.backend", x.served.backend)
	}
	if x.req.cache != "" {
		x.span.SetAttr("sluice.cache", x.req.cache)
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
		Operation: x.req.Op.String(), Backend: x.served.backend, Deployment: x.served.deployment,
		Status: x.status, Stream: x.stream, Attempts: x.served.attempts, LimitRejection: x.acct.rejection,
		InputTokens: x.acct.usage.Prompt, OutputTokens: x.acct.usage.Completion, CachedTokens: x.acct.usage.Cached,
		Duration: end.Sub(x.start), ClientIP: x.clientIP(),
	}
	if m.Status == 0 {
		m.Status = 499
	}
	if x.modelKnown {
		m.Model = x.model
	}
	if x.req.Subscription != nil {
		m.Subscription, m.Product = x.req.Subscription.Name, x.req.Subscription.Product.Name
	}
	if x.table != nil {
		if b, ok := x.table.Backends[x.served.backend]; ok {
			m.Region = b.Region
		}
	}
	if !x.firstByte.IsZero() {
		m.TimeToFirstToken = x.firstByte.Sub(x.start)
	}
	if x.req.Op != wire.OpUnknown {
		m.Overhead = max(m.Duration-x.served.backendTime, 0)
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
			a, err := forwardedAddr(strings.TrimSpace(parts[j]))
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

// forwardedAddr reads an X-Forwarded-For entry: an address, or an address
// and port as some proxies write it (Azure Application Gateway: ip:port).
func forwardedAddr(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, nil
	}
	ap, err := netip.ParseAddrPort(s)
	return ap.Addr(), err
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
	if x.h.ledger == nil || x.req.Subscription == nil || x.req.Op == wire.OpUnknown || x.model == "" {
		return
	}
	r := usage.Record{
		RequestID: x.recordID, ClientRequestID: x.clientID, Time: x.start.UTC(),
		Subscription: x.req.Subscription.Name, Product: x.req.Subscription.Product.Name,
		Model: x.model, Deployment: x.served.deployment, Backend: x.served.backend,
		Status: x.status, Stream: x.stream,
		PromptTokens: x.acct.usage.Prompt, CompletionTokens: x.acct.usage.Completion, TotalTokens: x.acct.usage.Total,
		CachedTokens: x.acct.usage.Cached, ReasoningTokens: x.acct.usage.Reasoning, Estimated: x.acct.usage.Estimated,
		Cache: x.req.cache, Attempts: x.served.attempts, Latency: end.Sub(x.start), Overhead: max(end.Sub(x.start)-x.served.backendTime, 0),
		Cost: x.acct.cost, Currency: x.table.Prices.Currency,
		ClientIP: x.clientIP(),
		UserID:   wire.CleanText(x.r.Header.Get("X-User-Id"), wire.MaxIDBytes),
		AppID:    wire.CleanText(x.r.Header.Get("X-App-Id"), wire.MaxIDBytes),
	}
	if r.Status == 0 {
		r.Status = 499
	}
	if x.acct.saved.Total > 0 {
		r.SavedTokens = x.acct.saved.Total
		r.SavedCost = x.table.Prices.Cost(x.req.Model, x.acct.saved)
	}
	if b, ok := x.table.Backends[x.served.backend]; ok {
		r.Region = b.Region
	}
	if !x.firstByte.IsZero() {
		r.TimeToFirstByte = x.firstByte.Sub(x.start)
	}
	x.h.ledger.Add(r)
}
