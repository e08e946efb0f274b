package app

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-gateway/sluice/internal/pgtest"
)

// readyz returns the admin listener's /readyz status and body.
func readyz(t *testing.T, f *fixture) (int, string) {
	t.Helper()
	resp, body := do(t, "GET", f.admin+"/readyz", "", "")
	return resp.StatusCode, body
}

// metricLine returns the line of /metrics that starts with name and a space.
func metricLine(t *testing.T, f *fixture, name string) string {
	t.Helper()
	_, body := do(t, "GET", f.admin+"/metrics", "", "")
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	return ""
}

// TestGatewayStartsWithStoreDown: with PostgreSQL down, the gateway starts
// and serves; /readyz answers 200 but says the ledger is degraded, and
// sluice_usage_degraded is 1. Once PostgreSQL is up, the ledger migrates the
// empty database, replays its journal, and every request is in the store
// once; /readyz and the metric are back to normal.
func TestGatewayStartsWithStoreDown(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Stop()
	f := newFixture(t, withConfig(withUsage(pg.URL(), filepath.Join(t.TempDir(), "usage.journal"))))

	const n = 20
	ids := map[string]bool{}
	for i := range n {
		body := chatBody
		if i%2 == 1 {
			body = `{"model":"gpt-4o","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
		}
		resp, got := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, body)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d with the store down: %d %s; want 200", i, resp.StatusCode, got)
		}
		ids[resp.Header.Get("X-Request-Id")] = true
	}
	eventually(t, "/readyz to say the ledger is degraded", func() bool {
		status, body := readyz(t, f)
		return status == 200 && strings.Contains(body, `"degraded"`)
	})
	if got := metricLine(t, f, "sluice_usage_degraded"); got != "sluice_usage_degraded 1" {
		t.Errorf("with the store down, /metrics has %q; want sluice_usage_degraded 1", got)
	}
	if st := f.gw.obs.ledger.Stats(); st.JournalBytes == 0 || st.Written != 0 {
		t.Errorf("with the store down: %+v; want the records in the journal, none written", st)
	}

	pg.Restart()
	eventually(t, "the journal replayed into PostgreSQL", func() bool {
		st := f.gw.obs.ledger.Stats()
		return st.Written == n && st.JournalBytes == 0 && !st.Degraded
	})
	if status, body := readyz(t, f); status != 200 || !strings.Contains(body, `"ready"`) || strings.Contains(body, "degraded") {
		t.Errorf("with the store back, /readyz = %d %s; want 200 ready", status, body)
	}
	if got := metricLine(t, f, "sluice_usage_degraded"); got != "sluice_usage_degraded 0" {
		t.Errorf("with the store back, /metrics has %q; want sluice_usage_degraded 0", got)
	}
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var versions int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&versions); err != nil || versions < 2 {
		t.Errorf("schema_migrations holds %d versions (%v); want the migrations run", versions, err)
	}
	rows, err := conn.Query(ctx, "SELECT request_id FROM usage_records")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range stored {
		if !ids[id] {
			t.Errorf("the store holds %s, which no client got", id)
		}
		delete(ids, id)
	}
	if len(stored) != n || len(ids) != 0 {
		t.Errorf("the store holds %d records; want %d, one per request; missing: %v", len(stored), n, ids)
	}
}
