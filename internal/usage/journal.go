package usage

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// maxJournalLine bounds one journal line when reading; a record is well under
// a kilobyte.
const maxJournalLine = 1 << 20

// A new segment reserves and maps minSegmentMap bytes of disk, a few
// seconds of records at a thousand requests a second: the writer seals the
// active segment every flush, at least once a second while the store works.
// A segment that outgrows its mapping (the store is down, or the writer
// behind) goes on with write(2), and the next segments map twice as much,
// up to maxSegmentMap.
const (
	minSegmentMap = 1 << 20
	maxSegmentMap = 64 << 20
)

// journal is the ledger's write-ahead log: one JSON object per line, every
// record the Ledger takes, in the kernel's page cache before Add returns. A
// record there survives the process being killed (kill -9, a panic, the OOM
// killer); only a kernel crash or a power loss needs the fsync, which a
// syncer goroutine makes for many records at a time.
//
// A new segment file is given its disk blocks up front (fallocate) and
// mapped into memory (mmap), so that an append is a copy into the mapping,
// without a system call: the mapping's pages are the file's pages in the
// page cache. The file is then longer than its lines and ends in zero bytes
// (JSON lines hold none); a sealed segment's size is that of its lines, and
// a file found on open is cut at its first zero byte. Where blocks cannot be
// reserved (a full disk, a file system or system without fallocate) or a
// segment outgrows its mapping, lines are appended with one write(2) each.
//
// The journal is a sequence of segment files, path.1, path.2, ..., so that
// what the store committed can be dropped without copying or truncating
// under the appenders' feet. New lines go to the active segment, the highest
// number; seal makes the next one, which the writer created ahead of time,
// active, so sealing does no file system call while appenders wait. A
// sealed segment is deleted once the store holds its records. On open, every
// segment there is sealed: the store may not hold their records yet; so is a
// file at path itself, the journal of Sluice before segments.
//
// A path that is a device rather than a regular file (tests use /dev/full)
// is appended to directly and never sealed.
//
// A journal is safe for concurrent use.
type journal struct {
	path string
	// lock holds path.lock's flock while the journal is open (see
	// lockJournal); nil where there is none.
	lock *os.File
	// direct reports that path is not a regular file: it is the active
	// segment, and nothing is ever sealed.
	direct bool
	// mapSize is the bytes a new segment maps; a variable for tests.
	mapSize int

	mu       sync.Mutex // guards everything below
	f        *os.File   // the active segment, opened for appending; nil when closed or when reopening failed
	m        []byte     // the active segment's mapping, appended to at size; nil when appends use write(2)
	active   string     // the active segment's name
	size     int64      // bytes of complete lines in the active segment
	dirty    bool       // the active segment was appended to since the syncer last took it
	next     *os.File   // the segment seal makes active, created ahead; nil when creating it failed
	nextMap  []byte     // its mapping, nil if it has none
	nextName string     // its name
	total    int64      // bytes in the active segment and in sealed segments not yet removed
	seq      uint64     // the number of the segment after next
	unsynced []*segment // sealed segments the syncer has not fsynced yet
	dirDirty bool       // a segment was created since the syncer last synced the directory
	round    *syncRound // the syncer's next round, which Sync callers wait for
	closed   bool       // close was called: appends open, sync and close the file each time
}

// segment is a sealed part of the journal. Its path and size never change;
// f and removed are guarded by the journal's mu; offset and skip belong to
// the ledger's writer.
type segment struct {
	path string
	size int64

	f       *os.File // open until the syncer fsynced it; nil for segments found on open
	m       []byte   // its mapping until the syncer fsynced it, or nil
	dirty   bool     // appended to since the syncer last fsynced it
	removed bool     // the store holds its records and the file is gone

	offset int64 // bytes whose records the store holds: a replay resumes here
	skip   int   // records after offset that the store holds too
}

// syncRound is one fsync of the journal by the syncer; done is closed once it
// is over, and err is its result.
type syncRound struct {
	done chan struct{}
	err  error
}

// openJournal opens the journal at path, creating its directory, and starts
// a new active segment. It returns the journal and the segments already
// there, oldest first: what an earlier process left.
func openJournal(path string) (*journal, []*segment, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, nil, fmt.Errorf("usage: journal: %w", err)
	}
	j := &journal{path: path, mapSize: minSegmentMap, round: &syncRound{done: make(chan struct{})}}
	fi, statErr := os.Stat(path)
	if statErr != nil && !errors.Is(statErr, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("usage: journal: %w", statErr)
	}
	if statErr == nil && !fi.Mode().IsRegular() {
		f, size, err := openJournalFile(path)
		if err != nil {
			return nil, nil, err
		}
		j.direct, j.f, j.active, j.size, j.total = true, f, path, size, size
		return j, nil, nil
	}
	lock, err := lockJournal(path)
	if err != nil {
		return nil, nil, err
	}
	j.lock = lock
	sealed, seq, err := findSegments(path)
	if err != nil {
		j.unlock()
		return nil, nil, err
	}
	if statErr == nil && fi.Size() > 0 {
		// The whole journal of an older Sluice; it predates the segments.
		sealed = append([]*segment{{path: path, size: fi.Size()}}, sealed...)
	}
	for _, s := range sealed {
		j.total += s.size
	}
	j.seq = seq
	if err := j.prepare(); err != nil {
		j.unlock()
		return nil, nil, err
	}
	j.mu.Lock()
	j.f, j.m, j.active, j.next, j.nextMap = j.next, j.nextMap, j.nextName, nil, nil
	j.mu.Unlock()
	if err := j.prepare(); err != nil {
		j.close()
		return nil, nil, err
	}
	return j, sealed, nil
}

// prepare creates the segment seal will make active next, unless it exists,
// and maps it when it can. The writer calls it after each seal, without
// holding the Ledger's lock: creating a file can wait on the file system's
// own journal for as long as an fsync takes.
func (j *journal) prepare() error {
	j.mu.Lock()
	if j.direct || j.next != nil || j.closed {
		j.mu.Unlock()
		return nil
	}
	name := j.path + "." + strconv.FormatUint(j.seq, 10)
	j.seq++
	size := j.mapSize
	j.mu.Unlock()
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("usage: journal: %w", err)
	}
	m, _ := mapSegment(f, size) // without one, appends use write(2)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		if m != nil {
			unmapSegment(m)
		}
		f.Close()
		os.Remove(name)
		return nil
	}
	j.next, j.nextMap, j.nextName, j.dirDirty = f, m, name, true
	return nil
}

// findSegments lists the sealed segments next to path, oldest first, and
// returns the number the next one gets.
func findSegments(path string) ([]*segment, uint64, error) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil, 0, fmt.Errorf("usage: journal: %w", err)
	}
	type numbered struct {
		n    uint64
		path string
	}
	var found []numbered
	prefix := filepath.Base(path) + "."
	for _, e := range entries {
		digits, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || strconv.FormatUint(n, 10) != digits {
			continue // not a segment (path.tmp of an older version, say)
		}
		found = append(found, numbered{n, filepath.Join(filepath.Dir(path), e.Name())})
	}
	slices.SortFunc(found, func(a, b numbered) int { return cmp.Compare(a.n, b.n) })
	next := uint64(1)
	segs := make([]*segment, 0, len(found))
	for _, s := range found {
		size, err := trimSegment(s.path)
		if err != nil {
			return nil, 0, err
		}
		segs = append(segs, &segment{path: s.path, size: size})
		next = s.n + 1
	}
	return segs, next, nil
}

// trimSegment cuts a segment file found on open at its first zero byte, the
// end of what was copied into its mapping, and returns the size of its
// lines. A file that cannot be cut is read up to there all the same.
func trimSegment(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("usage: journal: %w", err)
	}
	defer f.Close()
	end, size, err := linesEnd(f)
	if err != nil {
		return 0, fmt.Errorf("usage: journal: %w", err)
	}
	if end < size {
		_ = os.Truncate(path, end)
	}
	return end, nil
}

// trimFile cuts a file opened for writing at its first zero byte, if it
// ends in one, and returns its size.
func trimFile(f *os.File) (int64, error) {
	end, size, err := linesEnd(f)
	if err != nil || end == size {
		return end, err
	}
	if err := f.Truncate(end); err != nil {
		return 0, err
	}
	return end, nil
}

// linesEnd returns the offset of a regular file's first zero byte if the
// file ends in one (a segment that was mapped), else its size; and its size.
func linesEnd(f *os.File) (end, size int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size = fi.Size()
	if size == 0 || !fi.Mode().IsRegular() {
		return size, size, nil
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil {
		return 0, 0, err
	}
	if last[0] != 0 {
		return size, size, nil
	}
	buf := make([]byte, 64<<10)
	for end < size {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-end)], end)
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return end + int64(i), size, nil
		}
		end += int64(n)
		if err != nil {
			return 0, 0, err
		}
	}
	return size, size, nil
}

// openJournalFile opens path for appending and returns its size. A segment's
// zero bytes after its lines are cut (see trimFile). A file that does not end
// in a newline lost the end of its last line in a crash: a newline is added
// so that the next line starts clean and only the torn one is unreadable.
func openJournalFile(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("usage: journal: %w", err)
	}
	size, err := trimFile(f)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("usage: journal: %w", err)
	}
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

// append adds whole lines to the active segment, with a copy into its
// mapping or one write call, so that lines never interleave and a killed
// process leaves them whole. On an error nothing is added: a partial write
// is cut off.
func (j *journal) append(lines []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return j.appendClosedLocked(lines)
	}
	if j.m != nil {
		if end := j.size + int64(len(lines)); end <= int64(len(j.m)) {
			copy(j.m[j.size:end], lines)
			j.size = end
			j.total += int64(len(lines))
			j.dirty = true
			return nil
		}
		// Full: from here on the file grows by write(2), after its lines.
		j.mapSize = min(2*j.mapSize, maxSegmentMap)
		if err := j.unmapLocked(); err != nil {
			return err
		}
	}
	f, err := j.fileLocked()
	if err != nil {
		return err
	}
	if _, err := f.Write(lines); err != nil {
		_ = f.Truncate(j.size)
		return fmt.Errorf("usage: journal: %w", err)
	}
	j.size += int64(len(lines))
	j.total += int64(len(lines))
	j.dirty = true
	return nil
}

// unmapLocked cuts the active segment's file to its lines and releases its
// mapping, so that appends go on with write(2).
func (j *journal) unmapLocked() error {
	if err := j.f.Truncate(j.size); err != nil {
		return fmt.Errorf("usage: journal: %w", err)
	}
	err := unmapSegment(j.m)
	j.m = nil
	if err != nil {
		return fmt.Errorf("usage: journal: %w", err)
	}
	return nil
}

// fileLocked returns the active segment's file, reopening it when an earlier
// open failed.
func (j *journal) fileLocked() (*os.File, error) {
	if j.f == nil {
		f, size, err := openJournalFile(j.active)
		if err != nil {
			return nil, err
		}
		j.total += size - j.size
		j.f, j.size = f, size
	}
	return j.f, nil
}

// appendClosedLocked appends after close, for records added after
// Ledger.Close: no syncer will sync them later, so each is synced now and the
// file is closed again.
func (j *journal) appendClosedLocked(lines []byte) error {
	f, size, err := openJournalFile(j.active)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(lines); err != nil {
		_ = f.Truncate(size)
		return fmt.Errorf("usage: journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("usage: journal: %w", err)
	}
	j.total += size + int64(len(lines)) - j.size
	j.size = size + int64(len(lines))
	return nil
}

// errNoNextSegment is seal's error when prepare failed to create the next
// segment.
var errNoNextSegment = errors.New("usage: journal: no next segment to seal into")

// seal makes the active segment a sealed one and the prepared next segment
// the active one; it makes no file system call. It returns nil when there is
// nothing to seal: the active segment is empty, or the journal is direct. On
// an error the active segment stays as it was.
func (j *journal) seal() (*segment, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.direct || j.size == 0 || j.f == nil {
		return nil, nil
	}
	if j.next == nil {
		return nil, errNoNextSegment
	}
	// The syncer fsyncs it if need be, and releases its file and mapping.
	s := &segment{path: j.active, size: j.size, f: j.f, m: j.m, dirty: j.dirty}
	j.unsynced = append(j.unsynced, s)
	j.f, j.m, j.active, j.size, j.dirty = j.next, j.nextMap, j.nextName, 0, false
	j.next, j.nextMap = nil, nil
	return s, nil
}

// remove deletes a sealed segment whose records the store holds. A segment
// that cannot be deleted stays, and is replayed again (harmlessly) after a
// restart.
func (j *journal) remove(s *segment) error {
	err := os.Remove(s.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("usage: journal: %w", err)
	}
	j.mu.Lock()
	s.removed = true
	j.total -= s.size
	j.mu.Unlock()
	return nil
}

// Size returns the bytes in the journal's segments: records the store may
// not hold yet.
func (j *journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.total
}

// syncRound fsyncs what was appended before it started: the active segment
// if it was appended to, the segments sealed since the last round, and the
// directory if a segment was created. Only the syncer goroutine
// calls it. Sync callers that arrived before it started share it.
func (j *journal) syncRound() error {
	j.mu.Lock()
	r := j.round
	j.round = &syncRound{done: make(chan struct{})}
	var f *os.File
	if j.dirty {
		f = j.f
		j.dirty = false
	}
	sealed := j.unsynced
	j.unsynced = nil
	dir := j.dirDirty
	j.dirDirty = false
	j.mu.Unlock()

	var errs []error
	for _, s := range sealed {
		j.mu.Lock()
		removed := s.removed // the store has it: no need
		j.mu.Unlock()
		errs = append(errs, s.release(!removed))
	}
	if f != nil {
		errs = append(errs, f.Sync())
	}
	if dir {
		errs = append(errs, syncDir(filepath.Dir(j.path)))
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("usage: journal: sync: %w", err)
		j.mu.Lock()
		j.dirty = true // try again next round
		j.mu.Unlock()
	}
	r.err = err
	close(r.done)
	return err
}

// release drops a sealed segment's mapping and, unless the store holds its
// records (keep false), gives back the disk reserved past its lines and
// fsyncs it if it was appended to since the last fsync; then it closes its
// file. Pending segments so take the room of their lines only, however
// many wait for a slow store.
func (s *segment) release(keep bool) error {
	var errs []error
	if s.m != nil {
		errs = append(errs, unmapSegment(s.m))
		s.m = nil
		if keep {
			errs = append(errs, s.f.Truncate(s.size))
		}
	}
	if keep && s.dirty {
		errs = append(errs, s.f.Sync())
	}
	return errors.Join(append(errs, s.f.Close())...)
}

// nextRound returns the syncer's next round, for a Sync caller to wait for.
func (j *journal) nextRound() *syncRound {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.round
}

// wait blocks until the round is over or ctx ends.
func (r *syncRound) wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncFile fsyncs the active segment now, for the writer, which journals the
// records of a failed batch that the journal did not hold.
func (j *journal) syncFile() error {
	j.mu.Lock()
	f := j.f
	j.mu.Unlock()
	if f == nil {
		return nil
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("usage: journal: %w", err)
	}
	return nil
}

// syncDir makes the creation of a segment in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		// Some file systems cannot sync a directory; a new file's
		// durability is then theirs.
		return err
	}
	return nil
}

// close syncs and closes the active segment, and closes sealed segments the
// syncer has not taken. Later appends reopen the file one at a time. Call it
// once the syncer has stopped.
// unlock gives the journal's lock back.
func (j *journal) unlock() {
	if j.lock != nil {
		_ = j.lock.Close() // closing the file releases the flock
		j.lock = nil
	}
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	defer j.unlock()
	var errs []error
	for _, s := range j.unsynced {
		errs = append(errs, s.release(!s.removed))
	}
	j.unsynced = nil
	if j.next != nil {
		// Never used: leave no empty segment behind.
		if j.nextMap != nil {
			errs = append(errs, unmapSegment(j.nextMap))
			j.nextMap = nil
		}
		errs = append(errs, j.next.Close(), os.Remove(j.nextName))
		j.next = nil
	}
	if j.m != nil && j.f != nil {
		errs = append(errs, j.unmapLocked()) // appends after close reopen the file
	}
	if j.f != nil {
		if j.dirty {
			errs = append(errs, j.f.Sync())
		}
		errs = append(errs, j.f.Close())
		j.f = nil
		if j.size == 0 && !j.direct {
			// An append after close creates it again.
			errs = append(errs, os.Remove(j.active))
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("usage: journal: close: %w", err)
	}
	// No syncer runs any more: Sync callers waiting for its next round get
	// this one, and later ones find it over (appends after close are
	// synced one by one).
	j.round.err = err
	close(j.round.done)
	return err
}

// scan reads a sealed segment from s.offset, skipping s.skip records, and
// hands its records to fn in batches of up to n. It advances s.offset and
// s.skip past each batch fn took, so a scan that fn stops resumes after the
// last batch written. It returns the number of lines that did not decode,
// which it skips: a line torn by a crash.
func scan(s *segment, n int, fn func([]Record) error) (bad int, err error) {
	if s.offset >= s.size {
		return 0, nil
	}
	f, err := os.Open(s.path)
	if err != nil {
		return 0, fmt.Errorf("usage: journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.NewSectionReader(f, s.offset, s.size-s.offset))
	sc.Buffer(make([]byte, 0, 64<<10), maxJournalLine)
	batch := make([]Record, 0, n)
	pos := s.offset // offset after the last line read
	skip := s.skip
	badAll := 0 // bad counts those in batches fn took
	for sc.Scan() {
		pos += int64(len(sc.Bytes())) + 1
		var r Record
		switch {
		case len(bytes.TrimSpace(sc.Bytes())) == 0:
			// A torn line's newline, added by openJournalFile.
		case json.Unmarshal(sc.Bytes(), &r) != nil:
			badAll++
		case skip > 0:
			skip--
		default:
			batch = append(batch, r)
		}
		if len(batch) == n {
			if err := fn(batch); err != nil {
				return bad, err
			}
			batch = batch[:0]
			s.offset, s.skip, bad = pos, 0, badAll
		}
	}
	if err := sc.Err(); err != nil {
		return bad, fmt.Errorf("usage: journal: %w", err)
	}
	if len(batch) > 0 {
		if err := fn(batch); err != nil {
			return bad, err
		}
	}
	s.offset, s.skip = s.size, 0
	return badAll, nil
}
