package proxy

import (
	"github.com/sluice-gateway/sluice/internal/tokens"
	"github.com/sluice-gateway/sluice/internal/wire"
	"github.com/tidwall/gjson"
)

// promptTokens counts a request's prompt with the model's tokenizer: chat
// messages by OpenAI's formula, completions prompts, embeddings inputs
// (token arrays count their length), and Responses inputs.
func promptTokens(op wire.Operation, model string, body []byte) int64 {
	switch op {
	case wire.OpChatCompletions:
		// ParseRequest validated the body.
		if n, err := tokens.CountValidChatJSON(model, body); err == nil {
			return int64(n) + toolTokens(model, body)
		}
	case wire.OpCompletions:
		return countInputs(model, gjson.GetBytes(body, "prompt"))
	case wire.OpEmbeddings:
		return countInputs(model, gjson.GetBytes(body, "input"))
	case wire.OpMessages:
		return messagesPromptTokens(model, body)
	case wire.OpResponses:
		in := gjson.GetBytes(body, "input")
		if in.IsArray() {
			if n, err := tokens.CountMessagesJSON(model, []byte(in.Raw)); err == nil {
				return int64(n) + toolTokens(model, body) + int64(tokens.EncodingFor(model).CountToolItems(in))
			}
		}
		n := countInputs(model, in)
		if instr := gjson.GetBytes(body, "instructions"); instr.Type == gjson.String {
			n += int64(tokens.Count(model, instr.Str))
		}
		return n
	}
	return 0
}

// countInputs counts a string, an array of strings, a token array, or an
// array of token arrays.
func countInputs(model string, v gjson.Result) int64 {
	switch {
	case v.Type == gjson.String:
		return int64(tokens.Count(model, v.Str))
	case v.IsArray():
		var n int64
		v.ForEach(func(_, e gjson.Result) bool {
			switch {
			case e.Type == gjson.String:
				n += int64(tokens.Count(model, e.Str))
			case e.Type == gjson.Number:
				n++
			case e.IsArray():
				n += int64(len(e.Array()))
			}
			return true
		})
		return n
	}
	return 0
}

// toolTokens counts the function definitions in a request's "tools", as
// the cookbook's approximation does (tokens.CountTools); 0 without tools.
func toolTokens(model string, body []byte) int64 {
	tools := gjson.GetBytes(body, "tools")
	if !tools.IsArray() {
		return 0
	}
	return int64(tokens.EncodingFor(model).CountTools(tokens.ToolDefs(tools)))
}
