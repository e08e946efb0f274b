//go:build unix

package transport

import "syscall"

// peekOpen reports whether the socket fd is open with nothing to read: a
// peek that would block. Data or end of file means the server is done with
// the connection.
func peekOpen(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
}
