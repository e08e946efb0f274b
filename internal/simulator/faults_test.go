package simulator

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const chatPath = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"

func TestErrorRate(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
	}{{0, "InternalServerError"}, {503, "ServiceUnavailable"}, {502, "502"}} {
		_, srv := serve(t, Options{APIKey: testKey, Faults: Faults{ErrorRate: 1, ErrorStatus: tc.status}})
		want := tc.status
		if want == 0 {
			want = 500
		}
		for range 5 {
			resp, b := post(t, srv, chatPath, chatBody)
			if resp.StatusCode != want || str(decode(t, b), "error", "code") != tc.code {
				t.Fatalf("status %d body %s; want %d with code %s", resp.StatusCode, b, want, tc.code)
			}
		}
	}
}

func TestErrorRateIsAFraction(t *testing.T) {
	_, srv := serve(t, Options{Faults: Faults{ErrorRate: 0.3}})
	failed := 0
	for range 200 {
		if resp, _ := post(t, srv, chatPath, chatBody); resp.StatusCode == 500 {
			failed++
		}
	}
	if failed < 30 || failed > 90 {
		t.Errorf("%d of 200 requests failed; want about 60", failed)
	}
}

func TestPerDeploymentFaults(t *testing.T) {
	_, srv := serve(t, Options{Faults: Faults{ErrorRate: 1, Deployments: map[string]Faults{"text-embedding-3-small": {}}}})
	if resp, _ := post(t, srv, chatPath, chatBody); resp.StatusCode != 500 {
		t.Errorf("gpt-4o: status %d; want the global 500", resp.StatusCode)
	}
	if resp, b := post(t, srv, "/v1/embeddings", `{"model":"text-embedding-3-small","input":"x"}`); resp.StatusCode != 200 {
		t.Errorf("embeddings: status %d; want 200, its entry replacing the global faults\n%s", resp.StatusCode, b)
	}
}

func TestForcedRetryAfter(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey, Faults: Faults{RetryAfter: 1500 * time.Millisecond}})
	resp, b := post(t, srv, chatPath, chatBody)
	if resp.StatusCode != 429 {
		t.Fatalf("status %d; want 429\n%s", resp.StatusCode, b)
	}
	for h, want := range map[string]string{"Retry-After": "2", "retry-after-ms": "1500", "x-ratelimit-reset-tokens": "2", "x-ratelimit-reset-requests": "2"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q; want %q", h, got, want)
		}
	}
}

func TestHang(t *testing.T) {
	s, srv := serve(t, Options{APIKey: testKey, Faults: Faults{Hang: true}})
	client := &http.Client{Timeout: 100 * time.Millisecond}
	req, _ := http.NewRequest("POST", srv.URL+chatPath, strings.NewReader(chatBody))
	req.Header.Set("api-key", testKey)
	start := time.Now()
	_, err := client.Do(req)
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v; want a client timeout", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("the client timed out late")
	}
	srv.Close() // returns once the hung handler noticed the client left
	if got := s.Stats().Deployments["gpt-4o"].Requests[499]; got != 1 {
		t.Errorf("stats count %d requests that the client gave up on; want 1", got)
	}
}

func TestDropAfterChunks(t *testing.T) {
	s, srv := serve(t, Options{APIKey: testKey, Faults: Faults{DropAfterChunks: 4}, MeanCompletionTokens: 50})
	req, _ := http.NewRequest("POST", srv.URL+chatPath, strings.NewReader(`{"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("api-key", testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events, err := readEvents(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading the stream ended with %v; want io.ErrUnexpectedEOF", err)
	}
	// Azure's prompt filter event, the role, two tokens.
	if len(events) != 4 {
		t.Errorf("got %d events before the drop; want 4", len(events))
	}
	srv.Close()
	st := s.Stats().Deployments["gpt-4o"]
	if st.TruncatedStreams != 1 || st.CompletionTokens != 2 || st.PromptTokens == 0 {
		t.Errorf("stats = %+v; want one truncated stream with 2 completion tokens", st)
	}
}

func TestAddedLatency(t *testing.T) {
	_, srv := serve(t, Options{Faults: Faults{AddedLatency: 50 * time.Millisecond}})
	start := time.Now()
	post(t, srv, chatPath, chatBody)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answered in %v; want at least the added 50ms", d)
	}
}

func TestConfigEndpoint(t *testing.T) {
	s, srv := serve(t, Options{APIKey: testKey, Faults: Faults{ErrorRate: 0.5}})
	h := map[string]string{"api-key": testKey}
	resp, b := do(t, srv, "PATCH", "/sim/config", `{"hang":true,"added_latency":"250ms","deployments":{"gpt-4o":{"retry_after":"3s"}}}`, h)
	if resp.StatusCode != 200 {
		t.Fatalf("PATCH: %d %s", resp.StatusCode, b)
	}
	want := Faults{ErrorRate: 0.5, Hang: true, AddedLatency: 250 * time.Millisecond,
		Deployments: map[string]Faults{"gpt-4o": {RetryAfter: 3 * time.Second}}}
	if diff := cmp.Diff(want, s.Faults()); diff != "" {
		t.Errorf("Faults() after PATCH (-want +got):\n%s", diff)
	}
	_, b = do(t, srv, "GET", "/sim/config", "", h)
	var got Faults
	if err := got.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /sim/config (-want +got):\n%s\n%s", diff, b)
	}
	// The new faults apply: gpt-4o's own entry forces 429.
	if resp, _ := post(t, srv, chatPath, chatBody); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("after PATCH: %d Retry-After %q; want 429 3", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// retry_after also takes a number of seconds.
	do(t, srv, "PATCH", "/sim/config", `{"deployments":{"gpt-4o":{"retry_after":2}}}`, h)
	if got := s.Faults().Deployments["gpt-4o"].RetryAfter; got != 2*time.Second {
		t.Errorf("retry_after 2 = %v; want 2s", got)
	}
	// Clearing.
	do(t, srv, "PATCH", "/sim/config", `{"hang":false,"error_rate":0,"added_latency":"0s","deployments":null}`, h)
	if diff := cmp.Diff(Faults{}, s.Faults()); diff != "" {
		t.Errorf("after clearing (-want +got):\n%s", diff)
	}

	for _, bad := range []string{
		`{"error_rate":2}`, `{"error_status":200}`, `{"added_latency":"soon"}`, `{"hang":"yes"}`,
		`{"no_such_field":1}`, `{"deployments":{"nope":{"hang":true}}}`, `{"drop_after_chunks":-1}`,
		`{"deployments":{"gpt-4o":{"deployments":{"gpt-4o":{}}}}}`, ``, `{"retry_after":true}`, `{"retry_after":"soon"}`,
	} {
		before := s.Faults()
		resp, b := do(t, srv, "PATCH", "/sim/config", bad, h)
		if resp.StatusCode != 400 || str(decode(t, b), "error", "code") != "invalid_config" {
			t.Errorf("PATCH %s: %d %s; want 400 invalid_config", bad, resp.StatusCode, b)
		}
		if diff := cmp.Diff(before, s.Faults()); diff != "" {
			t.Errorf("PATCH %s changed the faults:\n%s", bad, diff)
		}
	}
	if resp, _ := do(t, srv, "DELETE", "/sim/config", "", h); resp.StatusCode != 405 {
		t.Errorf("DELETE /sim/config: %d; want 405", resp.StatusCode)
	}
}

func TestSetFaultsIsolation(t *testing.T) {
	s := New(Options{})
	m := map[string]Faults{"gpt-4o": {Hang: true}}
	s.SetFaults(Faults{Deployments: m})
	m["gpt-4o"] = Faults{}
	got := s.Faults()
	got.Deployments["gpt-4o"] = Faults{}
	if !s.Faults().Deployments["gpt-4o"].Hang {
		t.Errorf("changing a map passed to SetFaults or returned by Faults changed the simulator's faults")
	}
	_ = context.Background
}
