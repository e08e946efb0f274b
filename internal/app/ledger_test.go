package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/simulator"
	"github.com/sluice-gateway/sluice/internal/usage"
)

// TestLedgerMatchesBackends: under concurrent load mixing streams and plain
// requests, with a backend failing and requests retried, the ledger has one
// record per client request and its token totals equal, exactly, what the
// backends served. A fifth of the clients send one x-request-id over and
// over: the ledger's identity is Sluice's own id, so none of them is lost.
func TestLedgerMatchesBackends(t *testing.T) {
	// Generous first-byte timeouts: an attempt given up on a busy machine
	// is retried elsewhere while its backend may still serve it, and the
	// backend counts tokens the client never got. That is right (the
	// ledger records what the client got), but not what this test counts.
	f := newFixture(t, withConfig(resilienceFirstByte("60s")))
	f.sims["payg-westeurope"].SetFaults(simulator.Faults{ErrorRate: 0.3, ErrorStatus: 500})
	const n = 300
	var next, done atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= n; i = next.Add(1) {
				body := fmt.Sprintf(`{"model":"gpt-4o-flat","max_tokens":%d,"messages":[{"role":"user","content":"request %d"}]`, 3+i%9, i)
				switch i % 3 {
				case 0:
					body += `,"stream":true`
				case 1:
					body += `,"stream":true,"stream_options":{"include_usage":true}`
				}
				req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions", strings.NewReader(body+"}"))
				req.Header.Set("Api-Key", fxAlphaKey)
				if i%5 == 0 {
					req.Header.Set("X-Request-Id", "one-id-for-many-requests")
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	client.CloseIdleConnections()
	if err := f.stop(); err != nil { // flushes the ledger
		t.Fatal(err)
	}
	var served int64
	for _, sim := range f.sims {
		for _, d := range sim.Stats().Deployments {
			served += d.TotalTokens
		}
	}
	store, err := usage.Open(context.Background(), os.Getenv("FX_USAGE_STORE"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rows, err := store.Report(context.Background(), usage.Query{From: time.Unix(0, 0), To: time.Now().Add(time.Hour)})
	if err != nil || len(rows) != 1 {
		t.Fatalf("report %v, %v; want one row", rows, err)
	}
	if rows[0].Requests != done.Load() || rows[0].Requests != n {
		t.Errorf("%d records for %d client requests; want one each", rows[0].Requests, done.Load())
	}
	if rows[0].TotalTokens != served || served == 0 {
		t.Errorf("the ledger has %d tokens; the backends served %d; want them equal", rows[0].TotalTokens, served)
	}
}
