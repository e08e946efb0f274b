package translate

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// The Gemini API (generateContent, streamGenerateContent?alt=sse):
// https://ai.google.dev/api/generate-content.

const gemini = "gemini"

type geminiRequest struct {
	Contents          []geminiContent  `json:"contents"`
	SystemInstruction *geminiContent   `json:"systemInstruction,omitempty"`
	Tools             []geminiTools    `json:"tools,omitempty"`
	ToolConfig        *geminiToolCfg   `json:"toolConfig,omitempty"`
	GenerationConfig  geminiGeneration `json:"generationConfig"`
}

type geminiContent struct {
	Role  string       `json:"role,omitempty"`
	Parts []geminiPart `json:"parts"`
}

type geminiPart struct {
	Text             *string       `json:"text,omitempty"`
	Thought          bool          `json:"thought,omitempty"`
	InlineData       *geminiBlob   `json:"inlineData,omitempty"`
	FunctionCall     *geminiCall   `json:"functionCall,omitempty"`
	FunctionResponse *geminiResult `json:"functionResponse,omitempty"`
	ThoughtSignature string        `json:"thoughtSignature,omitempty"`
}

type geminiBlob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

type geminiCall struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

type geminiResult struct {
	ID       string          `json:"id,omitempty"`
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

type geminiTools struct {
	FunctionDeclarations []geminiFunction `json:"functionDeclarations"`
}

type geminiFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parametersJsonSchema,omitempty"`
}

type geminiToolCfg struct {
	FunctionCallingConfig struct {
		Mode                 string   `json:"mode"`
		AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
	} `json:"functionCallingConfig"`
}

type geminiGeneration struct {
	MaxOutputTokens    int64           `json:"maxOutputTokens,omitempty"`
	Temperature        *float64        `json:"temperature,omitempty"`
	TopP               *float64        `json:"topP,omitempty"`
	StopSequences      []string        `json:"stopSequences,omitempty"`
	PresencePenalty    *float64        `json:"presencePenalty,omitempty"`
	FrequencyPenalty   *float64        `json:"frequencyPenalty,omitempty"`
	Seed               *int64          `json:"seed,omitempty"`
	ResponseMimeType   string          `json:"responseMimeType,omitempty"`
	ResponseJSONSchema json.RawMessage `json:"responseJsonSchema,omitempty"`
	ThinkingConfig     *struct {
		ThinkingLevel string `json:"thinkingLevel,omitempty"`
	} `json:"thinkingConfig,omitempty"`
}

// GeminiPath is the path suffix of a model's call: generateContent, or
// streamGenerateContent with alt=sse for a stream.
func GeminiPath(model string, stream bool) (path, query string) {
	if stream {
		return "/v1beta/models/" + model + ":streamGenerateContent", "alt=sse"
	}
	return "/v1beta/models/" + model + ":generateContent", ""
}

// Gemini has no tool call ids in older models, and a thought signature
// that must come back with the call it was sent with (Gemini 3 refuses a
// function call without it). Both travel in the OpenAI tool call id:
// call_<n>[~<signature>].
const sigSep = "~"

func geminiCallID(n int, id, sig string) string {
	if id == "" {
		id = "call_" + strconv.Itoa(n)
	}
	if sig != "" {
		return id + sigSep + sig
	}
	return id
}

// GeminiRequest translates an OpenAI chat request body into a Gemini
// generateContent request body. Errors are *wire.Error 400s. The stream
// flag is not part of the body: it chooses the path (GeminiPath).
func GeminiRequest(body []byte, o Options) ([]byte, error) {
	r, err := decodeChat(gemini, body)
	if err != nil {
		return nil, err
	}
	switch {
	case r.N != nil && *r.N > 1:
		return nil, refuse(gemini, "n > 1: the translation streams one candidate.")
	case r.Logprobs != nil && *r.Logprobs, r.TopLogprobs != nil:
		return nil, refuse(gemini, "logprobs are not translated.")
	}
	g := geminiRequest{}
	gc := &g.GenerationConfig
	gc.MaxOutputTokens, gc.Temperature, gc.TopP = r.maxTokens(), r.Temperature, r.TopP
	gc.PresencePenalty, gc.FrequencyPenalty, gc.Seed = r.PresencePenalty, r.FrequencyPenalty, r.Seed
	if gc.StopSequences, err = stops(r.Stop); err != nil {
		return nil, err
	}
	switch r.ReasoningEffort {
	case "":
	case "low", "high":
		gc.ThinkingConfig = &struct {
			ThinkingLevel string `json:"thinkingLevel,omitempty"`
		}{r.ReasoningEffort}
	default:
		return nil, refuse(gemini, "reasoning_effort "+r.ReasoningEffort+" has no Gemini equivalent (low or high).")
	}
	if rf := r.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text":
		case "json_object":
			gc.ResponseMimeType = "application/json"
		case "json_schema":
			if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 {
				return nil, invalid("response_format json_schema needs a schema.")
			}
			gc.ResponseMimeType, gc.ResponseJSONSchema = "application/json", rf.JSONSchema.Schema
		default:
			return nil, refuse(gemini, "response_format "+rf.Type+".")
		}
	}
	if len(r.Tools) > 0 {
		var fs []geminiFunction
		for _, t := range r.Tools {
			if t.Type != "function" {
				return nil, refuse(gemini, "tools of type "+t.Type+": only function tools translate.")
			}
			p := t.Function.Parameters
			if string(bytes.TrimSpace(p)) == "null" {
				p = nil
			}
			fs = append(fs, geminiFunction{Name: t.Function.Name, Description: t.Function.Description, Parameters: p})
		}
		g.Tools = []geminiTools{{FunctionDeclarations: fs}}
	}
	tc, err := parseToolChoice(r.ToolChoice)
	if err != nil {
		return nil, err
	}
	if tc.mode != "" {
		g.ToolConfig = &geminiToolCfg{}
		fc := &g.ToolConfig.FunctionCallingConfig
		switch tc.mode {
		case "auto":
			fc.Mode = "AUTO"
		case "none":
			fc.Mode = "NONE"
		case "required":
			fc.Mode = "ANY"
		case "function":
			fc.Mode, fc.AllowedFunctionNames = "ANY", []string{tc.name}
		}
	}
	if r.ParallelToolCalls != nil && !*r.ParallelToolCalls && len(r.Tools) > 0 {
		return nil, refuse(gemini, "parallel_tool_calls false: Gemini cannot be held to one call.")
	}
	// names finds a tool call's function by its id, for functionResponse.
	names := map[string]string{}
	var system []geminiPart
	for _, m := range r.Messages {
		switch m.Role {
		case "system", "developer":
			s, err := textOf(gemini, m.Role, m.Content)
			if err != nil {
				return nil, err
			}
			system = append(system, geminiPart{Text: &s})
		case "user":
			ps, err := geminiUserParts(m.Content)
			if err != nil {
				return nil, err
			}
			g.Contents = appendContent(g.Contents, "user", ps)
		case "assistant":
			ps, err := parts(m.Content)
			if err != nil {
				return nil, err
			}
			var out []geminiPart
			for _, p := range ps {
				switch p.Type {
				case "text":
					if p.Text != "" {
						out = append(out, geminiPart{Text: &p.Text})
					}
				case "refusal":
					out = append(out, geminiPart{Text: &p.Refusal})
				default:
					return nil, refuse(gemini, "assistant content parts of type "+p.Type+".")
				}
			}
			for _, tc := range m.ToolCalls {
				args := json.RawMessage(tc.Function.Arguments)
				if strings.TrimSpace(tc.Function.Arguments) == "" {
					args = json.RawMessage("{}")
				}
				var obj map[string]json.RawMessage
				if err := json.Unmarshal(args, &obj); err != nil {
					return nil, invalid("the arguments of tool call " + tc.ID + " are not a JSON object; Gemini needs a function call's args as an object.")
				}
				id, sig, _ := strings.Cut(tc.ID, sigSep)
				names[tc.ID] = tc.Function.Name
				call := &geminiCall{Name: tc.Function.Name, Args: args}
				if !strings.HasPrefix(id, "call_") {
					call.ID = id
				}
				out = append(out, geminiPart{FunctionCall: call, ThoughtSignature: sig})
			}
			g.Contents = appendContent(g.Contents, "model", out)
		case "tool":
			name, ok := names[m.ToolCallID]
			if !ok {
				return nil, invalid("the tool message for " + m.ToolCallID + " answers no tool call of an earlier assistant message; Gemini needs the function's name.")
			}
			text, err := textOf(gemini, m.Role, m.Content)
			if err != nil {
				return nil, err
			}
			// functionResponse.response must be an object: a result that
			// is one goes as it is, anything else as {"result": ...}.
			resp := json.RawMessage(text)
			var obj map[string]json.RawMessage
			if json.Unmarshal(resp, &obj) != nil || obj == nil {
				resp, _ = json.Marshal(map[string]string{"result": text})
			}
			res := &geminiResult{Name: name, Response: resp}
			if id, _, _ := strings.Cut(m.ToolCallID, sigSep); !strings.HasPrefix(id, "call_") {
				res.ID = id
			}
			g.Contents = appendContent(g.Contents, "user", []geminiPart{{FunctionResponse: res}})
		default:
			return nil, refuse(gemini, "messages of role "+m.Role+".")
		}
	}
	if len(system) > 0 {
		g.SystemInstruction = &geminiContent{Parts: system}
	}
	if len(g.Contents) == 0 {
		return nil, invalid("the request has no user or assistant message.")
	}
	return json.Marshal(g)
}

func appendContent(cs []geminiContent, role string, ps []geminiPart) []geminiContent {
	if n := len(cs); n > 0 && cs[n-1].Role == role {
		cs[n-1].Parts = append(cs[n-1].Parts, ps...)
		return cs
	}
	return append(cs, geminiContent{Role: role, Parts: ps})
}

func geminiUserParts(content json.RawMessage) ([]geminiPart, error) {
	ps, err := parts(content)
	if err != nil {
		return nil, err
	}
	out := make([]geminiPart, 0, len(ps))
	for _, p := range ps {
		switch p.Type {
		case "text":
			out = append(out, geminiPart{Text: &p.Text})
		case "image_url":
			if p.ImageURL == nil {
				return nil, invalid("an image_url part needs image_url.")
			}
			mt, data, ok := dataURL(p.ImageURL.URL)
			if !ok {
				return nil, refuse(gemini, "images by URL: Gemini takes images inline; send a data:MEDIA;base64,DATA URL.")
			}
			out = append(out, geminiPart{InlineData: &geminiBlob{MimeType: mt, Data: data}})
		default:
			return nil, refuse(gemini, "content parts of type "+p.Type+".")
		}
	}
	return out, nil
}

// geminiResponse is a GenerateContentResponse; in a stream each event is
// one, holding the parts generated since the last.
type geminiResponse struct {
	Candidates []struct {
		Content struct {
			Parts []geminiPart `json:"parts"`
		} `json:"content"`
		FinishReason string `json:"finishReason"`
	} `json:"candidates"`
	PromptFeedback *struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback"`
	UsageMetadata *geminiUsage `json:"usageMetadata"`
	ModelVersion  string       `json:"modelVersion"`
	ResponseID    string       `json:"responseId"`
}

type geminiUsage struct {
	PromptTokenCount        int64 `json:"promptTokenCount"`
	CandidatesTokenCount    int64 `json:"candidatesTokenCount"`
	CachedContentTokenCount int64 `json:"cachedContentTokenCount"`
	ThoughtsTokenCount      int64 `json:"thoughtsTokenCount"`
	ToolUsePromptTokenCount int64 `json:"toolUsePromptTokenCount"`
}

func (u geminiUsage) usage() Usage {
	return Usage{
		Prompt:     u.PromptTokenCount + u.ToolUsePromptTokenCount,
		Completion: u.CandidatesTokenCount + u.ThoughtsTokenCount,
		Cached:     u.CachedContentTokenCount, Reasoning: u.ThoughtsTokenCount,
	}
}

// GeminiFinish maps a finishReason to an OpenAI finish_reason; a candidate
// that called functions finished with tool_calls.
func GeminiFinish(reason string, calledTools bool) string {
	switch reason {
	case "MAX_TOKENS":
		return "length"
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE":
		return "content_filter"
	}
	if calledTools {
		return "tool_calls"
	}
	return "stop"
}

// GeminiResponse translates a generateContent response body into an OpenAI
// chat.completion body. created is its Unix time.
func GeminiResponse(body []byte, created int64) ([]byte, error) {
	var g geminiResponse
	if err := json.Unmarshal(body, &g); err != nil {
		return nil, err
	}
	msg := responseMessage{Role: "assistant"}
	finish := "stop"
	var text strings.Builder
	if len(g.Candidates) > 0 {
		c := g.Candidates[0]
		for _, p := range c.Content.Parts {
			switch {
			case p.Thought:
			case p.FunctionCall != nil:
				tc := chatToolCall{ID: geminiCallID(len(msg.ToolCalls), p.FunctionCall.ID, p.ThoughtSignature), Type: "function"}
				tc.Function.Name = p.FunctionCall.Name
				tc.Function.Arguments = string(p.FunctionCall.Args)
				if len(p.FunctionCall.Args) == 0 {
					tc.Function.Arguments = "{}"
				}
				msg.ToolCalls = append(msg.ToolCalls, tc)
			case p.Text != nil:
				text.WriteString(*p.Text)
			}
		}
		finish = GeminiFinish(c.FinishReason, len(msg.ToolCalls) > 0)
	} else if g.PromptFeedback != nil && g.PromptFeedback.BlockReason != "" {
		finish = "content_filter"
	}
	if text.Len() > 0 || len(msg.ToolCalls) == 0 {
		s := text.String()
		msg.Content = &s
	}
	var u Usage
	if g.UsageMetadata != nil {
		u = g.UsageMetadata.usage()
	}
	resp := chatResponse{
		ID: "chatcmpl-" + g.ResponseID, Object: "chat.completion", Created: created, Model: g.ModelVersion,
		Choices: []chatChoice{{Message: msg, FinishReason: finish}},
		Usage:   u.openAI(),
	}
	return json.Marshal(resp)
}
