package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/proxy"
	"github.com/sluice-gateway/sluice/internal/route"
)

// responsesBackend is a backend that stores the responses it makes, as the
// Responses API does, and answers the calls on them; it records the paths it
// saw.
type responsesBackend struct {
	name   string
	mu     sync.Mutex
	stored map[string]bool
	paths  []string
}

func (rb *responsesBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rb.mu.Lock()
	defer rb.mu.Unlock()
	rb.paths = append(rb.paths, r.Method+" "+r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/responses"):
		var req struct {
			Previous string `json:"previous_response_id"`
		}
		_ = json.Unmarshal(body, &req)
		if req.Previous != "" && !rb.stored[req.Previous] {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":{"message":"Previous response with id '%s' not found.","type":"invalid_request_error","code":"previous_response_not_found"}}`, req.Previous)
			return
		}
		id := fmt.Sprintf("resp_%s_%d", rb.name, len(rb.stored))
		rb.stored[id] = true
		fmt.Fprintf(w, `{"id":%q,"object":"response","status":"completed","output":[],"usage":{"input_tokens":3,"output_tokens":2,"total_tokens":5}}`, id)
	default:
		i := strings.Index(r.URL.Path, "/responses/")
		rest := r.URL.Path[i+len("/responses/"):]
		id, _, _ := strings.Cut(rest, "/")
		if !rb.stored[id] {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"message":"not found","type":"invalid_request_error","code":null}}`)
			return
		}
		if r.Method == http.MethodDelete {
			delete(rb.stored, id)
			fmt.Fprintf(w, `{"id":%q,"object":"response.deleted","deleted":true}`, id)
			return
		}
		fmt.Fprintf(w, `{"id":%q,"object":"response","status":"completed","backend":%q}`, id, rb.name)
	}
}

func (rb *responsesBackend) saw() []string {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return append([]string(nil), rb.paths...)
}

// newSurfaceGateway is a gateway in front of two Responses backends, an
// Azure one (priority 1) and an OpenAI one (priority 2), with the path
// prefix /myAPI.
func newSurfaceGateway(t *testing.T) (gw *httptest.Server, azure, openai *responsesBackend) {
	t.Helper()
	azure = &responsesBackend{name: "azure", stored: map[string]bool{}}
	openai = &responsesBackend{name: "openai", stored: map[string]bool{}}
	as, os := httptest.NewServer(azure), httptest.NewServer(openai)
	t.Cleanup(as.Close)
	t.Cleanup(os.Close)
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
server: { path_prefixes: ["/myAPI"] }
backends:
  - { name: az, kind: azure-openai, url: %q, auth: { api_key: k1 }, deployments: { gpt-4o: gpt-4o-dep, gpt-4o-mini: mini } }
  - { name: oa, kind: openai, url: %q, auth: { api_key: k2 }, deployments: { gpt-4o: gpt-4o } }
pools:
  - { name: p, members: [{ backend: az, priority: 1 }, { backend: oa, priority: 2 }] }
  - { name: mini, members: [{ backend: az }] }
models: { gpt-4o: p, gpt-4o-mini: mini }
products:
  - { name: std, models: [gpt-4o] }
  - { name: all, models: [gpt-4o, gpt-4o-mini] }
subscriptions:
  - { name: s, product: std, keys: [client-key] }
  - { name: t, product: all, keys: [other-key] }
`, as.URL, os.URL)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	reg := route.NewRegistry(route.RegistryOptions{})
	table, err := route.Compile(cfg, route.Env{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	reg.Commit(table)
	gw = httptest.NewServer(proxy.New(proxy.Options{Table: func() *route.Table { return table }}))
	t.Cleanup(gw.Close)
	return gw, azure, openai
}

func call(t *testing.T, gw *httptest.Server, method, path, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, gw.URL+path, strings.NewReader(body))
	req.Header.Set("Api-Key", "client-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestStoredResponses: the Responses API on Azure's own surface, and the
// calls on a stored response reach the backend that holds it, also when
// this instance did not see it made.
func TestStoredResponses(t *testing.T) {
	gw, azure, openai := newSurfaceGateway(t)
	// Azure's /openai/responses, as the AzureOpenAI SDK calls it.
	resp, body := call(t, gw, "POST", "/openai/responses?api-version=2025-04-01-preview", `{"model":"gpt-4o","input":"hi"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"resp_azure_0"`) {
		t.Fatalf("POST /openai/responses: %d %s", resp.StatusCode, body)
	}
	// A response made on the OpenAI backend, behind the gateway's back
	// (another instance made it).
	openai.stored["resp_openai_x"] = true
	for _, tt := range []struct{ method, path, want string }{
		{"GET", "/v1/responses/resp_openai_x", `"backend":"openai"`},
		{"GET", "/openai/v1/responses/resp_azure_0", `"backend":"azure"`},
		{"GET", "/openai/responses/resp_azure_0/input_items?api-version=2025-04-01-preview", `"backend":"azure"`},
		{"DELETE", "/openai/responses/resp_openai_x?api-version=2025-04-01-preview", `"deleted":true`},
	} {
		resp, body := call(t, gw, tt.method, tt.path, "")
		if resp.StatusCode != 200 || !strings.Contains(body, tt.want) {
			t.Errorf("%s %s: %d %s; want 200 with %s", tt.method, tt.path, resp.StatusCode, body, tt.want)
		}
	}
	resp, body = call(t, gw, "GET", "/v1/responses/resp_nowhere", "")
	if resp.StatusCode != 404 {
		t.Errorf("an unknown response: %d %s; want 404", resp.StatusCode, body)
	}
	// Continuing a response on the priority-2 backend goes there, not to
	// the priority-1 one.
	openai.stored["resp_openai_y"] = true
	resp, body = call(t, gw, "POST", "/v1/responses", `{"model":"gpt-4o","input":"more","previous_response_id":"resp_openai_y"}`)
	if resp.StatusCode != 200 || resp.Header.Get("X-Sluice-Backend") != "oa" {
		t.Errorf("previous_response_id on oa: %d from %q %s; want 200 from oa", resp.StatusCode, resp.Header.Get("X-Sluice-Backend"), body)
	}
	// Once it knows where a response lives, it asks there first.
	before := len(azure.saw())
	call(t, gw, "GET", "/v1/responses/resp_openai_y", "")
	if after := len(azure.saw()); after != before {
		t.Errorf("the azure backend was asked for a response the gateway knows is on oa (%v)", azure.saw()[before:])
	}
	// Methods are checked.
	if resp, _ := call(t, gw, "POST", "/v1/responses/resp_openai_y/input_items", ""); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET" {
		t.Errorf("POST input_items: %d Allow %q; want 405 GET", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestModelsAndPrefixes: the model list and retrieve on every surface, for
// the models the caller's product may use, and server.path_prefixes.
func TestModelsAndPrefixes(t *testing.T) {
	gw, azure, _ := newSurfaceGateway(t)
	for _, tt := range []struct {
		path   string
		status int
		want   string
	}{
		{"/v1/models", 200, `"id":"gpt-4o"`},
		{"/openai/models?api-version=2024-10-21", 200, `"lifecycle_status":"generally-available"`},
		{"/openai/v1/models/gpt-4o", 200, `"id":"gpt-4o"`},
		{"/v1/models/gpt-4o-mini", 404, `"code":"model_not_found"`},
		{"/openai/models/gpt-4o?api-version=2024-10-21", 200, `"status":"succeeded"`},
		{"/myAPI/openai/models?api-version=2024-10-21", 200, `"id":"gpt-4o"`},
		{"/nowhere", 404, `/openai/deployments/{deployment}/`},
	} {
		resp, body := call(t, gw, "GET", tt.path, "")
		if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s: %d %s; want %d with %s", tt.path, resp.StatusCode, body, tt.status, tt.want)
		}
		if strings.Contains(body, "gpt-4o-mini") && tt.status == 200 {
			t.Errorf("GET %s lists gpt-4o-mini, which the product may not use: %s", tt.path, body)
		}
	}
	resp, body := call(t, gw, "POST", "/myAPI/openai/responses?api-version=2025-04-01-preview", `{"model":"gpt-4o","input":"hi"}`)
	if resp.StatusCode != 200 {
		t.Errorf("POST /myAPI/openai/responses: %d %s", resp.StatusCode, body)
	}
	if got := azure.saw(); len(got) == 0 || got[len(got)-1] != "POST /openai/v1/responses" {
		t.Errorf("the backend saw %v; want the prefix stripped", got)
	}
}

// TestStreamLimitHeaders: a stream carries Sluice's own remaining-limit
// headers, as a whole response does, not the backend's (Azure sends its
// deployment's on streams too: 94,487 left under a 5,000-token limit misled
// clients that throttle themselves), and not the backend's limit or reset
// beside them.
func TestStreamLimitHeaders(t *testing.T) {
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		h := w.Header()
		h.Set("X-Ratelimit-Remaining-Tokens", "94487")
		h.Set("X-Ratelimit-Limit-Tokens", "100000")
		h.Set("X-Ratelimit-Remaining-Requests", "599")
		h.Set("X-Ratelimit-Reset-Requests", "10s")
		h.Set("Content-Type", "application/json")
		if r.Header.Get("X-Test-Stream") == "1" {
			h.Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\ndata: [DONE]\n\n")
			return
		}
		_, _ = io.WriteString(w, `{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	})
	srv := httptest.NewServer(backend)
	t.Cleanup(srv.Close)
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
backends: [{ name: b, url: %q, auth: { api_key: k }, deployments: { gpt-4o: gpt-4o } }]
pools: [{ name: p, members: [{ backend: b }] }]
models: { gpt-4o: p }
products:
  - name: p
    models: [gpt-4o]
    limits: [{ key: subscription, tokens_per_minute: 5000, requests_per_minute: 60, estimate_prompt_tokens: true }]
subscriptions: [{ name: s, product: p, keys: [client-key] }]
`, srv.URL)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	table, err := route.Compile(cfg, route.Env{})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(proxy.New(proxy.Options{Table: func() *route.Table { return table }}))
	t.Cleanup(gw.Close)
	for _, stream := range []string{"0", "1"} {
		for _, path := range []string{"/v1/chat/completions", "/openai/v1/chat/completions", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"} {
			req, _ := http.NewRequest("POST", gw.URL+path, strings.NewReader(`{"model":"gpt-4o","max_tokens":10,"stream":`+map[string]string{"0": "false", "1": "true"}[stream]+`,"messages":[]}`))
			req.Header.Set("Api-Key", "client-key")
			req.Header.Set("X-Test-Stream", stream)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			h := resp.Header
			tokens, _ := strconv.Atoi(h.Get("X-Ratelimit-Remaining-Tokens"))
			if resp.StatusCode != 200 || tokens > 5000 || tokens <= 0 || h.Get("X-Ratelimit-Remaining-Requests") == "599" ||
				h.Get("X-Ratelimit-Limit-Tokens") != "" || h.Get("X-Ratelimit-Reset-Requests") != "" {
				t.Errorf("%s stream=%s: %d remaining tokens %q requests %q limit %q reset %q; want Sluice's remaining (at most 5000, at most 60) and none of the backend's",
					path, stream, resp.StatusCode, h.Get("X-Ratelimit-Remaining-Tokens"), h.Get("X-Ratelimit-Remaining-Requests"),
					h.Get("X-Ratelimit-Limit-Tokens"), h.Get("X-Ratelimit-Reset-Requests"))
			}
		}
	}
}
