package breaker

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// ErrorKind is how a request failed without a response.
type ErrorKind uint8

// The error kinds a rule can count, as Azure API Management's circuit breaker
// errorReasons do.
const (
	NoError    ErrorKind = iota
	Timeout              // the backend did not answer in time
	Connection           // dialing, TLS, or the connection failed
)

// String returns "none", "timeout" or "connection error".
func (k ErrorKind) String() string {
	switch k {
	case NoError:
		return "none"
	case Timeout:
		return "timeout"
	case Connection:
		return "connection error"
	}
	return "error kind " + strconv.Itoa(int(k))
}

// StatusRange is an inclusive range of HTTP statuses; {429, 429} is one status.
type StatusRange struct{ Lo, Hi int }

// Rule says which outcomes are failures and how many of them trip the
// breaker, after Azure API Management's circuit breaker rule. A rule with
// neither Failures nor Percentage, or with no positive Interval, never trips
// and is ignored.
type Rule struct {
	// Failures trips the breaker when at least this many failures happened
	// within Interval. 0 turns count mode off.
	Failures int
	// Percentage, from 1 to 100, trips the breaker when at least this
	// percent of the requests within Interval failed, once there were
	// MinRequests of them. 0 turns percentage mode off. With both modes on,
	// either trips the breaker.
	Percentage int
	// MinRequests is how many requests Interval must hold before Percentage
	// applies; below 1 it is 1.
	MinRequests int
	// Interval is the sliding window failures and requests are counted in,
	// exact to a tenth of it (see window).
	Interval time.Duration
	// Statuses are the response statuses that count as failures.
	Statuses []StatusRange
	// Timeouts counts ErrorKind Timeout as a failure.
	Timeouts bool
	// Connection counts ErrorKind Connection as a failure.
	Connection bool
	// TripDuration is how long a trip lasts; at 0 or below the breaker is
	// ready for a probe at once.
	TripDuration time.Duration
	// AcceptRetryAfter trips for the failing outcome's RetryAfter instead of
	// TripDuration when it has one, as Azure's acceptRetryAfter does.
	AcceptRetryAfter bool
	// MaxTripDuration caps a trip whose length comes from RetryAfter (Azure
	// OpenAI has asked for a day); 0 means no cap.
	MaxTripDuration time.Duration
}

// fails reports whether o is a failure by the rule.
func (r *Rule) fails(o Outcome) bool {
	switch {
	case o.Err == Timeout && r.Timeouts, o.Err == Connection && r.Connection:
		return true
	case o.Status == 0:
		return false
	}
	for _, s := range r.Statuses {
		if s.Lo <= o.Status && o.Status <= s.Hi {
			return true
		}
	}
	return false
}

// holds reports whether the failures and requests in w at epoch e trip the
// rule, and the reason (without the rule's number or the last outcome).
func (r *Rule) holds(w *window, e uint64) (string, bool) {
	failures := w.sum(&w.fail, e)
	if r.Failures > 0 && failures >= r.Failures {
		return fmt.Sprintf("%d failures within %v", failures, r.Interval), true
	}
	if r.Percentage > 0 {
		requests := w.sum(&w.req, e)
		if requests > 0 && requests >= r.MinRequests && failures*100 >= r.Percentage*requests {
			return fmt.Sprintf("%d of %d requests failed (%d%%) within %v",
				failures, requests, failures*100/requests, r.Interval), true
		}
	}
	return "", false
}

// trip returns how long a trip for failing outcome o lasts, and a note for
// the reason when o's RetryAfter decided it.
func (r *Rule) trip(o Outcome) (time.Duration, string) {
	if !r.AcceptRetryAfter || o.RetryAfter <= 0 {
		return r.TripDuration, ""
	}
	if r.MaxTripDuration > 0 && o.RetryAfter > r.MaxTripDuration {
		return r.MaxTripDuration, fmt.Sprintf("; retry-after %v capped to %v", o.RetryAfter, r.MaxTripDuration)
	}
	return o.RetryAfter, fmt.Sprintf("; retry-after %v", o.RetryAfter)
}

// ruleSet is a breaker's rules, compiled once. It is immutable.
type ruleSet struct {
	given   []Rule // as passed to New or SetRules, for SetRules to compare
	rules   []Rule // the rules that can trip
	number  []int  // number[i] is rules[i]'s 1-based position in given
	longest time.Duration
	// requests says some rule uses Percentage, so successes are counted;
	// otherwise a success in the closed state writes nothing.
	requests bool
}

func compile(given []Rule) *ruleSet {
	rs := &ruleSet{given: cloneRules(given)}
	for i, r := range rs.given {
		if r.Interval <= 0 || (r.Failures <= 0 && r.Percentage <= 0) {
			continue
		}
		r.MinRequests = max(r.MinRequests, 1)
		rs.rules = append(rs.rules, r)
		rs.number = append(rs.number, i+1)
		rs.longest = max(rs.longest, r.Interval)
		rs.requests = rs.requests || r.Percentage > 0
	}
	return rs
}

func cloneRules(rules []Rule) []Rule {
	c := slices.Clone(rules)
	for i := range c {
		c[i].Statuses = slices.Clone(c[i].Statuses)
	}
	return c
}

// equal reports whether rules are the rules rs was compiled from.
func (rs *ruleSet) equal(rules []Rule) bool {
	return slices.EqualFunc(rs.given, rules, sameRule)
}

// sameRule compares every field of Rule (TestSameRule keeps it complete).
func sameRule(a, b Rule) bool {
	return a.Failures == b.Failures && a.Percentage == b.Percentage && a.MinRequests == b.MinRequests &&
		a.Interval == b.Interval && slices.Equal(a.Statuses, b.Statuses) &&
		a.Timeouts == b.Timeouts && a.Connection == b.Connection && a.TripDuration == b.TripDuration &&
		a.AcceptRetryAfter == b.AcceptRetryAfter && a.MaxTripDuration == b.MaxTripDuration
}

// prefix names rule i in a reason when there is more than one.
func (rs *ruleSet) prefix(i int) string {
	if len(rs.rules) < 2 {
		return ""
	}
	return "rule " + strconv.Itoa(rs.number[i]) + ": "
}

// describe names an outcome in a reason: "status 429", "timeout".
func describe(o Outcome) string {
	switch {
	case o.Status != 0 && o.Err != NoError:
		return "status " + strconv.Itoa(o.Status) + ", " + o.Err.String()
	case o.Status != 0:
		return "status " + strconv.Itoa(o.Status)
	case o.Err != NoError:
		return o.Err.String()
	}
	return "no response"
}
