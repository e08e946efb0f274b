package listener

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
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
// net/http reads it from one goroutine at a time; Write and Close are safe
// for concurrent use.
type Conn struct {
	net.Conn
	l      *Listener
	ip     netip.Addr
	hooked bool // the server hooks are installed: errors may be rewritten

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
	if c.refused.Load() != 0 {
		return c.readRefused(p)
	}
	n, err := c.Conn.Read(p)
	if n == 0 || c.hijacked.Load() {
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
	if c.hooked && !c.responding.Load() && len(p) > len(cannedPrefix) && string(p[:len(cannedPrefix)]) == cannedPrefix {
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
