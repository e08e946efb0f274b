package usage

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Where the disk cannot reserve a segment's blocks, the segment is not
// mapped: its lines go out with write(2), whose errors the ledger handles,
// rather than a SIGBUS when a page of a mapping finds no block.
func TestJournalUnreservedSegment(t *testing.T) {
	t.Cleanup(func() { fallocate = syscall.Fallocate })
	fallocate = func(int, uint32, int64, int64) error { return syscall.ENOSPC }
	j, _, err := openJournal(journalPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if j.m != nil || j.nextMap != nil {
		t.Fatal("segments mapped without reserved blocks")
	}
	if err := j.append(lines(t, record(0), record(1))); err != nil {
		t.Fatal(err)
	}
	s := sealNext(t, j)
	if fi, err := os.Stat(s.path); err != nil || fi.Size() != s.size {
		t.Errorf("unmapped segment: %v, %v; want %d bytes", fi, err, s.size)
	}
	if got := scanIDs(t, s); len(got) != 2 {
		t.Errorf("unmapped segment holds %q; want req-0 and req-1", got)
	}
}

// On a file system that is really full (a tmpfs of 1.5 MiB; needs the right
// to mount one), the first segment is mapped, the next cannot reserve its
// blocks, and appends fail with ENOSPC once the space is gone: an error,
// never a SIGBUS. What was appended before is all there.
func TestJournalFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1536k"); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Error(err)
		}
	})
	path := filepath.Join(dir, "usage.jsonl")
	j, _, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if j.m == nil || j.nextMap != nil {
		t.Fatalf("mapped: active %v, next %v; want the active one only", j.m != nil, j.nextMap != nil)
	}
	n := 0
	for ; ; n++ {
		err = j.append(lines(t, record(n)))
		if err != nil {
			break
		}
		if n > 100_000 {
			t.Fatal("1.5 MiB took 100,000 records")
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("append on a full disk: %v; want ENOSPC", err)
	}
	if n*len(lines(t, record(n))) < minSegmentMap {
		t.Errorf("appends failed after %d records, inside the reserved mapping", n)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	again, pending, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.close()
	got := 0
	for _, s := range pending {
		got += len(scanIDs(t, s))
	}
	if got != n {
		t.Errorf("the journal holds %d records; want the %d appended", got, n)
	}
}
