package simulator

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

var fuzzPaths = []string{
	"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
	"/openai/deployments/gpt-4o/completions",
	"/openai/deployments/text-embedding-3-small/embeddings",
	"/openai/v1/responses",
	"/v1/chat/completions",
	"/v1/embeddings",
	"/sim/config",
}

// FuzzServeHTTP sends arbitrary bodies to every API: the simulator must
// answer each with a status and, for non-streams, a JSON body, and never
// panic.
func FuzzServeHTTP(f *testing.F) {
	for _, b := range []string{
		chatBody,
		`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url"}]}]}`,
		`{"prompt":[[1,2],[3]],"max_tokens":3,"stream":true}`,
		`{"model":"text-embedding-3-small","input":["a","b"],"dimensions":8,"encoding_format":"base64"}`,
		`{"model":"gpt-4o","input":[{"role":"user","content":"hi"}],"instructions":"x","max_output_tokens":2,"stream":true}`,
		`{"error_rate":0,"added_latency":"0s"}`,
		`{"messages":[{"role":"user","content":"\u0000\ud800"}],"max_tokens":1e3}`,
		`{"input":[1,"a"],"dimensions":-1}`, `null`, `[]`, `"x"`, `{"max_tokens":99999999999999999999}`,
		`{"model":"gpt-4o","messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather",` +
			`"parameters":{"type":"object","properties":{"a":{"type":"array","items":{"$ref":"#"}}},"required":["a"]}}}],"stream":true}`,
		`{"model":"gpt-4o","input":"x","tools":[{"type":"function","name":"f","parameters":{"anyOf":[{"type":"string","minLength":9}]}}],` +
			`"tool_choice":"required","max_output_tokens":3,"stream":true,"text":{"format":{"type":"json_object"}}}`,
		`{"messages":[{"role":"user","content":"json"}],"response_format":{"type":"json_schema","json_schema":{"name":"x",` +
			`"schema":{"type":"object","properties":{"n":{"type":"number","minimum":1e308}}}}},"max_tokens":2}`,
	} {
		for i := range fuzzPaths {
			f.Add(uint8(i), b)
		}
	}
	s := New(Options{MeanCompletionTokens: 8})
	f.Fuzz(func(t *testing.T, pathIndex uint8, body string) {
		p := fuzzPaths[int(pathIndex)%len(fuzzPaths)]
		method := "POST"
		if strings.HasPrefix(p, "/sim/") {
			method = "PATCH"
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(method, p, strings.NewReader(body)))
		if method == "PATCH" {
			s.SetFaults(Faults{}) // keep hangs and errors out of later inputs
		}
		if rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("invalid JSON reply: %s", rec.Body.Bytes())
		}
		if rec.Code == 200 && strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream") {
			events, err := readEvents(rec.Body)
			if err != nil || len(events) == 0 {
				t.Fatalf("broken stream: %v", err)
			}
			for _, e := range events {
				if e.data != "[DONE]" && !json.Valid([]byte(e.data)) {
					t.Fatalf("invalid JSON event: %s", e.data)
				}
			}
		}
	})
}
