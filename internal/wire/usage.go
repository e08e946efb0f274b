package wire

import (
	"bytes"

	"github.com/tidwall/gjson"
)

// Usage is the token usage of one response.
type Usage struct {
	// Prompt is the input tokens (prompt_tokens, input_tokens).
	Prompt int64
	// Completion is the output tokens (completion_tokens, output_tokens).
	Completion int64
	// Total is the sum the backend reported, or Prompt+Completion.
	Total int64
	// Cached is the prompt tokens served from the prompt cache.
	Cached int64
	// Reasoning is the completion tokens spent on reasoning.
	Reasoning int64
	// Estimated is set when the counts were computed by Sluice, not reported
	// by the backend (a stream that broke before its usage chunk).
	Estimated bool
}

// usageOf reads a usage object in either the Chat Completions shape
// (prompt_tokens, completion_tokens) or the Responses shape (input_tokens,
// output_tokens).
func usageOf(u gjson.Result) (Usage, bool) {
	if !u.IsObject() {
		return Usage{}, false
	}
	var us Usage
	var cacheRead, cacheCreation int64 // Anthropic's, outside input_tokens
	found := false
	u.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "prompt_tokens", "input_tokens":
			us.Prompt, found = v.Int(), true
		case "completion_tokens", "output_tokens":
			us.Completion, found = v.Int(), true
		case "total_tokens":
			us.Total, found = v.Int(), true
		case "prompt_tokens_details", "input_tokens_details":
			us.Cached = v.Get("cached_tokens").Int()
		case "completion_tokens_details", "output_tokens_details":
			us.Reasoning = v.Get("reasoning_tokens").Int()
		case "cache_read_input_tokens":
			cacheRead = v.Int()
		case "cache_creation_input_tokens":
			cacheCreation = v.Int()
		}
		return true
	})
	if cacheRead+cacheCreation > 0 {
		// Anthropic counts cached prompt tokens apart from input_tokens.
		us.Prompt += cacheRead + cacheCreation
		us.Cached = cacheRead
	}
	if us.Total == 0 {
		us.Total = us.Prompt + us.Completion
	}
	return us, found
}

// UsageFromBody reads the usage of a non-streaming JSON response body: the
// top-level "usage" of chat completions, completions, embeddings and
// responses. It reports false when there is none.
//
// The body is not validated first: a whole-body validation took two thirds
// of the time, and the lookup needs none to be safe (gjson skips values
// without recursion and never panics on bad input; FuzzUsageFromBody holds
// it to that). A broken body may yield a usage read from its readable part.
func UsageFromBody(body []byte) (Usage, bool) {
	i := 0
	for i < len(body) && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r') {
		i++
	}
	if i == len(body) || body[i] != '{' {
		return Usage{}, false
	}
	return usageOf(gjson.Get(view(body), "usage"))
}

// StreamUsage reads the usage carried by one stream event's data: the usage
// chunk of chat completions and completions ("choices":[] with "usage"), or
// the response.completed / response.incomplete event of the Responses API.
// It reports whether the event is such a usage chunk (chat), separately from
// whether it carried usage at all, because only the chat usage chunk is one
// Sluice may have to remove.
func StreamUsage(data []byte) (u Usage, ok, usageChunk bool) {
	// Most chunks carry no usage, or "usage":null once include_usage is on:
	// only an object after "usage" is worth parsing the chunk for.
	if len(data) == 0 || data[0] != '{' || !hasUsageObject(data) {
		return Usage{}, false, false
	}
	if !ValidJSON(data) {
		return Usage{}, false, false
	}
	root := gjson.Parse(view(data))
	switch t := root.Get("type").Str; t {
	case "response.completed", "response.incomplete":
		u, ok = usageOf(root.Get("response.usage"))
		return u, ok, false
	case "message_start":
		// Anthropic's Messages stream: the input counts here, the output
		// in message_delta (the meter keeps the input it saw first).
		u, ok = usageOf(root.Get("message.usage"))
		return u, ok, false
	case "message_delta":
		u, ok = usageOf(root.Get("usage"))
		return u, ok, false
	}
	u, ok = usageOf(root.Get("usage"))
	if !ok {
		return Usage{}, false, false
	}
	choices := root.Get("choices")
	return u, true, !choices.Exists() || (choices.IsArray() && len(choices.Array()) == 0)
}

// hasUsageObject reports whether data has "usage" followed by an object.
func hasUsageObject(data []byte) bool {
	for {
		i := bytes.Index(data, []byte(`"usage"`))
		if i < 0 {
			return false
		}
		data = data[i+len(`"usage"`):]
		j := 0
		for j < len(data) && (isSpace(data[j]) || data[j] == ':') {
			j++
		}
		if j < len(data) && data[j] == '{' {
			return true
		}
	}
}

// StreamText returns the generated text a chat or completions chunk carries
// (choices[0].delta.content or choices[0].text), or a Responses
// response.output_text.delta event's delta; nil when none. Text without
// escapes is returned as a part of data, not a copy.
func StreamText(data []byte) []byte {
	if len(data) == 0 || data[0] != '{' {
		return nil
	}
	s := view(data)
	if r := gjson.Get(s, "choices.0.delta.content"); r.Type == gjson.String {
		return stringIn(data, r)
	}
	if r := gjson.Get(s, "choices.0.text"); r.Type == gjson.String {
		return stringIn(data, r)
	}
	if gjson.Get(s, "type").Str == "response.output_text.delta" {
		return stringIn(data, gjson.Get(s, "delta"))
	}
	return nil
}

// stringIn returns the string r read from data: the bytes between its
// quotes when it has no escapes, else a copy of its unescaped value.
func stringIn(data []byte, r gjson.Result) []byte {
	if i := r.Index; r.Type == gjson.String && i > 0 && len(r.Raw) == len(r.Str)+2 && i+len(r.Raw) <= len(data) && data[i] == '"' {
		return data[i+1 : i+len(r.Raw)-1 : i+len(r.Raw)-1]
	}
	return []byte(r.Str)
}

// WithoutNullUsage returns the event with its top-level "usage":null member
// removed: OpenAI adds it to every chunk when include_usage is set, and a
// client that did not ask for usage must see the chunks it would have seen.
// event is a raw SSE event whose data is one JSON object; it is returned
// unchanged when there is nothing to remove.
func WithoutNullUsage(event []byte) []byte {
	if !bytes.Contains(event, []byte(`"usage"`)) {
		return event
	}
	// OpenAI and Azure put it last: when the data ends in ,"usage":null}
	// that member is the top-level object's (in valid JSON the last brace
	// closes it), and no parse is needed to cut it out.
	const member = `"usage":null`
	if tail := bytes.TrimRight(event, " \t\r\n"); bytes.HasSuffix(tail, []byte(member+"}")) {
		start := len(tail) - len(member) - 1
		j := start - 1
		for j >= 0 && isSpace(event[j]) {
			j--
		}
		if j >= 0 && event[j] == ',' {
			out := make([]byte, 0, len(event)-(start+len(member)-j))
			out = append(out, event[:j]...)
			return append(out, event[start+len(member):]...)
		}
	}
	open := bytes.IndexByte(event, '{')
	if open < 0 {
		return event
	}
	data := event[open:]
	start, end := -1, -1
	gjson.Parse(view(data)).ForEach(func(k, v gjson.Result) bool {
		if k.Str == "usage" && v.Type == gjson.Null {
			start, end = open+k.Index, open+v.Index+len(v.Raw)
			return false
		}
		return true
	})
	if start < 0 {
		return event
	}
	// Take one neighbouring comma with it: the one before, else the one after.
	j := start - 1
	for j >= 0 && isSpace(event[j]) {
		j--
	}
	if j >= 0 && event[j] == ',' {
		start = j
	} else {
		k := end
		for k < len(event) && isSpace(event[k]) {
			k++
		}
		if k < len(event) && event[k] == ',' {
			end = k + 1
		}
	}
	out := make([]byte, 0, len(event)-(end-start))
	out = append(out, event[:start]...)
	return append(out, event[end:]...)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
