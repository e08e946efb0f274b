package backend

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/secret"
	"github.com/sluice-gateway/sluice/internal/wire"
)

func TestNewRequest(t *testing.T) {
	tests := []struct {
		name, kind, url    string
		op                 wire.Operation
		apiVersion, body   string
		wantURL, wantHost  string
		wantAuth, authName string
		wantBody           string
	}{
		{name: "azure chat", kind: "azure-openai", url: "https://aoai.example:443/base/", op: wire.OpChatCompletions,
			body:    `{"model":"gpt-4o","messages":[]}`,
			wantURL: "https://aoai.example:443/base/openai/deployments/gpt-4o-ptu/chat/completions?api-version=2024-10-21", wantHost: "aoai.example:443",
			authName: "Api-Key", wantAuth: "k", wantBody: `{"model":"gpt-4o","messages":[]}`},
		{name: "azure embeddings, the client's api-version", kind: "azure-openai", url: "http://aoai.example:", op: wire.OpEmbeddings,
			apiVersion: "2025-01-01 preview", body: `{"input":"x"}`,
			wantURL: "http://aoai.example/openai/deployments/gpt-4o-ptu/embeddings?api-version=2025-01-01+preview", wantHost: "aoai.example",
			authName: "Api-Key", wantAuth: "k", wantBody: `{"input":"x"}`},
		{name: "azure responses", kind: "azure-openai", url: "https://aoai.example", op: wire.OpResponses,
			body:    `{"model":"gpt-4o","input":"hi"}`,
			wantURL: "https://aoai.example/openai/v1/responses", wantHost: "aoai.example",
			authName: "Api-Key", wantAuth: "k", wantBody: `{"model":"gpt-4o-ptu","input":"hi"}`},
		{name: "openai completions", kind: "openai", url: "https://api.example/prefix", op: wire.OpCompletions,
			apiVersion: "ignored", body: `{"model":"gpt-4o","prompt":"p"}`,
			wantURL: "https://api.example/prefix/v1/completions", wantHost: "api.example",
			authName: "Authorization", wantAuth: "Bearer k", wantBody: `{"model":"gpt-4o-ptu","prompt":"p"}`},
		{name: "openai, no body", kind: "openai", url: "http://[::1]:8080", op: wire.OpChatCompletions,
			wantURL: "http://[::1]:8080/v1/chat/completions", wantHost: "[::1]:8080",
			authName: "Authorization", wantAuth: "Bearer k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(config.Backend{Name: "b", Kind: tt.kind, URL: tt.url, APIVersion: "2024-10-21",
				Auth: config.BackendAuth{APIKey: secret.New("k")}, Deployments: map[string]string{"gpt-4o": "gpt-4o-ptu"}}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			body := []byte(tt.body)
			r, err := wire.ParseRequest(body)
			if err != nil && tt.body != "" {
				t.Fatal(err)
			}
			client := http.Header{"Api-Key": {"client-key"}, "Authorization": {"Bearer client"}, "X-Custom": {"kept"}, "Connection": {"close"}}
			req, err := b.NewRequest(t.Context(), &Call{Op: tt.op, Model: "gpt-4o", APIVersion: tt.apiVersion, Request: r,
				Body: body, Header: client, RequestID: "id-1"})
			if err != nil {
				t.Fatal(err)
			}
			if got := req.URL.String(); got != tt.wantURL {
				t.Errorf("URL %s; want %s", got, tt.wantURL)
			}
			if req.Host != tt.wantHost || req.Method != http.MethodPost || req.Proto != "HTTP/1.1" || req.Context() != t.Context() {
				t.Errorf("host %q, method %s, proto %s; want %q, POST, HTTP/1.1 and the caller's context", req.Host, req.Method, req.Proto, tt.wantHost)
			}
			want := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"id-1"}, "X-Custom": {"kept"}, tt.authName: {tt.wantAuth}}
			if len(req.Header) != len(want) {
				t.Errorf("header %v; want %v", req.Header, want)
			}
			for k, v := range want {
				if got := req.Header.Values(k); len(got) != 1 || got[0] != v[0] {
					t.Errorf("header %s: %q; want %q", k, got, v)
				}
			}
			if req.ContentLength != int64(len(tt.wantBody)) {
				t.Errorf("content length %d; want %d", req.ContentLength, len(tt.wantBody))
			}
			for i, rc := range []func() (io.ReadCloser, error){func() (io.ReadCloser, error) { return req.Body, nil }, req.GetBody} {
				body, err := rc()
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := io.ReadAll(body); string(got) != tt.wantBody {
					t.Errorf("body %d: %s; want %s", i, got, tt.wantBody)
				}
			}
		})
	}
}

// TestNewRequestUnknownModel: a model without a deployment is an error.
// TestNewRequestEscapesOnce: a deployment name with a space goes out escaped
// once, as Azure expects it.
func TestNewRequestEscapesOnce(t *testing.T) {
	b, err := New(config.Backend{Name: "b", Kind: "azure-openai", URL: "http://x/base%20dir", APIVersion: "v",
		Auth: config.BackendAuth{APIKey: secret.New("k")}, Deployments: map[string]string{"m": "my dep"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := b.NewRequest(t.Context(), &Call{Op: wire.OpChatCompletions, Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := req.URL.String(), "http://x/base%20dir/openai/deployments/my%20dep/chat/completions?api-version=v"; got != want {
		t.Errorf("URL %s; want %s", got, want)
	}
}

func TestNewRequestUnknownModel(t *testing.T) {
	b, err := New(config.Backend{Name: "b", Kind: "openai", URL: "http://x", Deployments: map[string]string{"a": "a"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.NewRequest(context.Background(), &Call{Op: wire.OpChatCompletions, Model: "b"}); err == nil {
		t.Error("NewRequest for a model the backend lacks succeeded; want an error")
	}
}
