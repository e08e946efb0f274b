package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"
	"github.com/sluice-gateway/sluice/internal/tokens"
)

// These tests drive the official OpenAI Go SDK against the simulator, as an
// agent framework would: tools, tool_choice, parallel_tool_calls, tool
// results and structured outputs, in OpenAI and in Azure mode.

const weatherSchema = `{"type":"object","properties":{` +
	`"city":{"type":"string","description":"The city, e.g. Oslo."},` +
	`"unit":{"type":"string","enum":["celsius","fahrenheit"]},` +
	`"days":{"type":"integer","minimum":1,"maximum":7}},` +
	`"required":["city","unit","days"],"additionalProperties":false}`

// weatherArgs is the shape of weatherSchema.
type weatherArgs struct {
	City string `json:"city"`
	Unit string `json:"unit"`
	Days int    `json:"days"`
}

func schemaMap(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkWeatherArgs checks that arguments are what weatherSchema allows, by
// decoding them strictly into its shape and by validating them.
func checkWeatherArgs(t testing.TB, arguments string) {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(arguments))
	d.DisallowUnknownFields()
	var a weatherArgs
	if err := d.Decode(&a); err != nil {
		t.Fatalf("arguments %s do not decode into the schema's shape: %v", arguments, err)
	}
	if a.City == "" || (a.Unit != "celsius" && a.Unit != "fahrenheit") || a.Days < 1 || a.Days > 7 {
		t.Errorf("arguments %s break the schema", arguments)
	}
	if err := validate([]byte(weatherSchema), []byte(arguments)); err != nil {
		t.Errorf("arguments %s: %v", arguments, err)
	}
}

func sdkClientsFor(t testing.TB, url string) map[string]openai.Client {
	t.Helper()
	return map[string]openai.Client{
		"openai": openai.NewClient(option.WithBaseURL(url+"/v1"), option.WithAPIKey(testKey), option.WithMaxRetries(0)),
		"azure": openai.NewClient(azure.WithEndpoint(url, "2024-10-21"), azure.WithAPIKey(testKey),
			azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0)),
	}
}

func chatTools(t testing.TB) []openai.ChatCompletionToolUnionParam {
	return []openai.ChatCompletionToolUnionParam{
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: "get_weather", Description: openai.String("Get the weather forecast for a city."),
			Parameters: schemaMap(t, weatherSchema), Strict: openai.Bool(true),
		}),
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: "get_time", Description: openai.String("Get the local time in a city."),
			Parameters: schemaMap(t, `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}`),
		}),
	}
}

func TestSDKChatTools(t *testing.T) {
	s, srv := serve(t, Options{APIKey: testKey})
	ctx := context.Background()
	for mode, client := range sdkClientsFor(t, srv.URL) {
		t.Run(mode, func(t *testing.T) {
			params := openai.ChatCompletionNewParams{
				Model:    "gpt-4o",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What will the weather be in Oslo?")},
				Tools:    chatTools(t),
			}
			c, err := client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			msg := c.Choices[0].Message
			if c.Choices[0].FinishReason != "tool_calls" || msg.Content != "" || len(msg.ToolCalls) != 1 {
				t.Fatalf("finish %q, content %q, %d tool calls; want one call to get_weather", c.Choices[0].FinishReason, msg.Content, len(msg.ToolCalls))
			}
			tc := msg.ToolCalls[0]
			if tc.Function.Name != "get_weather" || tc.Type != "function" || !strings.HasPrefix(tc.ID, "call_") {
				t.Errorf("tool call = %+v", tc)
			}
			checkWeatherArgs(t, tc.Function.Arguments)
			want := int64(tokens.Count("gpt-4o", "get_weather") + tokens.Count("gpt-4o", tc.Function.Arguments))
			if c.Usage.CompletionTokens != want {
				t.Errorf("completion_tokens = %d; want %d, the name's and the arguments' tokens", c.Usage.CompletionTokens, want)
			}

			// The follow-up with the tool's result gets text.
			params.Messages = append(params.Messages, msg.ToParam(), openai.ToolMessage(`{"forecast":"sunny"}`, tc.ID))
			c, err = client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if c.Choices[0].FinishReason != "stop" || c.Choices[0].Message.Content == "" || len(c.Choices[0].Message.ToolCalls) != 0 {
				t.Errorf("after the tool's result: finish %q, content %q, %d calls; want text", c.Choices[0].FinishReason,
					c.Choices[0].Message.Content, len(c.Choices[0].Message.ToolCalls))
			}
		})
	}
	st := s.Stats().Deployments["gpt-4o"]
	if st.Requests[200] != 4 || st.TotalTokens != st.PromptTokens+st.CompletionTokens || st.CompletionTokens == 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSDKChatToolsStream(t *testing.T) {
	s, srv := serve(t, Options{APIKey: testKey})
	for mode, client := range sdkClientsFor(t, srv.URL) {
		t.Run(mode, func(t *testing.T) {
			before := s.Stats().Deployments["gpt-4o"].CompletionTokens
			stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
				Model:         "gpt-4o",
				Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather and time in Oslo, please.")},
				Tools:         chatTools(t),
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
			})
			var (
				acc      openai.ChatCompletionAccumulator
				finished []string
			)
			for stream.Next() {
				if !acc.AddChunk(stream.Current()) {
					t.Fatalf("the accumulator refused chunk %s", stream.Current().RawJSON())
				}
				if tc, ok := acc.JustFinishedToolCall(); ok {
					finished = append(finished, tc.Name)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if len(acc.Choices) != 1 || acc.Choices[0].FinishReason != "tool_calls" {
				t.Fatalf("accumulated %+v; want one choice ending in tool_calls", acc.Choices)
			}
			calls := acc.Choices[0].Message.ToolCalls
			if len(calls) != 2 || calls[0].Function.Name != "get_weather" || calls[1].Function.Name != "get_time" {
				t.Fatalf("tool calls = %+v; want get_weather and get_time, in parallel", calls)
			}
			checkWeatherArgs(t, calls[0].Function.Arguments)
			if err := validate([]byte(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}`),
				[]byte(calls[1].Function.Arguments)); err != nil {
				t.Error(err)
			}
			if calls[0].ID == calls[1].ID || !strings.HasPrefix(calls[1].ID, "call_") {
				t.Errorf("call ids %q and %q", calls[0].ID, calls[1].ID)
			}
			if !slices.Equal(finished, []string{"get_weather", "get_time"}) {
				t.Errorf("JustFinishedToolCall reported %v", finished)
			}
			want := 0
			for _, c := range calls {
				want += tokens.Count("gpt-4o", c.Function.Name) + tokens.Count("gpt-4o", c.Function.Arguments)
			}
			if acc.Usage.CompletionTokens != int64(want) {
				t.Errorf("completion_tokens = %d; want %d", acc.Usage.CompletionTokens, want)
			}
			if got := s.Stats().Deployments["gpt-4o"].CompletionTokens - before; got != int64(want) {
				t.Errorf("the simulator's stats count %d completion tokens; it reported %d", got, want)
			}
		})
	}
}

func TestSDKChatToolChoice(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	client := sdkClientsFor(t, srv.URL)["openai"]
	ctx := context.Background()
	question := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What's the weather and the time in Oslo?")}
	for _, tc := range []struct {
		name     string
		choice   openai.ChatCompletionToolChoiceOptionUnionParam
		parallel bool
		want     []string
		finish   string
	}{
		{"named", openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_time"}),
			true, []string{"get_time"}, "stop"},
		{"required, parallel", openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
			true, []string{"get_weather", "get_time"}, "tool_calls"},
		{"auto, not parallel", openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("auto")},
			false, []string{"get_weather"}, "tool_calls"},
		{"none", openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("none")}, true, nil, "stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model: "gpt-4o", Messages: question, Tools: chatTools(t), ToolChoice: tc.choice,
				ParallelToolCalls: openai.Bool(tc.parallel),
			})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, call := range c.Choices[0].Message.ToolCalls {
				got = append(got, call.Function.Name)
			}
			if !slices.Equal(got, tc.want) || c.Choices[0].FinishReason != tc.finish {
				t.Errorf("calls %v, finish %q; want %v, %q", got, c.Choices[0].FinishReason, tc.want, tc.finish)
			}
		})
	}
}

func TestSDKChatJSONSchema(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	for mode, client := range sdkClientsFor(t, srv.URL) {
		t.Run(mode, func(t *testing.T) {
			params := openai.ChatCompletionNewParams{
				Model:    "gpt-4o",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Forecast for Oslo.")},
				ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
					JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "forecast", Schema: schemaMap(t, weatherSchema), Strict: openai.Bool(true)},
				}},
			}
			c, err := client.Chat.Completions.New(context.Background(), params)
			if err != nil {
				t.Fatal(err)
			}
			content := c.Choices[0].Message.Content
			checkWeatherArgs(t, content)
			if c.Usage.CompletionTokens != int64(tokens.Count("gpt-4o", content)) {
				t.Errorf("completion_tokens = %d; the content is %d tokens", c.Usage.CompletionTokens, tokens.Count("gpt-4o", content))
			}

			// Streamed, the JSON arrives in pieces that join to a valid document.
			stream := client.Chat.Completions.NewStreaming(context.Background(), params)
			var acc openai.ChatCompletionAccumulator
			chunks := 0
			for stream.Next() {
				acc.AddChunk(stream.Current())
				chunks++
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			checkWeatherArgs(t, acc.Choices[0].Message.Content)
			if chunks < 8 {
				t.Errorf("%d chunks; want the JSON split across many", chunks)
			}
		})
	}
}

func responseTools(t testing.TB) []responses.ToolUnionParam {
	return []responses.ToolUnionParam{responses.ToolParamOfFunction("get_weather", schemaMap(t, weatherSchema), true)}
}

func TestSDKResponsesFunctionTool(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	client := sdkClientsFor(t, srv.URL)["openai"]
	ctx := context.Background()
	params := responses.ResponseNewParams{
		Model: "gpt-4o",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("How is the weather in Oslo?")},
		Tools: responseTools(t),
	}
	r, err := client.Responses.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Output) != 1 || r.Output[0].Type != "function_call" {
		t.Fatalf("output = %s; want one function_call", r.RawJSON())
	}
	fc := r.Output[0].AsFunctionCall()
	if fc.Name != "get_weather" || !strings.HasPrefix(fc.CallID, "call_") || fc.Status != "completed" || !strings.HasPrefix(fc.ID, "fc_") {
		t.Errorf("function call = %s", r.Output[0].RawJSON())
	}
	checkWeatherArgs(t, fc.Arguments)
	if want := int64(tokens.Count("gpt-4o", fc.Name) + tokens.Count("gpt-4o", fc.Arguments)); r.Usage.OutputTokens != want {
		t.Errorf("output_tokens = %d; want %d", r.Usage.OutputTokens, want)
	}

	// The follow-up with the function's output gets a message.
	out := responses.ResponseInputItemParamOfFunctionCallOutput(`{"forecast":"rain"}`)
	out.OfFunctionCallOutput.CallID = openai.String(fc.CallID)
	params.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
		responses.ResponseInputItemParamOfMessage("How is the weather in Oslo?", responses.EasyInputMessageRoleUser),
		responses.ResponseInputItemParamOfFunctionCall(fc.Arguments, fc.CallID, fc.Name),
		out,
	}}
	r, err = client.Responses.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if r.OutputText() == "" || r.Output[0].Type != "message" {
		t.Errorf("after the function's output: %s; want a message", r.RawJSON())
	}
}

func TestSDKResponsesFunctionToolStream(t *testing.T) {
	s, srv := serve(t, Options{APIKey: testKey})
	client := sdkClientsFor(t, srv.URL)["openai"]
	stream := client.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
		Model:      "gpt-4o",
		Input:      responses.ResponseNewParamsInputUnion{OfString: openai.String("Any weather news?")},
		Tools:      responseTools(t),
		ToolChoice: responses.ResponseNewParamsToolChoiceUnion{OfFunctionTool: &responses.ToolChoiceFunctionParam{Name: "get_weather"}},
	})
	var (
		names     []string
		arguments bytes.Buffer
		done      string
		item      responses.ResponseFunctionToolCall
		completed responses.Response
	)
	for stream.Next() {
		e := stream.Current()
		if e.Type != "response.function_call_arguments.delta" {
			names = append(names, e.Type)
		}
		switch ev := e.AsAny().(type) {
		case responses.ResponseOutputItemAddedEvent:
			if fc := ev.Item.AsFunctionCall(); fc.Name != "get_weather" || fc.Arguments != "" || fc.Status != "in_progress" {
				t.Errorf("output_item.added = %s", ev.RawJSON())
			}
		case responses.ResponseFunctionCallArgumentsDeltaEvent:
			arguments.WriteString(ev.Delta)
		case responses.ResponseFunctionCallArgumentsDoneEvent:
			done = ev.Arguments
		case responses.ResponseOutputItemDoneEvent:
			item = ev.Item.AsFunctionCall()
		case responses.ResponseCompletedEvent:
			completed = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added",
		"response.function_call_arguments.done", "response.output_item.done", "response.completed"}
	if !slices.Equal(names, want) {
		t.Errorf("events (without deltas) = %v; want %v", names, want)
	}
	checkWeatherArgs(t, arguments.String())
	if done != arguments.String() || item.Arguments != done || item.Status != "completed" || completed.Output[0].AsFunctionCall().Arguments != done {
		t.Errorf("the deltas %q, the done event %q, the item %+v and the response disagree", arguments.String(), done, item)
	}
	st := s.Stats().Deployments["gpt-4o"]
	if st.CompletionTokens != completed.Usage.OutputTokens || st.PromptTokens != completed.Usage.InputTokens {
		t.Errorf("stats %+v; the response reported %+v", st, completed.Usage)
	}
}

func TestSDKResponsesJSONSchema(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	client := sdkClientsFor(t, srv.URL)["openai"]
	r, err := client.Responses.New(context.Background(), responses.ResponseNewParams{
		Model: "gpt-4o",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Forecast for Oslo.")},
		Text: responses.ResponseTextConfigParam{
			Format: responses.ResponseFormatTextConfigParamOfJSONSchema("forecast", schemaMap(t, weatherSchema)),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkWeatherArgs(t, r.OutputText())
	if r.Usage.OutputTokens != int64(tokens.Count("gpt-4o", r.OutputText())) {
		t.Errorf("output_tokens = %d; the text is %d tokens", r.Usage.OutputTokens, tokens.Count("gpt-4o", r.OutputText()))
	}
}
