package simulator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/tokens"
)

func TestChatUsageIsExact(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey, Deployments: map[string]Deployment{
		"gpt-4o": {Model: "gpt-4o-2024-11-20"}, "gpt-35": {Model: "gpt-35-turbo"},
	}})
	for _, dep := range []string{"gpt-4o", "gpt-35"} {
		for i, body := range []string{
			chatBody,
			`{"messages":[{"role":"user","name":"bob","content":[{"type":"text","text":"Describe this."},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`,
			`{"messages":[{"role":"user","content":"What's the weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]},{"role":"tool","tool_call_id":"c","content":"Sunny"}]}`,
		} {
			t.Run(fmt.Sprintf("%s/%d", dep, i), func(t *testing.T) {
				resp, b := post(t, srv, "/openai/deployments/"+dep+"/chat/completions?api-version=2024-10-21", body)
				if resp.StatusCode != 200 {
					t.Fatalf("status = %d\n%s", resp.StatusCode, b)
				}
				m := decode(t, b)
				model := str(m, "model")
				content := str(m, "choices", 0, "message", "content")
				wantPrompt, err := tokens.CountChatJSON(model, []byte(body))
				if err != nil {
					t.Fatal(err)
				}
				prompt, completion, total := num(m, "usage", "prompt_tokens"), num(m, "usage", "completion_tokens"), num(m, "usage", "total_tokens")
				if prompt != wantPrompt {
					t.Errorf("prompt_tokens = %d; want %d", prompt, wantPrompt)
				}
				if got := tokens.Count(model, content); completion != got || completion == 0 {
					t.Errorf("completion_tokens = %d; the content is %d tokens: %q", completion, got, content)
				}
				if total != prompt+completion {
					t.Errorf("total_tokens = %d; want %d", total, prompt+completion)
				}
			})
		}
	}
}

func TestChatShape(t *testing.T) {
	now := time.Unix(1735000000, 0)
	_, srv := serve(t, Options{APIKey: testKey, Now: func() time.Time { return now }})
	resp, b := post(t, srv, "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", chatBody)
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d\n%s", resp.StatusCode, b)
	}
	m := decode(t, b)
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"object", str(m, "object"), "chat.completion"},
		{"model", str(m, "model"), "gpt-4o-2024-11-20"},
		{"created", num(m, "created"), 1735000000},
		{"id prefix", strings.HasPrefix(str(m, "id"), "chatcmpl-"), true},
		{"fingerprint prefix", strings.HasPrefix(str(m, "system_fingerprint"), "fp_"), true},
		{"role", str(m, "choices", 0, "message", "role"), "assistant"},
		{"refusal", path(m, "choices", 0, "message", "refusal"), nil},
		{"logprobs present", hasKey(path(m, "choices", 0), "logprobs"), true},
		{"choice filter", path(m, "choices", 0, "content_filter_results", "hate", "severity"), "safe"},
		{"prompt filter", path(m, "prompt_filter_results", 0, "content_filter_results", "jailbreak", "detected"), false},
		{"cached tokens", path(m, "usage", "prompt_tokens_details", "cached_tokens"), 0.0},
		{"reasoning tokens", path(m, "usage", "completion_tokens_details", "reasoning_tokens"), 0.0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
	// OpenAI's own API has no content filter annotations.
	_, b = do(t, srv, "POST", "/v1/chat/completions", strings.Replace(chatBody, "{", `{"model":"gpt-4o",`, 1),
		map[string]string{"Authorization": "Bearer " + testKey})
	if m := decode(t, b); hasKey(m, "prompt_filter_results") || hasKey(path(m, "choices", 0), "content_filter_results") {
		t.Errorf("/v1 reply carries Azure's filter results: %s", b)
	}
}

func hasKey(v any, k string) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	_, ok = m[k]
	return ok
}

func TestMaxTokens(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey, MeanCompletionTokens: 100})
	for _, tc := range []struct {
		name, param string
		limit       int
		finish      string
	}{
		{"max_tokens cuts", "max_tokens", 5, "length"},
		{"max_completion_tokens cuts", "max_completion_tokens", 7, "length"},
		{"a high limit lets the reply stop", "max_tokens", 1000, "stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"messages":[{"role":"user","content":"hi"}],"%s":%d}`, tc.param, tc.limit)
			_, b := post(t, srv, "/openai/deployments/gpt-4o/chat/completions", body)
			m := decode(t, b)
			n := num(m, "usage", "completion_tokens")
			if got := str(m, "choices", 0, "finish_reason"); got != tc.finish {
				t.Errorf("finish_reason = %q; want %q", got, tc.finish)
			}
			if tc.finish == "length" && n != tc.limit {
				t.Errorf("completion_tokens = %d; want the limit %d", n, tc.limit)
			}
			if tc.finish == "stop" && (n < 50 || n > 150) {
				t.Errorf("completion_tokens = %d; want 50 to 150 for a mean of 100", n)
			}
		})
	}
}

func TestSeedMakesRepliesReproducible(t *testing.T) {
	reply := func(seed int64) []string {
		_, srv := serve(t, Options{Seed: seed})
		var out []string
		for range 3 {
			_, b := post(t, srv, "/openai/deployments/gpt-4o/chat/completions", chatBody)
			out = append(out, str(decode(t, b), "choices", 0, "message", "content"))
		}
		return out
	}
	a, b, c := reply(1), reply(1), reply(2)
	if strings.Join(a, "|") != strings.Join(b, "|") {
		t.Errorf("the same seed gave different replies:\n%q\n%q", a, b)
	}
	if a[0] == a[1] || a[0] == c[0] {
		t.Errorf("replies do not vary between requests or seeds: %q, %q", a, c)
	}
}

func TestCompletionsAndResponses(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	t.Run("completions", func(t *testing.T) {
		_, b := post(t, srv, "/openai/deployments/gpt-4o/completions", `{"prompt":"Once upon a time","max_tokens":10}`)
		m := decode(t, b)
		text := str(m, "choices", 0, "text")
		if str(m, "object") != "text_completion" || num(m, "usage", "completion_tokens") != tokens.Count("gpt-4o", text) ||
			num(m, "usage", "prompt_tokens") != tokens.Count("gpt-4o", "Once upon a time") {
			t.Errorf("unexpected completion: %s", b)
		}
	})
	t.Run("completions default to 16 tokens", func(t *testing.T) {
		_, b := post(t, srv, "/openai/v1/completions", `{"model":"gpt-4o","prompt":["a","b"]}`)
		m := decode(t, b)
		if num(m, "usage", "completion_tokens") != 16 || str(m, "choices", 0, "finish_reason") != "length" ||
			num(m, "usage", "prompt_tokens") != 2 {
			t.Errorf("unexpected completion: %s", b)
		}
	})
	t.Run("responses", func(t *testing.T) {
		body := `{"model":"gpt-4o","input":"Say hello.","instructions":"Be terse.","max_output_tokens":8}`
		_, b := post(t, srv, "/v1/responses", body)
		m := decode(t, b)
		text := str(m, "output", 0, "content", 0, "text")
		wantIn := tokens.CountChat("gpt-4o", []tokens.Message{{Role: "developer", Content: []string{"Be terse."}}, {Role: "user", Content: []string{"Say hello."}}})
		if str(m, "object") != "response" || !strings.HasPrefix(str(m, "id"), "resp_") || str(m, "status") != "incomplete" ||
			str(m, "incomplete_details", "reason") != "max_output_tokens" || num(m, "usage", "output_tokens") != 8 ||
			tokens.Count("gpt-4o", text) != 8 || num(m, "usage", "input_tokens") != wantIn ||
			num(m, "usage", "total_tokens") != 8+wantIn {
			t.Errorf("unexpected response (want %d input tokens): %s", wantIn, b)
		}
	})
	t.Run("responses with message input", func(t *testing.T) {
		body := `{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":"hello world"}]}]}`
		_, b := post(t, srv, "/openai/v1/responses", body)
		m := decode(t, b)
		if str(m, "status") != "completed" || num(m, "usage", "input_tokens") != 3+1+2+3 {
			t.Errorf("unexpected response: %s", b)
		}
	})
}
