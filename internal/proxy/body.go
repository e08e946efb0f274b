package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// readBody reads the request body up to the size limit, within
// server.read_body_timeout. The body is not pooled: the transport may still
// read it after RoundTrip returns.
func (x *exchange) readBody() ([]byte, error) {
	max := x.table.Config.Server.MaxRequestBytes
	tooLarge := func() *wire.Error {
		return wire.NewError(http.StatusRequestEntityTooLarge, wire.TypeInvalidRequest, "request_too_large",
			"The request body is larger than the limit of "+strconv.FormatInt(max, 10)+" bytes.")
	}
	if x.r.ContentLength > max {
		return nil, tooLarge()
	}
	if ce := x.r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		// Sluice reads the body as it comes: a backend that decoded it by
		// this header would read other bytes than the ones Sluice checked.
		return nil, wire.NewError(http.StatusUnsupportedMediaType, wire.TypeInvalidRequest, "unsupported_content_encoding",
			"Send the request body uncompressed: Content-Encoding "+strconv.Quote(wire.EchoText(ce))+" is not accepted.")
	}
	// A deadline on the connection's reads while the body comes in, so a
	// client trickling it cannot hold the connection; cleared once the body
	// is in, since net/http's watch for the client going away reads with it
	// too (a refusal leaves it expired: the connection is to close). Writers
	// that are not connections (tests, benchmarks) have no deadlines.
	deadline := setReadDeadline(x.w, time.Now().Add(x.table.Config.Server.ReadBodyTimeout.D()))
	size := x.r.ContentLength
	if size < 0 {
		size = 4 << 10
	}
	body := make([]byte, 0, size+1)
	for {
		if len(body) == cap(body) {
			body = append(body, 0)[:len(body)]
		}
		n, err := x.r.Body.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if int64(len(body)) > max {
			return nil, tooLarge()
		}
		if err == io.EOF {
			if deadline {
				setReadDeadline(x.w, time.Time{})
			}
			x.bodyRead = true
			return body, nil
		}
		if err != nil {
			return nil, x.bodyError(err)
		}
	}
}

// bodyError is why a request body could not be read: the client went away
// (nothing to answer), was too slow (408), or sent a body that is not HTTP
// (400: a malformed chunk size or extension). The connection is closed
// after the answer (see fail): what is left on it is not a request.
func (x *exchange) bodyError(err error) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Before clientGone: net/http cancels the request's context on any
		// read error, the deadline's included.
		return wire.NewError(http.StatusRequestTimeout, wire.TypeInvalidRequest, "request_timeout",
			"The request body did not arrive within "+x.table.Config.Server.ReadBodyTimeout.D().String()+".")
	case x.clientGone() || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		return errClientGone
	}
	return wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "invalid_request_body",
		"The request body could not be read: its HTTP framing is malformed (such as a bad chunk size).")
}
