package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/proxy"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// stageFunc is a Stage from a function.
type stageFunc func(ctx context.Context, r *proxy.Request) (*proxy.Answer, error)

func (f stageFunc) Before(ctx context.Context, r *proxy.Request) (*proxy.Answer, error) {
	return f(ctx, r)
}

// recordingTap rewrites stream events and bodies with edit and records
// what it saw and how the request ended.
type recordingTap struct {
	edit    func([]byte) ([]byte, error)
	mu      sync.Mutex
	events  int
	bodies  int
	ends    []proxy.Outcome
	endedCh chan struct{}
}

func newRecordingTap(edit func([]byte) ([]byte, error)) *recordingTap {
	return &recordingTap{edit: edit, endedCh: make(chan struct{})}
}

func (t *recordingTap) Event(ev []byte) ([]byte, error) {
	t.mu.Lock()
	t.events++
	t.mu.Unlock()
	return t.edit(ev)
}

func (t *recordingTap) Body(b []byte) ([]byte, error) {
	t.mu.Lock()
	t.bodies++
	t.mu.Unlock()
	return t.edit(b)
}

func (t *recordingTap) End(o proxy.Outcome) {
	t.mu.Lock()
	t.ends = append(t.ends, o)
	t.mu.Unlock()
	close(t.endedCh)
}

// TestStageAnswers: a stage that answers a request (a cache hit, say) keeps
// it from every backend, and the request still ends like any other: one
// access-log line with its status, and its taps told.
func TestStageAnswers(t *testing.T) {
	tap := newRecordingTap(func(b []byte) ([]byte, error) { return b, nil })
	stage := stageFunc(func(_ context.Context, r *proxy.Request) (*proxy.Answer, error) {
		if r.Subscription.Name != "team-alpha" || r.Model != "gpt-4o" || r.Op != wire.OpChatCompletions {
			t.Errorf("stage saw %s %s %v", r.Subscription.Name, r.Model, r.Op)
		}
		r.AddTap(tap)
		return &proxy.Answer{Status: 200, Header: http.Header{"X-Sluice-Cache": {"hit-exact"}},
			Body: []byte(`{"id":"cached","choices":[]}`), Cache: "hit"}, nil
	})
	h := newHarnessWith(t, "", proxy.Options{Stages: []proxy.Stage{stage}})
	resp := h.post(t, "/v1/chat/completions", alphaKey, `{"model":"gpt-4o","messages":[]}`)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != `{"id":"cached","choices":[]}` || resp.Header.Get("X-Sluice-Cache") != "hit-exact" {
		t.Errorf("got %d %s cache %q; want the stage's answer", resp.StatusCode, body, resp.Header.Get("X-Sluice-Cache"))
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("the stage's answer has no x-request-id")
	}
	if n := h.azure.count() + h.openai.count(); n != 0 {
		t.Errorf("the backends saw %d requests; want none", n)
	}
	<-tap.endedCh
	if tap.bodies != 1 || len(tap.ends) != 1 || !tap.ends[0].Complete || tap.ends[0].Status != 200 {
		t.Errorf("tap saw %d bodies, ends %+v; want one body and one complete end", tap.bodies, tap.ends)
	}
	if !strings.Contains(h.logs.String(), `"status":200`) {
		t.Errorf("no access-log line for the answered request: %s", h.logs.String())
	}
}

// TestStageRewritesAndRefuses: a stage may replace the body the backend
// gets, and may refuse a request with its own error.
func TestStageRewritesAndRefuses(t *testing.T) {
	stage := stageFunc(func(_ context.Context, r *proxy.Request) (*proxy.Answer, error) {
		if bytes.Contains(r.Body, []byte("forbidden")) {
			return nil, wire.NewError(http.StatusForbidden, wire.TypePermission, "content_filter", "Refused by a stage.")
		}
		return nil, r.SetBody(bytes.ReplaceAll(r.Body, []byte("secret@example.com"), []byte("<Email_1>")))
	})
	h := newHarnessWith(t, "", proxy.Options{Stages: []proxy.Stage{stage}})
	resp := h.post(t, "/v1/chat/completions", alphaKey, `{"model":"gpt-4o","messages":[{"role":"user","content":"mail secret@example.com"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := h.azure.last(t).Body; strings.Contains(got, "secret@example.com") || !strings.Contains(got, "<Email_1>") {
		t.Errorf("backend got %s; want the stage's rewrite", got)
	}
	resp = h.post(t, "/v1/chat/completions", alphaKey, `{"model":"gpt-4o","messages":[{"role":"user","content":"forbidden"}]}`)
	var e apiError
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != 403 || e.Error.Code != "content_filter" {
		t.Errorf("refused: %d %+v; want 403 content_filter", resp.StatusCode, e)
	}
	if h.azure.count() != 1 {
		t.Errorf("the backend saw %d requests; want only the first", h.azure.count())
	}
}

// TestTapsOnStreamsAndBodies: a tap sees every event of a stream after the
// meter (so not the usage chunk Sluice asked for), may rewrite or end it,
// and may rewrite a whole body before its headers go out.
func TestTapsOnStreamsAndBodies(t *testing.T) {
	var tap *recordingTap
	newTap := func(edit func([]byte) ([]byte, error)) proxy.Stage {
		return stageFunc(func(_ context.Context, r *proxy.Request) (*proxy.Answer, error) {
			tap = newRecordingTap(edit)
			r.AddTap(tap)
			return nil, nil
		})
	}

	t.Run("stream rewritten", func(t *testing.T) {
		h := newHarnessWith(t, "", proxy.Options{Stages: []proxy.Stage{newTap(func(ev []byte) ([]byte, error) {
			if strings.Contains(string(ev), `"usage"`) && !strings.Contains(string(ev), `"usage":null`) {
				t.Errorf("a tap saw the usage chunk the client did not ask for: %s", ev)
			}
			return bytes.ReplaceAll(ev, []byte("word"), []byte("WORD")), nil
		})}})
		h.azure.setHandler(streamWithUsage)
		resp := h.post(t, "/v1/chat/completions", alphaKey, `{"model":"gpt-4o","stream":true,"messages":[]}`)
		body, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(body), "word") || !strings.Contains(string(body), "WORD") || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
			t.Errorf("stream %q; want every word rewritten and the stream whole", body)
		}
		<-tap.endedCh
		if o := tap.ends[0]; !o.Complete || !o.Stream || o.Usage.Total != 25 {
			t.Errorf("end %+v; want a complete stream of 25 tokens", o)
		}
	})

	t.Run("stream ended by a tap", func(t *testing.T) {
		h := newHarnessWith(t, "", proxy.Options{Stages: []proxy.Stage{newTap(func(ev []byte) ([]byte, error) {
			if strings.Contains(string(ev), "word 2") {
				return []byte("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}\n\ndata: [DONE]\n\n"), proxy.ErrEndStream
			}
			return ev, nil
		})}})
		h.azure.setHandler(streamWithUsage)
		resp := h.post(t, "/v1/chat/completions", alphaKey, `{"model":"gpt-4o","stream":true,"messages":[]}`)
		body, err := io.ReadAll(resp.Body)
		if err != nil || strings.Contains(string(body), "word 3") || !strings.HasSuffix(string(body), `"finish_reason":"content_filter"}]}`+"\n\ndata: [DONE]\n\n") {
			t.Errorf("stream %q (%v); want it ended cleanly after the tap's events", body, err)
		}
	})

	t.Run("body rewritten and refused", func(t *testing.T) {
		h := newHarnessWith(t, "", proxy.Options{Stages: []proxy.Stage{newTap(func(b []byte) ([]byte, error) {
			if bytes.Contains(b, []byte("chatcmpl-1")) {
				return []byte(`{"rewritten":true}`), nil
			}
			return nil, wire.NewError(http.StatusForbidden, wire.TypePermission, "content_filter", "The answer was refused.")
		})}})
		resp := h.post(t, "/v1/chat/completions", alphaKey, `{"model":"gpt-4o","messages":[]}`)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != `{"rewritten":true}` || resp.ContentLength != int64(len(body)) {
			t.Errorf("got %d %q (length %d); want the tap's body with its length", resp.StatusCode, body, resp.ContentLength)
		}
		h.azure.setHandler(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"other","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`)
		})
		resp = h.post(t, "/v1/chat/completions", alphaKey, `{"model":"gpt-4o","messages":[]}`)
		var e apiError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		if resp.StatusCode != 403 || e.Error.Code != "content_filter" {
			t.Errorf("refused body: %d %+v; want the tap's 403", resp.StatusCode, e)
		}
		<-tap.endedCh
		if o := tap.ends[0]; o.Usage.Total != 7 || o.Complete {
			t.Errorf("end %+v; want the backend's 7 tokens charged, and not complete", o)
		}
	})
}

// streamWithUsage streams three chunks and the usage chunk Sluice asks for
// (the recorder has read the request already).
func streamWithUsage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	for i := 1; i <= 3; i++ {
		_, _ = io.WriteString(w, `data: {"id":"c","choices":[{"index":0,"delta":{"content":"word `+string(rune('0'+i))+`"}}]}`+"\n\n")
	}
	_, _ = io.WriteString(w, `data: {"id":"c","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25}}`+"\n\n")
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

// headerAuth names the subscription in x-test-subscription: an
// Authenticator of another kind than keys.
type headerAuth struct{}

func (headerAuth) Authenticate(r *http.Request, t *route.Table) (*route.Subscription, error) {
	name := r.Header.Get("X-Test-Subscription")
	if name == "" {
		return nil, proxy.ErrNoCredential
	}
	if name != "team-alpha" {
		return nil, wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "invalid_token", "Unknown subscription.")
	}
	sub, _ := t.Subscription(alphaKey)
	return sub, nil
}

// TestAuthenticators: authenticators are asked in order; one that finds no
// credential of its kind passes to the next, and one that finds a bad one
// refuses the request.
func TestAuthenticators(t *testing.T) {
	h := newHarnessWith(t, "", proxy.Options{Authenticators: []proxy.Authenticator{headerAuth{}, proxy.Keys{}}})
	for _, tt := range []struct {
		name   string
		key    string
		hdr    []string
		status int
	}{
		{"header credential", "", []string{"X-Test-Subscription", "team-alpha"}, 200},
		{"bad header credential", alphaKey, []string{"X-Test-Subscription", "team-x"}, 401},
		{"falls through to keys", alphaKey, nil, 200},
		{"no credential at all", "", nil, 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.post(t, "/v1/chat/completions", tt.key, `{"model":"gpt-4o","messages":[]}`, tt.hdr...)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d; want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

// failingCredential is a credential whose token endpoint does not answer.
type failingCredential struct{}

func (failingCredential) Apply(context.Context, http.Header) error {
	return errors.New("token endpoint: connection refused")
}

// TestCredentialUnavailable: a backend whose credential cannot be had is
// not sent the request and not blamed for it: its breaker stays closed, the
// request goes to another member when there is one, and otherwise the
// client gets 503 backend_credential_unavailable.
func TestCredentialUnavailable(t *testing.T) {
	good := &recorder{}
	srv := httptest.NewServer(good)
	t.Cleanup(srv.Close)
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
backends:
  - { name: mi, url: "%[1]s", auth: { api_key: unused }, deployments: { gpt-4o: gpt-4o, gpt-4o-only: gpt-4o },
      circuit_breaker: { failures: 1, status_codes: ["500-599"], errors: [timeout, connection] } }
  - { name: keyed, url: "%[1]s", auth: { api_key: k }, deployments: { gpt-4o: gpt-4o } }
pools:
  - { name: spill, members: [{ backend: mi, priority: 1 }, { backend: keyed, priority: 2 }], retry: { attempts: 2, on: ["500-599"] } }
  - { name: only, members: [{ backend: mi }] }
models: { gpt-4o: spill, gpt-4o-only: only }
products: [{ name: p, models: [gpt-4o, gpt-4o-only] }]
subscriptions: [{ name: s, product: p, keys: [client-key] }]
`, srv.URL)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	table, err := route.Compile(cfg, route.Env{Credential: func(b config.Backend) (backend.Credential, error) {
		if b.Name == "mi" {
			return failingCredential{}, nil
		}
		return nil, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	table.Activate()
	gw := httptest.NewServer(proxy.New(proxy.Options{Table: func() *route.Table { return table }}))
	t.Cleanup(gw.Close)
	post := func(model string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", gw.URL+"/v1/chat/completions", strings.NewReader(`{"model":"`+model+`","messages":[]}`))
		req.Header.Set("Api-Key", "client-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	if resp, body := post("gpt-4o"); resp.StatusCode != 200 || resp.Header.Get("X-Sluice-Backend") != "keyed" {
		t.Errorf("with another member: %d from %q %s; want 200 from keyed", resp.StatusCode, resp.Header.Get("X-Sluice-Backend"), body)
	}
	resp, body := post("gpt-4o-only")
	if resp.StatusCode != 503 || !strings.Contains(body, `"code":"backend_credential_unavailable"`) {
		t.Errorf("alone: %d %s; want 503 backend_credential_unavailable", resp.StatusCode, body)
	}
	mi := table.Backends["mi"]
	if st := mi.State.Breaker.Snapshot(time.Now()).State.String(); st != "closed" {
		t.Errorf("mi's breaker is %s; want closed: a credential outage is not the backend's failure", st)
	}
	if n := mi.State.CredentialErrors(); n != 2 {
		t.Errorf("mi counted %d credential errors; want 2", n)
	}
	if good.count() != 1 {
		t.Errorf("the backends saw %d requests; want 1 (keyed's)", good.count())
	}
}
