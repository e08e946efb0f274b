package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/sluice-gateway/sluice/internal/tokens"
)

// sdkClients returns the official OpenAI Go SDK configured for the gateway in
// OpenAI mode and in Azure mode, as a user would configure it.
func sdkClients(f *fixture, key string) map[string]openai.Client {
	return map[string]openai.Client{
		"openai": openai.NewClient(option.WithBaseURL(f.url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0)),
		"azure": openai.NewClient(azure.WithEndpoint(f.url, "2024-10-21"), azure.WithAPIKey(key),
			azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0)),
	}
}

func chatParams(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:     model,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say something about rivers.")},
		MaxTokens: openai.Int(40),
	}
}

func TestSDKChat(t *testing.T) {
	f := newFixture(t)
	for mode, client := range sdkClients(f, fxAlphaKey) {
		t.Run(mode, func(t *testing.T) {
			var resp *http.Response
			c, err := client.Chat.Completions.New(context.Background(), chatParams("gpt-4o"), option.WithResponseInto(&resp))
			if err != nil {
				t.Fatalf("chat: %v", err)
			}
			if len(c.Choices) != 1 || c.Choices[0].Message.Content == "" {
				t.Fatalf("choices = %+v; want one with content", c.Choices)
			}
			content := c.Choices[0].Message.Content
			if got, want := c.Usage.CompletionTokens, int64(tokens.Count("gpt-4o", content)); got != want || got > 40 {
				t.Errorf("completion_tokens = %d; want %d (the content's real count) and at most max_tokens 40", got, want)
			}
			if got := resp.Header.Get("X-Ms-Region"); got != "swedencentral" {
				t.Errorf("x-ms-region = %q; want swedencentral (the pool's first member)", got)
			}
			if got := resp.Header.Get("X-Sluice-Backend"); got != "ptu-swedencentral" {
				t.Errorf("x-sluice-backend = %q; want ptu-swedencentral", got)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no x-request-id on the response")
			}
		})
	}
	// What reached the backends: the backend's own key, never the client's.
	for _, r := range f.seen.all() {
		if r.header.Get("Api-Key") != fxPTUKey {
			t.Errorf("backend %s got api-key %q; want the PTU backend key", r.backend, r.header.Get("Api-Key"))
		}
		if r.path != "/openai/deployments/gpt-4o-ptu/chat/completions" || r.query != "api-version=2024-10-21" {
			t.Errorf("backend got %s?%s; want the PTU deployment path", r.path, r.query)
		}
		if strings.Contains(r.body+r.query, fxAlphaKey) || r.header.Get("Authorization") != "" {
			t.Errorf("the client's key reached the backend: %+v", r)
		}
	}
}

func TestSDKChatStreaming(t *testing.T) {
	f := newFixture(t)
	for mode, client := range sdkClients(f, fxAlphaKey) {
		for _, includeUsage := range []bool{false, true} {
			name := mode + map[bool]string{false: "", true: "+usage"}[includeUsage]
			t.Run(name, func(t *testing.T) {
				params := chatParams("gpt-4o")
				if includeUsage {
					params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
				}
				var resp *http.Response
				stream := client.Chat.Completions.NewStreaming(context.Background(), params, option.WithResponseInto(&resp))
				var acc openai.ChatCompletionAccumulator
				chunks := 0
				for stream.Next() {
					acc.AddChunk(stream.Current())
					chunks++
				}
				if err := stream.Err(); err != nil {
					t.Fatalf("stream: %v", err)
				}
				content := acc.Choices[0].Message.Content
				n := tokens.Count("gpt-4o", content)
				if chunks < n || n == 0 {
					t.Errorf("%d chunks for %d tokens; want at least one chunk per token", chunks, n)
				}
				if includeUsage {
					if acc.Usage.CompletionTokens != int64(n) {
						t.Errorf("usage completion_tokens = %d; want %d", acc.Usage.CompletionTokens, n)
					}
				} else if acc.Usage.TotalTokens != 0 {
					t.Errorf("usage = %+v; want none when the client did not ask for it", acc.Usage)
				}
				if got := resp.Header.Get("X-Ms-Region"); got != "swedencentral" {
					t.Errorf("x-ms-region = %q; want swedencentral", got)
				}
			})
		}
	}
}

func TestSDKEmbeddings(t *testing.T) {
	f := newFixture(t)
	for mode, client := range sdkClients(f, fxAlphaKey) {
		t.Run(mode, func(t *testing.T) {
			var resp *http.Response
			e, err := client.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
				Model: "text-embedding-3-small",
				Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"the quick brown fox", "a quick brown fox"}},
			}, option.WithResponseInto(&resp))
			if err != nil {
				t.Fatalf("embeddings: %v", err)
			}
			if len(e.Data) != 2 || len(e.Data[0].Embedding) != 1536 {
				t.Fatalf("got %d vectors of %d; want 2 of 1536", len(e.Data), len(e.Data[0].Embedding))
			}
			if e.Usage.PromptTokens == 0 {
				t.Errorf("usage = %+v; want prompt tokens", e.Usage)
			}
			if got := resp.Header.Get("X-Ms-Region"); got != "westeurope" {
				t.Errorf("x-ms-region = %q; want westeurope", got)
			}
		})
	}
}

// TestSDKOpenAIKindBackend goes through a backend of kind openai: the SDK
// asks for gpt-4o-fr, the backend must get /v1/chat/completions with its own
// model name and a bearer token.
func TestSDKOpenAIKindBackend(t *testing.T) {
	f := newFixture(t)
	client := sdkClients(f, fxAlphaKey)["openai"]
	var resp *http.Response
	if _, err := client.Chat.Completions.New(context.Background(), chatParams("gpt-4o-fr"), option.WithResponseInto(&resp)); err != nil {
		t.Fatalf("chat: %v", err)
	}
	if got := resp.Header.Get("X-Ms-Region"); got != "francecentral" {
		t.Errorf("x-ms-region = %q; want francecentral", got)
	}
	reqs := f.seen.all()
	if len(reqs) != 1 {
		t.Fatalf("backends saw %d requests; want 1", len(reqs))
	}
	r := reqs[0]
	if r.backend != "payg-francecentral" || r.path != "/v1/chat/completions" || r.query != "" {
		t.Errorf("backend %s got %s?%s; want payg-francecentral /v1/chat/completions", r.backend, r.path, r.query)
	}
	if !strings.Contains(r.body, `"model":"gpt-4o"`) || strings.Contains(r.body, "gpt-4o-fr") {
		t.Errorf("backend body %s; want model rewritten to the deployment name gpt-4o", r.body)
	}
	if r.header.Get("Authorization") != "Bearer "+fxFranceKey || r.header.Get("Api-Key") != "" {
		t.Errorf("backend auth headers = %q / %q; want only its bearer token", r.header.Get("Authorization"), r.header.Get("Api-Key"))
	}
}

func TestSDKErrors(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(`  - name: team-chat
    product: chat-only
    keys: ["` + fxBetaKey + `"]
`)
	if err := f.gw.Reload(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key, model string
		status           int
		code             string
	}{
		{"wrong key", "sk-wrong", "gpt-4o", 401, "invalid_api_key"},
		{"model not in product", fxBetaKey, "gpt-4o-fr", 403, "model_not_allowed"},
		{"unknown model", fxAlphaKey, "gpt-9", 404, "model_not_found"},
	}
	for _, tt := range tests {
		for mode, client := range sdkClients(f, tt.key) {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				_, err := client.Chat.Completions.New(context.Background(), chatParams(tt.model))
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) {
					t.Fatalf("err = %v; want an *openai.Error", err)
				}
				if apiErr.StatusCode != tt.status || apiErr.Code != tt.code || apiErr.Message == "" {
					t.Errorf("got %d %q %q; want %d %q", apiErr.StatusCode, apiErr.Code, apiErr.Message, tt.status, tt.code)
				}
			})
		}
	}
	t.Run("backend unreachable", func(t *testing.T) {
		f.simURLs["ptu-swedencentral"] = "http://127.0.0.1:1" // nothing listens on port 1
		f.writeConfig("")
		if err := f.gw.Reload(); err != nil {
			t.Fatal(err)
		}
		client := sdkClients(f, fxAlphaKey)["openai"]
		_, err := client.Chat.Completions.New(context.Background(), chatParams("gpt-4o"))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 502 || apiErr.Code != "backend_unreachable" {
			t.Fatalf("err = %v; want 502 backend_unreachable", err)
		}
	})
}

// wireTap records every response the SDK receives, headers and body.
type wireTap struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *wireTap) middleware(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	resp, err := next(req)
	if err != nil {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, vs := range resp.Header {
		w.buf.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	w.buf.Write(body)
	return resp, nil
}

func (w *wireTap) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestNoKeyLeaks drives success and failure paths, streaming and not, and
// checks that no backend key appears in any response or log line and that no
// client key reaches a backend.
func TestNoKeyLeaks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tap := &wireTap{}
	for _, key := range []string{fxAlphaKey, "sk-wrong"} {
		for _, client := range sdkClients(f, key) {
			mw := option.WithMiddleware(tap.middleware)
			_, _ = client.Chat.Completions.New(ctx, chatParams("gpt-4o"), mw)
			s := client.Chat.Completions.NewStreaming(ctx, chatParams("gpt-4o"), mw)
			for s.Next() {
			}
			_, _ = client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "text-embedding-3-small",
				Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")}}, mw)
			_, _ = client.Chat.Completions.New(ctx, chatParams("gpt-9"), mw)
		}
	}
	seen := tap.String()
	if !strings.Contains(seen, "chat.completion.chunk") || !strings.Contains(seen, "invalid_api_key") {
		t.Fatalf("the tap saw no stream or no error; the test drives nothing:\n%s", seen)
	}
	req, _ := http.NewRequest("GET", f.admin+"/admin/config", nil)
	req.Header.Set("Api-Key", fxAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	adminConfig, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(adminConfig), "[REDACTED]") {
		t.Errorf("/admin/config = %s; want secrets shown as [REDACTED]", adminConfig)
	}
	logs := f.logs.String()
	if n := strings.Count(logs, `"msg":"request"`); n < 16 {
		t.Errorf("logs have %d request lines; want one per request (16)", n)
	}
	for name, secret := range map[string]string{"ptu": fxPTUKey, "west": fxWestKey, "france": fxFranceKey, "alpha": fxAlphaKey, "admin": fxAdminKey} {
		if strings.Contains(logs, secret) {
			t.Errorf("the %s key appears in the logs", name)
		}
		if strings.Contains(string(adminConfig), secret) {
			t.Errorf("the %s key appears in /admin/config", name)
		}
		if name != "alpha" && strings.Contains(seen, secret) {
			t.Errorf("the %s key appears in a response", name)
		}
	}
	for _, r := range f.seen.all() {
		all := r.body + r.query + r.path
		for _, vs := range r.header {
			all += strings.Join(vs, " ")
		}
		if strings.Contains(all, fxAlphaKey) {
			t.Errorf("the client key reached backend %s", r.backend)
		}
	}
}
