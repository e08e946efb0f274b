// Package wire knows the OpenAI and Azure OpenAI wire formats as far as the
// gateway must: the operations it proxies, the few request fields routing
// needs, read in one pass without decoding the whole body, and the
// OpenAI-shaped error every client understands.
// It sits at the bottom of the dependency graph and imports no other Sluice package.
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Operation is an API operation Sluice proxies.
type Operation uint8

// The operations, in the order of their paths.
const (
	OpUnknown Operation = iota
	OpChatCompletions
	OpCompletions
	OpEmbeddings
	OpResponses
	// OpMessages is Anthropic's Messages API (/v1/messages), served by
	// anthropic backends as it is.
	OpMessages
)

// Path returns the operation's path suffix, as it follows /v1 or
// /openai/deployments/{deployment}.
func (o Operation) Path() string {
	switch o {
	case OpChatCompletions:
		return "/chat/completions"
	case OpCompletions:
		return "/completions"
	case OpEmbeddings:
		return "/embeddings"
	case OpResponses:
		return "/responses"
	case OpMessages:
		return "/messages"
	}
	return ""
}

// String returns the OpenTelemetry GenAI operation name (gen_ai.operation.name).
func (o Operation) String() string {
	switch o {
	case OpChatCompletions:
		return "chat"
	case OpCompletions:
		return "text_completion"
	case OpEmbeddings:
		return "embeddings"
	case OpResponses:
		return "responses"
	case OpMessages:
		return "chat" // gen_ai.operation.name of Anthropic's messages
	}
	return "unknown"
}

// OperationFromPath maps a path suffix such as "/chat/completions" to its operation.
func OperationFromPath(suffix string) Operation {
	switch suffix {
	case "/chat/completions":
		return OpChatCompletions
	case "/completions":
		return OpCompletions
	case "/embeddings":
		return OpEmbeddings
	case "/responses":
		return OpResponses
	case "/messages":
		return OpMessages
	}
	return OpUnknown
}

// Request is what the gateway reads from a request body. It refers into the
// body it was parsed from and must not outlive it.
type Request struct {
	// Model is the top-level "model" string; empty when absent.
	Model string
	// Stream is the top-level "stream" flag.
	Stream bool
	// IncludeUsage is stream_options.include_usage.
	IncludeUsage bool
	// MaxTokens is max_tokens, max_completion_tokens or max_output_tokens,
	// whichever is set; 0 when none is.
	MaxTokens int64
	// Choices is how many completions the backend generates, each up to
	// MaxTokens: the larger of "n" and, for completions, "best_of"; 1 when
	// neither is set.
	Choices int64
	// PreviousResponseID is a Responses request's previous_response_id:
	// the stored response it continues, which lives on one backend. It
	// refers into the body.
	PreviousResponseID string

	// modelStart and modelEnd delimit the raw JSON value of "model" in the
	// body, so that it can be replaced without re-encoding the rest.
	modelStart, modelEnd int
}

// ErrBadRequest is the class of every error ParseRequest returns.
var ErrBadRequest = errors.New("bad request")

// ParseRequest reads the routing fields of a JSON request body in one pass
// over its top-level keys. The body must be a JSON object.
//
// A body that two JSON readers could read differently is refused: a key
// given twice, or in two spellings that differ only in case, or a key that
// differs only in case from a field of its object ("Model"), in the body and
// in the objects inside it that Sluice reads (stream_options, messages,
// Responses input items, their content parts and tool calls). A JSON decoder
// keeps the last of duplicates, gjson the first, and Go's encoding/json
// matches keys case-insensitively: without this, {"model":"cheap",
// "Model":"expensive"} would pass a model allow-list as "cheap" and be
// served as "expensive".
func ParseRequest(body []byte) (Request, error) {
	r := Request{Choices: 1}
	if !ValidJSON(body) {
		return r, fmt.Errorf("%w: the request body is not valid JSON", ErrBadRequest)
	}
	if !utf8.Valid(body) {
		// JSON is UTF-8 (RFC 8259 §8.1). Readers differ on invalid bytes
		// (replaced, kept or refused), and Sluice must read what the
		// backend reads.
		return r, fmt.Errorf("%w: the request body is not valid UTF-8", ErrBadRequest)
	}
	root := gjson.Parse(view(body))
	if !root.IsObject() {
		return r, fmt.Errorf("%w: the request body must be a JSON object", ErrBadRequest)
	}
	var keys keyChecker
	var err error
	maxKey := "" // the max_*tokens field set, when one is
	root.ForEach(func(key, value gjson.Result) bool {
		if err = keys.check(requestShape, key.Str); err != nil {
			return false
		}
		switch key.Str {
		case "model":
			if value.Type != gjson.String {
				err = fmt.Errorf("%w: \"model\" must be a string", ErrBadRequest)
				return false
			}
			r.Model = strings.Clone(value.Str) // not a view of body: it outlives the request
			r.modelStart = value.Index
			r.modelEnd = value.Index + len(value.Raw)
		case "stream":
			switch value.Type {
			case gjson.True:
				r.Stream = true
			case gjson.False, gjson.Null:
			default:
				err = fmt.Errorf("%w: \"stream\" must be a boolean", ErrBadRequest)
				return false
			}
		case "stream_options":
			if err = checkValue(value, requestShape.inner["stream_options"]); err != nil {
				err = in(err, ".stream_options")
			}
			r.IncludeUsage = value.Get("include_usage").Type == gjson.True
		case "messages", "input":
			if err = checkValue(value, requestShape.inner[key.Str]); err != nil {
				err = in(err, "."+key.Str)
			}
		case "max_tokens", "max_completion_tokens", "max_output_tokens":
			if value.Type == gjson.Null {
				return true
			}
			if maxKey != "" {
				err = fmt.Errorf("%w: %q and %q are both given: send one", ErrBadRequest, maxKey, key.Str)
				return false
			}
			maxKey = key.Str
			r.MaxTokens, err = count(key.Str, value, 0)
		case "previous_response_id":
			switch value.Type {
			case gjson.String:
				r.PreviousResponseID = value.Str
			case gjson.Null:
			default:
				err = fmt.Errorf("%w: \"previous_response_id\" must be a string", ErrBadRequest)
			}
		case "n", "best_of":
			if value.Type == gjson.Null {
				return true
			}
			var n int64
			if n, err = count(key.Str, value, 1); err == nil {
				r.Choices = max(r.Choices, n)
			}
		}
		return err == nil
	})
	if err != nil {
		return Request{}, err
	}
	return r, nil
}

// count reads an integer field of at least least.
func count(name string, v gjson.Result, least int64) (int64, error) {
	n, err := strconv.ParseInt(v.Raw, 10, 64)
	if v.Type != gjson.Number || err != nil || n < least {
		if least == 0 {
			return 0, fmt.Errorf("%w: %q must be a non-negative integer", ErrBadRequest, name)
		}
		return 0, fmt.Errorf("%w: %q must be an integer of at least %d", ErrBadRequest, name, least)
	}
	return n, nil
}

// MaxDepth bounds the nesting of the JSON ValidJSON accepts, as encoding/json
// bounds it at 10000. gjson validates recursively, and a body of millions of
// "[" would overflow the goroutine stack, which kills the process rather
// than panicking. Real requests nest a few levels deep.
const MaxDepth = 1000

// ValidJSON reports whether b is valid JSON nested at most MaxDepth deep.
// Call it, not gjson.Valid, on anything a client sent.
func ValidJSON(b []byte) bool {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			if depth++; depth > MaxDepth {
				return false
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return gjson.ValidBytes(b)
}

// view returns b as a string without copying it, for gjson to read: gjson's
// own []byte functions copy the whole input or every result. The string
// and anything cut from it must not be used once b may change, so only
// numbers, offsets and copies leave the functions that use it.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// QuoteJSON returns s as a JSON string literal, for WithModel.
func QuoteJSON(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// WithModel returns body with the top-level "model" set to quoted, a JSON
// string literal made by QuoteJSON (once, at config compile time). It copies
// the body once and leaves every other byte as it was. When the body has no
// "model", one is added as the first key.
func (r Request) WithModel(body []byte, quoted []byte) []byte {
	if r.modelEnd > r.modelStart {
		out := make([]byte, 0, len(body)-(r.modelEnd-r.modelStart)+len(quoted))
		out = append(out, body[:r.modelStart]...)
		out = append(out, quoted...)
		return append(out, body[r.modelEnd:]...)
	}
	// No model: insert right after the opening brace.
	open := 0
	for open < len(body) && body[open] != '{' {
		open++
	}
	if open == len(body) {
		return body
	}
	rest := body[open+1:]
	out := make([]byte, 0, len(body)+len(quoted)+10)
	out = append(out, body[:open+1]...)
	out = append(out, `"model":`...)
	out = append(out, quoted...)
	if !emptyObject(rest) {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// emptyObject reports whether rest, what follows an object's opening brace,
// holds only whitespace before the closing brace.
func emptyObject(rest []byte) bool {
	for _, c := range rest {
		switch c {
		case ' ', '\t', '\n', '\r':
		case '}':
			return true
		default:
			return false
		}
	}
	return true
}

// WithIncludeUsage returns body with stream_options.include_usage set to
// true, so that the backend ends a stream with a usage chunk. The body is
// edited in place of the one field (no re-encoding); when the client had
// already asked for usage it is returned as it is.
func (r Request) WithIncludeUsage(body []byte) []byte {
	if r.IncludeUsage {
		return body
	}
	out, err := sjson.SetBytes(body, "stream_options.include_usage", true)
	if err != nil {
		return body
	}
	return out
}
