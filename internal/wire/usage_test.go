package wire

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/tidwall/gjson"
)

func TestUsageFromBody(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Usage
		ok   bool
	}{
		{"chat", `{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":3}}}`,
			Usage{Prompt: 9, Completion: 12, Total: 21, Cached: 4, Reasoning: 3}, true},
		{"embeddings", `{"data":[],"usage":{"prompt_tokens":5,"total_tokens":5}}`, Usage{Prompt: 5, Total: 5}, true},
		{"responses", `{"output":[],"usage":{"input_tokens":7,"output_tokens":2,"total_tokens":9,"input_tokens_details":{"cached_tokens":1},"output_tokens_details":{"reasoning_tokens":1}}}`,
			Usage{Prompt: 7, Completion: 2, Total: 9, Cached: 1, Reasoning: 1}, true},
		{"no total", `{"usage":{"prompt_tokens":1,"completion_tokens":2}}`, Usage{Prompt: 1, Completion: 2, Total: 3}, true},
		{"none", `{"error":{"message":"x"}}`, Usage{}, false},
		{"not json", `{"usage":`, Usage{}, false},
	}
	for _, tt := range tests {
		got, ok := UsageFromBody([]byte(tt.body))
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: UsageFromBody = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestStreamUsage(t *testing.T) {
	tests := []struct {
		name      string
		data      string
		want      Usage
		ok, chunk bool
	}{
		{"usage chunk", `{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`, Usage{Prompt: 3, Completion: 4, Total: 7}, true, true},
		{"null usage", `{"id":"c","choices":[{"delta":{"content":"x"}}],"usage":null}`, Usage{}, false, false},
		{"content chunk", `{"id":"c","choices":[{"delta":{"content":"usage"}}]}`, Usage{}, false, false},
		{"responses completed", `{"type":"response.completed","response":{"usage":{"input_tokens":2,"output_tokens":5,"total_tokens":7}}}`, Usage{Prompt: 2, Completion: 5, Total: 7}, true, false},
		{"done", `[DONE]`, Usage{}, false, false},
	}
	for _, tt := range tests {
		u, ok, chunk := StreamUsage([]byte(tt.data))
		if u != tt.want || ok != tt.ok || chunk != tt.chunk {
			t.Errorf("%s: StreamUsage = %+v, %v, %v; want %+v, %v, %v", tt.name, u, ok, chunk, tt.want, tt.ok, tt.chunk)
		}
	}
}

func TestStreamText(t *testing.T) {
	for data, want := range map[string]string{
		`{"choices":[{"delta":{"content":" river"}}]}`:              " river",
		`{"choices":[{"delta":{"content":"a\"b\u00e9\n"}}]}`:        "a\"bé\n",
		`{"choices":[{"delta":{"content":""}}]}`:                    "",
		`{"choices":[{"text":"bank"}]}`:                             "bank",
		`{"type":"response.output_text.delta","delta":"flow"}`:      "flow",
		`{"type":"response.output_text.delta","delta":"fl\/ow"}`:    "fl/ow",
		`{"choices":[{"delta":{"role":"assistant"}}],"usage":null}`: "",
		`[DONE]`: "",
	} {
		if got := string(StreamText([]byte(data))); got != want {
			t.Errorf("StreamText(%s) = %q; want %q", data, got, want)
		}
	}
	plain := []byte(`{"choices":[{"delta":{"content":" river"}}]}`)
	if n := testing.AllocsPerRun(100, func() { StreamText(plain) }); n != 0 {
		t.Errorf("StreamText of text without escapes: %v allocations; want 0", n)
	}
}

// streamTextCopy is StreamText as it read the text before it learnt to
// return it in place: through gjson's copying []byte functions.
func streamTextCopy(data []byte) []byte {
	if len(data) == 0 || data[0] != '{' {
		return nil
	}
	if r := gjson.GetBytes(data, "choices.0.delta.content"); r.Type == gjson.String {
		return []byte(r.Str)
	}
	if r := gjson.GetBytes(data, "choices.0.text"); r.Type == gjson.String {
		return []byte(r.Str)
	}
	if gjson.GetBytes(data, "type").Str == "response.output_text.delta" {
		return []byte(gjson.GetBytes(data, "delta").Str)
	}
	return nil
}

func TestWithoutNullUsage(t *testing.T) {
	tests := []struct{ in, want string }{
		{"data: {\"id\":\"c\",\"choices\":[],\"usage\":null}\n\n", "data: {\"id\":\"c\",\"choices\":[]}\n\n"},
		{"data: {\"usage\":null,\"id\":\"c\"}\n\n", "data: {\"id\":\"c\"}\n\n"},
		{"data: {\"usage\":null}\n\n", "data: {}\n\n"},
		{"data: {\"id\":\"c\", \"usage\" : null }\n\n", "data: {\"id\":\"c\" }\n\n"},
		{"data: {\"usage\":{\"prompt_tokens\":1}}\n\n", "data: {\"usage\":{\"prompt_tokens\":1}}\n\n"},
		{"data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\":null\"}}]}\n\n", "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\":null\"}}]}\n\n"},
		{"data: [DONE]\n\n", "data: [DONE]\n\n"},
		{"data: {\"a\":{\"b\":1,\"usage\":null}}\n\n", "data: {\"a\":{\"b\":1,\"usage\":null}}\n\n"},
		{"data: {\"a\":\"q\\\\\" , \"usage\":null}\r\n\r\n", "data: {\"a\":\"q\\\\\" }\r\n\r\n"},
	}
	for _, tt := range tests {
		if got := string(WithoutNullUsage([]byte(tt.in))); got != tt.want {
			t.Errorf("WithoutNullUsage(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestWithIncludeUsage(t *testing.T) {
	for _, body := range []string{`{"model":"m","stream":true}`, `{"stream":true,"stream_options":{"include_usage":false}}`, `{"stream_options":{}}`} {
		r, err := ParseRequest([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		out := r.WithIncludeUsage([]byte(body))
		r2, err := ParseRequest(out)
		if err != nil || !r2.IncludeUsage {
			t.Errorf("WithIncludeUsage(%s) = %s; want include_usage true (%v)", body, out, err)
		}
	}
}

// FuzzStreamEvent checks that the stream helpers never panic, and that
// removing a null usage keeps the data valid JSON without a usage member.
func FuzzStreamEvent(f *testing.F) {
	for _, s := range []string{
		"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":null}\n\n",
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n",
		"data: {\"usage\":null , \"a\":[1,{\"usage\":null}]}\n\n", "data: [DONE]\n\n", "data: {\"usage\"\n\n",
		"data: {\"choices\":[{\"delta\":{\"content\":\"\\u00e9\\\"\"}}]}\n\n", "data: {\"choices\":[{\"text\":\"x\"\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, event []byte) {
		data := bytes.TrimSuffix(bytes.TrimPrefix(event, []byte("data: ")), []byte("\n\n"))
		StreamUsage(data)
		if got, want := StreamText(data), streamTextCopy(data); !bytes.Equal(got, want) {
			t.Fatalf("StreamText(%q) = %q; want %q", data, got, want)
		}
		out := WithoutNullUsage(event)
		outData := bytes.TrimSuffix(bytes.TrimPrefix(out, []byte("data: ")), []byte("\n\n"))
		var before, after map[string]json.RawMessage
		if json.Unmarshal(data, &before) != nil || !bytes.HasPrefix(event, []byte("data: {")) {
			return
		}
		if raw, ok := before["usage"]; !ok || string(raw) != "null" {
			return
		}
		if err := json.Unmarshal(outData, &after); err != nil {
			t.Fatalf("WithoutNullUsage(%q) = %q: not JSON: %v", event, out, err)
		}
		if _, ok := after["usage"]; ok || len(after) != len(before)-1 {
			t.Fatalf("WithoutNullUsage(%q) = %q; want only usage removed", event, out)
		}
	})
}

func BenchmarkStreamChunk(b *testing.B) {
	ev := []byte(`data: {"choices":[{"content_filter_results":{},"delta":{"content":" river"},"finish_reason":null,"index":0,"logprobs":null}],"created":1795312138,"id":"chatcmpl-aHz1C0gn7On7jf0WdsiMoUtvRJZBl","model":"gpt-4o","object":"chat.completion.chunk","system_fingerprint":"fp_67c201b1ec","usage":null}` + "\n\n")
	data := ev[6 : len(ev)-2]
	b.ReportAllocs()
	for b.Loop() {
		StreamUsage(data)
		StreamText(data)
		WithoutNullUsage(ev)
	}
}

// azureChatBody is what the simulator's Azure path answers a small chat
// request with: the usage comes last, after the content filter results.
const azureChatBody = `{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"protected_material_code":{"filtered":false,"detected":false},"protected_material_text":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}},"finish_reason":"length","index":0,"logprobs":null,"message":{"annotations":[],"content":"System common is recent social client. Be more is time sure our night this.","refusal":null,"role":"assistant"}}],"created":1795318983,"id":"chatcmpl-AudsnJt35ED3Srr0hatKD6WVgUqXn","model":"gpt-4o","object":"chat.completion","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}],"system_fingerprint":"fp_67c201b1ec","usage":{"completion_tokens":16,"completion_tokens_details":{"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":0,"rejected_prediction_tokens":0},"prompt_tokens":13,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":0},"total_tokens":29}}`

func BenchmarkUsageFromBody(b *testing.B) {
	body := []byte(azureChatBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if u, ok := UsageFromBody(body); !ok || u.Total != 29 {
			b.Fatal(u, ok)
		}
	}
}

// FuzzUsageFromBody: any body, however broken or deep, is read without a
// panic, and a valid body's usage is read as encoding/json reads it.
func FuzzUsageFromBody(f *testing.F) {
	f.Add([]byte(azureChatBody))
	f.Add([]byte(`{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`))
	f.Add([]byte(`{"usage":{"input_tokens":5,"output_tokens":7,"input_tokens_details":{"cached_tokens":2}}}`))
	f.Add([]byte(`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`))
	f.Add(append([]byte(`{"usage":`), bytes.Repeat([]byte("{"), 1<<20)...))
	f.Add([]byte(`{"usage":{"prompt_tokens":1,"total_tokens"`))
	f.Fuzz(func(t *testing.T, body []byte) {
		u, ok := UsageFromBody(body)
		var v struct {
			Usage *struct {
				Prompt     *int64 `json:"prompt_tokens"`
				Completion *int64 `json:"completion_tokens"`
				Total      *int64 `json:"total_tokens"`
			} `json:"usage"`
		}
		if json.Unmarshal(body, &v) != nil || v.Usage == nil || v.Usage.Prompt == nil || v.Usage.Completion == nil || v.Usage.Total == nil {
			return
		}
		// Keys given twice, escaped or in another case may be read differently
		// (encoding/json takes the last, and matches any case).
		lower := bytes.ToLower(body)
		for _, k := range []string{`"usage"`, `"prompt_tokens"`, `"completion_tokens"`, `"total_tokens"`} {
			if bytes.Count(body, []byte(k)) != 1 || bytes.Count(lower, []byte(k)) != 1 {
				return
			}
		}
		if bytes.IndexByte(body, '\\') >= 0 {
			return
		}
		if !ok || u.Prompt != *v.Usage.Prompt || u.Completion != *v.Usage.Completion || u.Total != *v.Usage.Total {
			t.Fatalf("UsageFromBody(%q) = %+v, %v; encoding/json reads %d/%d/%d", body, u, ok, *v.Usage.Prompt, *v.Usage.Completion, *v.Usage.Total)
		}
	})
}
