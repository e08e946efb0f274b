package translate

import (
	"bytes"
	"encoding/json"
	"strings"
)

// chatRequest is an OpenAI Chat Completions request as far as it can be
// translated. Decoding refuses unknown fields, so that a field the
// translation does not know is a 400 and not silently dropped.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	N                   *int64          `json:"n"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Tools             []chatTool      `json:"tools"`
	ToolChoice        json.RawMessage `json:"tool_choice"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls"`
	ResponseFormat    *struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
			Strict *bool           `json:"strict"`
		} `json:"json_schema"`
	} `json:"response_format"`
	PresencePenalty  *float64       `json:"presence_penalty"`
	FrequencyPenalty *float64       `json:"frequency_penalty"`
	Seed             *int64         `json:"seed"`
	Logprobs         *bool          `json:"logprobs"`
	TopLogprobs      *int64         `json:"top_logprobs"`
	ReasoningEffort  string         `json:"reasoning_effort"`
	User             string         `json:"user"`
	Store            *bool          `json:"store"`
	Metadata         map[string]any `json:"metadata"`
	ServiceTier      string         `json:"service_tier"`
}

// chatMessage is one message of the conversation.
type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       string          `json:"name"`
	ToolCalls  []chatToolCall  `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
	Refusal    *string         `json:"refusal"`
}

type chatToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      *bool           `json:"strict"`
	} `json:"function"`
}

// contentPart is a part of a multi-part message content.
type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL    string `json:"url"`
		Detail string `json:"detail"`
	} `json:"image_url"`
	Refusal string `json:"refusal"`
}

// decodeChat decodes an OpenAI chat request strictly.
func decodeChat(provider string, body []byte) (*chatRequest, error) {
	var r chatRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return nil, refuse(provider, "the field "+f+" has no equivalent.")
		}
		return nil, invalid("The request body does not match the Chat Completions API: " + err.Error())
	}
	if len(r.Messages) == 0 {
		return nil, invalid("messages must not be empty.")
	}
	return &r, nil
}

// parts reads a message content: a string, or an array of parts; null is
// no parts.
func parts(content json.RawMessage) ([]contentPart, error) {
	content = bytes.TrimSpace(content)
	if len(content) == 0 || string(content) == "null" {
		return nil, nil
	}
	if content[0] == '"' {
		var s string
		if err := json.Unmarshal(content, &s); err != nil {
			return nil, invalid("a message content is not a valid string.")
		}
		return []contentPart{{Type: "text", Text: s}}, nil
	}
	var ps []contentPart
	if err := json.Unmarshal(content, &ps); err != nil {
		return nil, invalid("a message content is neither a string nor an array of parts.")
	}
	return ps, nil
}

// textOf joins the text parts of a content; other parts are refused.
func textOf(provider, role string, content json.RawMessage) (string, error) {
	ps, err := parts(content)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, p := range ps {
		if p.Type != "text" {
			return "", refuse(provider, "a "+role+" message may hold only text parts, not "+p.Type+".")
		}
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// stops reads "stop": a string or an array of strings.
func stops(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalid("stop is not a valid string.")
		}
		return []string{s}, nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err != nil {
		return nil, invalid("stop must be a string or an array of strings.")
	}
	return ss, nil
}

// dataURL splits a data: URL of base64 data into its media type and data.
func dataURL(u string) (mediaType, data string, ok bool) {
	rest, ok := strings.CutPrefix(u, "data:")
	if !ok {
		return "", "", false
	}
	meta, data, ok := strings.Cut(rest, ",")
	if !ok {
		return "", "", false
	}
	mediaType, ok = strings.CutSuffix(meta, ";base64")
	return mediaType, data, ok && mediaType != ""
}

// toolChoice is an OpenAI tool_choice: mode is auto, none or required, or
// function with name.
type toolChoice struct {
	mode, name string
}

func parseToolChoice(raw json.RawMessage) (toolChoice, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return toolChoice{}, nil
	}
	if raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		switch s {
		case "auto", "none", "required":
			return toolChoice{mode: s}, nil
		}
		return toolChoice{}, invalid("tool_choice must be auto, none, required or a function.")
	}
	var o struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || o.Type != "function" || o.Function.Name == "" {
		return toolChoice{}, invalid("tool_choice must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":...}}.")
	}
	return toolChoice{mode: "function", name: o.Function.Name}, nil
}

// maxTokens is the client's max_completion_tokens or max_tokens.
func (r *chatRequest) maxTokens() int64 {
	if r.MaxCompletionTokens != nil {
		return *r.MaxCompletionTokens
	}
	if r.MaxTokens != nil {
		return *r.MaxTokens
	}
	return 0
}

// chatResponse is an OpenAI chat.completion.
type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   openAIUsage  `json:"usage"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      responseMessage `json:"message"`
	FinishReason string          `json:"finish_reason"`
	Logprobs     *struct{}       `json:"logprobs"`
}

type responseMessage struct {
	Role      string         `json:"role"`
	Content   *string        `json:"content"`
	Refusal   *string        `json:"refusal"`
	ToolCalls []chatToolCall `json:"tool_calls,omitempty"`
}
