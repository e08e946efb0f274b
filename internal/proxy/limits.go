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

// admit applies the product's limits before any backend is called: with
// estimation it reserves the prompt's tokens plus max_tokens for each
// choice the request asks for, otherwise it
// checks that no counter is over and charges after the fact. It answers the
// client and reports false when the request may not go on.
func (x *exchange) admit(req wire.Request) bool {
	return x.admitLimits(req) && x.admitBudget()
}

// admitBudget refuses a subscription whose budget for the period is spent.
// The cost is known only once the response is over, so the budget is
// charged after the fact, like Azure's token limits without estimation.
func (x *exchange) admitBudget() bool {
	p := x.subscription.Product
	if p.Budget == nil {
		return true
	}
	d := x.table.Limiter.Admit(x.r.Context(), limit.Request{
		Rules:   []*limit.Rule{p.Budget},
		Subject: limit.Subject{Subscription: x.subscription.Name, Product: p.Name, Model: x.model},
		Now:     x.h.now(),
	})
	x.budget, x.budgeted = d.Reservation, true
	if d.Allowed {
		return true
	}
	if d.StoreError != nil {
		x.rejection = "store_unavailable"
		x.fail(wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "limits_unavailable",
			"Sluice cannot check your budget right now. Retry later."))
		return false
	}
	x.rejection = "budget"
	wait := max(d.Denial.RetryAfter.Round(time.Second), time.Second)
	e := wire.NewError(http.StatusForbidden, wire.TypePermission, "budget_exceeded",
		"The budget of "+strconv.FormatFloat(float64(d.Denial.Limit)/1e6, 'f', -1, 64)+" "+x.table.Prices.Currency+
			" per "+periodName(p.Budget.QuotaPeriod)+" for your subscription is spent. It renews in "+wait.String()+".")
	e.RetryAfterMillis = max(d.Denial.RetryAfter.Milliseconds(), 1)
	x.fail(e)
	return false
}

// admitLimits applies the product's token and request limits.
func (x *exchange) admitLimits(req wire.Request) bool {
	p := x.subscription.Product
	if len(p.Limits) == 0 {
		return true
	}
	var want int64
	if p.Estimate {
		want = x.promptCount()
		if x.op != wire.OpEmbeddings {
			// Every choice (n, or best_of for completions) may run to
			// max_tokens: the backend generates, and bills, them all.
			completion := p.DefaultMaxTokens
			if req.MaxTokens > 0 {
				completion = req.MaxTokens
			}
			want = addCapped(want, mulCapped(completion, req.Choices))
		}
	}
	d := x.table.Limiter.Admit(x.r.Context(), limit.Request{
		Rules:   p.Limits,
		Subject: limit.Subject{Subscription: x.subscription.Name, Product: p.Name, Model: x.model},
		Tokens:  want,
		Now:     x.h.now(),
	})
	x.reservation, x.limited = d.Reservation, true
	x.limitHeaders(p.Headers, d.Remaining, false, 0)
	if d.Remaining.QuotaTokens >= 0 {
		x.h.metrics.QuotaRemaining(x.subscription.Name, d.Remaining.QuotaTokens)
	}
	if d.Allowed {
		if d.StoreError != nil {
			x.outcome = "limits_unavailable_admitted"
		}
		return true
	}
	if d.StoreError != nil {
		x.rejection = "store_unavailable"
		x.fail(wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "limits_unavailable",
			"Sluice cannot check your limits right now. Retry later."))
		return false
	}
	switch d.Denial.Kind {
	case limit.Quota:
		x.rejection = "quota"
	case limit.RequestsPerMinute:
		x.rejection = "requests_per_minute"
	default:
		x.rejection = "tokens_per_minute"
	}
	x.fail(denialError(d.Denial))
	return false
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
		slot int
		name string
		v    int64
		set  bool
	}{
		{hvRemainingTokens, h.RemainingTokens, r.Tokens, r.Tokens >= 0},
		{hvRemainingRequests, h.RemainingRequests, r.Requests, r.Requests >= 0},
		{hvQuotaRemainingTokens, h.QuotaRemainingTokens, r.QuotaTokens, r.QuotaTokens >= 0},
		{hvTokensConsumed, h.TokensConsumed, used, consumed},
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
			x.setHeader(hd.slot, hd.name, all[start:ends[i]])
		}
		start = ends[i]
	}
}

// settleLimits replaces the reservation by the tokens the request used, and
// charges its cost to the budget. With the response headers still to be
// written, they get the remaining limits after it and the tokens consumed.
func (x *exchange) settleLimits(used int64, cost float64, beforeHeaders bool) {
	if x.budgeted {
		x.budgeted = false
		if _, err := x.table.Limiter.Settle(x.r.Context(), x.budget, pricing.Micros(cost), x.h.now()); err != nil {
			x.logger().Warn("charging the budget", "err", err)
		}
	}
	if !x.limited {
		return
	}
	x.limited = false
	// The client may be gone; the charge is made all the same: Settle
	// ignores the context's cancellation.
	rem, err := x.table.Limiter.Settle(x.r.Context(), x.reservation, used, x.h.now())
	if err != nil {
		x.logger().Warn("settling limits", "err", err)
	}
	if beforeHeaders {
		if err != nil {
			rem = limit.Remaining{Tokens: -1, Requests: -1, QuotaTokens: -1}
		}
		x.limitHeaders(x.subscription.Product.Headers, rem, true, used)
	}
}
