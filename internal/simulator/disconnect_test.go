package simulator

import (
	"net/http"
	"strings"
	"testing"
)

func TestDisconnect(t *testing.T) {
	s, srv := serve(t, Options{APIKey: testKey, Faults: Faults{Disconnect: true}})
	req, _ := http.NewRequest("POST", srv.URL+"/openai/deployments/gpt-4o/chat/completions",
		strings.NewReader(`{"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("api-key", testKey)
	resp, err := srv.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d; want the connection closed without an answer", resp.StatusCode)
	}
	if got := s.Stats().Deployments["gpt-4o"].Requests[444]; got != 1 {
		t.Errorf("stats count %d disconnected requests; want 1 under status 444", got)
	}
}

func TestAzureModelList(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	resp, body := do(t, srv, "GET", "/openai/models?api-version=2024-10-21", "", map[string]string{"api-key": testKey})
	if resp.StatusCode != 200 || !strings.Contains(string(body), "gpt-4o") {
		t.Errorf("GET /openai/models = %d %s; want 200 listing the deployments", resp.StatusCode, body)
	}
	if resp, _ := do(t, srv, "GET", "/openai/models", "", nil); resp.StatusCode != 401 {
		t.Errorf("without the key: %d; want 401", resp.StatusCode)
	}
}
