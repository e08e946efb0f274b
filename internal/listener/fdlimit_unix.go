//go:build unix

package listener

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises the process's soft limit on open files
// (RLIMIT_NOFILE) to its hard limit, and returns the soft limit before and
// after. (The Go runtime raises it at start on most systems already; this
// makes sure, and tells what it is.)
func RaiseFileLimit() (before, after uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("reading the open-file limit: %w", err)
	}
	before = uint64(lim.Cur)
	if lim.Cur >= lim.Max {
		return before, before, nil
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return before, before, fmt.Errorf("raising the open-file limit to %d: %w", uint64(lim.Max), err)
	}
	return before, uint64(lim.Cur), nil
}

// FileLimit returns the process's soft limit on open files; 0 when there is
// none (RLIM_INFINITY, whose value differs between systems, or anything as
// large) or it cannot be read.
func FileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || uint64(lim.Cur) >= 1<<62 {
		return 0
	}
	return uint64(lim.Cur)
}
