package translate

import (
	"bytes"
	"io"

	"github.com/sluice-gateway/sluice/internal/sse"
)

// StreamBody is a provider's event stream read as the OpenAI stream it
// translates to: a response body the pipeline relays like any other
// backend's. It reads one provider event at a time, when its reader asks.
type StreamBody struct {
	src  io.ReadCloser
	rd   *sse.Reader
	tr   Stream
	buf  []byte // translated, not yet read
	off  int
	err  error // what reading ends with once buf is drained
	data []byte
}

// NewStreamBody returns the OpenAI stream of src, translated by tr.
func NewStreamBody(src io.ReadCloser, tr Stream) *StreamBody {
	return &StreamBody{src: src, rd: sse.NewReader(src), tr: tr, buf: make([]byte, 0, 1024)}
}

// Read implements io.Reader.
func (b *StreamBody) Read(p []byte) (int, error) {
	for b.off == len(b.buf) {
		if b.err != nil {
			return 0, b.err
		}
		b.buf, b.off = b.buf[:0], 0
		b.fill()
	}
	n := copy(p, b.buf[b.off:])
	b.off += n
	return n, nil
}

// fill translates the next provider event into buf, or sets err.
func (b *StreamBody) fill() {
	ev, err := b.rd.Next()
	if len(ev) > 0 {
		b.data = EventData(b.data[:0], ev)
		if len(b.data) > 0 {
			var terr error
			if b.buf, terr = b.tr.Event(b.buf, b.data); terr != nil {
				b.err = terr
				return
			}
		}
	}
	switch {
	case err == io.EOF:
		if b.buf, b.err = b.tr.End(b.buf); b.err == nil {
			b.err = io.EOF
		}
	case err != nil:
		b.err = err
	case b.tr.Done():
		b.err = io.EOF
	}
}

// Close closes the provider's stream.
func (b *StreamBody) Close() error { return b.src.Close() }

// EventData appends the data of a raw SSE event to dst: its data lines,
// without "data:" and one optional space, joined with newlines.
func EventData(dst, ev []byte) []byte {
	first := true
	for len(ev) > 0 {
		line := ev
		if i := bytes.IndexByte(ev, '\n'); i >= 0 {
			line, ev = ev[:i], ev[i+1:]
		} else {
			ev = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		v, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue
		}
		v = bytes.TrimPrefix(v, []byte{' '})
		if !first {
			dst = append(dst, '\n')
		}
		first = false
		dst = append(dst, v...)
	}
	return dst
}
