package simulator

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStats(t *testing.T) {
	s, srv := serve(t, Options{APIKey: testKey})
	var usage [2]int // prompt, completion
	for range 3 {
		_, b := post(t, srv, chatPath, chatBody)
		m := decode(t, b)
		usage[0] += num(m, "usage", "prompt_tokens")
		usage[1] += num(m, "usage", "completion_tokens")
	}
	_, b := post(t, srv, "/v1/embeddings", `{"model":"text-embedding-3-small","input":"hello world"}`)
	emb := num(decode(t, b), "usage", "prompt_tokens")
	post(t, srv, "/openai/deployments/text-embedding-3-small/chat/completions", chatBody) // 400
	post(t, srv, "/openai/deployments/nope/chat/completions", chatBody)                   // 404, unrouted
	do(t, srv, "POST", chatPath, chatBody, nil)                                           // 401, unrouted

	want := Stats{
		Deployments: map[string]DeploymentStats{
			"gpt-4o": {Requests: map[int]int64{200: 3}, PromptTokens: int64(usage[0]), CompletionTokens: int64(usage[1]),
				TotalTokens: int64(usage[0] + usage[1])},
			"text-embedding-3-small": {Requests: map[int]int64{200: 1, 400: 1}, PromptTokens: int64(emb), TotalTokens: int64(emb)},
		},
		Unrouted: map[int]int64{401: 1, 404: 1},
	}
	if diff := cmp.Diff(want, s.Stats()); diff != "" {
		t.Errorf("Stats() (-want +got):\n%s", diff)
	}
	resp, b := do(t, srv, "GET", "/sim/stats", "", map[string]string{"api-key": testKey})
	var got Stats
	if err := json.Unmarshal(b, &got); resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET /sim/stats: %d %v\n%s", resp.StatusCode, err, b)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /sim/stats (-want +got):\n%s", diff)
	}

	if resp, _ := do(t, srv, "POST", "/sim/reset", "", map[string]string{"api-key": testKey}); resp.StatusCode != 200 {
		t.Fatalf("POST /sim/reset: %d", resp.StatusCode)
	}
	zero := Stats{Deployments: map[string]DeploymentStats{
		"gpt-4o": {Requests: map[int]int64{}}, "text-embedding-3-small": {Requests: map[int]int64{}},
	}, Unrouted: map[int]int64{}}
	if diff := cmp.Diff(zero, s.Stats()); diff != "" {
		t.Errorf("after reset (-want +got):\n%s", diff)
	}
}

func TestStatsConcurrent(t *testing.T) {
	s, srv := serve(t, Options{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				post(t, srv, chatPath, `{"stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":5}`)
				s.Stats()
			}
		})
	}
	wg.Wait()
	if st := s.Stats().Deployments["gpt-4o"]; st.Requests[200] != 80 || st.CompletionTokens != 400 {
		t.Errorf("stats = %+v; want 80 requests and 400 completion tokens", st)
	}
}

func TestOnRequest(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	_, srv := serve(t, Options{OnRequest: func(r *http.Request, body []byte) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("x-test")+" "+string(body))
	}})
	do(t, srv, "POST", chatPath, chatBody, map[string]string{"x-test": "yes"})
	want := []string{"POST " + chatPath + " yes " + chatBody}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("OnRequest saw (-want +got):\n%s", diff)
	}
}
