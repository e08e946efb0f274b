// Package testproc holds what the packages that start real servers for tests
// (redistest, pgtest) share: a free loopback port and a place for a server's
// output, shown when it fails to start.
package testproc

import (
	"bytes"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreePort returns a loopback port that was free a moment ago. It is
// taken below Linux's ephemeral range (32768 and up by default), which the
// kernel hands to every listener on port 0 and every outgoing connection:
// a port found through port 0 and closed could be taken by any of those,
// in this process or another test binary, before the server it is for
// binds it (seen as "address already in use" under a busy suite).
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			l.Close()
			return port
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Output collects a server process's output. It is safe for concurrent use.
type Output struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

// Write appends p.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String returns what was written, trimmed.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.TrimSpace(o.buf.String())
}
