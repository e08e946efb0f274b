package listener

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor is how long a test waits for something that takes milliseconds on
// an idle machine.
const waitFor = 10 * time.Second

// serve serves h on a new Listener on 127.0.0.1 with o, and returns the
// Listener and its address. configure may change the server first.
func serve(t *testing.T, o Options, h http.Handler, configure ...func(*http.Server)) (*Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, o)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: waitFor}
	for _, f := range configure {
		f(srv)
	}
	done := make(chan error, 1)
	go func() { done <- l.Serve(srv) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v; want http.ErrServerClosed", err)
		}
	})
	return l, ln.Addr().String()
}

// ok answers 200 "ok" and counts the requests it served.
func ok(served *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		_, _ = io.WriteString(w, "ok")
	})
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange writes req on c and returns every response it reads until the
// connection closes, and whether it did close.
func exchange(t *testing.T, c net.Conn, req string) (resps []*http.Response, bodies []string, closed bool) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(waitFor))
	if req != "" {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatalf("writing the request: %v", err)
		}
	}
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return resps, bodies, true
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return resps, bodies, false
			}
			t.Fatalf("reading a response: %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading a response body: %v", err)
		}
		resps, bodies = append(resps, resp), append(bodies, string(b))
		if resp.Close {
			_, err := br.ReadByte()
			return resps, bodies, errors.Is(err, io.EOF)
		}
	}
}

// apiError is the OpenAI-shaped error body.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

// checkError checks that resp is an OpenAI-shaped JSON error of status and
// code, that closes the connection.
func checkError(t *testing.T, resp *http.Response, body string, status int, code string) {
	t.Helper()
	var e apiError
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != code || e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("body %q (%v); want an OpenAI-shaped error with code %q", body, err, code)
	}
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/json" || !resp.Close ||
		resp.ContentLength != int64(len(body)) {
		t.Errorf("got %d, Content-Type %q, Connection: close %v, Content-Length %d for %d bytes; want %d, application/json, close, exact length",
			resp.StatusCode, resp.Header.Get("Content-Type"), resp.Close, resp.ContentLength, len(body), status)
	}
}

// waitOpen waits until l has n connections open.
func waitOpen(t *testing.T, l *Listener, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for l.Stats().Open != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open; want %d", l.Stats().Open, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMaxConns fills the cap with idle connections: the next one is answered
// 503 and closed without reaching the server; closing one frees its slot.
func TestMaxConns(t *testing.T) {
	var served atomic.Int64
	l, addr := serve(t, Options{MaxConns: 8}, ok(&served))
	var idle []net.Conn
	for range 8 {
		idle = append(idle, dial(t, addr))
	}
	waitOpen(t, l, 8)

	over := dial(t, addr)
	resps, bodies, closed := exchange(t, over, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if len(resps) != 1 || !closed {
		t.Fatalf("over the cap: %d responses, closed %v; want one 503, then the connection closed", len(resps), closed)
	}
	checkError(t, resps[0], bodies[0], http.StatusServiceUnavailable, "too_many_connections")
	if got := resps[0].Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q; want 1", got)
	}
	if served.Load() != 0 {
		t.Errorf("the server served %d requests; want none over the cap", served.Load())
	}
	if s := l.Stats(); s.RefusedMax != 1 || s.Accepted != 8 {
		t.Errorf("stats %+v; want 8 accepted, 1 refused over the cap", s)
	}

	idle[0].Close()
	waitOpen(t, l, 7)
	resps, bodies, _ = exchange(t, dial(t, addr), "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 200 || bodies[0] != "ok" {
		t.Errorf("after a connection closed: %d responses %v; want 200 ok", len(resps), bodies)
	}
}

// TestMaxConnsPerIP: one address cannot take more than its share; another
// address still gets in.
func TestMaxConnsPerIP(t *testing.T) {
	var served atomic.Int64
	l, addr := serve(t, Options{MaxConns: 100, MaxConnsPerIP: 2}, ok(&served))
	dial(t, addr)
	dial(t, addr)
	waitOpen(t, l, 2)
	resps, bodies, closed := exchange(t, dial(t, addr), "")
	if len(resps) != 1 || !closed {
		t.Fatalf("third connection from one address: %d responses, closed %v; want a 503", len(resps), closed)
	}
	checkError(t, resps[0], bodies[0], http.StatusServiceUnavailable, "too_many_connections")
	if !strings.Contains(bodies[0], "your address") {
		t.Errorf("body %q; want it to say the address has too many", bodies[0])
	}
	if s := l.Stats(); s.RefusedPerIP != 1 || s.RefusedMax != 0 {
		t.Errorf("stats %+v; want one refused per IP", s)
	}

	// 127.0.0.2 is another address on the loopback interface of Linux.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: waitFor}
	other, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	defer other.Close()
	resps, _, _ = exchange(t, other, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Errorf("from another address: %d responses; want 200", len(resps))
	}
}

// TestCloseFreesSlotOnce: closing a connection twice frees one slot.
func TestCloseFreesSlotOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Options{MaxConns: 2})
	defer l.Close()
	dial(t, ln.Addr().String())
	dial(t, ln.Addr().String())
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.Close()
	a.Close()
	if got := l.Stats().Open; got != 1 {
		t.Errorf("after closing one of two connections twice: %d open; want 1", got)
	}
}

// TestCloseEndsLingering: closing the listener ends the refused connections
// it still reads from, so that shutdown does not wait for them.
func TestCloseEndsLingering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Options{MaxConns: 1})
	dial(t, ln.Addr().String())
	kept, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	refused := dial(t, ln.Addr().String()) // stays open: the listener lingers on it
	accepted := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		accepted <- err
	}()
	br := bufio.NewReader(refused)
	_ = refused.SetReadDeadline(time.Now().Add(waitFor))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("refused connection: %v; want 503", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > lingerTimeout/2 {
		t.Errorf("Close took %v; want it to cut the lingering connection short", d)
	}
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v; want net.ErrClosed", err)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("refused connection after Close: %v; want EOF", err)
	}
}
