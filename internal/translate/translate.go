// Package translate converts between the OpenAI Chat Completions API and the
// APIs of other providers (Anthropic Messages, Gemini generateContent), so
// that their deployments can sit in a pool beside Azure OpenAI and look like
// any other member to the pipeline. Every function is pure: request bodies
// in, request bodies out; provider responses and stream events in, OpenAI
// responses and chunks out. What cannot be translated faithfully is refused
// with a 400 that says so, never changed silently.
package translate

import (
	"net/http"
	"strconv"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// Options are what a request translation needs besides the body.
type Options struct {
	// Model is the provider's model name (the backend's deployment).
	Model string
	// DefaultMaxTokens is sent as max_tokens to a provider that requires
	// one (Anthropic) when the client set none.
	DefaultMaxTokens int64
}

// refuse is the 400 for a request that cannot be translated faithfully.
func refuse(provider, msg string) *wire.Error {
	return wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "unsupported_by_provider",
		"This request cannot be sent to the "+provider+" backend of this model: "+msg)
}

// invalid is the 400 for a request that is malformed for the translation.
func invalid(msg string) *wire.Error {
	return wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "invalid_request_body", msg)
}

// Stream translates a provider's event stream into OpenAI
// chat.completion.chunk events, one provider event at a time. It is not
// safe for concurrent use.
type Stream interface {
	// Event translates the data of one provider event (its "data:" lines
	// joined, without the "data: " prefix), appending the OpenAI events
	// it makes to dst. An error is the provider's in-stream error or a
	// malformed event: the stream is broken off.
	Event(dst, data []byte) ([]byte, error)
	// End is called at the end of the provider's stream. It appends what
	// is still to send (the usage chunk and [DONE] for a provider that
	// sends no end marker), or returns io.ErrUnexpectedEOF when the
	// stream ended before its end.
	End(dst []byte) ([]byte, error)
	// Done reports whether the translated stream has ended ([DONE] sent).
	Done() bool
}

// StreamError is a provider's error event in a stream, already mapped to
// the status the breakers and retries understand (529 overloaded: 503).
type StreamError struct {
	Status int
	Type   string
	Msg    string
}

func (e *StreamError) Error() string {
	return "provider stream error " + strconv.Itoa(e.Status) + " " + e.Type + ": " + e.Msg
}

// chunkHead appends the start of a chat.completion.chunk event up to and
// including `"choices":`.
func chunkHead(dst []byte, id, model string, created int64) []byte {
	dst = append(dst, `data: {"id":`...)
	dst = wire.AppendString(dst, id)
	dst = append(dst, `,"object":"chat.completion.chunk","created":`...)
	dst = strconv.AppendInt(dst, created, 10)
	dst = append(dst, `,"model":`...)
	dst = wire.AppendString(dst, model)
	return append(dst, `,"choices":`...)
}

// eventEnd ends a data event.
func eventEnd(dst []byte) []byte { return append(dst, "}\n\n"...) }

// doneEvent is the OpenAI stream's end.
const doneEvent = "data: [DONE]\n\n"

// appendUsage appends an OpenAI usage object.
func appendUsage(dst []byte, u Usage) []byte {
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, u.Prompt, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, u.Completion, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, u.Prompt+u.Completion, 10)
	dst = append(dst, `,"prompt_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendInt(dst, u.Cached, 10)
	if u.CacheCreation > 0 {
		dst = append(dst, `,"cache_creation_tokens":`...)
		dst = strconv.AppendInt(dst, u.CacheCreation, 10)
	}
	dst = append(dst, `},"completion_tokens_details":{"reasoning_tokens":`...)
	dst = strconv.AppendInt(dst, u.Reasoning, 10)
	return append(dst, "}}"...)
}

// Usage is a provider's usage in OpenAI's terms.
type Usage struct {
	// Prompt is every input token: Anthropic's input_tokens +
	// cache_read_input_tokens + cache_creation_input_tokens; Gemini's
	// promptTokenCount + toolUsePromptTokenCount.
	Prompt int64
	// Completion is every output token: Anthropic's output_tokens;
	// Gemini's candidatesTokenCount + thoughtsTokenCount.
	Completion int64
	// Cached is the prompt tokens read from the provider's cache.
	Cached int64
	// CacheCreation is the prompt tokens written to Anthropic's cache.
	CacheCreation int64
	// Reasoning is the completion tokens spent thinking (Gemini's thoughts).
	Reasoning int64
}

// openAIUsage is the usage object of a non-streaming response.
type openAIUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens        int64 `json:"cached_tokens"`
		CacheCreationTokens int64 `json:"cache_creation_tokens,omitempty"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

func (u Usage) openAI() openAIUsage {
	var o openAIUsage
	o.PromptTokens, o.CompletionTokens, o.TotalTokens = u.Prompt, u.Completion, u.Prompt+u.Completion
	o.PromptTokensDetails.CachedTokens = u.Cached
	o.PromptTokensDetails.CacheCreationTokens = u.CacheCreation
	o.CompletionTokensDetails.ReasoningTokens = u.Reasoning
	return o
}

func appendInt64(dst []byte, i int64) []byte { return strconv.AppendInt(dst, i, 10) }
