package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-gateway/sluice/internal/limit"
	"github.com/sluice-gateway/sluice/internal/pricing"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// admit applies the product's limits and budget before any backend is
// called, and returns why the request may not go on, if it may not.
func (x *exchange) admit() error {
	if err := x.admitLimits(); err != nil {
		return err
	}
	return x.admitBudget()
}

// admitBudget refuses a subscription whose budget for the period is spent.
// The cost is known only once the response is over, so the budget is
// charged after the fact, like Azure's token limits without estimation.
func (x *exchange) admitBudget() error {
	sub := x.req.Subscription
	p := sub.Product
	if p.Budget == nil {
		return nil
	}
	d := x.table.Limiter.Admit(x.r.Context(), limit.Request{
		Rules:   []*limit.Rule{p.Budget},
		Subject: limit.Subject{Subscription: sub.Name, Product: p.Name, Model: x.req.Model},
		Now:     x.h.now(),
	})
	x.acct.budget, x.acct.budgeted = d.Reservation, true
	if d.Allowed {
		return nil
	}
	if d.StoreError != nil {
		x.acct.rejection = "store_unavailable"
		return wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "limits_unavailable",
			"Sluice cannot check your budget right now. Retry later.")
	}
	x.acct.rejection = "budget"
	wait := max(d.Denial.RetryAfter.Round(time.Second), time.Second)
	e := wire.NewError(http.StatusForbidden, wire.TypePermission, "budget_exceeded",
		"The budget of "+strconv.FormatFloat(float64(d.Denial.Limit)/1e6, 'f', -1, 64)+" "+x.table.Prices.Currency+
			" per "+periodName(p.Budget.QuotaPeriod)+" for your subscription is spent. It renews in "+wait.String()+".")
	e.RetryAfterMillis = max(d.Denial.RetryAfter.Milliseconds(), 1)
	e.NoRetry = true // spent until the period turns
	return e
}

// admitLimits applies the product's token and request limits: with
// estimation it reserves the prompt's tokens plus max_tokens for each
// choice the request asks for, otherwise it checks that no counter is over
// and charges after the fact.
func (x *exchange) admitLimits() error {
	sub := x.req.Subscription
	p := sub.Product
	if len(p.Limits) == 0 {
		return nil
	}
	var want int64
	if p.Estimate {
		want = x.promptCount()
		if x.req.Op != wire.OpEmbeddings {
			// Every choice (n, or best_of for completions) may run to
			// max_tokens: the backend generates, and bills, them all.
			completion := p.DefaultMaxTokens
			if x.req.Parsed.MaxTokens > 0 {
				completion = x.req.Parsed.MaxTokens
			}
			want = addCapped(want, mulCapped(completion, x.req.Parsed.Choices))
		}
	}
	d := x.table.Limiter.Admit(x.r.Context(), limit.Request{
		Rules:   p.Limits,
		Subject: limit.Subject{Subscription: sub.Name, Product: p.Name, Model: x.req.Model},
		Tokens:  want,
		Now:     x.h.now(),
	})
	x.acct.reservation, x.acct.limited = d.Reservation, true
	x.limitHeaders(p.Headers, d.Remaining, false, 0)
	if d.Remaining.QuotaTokens >= 0 {
		x.h.metrics.QuotaRemaining(sub.Name, d.Remaining.QuotaTokens)
	}
	if d.Allowed {
		if d.StoreError != nil {
			x.outcome = "limits_unavailable_admitted"
		}
		return nil
	}
	if d.StoreError != nil {
		x.acct.rejection = "store_unavailable"
		return wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "limits_unavailable",
			"Sluice cannot check your limits right now. Retry later.")
	}
	switch d.Denial.Kind {
	case limit.Quota:
		x.acct.rejection = "quota"
	case limit.RequestsPerMinute:
		x.acct.rejection = "requests_per_minute"
	default:
		x.acct.rejection = "tokens_per_minute"
	}
	return denialError(d.Denial)
}

// admitRequest counts an answer given without a backend (a cache hit) as
// one request against the product's requests-per-minute limits, charging
// no tokens.
func (x *exchange) admitRequest() error {
	sub := x.req.Subscription
	p := sub.Product
	if len(p.Limits) == 0 {
		return nil
	}
	d := x.table.Limiter.Admit(x.r.Context(), limit.Request{
		Rules:        p.Limits,
		Subject:      limit.Subject{Subscription: sub.Name, Product: p.Name, Model: x.req.Model},
		RequestsOnly: true,
		Now:          x.h.now(),
	})
	x.acct.reservation, x.acct.limited = d.Reservation, true
	x.limitHeaders(p.Headers, d.Remaining, false, 0)
	if d.Allowed {
		return nil
	}
	if d.StoreError != nil {
		return nil // a hit costs the backends nothing: served all the same
	}
	x.acct.rejection = "requests_per_minute"
	return denialError(d.Denial)
}

// denialError is the client's error for a limit the request does not fit.
func denialError(dn *limit.Denial) *wire.Error {
	scope := scopeOf(dn.Rule)
	wait := dn.RetryAfter.Round(time.Second)
	if wait < time.Second {
		wait = time.Second
	}
	var e *wire.Error
	switch {
	case dn.TooLarge && dn.Kind == limit.Quota:
		e = wire.NewError(http.StatusForbidden, wire.TypePermission, "quota_exceeded",
			"This request needs "+itoa(dn.Want)+" tokens, more than the whole token quota of "+itoa(dn.Limit)+
				" tokens per "+periodName(dn.Rule.QuotaPeriod)+" for "+scope+" allows. Lower max_tokens or shorten the prompt.")
	case dn.TooLarge:
		e = wire.NewError(http.StatusTooManyRequests, wire.TypeRateLimit, "rate_limit_exceeded",
			"This request needs "+itoa(dn.Want)+" tokens, more than the limit of "+itoa(dn.Limit)+
				" tokens per minute for "+scope+" allows at all: it can never fit. Lower max_tokens or shorten the prompt.")
	case dn.Kind == limit.Quota:
		e = wire.NewError(http.StatusForbidden, wire.TypePermission, "quota_exceeded",
			"The token quota of "+itoa(dn.Limit)+" tokens per "+periodName(dn.Rule.QuotaPeriod)+" for "+scope+
				" is used up. It renews in "+wait.String()+".")
	case dn.Kind == limit.RequestsPerMinute:
		e = wire.NewError(http.StatusTooManyRequests, wire.TypeRateLimit, "rate_limit_exceeded",
			"The limit of "+itoa(dn.Limit)+" requests per minute for "+scope+" is reached. Retry after "+wait.String()+".")
	default:
		e = wire.NewError(http.StatusTooManyRequests, wire.TypeRateLimit, "rate_limit_exceeded",
			"The limit of "+itoa(dn.Limit)+" tokens per minute for "+scope+" is reached ("+itoa(dn.Used)+
				" used, this request needs "+itoa(dn.Want)+"). Retry after "+wait.String()+".")
	}
	if !dn.TooLarge {
		e.RetryAfterMillis = max(dn.RetryAfter.Milliseconds(), 1)
	}
	// A request no window can hold never succeeds, and a quota is spent
	// until its period turns: an SDK's retries within seconds cannot help.
	e.NoRetry = dn.TooLarge || dn.Kind == limit.Quota
	return e
}

func scopeOf(r *limit.Rule) string {
	switch r.Key {
	case limit.KeyProduct:
		return "your product"
	case limit.KeySubscriptionModel:
		return "your subscription on this model"
	case limit.KeyGlobal:
		return "the gateway"
	}
	return "your subscription"
}

func periodName(p limit.Period) string {
	switch p {
	case limit.Hour:
		return "hour"
	case limit.Day:
		return "day"
	case limit.Week:
		return "week"
	case limit.Month:
		return "month"
	case limit.Year:
		return "year"
	}
	return "minute"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// maxReserve caps what one request reserves. A client's max_tokens may be
// near the top of int64, and neither the reservation nor a store's
// used+reserved sum may wrap around to a negative number; no limit is
// anywhere near this large, so a capped request is refused as too large all
// the same.
const maxReserve = 1 << 50

// mulCapped and addCapped are a*b and a+b for non-negative a and b, capped at
// maxReserve.
func mulCapped(a, b int64) int64 {
	if a != 0 && b > maxReserve/a {
		return maxReserve
	}
	return min(a*b, maxReserve)
}

func addCapped(a, b int64) int64 {
	return min(min(a, maxReserve)+min(b, maxReserve), maxReserve) // no overflow: both at most 2^50
}

// limitHeaders sets the remaining-limit headers, -1 meaning no such limit,
// and with consumed the tokens-consumed header to used. The numbers share
// one string, so that the headers cost one allocation together.
func (x *exchange) limitHeaders(h route.Headers, r limit.Remaining, consumed bool, used int64) {
	headers := [...]struct {
		name string
		v    int64
		set  bool
	}{
		{h.RemainingTokens, r.Tokens, r.Tokens >= 0},
		{h.RemainingRequests, r.Requests, r.Requests >= 0},
		{h.QuotaRemainingTokens, r.QuotaTokens, r.QuotaTokens >= 0},
		{h.TokensConsumed, used, consumed},
	}
	var buf [len(headers) * 20]byte // 20: the longest int64, "-9223372036854775808"
	var ends [len(headers)]int
	b := buf[:0]
	for i, hd := range headers {
		if hd.set {
			b = strconv.AppendInt(b, hd.v, 10)
		}
		ends[i] = len(b)
	}
	all, start := string(b), 0
	for i, hd := range headers {
		if hd.set {
			x.head.set(hd.name, all[start:ends[i]])
		}
		start = ends[i]
	}
}

// settleLimits replaces the reservation by the tokens the request used, and
// charges its cost to the budget. With the response headers still to be
// written, they get the remaining limits after it and the tokens consumed.
func (x *exchange) settleLimits(used int64, cost float64, beforeHeaders bool) {
	if x.acct.budgeted {
		x.acct.budgeted = false
		if _, err := x.table.Limiter.Settle(x.r.Context(), x.acct.budget, pricing.Micros(cost), x.h.now()); err != nil {
			x.logger().Warn("charging the budget", "err", err)
		}
	}
	if !x.acct.limited {
		return
	}
	x.acct.limited = false
	// The client may be gone; the charge is made all the same: Settle
	// ignores the context's cancellation.
	rem, err := x.table.Limiter.Settle(x.r.Context(), x.acct.reservation, used, x.h.now())
	if err != nil {
		x.logger().Warn("settling limits", "err", err)
	}
	if beforeHeaders {
		if err != nil {
			rem = limit.Remaining{Tokens: -1, Requests: -1, QuotaTokens: -1}
		}
		x.limitHeaders(x.req.Subscription.Product.Headers, rem, true, used)
	}
}
