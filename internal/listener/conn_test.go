package listener

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAmbiguousFraming sends requests whose framing net/http and a proxy in
// front of it could read differently, each after a valid request and before
// a pipelined one: the valid one is served, the ambiguous one is answered
// 400 and the connection closed, and the pipelined one never reaches the
// handler.
func TestAmbiguousFraming(t *testing.T) {
	pathsCh := make(chan string, 16)
	var logs lockedBuffer
	l, addr := serve(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		pathsCh <- r.URL.Path
		_, _ = io.WriteString(w, "ok")
	}))
	const (
		first     = "POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
		pipelined = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	)
	tests := []struct {
		name, request string
	}{
		{"chunked and Content-Length", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
		{"Content-Length and chunked, other case", "POST /x HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\nTRANSFER-ENCODING: Chunked\r\n\r\n0\r\n\r\n"},
		{"folded chunked and Content-Length", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
		{"chunked in HTTP/1.0", "POST /x HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, split := range []bool{false, true} {
				before := l.Stats().Ambiguous
				c := dial(t, addr)
				var resps []*http.Response
				var bodies []string
				var closed bool
				if split {
					// The ambiguous head arrives in two writes: net/http
					// has its first half, read with the request before it,
					// when the tracker sees the head end.
					half := len(first) + len(tt.request)/2
					stream := first + tt.request + pipelined
					if _, err := io.WriteString(c, stream[:half]); err != nil {
						t.Fatal(err)
					}
					if p := <-pathsCh; p != "/first" {
						t.Fatalf("served %s; want /first", p)
					}
					resps, bodies, closed = exchange(t, c, stream[half:])
				} else {
					resps, bodies, closed = exchange(t, c, first+tt.request+pipelined)
					if p := <-pathsCh; p != "/first" {
						t.Fatalf("served %s; want /first", p)
					}
				}
				if len(resps) != 2 || !closed {
					t.Fatalf("split %v: %d responses, closed %v; want 200, then 400 and the connection closed", split, len(resps), closed)
				}
				if resps[0].StatusCode != 200 {
					t.Errorf("the valid request before: %d; want 200", resps[0].StatusCode)
				}
				checkError(t, resps[1], bodies[1], http.StatusBadRequest, "ambiguous_framing")
				select {
				case p := <-pathsCh:
					t.Errorf("the handler served %s after the ambiguous request", p)
				default:
				}
				if got := l.Stats().Ambiguous - before; got != 1 {
					t.Errorf("Ambiguous counted %d; want 1", got)
				}
				if !strings.Contains(logs.String(), "request refused") || !strings.Contains(logs.String(), "client_ip=127.0.0.1") {
					t.Errorf("log %q; want a line saying a request from 127.0.0.1 was refused", logs.String())
				}
			}
		})
	}
}

// TestCannedErrors: the errors net/http writes itself, in plain text, reach
// the client as OpenAI-shaped JSON with the same status.
func TestCannedErrors(t *testing.T) {
	var served atomic.Int64
	l, addr := serve(t, Options{}, ok(&served), func(s *http.Server) { s.MaxHeaderBytes = 1024 })
	tests := []struct {
		name, request string
		status        int
		code, message string
	}{
		{"headers too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n",
			431, "request_header_fields_too_large", "too large"},
		{"malformed request line", "GET /\r\nHost: a\r\n\r\n", 400, "bad_request", "The request is not valid HTTP/1.1."},
		{"malformed Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "bad_request", "malformed Host header"},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", 400, "bad_request", "missing required Host header"},
		{"unsupported transfer encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "unsupported_transfer_encoding", "Transfer-Encoding"},
		{"HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505, "http_version_not_supported", "HTTP version"},
		{"after a request served", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /\r\n\r\n", 400, "bad_request", "not valid HTTP/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resps, bodies, closed := exchange(t, dial(t, addr), tt.request)
			if len(resps) == 0 || !closed {
				t.Fatalf("%d responses, closed %v; want an error and the connection closed", len(resps), closed)
			}
			last := len(resps) - 1
			checkError(t, resps[last], bodies[last], tt.status, tt.code)
			if !strings.Contains(bodies[last], tt.message) {
				t.Errorf("body %q; want it to say %q", bodies[last], tt.message)
			}
		})
	}
	if got := l.Stats().Malformed; got != uint64(len(tests)) {
		t.Errorf("Malformed counted %d; want %d", got, len(tests))
	}
}

// TestHandlerAnswersNotRewritten: a handler's answer is never rewritten, even
// one written byte for byte like net/http's own plain-text errors.
func TestHandlerAnswersNotRewritten(t *testing.T) {
	const canned = "HTTP/1.1 400 Bad Request" + cannedHeaders + "400 Bad Request"
	_, addr := serve(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hijack":
			c, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_, _ = io.WriteString(c, canned)
		case "/text":
			w.Header()["Date"] = nil
			w.Header().Set("Connection", "close")
			http.Error(w, "400 Bad Request", http.StatusBadRequest)
		}
	}))
	c := dial(t, addr)
	if _, err := io.WriteString(c, "GET /hijack HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != canned {
		t.Errorf("hijacked connection got %q (%v); want the handler's bytes %q unchanged", got, err, canned)
	}

	resps, bodies, _ := exchange(t, dial(t, addr), "GET /text HTTP/1.1\r\nHost: a\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 400 || bodies[0] != "400 Bad Request\n" ||
		!strings.HasPrefix(resps[0].Header.Get("Content-Type"), "text/plain") {
		t.Errorf("handler's text/plain 400: %d responses %q; want it unchanged", len(resps), bodies)
	}
}

// TestWithoutHooks: a server not started with Serve gets the caps and the
// framing checks, and net/http's errors unchanged, since a handler's answer
// cannot be told from them.
func TestWithoutHooks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Options{})
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: waitFor}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	resps, bodies, _ := exchange(t, dial(t, ln.Addr().String()), "GET /\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 400 || bodies[0] != "400 Bad Request" {
		t.Errorf("malformed request without the hooks: %d responses %q; want net/http's own 400", len(resps), bodies)
	}
	resps, _, _ = exchange(t, dial(t, ln.Addr().String()),
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 400 {
		t.Errorf("ambiguous request without the hooks: %d responses; want 400", len(resps))
	}
}

func TestParseCanned(t *testing.T) {
	tests := []struct {
		name, p string
		ok      bool
	}{
		{"431", "HTTP/1.1 431 Request Header Fields Too Large" + cannedHeaders + "431 Request Header Fields Too Large", true},
		{"400 with detail", "HTTP/1.1 400 Bad Request: invalid header name" + cannedHeaders + "400 Bad Request: invalid header name", true},
		{"501", "HTTP/1.1 501 Not Implemented" + cannedHeaders + "Unsupported transfer encoding", true},
		{"other body", "HTTP/1.1 400 Bad Request" + cannedHeaders + "something else", false},
		{"other reason", "HTTP/1.1 400 Bad Thing" + cannedHeaders + "400 Bad Thing", false},
		{"200", "HTTP/1.1 200 OK" + cannedHeaders + "200 OK", false},
		{"more headers", "HTTP/1.1 400 Bad Request\r\nDate: x" + cannedHeaders + "400 Bad Request", false},
		{"head only", "HTTP/1.1 400 Bad Request" + cannedHeaders, false},
	}
	for _, tt := range tests {
		if _, ok := parseCanned([]byte(tt.p), refuseNone); ok != tt.ok {
			t.Errorf("%s: parseCanned = %v; want %v", tt.name, ok, tt.ok)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for the server's goroutines to log to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
