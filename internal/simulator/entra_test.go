package simulator_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/entratest"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// TestEntraMode: the simulator accepts the tenant's tokens for Azure
// OpenAI's audience, refuses others with Azure's 401, and with local auth
// disabled refuses keys with Azure's message.
func TestEntraMode(t *testing.T) {
	e := entratest.New(t)
	sim := simulator.New(simulator.Options{APIKey: "k", Entra: &simulator.Entra{
		JWKSURL: e.JWKSURL(), Issuers: []string{e.IssuerV1(), e.IssuerV2()}, DisableLocalAuth: true}})
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	post := func(h map[string]string) (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
			strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":5}`))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	good := e.Token(entratest.TokenOptions{Version: 1})
	for _, tt := range []struct {
		name   string
		h      map[string]string
		status int
		want   string
	}{
		{"managed identity token", map[string]string{"Authorization": "Bearer " + good}, 200, `"choices"`},
		{"wrong audience", map[string]string{"Authorization": "Bearer " + e.Token(entratest.TokenOptions{Audience: "api://x"})}, 401, "audience is incorrect"},
		{"expired", map[string]string{"Authorization": "Bearer " + e.Token(entratest.TokenOptions{IssuedAt: time.Now().Add(-2 * time.Hour), Expiry: time.Now().Add(-time.Hour)})}, 401, "have expired"},
		{"key with local auth disabled", map[string]string{"api-key": "k"}, 401, "Key based authentication is disabled for this resource."},
		{"nothing", nil, 401, "Access token is missing"},
	} {
		if status, body := post(tt.h); status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %s; want %d with %q", tt.name, status, body, tt.status, tt.want)
		}
	}
}
