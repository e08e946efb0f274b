package app

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
)

// TestAnthropicSurface drives /anthropic/v1/messages and /v1/messages with
// the official Anthropic Go SDK: passed through to an anthropic backend,
// with the gateway's keys, routing and metering.
func TestAnthropicSurface(t *testing.T) {
	f := newFixture(t, withConfig(providersConfig))
	ctx := context.Background()
	for _, base := range []string{f.url + "/anthropic", f.url} {
		client := anthropic.NewClient(aoption.WithBaseURL(base), aoption.WithAPIKey(fxAlphaKey), aoption.WithMaxRetries(0))
		params := anthropic.MessageNewParams{
			Model: "claude-chat", MaxTokens: 200,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is the weather in Paris?"))},
			Tools: []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{Name: "get_weather",
				InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}}}}},
		}
		var resp *http.Response
		msg, err := client.Messages.New(ctx, params, aoption.WithResponseInto(&resp))
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if msg.StopReason != anthropic.StopReasonToolUse || msg.Content[len(msg.Content)-1].Name != "get_weather" || msg.Model != "gpt-4o" {
			t.Errorf("message %s", msg.RawJSON())
		}
		if resp.Header.Get("X-Sluice-Backend") != "claude" {
			t.Errorf("x-sluice-backend %q", resp.Header.Get("X-Sluice-Backend"))
		}
		stream := client.Messages.NewStreaming(ctx, params)
		var acc anthropic.Message
		for stream.Next() {
			if err := acc.Accumulate(stream.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if acc.StopReason != anthropic.StopReasonToolUse || acc.Usage.OutputTokens == 0 || acc.Usage.InputTokens != msg.Usage.InputTokens {
			t.Errorf("streamed %s", acc.RawJSON())
		}
	}
	// The "mixed" pool's first member is Azure OpenAI: the Messages request
	// is translated to a chat completion and the answer back, streamed and
	// not, tool calls included.
	client := anthropic.NewClient(aoption.WithBaseURL(f.url+"/anthropic"), aoption.WithAPIKey(fxAlphaKey), aoption.WithMaxRetries(0))
	params := anthropic.MessageNewParams{Model: "mixed", MaxTokens: 200,
		System:   []anthropic.TextBlockParam{{Text: "Be brief."}},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is the weather in Paris?"))},
		Tools: []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{Name: "get_weather",
			InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}}}}}}
	var resp *http.Response
	msg, err := client.Messages.New(ctx, params, aoption.WithResponseInto(&resp))
	if err != nil {
		t.Fatalf("mixed: %v", err)
	}
	if resp.Header.Get("X-Sluice-Backend") != "azure" || msg.StopReason != anthropic.StopReasonToolUse ||
		msg.Content[len(msg.Content)-1].Name != "get_weather" || msg.Usage.InputTokens == 0 || msg.Usage.OutputTokens == 0 {
		t.Errorf("from Azure OpenAI (%s): %s", resp.Header.Get("X-Sluice-Backend"), msg.RawJSON())
	}
	stream := client.Messages.NewStreaming(ctx, params)
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.StopReason != anthropic.StopReasonToolUse || len(acc.Content) == 0 || acc.Content[len(acc.Content)-1].Name != "get_weather" ||
		!strings.Contains(string(acc.Content[len(acc.Content)-1].Input), "city") || acc.Usage.InputTokens != msg.Usage.InputTokens || acc.Usage.OutputTokens == 0 {
		t.Errorf("streamed from Azure OpenAI: %s", acc.RawJSON())
	}
	// The tool's result goes back through the translation.
	params.Messages = append(params.Messages, msg.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock(msg.Content[len(msg.Content)-1].ID, "sunny", false)))
	if final, err := client.Messages.New(ctx, params); err != nil || final.StopReason != anthropic.StopReasonEndTurn || final.Content[0].Text == "" {
		t.Errorf("after the tool result: %v %v", err, final)
	}
	// A Gemini pool does not take Messages: a 400 that says why.
	_, err = client.Messages.New(ctx, anthropic.MessageNewParams{Model: "gemini-chat", MaxTokens: 20,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	var e *anthropic.Error
	if !errors.As(err, &e) || e.StatusCode != 400 || !strings.Contains(e.RawJSON(), "Messages API is served by") {
		t.Errorf("err %v; want a 400 saying which backends serve Messages", err)
	}
	// A wrong key is refused before any backend.
	bad := anthropic.NewClient(aoption.WithBaseURL(f.url+"/anthropic"), aoption.WithAPIKey("nope"), aoption.WithMaxRetries(0))
	if _, err := bad.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-chat", MaxTokens: 5,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}); !errors.As(err, &e) || e.StatusCode != 401 {
		t.Errorf("bad key: %v; want 401", err)
	}
	for _, r := range f.seen.all() {
		if r.backend == "payg-francecentral" && (r.path != "/openai/deployments/gpt-4o/chat/completions" || r.header.Get("Anthropic-Version") != "") {
			t.Errorf("the Azure backend got %s %v", r.path, r.header)
		}
		if r.header.Get("X-Api-Key") == fxAlphaKey {
			t.Errorf("the client's key reached %s", r.backend)
		}
	}
	usageMatches(t, f)
}
