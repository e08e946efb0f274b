//go:build !unix

package usage

import "os"

// lockJournal takes no lock where flock is not available; the journal
// belongs to one process all the same (docs/usage.md).
func lockJournal(string) (*os.File, error) { return nil, nil }
