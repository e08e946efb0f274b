// Package transport sends HTTP/1.1 requests to backends on pooled
// keep-alive connections, reading and writing each exchange in the caller's
// goroutine. net/http's Transport gives every connection a reader and a
// writer goroutine and hands each request and response between them over
// channels; on a gateway's hot path those hand-offs and wake-ups cost about
// a fifth of the CPU. What this package does not do itself (proxies from the
// environment, servers that speak only HTTP/2, Expect: 100-continue,
// upgrades, trailers) it hands to a fallback net/http Transport.
package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Transport is an http.RoundTripper for HTTP/1.1 over TCP and TLS. Its zero
// value is not usable; set Dial and Fallback at least. It is safe for
// concurrent use.
type Transport struct {
	// Dial opens a TCP connection; it owns the connect timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSClientConfig is cloned for each TLS connection, with the server
	// name set from the URL when empty and ALPN limited to http/1.1. Nil
	// means crypto/tls's defaults (the system's roots).
	TLSClientConfig *tls.Config
	// TLSHandshakeTimeout bounds a TLS handshake; 0 means 10 seconds.
	TLSHandshakeTimeout time.Duration
	// IdleTimeout is how long an idle connection is kept; 0 means 90 s.
	IdleTimeout time.Duration
	// MaxIdlePerHost bounds the idle connections kept per host; 0 means 1024.
	MaxIdlePerHost int
	// Proxy says which proxy a request goes through, as
	// http.Transport.Proxy; nil means none. Requests for a host that goes
	// through a proxy are sent by Fallback, which must use the same
	// function. It is asked once per scheme and host.
	Proxy func(*http.Request) (*url.URL, error)
	// Fallback sends what this Transport does not: requests through a
	// proxy, to servers that refuse HTTP/1.1 in the TLS handshake (HTTP/2
	// only), with Expect: 100-continue, upgrades or trailers.
	Fallback http.RoundTripper

	// now is the clock of idle expiry; time.Now unless a test sets it.
	now func() time.Time

	mu     sync.Mutex // guards pools and closed
	pools  map[hostKey]*pool
	closed bool
	// gen counts CloseIdleConnections calls: a connection dialled before
	// the last one is closed when its exchange ends instead of kept.
	gen atomic.Uint64
}

// hostKey names a pool: one per scheme and host:port.
type hostKey struct{ scheme, addr string }

// pool holds the idle connections to one host, the most recent last.
type pool struct {
	t          *Transport
	key        hostKey
	serverName string
	// viaFallback is set when the host goes through a proxy or refused
	// HTTP/1.1: every request for it goes to the fallback.
	viaFallback atomic.Bool

	mu    sync.Mutex // guards idle and sweep
	idle  []*conn
	sweep *time.Timer // armed while idle connections wait
}

// conn is one connection and its buffers.
type conn struct {
	nc     net.Conn
	raw    syscall.RawConn // the socket under nc, for the liveness peek; nil where there is none
	br     *bufio.Reader
	bw     *bufio.Writer
	p      *pool
	idleAt time.Time
	reused bool
	gen    uint64 // the Transport's gen when it was dialled
	// body reads the request's body being written; see writeRequest.
	body bodyReader
	// head is nc as br reads it, bounding what an answer's head may take.
	head headLimit
	// peek is the liveness check given to raw.Read, made once per
	// connection; it leaves its answer in peeked.
	peek   func(fd uintptr) bool
	peeked bool
}

func (t *Transport) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout > 0 {
		return t.IdleTimeout
	}
	return 90 * time.Second
}

func (t *Transport) maxIdle() int {
	if t.MaxIdlePerHost > 0 {
		return t.MaxIdlePerHost
	}
	return 1024
}

// RoundTrip sends req and returns the response, whose body the caller must
// read to the end or close: a body read to its end gives the connection
// back to the pool, a body closed early closes it. When req's context ends,
// the exchange is cut at once and RoundTrip or the body's Read returns the
// context's error.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.handles(req) {
		return t.Fallback.RoundTrip(req)
	}
	p, err := t.pool(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if p.viaFallback.Load() {
		return t.Fallback.RoundTrip(req)
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			closeBody(req)
			return nil, err
		}
		c, err := p.get(ctx, attempt > 0)
		if errors.Is(err, errRefusedHTTP1) {
			p.viaFallback.Store(true)
			return t.Fallback.RoundTrip(req)
		}
		if err != nil {
			closeBody(req)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		resp, err := c.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		// A reused connection that failed while the request was being
		// written was closed by the server while idle: the request never
		// reached it whole, so it is sent once more on a new connection
		// when its body can be had again. One that failed after the whole
		// request went out is not: the server may have acted on it (as
		// net/http, which sends a POST once).
		var stale *staleError
		if !errors.As(err, &stale) || attempt > 0 || ctx.Err() != nil {
			closeBody(req)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, unwrapStale(err)
		}
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, stale.err
			}
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, stale.err
			}
			req = shallowWithBody(req, body)
		}
	}
}

// handles reports whether t sends req itself.
func (t *Transport) handles(req *http.Request) bool {
	if req.URL == nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		return false
	}
	if req.Method == http.MethodConnect || len(req.Trailer) > 0 {
		return false
	}
	h := req.Header
	return h.Get("Upgrade") == "" && !strings.EqualFold(h.Get("Expect"), "100-continue")
}

// pool returns the pool of req's host, making it on first use.
func (t *Transport) pool(req *http.Request) (*pool, error) {
	key := hostKey{scheme: req.URL.Scheme, addr: canonicalAddr(req.URL)}
	t.mu.Lock()
	p, ok := t.pools[key]
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	if ok {
		return p, nil
	}
	p = &pool{t: t, key: key, serverName: req.URL.Hostname()}
	if t.Proxy != nil {
		u, err := t.Proxy(req)
		if err != nil {
			return nil, err
		}
		p.viaFallback.Store(u != nil)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if q, ok := t.pools[key]; ok {
		return q, nil
	}
	if t.pools == nil {
		t.pools = map[hostKey]*pool{}
	}
	t.pools[key] = p
	return p, nil
}

// errClosed is a request on a closed Transport.
var errClosed = errors.New("transport: closed")

// canonicalAddr is u's host:port, with the scheme's port when u has none.
func canonicalAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// CloseIdleConnections closes the idle connections of every pool, and the
// fallback's. Connections in use close when their exchange ends.
func (t *Transport) CloseIdleConnections() {
	t.gen.Add(1)
	t.mu.Lock()
	pools := make([]*pool, 0, len(t.pools))
	for _, p := range t.pools {
		pools = append(pools, p)
	}
	t.mu.Unlock()
	for _, p := range pools {
		p.closeIdle(func(*conn) bool { return true })
	}
	if ci, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// get returns an idle connection that still looks open, or a new one
// (always new with fresh).
func (p *pool) get(ctx context.Context, fresh bool) (*conn, error) {
	if !fresh {
		now := p.t.clock()
		for {
			p.mu.Lock()
			n := len(p.idle)
			if n == 0 {
				p.mu.Unlock()
				break
			}
			c := p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			if now.Sub(c.idleAt) < p.t.idleTimeout() && c.alive() {
				c.reused = true
				return c, nil
			}
			c.nc.Close()
		}
	}
	return p.dial(ctx)
}

// errRefusedHTTP1 is a TLS handshake the server ended because it speaks no
// protocol Sluice offered: it wants HTTP/2.
var errRefusedHTTP1 = errors.New("transport: the server refused HTTP/1.1")

// dial opens a connection to the pool's host.
func (p *pool) dial(ctx context.Context) (*conn, error) {
	nc, err := p.t.Dial(ctx, "tcp", p.key.addr)
	if err != nil {
		return nil, err
	}
	if p.key.scheme == "https" {
		cfg := &tls.Config{}
		if p.t.TLSClientConfig != nil {
			cfg = p.t.TLSClientConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = p.serverName
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(nc, cfg)
		timeout := p.t.TLSHandshakeTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			if refusedALPN(err) {
				return nil, errRefusedHTTP1
			}
			return nil, err
		}
		nc = tc
	}
	c := &conn{nc: nc, raw: rawConn(nc), bw: bufio.NewWriterSize(nc, 4096), p: p, gen: p.t.gen.Load()}
	c.head.Conn, c.head.left = nc, -1
	c.br = bufio.NewReaderSize(&c.head, 4096)
	c.peek = func(fd uintptr) bool {
		c.peeked = peekOpen(fd)
		return true
	}
	return c, nil
}

// refusedALPN reports whether a handshake failed on the server's
// no_application_protocol alert. Over TCP crypto/tls reports a received
// alert as a *net.OpError "remote error" around an unexported type, so the
// alert is known by its text; tls.AlertError is QUIC's.
func refusedALPN(err error) bool {
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return alert == 120
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil &&
		oe.Err.Error() == "tls: no application protocol"
}

// put keeps c for the next request, unless the pool is full or closed.
func (p *pool) put(c *conn) {
	if c.br.Buffered() > 0 { // the server said more than its answer
		c.nc.Close()
		return
	}
	now := p.t.clock()
	c.idleAt = now
	p.t.mu.Lock()
	closed := p.t.closed
	p.t.mu.Unlock()
	p.mu.Lock()
	if closed || c.gen != p.t.gen.Load() || len(p.idle) >= p.t.maxIdle() {
		p.mu.Unlock()
		c.nc.Close()
		return
	}
	p.idle = append(p.idle, c)
	if p.sweep == nil {
		p.sweep = time.AfterFunc(p.t.idleTimeout(), p.sweepIdle)
	}
	p.mu.Unlock()
}

// sweepIdle closes connections idle for longer than the idle timeout, and
// runs again while any are left.
func (p *pool) sweepIdle() {
	now := p.t.clock()
	p.closeIdle(func(c *conn) bool { return now.Sub(c.idleAt) >= p.t.idleTimeout() })
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweep = nil
	if len(p.idle) > 0 {
		p.sweep = time.AfterFunc(p.t.idleTimeout()/2, p.sweepIdle)
	}
}

// closeIdle closes the idle connections for which expired is true.
func (p *pool) closeIdle(expired func(*conn) bool) {
	p.mu.Lock()
	keep := p.idle[:0]
	var drop []*conn
	for _, c := range p.idle {
		if expired(c) {
			drop = append(drop, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.mu.Unlock()
	for _, c := range drop {
		c.nc.Close()
	}
}

// Close closes every idle connection and makes later requests fail; an
// exchange in flight finishes and its connection is closed.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.CloseIdleConnections()
}

// alive reports whether an idle connection is still open: the server has
// neither closed it nor sent anything unasked. It peeks at the socket
// without blocking where the platform allows; elsewhere it assumes so, and
// a request that finds the connection closed is sent again.
func (c *conn) alive() bool {
	if c.raw == nil {
		return true
	}
	c.peeked = true
	if err := c.raw.Read(c.peek); err != nil {
		return false
	}
	return c.peeked
}

// rawConn returns the socket under nc, or nil.
func rawConn(nc net.Conn) syscall.RawConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			return rc
		}
	}
	return nil
}

// staleError is a write that failed on a reused connection: the server
// closed the connection while it was idle, before the request was whole.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

func unwrapStale(err error) error {
	var s *staleError
	if errors.As(err, &s) {
		return s.err
	}
	return err
}

// aLongTimeAgo is a deadline in the past: setting it cuts a blocked read or
// write short.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip writes req on c and reads the answer's head.
func (c *conn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	nc := c.nc
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error, stale bool) (*http.Response, error) {
		stop()
		nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if stale && c.reused {
			return nil, &staleError{err}
		}
		return nil, err
	}
	if err := writeRequest(c.bw, &c.body, req); err != nil {
		var he *headerError
		var be *bodyError
		if errors.As(err, &he) || errors.As(err, &be) {
			return fail(err, false) // the request's fault, not the connection's
		}
		// A server may answer before it has read the whole request (a
		// 413, a 401) and close: that answer is the backend's, not a
		// broken connection.
		if ctx.Err() != nil {
			return fail(err, false)
		}
		_ = nc.SetReadDeadline(time.Now().Add(earlyAnswerWait))
		if resp, rerr := c.readHead(req); rerr == nil {
			resp.Close = true
			return c.withBody(resp, req, ctx, stop), nil
		}
		return fail(err, true)
	}
	if _, err := c.br.Peek(1); err != nil {
		// The request went out whole and nothing came back: not sent
		// again, whatever the reason (see RoundTrip).
		return fail(err, false)
	}
	resp, err := c.readHead(req)
	if err != nil {
		return fail(err, false)
	}
	return c.withBody(resp, req, ctx, stop), nil
}

// earlyAnswerWait bounds the wait for an answer a server may have sent
// before it stopped reading the request.
const earlyAnswerWait = time.Second

// readHead reads an answer's head, skipping 1xx informational answers (103
// Early Hints), within maxHeadBytes.
func (c *conn) readHead(req *http.Request) (*http.Response, error) {
	c.head.left = maxHeadBytes
	defer func() { c.head.left = -1 }() // before the connection can go back
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

// withBody gives resp the body that ends the exchange, or ends it now when
// the answer has none.
func (c *conn) withBody(resp *http.Response, req *http.Request, ctx context.Context, stop func() bool) *http.Response {
	reuse := !resp.Close && !req.Close && resp.ProtoAtLeast(1, 1)
	if resp.Body == http.NoBody || resp.Body == nil {
		if stop() && reuse {
			c.p.put(c)
		} else {
			c.nc.Close()
		}
		return resp
	}
	resp.Body = &body{rc: resp.Body, c: c, ctx: ctx, stop: stop, reuse: reuse}
	return resp
}

// maxHeadBytes bounds the bytes read from a connection until an answer's
// head (and any 1xx before it) is parsed, as net/http's Transport bounds
// response headers: a backend cannot make the gateway buffer without end.
const maxHeadBytes = 1 << 20

// errHeadTooLarge is an answer whose head exceeds maxHeadBytes.
var errHeadTooLarge = errors.New("transport: the answer's headers exceed 1 MB")

// headLimit is a connection whose reads fail once left bytes were read,
// while left >= 0; a negative left reads without bound (bodies).
type headLimit struct {
	net.Conn
	left int64
}

func (h *headLimit) Read(p []byte) (int, error) {
	if h.left < 0 {
		return h.Conn.Read(p)
	}
	if h.left == 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > h.left {
		p = p[:h.left]
	}
	n, err := h.Conn.Read(p)
	h.left -= int64(n)
	return n, err
}

// body is a response body: read to its end it gives the connection back.
type body struct {
	rc    io.ReadCloser
	c     *conn
	ctx   context.Context
	stop  func() bool
	reuse bool
	done  atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		b.finish(false)
		if b.ctx.Err() != nil {
			return n, b.ctx.Err()
		}
	}
	return n, err
}

// Close closes a body not read to its end, and its connection with it.
func (b *body) Close() error {
	b.finish(false)
	return nil
}

// finish ends the exchange once: the connection goes back to the pool when
// the body was read whole and nothing cut it short, and is closed otherwise
// (before the inner body's Close, which would read a stream to its end).
func (b *body) finish(complete bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	stopped := b.stop()
	if complete && stopped && b.reuse {
		b.c.p.put(b.c)
		return
	}
	b.c.nc.Close()
	_ = b.rc.Close()
}

// bodyError is a request whose own body failed: its reader's error, or a
// length other than its ContentLength. The connection is not to blame.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "transport: request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// bodyReader keeps its reader's error apart from the connection's.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// headerError is a request that cannot be written: a header name or value
// that would break the message's framing.
type headerError struct{ msg string }

func (e *headerError) Error() string { return "transport: " + e.msg }

// writeRequest writes req's head and body and flushes them, reading the
// body through br (the connection's, so that no request allocates one).
func writeRequest(w *bufio.Writer, br *bodyReader, req *http.Request) (err error) {
	defer func() {
		if err != nil {
			closeBody(req)
		}
	}()
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !validValue(host) || strings.ContainsAny(host, " \t") {
		return &headerError{"invalid Host " + strconv.Quote(host)}
	}
	uri := req.URL.RequestURI()
	if strings.ContainsAny(uri, " \r\n") {
		return &headerError{"invalid request target"}
	}
	for k, vs := range req.Header {
		if !validName(k) {
			return &headerError{"invalid header name " + strconv.Quote(k)}
		}
		for _, v := range vs {
			if !validValue(v) {
				return &headerError{"invalid value for header " + k}
			}
		}
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	if _, ok := req.Header["User-Agent"]; !ok {
		w.WriteString("User-Agent: Go-http-client/1.1\r\n")
	}
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if req.Close {
		w.WriteString("Connection: close\r\n")
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	chunked := false
	switch {
	case hasBody && req.ContentLength > 0:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(req.ContentLength, 10))
		w.WriteString("\r\n")
	case hasBody:
		w.WriteString("Transfer-Encoding: chunked\r\n")
		chunked = true
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	w.WriteString("\r\n")
	if hasBody {
		var dst io.Writer = w
		var cw io.WriteCloser
		if chunked {
			cw = httputil.NewChunkedWriter(w)
			dst = cw
		}
		*br = bodyReader{r: req.Body}
		n, err := io.Copy(dst, br)
		br.r = nil // the caller's body is not kept with the connection
		closeBody(req)
		if br.err != nil {
			return &bodyError{br.err}
		}
		if err != nil {
			return err
		}
		if !chunked && n != req.ContentLength {
			return &bodyError{fmt.Errorf("%d bytes; ContentLength says %d", n, req.ContentLength)}
		}
		if chunked {
			if err := cw.Close(); err != nil {
				return err
			}
			w.WriteString("\r\n")
		}
	}
	return w.Flush()
}

// closeBody closes req's body, as a RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// shallowWithBody is req with another body.
func shallowWithBody(req *http.Request, body io.ReadCloser) *http.Request {
	r := *req
	r.Body = body
	return &r
}

// validName reports whether k is an HTTP token (RFC 9110 section 5.6.2).
func validName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validValue reports whether v has no control characters but tab: nothing
// that could end the header line or the message.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
