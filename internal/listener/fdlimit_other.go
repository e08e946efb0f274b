//go:build !unix

package listener

import "errors"

// RaiseFileLimit does nothing where there is no RLIMIT_NOFILE.
func RaiseFileLimit() (before, after uint64, err error) { return 0, 0, errors.ErrUnsupported }

// FileLimit returns 0: no limit is known.
func FileLimit() uint64 { return 0 }
