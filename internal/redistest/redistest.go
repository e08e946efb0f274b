// Package redistest starts a real redis-server for tests, because a fake
// would not show what the gateway depends on: Lua scripts running
// atomically, keys expiring, and clients coping with a server that goes away,
// hangs, or comes back empty.
//
// Each Server listens on a free 127.0.0.1 port without persistence and is
// stopped by t.Cleanup. Tests fail (not skip) when redis-server is missing, so
// a missing binary can never pass for a green run.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/testproc"
)

// startTimeout bounds how long Start and Restart wait for the server to
// answer PING.
const startTimeout = 10 * time.Second

// Server is a redis-server process owned by one test. Its methods are safe for
// concurrent use; those that can fail call t.Fatal, so call them from the
// test's goroutine.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu     sync.Mutex // guards cmd, exited and paused
	cmd    *exec.Cmd  // nil while stopped
	exited chan error // receives cmd.Wait's result
	paused bool       // the process is stopped with SIGSTOP
}

// Start starts a redis-server on a free 127.0.0.1 port, waits until it
// answers PING, and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("install redis-server (Debian: apt-get install redis-server)")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	// A free port can be taken by another process between the probe and
	// redis-server's bind; try a few.
	for attempt := 0; ; attempt++ {
		s.port = testproc.FreePort(t)
		err = s.start()
		if err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("redistest: %v", err)
		}
	}
	t.Cleanup(s.Stop)
	return s
}

// URL returns the server's address as "redis://127.0.0.1:port/0".
func (s *Server) URL() string {
	return "redis://" + s.Addr() + "/0"
}

// Addr returns the server's "127.0.0.1:port".
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Stop stops the server (a paused one too) and waits for it to exit. Its
// data is lost: the server runs without persistence. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart stops the server if it runs and starts a new one on the same port,
// empty. It waits until the new one answers PING.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	s.stopLocked()
	s.mu.Unlock()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Pause freezes the server with SIGSTOP: connections stay open and commands
// hang, as they do when Redis is overloaded or the network drops packets.
// Resume (or Stop) ends it.
func (s *Server) Pause() {
	s.signal(syscall.SIGSTOP, true)
}

// Resume lets a paused server run again.
func (s *Server) Resume() {
	s.signal(syscall.SIGCONT, false)
}

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redistest: %v: server not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
	s.paused = paused
}

// start runs redis-server on s.port and waits for PING to answer.
func (s *Server) start() error {
	out := &testproc.Output{}
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(startTimeout)
	for {
		if ping(s.Addr()) == nil {
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %v: %s", err, out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d did not answer PING within %v: %s", s.port, startTimeout, out)
		}
	}
	s.mu.Lock()
	s.cmd, s.exited, s.paused = cmd, exited, false
	s.mu.Unlock()
	return nil
}

// stopLocked terminates the running server and waits for it, killing it when
// it does not exit within a few seconds.
func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	if s.paused {
		// A stopped process keeps SIGTERM pending until it runs again.
		_ = cmd.Process.Signal(syscall.SIGCONT)
		s.paused = false
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
