package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/proxy"
	"github.com/sluice-gateway/sluice/internal/route"
)

const (
	alphaKey   = "sk-alpha-test-key"
	betaKey    = "sk-beta-test-key"
	azureKey   = "azure-backend-secret"
	openaiKey  = "openai-backend-secret"
	configYAML = `
server:
  max_request_bytes: 2048
backends:
  - name: azure-a
    kind: azure-openai
    url: %s
    region: swedencentral
    auth: { api_key: ` + azureKey + ` }
    deployments: { gpt-4o: gpt-4o-ptu, text-embedding-3-small: emb-small }
    timeout: %s
  - name: openai-b
    kind: openai
    url: %s
    region: francecentral
    auth: { api_key: ` + openaiKey + ` }
    deployments: { gpt-4o-via-openai: gpt-4o-2024-11-20 }
    timeout: %s
pools:
  - name: azure
    members: [{ backend: azure-a }]
  - name: openai
    members: [{ backend: openai-b }]
models:
  gpt-4o: azure
  text-embedding-3-small: azure
  gpt-4o-via-openai: openai
products:
  - name: standard
    models: [gpt-4o, gpt-4o-via-openai]
  - name: embeddings-only
    models: [text-embedding-3-small]
subscriptions:
  - name: team-alpha
    product: standard
    keys: [` + alphaKey + `]
  - name: team-beta
    product: embeddings-only
    keys: ["sha256:%x"]
`
)

// seen is what a test backend received.
type seen struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   string
}

// recorder is a test backend: it records requests and answers with handle.
type recorder struct {
	mu     sync.Mutex
	seen   []seen
	handle http.HandlerFunc
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.seen = append(rec.seen, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
	h := rec.handle
	rec.mu.Unlock()
	if h == nil {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Ratelimit-Remaining-Tokens", "999")
		w.Header().Set("X-Request-Id", "backend-generated-id")
		fmt.Fprint(w, `{"id":"chatcmpl-1","object":"chat.completion","choices":[]}`)
		return
	}
	h(w, r)
}

func (rec *recorder) last(t *testing.T) seen {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) == 0 {
		t.Fatal("the backend saw no request")
	}
	return rec.seen[len(rec.seen)-1]
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.seen)
}

func (rec *recorder) setHandler(h http.HandlerFunc) {
	rec.mu.Lock()
	rec.handle = h
	rec.mu.Unlock()
}

type harness struct {
	gateway        *httptest.Server
	azure, openai  *recorder
	logs           *syncBuffer
	azureSrv, oSrv *httptest.Server
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHarness(t *testing.T, timeout string, extraYAML ...string) *harness {
	t.Helper()
	return newHarnessWith(t, timeout, proxy.Options{}, extraYAML...)
}

// newHarnessWith is newHarness with handler options (stages,
// authenticators); their table, logger and clock are the harness's.
func newHarnessWith(t *testing.T, timeout string, opts proxy.Options, extraYAML ...string) *harness {
	t.Helper()
	h := &harness{azure: &recorder{}, openai: &recorder{}, logs: &syncBuffer{}}
	h.azureSrv = httptest.NewServer(h.azure)
	h.oSrv = httptest.NewServer(h.openai)
	t.Cleanup(h.azureSrv.Close)
	t.Cleanup(h.oSrv.Close)
	if timeout == "" {
		timeout = "10s"
	}
	yaml := fmt.Sprintf(configYAML, h.azureSrv.URL, timeout, h.oSrv.URL, timeout, sha256Hex(betaKey)) + strings.Join(extraYAML, "\n")
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	table, err := route.Compile(cfg, route.Env{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Table, opts.Logger = func() *route.Table { return table }, log
	handler := proxy.New(opts)
	h.gateway = httptest.NewServer(handler)
	t.Cleanup(h.gateway.Close)
	return h
}

func (h *harness) post(t *testing.T, path, key, body string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.gateway.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Api-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

type apiError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

func readError(t *testing.T, resp *http.Response) apiError {
	t.Helper()
	var e apiError
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == "" {
		t.Fatalf("body %q is not an OpenAI-shaped error (%v)", body, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q; want application/json", ct)
	}
	return e
}

func TestOutboundAzure(t *testing.T) {
	h := newHarness(t, "")
	body := `{"messages":[{"role":"user","content":"hi"}],"model":"ignored-by-azure"}`
	tests := []struct {
		name, path, wantPath, wantQuery string
	}{
		{"deployment path", "/openai/deployments/gpt-4o/chat/completions?api-version=2025-01-01-preview",
			"/openai/deployments/gpt-4o-ptu/chat/completions", "api-version=2025-01-01-preview"},
		{"default api-version", "/openai/deployments/gpt-4o/completions",
			"/openai/deployments/gpt-4o-ptu/completions", "api-version=2024-10-21"},
		{"secret query parameters are not forwarded", "/openai/deployments/gpt-4o/chat/completions?api-version=v&subscription-key=" + alphaKey + "&other=1",
			"/openai/deployments/gpt-4o-ptu/chat/completions", "api-version=v"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.post(t, tt.path, alphaKey, body, "Authorization", "Bearer "+alphaKey, "Ocp-Apim-Subscription-Key", alphaKey,
				"X-Custom", "kept", "Cookie", "session=1", "Connection", "X-Hop", "X-Hop", "dropped")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d; want 200", resp.StatusCode)
			}
			got := h.azure.last(t)
			if got.Path != tt.wantPath || got.RawQuery != tt.wantQuery {
				t.Errorf("backend got %s?%s; want %s?%s", got.Path, got.RawQuery, tt.wantPath, tt.wantQuery)
			}
			if got.Body != body {
				t.Errorf("backend body = %s; want it unchanged: %s", got.Body, body)
			}
			if k := got.Header.Get("Api-Key"); k != azureKey {
				t.Errorf("backend api-key = %q; want the backend's key", k)
			}
			for _, hname := range []string{"Authorization", "Ocp-Apim-Subscription-Key", "Cookie", "X-Hop"} {
				if v := got.Header.Get(hname); v != "" {
					t.Errorf("backend got %s: %q; want it stripped", hname, v)
				}
			}
			if got.Header.Get("X-Custom") != "kept" {
				t.Errorf("backend X-Custom = %q; want end-to-end headers kept", got.Header.Get("X-Custom"))
			}
			if id := got.Header.Get("X-Request-Id"); id == "" || id != resp.Header.Get("X-Request-Id") {
				t.Errorf("backend x-request-id %q, client %q; want the same id", id, resp.Header.Get("X-Request-Id"))
			}
		})
	}
}

func TestOutboundOpenAI(t *testing.T) {
	h := newHarness(t, "")
	tests := []struct {
		name, path, body, wantBody string
	}{
		{"openai path", "/v1/chat/completions", `{"model":"gpt-4o-via-openai","n":1}`, `{"model":"gpt-4o","n":1}`},
		{"azure v1 path", "/openai/v1/chat/completions", `{"n":1, "model" : "gpt-4o-via-openai"}`, `{"n":1, "model" : "gpt-4o"}`},
		{"responses", "/v1/responses", `{"model":"gpt-4o-via-openai","input":"hi"}`, `{"model":"gpt-4o","input":"hi"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.post(t, tt.path, "", tt.body, "Authorization", "Bearer "+alphaKey)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d; want 200", resp.StatusCode)
			}
			got := h.openai.last(t)
			wantPath := "/v1" + strings.TrimPrefix(strings.TrimPrefix(tt.path, "/openai"), "/v1")
			if got.Path != wantPath || got.RawQuery != "" {
				t.Errorf("backend got %s?%s; want %s", got.Path, got.RawQuery, wantPath)
			}
			// The model is the deployment name: gpt-4o-2024-11-20.
			want := strings.Replace(tt.wantBody, `"gpt-4o"`, `"gpt-4o-2024-11-20"`, 1)
			if got.Body != want {
				t.Errorf("backend body = %s; want %s", got.Body, want)
			}
			if a := got.Header.Get("Authorization"); a != "Bearer "+openaiKey {
				t.Errorf("backend Authorization = %q; want the backend's key", a)
			}
			if got.Header.Get("Api-Key") != "" {
				t.Errorf("backend got an api-key header; want none")
			}
		})
	}
}

func TestResponseHeaders(t *testing.T) {
	h := newHarness(t, "")
	resp := h.post(t, "/openai/deployments/gpt-4o/chat/completions", alphaKey, `{}`, "X-Request-Id", "client-id-42")
	if got := resp.Header.Get("X-Request-Id"); got != "client-id-42" {
		t.Errorf("x-request-id = %q; want the client's", got)
	}
	if got := resp.Header.Get("X-Sluice-Backend"); got != "azure-a" {
		t.Errorf("x-sluice-backend = %q; want azure-a", got)
	}
	if got := resp.Header.Get("X-Ms-Region"); got != "swedencentral" {
		t.Errorf("x-ms-region = %q; want the configured region", got)
	}
	if got := resp.Header.Get("X-Ratelimit-Remaining-Tokens"); got != "999" {
		t.Errorf("x-ratelimit-remaining-tokens = %q; want the backend's", got)
	}

	h.azure.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Ms-Region", "norwayeast")
		fmt.Fprint(w, `{}`)
	})
	resp = h.post(t, "/openai/deployments/gpt-4o/chat/completions", alphaKey, `{}`, "X-Request-Id", "bad id with spaces")
	if got := resp.Header.Get("X-Ms-Region"); got != "norwayeast" {
		t.Errorf("x-ms-region = %q; want the backend's own", got)
	}
	if got := resp.Header.Get("X-Request-Id"); len(got) != 36 {
		t.Errorf("x-request-id = %q; want a generated UUID for an unusable client id", got)
	}
}

func TestGatewayErrors(t *testing.T) {
	h := newHarness(t, "")
	big := `{"model":"gpt-4o","pad":"` + strings.Repeat("x", 3000) + `"}`
	tests := []struct {
		name, method, path, key, body string
		status                        int
		code                          string
	}{
		{"no key", "POST", "/v1/chat/completions", "", `{"model":"gpt-4o"}`, 401, "missing_api_key"},
		{"wrong key", "POST", "/v1/chat/completions", "nope", `{"model":"gpt-4o"}`, 401, "invalid_api_key"},
		{"model not allowed", "POST", "/v1/embeddings", alphaKey, `{"model":"text-embedding-3-small"}`, 403, "model_not_allowed"},
		{"unknown model", "POST", "/v1/chat/completions", alphaKey, `{"model":"gpt-9"}`, 404, "model_not_found"},
		{"unknown deployment", "POST", "/openai/deployments/gpt-9/chat/completions", alphaKey, `{}`, 404, "model_not_found"},
		{"no model", "POST", "/v1/chat/completions", alphaKey, `{"messages":[]}`, 400, "missing_model"},
		{"malformed json", "POST", "/v1/chat/completions", alphaKey, `{"model":`, 400, "invalid_request_body"},
		{"duplicate model", "POST", "/v1/chat/completions", betaKey, `{"model":"text-embedding-3-small","model":"gpt-4o"}`, 400, "invalid_request_body"},
		{"too large", "POST", "/v1/chat/completions", alphaKey, big, 413, "request_too_large"},
		{"wrong method", "GET", "/v1/chat/completions", alphaKey, ``, 405, "method_not_allowed"},
		{"wrong method models", "POST", "/v1/models", alphaKey, `{}`, 405, "method_not_allowed"},
		{"unknown path", "POST", "/v2/chat/completions", alphaKey, `{}`, 404, "not_found"},
		{"responses has no deployment path", "POST", "/openai/deployments/gpt-4o/responses", alphaKey, `{}`, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.azure.count() + h.openai.count()
			req, _ := http.NewRequest(tt.method, h.gateway.URL+tt.path, strings.NewReader(tt.body))
			if tt.key != "" {
				req.Header.Set("Api-Key", tt.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d; want %d", resp.StatusCode, tt.status)
			}
			if e := readError(t, resp); e.Error.Code != tt.code {
				t.Errorf("code = %q; want %q", e.Error.Code, tt.code)
			}
			if after := h.azure.count() + h.openai.count(); after != before {
				t.Errorf("a backend was called; want none for a request the gateway refuses")
			}
		})
	}
}

func TestKeyLocations(t *testing.T) {
	h := newHarness(t, "")
	for name, set := range map[string]func(r *http.Request){
		"api-key":                   func(r *http.Request) { r.Header.Set("Api-Key", betaKey) },
		"Ocp-Apim-Subscription-Key": func(r *http.Request) { r.Header.Set("Ocp-Apim-Subscription-Key", betaKey) },
		"bearer":                    func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+betaKey) },
		"query subscription-key":    func(r *http.Request) { r.URL.RawQuery = "subscription-key=" + betaKey },
		"query api-key":             func(r *http.Request) { r.URL.RawQuery = "api-key=" + betaKey },
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", h.gateway.URL+"/v1/embeddings", strings.NewReader(`{"model":"text-embedding-3-small","input":"x"}`))
			set(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d; want 200 with the key in %s", resp.StatusCode, name)
			}
			got := h.azure.last(t)
			if strings.Contains(got.RawQuery, betaKey) || got.Header.Get("Authorization") != "" || got.Header.Get("Ocp-Apim-Subscription-Key") != "" {
				t.Errorf("the client's key reached the backend: %+v", got)
			}
			if got.Path != "/openai/deployments/emb-small/embeddings" {
				t.Errorf("backend path = %s; want the embeddings deployment", got.Path)
			}
		})
	}
}

func TestBackendErrorsPassThrough(t *testing.T) {
	h := newHarness(t, "")
	const body = `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded token rate limit. Please retry after 7 seconds."}}`
	h.azure.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Retry-After-Ms", "7000")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, body)
	})
	resp := h.post(t, "/openai/deployments/gpt-4o/chat/completions", alphaKey, `{}`)
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || string(got) != body {
		t.Errorf("got %d %s; want the backend's 429 unchanged", resp.StatusCode, got)
	}
	if resp.Header.Get("Retry-After") != "7" || resp.Header.Get("Retry-After-Ms") != "7000" {
		t.Errorf("Retry-After = %q, retry-after-ms = %q; want the backend's", resp.Header.Get("Retry-After"), resp.Header.Get("Retry-After-Ms"))
	}
}

func TestUnreachableAndTimeout(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		h := newHarness(t, "")
		h.azureSrv.Close()
		resp := h.post(t, "/openai/deployments/gpt-4o/chat/completions", alphaKey, `{}`)
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("status = %d; want 502", resp.StatusCode)
		}
		if e := readError(t, resp); e.Error.Code != "backend_unreachable" || strings.Contains(e.Error.Message, "127.0.0.1") {
			t.Errorf("error = %+v; want backend_unreachable naming no address", e.Error)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		h := newHarness(t, "100ms")
		release := make(chan struct{})
		defer close(release)
		h.azure.setHandler(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		start := time.Now()
		resp := h.post(t, "/openai/deployments/gpt-4o/chat/completions", alphaKey, `{}`)
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("status = %d; want 504", resp.StatusCode)
		}
		if e := readError(t, resp); e.Error.Code != "backend_timeout" {
			t.Errorf("code = %q; want backend_timeout", e.Error.Code)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v; want about the 100ms timeout", d)
		}
	})
}

// TestStreamingFlushesEachEvent holds the backend after each event until the
// client has received it: a gateway that buffered would deadlock and time out.
func TestStreamingFlushesEachEvent(t *testing.T) {
	h := newHarness(t, "")
	got := make(chan string)
	h.azure.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				return
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
	resp := h.post(t, "/openai/deployments/gpt-4o/chat/completions", alphaKey, `{"stream":true}`)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		deadline := time.AfterFunc(3*time.Second, func() { resp.Body.Close() })
		line, err := br.ReadString('\n')
		deadline.Stop()
		if want := fmt.Sprintf("data: {\"n\":%d}\n", i); line != want || err != nil {
			t.Fatalf("event %d: got %q, %v; want %q as soon as the backend sent it", i, line, err, want)
		}
		if blank, _ := br.ReadString('\n'); blank != "\n" {
			t.Fatalf("event %d not terminated by a blank line: %q", i, blank)
		}
		got <- line
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "data: [DONE]\n\n" {
		t.Errorf("tail = %q; want the [DONE] event", rest)
	}
}

func TestStreamBrokenMidway(t *testing.T) {
	h := newHarness(t, "")
	h.azure.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"n\":0}\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	resp := h.post(t, "/openai/deployments/gpt-4o/chat/completions", alphaKey, `{"stream":true}`, "X-Request-Id", "client-7")
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("reading the stream ended cleanly; want a broken connection")
	}
	if !strings.HasPrefix(string(body), "data: {\"n\":0}\n\n") || !strings.Contains(string(body), `"code":"backend_broke_off"`) {
		t.Errorf("body = %q; want the first event, then an SSE error event", body)
	}
	// The warning names the request as the access log does, the client's id
	// included, so that an operator holding either finds it.
	var warn, access map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(h.logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		switch m["msg"] {
		case "backend response broke off":
			warn = m
		case "request":
			access = m
		}
	}
	if warn == nil || access == nil || warn["request_id"] != access["request_id"] || warn["client_request_id"] != "client-7" || access["client_request_id"] != "client-7" {
		t.Errorf("warning %v, access log %v; want both with one request_id and client_request_id client-7", warn, access)
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	h := newHarness(t, "")
	cancelled := make(chan struct{})
	h.azure.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", h.gateway.URL+"/openai/deployments/gpt-4o/chat/completions", strings.NewReader(`{"stream":true}`))
	req.Header.Set("Api-Key", alphaKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend request was not cancelled when the client went away")
	}
}

func TestListModels(t *testing.T) {
	h := newHarness(t, "")
	for _, path := range []string{"/v1/models", "/openai/v1/models"} {
		req, _ := http.NewRequest("GET", h.gateway.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+alphaKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Object string `json:"object"`
			Data   []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil || list.Object != "list" || len(list.Data) != 2 || list.Data[0].ID != "gpt-4o" || list.Data[1].ID != "gpt-4o-via-openai" {
			t.Errorf("GET %s = %+v (%v); want the product's two models", path, list, err)
		}
	}
}

func TestNoSecretInLogs(t *testing.T) {
	h := newHarness(t, "")
	h.post(t, "/openai/deployments/gpt-4o/chat/completions", alphaKey, `{}`)
	h.post(t, "/v1/chat/completions", "wrong-"+alphaKey, `{"model":"gpt-4o"}`)
	h.post(t, "/v1/chat/completions", "", `{"model":"gpt-4o-via-openai"}`, "Authorization", "Bearer "+alphaKey)
	logs := h.logs.String()
	if !strings.Contains(logs, `"subscription":"team-alpha"`) {
		t.Fatalf("logs = %s; want access-log lines naming the subscription", logs)
	}
	for _, secret := range []string{alphaKey, azureKey, openaiKey} {
		if strings.Contains(logs, secret) {
			t.Errorf("a key appears in the logs: %s", logs)
		}
	}
}

func sha256Hex(s string) []byte {
	sum := sha256Sum([]byte(s))
	return sum[:]
}

var sha256Sum = sha256.Sum256

// TestPromptLogging: prompt and completion text reach the access log only
// when logging.prompts is on, cut and with secrets redacted.
func TestPromptLogging(t *testing.T) {
	const prompt = `{"messages":[{"role":"user","content":"my key is sk-live-0123456789abcdef and mail me at a.b@example.com please"}]}`
	off := newHarness(t, "")
	off.post(t, "/openai/deployments/gpt-4o/chat/completions", alphaKey, prompt)
	if logs := off.logs.String(); strings.Contains(logs, "my key is") || strings.Contains(logs, `"prompt"`) {
		t.Errorf("prompt text logged with logging.prompts off:\n%s", logs)
	}

	on := newHarness(t, "", "logging:\n  prompts: true\n  prompt_max_bytes: 40\n")
	on.azure.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[{"message":{"role":"assistant","content":"Rivers flow to the sea."}}],"usage":{"prompt_tokens":20,"completion_tokens":6,"total_tokens":26}}`)
	})
	on.post(t, "/openai/deployments/gpt-4o/chat/completions", alphaKey, prompt)
	logs := on.logs.String()
	for _, want := range []string{`"prompt":"user: my key is [REDACTED] and mail me`, "…[truncated]", `"completion":"Rivers flow to the sea."`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "sk-live-0123456789abcdef") {
		t.Error("the key in the prompt reached the log")
	}
}
