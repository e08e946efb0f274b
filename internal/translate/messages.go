package translate

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// The other direction: an Anthropic Messages request (Sluice's Anthropic
// surface) sent to an OpenAI or Azure OpenAI backend as a chat completion,
// and its answer back in the Messages API's shape.

const openaiProvider = "OpenAI"

// messagesRequest is a Messages API request as far as it translates.
type messagesRequest struct {
	Model     string          `json:"model"`
	MaxTokens *int64          `json:"max_tokens"`
	System    json.RawMessage `json:"system"`
	Messages  []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"input_schema"`
		Type        string          `json:"type"`
	} `json:"tools"`
	ToolChoice *struct {
		Type                   string `json:"type"`
		Name                   string `json:"name"`
		DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
	} `json:"tool_choice"`
	Stream        bool     `json:"stream"`
	StopSequences []string `json:"stop_sequences"`
	Temperature   *float64 `json:"temperature"`
	TopP          *float64 `json:"top_p"`
	TopK          *int64   `json:"top_k"`
	Metadata      *struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
	OutputConfig *anthropicOutput `json:"output_config"`
}

type oaOut struct {
	Model             string          `json:"model"`
	Messages          []any           `json:"messages"`
	MaxTokens         *int64          `json:"max_tokens,omitempty"`
	Temperature       *float64        `json:"temperature,omitempty"`
	TopP              *float64        `json:"top_p,omitempty"`
	Stop              []string        `json:"stop,omitempty"`
	Stream            bool            `json:"stream,omitempty"`
	StreamOptions     *map[string]any `json:"stream_options,omitempty"`
	Tools             []any           `json:"tools,omitempty"`
	ToolChoice        any             `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat    any             `json:"response_format,omitempty"`
	ReasoningEffort   string          `json:"reasoning_effort,omitempty"`
	User              string          `json:"user,omitempty"`
}

// MessagesToChat translates a Messages API request body into a Chat
// Completions request body for model. A stream asks for the usage chunk.
func MessagesToChat(body []byte, model string) ([]byte, error) {
	var r messagesRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return nil, refuse(openaiProvider, "the field "+f+" has no Chat Completions equivalent.")
		}
		return nil, invalid("The request body does not match the Messages API: " + err.Error())
	}
	if r.TopK != nil {
		return nil, refuse(openaiProvider, "top_k has no Chat Completions equivalent.")
	}
	o := oaOut{Model: model, MaxTokens: r.MaxTokens, Temperature: r.Temperature, TopP: r.TopP, Stop: r.StopSequences, Stream: r.Stream}
	if r.Stream {
		o.StreamOptions = &map[string]any{"include_usage": true}
	}
	if r.Metadata != nil {
		o.User = r.Metadata.UserID
	}
	if oc := r.OutputConfig; oc != nil {
		o.ReasoningEffort = oc.Effort
		if oc.Format != nil {
			o.ResponseFormat = map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "output", "schema": oc.Format.Schema}}
		}
	}
	if len(r.System) > 0 {
		bs, err := messageBlocks(r.System)
		if err != nil {
			return nil, err
		}
		var sb strings.Builder
		for _, b := range bs {
			sb.WriteString(textValue(b.Text))
		}
		o.Messages = append(o.Messages, map[string]any{"role": "system", "content": sb.String()})
	}
	for _, m := range r.Messages {
		bs, err := messageBlocks(m.Content)
		if err != nil {
			return nil, err
		}
		switch m.Role {
		case "user":
			var parts []any
			for _, b := range bs {
				switch b.Type {
				case "tool_result":
					text := string(b.Content)
					if rbs, err := messageBlocks(b.Content); err == nil {
						var sb strings.Builder
						for _, rb := range rbs {
							if rb.Type != "text" {
								return nil, refuse(openaiProvider, "tool results holding "+rb.Type+" blocks.")
							}
							sb.WriteString(textValue(rb.Text))
						}
						text = sb.String()
					}
					o.Messages = append(o.Messages, map[string]any{"role": "tool", "tool_call_id": b.ToolUseID, "content": text})
				case "text":
					parts = append(parts, map[string]any{"type": "text", "text": textValue(b.Text)})
				case "image":
					if b.Source == nil {
						return nil, invalid("an image block needs a source.")
					}
					url := b.Source.URL
					if b.Source.Type == "base64" {
						url = "data:" + b.Source.MediaType + ";base64," + b.Source.Data
					}
					parts = append(parts, map[string]any{"type": "image_url", "image_url": map[string]string{"url": url}})
				default:
					return nil, refuse(openaiProvider, "user content blocks of type "+b.Type+".")
				}
			}
			if len(parts) > 0 {
				o.Messages = append(o.Messages, map[string]any{"role": "user", "content": parts})
			}
		case "assistant":
			msg := map[string]any{"role": "assistant"}
			var text strings.Builder
			var calls []any
			for _, b := range bs {
				switch b.Type {
				case "text":
					text.WriteString(textValue(b.Text))
				case "tool_use":
					input := string(b.Input)
					if input == "" {
						input = "{}"
					}
					calls = append(calls, map[string]any{"id": b.ID, "type": "function", "function": map[string]string{"name": b.Name, "arguments": input}})
				case "thinking", "redacted_thinking":
				default:
					return nil, refuse(openaiProvider, "assistant content blocks of type "+b.Type+".")
				}
			}
			msg["content"] = text.String()
			if len(calls) > 0 {
				msg["tool_calls"] = calls
			}
			o.Messages = append(o.Messages, msg)
		default:
			return nil, invalid("messages: role must be user or assistant.")
		}
	}
	for _, t := range r.Tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, refuse(openaiProvider, "server tools ("+t.Type+").")
		}
		f := map[string]any{"name": t.Name, "parameters": t.InputSchema}
		if t.Description != "" {
			f["description"] = t.Description
		}
		o.Tools = append(o.Tools, map[string]any{"type": "function", "function": f})
	}
	if tc := r.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			o.ToolChoice = "auto"
		case "none":
			o.ToolChoice = "none"
		case "any":
			o.ToolChoice = "required"
		case "tool":
			o.ToolChoice = map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}
		}
		if tc.DisableParallelToolUse && len(o.Tools) > 0 {
			f := false
			o.ParallelToolCalls = &f
		}
	}
	return json.Marshal(o)
}

func textValue(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// messageBlocks reads a Messages content: a string or an array of blocks.
func messageBlocks(raw json.RawMessage) ([]anthropicBlock, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalid("a content is not a valid string.")
		}
		return []anthropicBlock{{Type: "text", Text: &s}}, nil
	}
	var bs []anthropicBlock
	if err := json.Unmarshal(raw, &bs); err != nil {
		return nil, invalid("a content is neither a string nor an array of blocks.")
	}
	return bs, nil
}

// stopReason maps an OpenAI finish_reason to a Messages stop_reason.
func stopReason(finish string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	return "end_turn"
}

// ChatToMessages translates a chat.completion body into a Messages
// response body.
func ChatToMessages(body []byte) ([]byte, error) {
	if !json.Valid(body) {
		return nil, io.ErrUnexpectedEOF
	}
	root := gjson.ParseBytes(body)
	c := root.Get("choices.0")
	var content []any
	if t := c.Get("message.content").String(); t != "" {
		content = append(content, map[string]any{"type": "text", "text": t})
	}
	c.Get("message.tool_calls").ForEach(func(_, tc gjson.Result) bool {
		args := json.RawMessage(tc.Get("function.arguments").String())
		if !json.Valid(args) {
			args = json.RawMessage("{}")
		}
		content = append(content, map[string]any{"type": "tool_use", "id": tc.Get("id").String(), "name": tc.Get("function.name").String(), "input": args})
		return true
	})
	if content == nil {
		content = []any{}
	}
	u := root.Get("usage")
	cached := u.Get("prompt_tokens_details.cached_tokens").Int()
	return json.Marshal(map[string]any{
		"id": "msg_" + strings.TrimPrefix(root.Get("id").String(), "chatcmpl-"), "type": "message", "role": "assistant",
		"model": root.Get("model").String(), "content": content,
		"stop_reason": stopReason(c.Get("finish_reason").String()), "stop_sequence": nil,
		"usage": map[string]int64{"input_tokens": u.Get("prompt_tokens").Int() - cached, "cache_read_input_tokens": cached,
			"cache_creation_input_tokens": 0, "output_tokens": u.Get("completion_tokens").Int()},
	})
}

// ChatErrorToMessages translates an OpenAI error body into the Messages
// API's error shape, keeping the status.
func ChatErrorToMessages(status int, body []byte) []byte {
	msg := gjson.GetBytes(body, "error.message").String()
	if msg == "" {
		msg = http.StatusText(status)
	}
	typ := "api_error"
	switch {
	case status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case status == http.StatusServiceUnavailable:
		typ = "overloaded_error"
	case status == http.StatusUnauthorized:
		typ = "authentication_error"
	case status == http.StatusForbidden:
		typ = "permission_error"
	case status == http.StatusNotFound:
		typ = "not_found_error"
	case status < 500:
		typ = "invalid_request_error"
	}
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
	return b
}

// MessagesStream translates a chat.completion.chunk stream into the
// Messages API's event stream: message_start, a content block per text
// run and per tool call (content_block_start, deltas, content_block_stop),
// message_delta with the stop reason and usage, message_stop. Use
// NewMessagesStream.
type MessagesStream struct {
	started, done bool
	open          bool // a content block is open
	openTool      int  // the OpenAI index of the open tool block; -1 for text
	next          int  // the next block index
	finish        string
	prompt, out   int64
	cached        int64
}

// NewMessagesStream returns a translator of an OpenAI stream to Messages
// events.
func NewMessagesStream() *MessagesStream { return &MessagesStream{openTool: -1} }

func event(dst []byte, name string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	return append(dst, "\ndata: "...)
}

func (s *MessagesStream) closeBlock(dst []byte) []byte {
	if !s.open {
		return dst
	}
	s.open = false
	dst = event(dst, "content_block_stop")
	dst = append(dst, `{"type":"content_block_stop","index":`...)
	dst = appendInt(dst, s.next-1)
	return append(dst, "}\n\n"...)
}

// Event implements Stream.
func (s *MessagesStream) Event(dst, data []byte) ([]byte, error) {
	if s.done {
		return dst, nil
	}
	if string(data) == "[DONE]" {
		dst = s.closeBlock(dst)
		dst = event(dst, "message_delta")
		dst = append(dst, `{"type":"message_delta","delta":{"stop_reason":`...)
		dst = wire.AppendString(dst, stopReason(s.finish))
		dst = append(dst, `,"stop_sequence":null},"usage":{"input_tokens":`...)
		dst = appendInt64(dst, s.prompt-s.cached)
		dst = append(dst, `,"cache_read_input_tokens":`...)
		dst = appendInt64(dst, s.cached)
		dst = append(dst, `,"output_tokens":`...)
		dst = appendInt64(dst, s.out)
		dst = append(dst, "}}\n\n"...)
		dst = event(dst, "message_stop")
		dst = append(dst, `{"type":"message_stop"}`+"\n\n"...)
		s.done = true
		return dst, nil
	}
	ev := view(data)
	if e := gjson.Get(ev, "error"); e.Exists() {
		return dst, &StreamError{Status: http.StatusBadGateway, Type: e.Get("type").String(), Msg: e.Get("message").String()}
	}
	if !s.started && gjson.Get(ev, "id").String() == "" {
		return dst, nil // Azure's first chunk: prompt filter results, no id or model
	}
	if !s.started {
		s.started = true
		dst = event(dst, "message_start")
		dst = append(dst, `{"type":"message_start","message":{"id":`...)
		dst = wire.AppendString(dst, "msg_"+strings.TrimPrefix(gjson.Get(ev, "id").String(), "chatcmpl-"))
		dst = append(dst, `,"type":"message","role":"assistant","model":`...)
		dst = wire.AppendString(dst, gjson.Get(ev, "model").String())
		dst = append(dst, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}`+"\n\n"...)
	}
	if u := gjson.Get(ev, "usage"); u.IsObject() {
		s.prompt, s.out = u.Get("prompt_tokens").Int(), u.Get("completion_tokens").Int()
		s.cached = u.Get("prompt_tokens_details.cached_tokens").Int()
	}
	c := gjson.Get(ev, "choices.0")
	if t := c.Get("delta.content").String(); t != "" {
		if !s.open || s.openTool >= 0 {
			dst = s.closeBlock(dst)
			dst = event(dst, "content_block_start")
			dst = append(dst, `{"type":"content_block_start","index":`...)
			dst = appendInt(dst, s.next)
			dst = append(dst, `,"content_block":{"type":"text","text":""}}`+"\n\n"...)
			s.open, s.openTool = true, -1
			s.next++
		}
		dst = event(dst, "content_block_delta")
		dst = append(dst, `{"type":"content_block_delta","index":`...)
		dst = appendInt(dst, s.next-1)
		dst = append(dst, `,"delta":{"type":"text_delta","text":`...)
		dst = wire.AppendString(dst, t)
		dst = append(dst, "}}\n\n"...)
	}
	c.Get("delta.tool_calls").ForEach(func(_, tc gjson.Result) bool {
		idx := int(tc.Get("index").Int())
		if id := tc.Get("id").String(); id != "" || !s.open || s.openTool != idx {
			dst = s.closeBlock(dst)
			dst = event(dst, "content_block_start")
			dst = append(dst, `{"type":"content_block_start","index":`...)
			dst = appendInt(dst, s.next)
			dst = append(dst, `,"content_block":{"type":"tool_use","id":`...)
			dst = wire.AppendString(dst, id)
			dst = append(dst, `,"name":`...)
			dst = wire.AppendString(dst, tc.Get("function.name").String())
			dst = append(dst, `,"input":{}}}`+"\n\n"...)
			s.open, s.openTool = true, idx
			s.next++
		}
		if a := tc.Get("function.arguments").String(); a != "" {
			dst = event(dst, "content_block_delta")
			dst = append(dst, `{"type":"content_block_delta","index":`...)
			dst = appendInt(dst, s.next-1)
			dst = append(dst, `,"delta":{"type":"input_json_delta","partial_json":`...)
			dst = wire.AppendString(dst, a)
			dst = append(dst, "}}\n\n"...)
		}
		return true
	})
	if f := c.Get("finish_reason").String(); f != "" {
		s.finish = strings.Clone(f) // data is the caller's, reused
	}
	return dst, nil
}

// End implements Stream: an OpenAI stream ends with [DONE].
func (s *MessagesStream) End(dst []byte) ([]byte, error) {
	if s.done {
		return dst, nil
	}
	return dst, io.ErrUnexpectedEOF
}

// Done implements Stream.
func (s *MessagesStream) Done() bool { return s.done }
