package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// newTransport returns a Transport dialing plainly, with a net/http
// fallback that counts its requests.
func newTransport(t *testing.T) (*Transport, *countingRT) {
	t.Helper()
	fb := &countingRT{rt: &http.Transport{}}
	tr := &Transport{Dial: (&net.Dialer{}).DialContext, Fallback: fb}
	t.Cleanup(tr.Close)
	return tr, fb
}

type countingRT struct {
	rt http.RoundTripper
	n  atomic.Int64
}

func (c *countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

// connCounter counts the connections a test server accepted.
func connCounter(s *httptest.Server) *atomic.Int64 {
	var n atomic.Int64
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func post(t *testing.T, tr http.RoundTripper, u string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, string(b)
}

func TestKeepAliveReusesConnections(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo-Len", fmt.Sprint(len(b)))
		w.Header().Set("X-Ct", r.Header.Get("Content-Type"))
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), b)
	}))
	conns := connCounter(s)
	s.Start()
	defer s.Close()
	tr, fb := newTransport(t)
	for i := range 20 {
		resp, got := post(t, tr, s.URL+"/v1/chat?x=1", fmt.Sprintf(`{"i":%d}`, i))
		if want := fmt.Sprintf(`POST /v1/chat?x=1 {"i":%d}`, i); got != want || resp.StatusCode != 200 {
			t.Fatalf("got %d %q; want 200 %q", resp.StatusCode, got, want)
		}
		if resp.Header.Get("X-Ct") != "application/json" {
			t.Fatalf("headers not sent: %v", resp.Header)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 20 sequential requests; want 1", n)
	}
	if fb.n.Load() != 0 {
		t.Errorf("the fallback sent %d requests; want 0", fb.n.Load())
	}
}

func TestChunkedAndStreamedAnswers(t *testing.T) {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			if i == 0 {
				<-release
			}
		}
	}))
	defer s.Close()
	tr, _ := newTransport(t)
	req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	// The first event arrives while the server still holds the rest.
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: 0\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: 1\n\ndata: 2\n\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	resp.Body.Close()
	// Read to its end, the chunked answer gave its connection back.
	tr.pools[hostKey{"http", s.Listener.Addr().String()}].mu.Lock()
	n := len(tr.pools[hostKey{"http", s.Listener.Addr().String()}].idle)
	tr.pools[hostKey{"http", s.Listener.Addr().String()}].mu.Unlock()
	if n != 1 {
		t.Errorf("%d idle connections after a complete chunked answer; want 1", n)
	}
}

func TestCancelCutsAStream(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // holds the stream open until the client leaves
	}))
	defer s.Close()
	tr, _ := newTransport(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel: %v; want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled stream's read did not return")
	}
	// Cancelled before the answer: RoundTrip itself returns the context's error.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that net/http notices the client leaving
		<-r.Context().Done()
	}))
	defer hang.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	req2, _ := http.NewRequestWithContext(ctx2, http.MethodPost, hang.URL, strings.NewReader("x"))
	if _, err := tr.RoundTrip(req2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RoundTrip past its deadline: %v; want context.DeadlineExceeded", err)
	}
}

func TestCloseEarlyClosesTheConnection(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 100000))
	}))
	conns := connCounter(s)
	s.Start()
	defer s.Close()
	tr, _ := newTransport(t)
	req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 10))
	resp.Body.Close() // abandoned: the rest of the answer is still on the wire
	if _, got := post(t, tr, s.URL, ""); len(got) != 100000 {
		t.Fatalf("second answer %d bytes", len(got))
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections; want 2 (an abandoned body's connection is not reused)", n)
	}
}

// TestServerClosedIdleConnection: a server that closes a keep-alive
// connection between requests costs no failed request.
func TestServerClosedIdleConnection(t *testing.T) {
	var mu sync.Mutex
	var last net.Conn
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateIdle {
			mu.Lock()
			last = c
			mu.Unlock()
		}
	}
	s.Start()
	defer s.Close()
	tr, _ := newTransport(t)
	for i := range 5 {
		if _, got := post(t, tr, s.URL, "hello"); got != "ok" {
			t.Fatalf("request %d: %q", i, got)
		}
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return last != nil })
		mu.Lock()
		last.Close() // the server drops the idle connection
		last = nil
		mu.Unlock()
		// Once its end has reached the client's socket, the peek sees it
		// and the next request takes a new connection.
		p := tr.pools[hostKey{"http", s.Listener.Addr().String()}]
		waitFor(t, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.idle) == 1 && !p.idle[0].alive()
		})
	}
}

// TestIdleConnectionPeeked: a connection idle for a while is looked at
// before reuse, and one the server closed is not used.
func TestIdleConnectionPeeked(t *testing.T) {
	var mu sync.Mutex
	var last net.Conn
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateIdle {
			mu.Lock()
			last = c
			mu.Unlock()
		}
	}
	s.Start()
	defer s.Close()
	tr, _ := newTransport(t)
	now := time.Unix(1000, 0)
	tr.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	post(t, tr, s.URL, "")
	p := tr.pools[hostKey{"http", s.Listener.Addr().String()}]
	c, err := p.get(context.Background(), false)
	if err != nil || !c.reused {
		t.Fatalf("a connection just used: reused %v, %v; want it reused", c != nil && c.reused, err)
	}
	p.put(c)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return last != nil })
	mu.Lock()
	last.Close()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	// The close reaches the client's socket soon, not at once.
	waitFor(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.idle) == 1 && !p.idle[0].alive()
	})
	c, err = p.get(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.reused {
		t.Error("a connection the server closed was reused")
	}
	c.nc.Close()
}

// TestStaleConnectionRetried covers the race the liveness peek cannot see:
// the connection dies between the peek and the write, which fails. The
// request never reached the server whole, and is sent again on a new
// connection.
func TestStaleConnectionRetried(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	conns := connCounter(s)
	s.Start()
	defer s.Close()
	tr, _ := newTransport(t)
	if _, got := post(t, tr, s.URL, "a"); got != "ok" {
		t.Fatal(got)
	}
	p := tr.pools[hostKey{"http", s.Listener.Addr().String()}]
	p.mu.Lock()
	c := p.idle[0]
	p.mu.Unlock()
	// A connection whose writes fail, as a closed one's do, but which the
	// peek takes as open.
	c.nc = &eofConn{Conn: c.nc}
	c.bw = bufio.NewWriter(c.nc)
	if _, got := post(t, tr, s.URL, "b"); got != "ok" {
		t.Fatalf("after a stale connection: %q", got)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections; want 2 (the request sent again on a new one)", n)
	}
}

type eofConn struct{ net.Conn }

func (c *eofConn) Read([]byte) (int, error)  { return 0, io.EOF }
func (c *eofConn) Write([]byte) (int, error) { return 0, syscall.EPIPE }

func TestConnectionCloseAndNoBody(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/early":
			w.Header().Set("Link", "</x>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "after hints")
		}
	}))
	conns := connCounter(s)
	s.Start()
	defer s.Close()
	tr, _ := newTransport(t)
	if resp, got := post(t, tr, s.URL+"/close", ""); got != "bye" || !resp.Close {
		t.Fatalf("%q close=%v", got, resp.Close)
	}
	if resp, got := post(t, tr, s.URL+"/204", ""); resp.StatusCode != 204 || got != "" {
		t.Fatalf("%d %q", resp.StatusCode, got)
	}
	if resp, got := post(t, tr, s.URL+"/204", ""); resp.StatusCode != 204 || got != "" {
		t.Fatalf("%d %q", resp.StatusCode, got)
	}
	if resp, got := post(t, tr, s.URL+"/early", ""); resp.StatusCode != 200 || got != "after hints" {
		t.Fatalf("%d %q", resp.StatusCode, got)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections; want 2 (one closed by the server, one reused)", n)
	}
}

func TestUnknownLengthBodyIsChunked(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%v %s", r.TransferEncoding, b)
	}))
	defer s.Close()
	tr, _ := newTransport(t)
	req, _ := http.NewRequest(http.MethodPost, s.URL, io.NopCloser(strings.NewReader("streamed body")))
	req.ContentLength = -1
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "[chunked] streamed body" {
		t.Errorf("server saw %q", b)
	}
}

func TestHeaderInjectionRefused(t *testing.T) {
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer s.Close()
	tr, _ := newTransport(t)
	for _, h := range []http.Header{
		{"X-A": {"v\r\nX-Injected: 1"}},
		{"X-A\r\nX-B": {"v"}},
		{"X A": {"v"}},
		{"X-A": {"v\x00"}},
	} {
		req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader("{}"))
		req.Header = h
		if _, err := tr.RoundTrip(req); err == nil {
			t.Errorf("header %q sent", h)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the server got %d requests", hits.Load())
	}
}

func TestIdleTimeoutAndLimit(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") }))
	conns := connCounter(s)
	s.Start()
	defer s.Close()
	tr, _ := newTransport(t)
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	tr.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tr.IdleTimeout = time.Minute
	tr.MaxIdlePerHost = 2
	post(t, tr, s.URL, "")
	mu.Lock()
	now = now.Add(2 * time.Minute) // the idle connection expired
	mu.Unlock()
	post(t, tr, s.URL, "")
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections; want 2 (an expired idle connection is not reused)", n)
	}
	// Four at once: two are kept idle after.
	var wg sync.WaitGroup
	var resps [4]*http.Response
	for i := range resps {
		req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resps[i] = resp
	}
	for _, r := range resps {
		wg.Go(func() { io.ReadAll(r.Body); r.Body.Close() })
	}
	wg.Wait()
	p := tr.pools[hostKey{"http", s.Listener.Addr().String()}]
	p.mu.Lock()
	n := len(p.idle)
	p.mu.Unlock()
	if n != 2 {
		t.Errorf("%d idle connections; want MaxIdlePerHost 2", n)
	}
}

// TestHugeHeadRefused: a backend that sends headers without end gets an
// error after 1 MB, not the gateway's memory.
func TestHugeHeadRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		clientGone := make(chan struct{})
		go func() { io.Copy(io.Discard, c); close(clientGone) }()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: ")
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for range 64 { // 4 MB, until the client hangs up
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		<-clientGone // the client, not the server, ends the connection
	}()
	tr, _ := newTransport(t)
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, errHeadTooLarge) {
		t.Errorf("RoundTrip: %v (%T); want errHeadTooLarge", err, err)
	}
}

func TestTLS(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %v", r.Proto, r.TLS != nil)
	}))
	s.EnableHTTP2 = true // it offers h2; Sluice asks for http/1.1
	s.StartTLS()
	defer s.Close()
	tr, fb := newTransport(t)
	tr.TLSClientConfig = s.Client().Transport.(*http.Transport).TLSClientConfig
	for range 3 {
		if _, got := post(t, tr, s.URL, ""); got != "HTTP/1.1 true" {
			t.Fatalf("got %q", got)
		}
	}
	if fb.n.Load() != 0 {
		t.Errorf("fallback used %d times", fb.n.Load())
	}
}

// TestRefusedHTTP1FallsBack: a server that ends the TLS handshake because it
// speaks no protocol offered (no_application_protocol: an HTTP/2-only server)
// is served through the fallback from then on. (Go's own servers accept
// HTTP/1.1 from a client that offers only it, even when they list only h2,
// so the server here lists a protocol Sluice never offers.)
func TestRefusedHTTP1FallsBack(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	s.TLS = &tls.Config{NextProtos: []string{"x-only"}}
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	s.StartTLS()
	defer s.Close()
	fb := &countingRT{rt: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("fallback")), Request: r}, nil
	})}
	tr := &Transport{Dial: (&net.Dialer{}).DialContext, Fallback: fb,
		TLSClientConfig: s.Client().Transport.(*http.Transport).TLSClientConfig}
	defer tr.Close()
	for range 2 {
		if _, got := post(t, tr, s.URL, ""); got != "fallback" {
			t.Fatalf("got %q", got)
		}
	}
	if fb.n.Load() != 2 {
		t.Errorf("fallback used %d times; want 2", fb.n.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestProxiedHostsUseTheFallback(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "direct") }))
	defer s.Close()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "via proxy to "+r.URL.Host)
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	proxyFn := func(r *http.Request) (*url.URL, error) {
		if r.URL.Host == "backend.example:80" || r.URL.Host == "backend.example" {
			return pu, nil
		}
		return nil, nil
	}
	fb := &countingRT{rt: &http.Transport{Proxy: proxyFn}}
	tr := &Transport{Dial: (&net.Dialer{}).DialContext, Fallback: fb, Proxy: proxyFn}
	defer tr.Close()
	if _, got := post(t, tr, "http://backend.example/v1", ""); got != "via proxy to backend.example" {
		t.Errorf("got %q", got)
	}
	if _, got := post(t, tr, s.URL, ""); got != "direct" {
		t.Errorf("got %q", got)
	}
	if fb.n.Load() != 1 {
		t.Errorf("fallback used %d times; want 1", fb.n.Load())
	}
}

func TestConcurrentUse(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	defer s.Close()
	tr, _ := newTransport(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				want := fmt.Sprintf("g%d-%d", g, i)
				req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(want))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != want {
					t.Errorf("got %q; want %q", b, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 10 s")
}

func BenchmarkRoundTrip(b *testing.B) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"total_tokens":3}}`)
	}))
	defer s.Close()
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}`)
	run := func(b *testing.B, rt http.RoundTripper) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions", bytes.NewReader(body))
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	b.Run("transport", func(b *testing.B) {
		tr := &Transport{Dial: (&net.Dialer{}).DialContext, Fallback: http.DefaultTransport}
		defer tr.Close()
		run(b, tr)
	})
	b.Run("net-http", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 1024}
		defer tr.CloseIdleConnections()
		run(b, tr)
	})
}
