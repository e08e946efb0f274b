package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/pgtest"
)

// adminCall sends an admin API request with the admin key.
func adminCall(t *testing.T, base, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Api-Key", fxAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out
}

// chatStatus sends a chat request with key and returns the status and body.
func chatStatus(t *testing.T, base, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Api-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// within polls cond until it holds or d has passed.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRuntimeSubscriptionsTwoInstances: a subscription created through
// instance A's admin API serves through instance B (one PostgreSQL) within
// 2 s; a regenerated key stops working on both; a suspended subscription
// is refused; the config file's subscriptions are read-only; changes are
// audited; no key reaches a log.
func TestRuntimeSubscriptionsTwoInstances(t *testing.T) {
	pg := pgtest.Start(t)
	t.Setenv("FX_USAGE_STORE", pg.URL())
	f := newFixture(t)
	// Instance B: the same config and PostgreSQL, a journal of its own.
	t.Setenv("FX_USAGE_JOURNAL", filepath.Join(t.TempDir(), "b.journal"))
	var logsB lockedBuffer
	gb, err := NewGateway(func() (*config.Config, error) { return config.Load(f.cfgPath, os.LookupEnv) }, slogTo(&logsB), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gb.Serve(ctx, ln, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	b := "http://" + ln.Addr().String()

	status, sub := adminCall(t, f.admin, "POST", "/admin/subscriptions", `{"name":"team-delta","product":"standard"}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, sub)
	}
	created := time.Now()
	key, second := sub["primary_key"].(string), sub["secondary_key"].(string)
	if s, body := chatStatus(t, f.url, key); s != 200 {
		t.Fatalf("the new key on A: %d %s", s, body)
	}
	within(t, 2*time.Second-time.Since(created), "the new key serves on B", func() bool {
		s, _ := chatStatus(t, b, key)
		return s == 200
	})
	if s, list := adminCall(t, f.admin, "GET", "/admin/subscriptions", ""); s != 200 || strings.Contains(toJSON(list), key) ||
		!strings.Contains(toJSON(list), key[len(key)-4:]) {
		t.Errorf("list: %d %v; want the last four characters only", s, list)
	}
	if s, _ := adminCall(t, f.admin, "PATCH", "/admin/subscriptions/team-alpha", `{"state":"suspended"}`); s != 409 {
		t.Errorf("suspending a config subscription: %d; want 409", s)
	}

	status, regen := adminCall(t, f.admin, "POST", "/admin/subscriptions/team-delta/regenerate", `{"key":"primary"}`)
	if status != 200 || regen["primary_key"] == key {
		t.Fatalf("regenerate: %d %v", status, regen)
	}
	newKey := regen["primary_key"].(string)
	if s, _ := chatStatus(t, f.url, key); s != 401 {
		t.Errorf("the old key on A after regenerate: %d; want 401", s)
	}
	changed := time.Now()
	within(t, 2*time.Second-time.Since(changed), "the old key refused on B", func() bool {
		s, _ := chatStatus(t, b, key)
		return s == 401
	})
	for _, k := range []string{newKey, second} {
		if s, body := chatStatus(t, b, k); s != 200 {
			t.Errorf("a current key on B: %d %s", s, body)
		}
	}

	if s, _ := adminCall(t, f.admin, "PATCH", "/admin/subscriptions/team-delta", `{"state":"suspended"}`); s != 200 {
		t.Fatalf("suspend: %d", s)
	}
	if s, body := chatStatus(t, f.url, newKey); s != 403 || !strings.Contains(body, "subscription_suspended") {
		t.Errorf("suspended on A: %d %s", s, body)
	}
	within(t, 2*time.Second, "suspended on B", func() bool {
		s, _ := chatStatus(t, b, newKey)
		return s == 403
	})
	if s, audit := adminCall(t, f.admin, "GET", "/admin/subscriptions-audit", ""); s != 200 ||
		!strings.Contains(toJSON(audit), `"action":"suspend"`) || !strings.Contains(toJSON(audit), `"actor":"admin-key"`) {
		t.Errorf("audit: %d %v", s, audit)
	}
	// The CLI against the same admin API.
	t.Setenv("SLUICE_ADMIN_KEY", fxAdminKey)
	var out, errb bytes.Buffer
	if err := Main(context.Background(), []string{"subscriptions", "--admin", f.admin, "activate", "team-delta"}, &out, &errb); err != nil {
		t.Fatalf("sluice subscriptions activate: %v %s", err, errb.String())
	}
	out.Reset()
	if err := Main(context.Background(), []string{"subscriptions", "--admin", f.admin, "list"}, &out, &errb); err != nil ||
		!strings.Contains(out.String(), `"team-delta"`) || strings.Contains(out.String(), newKey) {
		t.Errorf("sluice subscriptions list: %v %s %s", err, out.String(), errb.String())
	}
	if s, body := chatStatus(t, f.url, newKey); s != 200 {
		t.Errorf("activated again: %d %s", s, body)
	}
	if s, _ := adminCall(t, f.admin, "DELETE", "/admin/subscriptions/team-delta", ""); s != 204 {
		t.Errorf("delete: %d", s)
	}
	for _, k := range []string{key, newKey, second} {
		for name, logs := range map[string]string{"A": f.logs.String(), "B": logsB.String()} {
			if strings.Contains(logs, k) {
				t.Errorf("a key is in %s's log", name)
			}
		}
	}
}

func toJSON(v any) string {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(v)
	return b.String()
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
