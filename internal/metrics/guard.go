package metrics

import "github.com/prometheus/client_golang/prometheus"

// GuardStats are the guardrails' counters (package guard), read at scrape
// time.
type GuardStats struct {
	// Checks count content safety checks by product, check (prompt or
	// completion) and result (pass, category, blocklist, attack).
	Checks []GuardCount
	// Errors count service failures by product, check (prompt,
	// completion, pii) and on_error (the Result field).
	Errors []GuardCount
	// Masked count masked values by product and category (the Check field).
	Masked []GuardCount
	// Durations are the checks' calls and total seconds by check.
	Durations []GuardDuration
}

// GuardCount is one labelled count.
type GuardCount struct {
	Product, Check, Result string
	N                      uint64
}

// GuardDuration is the time spent in one kind of check.
type GuardDuration struct {
	Check   string
	Count   uint64
	Seconds float64
}

// guardCollector exports GuardStats.
type guardCollector struct {
	source                          func() GuardStats
	checks, errors, masked, seconds *prometheus.Desc
}

func newGuardCollector(source func() GuardStats) *guardCollector {
	return &guardCollector{
		source: source,
		checks: prometheus.NewDesc("sluice_guard_checks_total",
			"Content safety checks of prompts and answers, by result: pass, or the kind of refusal.", []string{"product", "check", "result"}, nil),
		errors: prometheus.NewDesc("sluice_guard_errors_total",
			"Content safety or PII service calls that failed or timed out, by the on_error applied.", []string{"product", "check", "on_error"}, nil),
		masked: prometheus.NewDesc("sluice_pii_masked_total",
			"Personal data values replaced by placeholders in prompts.", []string{"product", "category"}, nil),
		seconds: prometheus.NewDesc("sluice_guard_check_seconds",
			"Time spent in guardrail checks (service calls included): a count and a sum per check.", []string{"check"}, nil),
	}
}

func (c *guardCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.checks, c.errors, c.masked, c.seconds} {
		ch <- d
	}
}

func (c *guardCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.source()
	for _, n := range s.Checks {
		ch <- prometheus.MustNewConstMetric(c.checks, prometheus.CounterValue, float64(n.N), n.Product, n.Check, n.Result)
	}
	for _, n := range s.Errors {
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(n.N), n.Product, n.Check, n.Result)
	}
	for _, n := range s.Masked {
		ch <- prometheus.MustNewConstMetric(c.masked, prometheus.CounterValue, float64(n.N), n.Product, n.Check)
	}
	for _, d := range s.Durations {
		ch <- prometheus.MustNewConstSummary(c.seconds, d.Count, d.Seconds, nil, d.Check)
	}
}
