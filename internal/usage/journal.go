package usage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// maxJournalLine bounds one journal line when reading; a record is well under
// a kilobyte.
const maxJournalLine = 1 << 20

// journal is the local file of records the store could not take yet, one JSON
// object per line. The writer appends batches and syncs each; Add appends
// single records when the queue is full and leaves the sync to the writer's
// next cycle, so the request path never waits on a disk flush. Appends are
// whole lines written with one write call under mu, so lines never interleave.
// A journal is safe for concurrent use.
type journal struct {
	path string

	mu     sync.Mutex // guards f, size, dirty and closed
	f      *os.File   // opened for appending; nil when closed or when reopening failed
	size   int64      // bytes of complete lines in the file
	dirty  bool       // appended since the last sync
	closed bool       // close was called: appends open, sync and close the file each time
}

// fileLocked returns the open file, reopening it when an earlier reopen
// failed.
func (j *journal) fileLocked() (*os.File, error) {
	if j.f == nil {
		f, size, err := openJournalFile(j.path)
		if err != nil {
			return nil, err
		}
		j.f, j.size, j.dirty = f, size, false
	}
	return j.f, nil
}

// openJournal opens or creates the journal at path, and its directory.
func openJournal(path string) (*journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("usage: journal: %w", err)
	}
	f, size, err := openJournalFile(path)
	if err != nil {
		return nil, err
	}
	return &journal{path: path, f: f, size: size}, nil
}

// openJournalFile opens path for appending and returns its size. A file that
// does not end in a newline lost the end of its last line in a crash: a
// newline is added so that the next line starts clean and only the torn one
// is unreadable.
func openJournalFile(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("usage: journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("usage: journal: %w", err)
	}
	size := fi.Size()
	if size > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, size-1); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("usage: journal: %w", err)
		}
		if last[0] != '\n' {
			if _, err := f.Write([]byte{'\n'}); err != nil {
				f.Close()
				return nil, 0, fmt.Errorf("usage: journal: %w", err)
			}
			size++
		}
	}
	return f, size, nil
}

// encodeLines returns the records as JSON lines.
func encodeLines(recs []Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// append adds the records, syncing the file when sync is set. On an error
// nothing is added: a partial write is cut off.
func (j *journal) append(recs []Record, sync bool) error {
	b, err := encodeLines(recs)
	if err != nil {
		return fmt.Errorf("usage: journal: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return j.appendClosedLocked(b)
	}
	f, err := j.fileLocked()
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Truncate(j.size)
		return fmt.Errorf("usage: journal: %w", err)
	}
	j.size += int64(len(b))
	if !sync {
		j.dirty = true
		return nil
	}
	return j.syncLocked()
}

// appendClosedLocked appends after close, for records added after
// Ledger.Close: no writer will sync them later, so each is synced now and
// the file is closed again.
func (j *journal) appendClosedLocked(b []byte) error {
	f, size, err := openJournalFile(j.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		_ = f.Truncate(size)
		return fmt.Errorf("usage: journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("usage: journal: %w", err)
	}
	j.size = size + int64(len(b))
	return nil
}

// sync flushes appends made without sync to disk.
func (j *journal) sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.syncLocked()
}

func (j *journal) syncLocked() error {
	if !j.dirty || j.f == nil {
		return nil
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("usage: journal: %w", err)
	}
	j.dirty = false
	return nil
}

// Size returns the bytes of complete lines in the journal.
func (j *journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size
}

// scan reads the lines between byte offsets from and to, both at line
// starts, and hands their records to fn in batches of up to n. It returns the
// offset up to which every record was handed to fn without an error (the
// place to resume), and the number of lines before it that did not decode,
// which it skips.
func (j *journal) scan(from, to int64, n int, fn func([]Record) error) (done int64, bad int, err error) {
	done = from
	if from >= to {
		return done, 0, nil
	}
	badAll := 0 // bad counts those before done
	f, err := os.Open(j.path)
	if err != nil {
		return done, 0, fmt.Errorf("usage: journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.NewSectionReader(f, from, to-from))
	sc.Buffer(make([]byte, 0, 64<<10), maxJournalLine)
	batch := make([]Record, 0, n)
	pos := from // offset after the last line read
	for sc.Scan() {
		pos += int64(len(sc.Bytes())) + 1
		var r Record
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			// A torn line's newline, added by openJournalFile.
		} else if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			badAll++
		} else {
			batch = append(batch, r)
		}
		if len(batch) == n {
			if err := fn(batch); err != nil {
				return done, bad, err
			}
			batch = batch[:0]
			done, bad = pos, badAll
		}
	}
	if err := sc.Err(); err != nil {
		return done, bad, fmt.Errorf("usage: journal: %w", err)
	}
	if len(batch) > 0 {
		if err := fn(batch); err != nil {
			return done, bad, err
		}
	}
	return to, badAll, nil
}

// dropPrefix removes the first n bytes, which the store now holds. When
// nothing was appended after them the file is truncated; otherwise the lines
// after them are copied to a new file that replaces the journal. A crash in
// between leaves lines the store already holds, which a replay writes again
// harmlessly.
func (j *journal) dropPrefix(n int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	f, err := j.fileLocked()
	if err != nil {
		return err
	}
	if n >= j.size {
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("usage: journal: %w", err)
		}
		j.size, j.dirty = 0, true
		return j.syncLocked()
	}
	tmp := j.path + ".tmp"
	if err := copyTail(tmp, j.path, n, j.size); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, j.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("usage: journal: %w", err)
	}
	syncDir(filepath.Dir(j.path))
	f.Close()
	j.f = nil
	_, err = j.fileLocked() // on an error the next call tries again
	return err
}

// copyTail writes src's bytes from..to to a new synced file dst.
func copyTail(dst, src string, from, to int64) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("usage: journal: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("usage: journal: %w", err)
	}
	_, err = io.Copy(out, io.NewSectionReader(in, from, to-from))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("usage: journal: %w", err)
	}
	return nil
}

// syncDir makes a rename in dir durable; where directories cannot be synced
// the rename is still atomic, only its durability is the filesystem's.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// close syncs and closes the file. Later appends reopen it one at a time.
func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	if j.f == nil {
		return nil
	}
	err := j.syncLocked()
	if cerr := j.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("usage: journal: %w", cerr)
	}
	j.f = nil
	return err
}
