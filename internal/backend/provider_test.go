package backend

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/secret"
	"github.com/sluice-gateway/sluice/internal/wire"
)

func providerBackend(t *testing.T, kind string) *Backend {
	t.Helper()
	c := config.Backend{Name: "p", Kind: kind, URL: "https://p.example.com/base", Deployments: map[string]string{"gpt-4o": "model-x"},
		Auth: config.BackendAuth{APIKey: secret.New("backend-key")}}
	if kind == "anthropic" {
		c.APIVersion, c.DefaultMaxTokens = "2023-06-01", 1000
	}
	b, err := New(c, NewState("p", nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProviderRequests(t *testing.T) {
	body := []byte(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	parsed, _ := wire.ParseRequest(body)
	call := &Call{Op: wire.OpChatCompletions, Model: "gpt-4o", Request: parsed, Body: body,
		Header: http.Header{"Authorization": {"Bearer client-key"}, "X-Api-Key": {"client-key"}}}
	tests := []struct {
		kind, url, keyHeader, want string
	}{
		{"anthropic", "https://p.example.com/base/v1/messages", "X-Api-Key", `"max_tokens":1000`},
		{"gemini", "https://p.example.com/base/v1beta/models/model-x:streamGenerateContent?alt=sse", "X-Goog-Api-Key", `"contents":[{"role":"user"`},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			b := providerBackend(t, tt.kind)
			req, err := b.NewRequest(context.Background(), call)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(req.Body)
			if req.URL.String() != tt.url || req.Header.Get(tt.keyHeader) != "backend-key" || !strings.Contains(string(got), tt.want) {
				t.Errorf("%s %v %s", req.URL, req.Header, got)
			}
			if req.Header.Get("Authorization") != "" || strings.Contains(string(got), "client-key") {
				t.Errorf("the client's key went out: %v", req.Header)
			}
			probe, err := b.NewProbeRequest(context.Background(), "/v1/models")
			if err != nil || probe.Header.Get(tt.keyHeader) != "backend-key" || (tt.kind == "anthropic") != (probe.Header.Get("Anthropic-Version") != "") {
				t.Errorf("probe %v %v", err, probe.Header)
			}
			// Embeddings cannot be translated: a 400, not sent.
			emb := *call
			emb.Op = wire.OpEmbeddings
			var we *wire.Error
			if _, err := b.NewRequest(context.Background(), &emb); !errors.As(err, &we) || we.Status != 400 {
				t.Errorf("embeddings: %v; want a 400", err)
			}
		})
	}
}
