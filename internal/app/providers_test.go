package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// providersConfig puts the fixture's simulators behind the translated
// kinds: the first as an anthropic backend, the second as a gemini one;
// the third, an Azure OpenAI backend, shares the "mixed" pool with a
// second anthropic backend on the first simulator.
const providersConfig = `
server:
  listen: 127.0.0.1:0
  shutdown_grace: %s
admin:
  listen: 127.0.0.1:0
  api_key: ${FX_ADMIN_KEY}
usage:
  store: "${FX_USAGE_STORE}"
  journal: "${FX_USAGE_JOURNAL}"
backends:
  - name: claude
    kind: anthropic
    url: %[2]s
    auth: { api_key: "${FX_PTU_KEY}" }
    deployments: { claude-chat: gpt-4o-ptu }
  - name: gemini
    kind: gemini
    url: %[3]s
    auth: { api_key: "${FX_WEST_KEY}" }
    deployments: { gemini-chat: gpt-4o }
  - name: azure
    kind: azure-openai
    url: %[4]s
    auth: { api_key: "${FX_FRANCE_KEY}" }
    deployments: { mixed: gpt-4o }
  - name: claude-spill
    kind: anthropic
    url: %[2]s
    auth: { api_key: "${FX_PTU_KEY}" }
    deployments: { mixed: gpt-4o-ptu }
pools:
  - name: claude
    members: [{ backend: claude }]
  - name: gemini
    members: [{ backend: gemini }]
  - name: mixed
    members:
      - { backend: azure, priority: 1 }
      - { backend: claude-spill, priority: 2 }
    retry:
      attempts: 2
      on: ["429", "500-599"]
models:
  claude-chat: claude
  gemini-chat: gemini
  mixed: mixed
products:
  - name: standard
    models: [claude-chat, gemini-chat, mixed]
subscriptions:
  - name: team-alpha
    product: standard
    keys: ["${FX_ALPHA_KEY}"]
%[5]s`

var weatherTool = openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
	Name:        "get_weather",
	Description: openai.String("The weather in a city"),
	Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{
		"city": map[string]any{"type": "string"}}, "required": []string{"city"}},
})

// served is the tokens a simulator served (its stats: the usage it
// reported), and charged what the gateway's access log recorded.
func usageMatches(t *testing.T, f *fixture) {
	t.Helper()
	var charged, served int64
	// The access log line of the last request is written as its exchange
	// ends, just after the client has its answer: wait for it a little.
	for try := 0; try < 50; try++ {
		charged, served = 0, 0
		for _, l := range accessLog(t, f) {
			if l["usage_estimated"] == true {
				t.Errorf("request %v was estimated; want the provider's usage", l["request_id"])
			}
			charged += num(l["prompt_tokens"]) + num(l["completion_tokens"])
		}
		for _, sim := range f.sims {
			for _, d := range sim.Stats().Deployments {
				served += d.TotalTokens
			}
		}
		if charged == served {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if charged != served || served == 0 {
		t.Errorf("the gateway charged %d tokens; the providers reported %d; want them equal", charged, served)
	}
}

// TestProvidersWithOpenAISDK drives anthropic and gemini backends with the
// official OpenAI SDK: chat, stream, a tool round trip streamed and not,
// a JSON schema and an image, and checks the usage charged is the usage
// the providers reported.
func TestProvidersWithOpenAISDK(t *testing.T) {
	f := newFixture(t, withConfig(providersConfig))
	ctx := context.Background()
	for mode, client := range sdkClients(f, fxAlphaKey) {
		for _, model := range []string{"claude-chat", "gemini-chat"} {
			t.Run(mode+"/"+model, func(t *testing.T) {
				c, err := client.Chat.Completions.New(ctx, chatParams(model))
				if err != nil {
					t.Fatalf("chat: %v", err)
				}
				if c.Choices[0].Message.Content == "" || c.Usage.PromptTokens == 0 || c.Usage.CompletionTokens == 0 {
					t.Errorf("chat %s", c.RawJSON())
				}

				// The tool round trip, streamed.
				params := openai.ChatCompletionNewParams{Model: model, MaxTokens: openai.Int(300),
					Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris?")},
					Tools:         []openai.ChatCompletionToolUnionParam{weatherTool},
					StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}
				stream := client.Chat.Completions.NewStreaming(ctx, params)
				var acc openai.ChatCompletionAccumulator
				for stream.Next() {
					acc.AddChunk(stream.Current())
				}
				if err := stream.Err(); err != nil {
					t.Fatalf("stream: %v", err)
				}
				m := acc.Choices[0].Message
				if acc.Choices[0].FinishReason != "tool_calls" || len(m.ToolCalls) != 1 || m.ToolCalls[0].Function.Name != "get_weather" ||
					!json.Valid([]byte(m.ToolCalls[0].Function.Arguments)) || m.Content == "" {
					t.Fatalf("streamed tool call: finish %q, message %+v; want text, then one get_weather call with JSON arguments", acc.Choices[0].FinishReason, m)
				}
				if acc.Usage.PromptTokens == 0 || acc.Usage.CompletionTokens == 0 {
					t.Errorf("streamed usage %+v", acc.Usage)
				}
				// The tool's result goes back, not streamed.
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
				params.Messages = append(params.Messages, m.ToParam(), openai.ToolMessage(`{"sky":"clear"}`, m.ToolCalls[0].ID))
				c, err = client.Chat.Completions.New(ctx, params)
				if err != nil {
					t.Fatalf("tool result: %v", err)
				}
				if c.Choices[0].FinishReason != "stop" || c.Choices[0].Message.Content == "" {
					t.Errorf("answer after the tool result %s", c.RawJSON())
				}
				// Not streamed: the call itself.
				params.Messages = params.Messages[:1]
				c, err = client.Chat.Completions.New(ctx, params)
				if err != nil || c.Choices[0].FinishReason != "tool_calls" || len(c.Choices[0].Message.ToolCalls) != 1 {
					t.Errorf("tool call not streamed: %v %s", err, c.RawJSON())
				}

				// A JSON schema and an image.
				schema := openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &openai.ResponseFormatJSONSchemaParam{
					JSONSchema: openai.ResponseFormatJSONSchemaJSONSchemaParam{Name: "city", Schema: map[string]any{
						"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}, "required": []string{"name"}}}}}
				img := openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
					openai.TextContentPart("Which city is this?"),
					openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}),
				})
				c, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: model, MaxTokens: openai.Int(200),
					Messages: []openai.ChatCompletionMessageParamUnion{img}, ResponseFormat: schema})
				if err != nil {
					t.Fatalf("json schema with an image: %v", err)
				}
				var doc map[string]any
				if err := json.Unmarshal([]byte(c.Choices[0].Message.Content), &doc); err != nil || doc["name"] == nil {
					t.Errorf("content %q is not the schema's JSON (%v)", c.Choices[0].Message.Content, err)
				}
			})
		}
	}
	// What reached the providers: their own wire formats and keys.
	for _, r := range f.seen.all() {
		switch r.backend {
		case "ptu-swedencentral":
			if r.path != "/v1/messages" || r.header.Get("X-Api-Key") != fxPTUKey || r.header.Get("Anthropic-Version") != "2023-06-01" {
				t.Errorf("anthropic backend got %s %v", r.path, r.header)
			}
		case "payg-westeurope":
			if !strings.HasPrefix(r.path, "/v1beta/models/gpt-4o:") || r.header.Get("X-Goog-Api-Key") != fxWestKey || strings.Contains(r.body, "stream_options") {
				t.Errorf("gemini backend got %s %v", r.path, r.header)
			}
		}
		if strings.Contains(r.body, fxAlphaKey) || r.header.Get("Authorization") != "" || r.header.Get("Api-Key") != "" {
			t.Errorf("a client credential reached %s", r.backend)
		}
	}
	usageMatches(t, f)
}

// TestProvidersRefuseUntranslatable: n > 1 on Anthropic is a 400 that says
// so, and reaches no backend.
func TestProvidersRefuseUntranslatable(t *testing.T) {
	f := newFixture(t, withConfig(providersConfig))
	client := sdkClients(f, fxAlphaKey)["openai"]
	p := chatParams("claude-chat")
	p.N = openai.Int(2)
	_, err := client.Chat.Completions.New(context.Background(), p)
	var e *openai.Error
	if !asError(err, &e) || e.StatusCode != 400 || !strings.Contains(e.Message, "n > 1") {
		t.Fatalf("err %v; want a 400 about n > 1", err)
	}
	if n := len(f.seen.all()); n != 0 {
		t.Errorf("%d requests reached a backend; want none", n)
	}
}

func asError(err error, target **openai.Error) bool {
	e, ok := err.(*openai.Error)
	if ok {
		*target = e
	}
	return ok
}

// TestProvidersFailoverStream: the Azure OpenAI member of a pool answers
// 429; the request fails over to the Anthropic member and the client sees
// one consistent OpenAI-shaped stream.
func TestProvidersFailoverStream(t *testing.T) {
	f := newFixture(t, withConfig(providersConfig))
	f.sims["payg-francecentral"].SetFaults(simulator.Faults{RetryAfter: 30e9})
	client := sdkClients(f, fxAlphaKey)["openai"]
	var resp *http.Response
	p := chatParams("mixed")
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(context.Background(), p, option.WithResponseInto(&resp))
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		if !acc.AddChunk(stream.Current()) {
			t.Fatalf("chunk %d does not continue the stream: %s", chunks, stream.Current().RawJSON())
		}
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Sluice-Backend"); got != "claude-spill" {
		t.Errorf("x-sluice-backend %q; want claude-spill", got)
	}
	if acc.Choices[0].Message.Content == "" || acc.Choices[0].FinishReason == "" || acc.Usage.TotalTokens == 0 || chunks < 3 {
		t.Errorf("stream of %d chunks: %+v usage %+v", chunks, acc.Choices, acc.Usage)
	}
	var paths []string
	for _, r := range f.seen.all() {
		paths = append(paths, r.backend+" "+r.path)
	}
	if want := fmt.Sprint([]string{"payg-francecentral /openai/deployments/gpt-4o/chat/completions", "ptu-swedencentral /v1/messages"}); fmt.Sprint(paths) != want {
		t.Errorf("backends tried %v; want %s", paths, want)
	}
	usageMatches(t, f)
}

// TestProvidersOverloaded: Anthropic's 529 overloaded_error is a 503 with
// an OpenAI-shaped body.
func TestProvidersOverloaded(t *testing.T) {
	f := newFixture(t, withConfig(providersConfig))
	f.sims["ptu-swedencentral"].SetFaults(simulator.Faults{ErrorRate: 1, ErrorStatus: 503})
	f.sims["payg-westeurope"].SetFaults(simulator.Faults{RetryAfter: 37e9})
	client := sdkClients(f, fxAlphaKey)["openai"]
	_, err := client.Chat.Completions.New(context.Background(), chatParams("claude-chat"))
	var e *openai.Error
	if !asError(err, &e) || e.StatusCode != 503 || e.Code != "anthropic_overloaded_error" {
		t.Errorf("err %v; want 503 anthropic_overloaded_error", err)
	}
	_, err = client.Chat.Completions.New(context.Background(), chatParams("gemini-chat"))
	if !asError(err, &e) || e.StatusCode != 429 || e.Response.Header.Get("Retry-After") == "" {
		t.Errorf("err %v; want 429 with Retry-After from Gemini's retryDelay", err)
	}
}
