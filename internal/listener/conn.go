package listener

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ErrRefused is what a connection's Read returns once a request on it was
// refused for ambiguous framing: nothing more is read from the client.
var ErrRefused = errors.New("listener: request refused for ambiguous framing")

// refusedLine is what net/http reads in place of a refused request: whatever
// part of the request's head it already has, this makes a request line or a
// header line it cannot parse, so it answers 400 and closes the connection,
// and Write turns that answer into JSON.
const refusedLine = "\x00\r\n\r\n"

// Conn is a connection a Listener accepted. It follows the framing of the
// requests net/http reads from it, refusing ambiguous ones; rewrites the
// plain-text errors net/http writes on it itself into JSON; and frees its
// slot in the Listener's caps when closed, once.
//
// Over TLS (Options.TLS) it is the plain text of the connection: its
// first read or write makes the handshake, and a client that speaks HTTP
// to it without TLS is answered 400 in plain text. A connection whose plain
// text begins with HTTP/2's preface is HTTP/2, whose framing net/http's
// HTTP/2 server checks: it is followed no further.
//
// net/http reads it from one goroutine at a time; Write and Close are safe
// for concurrent use.
type Conn struct {
	net.Conn          // the connection net/http reads: raw, or tls over it
	raw      net.Conn // the accepted connection
	l        *Listener
	ip       netip.Addr
	hooked   bool // the server hooks are installed: errors may be rewritten

	tls         *tls.Conn            // over raw, on a TLS listener
	handshake   sync.Once            // makes the TLS handshake
	handshakeOK bool                 // set by handshake: it succeeded
	state       *tls.ConnectionState // set by handshake: its outcome
	dlMu        sync.Mutex           // guards readDL and writeDL
	readDL      time.Time            // the read deadline net/http set, restored after the handshake
	writeDL     time.Time            // the write deadline net/http set
	preface     int                  // bytes of HTTP/2's preface read so far; -1: not HTTP/2
	h2          atomic.Bool          // the plain text is HTTP/2

	track      tracker
	refused    atomic.Uint32 // the refusal, once a request was refused
	synthetic  int           // bytes of refusedLine already read
	hijacked   atomic.Bool   // a handler took the connection over: not HTTP any more
	responding atomic.Bool   // a handler began, and net/http has not finished its response
	closed     atomic.Bool
}

// Read reads from the connection, following the framing of what net/http
// reads; a request it refuses never reaches net/http whole.
func (c *Conn) Read(p []byte) (int, error) {
	if c.tls != nil && !c.shake() {
		return 0, errHandshake
	}
	if c.refused.Load() != 0 {
		return c.readRefused(p)
	}
	n, err := c.Conn.Read(p)
	if n == 0 || c.hijacked.Load() || c.h2.Load() {
		return n, err
	}
	if c.tls != nil && c.preface >= 0 && c.matchPreface(p[:n]) {
		return n, err
	}
	keep, why := c.track.feed(p[:n])
	if why == refuseNone {
		return n, err
	}
	c.refused.Store(uint32(why))
	c.l.ambiguous.Add(1)
	c.l.o.Logger.Warn("request refused: its framing is ambiguous (request smuggling?); closing the connection",
		"client_ip", c.ip.String(), "reason", why.String())
	if keep > 0 {
		return keep, nil
	}
	return c.readRefused(p)
}

func (c *Conn) readRefused(p []byte) (int, error) {
	if c.synthetic == len(refusedLine) {
		return 0, ErrRefused
	}
	n := copy(p, refusedLine[c.synthetic:])
	c.synthetic += n
	return n, nil
}

// Write writes to the connection, net/http's own plain-text error answers
// rewritten into JSON.
func (c *Conn) Write(p []byte) (int, error) {
	if c.tls != nil && !c.shake() {
		return 0, errHandshake
	}
	if c.hooked && !c.responding.Load() && !c.h2.Load() && len(p) > len(cannedPrefix) && string(p[:len(cannedPrefix)]) == cannedPrefix {
		why := refusal(c.refused.Load())
		if e, ok := parseCanned(p, why); ok {
			if _, err := c.Conn.Write(response(e, "")); err != nil {
				return 0, err
			}
			if why == refuseNone {
				c.l.malformed.Add(1)
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

// h2Preface is what an HTTP/2 client sends first (RFC 9113, section 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// matchPreface follows the start of a TLS connection's plain text, b being
// the next bytes read, while it may be HTTP/2's preface. It reports whether
// b is to be kept from the tracker: it continues the preface (which frames
// no body), or completes it, and the connection is HTTP/2. Once the plain
// text departs from the preface, the tracker is fed the part of it already
// read, then follows as on any connection.
func (c *Conn) matchPreface(b []byte) bool {
	m := min(len(b), len(h2Preface)-c.preface)
	if string(b[:m]) == h2Preface[c.preface:c.preface+m] {
		c.preface += m
		if c.preface == len(h2Preface) {
			c.h2.Store(true)
		}
		return true
	}
	if c.preface > 0 {
		c.track.feed([]byte(h2Preface[:c.preface])) // no body, no refusal
	}
	c.preface = -1
	return false
}

// errHandshake is what a TLS connection's reads and writes return after its
// handshake failed.
var errHandshake = errors.New("listener: the TLS handshake failed")

// shake makes the TLS handshake once, within Options.HandshakeTimeout, and
// reports whether it succeeded. A client that spoke plain HTTP is answered
// 400 in plain text, which it can read.
func (c *Conn) shake() bool {
	c.handshake.Do(func() {
		_ = c.raw.SetDeadline(c.l.o.Now().Add(c.l.o.HandshakeTimeout))
		err := c.tls.Handshake()
		if err == nil {
			st := c.tls.ConnectionState()
			c.state, c.handshakeOK = &st, true
			c.dlMu.Lock()
			_ = c.raw.SetReadDeadline(c.readDL)
			_ = c.raw.SetWriteDeadline(c.writeDL)
			c.dlMu.Unlock()
			return
		}
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			c.l.plainHTTP.Add(1)
			c.answerPlain()
			return
		}
		if errors.Is(err, io.EOF) {
			return // closed before its hello: a load balancer's TCP probe
		}
		c.l.handshakeFailed.Add(1)
		c.l.o.Logger.Debug("TLS handshake failed", "client_ip", c.ip.String(), "err", err)
	})
	return c.handshakeOK
}

// answerPlain answers a plain HTTP request on a TLS listener 400 without TLS,
// then reads what the client sends for a moment, so that closing does not
// reset the connection before the client reads the answer.
func (c *Conn) answerPlain() {
	_ = c.raw.SetDeadline(c.l.o.Now().Add(refuseWriteTimeout))
	if _, err := c.raw.Write(c.l.plain); err != nil {
		return
	}
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_, _ = io.CopyN(io.Discard, c.raw, lingerBytes)
	}
}

// looksLikeHTTP reports whether what came in place of a TLS record header
// is the start of an HTTP request line: a method in capitals, then a space
// or the target's slash. A record header begins with a content type below
// 0x20.
func looksLikeHTTP(h [5]byte) bool {
	for _, b := range h {
		if (b < 'A' || b > 'Z') && b != ' ' && b != '/' {
			return false
		}
	}
	return true
}

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.noteDeadlines(&t, &t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline sets the read deadline; over TLS it holds after the
// handshake, which has its own.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.noteDeadlines(&t, nil)
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline; over TLS it holds after the
// handshake, which has its own.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.noteDeadlines(nil, &t)
	return c.Conn.SetWriteDeadline(t)
}

// noteDeadlines keeps the deadlines net/http sets on a TLS connection, for
// the handshake to restore.
func (c *Conn) noteDeadlines(read, write *time.Time) {
	if c.tls == nil {
		return
	}
	c.dlMu.Lock()
	if read != nil {
		c.readDL = *read
	}
	if write != nil {
		c.writeDL = *write
	}
	c.dlMu.Unlock()
}

// Close closes the connection and frees its slot.
func (c *Conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.ip)
	}
	return c.Conn.Close()
}

// CloseWrite shuts down the writing side, as net/http does after answering
// 431 so that the client reads the answer before the connection closes.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// setState follows net/http's connection states. StateIdle comes once a
// response is written whole, before the next request is read: an answer net/http
// writes from then on is its own.
func (c *Conn) setState(s http.ConnState) {
	switch s {
	case http.StateIdle:
		c.responding.Store(false)
	case http.StateHijacked:
		c.hijacked.Store(true)
	}
}
