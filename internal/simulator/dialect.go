package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// dialect is the API a request speaks, besides OpenAI's and Azure's: the
// simulator serves Anthropic's Messages API and Gemini's generateContent
// too, with their wire formats, event sequences and errors, so that
// Sluice's translation to them is tested against a backend that holds
// requests to their contracts.
type dialect uint8

const (
	dialectNone dialect = iota
	// dialectAnthropic is POST /v1/messages (x-api-key, anthropic-version).
	dialectAnthropic
	// dialectGemini is POST /v1beta/models/{model}:generateContent and
	// :streamGenerateContent?alt=sse (x-goog-api-key).
	dialectGemini
)

// dialectRoute routes the Anthropic and Gemini paths.
func dialectRoute(path string) (routed, bool) {
	if path == "/v1/messages" {
		return routed{op: opChat, dialect: dialectAnthropic}, true
	}
	if path == "/v1beta/models" {
		return routed{op: opModels}, true // Gemini's model list, which health checks read
	}
	rest, ok := strings.CutPrefix(path, "/v1beta/models/")
	if !ok {
		return routed{}, false
	}
	model, method, ok := strings.Cut(rest, ":")
	switch {
	case !ok || model == "":
		return routed{}, true
	case method == "generateContent":
		return routed{op: opChat, dialect: dialectGemini, deployment: model}, true
	case method == "streamGenerateContent":
		return routed{op: opChat, dialect: dialectGemini, deployment: model, stream: true}, true
	}
	return routed{}, true
}

// failDialect answers an error in the dialect's shape. Anthropic answers an
// overloaded API (an injected 503) with 529 overloaded_error and a 429 with
// retry-after; Gemini answers 429 RESOURCE_EXHAUSTED with the wait in a
// RetryInfo detail and no retry header.
func (c *call) failDialect(status int, message string) {
	h := c.w.Header()
	wait := h.Get("retry-after-ms")
	for _, k := range []string{"retry-after-ms", "x-ratelimit-reset-tokens", "x-ratelimit-reset-requests"} {
		h.Del(k)
	}
	if c.route.dialect == dialectAnthropic {
		typ := "api_error"
		switch status {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
			typ = "invalid_request_error"
			if status == http.StatusNotFound {
				typ = "not_found_error"
			}
		case http.StatusUnauthorized:
			typ = "authentication_error"
		case http.StatusRequestEntityTooLarge:
			typ = "request_too_large"
		case http.StatusTooManyRequests:
			typ = "rate_limit_error"
		case http.StatusServiceUnavailable, 529:
			status, typ, message = 529, "overloaded_error", "Overloaded"
		}
		b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": message}, "request_id": "req_" + c.id})
		c.writeBody(status, b)
		return
	}
	h.Del("Retry-After")
	st := map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
		429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}[status]
	if st == "" {
		st = "UNKNOWN"
	}
	e := map[string]any{"code": status, "message": message, "status": st}
	if ms, err := strconv.ParseInt(wait, 10, 64); err == nil && status == http.StatusTooManyRequests {
		e["details"] = []any{map[string]string{"@type": "type.googleapis.com/google.rpc.RetryInfo",
			"retryDelay": strconv.FormatFloat((time.Duration(ms)*time.Millisecond).Seconds(), 'f', -1, 64) + "s"}}
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	c.writeBody(status, b)
}

// oaMessage is a chat message, the form the simulator's reply logic reads.
type oaMessage struct {
	Role       string       `json:"role"`
	Content    any          `json:"content"`
	ToolCalls  []oaToolCall `json:"tool_calls,omitempty"`
	ToolCallID string       `json:"tool_call_id,omitempty"`
}

type oaToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type oaTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
	} `json:"function"`
}

// oaRequest is the chat request a dialect's request is read as.
type oaRequest struct {
	Model             string          `json:"model"`
	Stream            bool            `json:"stream"`
	MaxTokens         *int            `json:"max_tokens,omitempty"`
	Messages          []oaMessage     `json:"messages"`
	Tools             []oaTool        `json:"tools,omitempty"`
	ToolChoice        any             `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat    json.RawMessage `json:"response_format,omitempty"`
}

// fromDialect checks a dialect's request as its service does and returns
// it as a chat request for the reply logic, or answers 400.
func (c *call) fromDialect(body []byte) ([]byte, bool) {
	var (
		r   oaRequest
		err error
	)
	if c.route.dialect == dialectAnthropic {
		r, err = fromAnthropic(body)
	} else {
		r, err = fromGemini(body, c.route.deployment)
		r.Stream = c.route.stream
	}
	if err != nil {
		c.fail(http.StatusBadRequest, "invalid_request", err.Error(), "invalid_request_error")
		return nil, false
	}
	out, err := json.Marshal(r)
	if err != nil {
		c.fail(http.StatusBadRequest, "invalid_request", err.Error(), "invalid_request_error")
		return nil, false
	}
	return out, true
}

// strict decodes a top-level object, refusing unknown fields as both
// services do ("Extra inputs are not permitted", "Unknown name").
func strict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

type anthropicIn struct {
	Model     string          `json:"model"`
	MaxTokens *int            `json:"max_tokens"`
	System    json.RawMessage `json:"system"`
	Messages  []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"input_schema"`
	} `json:"tools"`
	ToolChoice *struct {
		Type                   string `json:"type"`
		Name                   string `json:"name"`
		DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
	} `json:"tool_choice"`
	Stream        bool            `json:"stream"`
	StopSequences []string        `json:"stop_sequences"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	TopK          *int            `json:"top_k"`
	Metadata      json.RawMessage `json:"metadata"`
	OutputConfig  *struct {
		Effort string `json:"effort"`
		Format *struct {
			Type   string          `json:"type"`
			Schema json.RawMessage `json:"schema"`
		} `json:"format"`
	} `json:"output_config"`
	Thinking json.RawMessage `json:"thinking"`
}

// block is a content block of either dialect's request, read loosely.
type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	Source    *struct {
		Type      string `json:"type"`
		MediaType string `json:"media_type"`
		Data      string `json:"data"`
		URL       string `json:"url"`
	} `json:"source"`
}

// blocks reads an Anthropic content: a string or an array of blocks.
func blocks(raw json.RawMessage) ([]block, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return []block{{Type: "text", Text: s}}, err
	}
	var bs []block
	if err := json.Unmarshal(raw, &bs); err != nil {
		return nil, refusal("messages: content: Input should be a valid list or string")
	}
	return bs, nil
}

func fromAnthropic(body []byte) (oaRequest, error) {
	var a anthropicIn
	if err := strict(body, &a); err != nil {
		return oaRequest{}, refusal("invalid request: %v", err)
	}
	r := oaRequest{Model: a.Model, Stream: a.Stream, MaxTokens: a.MaxTokens}
	switch {
	case a.Model == "":
		return r, refusal("model: Field required")
	case a.MaxTokens == nil:
		return r, refusal("max_tokens: Field required")
	case len(a.Messages) == 0:
		return r, refusal("messages: at least one message is required")
	case a.Temperature != nil && (*a.Temperature < 0 || *a.Temperature > 1):
		return r, refusal("temperature: range: 0..1")
	}
	if len(a.System) > 0 {
		bs, err := blocks(a.System)
		if err != nil {
			return r, refusal("system: %v", err)
		}
		var sb strings.Builder
		for _, b := range bs {
			sb.WriteString(b.Text)
		}
		r.Messages = append(r.Messages, oaMessage{Role: "system", Content: sb.String()})
	}
	toolUses := map[string]bool{} // the previous assistant turn's tool_use ids
	for i, m := range a.Messages {
		bs, err := blocks(m.Content)
		if err != nil {
			return r, err
		}
		switch m.Role {
		case "user":
			var parts []map[string]any
			for _, b := range bs {
				switch b.Type {
				case "tool_result":
					if !toolUses[b.ToolUseID] {
						return r, refusal("messages.%d.content: unexpected `tool_use_id` found in `tool_result` blocks: %s. Each `tool_result` block must have a corresponding `tool_use` block in the previous message", i, b.ToolUseID)
					}
					text := string(b.Content)
					if rbs, err := blocks(b.Content); err == nil {
						text = ""
						for _, rb := range rbs {
							text += rb.Text
						}
					}
					r.Messages = append(r.Messages, oaMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: text})
				case "text":
					parts = append(parts, map[string]any{"type": "text", "text": b.Text})
				case "image":
					if b.Source == nil || (b.Source.Type == "base64" && b.Source.Data == "") || (b.Source.Type == "url" && b.Source.URL == "") {
						return r, refusal("messages.%d.content: image: source: Field required", i)
					}
					parts = append(parts, map[string]any{"type": "image_url", "image_url": map[string]string{"url": "data:" + b.Source.MediaType + ";base64," + b.Source.Data}})
				default:
					return r, refusal("messages.%d.content: unsupported block type %q in a user message", i, b.Type)
				}
			}
			if len(parts) > 0 {
				r.Messages = append(r.Messages, oaMessage{Role: "user", Content: parts})
			}
			toolUses = map[string]bool{}
		case "assistant":
			msg := oaMessage{Role: "assistant", Content: ""}
			toolUses = map[string]bool{}
			for _, b := range bs {
				switch b.Type {
				case "text":
					msg.Content = msg.Content.(string) + b.Text
				case "tool_use":
					var obj map[string]any
					if json.Unmarshal(b.Input, &obj) != nil {
						return r, refusal("messages.%d.content: tool_use.input: Input should be a valid dictionary", i)
					}
					tc := oaToolCall{ID: b.ID, Type: "function"}
					tc.Function.Name, tc.Function.Arguments = b.Name, string(b.Input)
					msg.ToolCalls = append(msg.ToolCalls, tc)
					toolUses[b.ID] = true
				case "thinking", "redacted_thinking":
				default:
					return r, refusal("messages.%d.content: unsupported block type %q in an assistant message", i, b.Type)
				}
			}
			r.Messages = append(r.Messages, msg)
		default:
			return r, refusal("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
	}
	for _, t := range a.Tools {
		if len(t.InputSchema) == 0 {
			return r, refusal("tools: input_schema: Field required")
		}
		var ot oaTool
		ot.Type, ot.Function.Name, ot.Function.Description, ot.Function.Parameters = "function", t.Name, t.Description, t.InputSchema
		r.Tools = append(r.Tools, ot)
	}
	if tc := a.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			r.ToolChoice = "auto"
		case "none":
			r.ToolChoice = "none"
		case "any":
			r.ToolChoice = "required"
		case "tool":
			r.ToolChoice = map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}
		default:
			return r, refusal("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
		}
		if tc.DisableParallelToolUse {
			f := false
			r.ParallelToolCalls = &f
		}
	}
	if oc := a.OutputConfig; oc != nil && oc.Format != nil {
		if oc.Format.Type != "json_schema" || len(oc.Format.Schema) == 0 {
			return r, refusal("output_config.format: a json_schema format with a schema is required")
		}
		r.ResponseFormat, _ = json.Marshal(map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "output", "schema": oc.Format.Schema}})
	}
	return r, nil
}

type geminiIn struct {
	Contents []struct {
		Role  string      `json:"role"`
		Parts []geminiOut `json:"parts"`
	} `json:"contents"`
	SystemInstruction *struct {
		Parts []geminiOut `json:"parts"`
	} `json:"systemInstruction"`
	Tools []struct {
		FunctionDeclarations []struct {
			Name                 string          `json:"name"`
			Description          string          `json:"description"`
			Parameters           json.RawMessage `json:"parameters"`
			ParametersJSONSchema json.RawMessage `json:"parametersJsonSchema"`
		} `json:"functionDeclarations"`
	} `json:"tools"`
	ToolConfig *struct {
		FunctionCallingConfig struct {
			Mode                 string   `json:"mode"`
			AllowedFunctionNames []string `json:"allowedFunctionNames"`
		} `json:"functionCallingConfig"`
	} `json:"toolConfig"`
	GenerationConfig *struct {
		MaxOutputTokens    *int            `json:"maxOutputTokens"`
		Temperature        *float64        `json:"temperature"`
		TopP               *float64        `json:"topP"`
		TopK               *int            `json:"topK"`
		StopSequences      []string        `json:"stopSequences"`
		CandidateCount     *int            `json:"candidateCount"`
		PresencePenalty    *float64        `json:"presencePenalty"`
		FrequencyPenalty   *float64        `json:"frequencyPenalty"`
		Seed               *int64          `json:"seed"`
		ResponseMimeType   string          `json:"responseMimeType"`
		ResponseJSONSchema json.RawMessage `json:"responseJsonSchema"`
		ResponseSchema     json.RawMessage `json:"responseSchema"`
		ThinkingConfig     json.RawMessage `json:"thinkingConfig"`
	} `json:"generationConfig"`
	SafetySettings json.RawMessage `json:"safetySettings"`
}

// geminiOut is a Gemini part, in requests and replies.
type geminiOut struct {
	Text       *string `json:"text,omitempty"`
	InlineData *struct {
		MimeType string `json:"mimeType"`
		Data     string `json:"data"`
	} `json:"inlineData,omitempty"`
	FunctionCall *struct {
		ID   string          `json:"id,omitempty"`
		Name string          `json:"name"`
		Args json.RawMessage `json:"args"`
	} `json:"functionCall,omitempty"`
	FunctionResponse *struct {
		ID       string          `json:"id,omitempty"`
		Name     string          `json:"name"`
		Response json.RawMessage `json:"response"`
	} `json:"functionResponse,omitempty"`
	ThoughtSignature string `json:"thoughtSignature,omitempty"`
	Thought          bool   `json:"thought,omitempty"`
}

func fromGemini(body []byte, model string) (oaRequest, error) {
	var g geminiIn
	if err := strict(body, &g); err != nil {
		return oaRequest{}, refusal("Invalid JSON payload received. %v", err)
	}
	r := oaRequest{Model: model}
	if g.SystemInstruction != nil {
		var sb strings.Builder
		for _, p := range g.SystemInstruction.Parts {
			if p.Text != nil {
				sb.WriteString(*p.Text)
			}
		}
		r.Messages = append(r.Messages, oaMessage{Role: "system", Content: sb.String()})
	}
	if len(g.Contents) == 0 {
		return r, refusal("* GenerateContentRequest.contents: contents is not specified")
	}
	// Gemini 3 refuses a function call of an earlier turn sent back without
	// the thought signature it came with.
	needSignature := strings.Contains(model, "gemini-3")
	calls := map[string][]string{} // function name -> the calls' ids, oldest first
	for i, c := range g.Contents {
		switch c.Role {
		case "user", "":
			var parts []map[string]any
			for _, p := range c.Parts {
				switch {
				case p.FunctionResponse != nil:
					var obj map[string]any
					if json.Unmarshal(p.FunctionResponse.Response, &obj) != nil || obj == nil {
						return r, refusal("Invalid JSON payload received. contents[%d].parts: functionResponse.response must be an object", i)
					}
					ids := calls[p.FunctionResponse.Name]
					if len(ids) == 0 {
						return r, refusal("* GenerateContentRequest.contents[%d]: a function response names %q, which no earlier function call does", i, p.FunctionResponse.Name)
					}
					r.Messages = append(r.Messages, oaMessage{Role: "tool", ToolCallID: ids[0], Content: string(p.FunctionResponse.Response)})
					calls[p.FunctionResponse.Name] = ids[1:]
				case p.Text != nil:
					parts = append(parts, map[string]any{"type": "text", "text": *p.Text})
				case p.InlineData != nil:
					parts = append(parts, map[string]any{"type": "image_url", "image_url": map[string]string{"url": "data:" + p.InlineData.MimeType + ";base64," + p.InlineData.Data}})
				}
			}
			if len(parts) > 0 {
				r.Messages = append(r.Messages, oaMessage{Role: "user", Content: parts})
			}
		case "model":
			msg := oaMessage{Role: "assistant", Content: ""}
			for j, p := range c.Parts {
				switch {
				case p.FunctionCall != nil:
					if needSignature && j == firstCall(c.Parts) && p.ThoughtSignature == "" {
						return r, refusal("Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:%s` , position %d.", p.FunctionCall.Name, i+1)
					}
					id := fmt.Sprintf("fc_%d_%d", i, j)
					tc := oaToolCall{ID: id, Type: "function"}
					tc.Function.Name, tc.Function.Arguments = p.FunctionCall.Name, string(p.FunctionCall.Args)
					msg.ToolCalls = append(msg.ToolCalls, tc)
					calls[p.FunctionCall.Name] = append(calls[p.FunctionCall.Name], id)
				case p.Text != nil && !p.Thought:
					msg.Content = msg.Content.(string) + *p.Text
				}
			}
			r.Messages = append(r.Messages, msg)
		default:
			return r, refusal("* GenerateContentRequest.contents[%d].role: Please use a valid role: user, model.", i)
		}
	}
	for _, t := range g.Tools {
		for _, f := range t.FunctionDeclarations {
			if len(f.Parameters) > 0 && len(f.ParametersJSONSchema) > 0 {
				return r, refusal("* GenerateContentRequest.tools[0].function_declarations: parameters and parameters_json_schema are mutually exclusive")
			}
			if bytes.Contains(f.Parameters, []byte(`"additionalProperties"`)) || bytes.Contains(f.Parameters, []byte(`"$schema"`)) {
				return r, refusal("Invalid JSON payload received. Unknown name \"additionalProperties\" or \"$schema\" at 'tools[0].function_declarations[0].parameters': Cannot find field")
			}
			var ot oaTool
			ot.Type, ot.Function.Name, ot.Function.Description = "function", f.Name, f.Description
			ot.Function.Parameters = f.ParametersJSONSchema
			if len(ot.Function.Parameters) == 0 {
				ot.Function.Parameters = f.Parameters
			}
			r.Tools = append(r.Tools, ot)
		}
	}
	if tc := g.ToolConfig; tc != nil {
		fc := tc.FunctionCallingConfig
		switch {
		case fc.Mode == "NONE":
			r.ToolChoice = "none"
		case fc.Mode == "ANY" && len(fc.AllowedFunctionNames) == 1:
			r.ToolChoice = map[string]any{"type": "function", "function": map[string]string{"name": fc.AllowedFunctionNames[0]}}
		case fc.Mode == "ANY":
			r.ToolChoice = "required"
		case fc.Mode == "AUTO", fc.Mode == "":
			r.ToolChoice = "auto"
		default:
			return r, refusal("Invalid value at 'tool_config.function_calling_config.mode' (%s)", fc.Mode)
		}
	}
	if gc := g.GenerationConfig; gc != nil {
		r.MaxTokens = gc.MaxOutputTokens
		if gc.CandidateCount != nil && *gc.CandidateCount > 1 {
			return r, refusal("candidateCount > 1 is not simulated")
		}
		schema := gc.ResponseJSONSchema
		if len(schema) == 0 {
			schema = gc.ResponseSchema
		}
		switch {
		case len(schema) > 0 && gc.ResponseMimeType != "application/json":
			return r, refusal("* GenerateContentRequest.generation_config.response_mime_type: a response schema needs response_mime_type application/json")
		case len(schema) > 0:
			r.ResponseFormat, _ = json.Marshal(map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "output", "schema": schema}})
		case gc.ResponseMimeType == "application/json":
			r.ResponseFormat = json.RawMessage(`{"type":"json_object"}`)
		}
	}
	return r, nil
}

func firstCall(ps []geminiOut) int {
	for i, p := range ps {
		if p.FunctionCall != nil {
			return i
		}
	}
	return -1
}

// serviceError is a refusal worded as the service words it.
type serviceError string

func (e serviceError) Error() string { return string(e) }

// refusal is the service's message for a request it refuses.
func refusal(format string, args ...any) error { return serviceError(fmt.Sprintf(format, args...)) }
