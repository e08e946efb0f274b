//go:build !linux

package usage

import (
	"errors"
	"os"
)

// mapSegment is Linux only (fallocate); elsewhere segments are appended to
// with write(2).
func mapSegment(*os.File, int) ([]byte, error) {
	return nil, errors.New("usage: journal: no mapped segments on this system")
}

func unmapSegment([]byte) error { return nil }
