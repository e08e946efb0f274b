//go:build !unix

package transport

// peekOpen cannot look without blocking here: a connection is taken as
// open, and a request that finds it closed is sent again.
func peekOpen(uintptr) bool { return true }
