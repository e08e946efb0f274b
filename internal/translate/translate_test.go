package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/sluice-gateway/sluice/internal/wire"
)

var update = flag.Bool("update", false, "rewrite the .golden files")

// golden compares got with testdata/name, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s: (-want +got)\n%s", name, d)
	}
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// translateStream runs a provider stream through a StreamBody.
func translateStream(t *testing.T, tr Stream, in []byte) ([]byte, error) {
	t.Helper()
	return io.ReadAll(NewStreamBody(io.NopCloser(bytes.NewReader(in)), tr))
}

// accumulate reads an OpenAI stream with openai-go, as a client would.
func accumulate(t *testing.T, stream []byte) (openai.ChatCompletionAccumulator, []openai.ChatCompletionChunk) {
	t.Helper()
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(bytes.NewReader(stream))}
	s := ssestream.NewStream[openai.ChatCompletionChunk](ssestream.NewDecoder(resp), nil)
	var acc openai.ChatCompletionAccumulator
	var chunks []openai.ChatCompletionChunk
	for s.Next() {
		c := s.Current()
		if !acc.AddChunk(c) {
			t.Fatalf("the accumulator refused chunk %d: %s", len(chunks), c.RawJSON())
		}
		chunks = append(chunks, c)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("openai-go read the stream with: %v", err)
	}
	if !bytes.HasSuffix(stream, []byte(doneEvent)) {
		t.Errorf("the stream does not end with [DONE]")
	}
	return acc, chunks
}

func TestAnthropicStreamGolden(t *testing.T) {
	tests := []struct {
		in, want     string
		text         string
		tools        []string // name(arguments)
		finish       string
		prompt, comp int64
		reasoning    int64
	}{
		{in: "tool_runner_streaming_all_0.sse", text: "I'll get the current weather in San Francisco for you in Fahrenheit.",
			tools: []string{`get_weather({"city": "San Francisco", "units": "fahrenheit"})`}, finish: "tool_calls", prompt: 397},
		{in: "tool_runner_streaming_all_1.sse", text: "The current weather in San Francisco is 68 degrees Fahrenheit.", finish: "stop", prompt: 509, comp: 19},
		{in: "sdk_tooluse.sse", tools: []string{`echo({"text": "hello"})`}, finish: "tool_calls", prompt: 31, comp: 40},
		{in: "sdk_refusal.sse", finish: "content_filter", prompt: 28, comp: 106, reasoning: 67},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			tr := NewAnthropicStream(1700000000, true)
			out, err := translateStream(t, tr, read(t, "anthropic/"+tt.in))
			if err != nil {
				t.Fatalf("translating: %v", err)
			}
			golden(t, "anthropic/"+strings.TrimSuffix(tt.in, ".sse")+".openai.golden", out)
			acc, _ := accumulate(t, out)
			c := acc.Choices[0]
			if tt.text != "" && c.Message.Content != tt.text {
				t.Errorf("content %q; want %q", c.Message.Content, tt.text)
			}
			var tools []string
			for _, tc := range c.Message.ToolCalls {
				if !strings.HasPrefix(tc.ID, "toolu_") {
					t.Errorf("tool call id %q; want Anthropic's toolu_ id", tc.ID)
				}
				tools = append(tools, tc.Function.Name+"("+tc.Function.Arguments+")")
			}
			if d := cmp.Diff(tt.tools, tools); d != "" {
				t.Errorf("tool calls (-want +got):\n%s", d)
			}
			if c.FinishReason != tt.finish {
				t.Errorf("finish_reason %q; want %q", c.FinishReason, tt.finish)
			}
			if acc.Usage.PromptTokens != tt.prompt || (tt.comp > 0 && acc.Usage.CompletionTokens != tt.comp) {
				t.Errorf("usage %d/%d; want %d/%d", acc.Usage.PromptTokens, acc.Usage.CompletionTokens, tt.prompt, tt.comp)
			}
			if acc.Usage.CompletionTokensDetails.ReasoningTokens != tt.reasoning {
				t.Errorf("reasoning tokens %d; want %d", acc.Usage.CompletionTokensDetails.ReasoningTokens, tt.reasoning)
			}
			// What Sluice's meter reads is exactly the provider's report.
			var u wire.Usage
			for _, ev := range bytes.SplitAfter(out, []byte("\n\n")) {
				if got, ok, _ := wire.StreamUsage(EventData(nil, ev)); ok {
					u = got
				}
			}
			if u.Prompt != tr.Usage().Prompt || u.Completion != tr.Usage().Completion {
				t.Errorf("metered usage %+v; want the provider's %+v", u, tr.Usage())
			}
		})
	}
}

func TestAnthropicStreamWithoutUsage(t *testing.T) {
	out, err := translateStream(t, NewAnthropicStream(1, false), read(t, "anthropic/tool_runner_streaming_all_1.sse"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(`"usage"`)) {
		t.Errorf("a usage chunk went out though the client did not ask for one")
	}
	accumulate(t, out)
}

func TestAnthropicStreamTwoToolsAfterText(t *testing.T) {
	// Tool call indexes count tool_use blocks, not content blocks
	// (agentgateway#2965): text at 0, tools at 1 and 2 are calls 0 and 1.
	in := `event: message_start
data: {"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":10,"cache_read_input_tokens":5,"cache_creation_input_tokens":3,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Two calls."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_a","name":"a","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"x\":"}}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_b","name":"b","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"y\":\"\\u00e9\\n\"}"}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}

event: message_stop
data: {"type":"message_stop"}

`
	out, err := translateStream(t, NewAnthropicStream(1, true), []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	acc, _ := accumulate(t, out)
	m := acc.Choices[0].Message
	if len(m.ToolCalls) != 2 || m.ToolCalls[0].ID != "toolu_a" || m.ToolCalls[0].Function.Arguments != `{"x":1}` ||
		m.ToolCalls[1].ID != "toolu_b" || m.ToolCalls[1].Function.Arguments != `{"y":"\u00e9\n"}` {
		t.Errorf("tool calls %+v", m.ToolCalls)
	}
	u := acc.Usage
	if u.PromptTokens != 18 || u.PromptTokensDetails.CachedTokens != 5 || u.CompletionTokens != 30 || u.TotalTokens != 48 {
		t.Errorf("usage %+v; want prompt 18 (10+5+3), cached 5, completion 30", u)
	}
}

func TestAnthropicStreamErrors(t *testing.T) {
	tests := []struct {
		name, in   string
		wantStatus int
		wantEOF    bool
	}{
		{"overloaded", "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n", 503, false},
		{"cut off", "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1}}}\n\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := translateStream(t, NewAnthropicStream(1, true), []byte(tt.in))
			var se *StreamError
			switch {
			case tt.wantEOF && !errors.Is(err, io.ErrUnexpectedEOF):
				t.Errorf("err %v; want io.ErrUnexpectedEOF", err)
			case !tt.wantEOF && (!errors.As(err, &se) || se.Status != tt.wantStatus):
				t.Errorf("err %v; want a StreamError with status %d", err, tt.wantStatus)
			}
		})
	}
}

func TestAnthropicResponseGolden(t *testing.T) {
	for _, name := range []string{"tool_runner_basic_0", "tool_runner_basic_1"} {
		t.Run(name, func(t *testing.T) {
			out, err := AnthropicResponse(read(t, "anthropic/"+name+".json"), 1700000000)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "anthropic/"+name+".openai.golden", out)
			var c openai.ChatCompletion
			if err := json.Unmarshal(out, &c); err != nil {
				t.Fatal(err)
			}
			if u, _ := wire.UsageFromBody(out); u.Prompt != c.Usage.PromptTokens || u.Prompt == 0 {
				t.Errorf("metered usage %+v", u)
			}
		})
	}
	out, _ := AnthropicResponse(read(t, "anthropic/tool_runner_basic_0.json"), 1)
	var c openai.ChatCompletion
	_ = json.Unmarshal(out, &c)
	m := c.Choices[0].Message
	if c.Choices[0].FinishReason != "tool_calls" || len(m.ToolCalls) != 1 || m.ToolCalls[0].ID != "toolu_01TZR6ZrLHdpAWdmhVPuDfjQ" ||
		m.ToolCalls[0].Function.Arguments != `{"city":"San Francisco","units":"fahrenheit"}` || c.Usage.PromptTokens != 402 || c.Usage.CompletionTokens != 89 {
		t.Errorf("translated %s", out)
	}
}

func TestGeminiStreamGolden(t *testing.T) {
	tests := []struct {
		in, text string
		tools    []string
		finish   string
		usage    [4]int64 // prompt, completion, cached, reasoning
	}{
		{in: "text.sse", text: "The weather in San Francisco is 68°F and \"sunny\".", finish: "stop", usage: [4]int64{21, 75, 8, 61}},
		{in: "tool.sse", text: "Let me check.", finish: "tool_calls", usage: [4]int64{58, 31, 0, 0},
			tools: []string{`call_0~CiQB0e2Kb1Zx get_weather({"city": "San Francisco","units": "fahrenheit"})`, `call_1 get_time({"tz": "America/Los_Angeles"})`}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			out, err := translateStream(t, NewGeminiStream(1700000000, true), read(t, "gemini/"+tt.in))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "gemini/"+strings.TrimSuffix(tt.in, ".sse")+".stream.openai.golden", out)
			acc, _ := accumulate(t, out)
			c := acc.Choices[0]
			if c.Message.Content != tt.text || c.FinishReason != tt.finish {
				t.Errorf("content %q finish %q; want %q %q", c.Message.Content, c.FinishReason, tt.text, tt.finish)
			}
			var tools []string
			for _, tc := range c.Message.ToolCalls {
				tools = append(tools, tc.ID+" "+tc.Function.Name+"("+tc.Function.Arguments+")")
			}
			if d := cmp.Diff(tt.tools, tools); d != "" {
				t.Errorf("tool calls (-want +got):\n%s", d)
			}
			u := acc.Usage
			if got := [4]int64{u.PromptTokens, u.CompletionTokens, u.PromptTokensDetails.CachedTokens, u.CompletionTokensDetails.ReasoningTokens}; got != tt.usage {
				t.Errorf("usage %v; want %v", got, tt.usage)
			}
		})
	}
}

func TestGeminiStreamCutOff(t *testing.T) {
	in := read(t, "gemini/text.sse")
	in = in[:bytes.LastIndex(in[:len(in)-4], []byte("\r\n\r\n"))+4] // without the finishing event
	if _, err := translateStream(t, NewGeminiStream(1, true), in); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("err %v; want io.ErrUnexpectedEOF for a stream without a finishReason", err)
	}
}

func TestGeminiResponseGolden(t *testing.T) {
	out, err := GeminiResponse(read(t, "gemini/tool.json"), 1700000000)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "gemini/tool.openai.golden", out)
	var c openai.ChatCompletion
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	if c.Usage.PromptTokens != 58 || c.Usage.CompletionTokens != 62 || c.Usage.PromptTokensDetails.CachedTokens != 20 || c.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("translated %s", out)
	}
}

func TestErrors(t *testing.T) {
	e := GeminiError(429, read(t, "gemini/error_429.json"))
	if e.Status != 429 || e.RetryAfter.Seconds() != 37 || !bytes.Contains(e.Body, []byte(`"type":"rate_limit_error"`)) {
		t.Errorf("gemini 429: %+v %s", e, e.Body)
	}
	a := AnthropicError(529, []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`))
	if a.Status != 503 || !bytes.Contains(a.Body, []byte(`"code":"anthropic_overloaded_error"`)) {
		t.Errorf("anthropic 529: %+v %s", a, a.Body)
	}
	a = AnthropicError(429, []byte(`{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`))
	if a.Status != 429 {
		t.Errorf("anthropic 429: %+v", a)
	}
}

func readFile(name string) ([]byte, error) { return os.ReadFile(filepath.Join("testdata", name)) }
