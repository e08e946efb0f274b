package wire

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Error types, as OpenAI names them in error.type.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeRateLimit      = "rate_limit_error"
	TypeServer         = "server_error"
)

// Error is an error the gateway itself answers a client with. Its message is
// written for the client: it names no backend, key or internal detail.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Type is the OpenAI error type.
	Type string
	// Code is a stable machine-readable code.
	Code string
	// Message says what went wrong and what to do.
	Message string
	// RetryAfterMillis, when positive, is sent as Retry-After (seconds) and
	// retry-after-ms.
	RetryAfterMillis int64
	// NoRetry says a retry cannot succeed (a request larger than a whole
	// limit, a quota spent until its period turns): the answer carries
	// x-should-retry: false, which the OpenAI SDKs honour. Otherwise a 429
	// or a 5xx carries x-should-retry: true.
	NoRetry bool
	// Challenge, when set, is sent as WWW-Authenticate (RFC 6750: a refused
	// bearer token gets Bearer error="invalid_token").
	Challenge string
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// NewError returns an Error.
func NewError(status int, typ, code, msg string) *Error {
	return &Error{Status: status, Type: typ, Code: code, Message: msg}
}

type errorBody struct {
	Error errorFields `json:"error"`
}

type errorFields struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// Body returns the OpenAI-shaped JSON body:
// {"error":{"message":"...","type":"...","param":null,"code":"..."}}.
func (e *Error) Body() []byte {
	b, _ := json.Marshal(errorBody{Error: errorFields{Message: e.Message, Type: e.Type, Code: e.Code}})
	return append(b, '\n')
}

// Prepare sets the error's response headers on h (content type, no-store,
// the retry headers, the length) and returns its body, for a caller that
// writes the status itself.
func (e *Error) Prepare(h http.Header) []byte {
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if e.Challenge != "" {
		h.Set("WWW-Authenticate", e.Challenge)
	}
	if e.RetryAfterMillis > 0 {
		secs := (e.RetryAfterMillis + 999) / 1000
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
		h.Set("retry-after-ms", strconv.FormatInt(e.RetryAfterMillis, 10))
	}
	switch {
	case e.NoRetry:
		h.Set("X-Should-Retry", "false")
	case e.Status == http.StatusTooManyRequests || (e.Status >= 500 && e.Status != http.StatusNotImplemented):
		h.Set("X-Should-Retry", "true")
	}
	body := e.Body()
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return body
}

// Write sends the error to the client.
func (e *Error) Write(w http.ResponseWriter) {
	body := e.Prepare(w.Header())
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}
