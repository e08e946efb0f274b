package simulator_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/sluice-gateway/sluice/internal/simulator"
)

// TestIdentity: azidentity's managed identity credential, pointed at the
// simulated identity by IDENTITY_ENDPOINT and IDENTITY_HEADER as on App
// Service, gets a token that a simulator in the identity's Entra mode
// accepts; a key is refused; a caller without the header gets no token.
func TestIdentity(t *testing.T) {
	id, err := simulator.NewIdentity(0)
	if err != nil {
		t.Fatal(err)
	}
	ids := httptest.NewServer(id)
	t.Cleanup(ids.Close)
	sim := simulator.New(simulator.Options{APIKey: "k", Entra: id.Entra(ids.URL)})
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)

	t.Setenv("IDENTITY_ENDPOINT", ids.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", id.Header)
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{simulator.CognitiveServices + "/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if id.Issued() != 1 {
		t.Errorf("issued %d tokens; want 1", id.Issued())
	}
	post := func(h, v string) int {
		req, _ := http.NewRequest("POST", srv.URL+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
			strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":5}`))
		req.Header.Set(h, v)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("Authorization", "Bearer "+tok.Token); got != 200 {
		t.Errorf("with the identity's token: %d; want 200", got)
	}
	if got := post("api-key", "k"); got != 401 {
		t.Errorf("with a key: %d; want 401, local auth disabled", got)
	}
	resp, err := http.Get(ids.URL + "/msi/token?api-version=2019-08-01&resource=" + simulator.CognitiveServices)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without X-IDENTITY-HEADER: %d; want 401", resp.StatusCode)
	}
}
