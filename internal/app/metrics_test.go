package app

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsScrape: requests show in /metrics on the admin listener, scraped
// over HTTP, with the labels metrics.dimensions keeps (client_ip is off).
func TestMetricsScrape(t *testing.T) {
	f := newFixture(t)
	for range 3 {
		if status, _, _ := chatVia(t, f, fxAlphaKey, "gpt-4o"); status != 200 {
			t.Fatalf("status %d", status)
		}
	}
	chatVia(t, f, fxAlphaKey, "gpt-9") // unknown model: no model label
	want := `
# HELP sluice_requests_total Client requests served, by status class (2xx, 3xx, 4xx, 5xx, other).
# TYPE sluice_requests_total counter
sluice_requests_total{backend="",client_ip="",deployment="",model="",operation="chat",product="standard",region="",status_class="4xx",subscription="team-alpha"} 1
sluice_requests_total{backend="ptu-swedencentral",client_ip="",deployment="gpt-4o-ptu",model="gpt-4o",operation="chat",product="standard",region="swedencentral",status_class="2xx",subscription="team-alpha"} 3
`
	if err := testutil.ScrapeAndCompare(f.admin+"/metrics", strings.NewReader(want), "sluice_requests_total"); err != nil {
		t.Error(err)
	}
	_, body := do(t, "GET", f.admin+"/metrics", "", "")
	for _, name := range []string{"gen_ai_client_token_usage_bucket", "gen_ai_server_time_to_first_token_seconds_bucket",
		"sluice_overhead_seconds_bucket", `sluice_backend_breaker_state{backend="ptu-swedencentral",region="swedencentral",state="closed"} 1`,
		"sluice_usage_queue_depth", "sluice_limit_store_errors_total"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for _, secret := range []string{fxAlphaKey, fxPTUKey, fxAdminKey} {
		if strings.Contains(body, secret) {
			t.Error("a key appears in /metrics")
		}
	}
}
