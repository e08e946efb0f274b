// Package sse reads Server-Sent Events (text/event-stream) one event at a
// time, so that the gateway can pass each event through the moment it is
// complete, flush it, and look into its data without buffering the stream.
// It follows the WHATWG HTML "Server-sent events" rules for fields and
// data, with LF and CRLF line endings.
package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
)

// DefaultMaxEventBytes bounds one event. An OpenAI chunk is a few hundred
// bytes; a usage or tool-call chunk a few kilobytes.
const DefaultMaxEventBytes = 4 << 20

// ErrEventTooLarge is returned when an event exceeds the reader's limit.
var ErrEventTooLarge = errors.New("sse: event too large")

// Reader splits a stream into events. It is not safe for concurrent use.
//
// It reads straight into one buffer that holds the event being read (and
// whatever followed it in the same read), so an open stream costs a buffer
// the size of its largest event, about a kilobyte, and each event is copied
// once at most: a gateway holds thousands of streams open.
type Reader struct {
	src io.Reader
	max int
	// buf[next:] is unread; what comes before it was returned already.
	// Unread bytes move to the front only when more must be read, so a
	// buffer that grew for one large event does not make every later event
	// cost a copy of all that follows it.
	buf  []byte
	next int
	err  error // the source's error, returned once buf holds no whole event
}

// initialBytes is a new Reader's buffer: most OpenAI and Azure chunks fit.
const initialBytes = 1024

// NewReader returns a Reader of r with the default event size limit.
func NewReader(r io.Reader) *Reader {
	return &Reader{src: r, max: DefaultMaxEventBytes}
}

// SetMaxEventBytes sets the largest event Next accepts.
func (r *Reader) SetMaxEventBytes(n int) { r.max = n }

// Next returns the raw bytes of the next event, up to and including the blank
// line that ends it, exactly as they arrived. The slice is valid until the
// next call. Lines end in LF or CRLF; a lone CR does not end a line (no
// OpenAI-compatible server sends one). At the end of the stream Next returns
// what is left, possibly an unterminated event, with io.EOF; a stream that
// breaks returns what arrived with the read error.
func (r *Reader) Next() ([]byte, error) {
	scan, lineStart, empty := r.next, r.next, 0
	for {
		for scan < len(r.buf) {
			i := bytes.IndexByte(r.buf[scan:], '\n')
			if i < 0 {
				scan = len(r.buf)
				break
			}
			end := scan + i + 1
			line := r.buf[lineStart:end]
			lineStart, scan = end, end
			if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
				ev := r.buf[r.next:end]
				r.next = end
				if len(ev) > r.max {
					return ev, fmt.Errorf("%w: more than %d bytes", ErrEventTooLarge, r.max)
				}
				return ev, nil
			}
		}
		// No whole event is buffered: all of buf[next:] is the next one's.
		if rest := r.buf[r.next:]; len(rest) > r.max || r.err != nil {
			r.next = len(r.buf)
			switch {
			case len(rest) > r.max:
				return rest, fmt.Errorf("%w: more than %d bytes", ErrEventTooLarge, r.max)
			case r.err == io.EOF && len(rest) == 0:
				return nil, io.EOF
			}
			return rest, r.err
		}
		if r.next > 0 { // make room: move the partial event to the front
			n := copy(r.buf, r.buf[r.next:])
			r.buf, scan, lineStart, r.next = r.buf[:n], scan-r.next, lineStart-r.next, 0
		}
		if len(r.buf) == cap(r.buf) {
			r.buf = slices.Grow(r.buf, max(initialBytes, cap(r.buf)))
		}
		n, err := r.src.Read(r.buf[len(r.buf):cap(r.buf)])
		r.buf = r.buf[:len(r.buf)+n]
		switch {
		case err != nil:
			r.err = err
		case n > 0:
			empty = 0
		default:
			if empty++; empty >= 100 {
				r.err = io.ErrNoProgress
			}
		}
	}
}

// Buffered reports whether the next event has arrived whole already, so that
// Next returns it without waiting for the source. A relay uses it to flush
// once per burst of events rather than once per event, without delaying any.
func (r *Reader) Buffered() bool {
	rest := r.buf[r.next:]
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return false
		}
		if i == 0 || (i == 1 && rest[0] == '\r') {
			return true
		}
		rest = rest[i+1:]
	}
}

// Field is one "name: value" line of an event.
type Field struct {
	Name, Value []byte
}

// Fields calls fn for every field line of a raw event, in order, with the
// value's single leading space removed as the spec says. Comment lines (those
// starting with ':') are skipped. The slices refer into event.
func Fields(event []byte, fn func(Field) bool) {
	for len(event) > 0 {
		i := bytes.IndexAny(event, "\r\n")
		var line []byte
		if i < 0 {
			line, event = event, nil
		} else {
			line = event[:i]
			if event[i] == '\r' && i+1 < len(event) && event[i+1] == '\n' {
				i++
			}
			event = event[i+1:]
		}
		if len(line) == 0 || line[0] == ':' {
			continue
		}
		f := Field{Name: line}
		if c := bytes.IndexByte(line, ':'); c >= 0 {
			f.Name, f.Value = line[:c], line[c+1:]
			if len(f.Value) > 0 && f.Value[0] == ' ' {
				f.Value = f.Value[1:]
			}
		}
		if !fn(f) {
			return
		}
	}
}

// Data returns the event's data: its data fields joined by LF, as the spec
// defines. It returns nil for an event without data. It allocates only when
// the event has more than one data line.
func Data(event []byte) []byte {
	var data []byte
	n := 0
	Fields(event, func(f Field) bool {
		if string(f.Name) != "data" {
			return true
		}
		switch n {
		case 0:
			data = f.Value
		case 1:
			data = append(append(append([]byte(nil), data...), '\n'), f.Value...)
		default:
			data = append(append(data, '\n'), f.Value...)
		}
		n++
		return true
	})
	if n > 0 && data == nil {
		data = []byte{}
	}
	return data
}
