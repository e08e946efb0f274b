package translate

import (
	"bytes"
	"testing"
)

// events splits a provider stream into the data of its events.
func events(b *testing.B, name string) [][]byte {
	in, err := readFile(name)
	if err != nil {
		b.Fatal(err)
	}
	var out [][]byte
	for _, ev := range bytes.Split(bytes.ReplaceAll(in, []byte("\r\n"), []byte("\n")), []byte("\n\n")) {
		if d := EventData(nil, ev); len(d) > 0 {
			out = append(out, d)
		}
	}
	return out
}

func benchStream(b *testing.B, name string, newStream func() Stream) {
	evs := events(b, name)
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s := newStream()
		for _, ev := range evs {
			dst, _ = s.Event(dst[:0], ev)
		}
		dst, _ = s.End(dst[:0])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}

func BenchmarkAnthropicStream(b *testing.B) {
	benchStream(b, "anthropic/tool_runner_streaming_all_0.sse", func() Stream { return NewAnthropicStream(1, true) })
}

func BenchmarkGeminiStream(b *testing.B) {
	benchStream(b, "gemini/tool.sse", func() Stream { return NewGeminiStream(1, true) })
}

func BenchmarkAnthropicRequest(b *testing.B) {
	in := []byte(`{"model":"gpt-4o-mini","max_tokens":512,"stream":true,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Weather in SF in fahrenheit?"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Get weather","parameters":{"properties":{"city":{"type":"string"},"units":{"enum":["celsius","fahrenheit"],"type":"string"}},"required":["city"],"type":"object"}}}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AnthropicRequest(in, Options{Model: "claude"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGeminiRequest(b *testing.B) {
	in := []byte(`{"model":"gpt-4o-mini","max_tokens":512,"stream":true,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Weather in SF in fahrenheit?"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Get weather","parameters":{"properties":{"city":{"type":"string"},"units":{"enum":["celsius","fahrenheit"],"type":"string"}},"required":["city"],"type":"object"}}}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := GeminiRequest(in, Options{Model: "gemini"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAnthropicResponse(b *testing.B) {
	in, _ := readFile("anthropic/tool_runner_basic_0.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AnthropicResponse(in, 1); err != nil {
			b.Fatal(err)
		}
	}
}
