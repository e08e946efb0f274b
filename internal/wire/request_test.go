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

// FuzzParseRequest checks that parsing never panics, that what it accepts is
// JSON whose top-level model is what it says, and that WithModel keeps the
// body valid JSON with the new model.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":5}`,
		`{"input":["a","b"],"model":"text-embedding-3-small"}`,
		`{}`, `{"model":null}`, `{"model":"a","model":"b"}`, `[`, `{"stream":1}`, "{\"model\":\"\\ud800\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body)
		if err != nil {
			return
		}
		var top map[string]json.RawMessage
		if jerr := json.Unmarshal(body, &top); jerr != nil {
			// encoding/json refuses some inputs gjson accepts (invalid UTF-8
			// is replaced, not refused, by both); only check what both accept.
			return
		}
		if raw, ok := top["model"]; ok && r.Model != "" {
			var m string
			if json.Unmarshal(raw, &m) == nil && m != r.Model {
				t.Fatalf("model = %q; encoding/json reads %q", r.Model, m)
			}
		}
		out := r.WithModel(body, QuoteJSON("rewritten"))
		var after map[string]json.RawMessage
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("WithModel(%q) = %q: not JSON: %v", body, out, err)
		}
		var m string
		if err := json.Unmarshal(after["model"], &m); err != nil || m != "rewritten" {
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
