package translate

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/packages/ssestream"
)

// azureToolStream is an Azure OpenAI chat stream with text, then a tool
// call whose arguments come in two pieces, then the usage chunk.
const azureToolStream = `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]}

data: {"choices":[{"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0}],"id":"chatcmpl-1","model":"gpt-4o","object":"chat.completion.chunk","usage":null}

data: {"choices":[{"delta":{"content":"Checking."},"finish_reason":null,"index":0}],"id":"chatcmpl-1","model":"gpt-4o","object":"chat.completion.chunk","usage":null}

data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"","name":"get_weather"},"id":"call_1","index":0,"type":"function"}]},"finish_reason":null,"index":0}],"id":"chatcmpl-1","model":"gpt-4o","object":"chat.completion.chunk","usage":null}

data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\"city\":"},"index":0}]},"finish_reason":null,"index":0}],"id":"chatcmpl-1","model":"gpt-4o","object":"chat.completion.chunk","usage":null}

data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"\"Paris\"}"},"index":0}]},"finish_reason":null,"index":0}],"id":"chatcmpl-1","model":"gpt-4o","object":"chat.completion.chunk","usage":null}

data: {"choices":[{"delta":{},"finish_reason":"tool_calls","index":0}],"id":"chatcmpl-1","model":"gpt-4o","object":"chat.completion.chunk","usage":null}

data: {"choices":[],"id":"chatcmpl-1","model":"gpt-4o","object":"chat.completion.chunk","usage":{"completion_tokens":12,"prompt_tokens":45,"prompt_tokens_details":{"cached_tokens":5},"total_tokens":57}}

data: [DONE]

`

// TestMessagesStreamWithSDK reads the translated stream with the Anthropic
// SDK's decoder and accumulator, as a Messages client would.
func TestMessagesStreamWithSDK(t *testing.T) {
	out, err := translateStream(t, NewMessagesStream(), []byte(azureToolStream))
	if err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(bytes.NewReader(out))}
	s := ssestream.NewStream[sdk.MessageStreamEventUnion](ssestream.NewDecoder(resp), nil)
	var acc sdk.Message
	for s.Next() {
		if err := acc.Accumulate(s.Current()); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.ID != "msg_1" || acc.Model != "gpt-4o" || len(acc.Content) != 2 || acc.Content[0].Text != "Checking." ||
		acc.Content[1].ID != "call_1" || string(acc.Content[1].Input) != `{"city":"Paris"}` || acc.StopReason != "tool_use" {
		t.Errorf("accumulated %s", acc.RawJSON())
	}
	if acc.Usage.InputTokens != 40 || acc.Usage.CacheReadInputTokens != 5 || acc.Usage.OutputTokens != 12 {
		t.Errorf("usage %+v; want input 40 (45 less 5 cached), cache read 5, output 12", acc.Usage)
	}
}

func TestMessagesToChat(t *testing.T) {
	in := `{"model":"claude","max_tokens":50,"system":[{"type":"text","text":"Be brief."}],"stream":true,
		"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},
		{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"},{"type":"text","text":"and tomorrow?"}]}],
		"tools":[{"name":"get_weather","input_schema":{"type":"object"}}],"tool_choice":{"type":"any","disable_parallel_tool_use":true}}`
	got, err := MessagesToChat([]byte(in), "gpt-4o")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, []byte(`{"model":"gpt-4o","max_tokens":50,"stream":true,"stream_options":{"include_usage":true},
		"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"weather?"}]},
		{"role":"assistant","content":"Checking.","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
		{"role":"tool","tool_call_id":"toolu_1","content":"sunny"},{"role":"user","content":[{"type":"text","text":"and tomorrow?"}]}],
		"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],"tool_choice":"required","parallel_tool_calls":false}`))
	if _, err := MessagesToChat([]byte(`{"model":"c","max_tokens":1,"top_k":3,"messages":[]}`), "m"); err == nil || !strings.Contains(err.Error(), "top_k") {
		t.Errorf("top_k: %v; want a refusal", err)
	}
}

func FuzzMessagesStream(f *testing.F) {
	f.Add([]byte(azureToolStream))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _ := translateStream(t, NewMessagesStream(), in)
		for _, ev := range bytes.Split(out, []byte("\n\n")) {
			if len(ev) == 0 {
				continue
			}
			name, data, ok := bytes.Cut(ev, []byte("\ndata: "))
			if !ok || !bytes.HasPrefix(name, []byte("event: ")) || !json.Valid(data) {
				t.Fatalf("not an event with JSON data: %q", ev)
			}
		}
	})
}
