//go:build unix

package usage

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockJournal takes the journal's lock, path.lock, for this process: two
// processes on one journal would cut and replay each other's segments (and,
// with segments mapped into memory, crash on a cut one). The lock goes with
// the process, however it ends.
func lockJournal(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("usage: journal: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("usage: journal %s is in use by another process (it holds %s.lock): give each gateway instance a journal of its own", path, path)
		}
		return nil, fmt.Errorf("usage: journal: lock: %w", err)
	}
	return f, nil
}
