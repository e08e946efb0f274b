package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReadyz: a gateway shutting down is not ready (503), so load balancers
// drain it; one whose usage store does not answer is ready (200) and says
// it is degraded, because it serves every request and journals the records.
func TestReadyz(t *testing.T) {
	for _, tc := range []struct {
		name            string
		ready, degraded bool
		noLedger        bool
		status          int
		body            string
	}{
		{name: "ready", ready: true, status: 200, body: `{"status":"ready"}`},
		{name: "no ledger", ready: true, noLedger: true, status: 200, body: `{"status":"ready"}`},
		{name: "degraded", ready: true, degraded: true, status: 200,
			body: `{"ledger":"usage store unreachable; records are journaled until it answers","status":"degraded"}`},
		{name: "shutting down", status: 503, body: `{"status":"shutting down"}`},
		{name: "shutting down while degraded", degraded: true, status: 503, body: `{"status":"shutting down"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Ready: func() bool { return tc.ready }, LedgerDegraded: func() bool { return tc.degraded }}
			if tc.noLedger {
				o.LedgerDegraded = nil
			}
			srv := httptest.NewServer(New(o))
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			var want map[string]string
			if err := json.Unmarshal([]byte(tc.body), &want); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || !cmp.Equal(got, want) {
				t.Errorf("GET /readyz = %d %v; want %d %v", resp.StatusCode, got, tc.status, want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", ct)
			}
		})
	}
}
