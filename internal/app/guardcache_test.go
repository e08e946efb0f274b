package app

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// The guardrails and the cache together: the cache keys and stores masked
// text, so two callers whose prompts differ only in personal data share an
// answer, and each gets its own values back, never the other's.
const guardCacheConfig = `
server: { listen: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
usage: { store: "sqlite:%[1]s/usage.db", journal: "%[1]s/usage.journal" }
cache: { store: memory }
backends:
  - name: echo
    kind: openai
    url: %[2]s
    auth: { api_key: backend-key }
    deployments: { gpt-4o: gpt-4o }
pools: [{ name: chat, members: [{ backend: echo }] }]
models: { gpt-4o: chat }
content_safety:
  - name: safety
    url: %[3]s
    auth: { api_key: safety-key }
products:
  - name: masked
    models: [gpt-4o]
    pii: { entities: [Email], restore: true }
    content_safety: { service: safety, completions: { mode: window, window_size: 30, window_overlap: 5 } }
    cache: { vary_by: [product], exact: { ttl: 1h } }
subscriptions:
  - { name: alice, product: masked, keys: [key-alice] }
  - { name: bob, product: masked, keys: [key-bob] }
`

func TestGuardBeforeCache(t *testing.T) {
	e := startGuardConfig(t, guardCacheConfig)
	ask := func(key, mail string, stream bool) (content, cache string) {
		t.Helper()
		var resp *http.Response
		c := e.client(key, option.WithResponseInto(&resp))
		prompt := "Write to " + mail + " today"
		if stream {
			s := c.Chat.Completions.NewStreaming(context.Background(), chat(prompt))
			var acc openai.ChatCompletionAccumulator
			for s.Next() {
				acc.AddChunk(s.Current())
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			content = acc.Choices[0].Message.Content
		} else {
			out, err := c.Chat.Completions.New(context.Background(), chat(prompt))
			if err != nil {
				t.Fatal(err)
			}
			content = out.Choices[0].Message.Content
		}
		if resp != nil {
			cache = resp.Header.Get("x-sluice-cache")
		}
		return content, cache
	}
	for _, stream := range []bool{false, true} {
		calls := len(e.backend.seen())
		a, ca := ask("key-alice", "alice@example.com", stream)
		b, cb := ask("key-bob", "bob@example.com", stream)
		if a != "You said: Write to alice@example.com today" || ca != "miss" {
			t.Errorf("stream %v: alice got %q (%s); want her own address, a miss", stream, a, ca)
		}
		if b != "You said: Write to bob@example.com today" || cb != "hit-exact" {
			t.Errorf("stream %v: bob got %q (%s); want his own address from the cache", stream, b, cb)
		}
		if strings.Contains(b, "alice") {
			t.Errorf("stream %v: bob got alice's address: %q", stream, b)
		}
		if got := len(e.backend.seen()) - calls; got != 1 {
			t.Errorf("stream %v: the backend got %d calls; want 1", stream, got)
		}
	}
	for _, body := range e.backend.seen() {
		if strings.Contains(body, "@example.com") {
			t.Errorf("the backend saw an address: %s", body)
		}
	}
}
