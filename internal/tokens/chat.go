package tokens

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/sluice-gateway/sluice/internal/wire"
	"github.com/tidwall/gjson"
)

// The chat formula is the one in OpenAI's cookbook, "How to count tokens with
// tiktoken", num_tokens_from_messages: every message costs tokensPerMessage
// plus the tokens of its fields, a name costs one more, and every reply is
// primed with replyPriming tokens (<|start|>assistant<|message|>). It is exact
// for gpt-3.5-turbo-0613 and later, gpt-4 and gpt-4o text messages.
const (
	tokensPerMessage = 3
	tokensPerName    = 1
	replyPriming     = 3
)

// ImageTokens is what one image in a prompt counts for. The real cost depends
// on the image's size and detail (85 tokens at low detail; 85 + 170 per
// 512-pixel tile at high detail, per OpenAI's vision guide), which a gateway
// cannot know without fetching and decoding the image. 1200 is the value
// Azure API Management's llm-token-limit policy uses for every image when it
// estimates prompt tokens; it is at least the cost of a high-detail image of
// up to six tiles, so a limit that charges it errs on the side of the
// deployment's quota rather than letting a burst of images overrun it.
const ImageTokens = 1200

// Message is one chat message, reduced to what costs tokens.
type Message struct {
	// Role is system, developer, user, assistant or tool.
	Role string
	// Name is the optional participant name; it costs one extra token.
	Name string
	// Content holds the message's text parts, counted separately. An
	// assistant's tool calls may be added here as their function names and
	// argument strings.
	Content []string
	// Images is the number of image parts; each counts ImageTokens.
	Images int
}

// CountChat returns the prompt tokens that messages cost model, with OpenAI's
// chat formula. It is safe for concurrent use.
func CountChat(model string, messages []Message) int {
	enc := EncodingFor(model)
	n := replyPriming
	for _, m := range messages {
		n += tokensPerMessage + enc.Count(m.Role) + m.Images*ImageTokens
		if m.Name != "" {
			n += tokensPerName + enc.Count(m.Name)
		}
		for _, part := range m.Content {
			n += enc.Count(part)
		}
	}
	return n
}

// Errors CountChatJSON returns for bodies it cannot count.
var (
	ErrInvalidJSON = errors.New("invalid JSON")
	ErrNoMessages  = errors.New(`"messages" is not an array`)
	ErrBadMessage  = errors.New("malformed message")
)

// CountChatJSON returns the prompt tokens of a chat completions request body,
// counting its "messages" with CountChat: content as a string or as an array
// of parts, where text and refusal parts count their text and image_url parts
// count ImageTokens; an assistant's tool_calls count their function names and
// arguments. The Responses API's input_text, output_text and input_image parts
// count like text and image_url. Other parts (audio, files) and the "tools"
// definitions are not counted. It returns ErrInvalidJSON, ErrNoMessages or ErrBadMessage
// (wrapped, with the message's index) for a body it cannot count.
//
// It walks the JSON in place (gjson) rather than decoding it into structs:
// that is three times faster and leaves counting, not parsing, as the cost.
func CountChatJSON(model string, body []byte) (int, error) {
	if !wire.ValidJSON(body) {
		return 0, ErrInvalidJSON
	}
	return CountValidChatJSON(model, body)
}

// CountValidChatJSON is CountChatJSON for a body the caller has validated
// with wire.ValidJSON already, as the gateway has every request body: it
// saves validating it twice. For any other body its count is meaningless,
// though never a panic.
func CountValidChatJSON(model string, body []byte) (int, error) {
	return countMessages(EncodingFor(model), gjson.Get(view(body), "messages"))
}

// CountMessagesJSON is CountChatJSON for the "messages" array alone, for a
// caller that has already split the request body.
func CountMessagesJSON(model string, messages []byte) (int, error) {
	if !wire.ValidJSON(messages) {
		return 0, ErrInvalidJSON
	}
	return countMessages(EncodingFor(model), gjson.Parse(view(messages)))
}

// view returns b as a string without copying it, for gjson to read: gjson's
// own []byte functions copy the whole input or every result. Counting uses
// what it reads before it returns, while b cannot change.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func countMessages(enc Encoding, msgs gjson.Result) (int, error) {
	if !msgs.IsArray() {
		return 0, ErrNoMessages
	}
	n, i := replyPriming, 0
	var err error
	msgs.ForEach(func(_, m gjson.Result) bool {
		var c int
		if c, err = countMessage(enc, m); err != nil {
			err = fmt.Errorf("message %d: %w", i, err)
			return false
		}
		n += c
		i++
		return true
	})
	return n, err
}

func countMessage(enc Encoding, m gjson.Result) (int, error) {
	if !m.IsObject() {
		return 0, ErrBadMessage
	}
	n := tokensPerMessage
	var err error
	m.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "role", "refusal":
			n += enc.Count(v.Str)
		case "name":
			if v.Str != "" {
				n += tokensPerName + enc.Count(v.Str)
			}
		case "content":
			var c int
			c, err = countContent(enc, v)
			n += c
		case "tool_calls":
			v.ForEach(func(_, tc gjson.Result) bool {
				f := tc.Get("function")
				n += enc.Count(f.Get("name").Str) + enc.Count(f.Get("arguments").Str)
				return true
			})
		}
		return err == nil
	})
	return n, err
}

// countContent counts a message's content: null, a string or an array of
// parts.
func countContent(enc Encoding, v gjson.Result) (int, error) {
	switch {
	case v.Type == gjson.Null:
		return 0, nil
	case v.Type == gjson.String:
		return enc.Count(v.Str), nil
	case !v.IsArray():
		return 0, fmt.Errorf("%w: content is neither a string nor an array", ErrBadMessage)
	}
	n := 0
	var err error
	v.ForEach(func(_, p gjson.Result) bool {
		if !p.IsObject() {
			err = fmt.Errorf("%w: a content part is not an object", ErrBadMessage)
			return false
		}
		switch p.Get("type").Str {
		case "text", "input_text", "output_text":
			n += enc.Count(p.Get("text").Str)
		case "refusal":
			n += enc.Count(p.Get("refusal").Str)
		case "image_url", "input_image":
			n += ImageTokens
		}
		return true
	})
	return n, err
}
