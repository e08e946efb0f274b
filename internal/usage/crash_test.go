package usage

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/testproc"
)

// crashChildEnv names the directory TestLedgerCrashChild keeps its store and
// journal in; it is set only in the child process TestLedgerSurvivesKill
// starts.
const crashChildEnv = "SLUICE_USAGE_CRASH_CHILD_DIR"

// crashAddedPrefix starts each line the child prints once Add returned.
const crashAddedPrefix = "added "

// TestLedgerSurvivesKill: a process adding records from several goroutines
// is killed with SIGKILL in the middle of the stream. Every record whose Add
// had returned (the child printed its id after Add) is in the store once a
// new ledger on the same files has replayed the journal: a kill -9 loses no
// record of a request that was served.
func TestLedgerSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLedgerCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testproc.Output
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once the child is well into the stream: several batches are in
	// the store by then, and more are on their way.
	const killAfter = 5000
	added := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), crashAddedPrefix)
		if !ok {
			continue
		}
		added[id] = true
		if len(added) == killAfter {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child ended with %v, not SIGKILL, after %d records; its stderr:\n%s", err, len(added), stderr.String())
	}

	store := open(t, "sqlite:"+filepath.Join(dir, "usage.db"))
	l := newLedger(t, Options{Store: store, Journal: filepath.Join(dir, "usage.journal"), FlushEvery: 5 * time.Millisecond})
	waitFor(t, "the journal replayed", func() bool { s := l.Stats(); return s.JournalBytes == 0 && s.QueueDepth == 0 })
	closeLedger(t, l)

	stored := storedIDs(t, store)
	var lost []string
	for id := range added {
		if !stored[id] {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of the %d records added before the kill are not in the store, e.g. %s", len(lost), len(added), lost[0])
	}
	t.Logf("killed after %d records; the store holds %d, of which %d were replayed from the journal", len(added), len(stored), l.Stats().Written)
}

// TestLedgerCrashChild is the process TestLedgerSurvivesKill kills: it adds
// records to a ledger from four goroutines until it is killed, printing each
// record's id once Add returned.
func TestLedgerCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("the child process of TestLedgerSurvivesKill")
	}
	store, err := Open(context.Background(), "sqlite:"+filepath.Join(dir, "usage.db"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLedger(Options{Store: store, Journal: filepath.Join(dir, "usage.journal")})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // guards stdout, so that lines do not interleave
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				r := record(g*1_000_000 + i)
				r.RequestID = NewID()
				l.Add(r)
				mu.Lock()
				fmt.Fprintln(os.Stdout, crashAddedPrefix+r.RequestID)
				mu.Unlock()
			}
		}()
	}
	// The parent kills this process; should it die first, end anyway.
	time.Sleep(time.Minute)
	t.Fatal("not killed within a minute")
}

// storedIDs returns the request ids a SQLite store holds.
func storedIDs(t *testing.T, s Store) map[string]bool {
	t.Helper()
	sq, ok := s.(*sqliteStore)
	if !ok {
		t.Fatalf("storedIDs: %T is not the SQLite store", s)
	}
	rows, err := sq.r.QueryContext(context.Background(), "SELECT request_id FROM usage_records")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ids := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
