package simulator

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

func anthropicClient(t *testing.T, f Faults) anthropic.Client {
	t.Helper()
	_, srv := serve(t, Options{APIKey: testKey, Seed: 1, Faults: f, Deployments: map[string]Deployment{
		"claude-haiku-4-5": {Model: "claude-haiku-4-5-20251001"}}})
	return anthropic.NewClient(option.WithBaseURL(srv.URL), option.WithAPIKey(testKey), option.WithMaxRetries(0))
}

var weatherTool = anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
	Name: "get_weather", Description: anthropic.String("Get the weather"),
	InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}},
}}

// TestAnthropicWithSDK drives the anthropic dialect with the official
// Anthropic Go SDK: its decoder and accumulator hold the simulator to the
// Messages API's wire format and event sequence.
func TestAnthropicWithSDK(t *testing.T) {
	client := anthropicClient(t, Faults{})
	ctx := context.Background()
	params := anthropic.MessageNewParams{
		Model: "claude-haiku-4-5", MaxTokens: 200,
		System:   []anthropic.TextBlockParam{{Text: "Be brief."}},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is the weather in Paris?"))},
		Tools:    []anthropic.ToolUnionParam{weatherTool},
	}
	msg, err := client.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != anthropic.StopReasonToolUse || len(msg.Content) != 2 || msg.Content[0].Type != "text" || msg.Content[1].Type != "tool_use" {
		t.Fatalf("message %s; want text then tool_use, stop_reason tool_use", msg.RawJSON())
	}
	if msg.Usage.InputTokens == 0 || msg.Usage.OutputTokens == 0 {
		t.Errorf("usage %+v", msg.Usage)
	}

	stream := client.Messages.NewStreaming(ctx, params)
	var acc anthropic.Message
	types := map[string]int{}
	for stream.Next() {
		ev := stream.Current()
		types[ev.Type]++
		if err := acc.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Content) != 2 || acc.Content[1].Name != "get_weather" || !strings.Contains(string(acc.Content[1].Input), `"city"`) {
		t.Errorf("accumulated %s", acc.RawJSON())
	}
	if types["message_start"] != 1 || types["message_delta"] != 1 || types["message_stop"] != 1 || types["content_block_start"] != 2 {
		t.Errorf("events %v", types)
	}
	if acc.Usage.InputTokens != msg.Usage.InputTokens || acc.Usage.OutputTokens == 0 {
		t.Errorf("streamed usage %+v; want input %d", acc.Usage, msg.Usage.InputTokens)
	}

	// The tool's result, and the answer.
	params.Messages = append(params.Messages, msg.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock(msg.Content[1].ID, "sunny", false)))
	final, err := client.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if final.StopReason != anthropic.StopReasonEndTurn || final.Content[0].Text == "" {
		t.Errorf("final %s", final.RawJSON())
	}
	// A tool_result without its tool_use is refused, as the API does.
	params.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewToolResultBlock("toolu_nope", "x", false))}
	if _, err := client.Messages.New(ctx, params); !isStatus(err, 400) {
		t.Errorf("err %v; want 400", err)
	}
}

func isStatus(err error, status int) bool {
	var e *anthropic.Error
	return errors.As(err, &e) && e.StatusCode == status
}

func TestAnthropicErrors(t *testing.T) {
	ctx := context.Background()
	params := anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 10,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
	c1 := anthropicClient(t, Faults{ErrorRate: 1, ErrorStatus: 503})
	_, err := c1.Messages.New(ctx, params)
	var e *anthropic.Error
	if !errors.As(err, &e) || e.StatusCode != 529 || !strings.Contains(e.RawJSON(), "overloaded_error") {
		t.Errorf("err %v; want 529 overloaded_error", err)
	}
	c2 := anthropicClient(t, Faults{RetryAfter: 7e9})
	_, err = c2.Messages.New(ctx, params)
	if !errors.As(err, &e) || e.StatusCode != 429 || e.Response.Header.Get("Retry-After") != "7" || !strings.Contains(e.RawJSON(), "rate_limit_error") {
		t.Errorf("err %v; want 429 rate_limit_error with retry-after 7", err)
	}
}

func TestGeminiDialect(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey, Seed: 1, Deployments: map[string]Deployment{
		"gemini-3-pro-preview": {}, "gemini-2.5-flash": {}}})
	key := map[string]string{"x-goog-api-key": testKey}
	tools := `"tools":[{"functionDeclarations":[{"name":"get_weather","parametersJsonSchema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}]`

	resp, b := do(t, srv, "POST", "/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse",
		`{"contents":[{"role":"user","parts":[{"text":"weather in Paris?"}]}],`+tools+`}`, key)
	evs, err := readEvents(strings.NewReader(string(b)))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v %s", resp.StatusCode, err, b)
	}
	last := decode(t, []byte(evs[len(evs)-1].data))
	if str(last, "candidates", 0, "finishReason") != "STOP" || num(last, "usageMetadata", "candidatesTokenCount") == 0 || strings.Contains(string(b), "[DONE]") {
		t.Errorf("stream %s", b)
	}
	call := decode(t, []byte(evs[1].data))
	if str(call, "candidates", 0, "content", "parts", 0, "functionCall", "name") != "get_weather" || str(call, "candidates", 0, "content", "parts", 0, "thoughtSignature") == "" {
		t.Errorf("the second event is not the function call with its signature: %s", evs[1].data)
	}
	// Gemini 3 refuses the call sent back without its signature, and takes it with.
	history := `{"contents":[{"role":"user","parts":[{"text":"weather in Paris?"}]},{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}%s}]},{"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"result":"sunny"}}}]}],` + tools + `}`
	if resp, b := do(t, srv, "POST", "/v1beta/models/gemini-3-pro-preview:generateContent", strings.Replace(history, "%s", "", 1), key); resp.StatusCode != 400 || !strings.Contains(string(b), "thought_signature") {
		t.Errorf("without signature: %d %s", resp.StatusCode, b)
	}
	if resp, b := do(t, srv, "POST", "/v1beta/models/gemini-3-pro-preview:generateContent", strings.Replace(history, "%s", `,"thoughtSignature":"CiQB"`, 1), key); resp.StatusCode != 200 || str(decode(t, b), "candidates", 0, "finishReason") != "STOP" {
		t.Errorf("with signature: %d %s", resp.StatusCode, b)
	}
	if resp, _ := do(t, srv, "GET", "/v1beta/models", "", key); resp.StatusCode != 200 {
		t.Errorf("GET /v1beta/models: %d; want 200 (health checks read it)", resp.StatusCode)
	}
	// Unknown fields are refused, as Gemini does (stream_options must never reach it).
	if resp, _ := do(t, srv, "POST", "/v1beta/models/gemini-2.5-flash:generateContent", `{"contents":[{"parts":[{"text":"x"}]}],"stream_options":{}}`, key); resp.StatusCode != 400 {
		t.Errorf("unknown field: %d; want 400", resp.StatusCode)
	}
}

func TestGeminiRateLimit(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey, Faults: Faults{RetryAfter: 37e9}, Deployments: map[string]Deployment{"gemini-2.5-flash": {}}})
	resp, b := do(t, srv, "POST", "/v1beta/models/gemini-2.5-flash:generateContent", `{"contents":[{"parts":[{"text":"x"}]}]}`, map[string]string{"x-goog-api-key": testKey})
	if resp.StatusCode != 429 || !strings.Contains(string(b), `"retryDelay":"37s"`) || !strings.Contains(string(b), "RESOURCE_EXHAUSTED") || resp.Header.Get("Retry-After") != "" {
		t.Errorf("%d %v %s", resp.StatusCode, resp.Header, b)
	}
}
