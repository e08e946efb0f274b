package simulator

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The benchmarks call ServeHTTP directly, at zero latency, to measure the
// simulator's own cost per request: it must stay small next to a gateway's.

func benchmarkRequest(b *testing.B, path, body string) {
	s := New(Options{APIKey: testKey})
	req := httptest.NewRequest("POST", path, nil)
	req.Header.Set("api-key", testKey)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req.Body = io.NopCloser(strings.NewReader(body))
		clear(w.h)
		s.ServeHTTP(w, req)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
}

func BenchmarkChat(b *testing.B) {
	benchmarkRequest(b, chatPath, `{"messages":[{"role":"system","content":"You are a helpful assistant."},`+
		`{"role":"user","content":"Summarise the plot of Hamlet in three sentences."}],"max_tokens":100}`)
}

func BenchmarkChatStream(b *testing.B) {
	benchmarkRequest(b, chatPath, `{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You are a helpful assistant."},`+
		`{"role":"user","content":"Summarise the plot of Hamlet in three sentences."}],"max_tokens":100}`)
}

const benchTools = `"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather forecast for a city.",` +
	`"parameters":{"type":"object","properties":{"city":{"type":"string","description":"The city"},` +
	`"unit":{"type":"string","enum":["celsius","fahrenheit"]},"days":{"type":"integer","minimum":1,"maximum":7}},` +
	`"required":["city","unit","days"],"additionalProperties":false},"strict":true}}]`

func BenchmarkChatToolCall(b *testing.B) {
	benchmarkRequest(b, chatPath, `{"messages":[{"role":"user","content":"What will the weather be in Oslo?"}],`+benchTools+`}`)
}

func BenchmarkChatToolCallStream(b *testing.B) {
	benchmarkRequest(b, chatPath, `{"stream":true,"stream_options":{"include_usage":true},`+
		`"messages":[{"role":"user","content":"What will the weather be in Oslo?"}],`+benchTools+`}`)
}

func BenchmarkEmbeddings(b *testing.B) {
	benchmarkRequest(b, "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21",
		`{"input":"The food was delicious and the waiter was very friendly."}`)
}

func BenchmarkEmbeddingsBase64(b *testing.B) {
	benchmarkRequest(b, "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21",
		`{"input":"The food was delicious and the waiter was very friendly.","encoding_format":"base64"}`)
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) Flush()                      {}
