package listener

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// net/http answers a request it cannot read (conn.serve in server.go) with one
// write straight to the connection, no handler involved:
//
//	"HTTP/1.1 " + status + cannedHeaders + body
//
// where status is "431 Request Header Fields Too Large", "400 Bad Request",
// "400 Bad Request: malformed Host header" and the like, and body repeats it,
// or, for 501, is "Unsupported transfer encoding".
const (
	cannedPrefix  = "HTTP/1.1 "
	cannedHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	cannedTE      = "Unsupported transfer encoding"
)

// parseCanned reports whether p is such an answer, and returns the
// OpenAI-shaped error to send instead. why is the connection's refusal, which
// made net/http answer 400.
func parseCanned(p []byte, why refusal) (*wire.Error, bool) {
	if !bytes.HasPrefix(p, []byte(cannedPrefix)) {
		return nil, false
	}
	line, body, ok := bytes.Cut(p[len(cannedPrefix):], []byte(cannedHeaders))
	if !ok || len(line) < 5 || bytes.IndexByte(line, '\n') >= 0 || line[3] != ' ' {
		return nil, false
	}
	status := 0
	for _, d := range line[:3] {
		if d < '0' || d > '9' {
			return nil, false
		}
		status = status*10 + int(d-'0')
	}
	if status < 400 || status > 599 {
		return nil, false
	}
	text := http.StatusText(status)
	reason := string(line[4:])
	detail, hasDetail := strings.CutPrefix(reason, text+": ")
	if !hasDetail {
		if reason != text {
			return nil, false
		}
		detail = ""
	}
	if !bytes.Equal(body, line) && (status != http.StatusNotImplemented || string(body) != cannedTE) {
		return nil, false
	}
	return cannedError(status, detail, why), true
}

// cannedError is the error a client gets for net/http's answer of status,
// with its detail ("malformed Host header"), if any.
func cannedError(status int, detail string, why refusal) *wire.Error {
	invalid := func(code, msg string) *wire.Error {
		return wire.NewError(status, wire.TypeInvalidRequest, code, msg)
	}
	switch {
	case why == refuseBothFramings && status == http.StatusBadRequest:
		return invalid("ambiguous_framing",
			"A request may not carry both Transfer-Encoding and Content-Length (RFC 9112, section 6.1); the connection is closed.")
	case why == refuseOldChunked && status == http.StatusBadRequest:
		return invalid("ambiguous_framing",
			"An HTTP/1.0 request may not carry Transfer-Encoding (RFC 9112, section 6.1); the connection is closed.")
	case status == http.StatusRequestHeaderFieldsTooLarge:
		return invalid("request_header_fields_too_large", "The request's header fields are too large.")
	case status == http.StatusNotImplemented:
		return invalid("unsupported_transfer_encoding",
			"The request's Transfer-Encoding is not supported: send chunked, or a Content-Length.")
	case status == http.StatusHTTPVersionNotSupported:
		return invalid("http_version_not_supported", "The request's HTTP version is not supported: use HTTP/1.1.")
	}
	code := strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_")) // "bad_request"
	if detail != "" {
		return invalid(code, "The request is not valid HTTP/1.1: "+detail+".")
	}
	return invalid(code, "The request is not valid HTTP/1.1.")
}
