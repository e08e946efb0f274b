package metrics

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// liveBackends stands in for the routing table: the test changes it between
// scrapes as requests and reloads would.
type liveBackends struct {
	mu       sync.Mutex // guards backends
	backends []BackendState
}

func (l *liveBackends) set(b ...BackendState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.backends = b
}

func (l *liveBackends) read() []BackendState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.backends
}

var backendMetrics = []string{
	"sluice_backend_breaker_state", "sluice_backend_in_flight_requests", "sluice_backend_latency_seconds",
	"sluice_backend_requests_total", "sluice_backend_errors_total",
}

const backendHelp = `# HELP sluice_backend_breaker_state Circuit breaker state of the backend: 1 for the state it is in, 0 for the others.
# TYPE sluice_backend_breaker_state gauge
`

func TestBackendCollectorReadsLiveState(t *testing.T) {
	live := &liveBackends{}
	live.set(
		BackendState{Name: "azure-eu", Region: "westeurope", Breaker: "closed", InFlight: 3, Latency: 250 * time.Millisecond, Requests: 10, Errors: 1},
		BackendState{Name: "openai", Breaker: "open", Requests: 4, Errors: 4},
	)
	m := New(Options{Backends: live.read})

	want := backendHelp + `sluice_backend_breaker_state{backend="azure-eu",region="westeurope",state="closed"} 1
sluice_backend_breaker_state{backend="azure-eu",region="westeurope",state="half-open"} 0
sluice_backend_breaker_state{backend="azure-eu",region="westeurope",state="open"} 0
sluice_backend_breaker_state{backend="openai",region="",state="closed"} 0
sluice_backend_breaker_state{backend="openai",region="",state="half-open"} 0
sluice_backend_breaker_state{backend="openai",region="",state="open"} 1
# HELP sluice_backend_in_flight_requests Requests the backend is serving now.
# TYPE sluice_backend_in_flight_requests gauge
sluice_backend_in_flight_requests{backend="azure-eu",region="westeurope"} 3
sluice_backend_in_flight_requests{backend="openai",region=""} 0
# HELP sluice_backend_latency_seconds Moving average of the backend's time to first byte, as least_latency balancing sees it; 0 before its first response.
# TYPE sluice_backend_latency_seconds gauge
sluice_backend_latency_seconds{backend="azure-eu",region="westeurope"} 0.25
sluice_backend_latency_seconds{backend="openai",region=""} 0
# HELP sluice_backend_requests_total Requests sent to the backend, retries included.
# TYPE sluice_backend_requests_total counter
sluice_backend_requests_total{backend="azure-eu",region="westeurope"} 10
sluice_backend_requests_total{backend="openai",region=""} 4
# HELP sluice_backend_errors_total Requests to the backend that failed: transport errors, broken responses and statuses its breaker counts as failures.
# TYPE sluice_backend_errors_total counter
sluice_backend_errors_total{backend="azure-eu",region="westeurope"} 1
sluice_backend_errors_total{backend="openai",region=""} 4
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), backendMetrics...); err != nil {
		t.Fatalf("first scrape: %v", err)
	}

	// The breaker went half-open and a reload removed openai; a duplicate
	// name (an invalid table) must not fail the scrape.
	live.set(
		BackendState{Name: "azure-eu", Region: "westeurope", Breaker: "half-open", InFlight: 1, Latency: 2 * time.Second, Requests: 12, Errors: 3},
		BackendState{Name: "azure-eu", Region: "eastus", Breaker: "closed"},
	)
	want = backendHelp + `sluice_backend_breaker_state{backend="azure-eu",region="westeurope",state="closed"} 0
sluice_backend_breaker_state{backend="azure-eu",region="westeurope",state="half-open"} 1
sluice_backend_breaker_state{backend="azure-eu",region="westeurope",state="open"} 0
# HELP sluice_backend_in_flight_requests Requests the backend is serving now.
# TYPE sluice_backend_in_flight_requests gauge
sluice_backend_in_flight_requests{backend="azure-eu",region="westeurope"} 1
# HELP sluice_backend_latency_seconds Moving average of the backend's time to first byte, as least_latency balancing sees it; 0 before its first response.
# TYPE sluice_backend_latency_seconds gauge
sluice_backend_latency_seconds{backend="azure-eu",region="westeurope"} 2
# HELP sluice_backend_requests_total Requests sent to the backend, retries included.
# TYPE sluice_backend_requests_total counter
sluice_backend_requests_total{backend="azure-eu",region="westeurope"} 12
# HELP sluice_backend_errors_total Requests to the backend that failed: transport errors, broken responses and statuses its breaker counts as failures.
# TYPE sluice_backend_errors_total counter
sluice_backend_errors_total{backend="azure-eu",region="westeurope"} 3
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), backendMetrics...); err != nil {
		t.Fatalf("second scrape: %v", err)
	}

	live.set()
	if n, err := testutil.GatherAndCount(m.Registry(), backendMetrics...); err != nil || n != 0 {
		t.Errorf("with no backends, series = %d, %v; want 0, nil", n, err)
	}
}

func TestStateFuncsReadLiveValues(t *testing.T) {
	var storeErrors atomic.Uint64
	var mu sync.Mutex // guards ledger
	ledger := LedgerStats{QueueDepth: 2, JournalBytes: 4096}
	m := New(Options{
		LimitStoreErrors: storeErrors.Load,
		Ledger: func() LedgerStats {
			mu.Lock()
			defer mu.Unlock()
			return ledger
		},
	})
	names := []string{"sluice_limit_store_errors_total", "sluice_usage_queue_depth", "sluice_usage_journal_bytes",
		"sluice_usage_write_errors_total", "sluice_usage_dropped_total", "sluice_usage_degraded"}
	want := func(storeErrs, depth, journal, writeErrs, dropped, degraded string) string {
		return `# HELP sluice_limit_store_errors_total Limiter store calls that failed (Redis errors and timeouts), answered by the fail_open or fail_closed policy.
# TYPE sluice_limit_store_errors_total counter
sluice_limit_store_errors_total ` + storeErrs + `
# HELP sluice_usage_queue_depth Usage records waiting to be written to the usage store.
# TYPE sluice_usage_queue_depth gauge
sluice_usage_queue_depth ` + depth + `
# HELP sluice_usage_journal_bytes Size of the on-disk journal that holds usage records the store has not committed yet.
# TYPE sluice_usage_journal_bytes gauge
sluice_usage_journal_bytes ` + journal + `
# HELP sluice_usage_write_errors_total Writes to the usage store that failed.
# TYPE sluice_usage_write_errors_total counter
sluice_usage_write_errors_total ` + writeErrs + `
# HELP sluice_usage_dropped_total Usage records lost because neither the journal nor the usage store took them.
# TYPE sluice_usage_dropped_total counter
sluice_usage_dropped_total ` + dropped + `
# HELP sluice_usage_degraded 1 while the usage store does not answer and usage records wait in the journal, else 0.
# TYPE sluice_usage_degraded gauge
sluice_usage_degraded ` + degraded + `
`
	}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want("0", "2", "4096", "0", "0", "0")), names...); err != nil {
		t.Fatalf("first scrape: %v", err)
	}
	storeErrors.Add(7)
	mu.Lock()
	ledger = LedgerStats{QueueDepth: 0, JournalBytes: 0, WriteErrors: 3, Dropped: 1, Degraded: true}
	mu.Unlock()
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want("7", "0", "0", "3", "1", "1")), names...); err != nil {
		t.Fatalf("second scrape: %v", err)
	}
}

func TestStateMetricsAbsentWithoutSources(t *testing.T) {
	m := New(Options{})
	names := append([]string{"sluice_limit_store_errors_total", "sluice_usage_queue_depth", "sluice_usage_journal_bytes",
		"sluice_usage_write_errors_total", "sluice_usage_dropped_total", "sluice_usage_degraded"}, backendMetrics...)
	if n, err := testutil.GatherAndCount(m.Registry(), names...); err != nil || n != 0 {
		t.Errorf("without sources, series = %d, %v; want 0, nil", n, err)
	}
}
