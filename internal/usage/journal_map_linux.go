package usage

import (
	"os"
	"syscall"
)

// fallocate reserves a segment's disk blocks; a variable so that a test can
// make it fail as a full disk does.
var fallocate = syscall.Fallocate

// mapSegment reserves size bytes of disk for the empty file f and maps them
// for appending with a copy instead of a write(2). The blocks are allocated
// before the mapping is made, so that a full disk is an error here and
// never a SIGBUS when a page of the mapping is first written. The pages are
// faulted in now (MAP_POPULATE), by the writer, rather than one by one by
// Add. On an error f is left empty, to be appended to with write(2).
func mapSegment(f *os.File, size int) ([]byte, error) {
	fd := int(f.Fd())
	if err := fallocate(fd, 0, 0, int64(size)); err != nil {
		_ = f.Truncate(0)
		return nil, err
	}
	m, err := syscall.Mmap(fd, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		_ = f.Truncate(0)
		return nil, err
	}
	return m, nil
}

// unmapSegment releases a mapping mapSegment made. What was copied into it
// stays in the file: the pages belong to the kernel's page cache.
func unmapSegment(m []byte) error {
	return syscall.Munmap(m)
}
