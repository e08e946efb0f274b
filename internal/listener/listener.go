package listener

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/internal/wire"
)

const (
	// refuseWriteTimeout bounds writing the 503 to a connection over a cap.
	// It fits a fresh socket's send buffer, so the bound is never reached
	// unless the kernel is in trouble; the accept loop waits for it.
	refuseWriteTimeout = time.Second
	// lingerTimeout is how long a refused connection is read and discarded
	// after the 503, so that its request does not turn our close into a
	// reset that destroys the 503 before the client reads it.
	lingerTimeout = time.Second
	// maxLingering bounds the refused connections lingering at once; beyond
	// it they are closed at once. Each holds a file descriptor.
	maxLingering = 16
	// lingerBytes is the most read from a lingering connection.
	lingerBytes = 64 << 10
	// logEvery spaces the warnings about refused connections.
	logEvery = 10 * time.Second
	// defaultHandshakeTimeout bounds a TLS handshake, as net/http's
	// TLSHandshakeTimeout does for its clients.
	defaultHandshakeTimeout = 10 * time.Second
)

// Options configure a Listener.
type Options struct {
	// MaxConns caps the connections open at once, idle keep-alive ones
	// included. 0: no cap.
	MaxConns int
	// MaxConnsPerIP caps the connections open at once from one peer
	// address. 0: no cap.
	MaxConnsPerIP int
	// Logger receives a warning, at most every 10s, while connections are
	// refused. Default: discard.
	Logger *slog.Logger
	// Now is the clock of write deadlines and of the warnings. Default time.Now.
	Now func() time.Time
	// TLS, set, makes the listener speak HTTPS: each connection's handshake
	// is made with it (Certs.Config: its files re-read when they change)
	// at the connection's first read, and net/http is handed the plain
	// text, so that the framing checks and the JSON errors hold over TLS as
	// they do without it. Nil: plain HTTP.
	TLS *tls.Config
	// HandshakeTimeout bounds a TLS handshake. Default 10s.
	HandshakeTimeout time.Duration
}

// Stats are a Listener's counters, for metrics.
type Stats struct {
	// Open is the number of connections open now.
	Open int
	// Accepted counts the connections handed to the server.
	Accepted uint64
	// RefusedMax counts the connections refused over MaxConns.
	RefusedMax uint64
	// RefusedPerIP counts the connections refused over MaxConnsPerIP.
	RefusedPerIP uint64
	// Ambiguous counts the requests refused for carrying both
	// Transfer-Encoding and Content-Length, or Transfer-Encoding in HTTP/1.0.
	Ambiguous uint64
	// Malformed counts the requests net/http refused itself (malformed
	// request line or headers, headers too large, unsupported transfer
	// encoding), answered as JSON.
	Malformed uint64
	// PlainHTTP counts the connections to a TLS listener that spoke plain
	// HTTP, answered 400 in plain text.
	PlainHTTP uint64
	// HandshakeFailed counts the other failed TLS handshakes: no common
	// version or suite, a client certificate missing or not verified, a
	// client that gave up midway or timed out. A connection closed before
	// sending anything (a TCP health probe) is not counted.
	HandshakeFailed uint64
}

// Listener wraps a net.Listener; make one with New. Its connections are
// *Conn. Serve an http.Server on it with Serve, which installs the hooks its
// connections need. It is safe for concurrent use.
type Listener struct {
	net.Listener
	o Options

	mu        sync.Mutex // guards open, perIP, lingering and closed
	open      int
	perIP     map[netip.Addr]int
	lingering map[net.Conn]struct{}
	closed    bool
	lingerers sync.WaitGroup

	hooked atomic.Bool // Serve installed the server hooks

	accepted, refusedMax, refusedPerIP, ambiguous, malformed atomic.Uint64
	plainHTTP, handshakeFailed                               atomic.Uint64

	refusedUnlogged atomic.Uint64 // refusals since the last warning
	lastLog         atomic.Int64  // Unix nanoseconds of the last warning

	busy, busyIP []byte // the 503 answers
	plain        []byte // the 400 to plain HTTP on a TLS listener
}

// New returns a Listener accepting from ln.
func New(ln net.Listener, o Options) *Listener {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = defaultHandshakeTimeout
	}
	return &Listener{
		Listener:  ln,
		o:         o,
		perIP:     map[netip.Addr]int{},
		lingering: map[net.Conn]struct{}{},
		busy: response(wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "too_many_connections",
			"The gateway has too many open connections; retry shortly."), "Retry-After: 1\r\n"),
		busyIP: response(wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "too_many_connections",
			"Too many connections are open from your address; close idle ones or retry shortly."), "Retry-After: 1\r\n"),
		plain: response(wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "tls_required",
			"This port speaks HTTPS: send the request over TLS (https://)."), ""),
	}
}

// Serve installs on srv the hooks l's connections need, then serves srv on l
// until it is shut down. The hooks tell a handler's response from an error
// net/http writes itself; without them those errors stay plain text.
//
// Over TLS, net/http sees the plain text of a connection it does not know
// is TLS: the hooks set each request's TLS to the connection's state, and
// srv.Protocols is set to HTTP/1.1 and HTTP/2 "unencrypted" (to net/http;
// TLS is beneath it), which serves HTTP/2 to a client that begins with its
// preface, as one does after ALPN chose h2.
func (l *Listener) Serve(srv *http.Server) error {
	next := srv.Handler
	if next == nil {
		next = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(connKey{}).(*Conn); ok {
			c.responding.Store(true)
			if c.state != nil {
				// The request is this handler's own, made by
				// net/http for it, which never reads TLS back.
				r.TLS = c.state
			}
		}
		next.ServeHTTP(w, r)
	})
	if l.o.TLS != nil {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Protocols = &p
	}
	connContext := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, nc net.Conn) context.Context {
		if connContext != nil {
			ctx = connContext(ctx, nc)
		}
		if c, ok := nc.(*Conn); ok {
			ctx = context.WithValue(ctx, connKey{}, c)
		}
		return ctx
	}
	connState := srv.ConnState
	srv.ConnState = func(nc net.Conn, s http.ConnState) {
		if c, ok := nc.(*Conn); ok {
			c.setState(s)
		}
		if connState != nil {
			connState(nc, s)
		}
	}
	l.hooked.Store(true)
	return srv.Serve(l)
}

type connKey struct{}

// Accept returns the next connection within the caps. A connection over a
// cap is answered 503 and closed here, never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := peer(c)
		if answer := l.admit(ip); answer != nil {
			l.refuse(c, answer)
			continue
		}
		l.accepted.Add(1)
		conn := &Conn{Conn: c, raw: c, l: l, ip: ip, hooked: l.hooked.Load()}
		if l.o.TLS != nil {
			conn.tls = tls.Server(c, l.o.TLS)
			conn.Conn = conn.tls
		}
		return conn, nil
	}
}

// admit takes a slot for a connection from ip, or returns the answer that
// refuses it.
func (l *Listener) admit(ip netip.Addr) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.o.MaxConns > 0 && l.open >= l.o.MaxConns {
		l.refusedMax.Add(1)
		return l.busy
	}
	if l.o.MaxConnsPerIP > 0 && l.perIP[ip] >= l.o.MaxConnsPerIP {
		l.refusedPerIP.Add(1)
		return l.busyIP
	}
	l.open++
	l.perIP[ip]++
	return nil
}

// release frees the slot of a connection from ip.
func (l *Listener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if n := l.perIP[ip] - 1; n > 0 {
		l.perIP[ip] = n
	} else {
		delete(l.perIP, ip)
	}
}

// refuse writes answer to c and closes it: after reading what the client
// sent meanwhile, if a lingering slot is free, so that the client reads the
// 503 rather than a reset.
//
// Over TLS the answer needs a handshake first, which the accept loop does
// not wait for: a lingering connection makes it, or the connection is
// closed without an answer.
func (l *Listener) refuse(c net.Conn, answer []byte) {
	l.warn()
	if l.o.TLS != nil {
		if !l.startLinger(c) {
			_ = c.Close()
			return
		}
		go func() {
			tc := tls.Server(c, l.o.TLS)
			_ = c.SetDeadline(l.o.Now().Add(lingerTimeout))
			if tc.Handshake() == nil {
				if _, err := tc.Write(answer); err == nil {
					_ = tc.CloseWrite()
				}
			}
			l.linger(tc)
		}()
		return
	}
	_ = c.SetWriteDeadline(l.o.Now().Add(refuseWriteTimeout))
	if _, err := c.Write(answer); err != nil {
		_ = c.Close()
		return
	}
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		_ = c.Close()
		return
	}
	if !l.startLinger(c) {
		_ = c.Close()
		return
	}
	go l.linger(c)
}

// startLinger takes a lingering slot for c, if one is free and l is open;
// linger frees it.
func (l *Listener) startLinger(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(l.lingering) >= maxLingering {
		return false
	}
	l.lingering[c] = struct{}{}
	l.lingerers.Add(1)
	return true
}

// linger reads and discards what c sends until it closes, for a second at
// most, then closes c. Close cuts it short. c is the connection startLinger
// took the slot for, or a TLS connection over it.
func (l *Listener) linger(c net.Conn) {
	defer l.lingerers.Done()
	_ = c.SetReadDeadline(l.o.Now().Add(lingerTimeout))
	_, _ = io.CopyN(io.Discard, c, lingerBytes)
	raw := c
	if tc, ok := c.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	l.mu.Lock()
	delete(l.lingering, raw)
	l.mu.Unlock()
	_ = raw.Close()
}

// warn logs that connections are being refused, at most every logEvery.
func (l *Listener) warn() {
	l.refusedUnlogged.Add(1)
	now := l.o.Now().UnixNano()
	last := l.lastLog.Load()
	if last != 0 && now-last < int64(logEvery) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	s := l.Stats()
	l.o.Logger.Warn("client connections over the cap are refused with 503",
		"refused", l.refusedUnlogged.Swap(0), "open", s.Open,
		"max_connections", l.o.MaxConns, "max_connections_per_ip", l.o.MaxConnsPerIP)
}

// Close stops accepting, closes the refused connections still lingering and
// waits for them.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.lingering {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.lingerers.Wait()
	return err
}

// Stats returns the counters.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	open := l.open
	l.mu.Unlock()
	return Stats{
		Open: open, Accepted: l.accepted.Load(),
		RefusedMax: l.refusedMax.Load(), RefusedPerIP: l.refusedPerIP.Load(),
		Ambiguous: l.ambiguous.Load(), Malformed: l.malformed.Load(),
		PlainHTTP: l.plainHTTP.Load(), HandshakeFailed: l.handshakeFailed.Load(),
	}
}

// peer returns c's peer address; connections of other networks than TCP all
// count as one peer.
func peer(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// response returns a complete HTTP/1.1 response carrying e, that closes the
// connection. extra are further header lines, each ending in CRLF.
func response(e *wire.Error, extra string) []byte {
	body := e.Body()
	head := "HTTP/1.1 " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status) + "\r\n" +
		"Content-Type: application/json\r\n" +
		"Cache-Control: no-store\r\n" +
		extra +
		"Connection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	return append([]byte(head), body...)
}
