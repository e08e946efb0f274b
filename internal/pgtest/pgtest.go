// Package pgtest starts a real PostgreSQL server for tests, because a fake
// would not show what the usage ledger depends on: transactions, conflicts on
// a primary key, and a pool coping with a server that goes away and comes
// back.
//
// Each Server is a fresh cluster (initdb) in a temporary directory, listening
// on a free 127.0.0.1 port and on a unix socket in that directory, with fsync
// off for speed, and is stopped and removed by t.Cleanup. PostgreSQL refuses
// to run as root, so as root it runs as the postgres user through runuser.
// Tests fail (not skip) when the binaries are missing, so a missing binary can
// never pass for a green run.
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-gateway/sluice/internal/testproc"
)

// Database is the database Start creates, which URL names.
const Database = "sluice"

// startTimeout bounds how long Start and Restart wait for the server to
// accept connections.
const startTimeout = 15 * time.Second

// Server is a PostgreSQL server owned by one test. Its methods are safe for
// concurrent use; those that can fail call t.Fatal, so call them from the
// test's goroutine.
type Server struct {
	t        testing.TB
	postgres string // the postgres binary
	dir      string // holds data/ and the unix socket
	asUser   string // "postgres" when running as root, else ""
	port     int

	mu     sync.Mutex // guards cmd and exited
	cmd    *exec.Cmd  // nil while stopped
	exited chan error // receives cmd.Wait's result
}

// findBinary looks for a PostgreSQL server program on the PATH, then where
// Debian's packages put it (/usr/lib/postgresql/VERSION/bin, which is not on
// the PATH), the newest version first.
func findBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// pgVersion is the major version in /usr/lib/postgresql/VERSION/bin.
func pgVersion(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// Start initializes a cluster, starts PostgreSQL on a free 127.0.0.1 port,
// waits until it accepts connections, creates the database Database, and
// stops the server and removes its files when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	initdb, err1 := findBinary("initdb")
	postgres, err2 := findBinary("postgres")
	if err1 != nil || err2 != nil {
		t.Fatal("install postgresql (Debian: apt-get install postgresql)")
	}
	s := &Server{t: t, postgres: postgres}
	if os.Geteuid() == 0 {
		s.asUser = "postgres"
	}
	s.dir = s.tempDir()

	// -N: no fsync of the new cluster; the tests need no crash safety.
	cmd := s.command(initdb, "-D", s.data(), "-U", "postgres", "-A", "trust", "-N", "-E", "UTF8", "--locale=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v: %s", err, out)
	}

	// A free port can be taken by another process between the probe and
	// postgres's bind; try a few.
	for attempt := 0; ; attempt++ {
		s.port = testproc.FreePort(t)
		err := s.start()
		if err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("pgtest: %v", err)
		}
	}
	t.Cleanup(s.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+Database); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s
}

// tempDir returns a directory for the cluster, removed when the test ends.
// It is not under t.TempDir: the unix socket's path must stay short, and as
// root the directory goes to the postgres user, who may not enter the
// root-only directories t.TempDir makes.
func (s *Server) tempDir() string {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
	// Registered before Start's Cleanup(s.Stop), so it runs after it.
	s.t.Cleanup(func() { os.RemoveAll(dir) })
	if s.asUser == "" {
		return dir
	}
	u, err := user.Lookup(s.asUser)
	if err != nil {
		s.t.Fatalf("pgtest: running as root needs the %s user (Debian: apt-get install postgresql): %v", s.asUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
	return dir
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// command runs name as the postgres user when the test runs as root.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	if s.asUser == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("runuser", append([]string{"-u", s.asUser, "--", name}, args...)...)
}

// URL returns a URL of the database Database, for pgx.
func (s *Server) URL() string {
	return s.url(Database)
}

func (s *Server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", s.Addr(), db)
}

// Addr returns the server's "127.0.0.1:port".
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Stop shuts the server down (PostgreSQL's fast shutdown: clients are
// disconnected) and waits for it to exit; its data stays for Restart.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart stops the server if it runs and starts it again on the same port
// with the same data, waiting until it accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	s.stopLocked()
	s.mu.Unlock()
	if err := s.start(); err != nil {
		s.t.Fatalf("pgtest: restart: %v", err)
	}
}

// start runs postgres on s.port and waits until it accepts connections.
func (s *Server) start() error {
	out := &testproc.Output{}
	cmd := s.command(s.postgres,
		"-D", s.data(),
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=50",
	)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(startTimeout)
	for {
		if ready(s.url("postgres")) == nil {
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("postgres exited: %v: %s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			s.cmd, s.exited = cmd, exited
			s.stopLocked()
			s.mu.Unlock()
			return fmt.Errorf("postgres on port %d did not accept connections within %v: %s", s.port, startTimeout, out)
		}
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

// ready connects once and pings.
func ready(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// stopLocked shuts the running server down and waits for it. The signal goes
// to the postmaster itself, whose pid is in postmaster.pid: under runuser,
// the process started is runuser, which would forward SIGTERM (a smart
// shutdown that waits for clients) and then SIGKILL the postmaster,
// orphaning its backends. SIGINT is the fast shutdown; SIGQUIT, after a few
// seconds, the immediate one.
func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	pid := s.postmasterPID(cmd)
	_ = syscall.Kill(pid, syscall.SIGINT)
	select {
	case <-exited:
		return
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// postmasterPID returns the postmaster's pid: the started process itself, or
// under runuser the child of it that postmaster.pid names. A pid that is not
// runuser's child (a stale file) is never signalled: runuser's is returned.
func (s *Server) postmasterPID(cmd *exec.Cmd) int {
	if s.asUser == "" {
		return cmd.Process.Pid
	}
	b, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		return cmd.Process.Pid
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 || parentPID(pid) != cmd.Process.Pid {
		return cmd.Process.Pid
	}
	return pid
}

// parentPID returns pid's parent from /proc, or 0.
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
