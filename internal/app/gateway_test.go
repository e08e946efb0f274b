package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/simulator"
)

func do(t *testing.T, method, url, key, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Api-Key", key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

const chatBody = `{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`

func TestAdminAPI(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, method, path, key string
		status                  int
		contains                string
	}{
		{"healthz needs no key", "GET", "/healthz", "", 200, "ok"},
		{"readyz needs no key", "GET", "/readyz", "", 200, "ready"},
		{"config needs the key", "GET", "/admin/config", "", 401, "invalid_api_key"},
		{"config wrong key", "GET", "/admin/config", fxAlphaKey, 401, "invalid_api_key"},
		{"config", "GET", "/admin/config", fxAdminKey, 200, `"api_key": "[REDACTED]"`},
		{"reload needs the key", "POST", "/admin/reload", "", 401, "invalid_api_key"},
		{"reload wrong method", "GET", "/admin/reload", fxAdminKey, 405, "method_not_allowed"},
		{"reload", "POST", "/admin/reload", fxAdminKey, 200, `"reloaded"`},
		{"unknown", "GET", "/admin/nothing", fxAdminKey, 404, "not_found"},
		{"client API is not on the admin port", "POST", "/v1/chat/completions", fxAlphaKey, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, f.admin+tt.path, tt.key, "")
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.contains) {
				t.Errorf("%s %s = %d %s; want %d containing %q", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.contains)
			}
		})
	}
	// The effective config shows defaults.
	_, body := do(t, "GET", f.admin+"/admin/config", fxAdminKey, "")
	var cfg struct {
		Server struct {
			MaxRequestBytes int64 `json:"max_request_bytes"`
		} `json:"server"`
	}
	if err := json.Unmarshal([]byte(body), &cfg); err != nil || cfg.Server.MaxRequestBytes != 4194304 {
		t.Errorf("effective config max_request_bytes = %d (%v); want the default 4194304", cfg.Server.MaxRequestBytes, err)
	}
}

func TestReload(t *testing.T) {
	f := newFixture(t)
	if resp, _ := do(t, "POST", f.url+"/v1/chat/completions", fxBetaKey, chatBody); resp.StatusCode != 401 {
		t.Fatalf("status before reload = %d; want 401 for a key not configured yet", resp.StatusCode)
	}

	// A valid change is swapped in.
	f.writeConfig("  - name: team-beta\n    product: chat-only\n    keys: [\"" + fxBetaKey + "\"]\n")
	resp, body := do(t, "POST", f.admin+"/admin/reload", fxAdminKey, "")
	if resp.StatusCode != 200 {
		t.Fatalf("reload = %d %s; want 200", resp.StatusCode, body)
	}
	if resp, body := do(t, "POST", f.url+"/v1/chat/completions", fxBetaKey, chatBody); resp.StatusCode != 200 {
		t.Fatalf("status after reload = %d %s; want 200 with the new key", resp.StatusCode, body)
	}

	// An invalid change is refused whole, with the reason, and the old config stays.
	if err := os.WriteFile(f.cfgPath, []byte("server:\n  listen: [oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, body = do(t, "POST", f.admin+"/admin/reload", fxAdminKey, "")
	if resp.StatusCode != 422 || !strings.Contains(body, "invalid_config") || !strings.Contains(body, f.cfgPath) {
		t.Errorf("reload of a broken file = %d %s; want 422 naming the file", resp.StatusCode, body)
	}
	if resp, _ := do(t, "POST", f.url+"/v1/chat/completions", fxBetaKey, chatBody); resp.StatusCode != 200 {
		t.Errorf("status after a refused reload = %d; want the previous config still serving", resp.StatusCode)
	}
	if !strings.Contains(f.logs.String(), "config reload refused") {
		t.Errorf("logs do not say the reload was refused")
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	f := newFixture(t)
	stop := reloadOnHUP(context.Background(), f.gw, f.gw.log)
	defer stop()
	f.writeConfig("  - name: team-beta\n    product: chat-only\n    keys: [\"" + fxBetaKey + "\"]\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := f.gw.Table().Subscription(fxBetaKey); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the config within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReloadKeepsStreams reloads while a stream is half-way: the stream
// finishes on the config it started with.
func TestReloadKeepsStreams(t *testing.T) {
	f := newFixture(t, withLatency(simulator.Latency{PerToken: 20 * time.Millisecond}))
	req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Api-Key", fxAlphaKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	// Remove team-alpha's product access entirely: new requests are refused,
	// the running stream is not.
	f.writeConfig("")
	cfg, _ := os.ReadFile(f.cfgPath)
	if err := os.WriteFile(f.cfgPath, []byte(strings.Replace(string(cfg), "${FX_ALPHA_KEY}", "sk-rotated", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.gw.Reload(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Errorf("stream after reload: err %v, tail %q; want it to finish with [DONE]", err, tail(string(rest)))
	}
	if resp, _ := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, chatBody); resp.StatusCode != 401 {
		t.Errorf("new request with the rotated-out key = %d; want 401", resp.StatusCode)
	}
}

// TestGracefulShutdown cancels the gateway while a stream runs: the stream
// finishes, readiness turns 503, new connections are refused, Serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	f := newFixture(t, withLatency(simulator.Latency{PerToken: 20 * time.Millisecond}))
	req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","stream":true,"max_tokens":25,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Api-Key", fxAlphaKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- f.stop() }()
	rest, err := io.ReadAll(br)
	if err != nil || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Errorf("stream during shutdown: err %v, tail %q; want it to finish", err, tail(string(rest)))
	}
	if f.gw.ready.Load() {
		t.Error("still ready during shutdown")
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve returned %v; want nil after a graceful shutdown", err)
	}
	if _, err := http.Get(f.url + "/v1/models"); err == nil {
		t.Error("the gateway still accepts connections after shutdown")
	}
}

// TestShutdownGraceCutsLongStreams: a stream longer than the grace is cut.
func TestShutdownGraceCutsLongStreams(t *testing.T) {
	f := newFixture(t, withGrace("200ms"), withLatency(simulator.Latency{PerToken: 100 * time.Millisecond}))
	req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Api-Key", fxAlphaKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	if err := f.stop(); err != nil {
		t.Errorf("Serve returned %v; want nil", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v; want about the 200ms grace", d)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the long stream ended cleanly; want it cut at the end of the grace period")
	}
}

func tail(s string) string {
	if len(s) > 80 {
		return "..." + s[len(s)-80:]
	}
	return s
}

// TestNoGoroutineLeak serves streams and plain requests, shuts everything
// down, and checks that no goroutine outlives it.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	f := newFixture(t)
	for i := 0; i < 3; i++ {
		do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, chatBody)
		do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, `{"model":"gpt-4o","stream":true,"max_tokens":5,"messages":[]}`)
	}
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	for _, s := range f.simServers {
		s.Close()
	}
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after shutdown; want at most %d as before:\n%s",
				runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAdminProfiles(t *testing.T) {
	f := newFixture(t)
	if resp, _ := do(t, "GET", f.admin+"/admin/debug/pprof/heap", "", ""); resp.StatusCode != 401 {
		t.Errorf("heap profile without the key: %d; want 401", resp.StatusCode)
	}
	resp, body := do(t, "GET", f.admin+"/admin/debug/pprof/goroutine?debug=1", fxAdminKey, "")
	if resp.StatusCode != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("goroutine profile: %d %.80s; want 200 and the profile", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", f.admin+"/admin/debug/pprof/nothing", fxAdminKey, ""); resp.StatusCode != 404 {
		t.Errorf("unknown profile: %d; want 404", resp.StatusCode)
	}
}
