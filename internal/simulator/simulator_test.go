package simulator

import (
	"bytes"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

const chatBody = `{"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello."}],"max_tokens":20}`

func TestAuth(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	path := "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
	tests := []struct {
		name    string
		path    string
		headers map[string]string
		want    int
		code    string
	}{
		{"api-key", path, map[string]string{"api-key": testKey}, 200, ""},
		{"bearer", path, map[string]string{"Authorization": "Bearer " + testKey}, 200, ""},
		{"missing", path, nil, 401, "401"},
		{"wrong", path, map[string]string{"api-key": "nope"}, 401, "401"},
		{"wrong bearer", path, map[string]string{"Authorization": "Bearer nope"}, 401, "401"},
		{"openai path", "/v1/chat/completions", map[string]string{"Authorization": "Bearer nope"}, 401, "invalid_api_key"},
		{"control endpoint", "/sim/stats", nil, 401, "401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := http.MethodPost
			if strings.HasPrefix(tt.path, "/sim/") {
				method = http.MethodGet
			}
			resp, b := do(t, srv, method, tt.path, strings.Replace(chatBody, `{`, `{"model":"gpt-4o",`, 1), tt.headers)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d; want %d\n%s", resp.StatusCode, tt.want, b)
			}
			if tt.code != "" {
				if got := str(decode(t, b), "error", "code"); got != tt.code {
					t.Errorf("error code = %q; want %q", got, tt.code)
				}
				if strings.Contains(string(b), "nope") {
					t.Errorf("the error echoes the key the client sent: %s", b)
				}
			}
		})
	}
}

func TestNoAuthWhenKeyEmpty(t *testing.T) {
	_, srv := serve(t, Options{})
	resp, b := do(t, srv, http.MethodPost, "/openai/deployments/gpt-4o/chat/completions", chatBody, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d; want 200\n%s", resp.StatusCode, b)
	}
}

func TestErrors(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		code   string
	}{
		{"unknown deployment", "POST", "/openai/deployments/nope/chat/completions?api-version=2024-10-21", chatBody, 404, "DeploymentNotFound"},
		{"unknown deployment on v1", "POST", "/openai/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`, 404, "DeploymentNotFound"},
		{"unknown model on openai", "POST", "/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`, 404, "model_not_found"},
		{"unknown path", "POST", "/openai/deployments/gpt-4o/images/generations", `{}`, 404, "404"},
		{"wrong method", "GET", "/openai/deployments/gpt-4o/chat/completions", "", 405, "method_not_allowed"},
		{"malformed JSON", "POST", "/openai/deployments/gpt-4o/chat/completions", `{"messages":`, 400, "invalid_json"},
		{"wrong type", "POST", "/openai/deployments/gpt-4o/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":"yes"}`, 400, "invalid_json"},
		{"no messages", "POST", "/openai/deployments/gpt-4o/chat/completions", `{"max_tokens":5}`, 400, "missing_required_parameter"},
		{"empty messages", "POST", "/openai/deployments/gpt-4o/chat/completions", `{"messages":[]}`, 400, "missing_required_parameter"},
		{"bad content", "POST", "/openai/deployments/gpt-4o/chat/completions", `{"messages":[{"role":"user","content":7}]}`, 400, "invalid_value"},
		{"no model on v1", "POST", "/v1/chat/completions", chatBody, 400, "missing_required_parameter"},
		{"max_tokens zero", "POST", "/openai/deployments/gpt-4o/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":0}`, 400, "invalid_value"},
		{"chat on embeddings model", "POST", "/openai/deployments/text-embedding-3-small/chat/completions", chatBody, 400, "OperationNotSupported"},
		{"embeddings on chat model", "POST", "/openai/deployments/gpt-4o/embeddings", `{"input":"hi"}`, 400, "OperationNotSupported"},
		{"responses on deployment path", "POST", "/openai/deployments/gpt-4o/responses", `{"input":"hi"}`, 404, "404"},
		{"too large", "POST", "/openai/deployments/gpt-4o/chat/completions", `{"x":"` + strings.Repeat("a", maxBody) + `"}`, 413, "request_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := do(t, srv, tt.method, tt.path, tt.body, map[string]string{"api-key": testKey})
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d; want %d\n%s", resp.StatusCode, tt.status, b)
			}
			m := decode(t, b)
			if got := str(m, "error", "code"); got != tt.code {
				t.Errorf("error code = %q; want %q (%s)", got, tt.code, b)
			}
			if str(m, "error", "message") == "" {
				t.Errorf("error without a message: %s", b)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", got)
			}
		})
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestHeadersOnEveryResponse(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey, Region: "swedencentral"})
	for _, tc := range []struct{ path, key string }{
		{"/openai/deployments/gpt-4o/chat/completions", testKey}, // 200
		{"/openai/deployments/gpt-4o/chat/completions", "bad"},   // 401
		{"/openai/deployments/nope/chat/completions", testKey},   // 404
		{"/elsewhere", testKey},                                  // 404
	} {
		resp, _ := do(t, srv, "POST", tc.path, chatBody, map[string]string{"api-key": tc.key, "x-ms-client-request-id": "abc"})
		if got := resp.Header.Get("x-ms-region"); got != "swedencentral" {
			t.Errorf("%s (%d): x-ms-region = %q; want swedencentral", tc.path, resp.StatusCode, got)
		}
		id := resp.Header.Get("x-request-id")
		if !uuidRE.MatchString(id) || resp.Header.Get("apim-request-id") != id {
			t.Errorf("%s (%d): x-request-id = %q, apim-request-id = %q; want the same UUID", tc.path, resp.StatusCode,
				id, resp.Header.Get("apim-request-id"))
		}
		if got := resp.Header.Get("x-ms-client-request-id"); got != "abc" {
			t.Errorf("%s: x-ms-client-request-id = %q; want it echoed", tc.path, got)
		}
	}
}

func TestModels(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey, Deployments: map[string]Deployment{"b": {}, "a": {Model: "gpt-4o-mini"}}})
	for _, p := range []string{"/v1/models", "/openai/v1/models"} {
		resp, b := do(t, srv, "GET", p, "", map[string]string{"Authorization": "Bearer " + testKey})
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d\n%s", p, resp.StatusCode, b)
		}
		m := decode(t, b)
		if str(m, "object") != "list" || str(m, "data", 0, "id") != "a" || str(m, "data", 1, "id") != "b" || path(m, "data", 2) != nil {
			t.Errorf("GET %s = %s; want a list of a and b", p, b)
		}
	}
}

// TestKeyNeverLeaks holds the simulator to the house rule that no key appears
// in logs or responses.
func TestKeyNeverLeaks(t *testing.T) {
	var logs bytes.Buffer
	_, srv := serve(t, Options{APIKey: testKey, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	var bodies []byte
	for _, key := range []string{testKey, "wrong-" + testKey} {
		for _, p := range []string{"/openai/deployments/gpt-4o/chat/completions", "/v1/chat/completions", "/sim/config", "/sim/stats"} {
			_, b := do(t, srv, "POST", p, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, map[string]string{"api-key": key})
			bodies = append(bodies, b...)
			_, b = do(t, srv, "GET", p, "", map[string]string{"Authorization": "Bearer " + key})
			bodies = append(bodies, b...)
		}
	}
	if bytes.Contains(logs.Bytes(), []byte(testKey)) {
		t.Errorf("the key appears in the logs:\n%s", logs.Bytes())
	}
	if bytes.Contains(bodies, []byte(testKey)) {
		t.Errorf("the key appears in a response")
	}
	if logs.Len() == 0 {
		t.Errorf("no request was logged")
	}
}
