package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// breakerStates are the values of sluice_backend_breaker_state's state label.
var breakerStates = [...]string{"closed", "open", "half-open"}

// backendCollector exports the live backends at scrape time: the values are
// read from the source, never copied into gauges, so a scrape sees the
// routing table in force and a backend removed by a reload disappears.
type backendCollector struct {
	source                                               BackendSource
	breaker, inFlight, latency, requests, errs, credErrs *prometheus.Desc
	credRefreshes, credRefreshErrs, credExpiry           *prometheus.Desc
}

func newBackendCollector(source BackendSource) *backendCollector {
	l := []string{"backend", "region"}
	return &backendCollector{
		source: source,
		breaker: prometheus.NewDesc("sluice_backend_breaker_state",
			"Circuit breaker state of the backend: 1 for the state it is in, 0 for the others.",
			[]string{"backend", "region", "state"}, nil),
		inFlight: prometheus.NewDesc("sluice_backend_in_flight_requests",
			"Requests the backend is serving now.", l, nil),
		latency: prometheus.NewDesc("sluice_backend_latency_seconds",
			"Moving average of the backend's time to first byte, as least_latency balancing sees it; 0 before its first response.", l, nil),
		requests: prometheus.NewDesc("sluice_backend_requests_total",
			"Requests sent to the backend, retries included.", l, nil),
		credErrs: prometheus.NewDesc("sluice_backend_credential_errors_total",
			"Requests not sent to the backend because its credential could not be had (a token endpoint down); never counted against its breaker.",
			[]string{"backend", "region"}, nil),
		errs: prometheus.NewDesc("sluice_backend_errors_total",
			"Requests to the backend that failed: transport errors, broken responses and statuses its breaker counts as failures.", l, nil),
		credRefreshes: prometheus.NewDesc("sluice_backend_credential_refreshes_total",
			"Tokens the backend's token credential (managed identity, client credentials, OAuth2) fetched.", l, nil),
		credRefreshErrs: prometheus.NewDesc("sluice_backend_credential_refresh_errors_total",
			"Token fetches of the backend's token credential that failed; the token in force serves meanwhile while it is valid.", l, nil),
		credExpiry: prometheus.NewDesc("sluice_backend_credential_expiry_seconds",
			"Seconds until the backend's token in force expires; 0 when it has none.", l, nil),
	}
}

func (c *backendCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.breaker
	ch <- c.inFlight
	ch <- c.latency
	ch <- c.requests
	ch <- c.errs
	ch <- c.credErrs
	ch <- c.credRefreshes
	ch <- c.credRefreshErrs
	ch <- c.credExpiry
}

func (c *backendCollector) Collect(ch chan<- prometheus.Metric) {
	backends := c.source()
	seen := make(map[string]bool, len(backends))
	for _, b := range backends {
		// Names are unique in a valid config; a duplicate would fail the
		// whole scrape, so the first one wins.
		if seen[b.Name] {
			continue
		}
		seen[b.Name] = true
		for _, st := range breakerStates {
			v := 0.0
			if b.Breaker == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.breaker, prometheus.GaugeValue, v, b.Name, b.Region, st)
		}
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(b.InFlight), b.Name, b.Region)
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, b.Latency.Seconds(), b.Name, b.Region)
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(b.Requests), b.Name, b.Region)
		ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(b.Errors), b.Name, b.Region)
		ch <- prometheus.MustNewConstMetric(c.credErrs, prometheus.CounterValue, float64(b.CredentialErrors), b.Name, b.Region)
		if b.TokenCredential {
			ch <- prometheus.MustNewConstMetric(c.credRefreshes, prometheus.CounterValue, float64(b.CredentialRefreshes), b.Name, b.Region)
			ch <- prometheus.MustNewConstMetric(c.credRefreshErrs, prometheus.CounterValue, float64(b.CredentialRefreshErrors), b.Name, b.Region)
			ch <- prometheus.MustNewConstMetric(c.credExpiry, prometheus.GaugeValue, max(b.CredentialExpiry.Seconds(), 0), b.Name, b.Region)
		}
	}
}

// tokenCollector exports the auth.jwt providers' counters.
type tokenCollector struct {
	source                           func() []TokenProviderStats
	tokens, fetches, fetchErrs, keys *prometheus.Desc
}

func newTokenCollector(source func() []TokenProviderStats) *tokenCollector {
	return &tokenCollector{
		source: source,
		tokens: prometheus.NewDesc("sluice_auth_tokens_total",
			"Client bearer tokens judged by the provider, by result: accepted, or the check that failed (expired, audience, signature, ...).",
			[]string{"provider", "result"}, nil),
		fetches: prometheus.NewDesc("sluice_auth_jwks_fetches_total",
			"Fetches of the provider's discovery document and key set.", []string{"provider"}, nil),
		fetchErrs: prometheus.NewDesc("sluice_auth_jwks_fetch_errors_total",
			"Fetches of the provider's key set that failed; the keys known stay in force.", []string{"provider"}, nil),
		keys: prometheus.NewDesc("sluice_auth_jwks_keys",
			"Signing keys of the provider known now.", []string{"provider"}, nil),
	}
}

func (c *tokenCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.tokens
	ch <- c.fetches
	ch <- c.fetchErrs
	ch <- c.keys
}

func (c *tokenCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.source() {
		for result, n := range p.Results {
			ch <- prometheus.MustNewConstMetric(c.tokens, prometheus.CounterValue, float64(n), p.Name, result)
		}
		ch <- prometheus.MustNewConstMetric(c.fetches, prometheus.CounterValue, float64(p.Fetches), p.Name)
		ch <- prometheus.MustNewConstMetric(c.fetchErrs, prometheus.CounterValue, float64(p.FetchErrors), p.Name)
		ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(p.Keys), p.Name)
	}
}

// ledgerCollector exports the usage ledger's state, read once per scrape so
// the values belong to the same moment.
type ledgerCollector struct {
	source                                       func() LedgerStats
	depth, journal, writeErrs, dropped, degraded *prometheus.Desc
}

func newLedgerCollector(source func() LedgerStats) *ledgerCollector {
	return &ledgerCollector{
		source: source,
		depth: prometheus.NewDesc("sluice_usage_queue_depth",
			"Usage records waiting to be written to the usage store.", nil, nil),
		journal: prometheus.NewDesc("sluice_usage_journal_bytes",
			"Size of the on-disk journal that holds usage records the store has not committed yet.", nil, nil),
		writeErrs: prometheus.NewDesc("sluice_usage_write_errors_total",
			"Writes to the usage store that failed.", nil, nil),
		dropped: prometheus.NewDesc("sluice_usage_dropped_total",
			"Usage records lost because neither the journal nor the usage store took them.", nil, nil),
		degraded: prometheus.NewDesc("sluice_usage_degraded",
			"1 while the usage store does not answer and usage records wait in the journal, else 0.", nil, nil),
	}
}

func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.journal
	ch <- c.writeErrs
	ch <- c.dropped
	ch <- c.degraded
}

func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.source()
	degraded := 0.0
	if s.Degraded {
		degraded = 1
	}
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.QueueDepth))
	ch <- prometheus.MustNewConstMetric(c.journal, prometheus.GaugeValue, float64(s.JournalBytes))
	ch <- prometheus.MustNewConstMetric(c.writeErrs, prometheus.CounterValue, float64(s.WriteErrors))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(c.degraded, prometheus.GaugeValue, degraded)
}

// connectionCollector exports the client listener's counters, read once per
// scrape.
type connectionCollector struct {
	source                                   func() ConnectionStats
	open, accepted, refused, bad, handshakes *prometheus.Desc
}

func newConnectionCollector(source func() ConnectionStats) *connectionCollector {
	return &connectionCollector{
		source: source,
		open: prometheus.NewDesc("sluice_client_connections",
			"Client connections open now, idle keep-alive ones included.", nil, nil),
		accepted: prometheus.NewDesc("sluice_client_connections_accepted_total",
			"Client connections accepted and handed to the server.", nil, nil),
		refused: prometheus.NewDesc("sluice_client_connections_refused_total",
			"Client connections answered 503 and closed before any request was read, by the cap they were over.", []string{"reason"}, nil),
		handshakes: prometheus.NewDesc("sluice_client_tls_handshakes_failed_total",
			"TLS handshakes on the client listener that failed: plain HTTP sent to it, or another failure (version, suite, client certificate).", []string{"reason"}, nil),
		bad: prometheus.NewDesc("sluice_client_requests_refused_total",
			"Client requests refused before reaching the API: ambiguous framing (a smuggling attempt), or what net/http could not read.", []string{"reason"}, nil),
	}
}

func (c *connectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.open
	ch <- c.accepted
	ch <- c.refused
	ch <- c.bad
	ch <- c.handshakes
}

func (c *connectionCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.source()
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(s.Open))
	ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(s.Accepted))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.RefusedMax), "max_connections")
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.RefusedPerIP), "max_connections_per_ip")
	ch <- prometheus.MustNewConstMetric(c.bad, prometheus.CounterValue, float64(s.Ambiguous), "ambiguous_framing")
	ch <- prometheus.MustNewConstMetric(c.bad, prometheus.CounterValue, float64(s.Malformed), "malformed")
	ch <- prometheus.MustNewConstMetric(c.handshakes, prometheus.CounterValue, float64(s.PlainHTTP), "plain_http")
	ch <- prometheus.MustNewConstMetric(c.handshakes, prometheus.CounterValue, float64(s.Handshake), "handshake")
}

// limitCollector exports the limiter's settlement queue and fallback, read
// once per scrape.
type limitCollector struct {
	source                                               func() LimitStats
	down, queue, queued, landed, dropped, expired, retry *prometheus.Desc
	fallback                                             *prometheus.Desc
}

func newLimitCollector(source func() LimitStats) *limitCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &limitCollector{
		source:   source,
		down:     d("sluice_limit_store_down", "1 while the limit store failed and its queue has not drained: under fail_open each instance limits by its own count meanwhile."),
		queue:    d("sluice_limit_settle_queue", "Settlements waiting to be sent to the limit store again."),
		queued:   d("sluice_limit_settles_queued_total", "Settlements queued because the limit store did not take them, or was down."),
		landed:   d("sluice_limit_settles_landed_total", "Queued settlements the limit store took."),
		dropped:  d("sluice_limit_settles_dropped_total", "Queued settlements given up (the queue was full, or shutdown came first): the store's counts lack their usage."),
		expired:  d("sluice_limit_settles_expired_total", "Queued settlements whose windows had all ended before the store took them."),
		retry:    d("sluice_limit_settle_retry_errors_total", "Sends of queued settlements that failed."),
		fallback: d("sluice_limit_fallback_decisions_total", "Requests decided by the instance's own count while the limit store was down (fail_open).", "decision"),
	}
}

func (c *limitCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.down, c.queue, c.queued, c.landed, c.dropped, c.expired, c.retry, c.fallback} {
		ch <- d
	}
}

func (c *limitCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.source()
	down := 0.0
	if s.StoreDown {
		down = 1
	}
	ch <- prometheus.MustNewConstMetric(c.down, prometheus.GaugeValue, down)
	ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(s.QueueLen))
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.CounterValue, float64(s.Queued))
	ch <- prometheus.MustNewConstMetric(c.landed, prometheus.CounterValue, float64(s.Landed))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(c.expired, prometheus.CounterValue, float64(s.Expired))
	ch <- prometheus.MustNewConstMetric(c.retry, prometheus.CounterValue, float64(s.RetryErrors))
	ch <- prometheus.MustNewConstMetric(c.fallback, prometheus.CounterValue, float64(s.FallbackAdmitted), "admitted")
	ch <- prometheus.MustNewConstMetric(c.fallback, prometheus.CounterValue, float64(s.FallbackRefused), "refused")
}
