package translate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// checkSSE fails unless out is a sequence of "data: X\n\n" events whose X
// is valid JSON or [DONE], with nothing after [DONE].
func checkSSE(t *testing.T, out []byte) {
	t.Helper()
	done := false
	for len(out) > 0 {
		i := bytes.Index(out, []byte("\n\n"))
		if i < 0 {
			t.Fatalf("an event without its blank line: %q", out)
		}
		ev := out[:i]
		out = out[i+2:]
		data, ok := bytes.CutPrefix(ev, []byte("data: "))
		if !ok || bytes.IndexByte(data, '\n') >= 0 {
			t.Fatalf("not a single-line data event: %q", ev)
		}
		if done {
			t.Fatalf("an event after [DONE]: %q", ev)
		}
		if string(data) == "[DONE]" {
			done = true
			continue
		}
		if !json.Valid(data) {
			t.Fatalf("invalid JSON in an event: %q", data)
		}
	}
}

func seeds(f *testing.F, dir, ext string) {
	paths, _ := filepath.Glob(filepath.Join("testdata", dir, "*"+ext))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func fuzzStream(f *testing.F, newStream func() Stream) {
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _ := translateStream(t, newStream(), in)
		checkSSE(t, out)
	})
}

func FuzzAnthropicStream(f *testing.F) {
	seeds(f, "anthropic", ".sse")
	f.Add([]byte("data: {\"type\":\"content_block_delta\",\"index\":7,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\ud800\\u2028\xff\"}}\n\n"))
	fuzzStream(f, func() Stream { return NewAnthropicStream(1, true) })
}

func FuzzGeminiStream(f *testing.F) {
	seeds(f, "gemini", ".sse")
	fuzzStream(f, func() Stream { return NewGeminiStream(1, true) })
}

// FuzzRequests holds the request translations to errors, never panics, and
// to valid JSON when they succeed.
func FuzzRequests(f *testing.F) {
	f.Add([]byte(`{"model":"m","max_tokens":3,"messages":[{"role":"user","content":"x"}]}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"a~b","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"a~b","content":"1"}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, tr := range []func([]byte, Options) ([]byte, error){AnthropicRequest, GeminiRequest} {
			if out, err := tr(in, Options{Model: "m", DefaultMaxTokens: 10}); err == nil && !json.Valid(out) {
				t.Fatalf("invalid JSON out: %s", out)
			}
		}
		for _, tr := range []func([]byte, int64) ([]byte, error){AnthropicResponse, GeminiResponse} {
			if out, err := tr(in, 1); err == nil && !json.Valid(out) {
				t.Fatalf("invalid JSON out: %s", out)
			}
		}
	})
}
