package tokens

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestEncodingFor(t *testing.T) {
	tests := []struct {
		model string
		want  Encoding
	}{
		{"gpt-4o", O200kBase},
		{"gpt-4o-2024-11-20", O200kBase},
		{"GPT-4o-PTU", O200kBase},
		{"gpt-4o-mini", O200kBase},
		{"chatgpt-4o-latest", O200kBase},
		{"gpt-4.1-nano", O200kBase},
		{"gpt-4-1-mini", O200kBase},
		{"gpt-4-1", O200kBase},
		{"gpt-41", O200kBase},
		{"gpt-4.5-preview", O200kBase},
		{"gpt-5", O200kBase},
		{"gpt-5-chat", O200kBase},
		{"o1-mini", O200kBase},
		{"o3", O200kBase},
		{"o4-mini", O200kBase},
		{"gpt-oss-120b", O200kBase},
		{"my-deployment", O200kBase},
		{"", O200kBase},
		{"gpt-4", Cl100kBase},
		{"gpt4", Cl100kBase},
		{"gpt-4-turbo", Cl100kBase},
		{"gpt-4-32k", Cl100kBase},
		{"gpt-4-1106-preview", Cl100kBase},
		{"gpt-4_eu", Cl100kBase},
		{"gpt-3.5-turbo", Cl100kBase},
		{"gpt-35-turbo-100k-token", Cl100kBase},
		{"gpt35turbo", Cl100kBase},
		{"ft:gpt-3.5-turbo:acme::abc", Cl100kBase},
		{"ft:gpt-4o-mini:acme::abc", O200kBase},
		{"text-embedding-3-small", Cl100kBase},
		{"text-embedding-ada-002", Cl100kBase},
		{"davinci-002", Cl100kBase},
	}
	for _, tt := range tests {
		if got := EncodingFor(tt.model); got != tt.want {
			t.Errorf("EncodingFor(%q) = %v; want %v", tt.model, got, tt.want)
		}
	}
}

func TestCount(t *testing.T) {
	tests := []struct {
		text       string
		o200k, c1k int
	}{
		{"", 0, 0},
		{"hello world", 2, 2},
		{"Hello world", 2, 2},
		{"This is a test.", 5, 5},
		{"tiktoken is great!", 6, 6},
		{"antidisestablishmentarianism", 6, 6},
		// tiktoken's README example; cl100k_base splits Japanese finely.
		{"お誕生日おめでとう", 8, 9},
	}
	for _, tt := range tests {
		if got := Count("gpt-4o", tt.text); got != tt.o200k {
			t.Errorf("Count(gpt-4o, %q) = %d; want %d", tt.text, got, tt.o200k)
		}
		if got := Count("gpt-4", tt.text); got != tt.c1k {
			t.Errorf("Count(gpt-4, %q) = %d; want %d", tt.text, got, tt.c1k)
		}
	}
}

// cookbook is the example conversation of OpenAI's cookbook "How to count
// tokens with tiktoken", whose printed results are 129 prompt tokens for
// gpt-3.5-turbo and gpt-4 and 124 for gpt-4o and gpt-4o-mini; the API
// reported the same numbers.
var cookbook = []struct{ role, name, content string }{
	{"system", "", "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
	{"system", "example_user", "New synergies will help drive top-line growth."},
	{"system", "example_assistant", "Things working well together will increase revenue."},
	{"system", "example_user", "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
	{"system", "example_assistant", "Let's talk later when we're less busy about how to do better."},
	{"user", "", "This late pivot means we don't have time to boil the ocean for the client deliverable."},
}

func TestCountChatCookbook(t *testing.T) {
	var msgs []Message
	var raw []map[string]string
	for _, m := range cookbook {
		msgs = append(msgs, Message{Role: m.role, Name: m.name, Content: []string{m.content}})
		r := map[string]string{"role": m.role, "content": m.content}
		if m.name != "" {
			r["name"] = m.name
		}
		raw = append(raw, r)
	}
	body, err := json.Marshal(map[string]any{"model": "x", "messages": raw})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		model string
		want  int
	}{
		{"gpt-3.5-turbo-0613", 129},
		{"gpt-4-0613", 129},
		{"gpt-4o", 124},
		{"gpt-4o-mini", 124},
	} {
		if got := CountChat(tt.model, msgs); got != tt.want {
			t.Errorf("CountChat(%s, cookbook) = %d; want %d", tt.model, got, tt.want)
		}
		got, err := CountChatJSON(tt.model, body)
		if err != nil || got != tt.want {
			t.Errorf("CountChatJSON(%s, cookbook) = %d, %v; want %d, nil", tt.model, got, err, tt.want)
		}
	}
}

func TestCountChatJSON(t *testing.T) {
	// "hello world" is 2 tokens and "user", "assistant", "system", "tool" and
	// "get_weather" are 1, 1, 1, 1 and 2 in o200k_base, so each case's count
	// can be checked by hand: 3 per message, plus fields, plus 3 priming.
	tests := []struct {
		name string
		body string
		want int
	}{
		{"string content", `{"messages":[{"role":"user","content":"hello world"}]}`, 3 + 1 + 2 + 3},
		{"name", `{"messages":[{"role":"user","name":"bob","content":"hello world"}]}`, 3 + 1 + 2 + 1 + 1 + 3},
		{"text parts", `{"messages":[{"role":"user","content":[{"type":"text","text":"hello world"},{"type":"text","text":"hello world"}]}]}`, 3 + 1 + 4 + 3},
		{"image part", `{"messages":[{"role":"user","content":[{"type":"text","text":"hello world"},{"type":"image_url","image_url":{"url":"https://x/y.png","detail":"low"}}]}]}`, 3 + 1 + 2 + ImageTokens + 3},
		{"null content with tool call", `{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"hello world"}}]}]}`, 3 + 1 + 2 + 2 + 3},
		{"refusal", `{"messages":[{"role":"assistant","refusal":"hello world"}]}`, 3 + 1 + 2 + 3},
		{"no messages", `{"messages":[]}`, 3},
		{"unknown part ignored", `{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA"}}]}]}`, 3 + 1 + 3},
		{"escapes decoded", `{"messages":[{"role":"user","content":"hello\u0020world"}]}`, 3 + 1 + 2 + 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CountChatJSON("gpt-4o", []byte(tt.body))
			if err != nil || got != tt.want {
				t.Errorf("CountChatJSON = %d, %v; want %d, nil", got, err, tt.want)
			}
		})
	}
}

func TestCountInvalidUTF8(t *testing.T) {
	// A client can send any bytes; they must be counted, not crash the counter.
	for _, model := range []string{"gpt-4o", "gpt-4"} {
		if got := Count(model, "\xff\xfe abc \xc3"); got < 2 {
			t.Errorf("Count(%s, invalid UTF-8) = %d; want at least 2", model, got)
		}
	}
}

func TestCountChatJSONErrors(t *testing.T) {
	for _, body := range []string{
		``, `{`, `[]`, `{"messages":null}`, `{"messages":{}}`, `{"model":"gpt-4o"}`,
		`{"messages":[{"role":"user","content":42}]}`,
		`{"messages":[{"role":"user","content":[7]}]}`,
		`{"messages":[1]}`,
	} {
		if n, err := CountChatJSON("gpt-4o", []byte(body)); err == nil {
			t.Errorf("CountChatJSON(%s) = %d, nil; want an error", body, n)
		}
	}
}

func TestCountChatJSONDeepNesting(t *testing.T) {
	// gjson.Valid alone dies of "fatal error: stack overflow" at this depth
	// (a 16 MiB body), which no recover can catch.
	body := `{"messages":` + strings.Repeat("[", 1<<23) + strings.Repeat("]", 1<<23) + `}`
	if _, err := CountChatJSON("gpt-4o", []byte(body)); err != ErrInvalidJSON {
		t.Errorf("err = %v; want ErrInvalidJSON", err)
	}
	ok := `{"messages":[{"role":"user","content":"[[[{{\"\\"}]}`
	if _, err := CountChatJSON("gpt-4o", []byte(ok)); err != nil {
		t.Errorf("brackets and escaped quotes inside strings must not count as nesting: %v", err)
	}
}

func TestCountConcurrent(t *testing.T) {
	text := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20)
	want := [2]int{Count("gpt-4o", text), Count("gpt-4", text)}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			model := []string{"gpt-4o", "gpt-4"}[i%2]
			for range 50 {
				if got := Count(model, text); got != want[i%2] {
					t.Errorf("Count(%s) = %d; want %d", model, got, want[i%2])
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzCountChatJSON(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"hello world"}]}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"}]}]}`))
	f.Add([]byte(`{"messages":[{"role":"assistant","content":null,"tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}]}`))
	f.Add([]byte(`{"messages":[{"content":"\ud800\udc00\xff"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := CountChatJSON("gpt-4o", body)
		if err == nil && n < replyPriming {
			t.Errorf("CountChatJSON = %d, nil; want at least %d", n, replyPriming)
		}
		// On any body it does not panic; on a valid one it counts alike.
		n2, err2 := CountValidChatJSON("gpt-4o", body)
		if !errors.Is(err, ErrInvalidJSON) && (n2 != n || (err2 == nil) != (err == nil)) {
			t.Errorf("CountValidChatJSON = %d, %v; CountChatJSON = %d, %v", n2, err2, n, err)
		}
	})
}

func BenchmarkCount(b *testing.B) {
	for _, size := range []int{10, 100, 1000} {
		text := strings.Repeat("The quick brown fox jumps over the lazy dog. ", size/10)
		for _, model := range []string{"gpt-4o", "gpt-4"} {
			b.Run(fmt.Sprintf("%s/%dtok", model, Count(model, text)), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(text)))
				for b.Loop() {
					Count(model, text)
				}
			})
		}
	}
}

func BenchmarkCountChatJSON(b *testing.B) {
	var msgs []map[string]string
	for _, m := range cookbook {
		msgs = append(msgs, map[string]string{"role": m.role, "content": m.content})
	}
	body, _ := json.Marshal(map[string]any{"model": "gpt-4o", "max_tokens": 100, "messages": msgs})
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := CountChatJSON("gpt-4o", body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCountLongWord counts one 64 KiB run of letters, a single piece
// that byte-pair encoding must merge: it shows the merge is not quadratic.
func BenchmarkCountLongWord(b *testing.B) {
	var sb strings.Builder
	for i := range 1 << 16 {
		sb.WriteByte("abcdefghijklmnopqrstuvwxyz"[(i*7+i/3)%26])
	}
	text := sb.String()
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		Count("gpt-4o", text)
	}
}
