package usage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lines returns the records as journal lines.
func lines(t testing.TB, recs ...Record) []byte {
	t.Helper()
	var b []byte
	for i := range recs {
		var err error
		if b, err = appendLine(b, &recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// scanIDs reads a segment's ids from its current offset.
func scanIDs(t *testing.T, s *segment) []string {
	t.Helper()
	var ids []string
	if bad, err := scan(s, 2, func(b []Record) error {
		for _, r := range b {
			ids = append(ids, r.RequestID)
		}
		return nil
	}); err != nil || bad != 0 {
		t.Fatalf("scan: %d bad lines, %v", bad, err)
	}
	return ids
}

func segmentPaths(segs []*segment) []string {
	var out []string
	for _, s := range segs {
		out = append(out, filepath.Base(s.path))
	}
	return out
}

// sealNext seals the active segment and prepares the next, as the writer
// does.
func sealNext(t *testing.T, j *journal) *segment {
	t.Helper()
	s, err := j.seal()
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	if err := j.prepare(); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	return s
}

// Sealing leaves lines appended later in the new active segment; removing a
// sealed segment drops only its lines; a journal opened again finds every
// segment not removed, oldest first, and numbers new ones after them.
func TestJournalSegments(t *testing.T) {
	path := journalPath(t)
	j, pending, err := openJournal(path)
	if err != nil || len(pending) != 0 {
		t.Fatalf("openJournal = %v, %v; want no segments", pending, err)
	}
	if err := j.append(lines(t, record(0), record(1), record(2))); err != nil {
		t.Fatal(err)
	}
	first := sealNext(t, j)
	if first == nil {
		t.Fatal("seal returned no segment")
	}
	if err := j.append(lines(t, record(3))); err != nil { // after the seal
		t.Fatal(err)
	}
	if got := scanIDs(t, first); !cmp.Equal(got, []string{"req-0", "req-1", "req-2"}) {
		t.Errorf("sealed segment holds %q; want req-0..2", got)
	}
	if second := sealNext(t, j); second == nil {
		t.Fatal("seal returned no segment")
	}
	if s := sealNext(t, j); s != nil {
		t.Errorf("seal of an empty active segment = %v; want nothing", s)
	}
	if err := j.append(lines(t, record(4))); err != nil {
		t.Fatal(err)
	}
	if err := j.remove(first); err != nil {
		t.Fatal(err)
	}
	if want := int64(len(lines(t, record(3), record(4)))); j.Size() != want {
		t.Errorf("Size after removing the first segment = %d; want %d, the lines of req-3 and req-4", j.Size(), want)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}

	// A file that is not a segment is left alone.
	if err := os.WriteFile(path+".tmp", []byte("junk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	j, pending, err = openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if got, want := segmentPaths(pending), []string{"usage.jsonl.2", "usage.jsonl.3"}; !cmp.Equal(got, want) {
		t.Fatalf("segments found = %q; want %q", got, want)
	}
	if got := append(scanIDs(t, pending[0]), scanIDs(t, pending[1])...); !cmp.Equal(got, []string{"req-3", "req-4"}) {
		t.Errorf("the segments hold %q; want [req-3 req-4]", got)
	}
	// Numbers go on after the highest found, and sort as numbers.
	for range 8 {
		if err := j.append(lines(t, record(5))); err != nil {
			t.Fatal(err)
		}
		sealNext(t, j)
	}
	segs, _, err := findSegments(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for n := 2; n <= 13; n++ { // 12 active, 13 prepared
		want = append(want, fmt.Sprint("usage.jsonl.", n))
	}
	if got := segmentPaths(segs); !cmp.Equal(got, want) {
		t.Errorf("findSegments = %q; want %q", got, want)
	}
}

// The journal of a Sluice from before segments, one file at the journal's
// path, is the oldest segment.
func TestJournalReadsUnsegmentedJournal(t *testing.T) {
	path := journalPath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, lines(t, record(0), record(1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".7", lines(t, record(2)), 0o600); err != nil {
		t.Fatal(err)
	}
	j, pending, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if got, want := segmentPaths(pending), []string{"usage.jsonl", "usage.jsonl.7"}; !cmp.Equal(got, want) {
		t.Fatalf("segments found = %q; want %q", got, want)
	}
	if got := scanIDs(t, pending[0]); !cmp.Equal(got, []string{"req-0", "req-1"}) {
		t.Errorf("the old journal holds %q; want [req-0 req-1]", got)
	}
	if err := j.remove(pending[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old journal after its replay: %v; want it gone", err)
	}
	if j.active != path+".8" {
		t.Errorf("active segment %s; want %s.8", j.active, path)
	}
}

// A replay the store interrupts resumes after the last batch it wrote, and a
// segment whose first records the store got from memory skips them.
func TestJournalScanResumes(t *testing.T) {
	j, _, err := openJournal(journalPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if err := j.append(lines(t, record(0), record(1), record(2), record(3), record(4))); err != nil {
		t.Fatal(err)
	}
	s := sealNext(t, j)
	calls := 0
	if _, err := scan(s, 2, func([]Record) error {
		calls++
		if calls == 2 {
			return errStoreDown
		}
		return nil
	}); err != errStoreDown {
		t.Fatalf("scan = %v; want the store's error", err)
	}
	if got := scanIDs(t, s); !cmp.Equal(got, []string{"req-2", "req-3", "req-4"}) {
		t.Errorf("resuming at %d reads %q; want [req-2 req-3 req-4]", s.offset, got)
	}
	if got := scanIDs(t, s); len(got) != 0 {
		t.Errorf("a finished segment reads %q again; want nothing", got)
	}
	s.offset, s.skip = 0, 3
	if got := scanIDs(t, s); !cmp.Equal(got, []string{"req-3", "req-4"}) {
		t.Errorf("skipping 3 reads %q; want [req-3 req-4]", got)
	}
}

// A segment is appended to through its mapping, and with write(2) once it
// outgrows it; the next segments map more. A journal opened again, as after
// a kill, cuts the zero bytes after each segment's lines and reads every
// line.
func TestJournalMappedSegments(t *testing.T) {
	path := journalPath(t)
	j, _, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	mapped := j.m != nil
	if !mapped {
		t.Logf("segments are not mapped here; the write(2) path is tested")
	}
	var want []string
	n := 0
	for j.size < 2*minSegmentMap { // well past the first mapping
		r := record(n)
		want = append(want, r.RequestID)
		if err := j.append(lines(t, r)); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if j.m != nil {
		t.Errorf("the active segment is still mapped at %d bytes", j.size)
	}
	if mapped && j.mapSize != 2*minSegmentMap {
		t.Errorf("mapSize after an overflow = %d; want %d", j.mapSize, 2*minSegmentMap)
	}
	first := sealNext(t, j)
	if fi, err := os.Stat(first.path); err != nil || fi.Size() != first.size {
		t.Errorf("the segment that outgrew its mapping: %v, %v; want %d bytes, its lines", fi, err, first.size)
	}
	// A mapped segment, once sealed and synced, gives back the room past
	// its lines.
	if err := j.append(lines(t, record(n))); err != nil {
		t.Fatal(err)
	}
	want = append(want, record(n).RequestID)
	n++
	small := sealNext(t, j)
	if err := j.syncRound(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(small.path); err != nil || fi.Size() != small.size {
		t.Errorf("a sealed, synced segment: %v, %v; want %d bytes, its lines", fi, err, small.size)
	}
	// The new active segment is mapped, and gets a few lines; then this
	// journal is left as a killed process leaves it, files open and mapped.
	for i := range 3 {
		r := record(n + i)
		want = append(want, r.RequestID)
		if err := j.append(lines(t, r)); err != nil {
			t.Fatal(err)
		}
	}
	// Segments made after the overflow map twice as much.
	if fi, err := os.Stat(j.active); err != nil || (mapped && fi.Size() != 2*minSegmentMap) {
		t.Errorf("the mapped segment: %v, %v; want its mapping's size, %d", fi, err, 2*minSegmentMap)
	}
	if mapped && len(j.nextMap) != 2*minSegmentMap {
		t.Errorf("the next segment maps %d bytes; want %d", len(j.nextMap), 2*minSegmentMap)
	}

	j.unlock() // a killed process's lock goes with it
	again, pending, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.close()
	var got []string
	for _, s := range pending {
		if fi, err := os.Stat(s.path); err != nil || fi.Size() != s.size {
			t.Errorf("segment %s found: %v, %v; want it cut to %d bytes", s.path, fi, err, s.size)
		}
		got = append(got, scanIDs(t, s)...)
	}
	if !cmp.Equal(got, want) {
		t.Errorf("the journal opened again holds %d records; want %d", len(got), len(want))
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
}

// A line torn by a kill in the middle of its copy into the mapping is
// followed by zero bytes: it is the one unreadable line, and the file is cut
// after it.
func TestJournalTornMappedLine(t *testing.T) {
	path := journalPath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	whole := lines(t, record(0), record(1))
	torn := lines(t, record(2))
	file := append(append(append([]byte{}, whole...), torn[:len(torn)/2]...), make([]byte, 8192)...)
	if err := os.WriteFile(path+".1", file, 0o600); err != nil {
		t.Fatal(err)
	}
	j, pending, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if len(pending) != 1 || pending[0].size != int64(len(whole)+len(torn)/2) {
		t.Fatalf("segments found %v; want one of %d bytes", pending, len(whole)+len(torn)/2)
	}
	var ids []string
	bad, err := scan(pending[0], 10, func(b []Record) error {
		for _, r := range b {
			ids = append(ids, r.RequestID)
		}
		return nil
	})
	if err != nil || bad != 1 || !cmp.Equal(ids, []string{"req-0", "req-1"}) {
		t.Errorf("scan = %q, %d bad, %v; want [req-0 req-1], 1 bad", ids, bad, err)
	}
}

// TestJournalOneProcess: a second opener of a journal in use is refused
// with a message that says why, and may open it once the first closed it.
func TestJournalOneProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j, _, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := openJournal(path); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second open: %v; want refused", err)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	j2, _, err := openJournal(path)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	j2.close()
}
