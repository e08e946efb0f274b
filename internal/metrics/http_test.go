package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandlerOverHTTP scrapes /metrics as Prometheus would and checks that
// each kind of metric is there and that two instances do not share a
// registry.
func TestHandlerOverHTTP(t *testing.T) {
	m := New(Options{
		Dimensions: Dimensions{Subscription: true, Model: true},
		Backends:   func() []BackendState { return []BackendState{{Name: "azure-eu", Breaker: "closed"}} },
	})
	other := New(Options{}) // a second registry: the global one would panic on duplicates
	m.Observe(streamed())
	other.Observe(&Request{Operation: "embeddings", Status: 200})

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d; want 200; body:\n%s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q; want text/plain", ct)
	}
	for _, want := range []string{
		`sluice_requests_total{backend="",client_ip="",deployment="",model="gpt-4o",operation="chat",product="",region="",status_class="2xx",subscription="team-a"} 1`,
		"gen_ai_client_token_usage_bucket{",
		"gen_ai_server_request_duration_seconds_count{",
		"gen_ai_server_time_to_first_token_seconds_sum{",
		"gen_ai_server_time_per_output_token_seconds_bucket{",
		"sluice_overhead_seconds_bucket{",
		`sluice_backend_breaker_state{backend="azure-eu",region="",state="closed"} 1`,
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(string(body), `operation="embeddings"`) {
		t.Error("scrape shows another instance's request")
	}
}
