package translate

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/wire"
	"github.com/tidwall/gjson"
)

// StatusOverloaded is Anthropic's status for an overloaded API.
const StatusOverloaded = 529

// anthropicStatus is the status an Anthropic error type is answered with:
// overloaded (529, which no OpenAI client or breaker rule knows) is a 503.
func anthropicStatus(typ string, status int) int {
	switch typ {
	case "overloaded_error":
		return http.StatusServiceUnavailable
	case "rate_limit_error":
		return http.StatusTooManyRequests
	case "api_error":
		return http.StatusInternalServerError
	case "timeout_error":
		return http.StatusGatewayTimeout
	}
	if status == StatusOverloaded {
		return http.StatusServiceUnavailable
	}
	return status
}

// openAIType is the OpenAI error type for a status.
func openAIType(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return wire.TypeRateLimit
	case status == http.StatusUnauthorized:
		return wire.TypeAuthentication
	case status == http.StatusForbidden:
		return wire.TypePermission
	case status == http.StatusNotFound:
		return wire.TypeNotFound
	case status >= 500:
		return wire.TypeServer
	}
	return wire.TypeInvalidRequest
}

// ProviderError is a provider's error response in OpenAI's terms.
type ProviderError struct {
	// Status is the status to answer with.
	Status int
	// RetryAfter is the wait the provider asked for; 0 when it named none.
	RetryAfter time.Duration
	// Body is the OpenAI-shaped error body.
	Body []byte
}

// AnthropicError translates an Anthropic error response
// ({"type":"error","error":{"type","message"}}). Anthropic sends
// retry-after on 429s, which is kept by the caller as it is.
func AnthropicError(status int, body []byte) ProviderError {
	e := gjson.GetBytes(body, "error")
	typ, msg := e.Get("type").String(), e.Get("message").String()
	st := anthropicStatus(typ, status)
	if msg == "" {
		msg = http.StatusText(status)
	}
	return ProviderError{Status: st, Body: errorBody(st, "anthropic_"+typ, msg)}
}

// GeminiError translates a Gemini (Google API) error response
// ({"error":{"code","message","status","details":[...]}}): a RetryInfo
// detail's retryDelay ("37s", "0.5s") becomes RetryAfter.
func GeminiError(status int, body []byte) ProviderError {
	e := gjson.GetBytes(body, "error")
	msg, st := e.Get("message").String(), e.Get("status").String()
	if msg == "" {
		msg = http.StatusText(status)
	}
	pe := ProviderError{Status: status}
	e.Get("details").ForEach(func(_, d gjson.Result) bool {
		if strings.HasSuffix(d.Get("@type").Str, "google.rpc.RetryInfo") {
			if v, err := time.ParseDuration(d.Get("retryDelay").Str); err == nil && v > 0 {
				pe.RetryAfter = v
			}
		}
		return true
	})
	code := "gemini_" + strings.ToLower(st)
	if st == "" {
		code = "gemini_error"
	}
	pe.Body = errorBody(status, code, msg)
	return pe
}

func errorBody(status int, code, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": "The backend answered " + strconv.Itoa(status) + ": " + msg,
		"type":    openAIType(status), "param": nil, "code": code,
	}})
	return b
}
