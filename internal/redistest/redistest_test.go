package redistest

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// do sends one inline command and returns the first line of the reply.
func do(t *testing.T, addr, cmd string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestLifecycle(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/0") {
		t.Errorf("URL() = %q; want redis://127.0.0.1:port/0", s.URL())
	}
	if got, err := do(t, s.Addr(), "SET k v"); err != nil || got != "+OK" {
		t.Fatalf("SET = %q, %v; want +OK", got, err)
	}
	if got, err := do(t, s.Addr(), "CONFIG GET save"); err != nil || got != "*2" {
		t.Fatalf("CONFIG GET save = %q, %v", got, err)
	}

	s.Pause()
	if got, err := do(t, s.Addr(), "PING"); err == nil {
		t.Errorf("PING to a paused server = %q; want a timeout", got)
	}
	s.Resume()
	if got, err := do(t, s.Addr(), "PING"); err != nil || got != "+PONG" {
		t.Errorf("PING after Resume = %q, %v; want +PONG", got, err)
	}

	s.Stop()
	if _, err := do(t, s.Addr(), "PING"); err == nil {
		t.Errorf("PING after Stop succeeded; want connection refused")
	}
	s.Stop() // a second Stop does nothing

	s.Restart()
	if got, err := do(t, s.Addr(), "GET k"); err != nil || got != "$-1" {
		t.Errorf("GET k after Restart = %q, %v; want $-1 (empty: no persistence)", got, err)
	}

	// Stop ends a paused server too, as Cleanup must.
	s.Pause()
	done := make(chan struct{})
	go func() { s.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Stop of a paused server did not return")
	}
}
