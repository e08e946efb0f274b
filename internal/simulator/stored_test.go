package simulator

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestStoredResponses: a response the Responses API answered can be
// retrieved, its input listed, continued with previous_response_id and
// deleted; one made with store: false cannot; an unknown previous response
// is 404, as the service answers.
func TestStoredResponses(t *testing.T) {
	_, srv := serve(t, Options{Seed: 1, APIKey: testKey})
	key := map[string]string{"api-key": testKey}
	call := func(method, path string) (int, string) {
		resp, b := do(t, srv, method, path, "", key)
		return resp.StatusCode, string(b)
	}
	resp, raw := post(t, srv, "/v1/responses", `{"model":"gpt-4o","input":"hello there","max_output_tokens":5}`)
	body := string(raw)
	if resp.StatusCode != 200 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var r struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal([]byte(body), &r)
	for _, tt := range []struct{ method, path, want string }{
		{"GET", "/v1/responses/" + r.ID, `"id":"` + r.ID + `"`},
		{"GET", "/openai/v1/responses/" + r.ID + "/input_items", `"text":"hello there"`},
	} {
		status, got := call(tt.method, tt.path)
		if status != 200 || !strings.Contains(got, tt.want) {
			t.Errorf("%s %s: %d %s; want 200 with %s", tt.method, tt.path, status, got, tt.want)
		}
	}
	resp, raw = post(t, srv, "/v1/responses", `{"model":"gpt-4o","input":"more","previous_response_id":"`+r.ID+`","max_output_tokens":5}`)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"previous_response_id":"`+r.ID+`"`) {
		t.Errorf("continue: %d %s", resp.StatusCode, raw)
	}
	resp, raw = post(t, srv, "/v1/responses", `{"model":"gpt-4o","input":"more","previous_response_id":"resp_unknown"}`)
	if resp.StatusCode != 404 || !strings.Contains(string(raw), `"code":"previous_response_not_found"`) {
		t.Errorf("unknown previous: %d %s; want 404 previous_response_not_found", resp.StatusCode, raw)
	}
	if status, got := call("DELETE", "/v1/responses/"+r.ID); status != 200 || !strings.Contains(got, `"deleted":true`) {
		t.Errorf("delete: %d %s", status, got)
	}
	if status, _ := call("GET", "/v1/responses/"+r.ID); status != 404 {
		t.Errorf("retrieve after delete: %d; want 404", status)
	}
	_, raw = post(t, srv, "/v1/responses", `{"model":"gpt-4o","input":"x","store":false,"max_output_tokens":3}`)
	_ = json.Unmarshal(raw, &r)
	if status, _ := call("GET", "/v1/responses/"+r.ID); status != 404 {
		t.Errorf("a store:false response was stored (%d)", status)
	}
}
