package translate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// openAIToolRound is the OpenAI request that the recorded Anthropic
// requests of testdata/anthropic/tool_runner_*_1.request.json express: a
// question, the assistant's text and tool call, and the tool's result.
const openAIToolRound = `{"model":"gpt-4o-mini","max_tokens":512,%s"messages":[
 {"role":"user","content":%q},
 {"role":"assistant","content":"I'll get the current weather in San Francisco for you in Fahrenheit.","tool_calls":[{"id":%q,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"San Francisco\",\"units\":\"fahrenheit\"}"}}]},
 {"role":"tool","tool_call_id":%q,"content":"The weather in San Francisco is 68 degrees fahrenheit."}],
 "tools":[{"type":"function","function":{"name":"get_weather","description":"Get weather","parameters":{"properties":{"city":{"type":"string"},"units":{"enum":["celsius","fahrenheit"],"type":"string"}},"required":["city"],"type":"object"}}}]}`

func jsonEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(w, g); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
}

// TestAnthropicRequestMatchesRecorded translates the OpenAI form of two
// requests the Anthropic SDK sent to the real API and compares the result
// with what it sent.
func TestAnthropicRequestMatchesRecorded(t *testing.T) {
	tests := []struct {
		file, question, id, stream string
	}{
		{"tool_runner_streaming_all_1", "Weather in SF in fahrenheit?", "toolu_01RaX2WYWRWCbaeFHssmGJXG", `"stream":true,`},
		{"tool_runner_basic_1", "What's the weather in San Francisco? Use fahrenheit.", "toolu_01TZR6ZrLHdpAWdmhVPuDfjQ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in := []byte(fmt.Sprintf(openAIToolRound, tt.stream, tt.question, tt.id, tt.id))
			got, err := AnthropicRequest(in, Options{Model: "claude-3-7-sonnet-latest"})
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, got, read(t, "anthropic/"+tt.file+".request.json"))
		})
	}
}

func TestAnthropicRequest(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"system, developer, default max_tokens, stop", `{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":[{"type":"text","text":"Use French."}]},{"role":"user","content":"Hi"}],"stop":"END","temperature":0.5}`,
			`{"model":"claude","max_tokens":1024,"system":"Be brief.\n\nUse French.","messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],"temperature":0.5,"stop_sequences":["END"]}`},
		{"images, tool choice, no parallel calls, json schema", `{"model":"m","max_completion_tokens":50,"stream":true,"stream_options":{"include_usage":true},
			"messages":[{"role":"user","content":[{"type":"text","text":"What is it?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},{"type":"image_url","image_url":{"url":"https://example.com/a.jpg"}}]}],
			"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required","parallel_tool_calls":false,
			"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}}`,
			`{"model":"claude","max_tokens":50,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"What is it?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}}]}],
			"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"any","disable_parallel_tool_use":true},"output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}}}`},
		{"consecutive tool results in one user turn", `{"model":"m","max_tokens":5,"tool_choice":{"type":"function","function":{"name":"a"}},"messages":[{"role":"user","content":"go"},
			{"role":"assistant","content":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"a","arguments":""}},{"id":"t2","type":"function","function":{"name":"b","arguments":"{\"k\":1}"}}]},
			{"role":"tool","tool_call_id":"t1","content":"r1"},{"role":"tool","tool_call_id":"t2","content":"r2"},{"role":"user","content":"and?"}],"tools":[{"type":"function","function":{"name":"a","parameters":{"type":"object"}}},{"type":"function","function":{"name":"b","parameters":{"type":"object"}}}]}`,
			`{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"go"}]},
			{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"a","input":{}},{"type":"tool_use","id":"t2","name":"b","input":{"k":1}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"r1"}]},{"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"r2"}]},{"type":"text","text":"and?"}]}],
			"tools":[{"name":"a","input_schema":{"type":"object"}},{"name":"b","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"a"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AnthropicRequest([]byte(tt.in), Options{Model: "claude", DefaultMaxTokens: 1024})
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, got, []byte(tt.want))
		})
	}
}

func TestRefused(t *testing.T) {
	tests := []struct {
		name, in, want string
		gemini         bool
	}{
		{"n>1", `{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`, "n > 1", false},
		{"n>1 gemini", `{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`, "n > 1", true},
		{"unknown field", `{"model":"m","audio":{},"messages":[{"role":"user","content":"x"}]}`, `"audio"`, false},
		{"logprobs", `{"model":"m","logprobs":true,"messages":[{"role":"user","content":"x"}]}`, "logprobs", false},
		{"bad tool arguments", `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{nope"}}]}]}`, "not a JSON object", false},
		{"no max_tokens and no default", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, "max_tokens is required", false},
		{"json_object", `{"model":"m","max_tokens":1,"response_format":{"type":"json_object"},"messages":[{"role":"user","content":"x"}]}`, "json_object", false},
		{"image by URL gemini", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`, "data:", true},
		{"tool result without its call gemini", `{"model":"m","messages":[{"role":"tool","tool_call_id":"z","content":"r"}]}`, "answers no tool call", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.gemini {
				_, err = GeminiRequest([]byte(tt.in), Options{Model: "g"})
			} else {
				_, err = AnthropicRequest([]byte(tt.in), Options{Model: "c"})
			}
			var we *wire.Error
			if !errors.As(err, &we) || we.Status != 400 || !strings.Contains(we.Message, tt.want) {
				t.Errorf("err %v; want a 400 saying %q", err, tt.want)
			}
		})
	}
}

func TestGeminiRequest(t *testing.T) {
	in := `{"model":"m","max_tokens":100,"stop":["x","y"],"seed":7,"messages":[{"role":"system","content":"Be brief."},
		{"role":"user","content":[{"type":"text","text":"Weather?"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}}]},
		{"role":"assistant","content":"Checking.","tool_calls":[{"id":"call_0~CiQB0e2K","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"fc_9","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
		{"role":"tool","tool_call_id":"call_0~CiQB0e2K","content":"sunny"},{"role":"tool","tool_call_id":"fc_9","content":"{\"time\":\"noon\"}"}],
		"tools":[{"type":"function","function":{"name":"get_weather","description":"d","parameters":{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":false,"properties":{"city":{"type":"string"}}}}},{"type":"function","function":{"name":"get_time"}}],
		"tool_choice":"auto","response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"}}},"stream":true,"stream_options":{"include_usage":true}}`
	want := `{"contents":[{"role":"user","parts":[{"text":"Weather?"},{"inlineData":{"mimeType":"image/jpeg","data":"/9j/4AAQ"}}]},
		{"role":"model","parts":[{"text":"Checking."},{"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"CiQB0e2K"},{"functionCall":{"id":"fc_9","name":"get_time","args":{}}}]},
		{"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"result":"sunny"}}},{"functionResponse":{"id":"fc_9","name":"get_time","response":{"time":"noon"}}}]}],
		"systemInstruction":{"parts":[{"text":"Be brief."}]},
		"tools":[{"functionDeclarations":[{"name":"get_weather","description":"d","parametersJsonSchema":{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":false,"properties":{"city":{"type":"string"}}}},{"name":"get_time"}]}],
		"toolConfig":{"functionCallingConfig":{"mode":"AUTO"}},
		"generationConfig":{"maxOutputTokens":100,"stopSequences":["x","y"],"seed":7,"responseMimeType":"application/json","responseJsonSchema":{"type":"object"}}}`
	got, err := GeminiRequest([]byte(in), Options{Model: "gemini-2.5-flash"})
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, []byte(want))
}
