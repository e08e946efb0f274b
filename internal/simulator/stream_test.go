package simulator

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/tokens"
)

// stream posts a streaming request and returns the events, failing on a
// broken stream.
func stream(t *testing.T, url, key, path, body string) (*http.Response, []event) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+path, strings.NewReader(body))
	req.Header.Set("api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events, err := readEvents(resp.Body)
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	return resp, events
}

func TestChatStream(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey, MeanCompletionTokens: 30})
	for _, tc := range []struct {
		name         string
		path         string
		includeUsage bool
		maxTokens    int
	}{
		{"azure with usage", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", true, 0},
		{"azure without usage", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", false, 0},
		{"azure cut by max_tokens", "/openai/deployments/gpt-4o/chat/completions", true, 4},
		{"openai with usage", "/v1/chat/completions", true, 0},
		{"openai without usage", "/v1/chat/completions", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Tell me a story."}]`
			if tc.includeUsage {
				body += `,"stream_options":{"include_usage":true}`
			}
			if tc.maxTokens > 0 {
				body += `,"max_tokens":4`
			}
			body += "}"
			resp, events := stream(t, srv.URL, testKey, tc.path, body)
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			azure := strings.HasPrefix(tc.path, "/openai/")
			if len(events) < 4 || events[len(events)-1].data != "[DONE]" {
				t.Fatalf("want at least 4 events ending in [DONE]; got %d: %v", len(events), events)
			}
			var chunks []map[string]any
			for _, e := range events[:len(events)-1] {
				var m map[string]any
				if e.name != "" || json.Unmarshal([]byte(e.data), &m) != nil {
					t.Fatalf("not a data-only JSON event: %+v", e)
				}
				chunks = append(chunks, m)
			}
			if azure {
				first := chunks[0]
				if path(first, "choices", 0) != nil || path(first, "prompt_filter_results", 0, "prompt_index") != 0.0 || str(first, "id") != "" {
					t.Errorf("Azure's first chunk should have no choices and the prompt filter results: %v", events[0].data)
				}
				chunks = chunks[1:]
			}
			if str(chunks[0], "choices", 0, "delta", "role") != "assistant" {
				t.Errorf("the first chunk should carry the role: %v", chunks[0])
			}
			var content strings.Builder
			i := 1
			for ; i < len(chunks) && path(chunks[i], "choices", 0, "finish_reason") == nil; i++ {
				if str(chunks[i], "object") != "chat.completion.chunk" {
					t.Errorf("object = %q", str(chunks[i], "object"))
				}
				content.WriteString(str(chunks[i], "choices", 0, "delta", "content"))
			}
			n := i - 1 // one chunk per token
			if got := tokens.Count("gpt-4o", content.String()); got != n {
				t.Errorf("%d content chunks carry %d tokens; want one token each: %q", n, got, content.String())
			}
			finish := str(chunks[i], "choices", 0, "finish_reason")
			if tc.maxTokens > 0 && (finish != "length" || n != tc.maxTokens) {
				t.Errorf("finish_reason = %q after %d tokens; want length after %d", finish, n, tc.maxTokens)
			} else if tc.maxTokens == 0 && finish != "stop" {
				t.Errorf("finish_reason = %q; want stop", finish)
			}
			rest := chunks[i+1:]
			if !tc.includeUsage {
				if len(rest) != 0 {
					t.Errorf("without include_usage want no chunk after the finish; got %v", rest)
				}
				if hasKey(chunks[i], "usage") {
					t.Errorf("without include_usage chunks should not mention usage: %v", chunks[i])
				}
				return
			}
			if len(rest) != 1 || path(rest[0], "choices", 0) != nil || num(rest[0], "usage", "completion_tokens") != n ||
				num(rest[0], "usage", "prompt_tokens") == 0 {
				t.Errorf("want one usage chunk with no choices and %d completion tokens; got %v", n, rest)
			}
			if !hasKey(chunks[i], "usage") || path(chunks[i], "usage") != nil {
				t.Errorf("with include_usage the other chunks carry usage: null; got %v", chunks[i])
			}
		})
	}
}

func TestCompletionsStream(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	_, events := stream(t, srv.URL, testKey, "/openai/deployments/gpt-4o/completions",
		`{"prompt":"Once","max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`)
	// prompt filter, 5 tokens, finish, usage, [DONE]
	if len(events) != 9 || events[8].data != "[DONE]" {
		t.Fatalf("got %d events; want 9: %v", len(events), events)
	}
	var text strings.Builder
	for _, e := range events[1:6] {
		var m map[string]any
		json.Unmarshal([]byte(e.data), &m)
		text.WriteString(str(m, "choices", 0, "text"))
	}
	var usage map[string]any
	json.Unmarshal([]byte(events[7].data), &usage)
	if tokens.Count("gpt-4o", text.String()) != 5 || num(usage, "usage", "completion_tokens") != 5 {
		t.Errorf("text %q and usage %v; want 5 tokens", text.String(), usage)
	}
}

func TestResponsesStream(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey, MeanCompletionTokens: 20})
	_, events := stream(t, srv.URL, testKey, "/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`)
	var names []string
	var deltas strings.Builder
	for i, e := range events {
		var m map[string]any
		if err := json.Unmarshal([]byte(e.data), &m); err != nil {
			t.Fatalf("event %d is not JSON: %v", i, e.data)
		}
		if str(m, "type") != e.name || num(m, "sequence_number") != i {
			t.Errorf("event %d: type %q, sequence_number %d; want %q, %d", i, str(m, "type"), num(m, "sequence_number"), e.name, i)
		}
		if e.name == "response.output_text.delta" {
			deltas.WriteString(str(m, "delta"))
			continue
		}
		names = append(names, e.name)
		if e.name == "response.completed" {
			n := num(m, "response", "usage", "output_tokens")
			if n != tokens.Count("gpt-4o", deltas.String()) || str(m, "response", "output", 0, "content", 0, "text") != deltas.String() ||
				num(m, "response", "usage", "input_tokens") == 0 {
				t.Errorf("completed event disagrees with the deltas %q: %s", deltas.String(), e.data)
			}
		}
	}
	want := "response.created response.in_progress response.output_item.added response.content_part.added " +
		"response.output_text.done response.content_part.done response.output_item.done response.completed"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("events (without deltas) = %s; want %s", got, want)
	}
}

// TestClientDisconnectStopsStream cancels a slow stream after two tokens and
// checks that generation stopped and was counted as truncated.
func TestClientDisconnectStopsStream(t *testing.T) {
	s, srv := serve(t, Options{APIKey: testKey, Latency: Latency{PerToken: 20 * time.Millisecond}, MeanCompletionTokens: 1000})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/openai/deployments/gpt-4o/chat/completions",
		strings.NewReader(`{"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("api-key", testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	var seen strings.Builder
	for strings.Count(seen.String(), `"delta":{"content":"`) < 3 {
		if _, err := resp.Body.Read(buf); err != nil {
			t.Fatal(err)
		}
		seen.Write(buf)
	}
	cancel()
	resp.Body.Close()
	srv.Close() // waits for the handler to return
	st := s.Stats().Deployments["gpt-4o"]
	if st.TruncatedStreams != 1 || st.CompletionTokens < 2 || st.CompletionTokens > 10 || st.Requests[200] != 1 {
		t.Errorf("stats = %+v; want one truncated stream of a few tokens out of 500 or more", st)
	}
}
