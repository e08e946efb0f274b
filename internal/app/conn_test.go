package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/simulator"
)

// connWait is how long a connection test waits for what takes milliseconds
// on an idle machine.
const connWait = 10 * time.Second

// withServerFields adds lines to the server section of the fixture config.
func withServerFields(lines string) fixtureOption {
	return withConfig(strings.Replace(fxConfigYAML, "  shutdown_grace: %s\n", "  shutdown_grace: %s\n"+lines, 1))
}

// hostPort is the address of a fixture URL.
func hostPort(url string) string { return strings.TrimPrefix(url, "http://") }

// dialFrom opens a connection to addr from the loopback address from
// (127.0.0.x; empty: the default).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: connWait}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil && from != "" {
		t.Skipf("connecting from %s (a Linux loopback address): %v", from, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawExchange writes req on c and reads every response until the connection
// closes, or until connWait passes, which closed reports.
func rawExchange(t *testing.T, c net.Conn, req string) (resps []*http.Response, bodies []string, closed bool) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(connWait))
	if req != "" {
		go func() { _, _ = io.WriteString(c, req) }() // a huge head may not be read whole
	}
	br := bufio.NewReader(c)
	for {
		if _, err := br.Peek(1); err != nil {
			return resps, bodies, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading a response: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resps, bodies = append(resps, resp), append(bodies, string(b))
	}
}

// wantAPIError checks that resp is an OpenAI-shaped JSON error with status
// and code.
func wantAPIError(t *testing.T, what string, resp *http.Response, body string, status int, code string) {
	t.Helper()
	var e struct {
		Error struct {
			Message, Type, Code string
		} `json:"error"`
	}
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/json" ||
		json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("%s: %d %s %q; want %d application/json with code %q", what, resp.StatusCode,
			resp.Header.Get("Content-Type"), body, status, code)
	}
}

// TestConnectionCaps: idle connections fill max_connections_per_ip, then
// max_connections; every connection beyond gets 503 JSON and is closed, while
// the admin listener answers and a closed connection frees its slot.
func TestConnectionCaps(t *testing.T) {
	f := newFixture(t, withServerFields("  max_connections: 8\n  max_connections_per_ip: 6\n"))
	addr := hostPort(f.url)
	var held []net.Conn
	for range 6 {
		held = append(held, dialFrom(t, "", addr))
	}
	resps, bodies, closed := rawExchange(t, dialFrom(t, "", addr), "GET /v1/models HTTP/1.1\r\nHost: a\r\nApi-Key: "+fxAlphaKey+"\r\n\r\n")
	if len(resps) != 1 || !closed {
		t.Fatalf("7th connection from one address: %d responses, closed %v; want 503 and the connection closed", len(resps), closed)
	}
	wantAPIError(t, "over max_connections_per_ip", resps[0], bodies[0], 503, "too_many_connections")
	if resps[0].Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q; want 1", resps[0].Header.Get("Retry-After"))
	}

	// Another loopback address has its own share, up to the total.
	for range 2 {
		held = append(held, dialFrom(t, "127.0.0.2", addr))
	}
	resps, bodies, closed = rawExchange(t, dialFrom(t, "127.0.0.3", addr), "GET /v1/models HTTP/1.1\r\nHost: a\r\n\r\n")
	if len(resps) != 1 || !closed {
		t.Fatalf("9th connection: %d responses, closed %v; want 503 and the connection closed", len(resps), closed)
	}
	wantAPIError(t, "over max_connections", resps[0], bodies[0], 503, "too_many_connections")
	if strings.Contains(bodies[0], "your address") {
		t.Errorf("over max_connections: %q; want the message about the total, not the address", bodies[0])
	}

	// The admin listener is not capped.
	client := &http.Client{Timeout: connWait, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get(f.admin + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/readyz with the client listener full: %v; want 200", err)
	}
	// The metrics say what happened.
	resp, err := client.Get(f.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sluice_client_connections 8`,
		`sluice_client_connections_refused_total{reason="max_connections"} 1`,
		`sluice_client_connections_refused_total{reason="max_connections_per_ip"} 1`,
	} {
		if !strings.Contains(string(scrape), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Closing a connection frees its slot: a keyed request gets through.
	held[0].Close()
	deadline := time.Now().Add(connWait)
	for {
		resps, _, _ := rawExchange(t, dialFrom(t, "", addr),
			"GET /v1/models HTTP/1.1\r\nHost: a\r\nApi-Key: "+fxAlphaKey+"\r\nConnection: close\r\n\r\n")
		if len(resps) == 1 && resps[0].StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing a connection: still no slot within %v", connWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAmbiguousFramingRefused: a request with both Transfer-Encoding and
// Content-Length gets 400 and its connection is closed; the request
// pipelined after it is never served and no backend sees either.
func TestAmbiguousFramingRefused(t *testing.T) {
	f := newFixture(t)
	body := "0\r\n\r\n"
	smuggled := "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nApi-Key: " + fxAlphaKey + "\r\nContent-Type: application/json\r\n" +
		"Transfer-Encoding: chunked\r\nContent-Length: " + fmt.Sprint(len(body)+len(chatBody)) + "\r\n\r\n" + body + chatBody
	pipelined := "GET /v1/models HTTP/1.1\r\nHost: a\r\nApi-Key: " + fxAlphaKey + "\r\n\r\n"
	resps, bodies, closed := rawExchange(t, dialFrom(t, "", hostPort(f.url)), smuggled+pipelined)
	if len(resps) != 1 || !closed {
		var got []int
		for _, r := range resps {
			got = append(got, r.StatusCode)
		}
		t.Fatalf("responses %v, closed %v; want one 400, then the connection closed", got, closed)
	}
	wantAPIError(t, "Transfer-Encoding with Content-Length", resps[0], bodies[0], 400, "ambiguous_framing")
	if !resps[0].Close {
		t.Error("the 400 does not say Connection: close")
	}
	if n := len(f.seen.all()); n != 0 {
		t.Errorf("the backends saw %d requests; want none", n)
	}
}

// TestCannedErrorsAreJSON: what net/http answers itself, before any handler,
// is OpenAI-shaped JSON too; a handler's text/plain answer is left alone.
func TestCannedErrorsAreJSON(t *testing.T) {
	f := newFixture(t)
	addr := hostPort(f.url)
	tests := []struct {
		name, request string
		status        int
		code          string
	}{
		{"headers over 1 MB", "GET /v1/models HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 1<<20+8<<10) + "\r\n\r\n",
			431, "request_header_fields_too_large"},
		{"malformed request line", "GET /v1/models\r\nHost: a\r\n\r\n", 400, "bad_request"},
		{"malformed Host", "GET /v1/models HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "bad_request"},
		{"unsupported transfer encoding", "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
			501, "unsupported_transfer_encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resps, bodies, closed := rawExchange(t, dialFrom(t, "", addr), tt.request)
			if len(resps) != 1 || !closed {
				t.Fatalf("%d responses, closed %v; want one error, then the connection closed", len(resps), closed)
			}
			wantAPIError(t, tt.name, resps[0], bodies[0], tt.status, tt.code)
		})
	}
	resps, bodies, _ := rawExchange(t, dialFrom(t, "", hostPort(f.admin)), "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 200 || bodies[0] != "ok\n" ||
		resps[0].Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("/healthz: %d responses %q; want its text/plain ok unchanged", len(resps), bodies)
	}
}

// TestShutdownKeepsAdminUntilDrained: while a request is in flight during
// shutdown, the admin listener still accepts, /readyz answers 503, /healthz
// 200 and /metrics serves; once the client listener has drained, the admin
// listener closes.
func TestShutdownKeepsAdminUntilDrained(t *testing.T) {
	f := newFixture(t, withGrace("30s"))
	f.sims["ptu-swedencentral"].SetFaults(simulator.Faults{Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", f.url+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Api-Key", fxAlphaKey)
	inFlight := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		inFlight <- err
	}()
	deadline := time.Now().Add(connWait)
	for len(f.seen.all()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request did not reach the backend")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Shut down, and wait for Serve here rather than in f.stop.
	shutdown, stopped, served := f.cancel, make(chan error, 1), make(chan struct{})
	f.cancel = nil
	go func() { stopped <- <-f.done; close(served) }()
	t.Cleanup(func() {
		select {
		case <-served:
		case <-time.After(3 * connWait):
			t.Error("Serve did not return")
		}
	})
	shutdown()
	probe := &http.Client{Timeout: connWait, Transport: &http.Transport{DisableKeepAlives: true}} // a new connection each
	get := func(path string) int {
		resp, err := probe.Get(f.admin + path)
		if err != nil {
			t.Fatalf("GET %s during shutdown: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for get("/readyz") != 503 {
		if time.Now().After(deadline.Add(connWait)) {
			t.Fatal("/readyz still 200 after shutdown began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := get("/healthz"); got != 200 {
		t.Errorf("/healthz during shutdown: %d; want 200", got)
	}
	if got := get("/metrics"); got != 200 {
		t.Errorf("/metrics during shutdown: %d; want 200", got)
	}
	select {
	case <-stopped:
		t.Fatal("Serve returned while a request was in flight")
	default:
	}

	cancel() // the client gives up: the client listener drains
	<-inFlight
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Serve returned %v; want nil", err)
		}
	case <-time.After(3 * connWait):
		t.Fatal("Serve did not return after the client listener drained")
	}
	if c, err := net.DialTimeout("tcp", hostPort(f.admin), connWait); err == nil {
		c.Close()
		t.Error("the admin listener still accepts after shutdown")
	}
}
