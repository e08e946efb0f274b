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
	// The "mixed" pool's Azure OpenAI member does not speak Messages: its
	// Anthropic member serves, and the Azure backend never hears of it.
	client := anthropic.NewClient(aoption.WithBaseURL(f.url+"/anthropic"), aoption.WithAPIKey(fxAlphaKey), aoption.WithMaxRetries(0))
	if _, err := client.Messages.New(ctx, anthropic.MessageNewParams{Model: "mixed", MaxTokens: 20,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}); err != nil {
		t.Errorf("mixed: %v", err)
	}
	// A pool without an anthropic member: a 400 that says why.
	_, err := client.Messages.New(ctx, anthropic.MessageNewParams{Model: "gemini-chat", MaxTokens: 20,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	var e *anthropic.Error
	if !errors.As(err, &e) || e.StatusCode != 400 || !strings.Contains(e.RawJSON(), "anthropic backends only") {
		t.Errorf("err %v; want a 400 saying only anthropic backends serve Messages", err)
	}
	// A wrong key is refused before any backend.
	bad := anthropic.NewClient(aoption.WithBaseURL(f.url+"/anthropic"), aoption.WithAPIKey("nope"), aoption.WithMaxRetries(0))
	if _, err := bad.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-chat", MaxTokens: 5,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}); !errors.As(err, &e) || e.StatusCode != 401 {
		t.Errorf("bad key: %v; want 401", err)
	}
	for _, r := range f.seen.all() {
		if r.backend == "payg-francecentral" {
			t.Errorf("the Azure backend got a Messages request: %s", r.path)
		}
		if r.header.Get("X-Api-Key") == fxAlphaKey {
			t.Errorf("the client's key reached %s", r.backend)
		}
	}
	usageMatches(t, f)
}
