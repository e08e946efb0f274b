package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Regression tests of a review: each failed before its fix.

// TestHeadLimitNotRacedByReuse: a body-less answer gives its connection
// back only once the head's bound is off, so that the next user's bound
// is not overwritten (the race detector saw it).
func TestHeadLimitNotRacedByReuse(t *testing.T) {
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	tr, _ := newTransport(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 300 {
				req, _ := http.NewRequest(http.MethodGet, s, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
}

func newServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// rawServer serves each connection with serve, until the test ends.
func rawServer(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/"
}

// TestWholeRequestNotResent: a POST that reached the server whole, on a
// reused connection the server then closed without an answer, is not sent
// again (the server may have acted on it), as net/http sends it once.
func TestWholeRequestNotResent(t *testing.T) {
	var posts atomic.Int32
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if req.Method == http.MethodPost {
				posts.Add(1)
				return // closes with no answer
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr, _ := newTransport(t)
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	req, _ = http.NewRequest(http.MethodPost, url, strings.NewReader(`{"prompt":"x"}`))
	if _, err := tr.RoundTrip(req); err == nil {
		t.Error("no error for a request the server never answered")
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("the server got the POST %d times; want 1", n)
	}
}

// TestUnsolicitedBytesNotTakenForAnAnswer: what a server sends after its
// answer ended is never read as the next request's answer.
func TestUnsolicitedBytesNotTakenForAnAnswer(t *testing.T) {
	var conns atomic.Int32
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		first := conns.Add(1) == 1
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if first {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
				time.Sleep(20 * time.Millisecond)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE")
				first = false
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
		}
	})
	tr, _ := newTransport(t)
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	time.Sleep(100 * time.Millisecond) // the unsolicited answer arrives meanwhile
	req, _ = http.NewRequest(http.MethodGet, url, nil)
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "second" {
		t.Errorf("the second request read %q, an answer it never asked for", b)
	}
}

// TestEarlyAnswerKept: a server that answers before reading a large body
// (413) and closes gives its answer, not a broken pipe.
func TestEarlyAnswerKept(t *testing.T) {
	url := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	}))
	tr, _ := newTransport(t)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(bytes.Repeat([]byte("x"), 16<<20)))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v; want the server's 413", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d; want 413", resp.StatusCode)
	}
}

// TestClosedTransportRefuses: after Close, a host seen before is not dialled.
func TestClosedTransportRefuses(t *testing.T) {
	url := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	tr, _ := newTransport(t)
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	tr.Close()
	req, _ = http.NewRequest(http.MethodGet, url, nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, errClosed) {
		t.Errorf("after Close: %v; want errClosed", err)
	}
}

// TestCloseIdleConnectionsClosesThoseInUseAfter: a connection in use when
// CloseIdleConnections ran is closed when its exchange ends, not kept.
func TestCloseIdleConnectionsClosesThoseInUseAfter(t *testing.T) {
	url := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	tr, _ := newTransport(t)
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, p := range tr.pools {
		if len(p.idle) != 0 {
			t.Errorf("%d idle connections after CloseIdleConnections; want 0", len(p.idle))
		}
	}
}

type failingBody struct{ n int }

func (f *failingBody) Read(p []byte) (int, error) {
	if f.n == 0 {
		f.n++
		return copy(p, "abc"), nil
	}
	return 0, errors.New("client upload aborted")
}
func (f *failingBody) Close() error { return nil }

// TestBodyReadErrorNotRetried: a request whose own body fails is not taken
// for a stale connection and sent again from GetBody.
func TestBodyReadErrorNotRetried(t *testing.T) {
	var n atomic.Int32
	url := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	tr, _ := newTransport(t)
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, _ := tr.RoundTrip(req)
	io.ReadAll(resp.Body)
	req, _ = http.NewRequest(http.MethodPost, url, nil)
	req.Body = &failingBody{}
	req.ContentLength = 10
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader([]byte("0123456789"))), nil }
	var be *bodyError
	if resp, err := tr.RoundTrip(req); !errors.As(err, &be) {
		if err == nil {
			resp.Body.Close()
		}
		t.Errorf("RoundTrip: %v; want the body's error", err)
	}
}

// TestCancelDuringDial: a context cancelled while dialling gives its error.
func TestCancelDuringDial(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &Transport{Dial: func(ctx context.Context, n, a string) (net.Conn, error) {
		cancel()
		return (&net.Dialer{}).DialContext(ctx, n, a)
	}, Fallback: http.DefaultTransport}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:1/", nil)
	if _, err := tr.RoundTrip(req); err != context.Canceled {
		t.Errorf("err = %v; want context.Canceled", err)
	}
}
