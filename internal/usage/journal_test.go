package usage

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// scanIDs reads the journal's ids between offsets.
func scanIDs(t *testing.T, j *journal, from, to int64) []string {
	t.Helper()
	var ids []string
	if _, bad, err := j.scan(from, to, 2, func(b []Record) error {
		for _, r := range b {
			ids = append(ids, r.RequestID)
		}
		return nil
	}); err != nil || bad != 0 {
		t.Fatalf("scan: %d bad lines, %v", bad, err)
	}
	return ids
}

// Lines appended while a replay runs survive the journal being emptied of
// the replayed ones.
func TestJournalDropPrefixKeepsLaterLines(t *testing.T) {
	j, err := openJournal(journalPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if err := j.append([]Record{record(0), record(1), record(2)}, true); err != nil {
		t.Fatal(err)
	}
	replayed := j.Size()
	if got := scanIDs(t, j, 0, replayed); !cmp.Equal(got, []string{"req-0", "req-1", "req-2"}) {
		t.Errorf("scan = %q; want req-0..2", got)
	}
	if err := j.append([]Record{record(3)}, false); err != nil { // during the replay
		t.Fatal(err)
	}
	if err := j.dropPrefix(replayed); err != nil {
		t.Fatal(err)
	}
	if got := scanIDs(t, j, 0, j.Size()); !cmp.Equal(got, []string{"req-3"}) {
		t.Errorf("after dropPrefix: %q; want [req-3]", got)
	}
	// Appends continue on the new file.
	if err := j.append([]Record{record(4)}, true); err != nil {
		t.Fatal(err)
	}
	if got := scanIDs(t, j, 0, j.Size()); !cmp.Equal(got, []string{"req-3", "req-4"}) {
		t.Errorf("after another append: %q; want [req-3 req-4]", got)
	}
	fi, err := os.Stat(j.path)
	if err != nil || fi.Size() != j.Size() {
		t.Errorf("file size %v, %v; want %d", fi.Size(), err, j.Size())
	}
	if err := j.dropPrefix(j.Size()); err != nil || j.Size() != 0 {
		t.Errorf("dropPrefix(all) = %v, size %d; want nil, 0", err, j.Size())
	}
}

// A replay the store interrupts resumes after the last batch it wrote.
func TestJournalScanResumes(t *testing.T) {
	j, err := openJournal(journalPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if err := j.append([]Record{record(0), record(1), record(2), record(3), record(4)}, true); err != nil {
		t.Fatal(err)
	}
	calls := 0
	done, _, err := j.scan(0, j.Size(), 2, func([]Record) error {
		calls++
		if calls == 2 {
			return errStoreDown
		}
		return nil
	})
	if err != errStoreDown {
		t.Fatalf("scan = %v; want the store's error", err)
	}
	if got := scanIDs(t, j, done, j.Size()); !cmp.Equal(got, []string{"req-2", "req-3", "req-4"}) {
		t.Errorf("resuming at %d reads %q; want [req-2 req-3 req-4]", done, got)
	}
}
