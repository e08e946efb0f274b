package translate

import (
	"encoding/json"
	"strings"
)

// The Anthropic Messages API (POST /v1/messages, anthropic-version
// 2023-06-01): https://docs.anthropic.com/en/api/messages.

const anthropic = "anthropic"

type anthropicRequest struct {
	Model         string             `json:"model"`
	MaxTokens     int64              `json:"max_tokens"`
	System        string             `json:"system,omitempty"`
	Messages      []anthropicMessage `json:"messages"`
	Temperature   *float64           `json:"temperature,omitempty"`
	TopP          *float64           `json:"top_p,omitempty"`
	StopSequences []string           `json:"stop_sequences,omitempty"`
	Stream        bool               `json:"stream,omitempty"`
	Tools         []anthropicTool    `json:"tools,omitempty"`
	ToolChoice    *anthropicChoice   `json:"tool_choice,omitempty"`
	OutputConfig  *anthropicOutput   `json:"output_config,omitempty"`
	Metadata      *struct {
		UserID string `json:"user_id"`
	} `json:"metadata,omitempty"`
}

type anthropicOutput struct {
	Effort string           `json:"effort,omitempty"`
	Format *anthropicFormat `json:"format,omitempty"`
}

type anthropicFormat struct {
	Type   string          `json:"type"`
	Schema json.RawMessage `json:"schema"`
}

type anthropicMessage struct {
	Role    string           `json:"role"`
	Content []anthropicBlock `json:"content"`
}

// anthropicBlock is a content block of any type; only the type's fields are
// set.
type anthropicBlock struct {
	Type      string           `json:"type"`
	Text      *string          `json:"text,omitempty"`
	Source    *anthropicSource `json:"source,omitempty"`
	ID        string           `json:"id,omitempty"`
	Name      string           `json:"name,omitempty"`
	Input     json.RawMessage  `json:"input,omitempty"`
	ToolUseID string           `json:"tool_use_id,omitempty"`
	Content   json.RawMessage  `json:"content,omitempty"`
	Thinking  string           `json:"thinking,omitempty"`
}

type anthropicSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type anthropicTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type anthropicChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// AnthropicRequest translates an OpenAI chat request body into an
// Anthropic Messages request body. Errors are *wire.Error 400s.
func AnthropicRequest(body []byte, o Options) ([]byte, error) {
	r, err := decodeChat(anthropic, body)
	if err != nil {
		return nil, err
	}
	switch {
	case r.N != nil && *r.N > 1:
		return nil, refuse(anthropic, "n > 1: Anthropic generates one completion per request.")
	case r.Logprobs != nil && *r.Logprobs, r.TopLogprobs != nil:
		return nil, refuse(anthropic, "logprobs: Anthropic does not return log probabilities.")
	case r.PresencePenalty != nil && *r.PresencePenalty != 0, r.FrequencyPenalty != nil && *r.FrequencyPenalty != 0:
		return nil, refuse(anthropic, "presence_penalty and frequency_penalty have no Anthropic equivalent.")
	case r.Seed != nil:
		return nil, refuse(anthropic, "seed: Anthropic has no seeded sampling.")
	}
	a := anthropicRequest{Model: o.Model, MaxTokens: r.maxTokens(), Temperature: r.Temperature, TopP: r.TopP, Stream: r.Stream}
	if a.MaxTokens == 0 {
		a.MaxTokens = o.DefaultMaxTokens
	}
	if a.MaxTokens <= 0 {
		return nil, refuse(anthropic, "max_tokens is required by Anthropic and no default is configured.")
	}
	if a.Temperature != nil && *a.Temperature > 1 {
		return nil, refuse(anthropic, "temperature above 1: Anthropic's range is 0 to 1.")
	}
	if a.StopSequences, err = stops(r.Stop); err != nil {
		return nil, err
	}
	if r.User != "" {
		a.Metadata = &struct {
			UserID string `json:"user_id"`
		}{r.User}
	}
	switch r.ReasoningEffort {
	case "":
	case "low", "medium", "high":
		a.OutputConfig = &anthropicOutput{Effort: r.ReasoningEffort}
	default:
		return nil, refuse(anthropic, "reasoning_effort "+r.ReasoningEffort+" has no Anthropic equivalent.")
	}
	if rf := r.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text":
		case "json_schema":
			if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 {
				return nil, invalid("response_format json_schema needs a schema.")
			}
			if a.OutputConfig == nil {
				a.OutputConfig = &anthropicOutput{}
			}
			a.OutputConfig.Format = &anthropicFormat{Type: "json_schema", Schema: rf.JSONSchema.Schema}
		default:
			return nil, refuse(anthropic, "response_format "+rf.Type+": only json_schema has an Anthropic equivalent (structured outputs).")
		}
	}
	for _, t := range r.Tools {
		if t.Type != "function" {
			return nil, refuse(anthropic, "tools of type "+t.Type+": only function tools translate.")
		}
		schema := t.Function.Parameters
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		a.Tools = append(a.Tools, anthropicTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	tc, err := parseToolChoice(r.ToolChoice)
	if err != nil {
		return nil, err
	}
	switch tc.mode {
	case "auto":
		a.ToolChoice = &anthropicChoice{Type: "auto"}
	case "none":
		a.ToolChoice = &anthropicChoice{Type: "none"}
	case "required":
		a.ToolChoice = &anthropicChoice{Type: "any"}
	case "function":
		a.ToolChoice = &anthropicChoice{Type: "tool", Name: tc.name}
	}
	if r.ParallelToolCalls != nil && !*r.ParallelToolCalls && len(a.Tools) > 0 {
		if a.ToolChoice == nil {
			a.ToolChoice = &anthropicChoice{Type: "auto"}
		}
		if a.ToolChoice.Type != "none" {
			a.ToolChoice.DisableParallelToolUse = true
		}
	}
	var system []string
	for _, m := range r.Messages {
		switch m.Role {
		case "system", "developer":
			s, err := textOf(anthropic, m.Role, m.Content)
			if err != nil {
				return nil, err
			}
			system = append(system, s)
		case "user":
			blocks, err := anthropicUserBlocks(m.Content)
			if err != nil {
				return nil, err
			}
			a.Messages = appendTurn(a.Messages, "user", blocks)
		case "assistant":
			blocks, err := anthropicAssistantBlocks(m)
			if err != nil {
				return nil, err
			}
			a.Messages = appendTurn(a.Messages, "assistant", blocks)
		case "tool":
			if m.ToolCallID == "" {
				return nil, invalid("a tool message needs tool_call_id.")
			}
			text, err := textOf(anthropic, m.Role, m.Content)
			if err != nil {
				return nil, err
			}
			content, _ := json.Marshal([]anthropicBlock{{Type: "text", Text: &text}})
			a.Messages = appendTurn(a.Messages, "user", []anthropicBlock{{Type: "tool_result", ToolUseID: m.ToolCallID, Content: content}})
		default:
			return nil, refuse(anthropic, "messages of role "+m.Role+".")
		}
	}
	if len(a.Messages) == 0 {
		return nil, invalid("the request has no user or assistant message.")
	}
	a.System = strings.Join(system, "\n\n")
	return json.Marshal(a)
}

// appendTurn adds blocks as a turn of role, joining them to the previous
// turn when it has the same role: Anthropic wants the roles to alternate,
// and the results of several tool calls go in one user turn (tool results
// first, as the API requires).
func appendTurn(msgs []anthropicMessage, role string, blocks []anthropicBlock) []anthropicMessage {
	if n := len(msgs); n > 0 && msgs[n-1].Role == role {
		msgs[n-1].Content = append(msgs[n-1].Content, blocks...)
		return msgs
	}
	return append(msgs, anthropicMessage{Role: role, Content: blocks})
}

func anthropicUserBlocks(content json.RawMessage) ([]anthropicBlock, error) {
	ps, err := parts(content)
	if err != nil {
		return nil, err
	}
	blocks := make([]anthropicBlock, 0, len(ps))
	for _, p := range ps {
		switch p.Type {
		case "text":
			blocks = append(blocks, anthropicBlock{Type: "text", Text: &p.Text})
		case "image_url":
			if p.ImageURL == nil {
				return nil, invalid("an image_url part needs image_url.")
			}
			src := &anthropicSource{Type: "url", URL: p.ImageURL.URL}
			if mt, data, ok := dataURL(p.ImageURL.URL); ok {
				src = &anthropicSource{Type: "base64", MediaType: mt, Data: data}
			} else if strings.HasPrefix(p.ImageURL.URL, "data:") {
				return nil, invalid("an image data URL must be base64: data:MEDIA;base64,DATA.")
			}
			blocks = append(blocks, anthropicBlock{Type: "image", Source: src})
		default:
			return nil, refuse(anthropic, "content parts of type "+p.Type+".")
		}
	}
	return blocks, nil
}

func anthropicAssistantBlocks(m chatMessage) ([]anthropicBlock, error) {
	ps, err := parts(m.Content)
	if err != nil {
		return nil, err
	}
	blocks := make([]anthropicBlock, 0, len(ps)+len(m.ToolCalls))
	for _, p := range ps {
		switch p.Type {
		case "text":
			if p.Text != "" {
				blocks = append(blocks, anthropicBlock{Type: "text", Text: &p.Text})
			}
		case "refusal":
			blocks = append(blocks, anthropicBlock{Type: "text", Text: &p.Refusal})
		default:
			return nil, refuse(anthropic, "assistant content parts of type "+p.Type+".")
		}
	}
	for _, tc := range m.ToolCalls {
		args := json.RawMessage(tc.Function.Arguments)
		if strings.TrimSpace(tc.Function.Arguments) == "" {
			args = json.RawMessage("{}")
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(args, &obj); err != nil {
			return nil, invalid("the arguments of tool call " + tc.ID + " are not a JSON object; Anthropic needs the input of a tool call as an object.")
		}
		blocks = append(blocks, anthropicBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: args})
	}
	return blocks, nil
}

// anthropicResponse is a Messages API response.
type anthropicResponse struct {
	ID         string           `json:"id"`
	Model      string           `json:"model"`
	Content    []anthropicBlock `json:"content"`
	StopReason string           `json:"stop_reason"`
	Usage      anthropicUsage   `json:"usage"`
}

type anthropicUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	OutputTokensDetails      struct {
		ThinkingTokens int64 `json:"thinking_tokens"`
	} `json:"output_tokens_details"`
}

func (u anthropicUsage) usage() Usage {
	return Usage{
		Prompt:     u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens,
		Completion: u.OutputTokens, Cached: u.CacheReadInputTokens, CacheCreation: u.CacheCreationInputTokens,
		Reasoning: u.OutputTokensDetails.ThinkingTokens,
	}
}

// AnthropicFinish maps a stop_reason to an OpenAI finish_reason.
func AnthropicFinish(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop" // end_turn, stop_sequence, pause_turn
}

// AnthropicResponse translates a Messages API response body into an
// OpenAI chat.completion body. created is its Unix time.
func AnthropicResponse(body []byte, created int64) ([]byte, error) {
	var a anthropicResponse
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, err
	}
	msg := responseMessage{Role: "assistant"}
	var text strings.Builder
	hasText := false
	for _, b := range a.Content {
		switch b.Type {
		case "text":
			if b.Text != nil {
				text.WriteString(*b.Text)
				hasText = true
			}
		case "tool_use":
			tc := chatToolCall{ID: b.ID, Type: "function"}
			tc.Function.Name = b.Name
			tc.Function.Arguments = string(b.Input)
			if len(b.Input) == 0 {
				tc.Function.Arguments = "{}"
			}
			msg.ToolCalls = append(msg.ToolCalls, tc)
		}
	}
	if hasText || len(msg.ToolCalls) == 0 {
		s := text.String()
		msg.Content = &s
	}
	resp := chatResponse{
		ID: "chatcmpl-" + a.ID, Object: "chat.completion", Created: created, Model: a.Model,
		Choices: []chatChoice{{Message: msg, FinishReason: AnthropicFinish(a.StopReason)}},
		Usage:   a.Usage.usage().openAI(),
	}
	return json.Marshal(resp)
}
