package proxy_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/metrics"
	"github.com/sluice-gateway/sluice/internal/proxy"
	"github.com/sluice-gateway/sluice/internal/route"
)

const benchChatBody = `{"model":"gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about gateways."}],"max_tokens":50}`

const benchReply = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Rivers through the gate"},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25}}`

// benchGateway returns a gateway handler in front of backend, with the access
// log on (to io.Discard) as in production.
func benchGateway(b *testing.B, backend http.Handler, kind string) http.Handler {
	return benchGatewayWith(b, backend, kind, false)
}

// benchGatewayWith is benchGateway; full adds what a production gateway
// usually has on: a token and request limit with prompt estimation, and
// metrics.
func benchGatewayWith(b *testing.B, backend http.Handler, kind string, full bool) http.Handler {
	b.Helper()
	srv := httptest.NewServer(backend)
	b.Cleanup(srv.Close)
	limits := ""
	if full {
		limits = `
    limits:
      - key: subscription
        tokens_per_minute: 1000000000000
        requests_per_minute: 1000000000
        estimate_prompt_tokens: true`
	}
	yaml := fmt.Sprintf(`
backends:
  - name: b
    kind: %s
    url: %s
    region: westeurope
    auth: { api_key: backend-key }
    deployments: { gpt-4o: gpt-4o-dep }
pools: [{ name: p, members: [{ backend: b }] }]
models: { gpt-4o: p }
products:
  - name: p
    models: [gpt-4o]%s
subscriptions: [{ name: s, product: p, keys: [client-key] }]
`, kind, srv.URL, limits)
	cfg, err := config.Parse("bench.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	table, err := route.Compile(cfg, route.Env{})
	if err != nil {
		b.Fatal(err)
	}
	opts := proxy.Options{Table: func() *route.Table { return table }, Logger: discardJSONLogger()}
	if full {
		opts.Metrics = metrics.New(metrics.Options{})
	}
	return proxy.New(opts)
}

func chatBackend(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Ratelimit-Remaining-Tokens", "1000")
	_, _ = io.WriteString(w, benchReply)
}

func streamBackend(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/event-stream")
	f := w.(http.Flusher)
	for i := 0; i < 100; i++ {
		_, _ = io.WriteString(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":" word"},"finish_reason":null}]}`+"\n\n")
		f.Flush()
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

// BenchmarkHandlerChat is the gateway's cost for a non-streaming chat
// request: ServeHTTP called directly, the backend over real loopback HTTP.
func BenchmarkHandlerChat(b *testing.B) {
	for _, kind := range []string{"azure-openai", "openai"} {
		b.Run(kind, func(b *testing.B) {
			h := benchGateway(b, http.HandlerFunc(chatBackend), kind)
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(benchChatBody))
				req.Header.Set("Api-Key", "client-key")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkHandlerChatFull is BenchmarkHandlerChat with a limit that
// estimates the prompt's tokens, and metrics.
func BenchmarkHandlerChatFull(b *testing.B) {
	h := benchGatewayWith(b, http.HandlerFunc(chatBackend), "azure-openai", true)
	chat := func() {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(benchChatBody))
		req.Header.Set("Api-Key", "client-key")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("X-Sluice-Tokens-Consumed") != "25" {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	chat() // builds the tokenizer's vocabulary, once per process
	b.ReportAllocs()
	for b.Loop() {
		chat()
	}
}

// BenchmarkHandlerStream relays a 100-event stream.
func BenchmarkHandlerStream(b *testing.B) {
	h := benchGateway(b, http.HandlerFunc(streamBackend), "azure-openai")
	body := strings.Replace(benchChatBody, `{"model"`, `{"stream":true,"model"`, 1)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/openai/deployments/gpt-4o/chat/completions", strings.NewReader(body))
		req.Header.Set("Api-Key", "client-key")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || !strings.HasSuffix(rec.Body.String(), "data: [DONE]\n\n") {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkEndToEnd is a client, the gateway and a backend, all over loopback
// HTTP, against the same client calling the backend directly: the difference
// is what the gateway adds.
func BenchmarkEndToEnd(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(chatBackend))
	b.Cleanup(backend.Close)
	gw := httptest.NewServer(benchGateway(b, http.HandlerFunc(chatBackend), "azure-openai"))
	b.Cleanup(gw.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for name, url := range map[string]string{
		"direct":  backend.URL + "/openai/deployments/gpt-4o-dep/chat/completions?api-version=2024-10-21",
		"gateway": gw.URL + "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", url, strings.NewReader(benchChatBody))
					req.Header.Set("Api-Key", "client-key")
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}

func discardJSONLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}
