//go:build unix

package listener

import (
	"syscall"
	"testing"
)

// TestRaiseFileLimit lowers the soft limit on open files, as a service
// manager may start the process with, and raises it again.
func TestRaiseFileLimit(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
			t.Errorf("restoring the limit: %v", err)
		}
	})
	if orig.Max < 512 {
		t.Skipf("hard limit %d: too low to lower", orig.Max)
	}
	low := orig
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	if got := FileLimit(); got != 256 {
		t.Errorf("FileLimit() = %d; want 256", got)
	}
	before, after, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if before != 256 || after != uint64(orig.Max) {
		t.Errorf("RaiseFileLimit() = %d, %d; want 256, %d", before, after, orig.Max)
	}
	if got := FileLimit(); got != uint64(orig.Max) && orig.Max < 1<<62 {
		t.Errorf("FileLimit() after = %d; want %d", got, orig.Max)
	}
}
