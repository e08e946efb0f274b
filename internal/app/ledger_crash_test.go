package app

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/testproc"
	"github.com/sluice-gateway/sluice/internal/usage"
)

// withUsage returns the fixture's config template with usage.store and
// usage.journal set to the given values.
func withUsage(store, journal string) string {
	tmpl := strings.Replace(fxConfigYAML, `"${FX_USAGE_STORE}"`, `"`+store+`"`, 1)
	return strings.Replace(tmpl, `"${FX_USAGE_JOURNAL}"`, `"`+journal+`"`, 1)
}

// eventually polls cond until it holds, for up to a minute: long enough for
// the ledger's retry wait, which doubles from 1s, to come round.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// crashChildEnv names the directory TestGatewayCrashChild keeps its ledger
// in; it is set only in the child process TestGatewaySurvivesKill starts.
const crashChildEnv = "SLUICE_APP_CRASH_CHILD_DIR"

// TestGatewaySurvivesKill: a gateway serving concurrent streamed and plain
// requests is killed with SIGKILL. Every request a client got a whole
// answer to has its record in the store once a new ledger on the gateway's
// files has replayed the journal.
func TestGatewaySurvivesKill(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp") // the child's own temporary files
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGatewayCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "TMPDIR="+tmp)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testproc.Output
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var url string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "gateway "); ok {
			url = u
			break
		}
	}
	if url == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child did not start a gateway: %s", stderr.String())
	}
	go io.Copy(io.Discard, stdout)

	// Clients send requests until the gateway dies; the ids of the answers
	// they read whole are the records that must be kept.
	const killAfter = 300
	var (
		mu     sync.Mutex // guards served and killed
		served = map[string]bool{}
		killed bool
		wg     sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for c := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				body := fmt.Sprintf(`{"model":"gpt-4o","max_tokens":%d,"messages":[{"role":"user","content":"client %d request %d"}]`, 3+i%5, c, i)
				if (c+i)%2 == 0 {
					body += `,"stream":true`
				}
				req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body+"}"))
				req.Header.Set("Api-Key", fxAlphaKey)
				resp, err := client.Do(req)
				if err != nil {
					return // the gateway is gone
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				if err == nil && resp.StatusCode == 200 {
					served[resp.Header.Get("X-Request-Id")] = true
				}
				if len(served) >= killAfter && !killed {
					killed = true
					if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
						t.Error(err)
					}
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child ended with %v, not SIGKILL, after %d requests; its stderr:\n%s", err, len(served), stderr.String())
	}

	ctx := context.Background()
	store, err := usage.Open(ctx, "sqlite:"+filepath.Join(dir, "usage.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	l, err := usage.NewLedger(usage.Options{Store: store, Journal: filepath.Join(dir, "usage.journal"), FlushEvery: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the journal replayed", func() bool { s := l.Stats(); return s.JournalBytes == 0 && s.QueueDepth == 0 })
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The store may hold more: requests whose answers the kill cut off.
	db, err := sql.Open("sqlite", filepath.Join(dir, "usage.db")+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT request_id FROM usage_records")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var lost []string
	for id := range served {
		if !stored[id] {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of the %d requests served whole before the kill have no record, e.g. %s", len(lost), len(served), lost[0])
	}
	t.Logf("killed after %d whole answers; the store holds %d records", len(served), len(stored))
}

// TestGatewayCrashChild is the gateway TestGatewaySurvivesKill kills: the
// test fixture with its ledger in the parent's directory, serving until it is
// killed.
func TestGatewayCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("the child process of TestGatewaySurvivesKill")
	}
	f := newFixture(t, withConfig(withUsage("sqlite:"+filepath.Join(dir, "usage.db"), filepath.Join(dir, "usage.journal"))))
	fmt.Fprintln(os.Stdout, "gateway "+f.url)
	// The parent kills this process; should it die first, end anyway.
	time.Sleep(time.Minute)
	t.Fatal("not killed within a minute")
}
