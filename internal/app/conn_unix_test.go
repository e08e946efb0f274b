//go:build unix

package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fewFilesConfig is a gateway for TestAdminUnderFileExhaustion's child; its
// backend is never called.
const fewFilesConfig = `
server:
  listen: 127.0.0.1:0
  read_header_timeout: 120s
  shutdown_grace: 1s
admin:
  listen: 127.0.0.1:0
usage:
  store: "sqlite:%[1]s/usage.db"
  journal: "%[1]s/usage.journal"
backends:
  - name: b
    kind: openai
    url: http://127.0.0.1:9
    auth: { api_key: backend-key }
    deployments: { gpt-4o: gpt-4o }
pools:
  - name: p
    members: [{ backend: b }]
models: { gpt-4o: p }
products:
  - name: standard
    models: [gpt-4o]
subscriptions:
  - name: s
    product: standard
    keys: ["sk-fewfiles-0123456789"]
`

// fewFilesLimit is the child's limit on open files.
const fewFilesLimit = 256

// TestAdminUnderFileExhaustion replays the incident: strangers open more idle
// connections than the process has file descriptors. The gateway runs in a
// child process whose open-file limit is 256; 400 connections are opened to
// its client port. The admin listener still answers /readyz, and a further
// client connection gets 503.
func TestAdminUnderFileExhaustion(t *testing.T) {
	if os.Getenv("SLUICE_FEW_FILES_DIR") != "" {
		t.Skip("the child runs in TestGatewayWithFewFilesChild")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Max < 1024 {
		t.Skipf("open-file hard limit %d (%v): want room for 400 connections and a child", lim.Max, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sluice.yaml"), fmt.Appendf(nil, fewFilesConfig, dir), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGatewayWithFewFilesChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SLUICE_FEW_FILES_DIR="+dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	addrs := make(chan [2]string, 1)
	var drained sync.WaitGroup
	drained.Add(1)
	go func() {
		defer drained.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(&logs, sc.Text())
			var line struct{ Msg, Listen, Admin string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "sluice serving" {
				addrs <- [2]string{line.Listen, line.Admin}
			}
		}
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * connWait):
			_ = cmd.Process.Kill()
			<-done
		}
		drained.Wait()
		if t.Failed() {
			t.Logf("the gateway's log:\n%.4000s", logs.String())
		}
	}()
	var listen, admin string
	select {
	case a := <-addrs:
		listen, admin = a[0], a[1]
	case <-time.After(6 * connWait):
		t.Fatalf("the gateway did not start:\n%s", logs.String())
	}

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 400 {
		c, err := net.DialTimeout("tcp", listen, connWait)
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	probe := &http.Client{Timeout: connWait, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := probe.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatalf("/readyz with 400 client connections open: %v; want 200", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz: %d; want 200", resp.StatusCode)
	}
	resps, _, _ := rawExchange(t, dialFrom(t, "", listen), "")
	if len(resps) != 1 || resps[0].StatusCode != 503 {
		t.Errorf("a further client connection: %d responses; want 503", len(resps))
	}
}

// TestGatewayWithFewFilesChild is TestAdminUnderFileExhaustion's child: it
// serves the config in $SLUICE_FEW_FILES_DIR with an open-file limit of 256
// until SIGTERM.
func TestGatewayWithFewFilesChild(t *testing.T) {
	dir := os.Getenv("SLUICE_FEW_FILES_DIR")
	if dir == "" {
		t.Skip("run by TestAdminUnderFileExhaustion")
	}
	lim := syscall.Rlimit{Cur: fewFilesLimit, Max: fewFilesLimit}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := Main(ctx, []string{"serve", "--config", filepath.Join(dir, "sluice.yaml")}, io.Discard, os.Stderr); err != nil {
		t.Fatal(err)
	}
}
