package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    Request
		wantErr bool
	}{
		{name: "chat", body: `{"model":"gpt-4o","messages":[]}`, want: Request{Model: "gpt-4o"}},
		{name: "stream with usage", body: `{"stream":true,"stream_options":{"include_usage":true},"model":"m"}`,
			want: Request{Model: "m", Stream: true, IncludeUsage: true}},
		{name: "stream false", body: `{"stream":false}`, want: Request{}},
		{name: "stream null", body: `{"stream":null}`, want: Request{}},
		{name: "max_tokens", body: `{"max_tokens":100}`, want: Request{MaxTokens: 100}},
		{name: "max_completion_tokens", body: `{"max_completion_tokens":7}`, want: Request{MaxTokens: 7}},
		{name: "max_output_tokens", body: `{"max_output_tokens":9}`, want: Request{MaxTokens: 9}},
		{name: "nested model ignored", body: `{"messages":[{"model":"x"}],"metadata":{"model":"y"}}`, want: Request{}},
		{name: "escaped model", body: `{"model":"gpt\u002d4o"}`, want: Request{Model: "gpt-4o"}},
		{name: "whitespace", body: " \n{ \"model\" : \"m\" } \n", want: Request{Model: "m"}},
		{name: "not json", body: `{"model":`, wantErr: true},
		{name: "empty", body: ``, wantErr: true},
		{name: "array", body: `[1,2]`, wantErr: true},
		{name: "string", body: `"model"`, wantErr: true},
		{name: "model number", body: `{"model":4}`, wantErr: true},
		{name: "stream string", body: `{"stream":"yes"}`, wantErr: true},
		{name: "duplicate model", body: `{"model":"allowed","model":"forbidden"}`, wantErr: true},
		{name: "duplicate stream", body: `{"stream":false,"stream":true}`, wantErr: true},
		{name: "two max fields", body: `{"max_tokens":1,"max_completion_tokens":2}`, wantErr: true},
		{name: "negative max", body: `{"max_tokens":-1}`, wantErr: true},
		{name: "fractional max", body: `{"max_tokens":1.5}`, wantErr: true},
		{name: "trailing garbage", body: `{"model":"m"} x`, wantErr: true},
		{name: "invalid utf-8", body: "{\"model\":\"a\xff\"}", wantErr: true},
		{name: "invalid utf-8 in a message", body: "{\"messages\":[{\"content\":\"\xc3\"}]}", wantErr: true},
		{name: "n", body: `{"n":5,"max_tokens":50}`, want: Request{MaxTokens: 50, Choices: 5}},
		{name: "best_of over n", body: `{"n":2,"best_of":4}`, want: Request{Choices: 4}},
		{name: "n null", body: `{"n":null}`, want: Request{}},
		{name: "n zero", body: `{"n":0}`, wantErr: true},
		{name: "n string", body: `{"n":"5"}`, wantErr: true},
		{name: "n twice", body: `{"n":1,"n":100}`, wantErr: true},
		// Keys that read differently to an exact reader and to a
		// case-insensitive one (Go's encoding/json keeps the last match).
		{name: "model in upper case", body: `{"model":"cheap","Model":"expensive"}`, wantErr: true},
		{name: "model in upper case alone", body: `{"Model":"expensive"}`, wantErr: true},
		{name: "max_tokens in mixed case", body: `{"max_tokens":1,"Max_Tokens":500}`, wantErr: true},
		{name: "n in upper case", body: `{"N":100}`, wantErr: true},
		{name: "Kelvin sign", body: "{\"max_to\u212Aens\":500}", wantErr: true},
		{name: "long s", body: "{\"\u017Ftream\":true}", wantErr: true},
		{name: "dotless i", body: "{\"max_tokens\":1,\"max_completıon_tokens\":5000}", wantErr: true},
		{name: "dotted I", body: "{\"İnput\":\"x\",\"input\":\"y\"}", wantErr: true},
		{name: "escaped upper case", body: `{"model":"a","\u004dodel":"b"}`, wantErr: true},
		{name: "escaped duplicate", body: `{"model":"a","\u006dodel":"b"}`, wantErr: true},
		{name: "unknown key twice", body: `{"temperature":0,"temperature":2}`, wantErr: true},
		{name: "unknown keys differing in case", body: `{"x_custom":0,"X_Custom":2}`, wantErr: true},
		{name: "unknown key in upper case", body: `{"X_Custom":2}`, want: Request{}},
		{name: "include_usage in upper case", body: `{"stream_options":{"include_usage":false,"Include_Usage":true}}`, wantErr: true},
		{name: "content in upper case", body: `{"messages":[{"role":"user","content":"a","Content":"b"}]}`, wantErr: true},
		{name: "role twice", body: `{"messages":[{"role":"user","role":"system","content":"a"}]}`, wantErr: true},
		{name: "part text in upper case", body: `{"messages":[{"role":"user","content":[{"type":"text","text":"a","TEXT":"b"}]}]}`, wantErr: true},
		{name: "tool call arguments", body: `{"messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","Arguments":"{}"}}]}]}`, wantErr: true},
		{name: "responses input item", body: `{"input":["x",{"role":"user","Content":"b"}]}`, wantErr: true},
		{name: "schema properties may differ in case",
			body: `{"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"Name":{},"name":{}}}}}]}`,
			want: Request{}},
		{name: "metadata keys are the client's", body: `{"metadata":{"Model":"x","model":"y"}}`, want: Request{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest([]byte(tt.body))
			if tt.wantErr {
				if err == nil || !errors.Is(err, ErrBadRequest) {
					t.Fatalf("ParseRequest(%s) error = %v; want an ErrBadRequest", tt.body, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest(%s) error = %v", tt.body, err)
			}
			got.modelStart, got.modelEnd = 0, 0
			if tt.want.Choices == 0 {
				tt.want.Choices = 1
			}
			if got != tt.want {
				t.Errorf("ParseRequest(%s) = %+v; want %+v", tt.body, got, tt.want)
			}
		})
	}
}

func TestWithModel(t *testing.T) {
	tests := []struct {
		name, body, model, want string
	}{
		{"replace", `{"model":"gpt-4o","n":1}`, "dep", `{"model":"dep","n":1}`},
		{"replace keeps spacing", `{ "messages": [], "model" : "a" }`, "b\"c", `{ "messages": [], "model" : "b\"c" }`},
		{"insert", `{"n":1}`, "dep", `{"model":"dep","n":1}`},
		{"insert empty", `{}`, "dep", `{"model":"dep"}`},
		{"insert empty spaced", "{ \n}", "dep", "{\"model\":\"dep\" \n}"},
		{"unicode", `{"model":"x"}`, "modèle\u2028", `{"model":"modèle\u2028"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRequest([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got := string(r.WithModel([]byte(tt.body), QuoteJSON(tt.model)))
			if got != tt.want {
				t.Errorf("WithModel(%s, %q) = %s; want %s", tt.body, tt.model, got, tt.want)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(got), &v); err != nil || v["model"] != tt.model {
				t.Errorf("WithModel result %s decodes to model %v (err %v); want %q", got, v["model"], err, tt.model)
			}
		})
	}
}

// jsonView is how Go's encoding/json reads the fields Sluice enforces: keys
// matched case-insensitively (under Unicode folding), the last match kept.
// Values stay raw, so the comparison is about which key is read, not about
// how a value is converted.
type jsonView struct {
	Model               json.RawMessage `json:"model"`
	Stream              json.RawMessage `json:"stream"`
	StreamOptions       json.RawMessage `json:"stream_options"`
	MaxTokens           json.RawMessage `json:"max_tokens"`
	MaxCompletionTokens json.RawMessage `json:"max_completion_tokens"`
	MaxOutputTokens     json.RawMessage `json:"max_output_tokens"`
	N                   json.RawMessage `json:"n"`
	BestOf              json.RawMessage `json:"best_of"`
}

// present reports whether a field was there and not null.
func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// FuzzParseRequest checks that parsing never panics, that no body it
// accepts reads differently to Go's encoding/json (which matches keys
// case-insensitively and keeps the last) for a field Sluice enforces, and
// that WithModel keeps the body valid JSON with the new model.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":5}`,
		`{"input":["a","b"],"model":"text-embedding-3-small"}`,
		`{}`, `{"model":null}`, `{"model":"a","model":"b"}`, `[`, `{"stream":1}`, "{\"model\":\"\\ud800\"}",
		`{"model":"cheap","Model":"expensive"}`, `{"max_tokens":1,"Max_Tokens":500}`, `{"n":1,"N":100}`,
		"{\"max_to\\u212Aens\":500}", "{\"\\u017Ftream\":true}", `{"best_of":3,"n":2,"max_tokens":7}`,
		`{"stream_options":{"include_usage":false,"INCLUDE_USAGE":true}}`, `{"MODEL":"x","model":"y"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body)
		if err != nil {
			return
		}
		var v jsonView
		if jerr := json.Unmarshal(body, &v); jerr != nil {
			// encoding/json refuses some inputs gjson accepts; a backend
			// that reads like it refuses them too.
			return
		}
		var model string
		if present(v.Model) {
			if err := json.Unmarshal(v.Model, &model); err != nil {
				t.Fatalf("%s: accepted a model %s that encoding/json cannot read: %v", body, v.Model, err)
			}
		}
		if model != r.Model {
			t.Fatalf("%s: model = %q; encoding/json reads %q", body, r.Model, model)
		}
		if got := string(v.Stream) == "true"; got != r.Stream {
			t.Fatalf("%s: stream = %v; encoding/json reads %s", body, r.Stream, v.Stream)
		}
		var so struct {
			IncludeUsage json.RawMessage `json:"include_usage"`
		}
		if present(v.StreamOptions) && json.Unmarshal(v.StreamOptions, &so) == nil {
			if got := string(so.IncludeUsage) == "true"; got != r.IncludeUsage {
				t.Fatalf("%s: include_usage = %v; encoding/json reads %s", body, r.IncludeUsage, so.IncludeUsage)
			}
		}
		var maxTokens int64
		for _, raw := range []json.RawMessage{v.MaxTokens, v.MaxCompletionTokens, v.MaxOutputTokens} {
			if present(raw) {
				if err := json.Unmarshal(raw, &maxTokens); err != nil {
					t.Fatalf("%s: accepted max tokens %s that encoding/json cannot read: %v", body, raw, err)
				}
			}
		}
		if maxTokens != r.MaxTokens {
			t.Fatalf("%s: max tokens = %d; encoding/json reads %d", body, r.MaxTokens, maxTokens)
		}
		choices := int64(1)
		for _, raw := range []json.RawMessage{v.N, v.BestOf} {
			if present(raw) {
				var n int64
				if err := json.Unmarshal(raw, &n); err != nil {
					t.Fatalf("%s: accepted n/best_of %s that encoding/json cannot read: %v", body, raw, err)
				}
				choices = max(choices, n)
			}
		}
		if choices != r.Choices {
			t.Fatalf("%s: choices = %d; encoding/json reads %d", body, r.Choices, choices)
		}

		out := r.WithModel(body, QuoteJSON("rewritten"))
		var after jsonView
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("WithModel(%q) = %q: not JSON: %v", body, out, err)
		}
		var m string
		if err := json.Unmarshal(after.Model, &m); err != nil || m != "rewritten" {
			t.Fatalf("WithModel(%q) = %q: model %q, %v", body, out, m, err)
		}
	})
}

func BenchmarkParseRequest(b *testing.B) {
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about gateways and rivers, please, in English."}],"max_tokens":200,"temperature":0.7,"stream":true,"stream_options":{"include_usage":true}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseRequestDeepNesting: gjson validates recursively, and a deep enough
// body would overflow the stack and kill the process; it must be refused.
func TestParseRequestDeepNesting(t *testing.T) {
	nest := func(n int) []byte {
		return []byte(`{"a":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`)
	}
	if _, err := ParseRequest(nest(MaxDepth - 1)); err != nil {
		t.Errorf("nesting %d: %v; want accepted", MaxDepth, err)
	}
	if _, err := ParseRequest(nest(MaxDepth + 1)); !errors.Is(err, ErrBadRequest) {
		t.Errorf("nesting %d: %v; want refused", MaxDepth+1, err)
	}
	if _, err := ParseRequest([]byte(strings.Repeat("[", 4<<20))); !errors.Is(err, ErrBadRequest) {
		t.Errorf("4 MiB of [: %v; want refused", err)
	}
	if !ValidJSON([]byte(`{"s":"[[[[\"]]]"}`)) {
		t.Error("brackets inside strings counted as nesting")
	}
}
