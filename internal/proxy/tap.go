package proxy

import (
	"errors"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// A Tap sees the answer to a request on its way to the client: a stream
// event by event, a whole body before its headers go out, and the end.
// Stages add taps to the requests they pass (Request.AddTap); the usage
// meter is the first tap of every request, so later taps see the stream as
// the client gets it. A Tap serves one request; it need not be safe for
// concurrent use.
type Tap interface {
	// Event returns what to send of one stream event (a raw SSE event):
	// ev itself, a rewrite, or nothing to drop it. ErrEndStream with the
	// events to send ends the stream after them, as a whole answer; any
	// other error breaks it off: the client gets an error event (a
	// *wire.Error's, or a generic one) and the connection is aborted.
	Event(ev []byte) ([]byte, error)
	// Body returns the body to send in place of a whole non-streaming
	// body, before its headers go out; an error answers the request with
	// it instead (a *wire.Error as it is). Bodies over 8 MiB are passed
	// through as they come, unseen.
	Body(body []byte) ([]byte, error)
	// End is called once when the request is over, however it ended.
	End(Outcome)
}

// ErrEndStream, returned by Tap.Event with the events to send, ends the
// stream after them as a complete answer; the rest of the backend's stream
// is not read.
var ErrEndStream = errors.New("proxy: end of stream")

// Outcome is how a request ended, for Tap.End.
type Outcome struct {
	// Status is the status the client got; 499 when it went away first.
	Status int
	// Stream says the answer was an event stream.
	Stream bool
	// Usage is what the request was charged (possibly estimated).
	Usage wire.Usage
	// Complete says the answer reached the client whole: a stream to its
	// end, a body written in full.
	Complete bool
}

// tapEvent passes one stream event through the meter and the request's
// taps. end says a tap ended the stream after what it returned.
func (x *exchange) tapEvent(ev []byte) (out []byte, end bool, err error) {
	ev, _ = x.meter.Event(ev)
	for _, t := range x.req.taps {
		if len(ev) == 0 {
			break
		}
		ev, err = t.Event(ev)
		switch {
		case errors.Is(err, ErrEndStream):
			// The taps after this one still see the last events.
			end = true
		case err != nil:
			return nil, false, err
		}
	}
	return ev, end, nil
}
