package app

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/redistest"
	"github.com/sluice-gateway/sluice/internal/usage"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// TestKeySpellingsCannotBypassRules: a body whose routing or limit fields a
// case-insensitive reader (Go's encoding/json keeps the last match) would
// read differently is refused before any backend sees it, so a product's
// model list and its token limit hold whatever the backend's JSON reader.
func TestKeySpellingsCannotBypassRules(t *testing.T) {
	useStore(t, "memory", "fail_open")
	f := newFixture(t, withConfig(limitsYAML))
	tests := []struct{ name, body string }{
		{"model in another case", `{"model":"gpt-4o","Model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`},
		{"max_tokens in another case", `{"model":"gpt-4o","max_tokens":1,"Max_Tokens":500,"messages":[{"role":"user","content":"hi"}]}`},
		{"max_tokens with a Kelvin sign", `{"model":"gpt-4o","max_tokens":1,"max_to\u212Aens":500,"messages":[{"role":"user","content":"hi"}]}`},
		{"n in upper case", `{"model":"gpt-4o","max_tokens":20,"N":100,"messages":[{"role":"user","content":"hi"}]}`},
		{"content hidden from the estimate", `{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"hi","Content":"` +
			strings.Repeat("a long prompt ", 500) + `"}]}`},
		{"duplicate stream", `{"model":"gpt-4o","stream":false,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.seen.all())
			resp, body := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, tt.body)
			if resp.StatusCode != 400 || !strings.Contains(body, `"code":"invalid_request_body"`) {
				t.Errorf("status %d %s; want 400 invalid_request_body", resp.StatusCode, body)
			}
			if n := len(f.seen.all()) - before; n != 0 {
				t.Errorf("the backends saw %d requests; want none", n)
			}
		})
	}
}

// TestChoicesAreReserved: a request for n choices reserves n times its
// completion allowance, so n cannot multiply what a token limit lets through.
func TestChoicesAreReserved(t *testing.T) {
	useStore(t, "memory", "fail_open")
	f := newFixture(t, withConfig(limitsYAML))
	// 100 choices of 50 tokens are 5,000 tokens: more than the product's
	// 3,000 tokens per minute, as max_tokens 3100 alone would be.
	for _, body := range []string{
		`{"model":"gpt-4o","max_tokens":50,"n":100,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-4o","max_tokens":3100,"messages":[{"role":"user","content":"hi"}]}`,
	} {
		resp, got := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, body)
		if resp.StatusCode != 429 || !strings.Contains(got, "can never fit") {
			t.Errorf("%s: %d %s; want 429 saying it can never fit", body, resp.StatusCode, got)
		}
	}
	if n := len(f.seen.all()); n != 0 {
		t.Errorf("the backends saw %d requests; want none", n)
	}
	// A near-int64 max_tokens must not wrap the reservation around.
	resp, got := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey,
		`{"model":"gpt-4o","max_tokens":9223372036854775807,"n":2,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 429 {
		t.Errorf("max_tokens 2^63-1 with n 2: %d %s; want 429", resp.StatusCode, got)
	}
	// Within the limit, n choices are served and charged what they used.
	resp, got = do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey,
		`{"model":"gpt-4o","max_tokens":50,"n":3,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 {
		t.Errorf("n 3 of 50 tokens: %d %s; want 200", resp.StatusCode, got)
	}
}

// rawRequest sends raw bytes to addr (host:port) and reads until the server
// closes the connection or the deadline passes; it returns what was read and
// whether the server closed the connection.
func rawRequest(t *testing.T, addr, req string, deadline time.Duration) (string, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(deadline))
	b, err := io.ReadAll(conn)
	// A reset is a close too: the server closed with unread bytes.
	return string(b), err == nil || errors.Is(err, syscall.ECONNRESET)
}

// TestStrangersCannotHoldConnections: a client without a key is refused from
// its headers, before its body, and its connection is closed at once; a
// client that trickles its body is cut off after server.read_body_timeout.
func TestStrangersCannotHoldConnections(t *testing.T) {
	tmpl := strings.Replace(fxConfigYAML, "shutdown_grace: %s", "shutdown_grace: %s\n  read_body_timeout: 1s", 1)
	f := newFixture(t, withConfig(tmpl))
	addr := strings.TrimPrefix(f.url, "http://")
	for _, tt := range []struct{ name, req string }{
		{"content-length body never sent", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"},
		{"chunked body trickled", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"},
		{"no body, keep-alive", "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"bad key", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nApi-Key: wrong\r\nContent-Length: 50\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, closed := rawRequest(t, addr, tt.req, 5*time.Second)
			if !strings.HasPrefix(resp, "HTTP/1.1 401 ") || !strings.Contains(resp, `"type":"authentication_error"`) {
				t.Errorf("response %q; want 401 with an OpenAI-shaped body", resp)
			}
			if !closed {
				t.Errorf("the connection stayed open after a 401 (read timed out); want it closed at once")
			}
		})
	}
	// Answers other than 401 to a client without a key close too: a 404
	// or a 405 now and then would otherwise keep a keyless connection.
	for _, tt := range []struct{ name, req, status string }{
		{"unknown path", "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", "404"},
		{"wrong method", "GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n", "405"},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "404"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, closed := rawRequest(t, addr, tt.req, 5*time.Second)
			if !strings.HasPrefix(resp, "HTTP/1.1 "+tt.status+" ") || !closed {
				t.Errorf("response %q (closed %v); want %s and the connection closed", resp, closed, tt.status)
			}
		})
	}
	t.Run("body trickled with a key", func(t *testing.T) {
		start := time.Now()
		resp, closed := rawRequest(t, addr, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nApi-Key: "+fxAlphaKey+
			"\r\nContent-Length: 100\r\n\r\n{\"model\":", 10*time.Second)
		if !strings.HasPrefix(resp, "HTTP/1.1 408 ") || !strings.Contains(resp, `"code":"request_timeout"`) || !closed {
			t.Errorf("response %q (closed %v); want 408 request_timeout and the connection closed", resp, closed)
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("cut off after %v; want no sooner than read_body_timeout (1s)", d)
		}
	})
}

// TestMalformedBodyFraming: a chunked body whose framing is broken gets an
// OpenAI-shaped 400, not an empty 200, and the connection is closed.
func TestMalformedBodyFraming(t *testing.T) {
	f := newFixture(t)
	addr := strings.TrimPrefix(f.url, "http://")
	head := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nApi-Key: " + fxAlphaKey + "\r\nTransfer-Encoding: chunked\r\n\r\n"
	for _, tt := range []struct{ name, body string }{
		{"bad chunk size", "zz\r\n{}\r\n0\r\n\r\n"},
		{"huge chunk extension", "2;" + strings.Repeat("a", 100<<10) + "\r\n{}\r\n0\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, closed := rawRequest(t, addr, head+tt.body, 5*time.Second)
			if !strings.HasPrefix(resp, "HTTP/1.1 400 ") || !strings.Contains(resp, `"code":"invalid_request_body"`) || !closed {
				t.Errorf("response %q (closed %v); want 400 invalid_request_body and the connection closed", resp, closed)
			}
		})
	}
	if n := len(f.seen.all()); n != 0 {
		t.Errorf("the backends saw %d requests; want none", n)
	}
}

// TestClientStringsBounded: what a client chooses (a model name, x-user-id,
// x-app-id) is cut and cleaned of control characters before the ledger, the
// log or an error message keeps or repeats it.
func TestClientStringsBounded(t *testing.T) {
	f := newFixture(t)
	huge := strings.Repeat("m", 1<<20)
	resp, body := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, `{"model":"`+huge+`","messages":[]}`)
	if resp.StatusCode != 404 || len(body) > 1024 {
		t.Errorf("unknown 1 MiB model: %d and a body of %d bytes; want 404 with a short body", resp.StatusCode, len(body))
	}
	resp, body = do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, `{"model":"evil\r\n\u0000model","messages":[]}`)
	if resp.StatusCode != 404 || strings.Contains(body, `\r`) || strings.Contains(body, `\u0000`) {
		t.Errorf("model with CR, LF, NUL: %d %s; want 404 without them", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Api-Key", fxAlphaKey)
	req.Header.Set("X-User-Id", strings.Repeat("u", 400<<10))
	req.Header.Set("X-App-Id", "app\t\u0085-1") // a tab and a C1 control: what HTTP lets through
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("chat with long ids: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(f.logs.String(), "\n") {
		if len(line) > 8<<10 {
			t.Errorf("a log line of %d bytes; want client strings cut", len(line))
		}
	}
	store, err := usage.Open(context.Background(), os.Getenv("FX_USAGE_STORE"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rows, err := store.Report(context.Background(), usage.Query{GroupBy: []string{"model", "user", "app"}})
	if err != nil || len(rows) != 3 {
		t.Fatalf("report %v, %v; want three rows", rows, err)
	}
	for _, r := range rows {
		if m := r.Group["model"]; len(m) > wire.MaxModelBytes || strings.ContainsAny(m, "\r\n\x00") {
			t.Errorf("ledger model %q (%d bytes); want at most %d bytes, no control characters", wire.EchoText(m), len(m), wire.MaxModelBytes)
		}
		if u := r.Group["user"]; len(u) > wire.MaxIDBytes {
			t.Errorf("ledger user id of %d bytes; want at most %d", len(u), wire.MaxIDBytes)
		}
		if a := r.Group["app"]; a != "" && a != "app-1" {
			t.Errorf("ledger app id %q; want %q", a, "app-1")
		}
	}
}

// TestPolicyLeaks: the admin key is taken from headers only; two different
// client keys are refused rather than silently ranked; a client's
// forwarding and credential-like headers never reach a backend unless the
// client is a trusted proxy, and the backend learns the real peer.
func TestPolicyLeaks(t *testing.T) {
	tmpl := strings.Replace(fxConfigYAML, "shutdown_grace: %s", "shutdown_grace: %s\n  trusted_proxies: [10.9.9.9]", 1)
	f := newFixture(t, withConfig(tmpl))
	if resp, body := do(t, "GET", f.admin+"/admin/config?api-key="+fxAdminKey, "", ""); resp.StatusCode != 401 {
		t.Errorf("admin key in the query: %d %s; want 401", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Api-Key", fxAlphaKey)
	req.Header.Set("Authorization", "Bearer sk-some-other-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"code":"conflicting_credentials"`) {
		t.Errorf("two different keys: %d %s; want 400 conflicting_credentials", resp.StatusCode, b)
	}

	req, _ = http.NewRequest("POST", f.url+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Api-Key", fxAlphaKey)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("X-Real-Ip", "6.6.6.6")
	req.Header.Set("X-Api-Key", "sk-client-secret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	all := f.seen.all()
	if len(all) != 1 {
		t.Fatalf("the backends saw %d requests; want 1", len(all))
	}
	h := all[0].header
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("backend X-Forwarded-For %q; want the peer, 127.0.0.1", got)
	}
	for _, k := range []string{"Forwarded", "X-Real-Ip", "X-Api-Key"} {
		if v := h.Get(k); v != "" {
			t.Errorf("backend got the client's %s: %q", k, v)
		}
	}
}

// TestBackendAuthFailure: a backend that refuses Sluice's own credential is a
// gateway failure (502 backend_auth_failed, logged with the backend's name,
// counted by the breaker), never a 401 that tells the client its key is bad.
func TestBackendAuthFailure(t *testing.T) {
	tmpl := strings.Replace(fxConfigYAML, `auth: { api_key: "${FX_PTU_KEY}" }`, `auth: { api_key: "not-the-ptu-key" }`, 1)
	f := newFixture(t, withConfig(tmpl))
	resp, body := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, chatBody)
	if resp.StatusCode != 502 || !strings.Contains(body, `"code":"backend_auth_failed"`) || strings.Contains(body, "Access denied") {
		t.Errorf("backend 401: %d %s; want 502 backend_auth_failed without the backend's body", resp.StatusCode, body)
	}
	if !strings.Contains(f.logs.String(), `"backend":"ptu-swedencentral"`) || !strings.Contains(f.logs.String(), "refused Sluice's credential") {
		t.Errorf("no log line names the backend whose credential was refused")
	}
	resp, body = do(t, "GET", f.admin+"/admin/backends", fxAdminKey, "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"errors": 1`) {
		t.Errorf("admin/backends %d %s; want the ptu's error counted", resp.StatusCode, body)
	}
}

// TestTrustedProxyForwarding: behind a trusted proxy the backend gets the
// proxy's X-Forwarded-For with the proxy's address added, and the proxy's
// Forwarded header.
func TestTrustedProxyForwarding(t *testing.T) {
	tmpl := strings.Replace(fxConfigYAML, "shutdown_grace: %s", "shutdown_grace: %s\n  trusted_proxies: [127.0.0.0/8]", 1)
	f := newFixture(t, withConfig(tmpl))
	req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Api-Key", fxAlphaKey)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("X-Api-Key", "sk-client-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	all := f.seen.all()
	if len(all) != 1 {
		t.Fatalf("the backends saw %d requests; want 1", len(all))
	}
	h := all[0].header
	if got := h.Get("X-Forwarded-For"); got != "6.6.6.6, 127.0.0.1" {
		t.Errorf("backend X-Forwarded-For %q; want %q", got, "6.6.6.6, 127.0.0.1")
	}
	if got := h.Get("Forwarded"); got != "for=6.6.6.6" {
		t.Errorf("backend Forwarded %q; want the trusted proxy's", got)
	}
	if got := h.Get("X-Api-Key"); got != "" {
		t.Errorf("backend got X-Api-Key %q from a trusted proxy's client; credentials never pass", got)
	}
}

// TestReloadRefusesRestartOnlyFields: a reload that changes what is built
// once at start (here usage.store) is refused with the field named, and the
// old config and ledger stay in force; before, it was reported applied while
// records kept going to the old store.
func TestReloadRefusesRestartOnlyFields(t *testing.T) {
	f := newFixture(t)
	t.Setenv("FX_USAGE_STORE", "sqlite:"+t.TempDir()+"/other.db")
	resp, body := do(t, "POST", f.admin+"/admin/reload", fxAdminKey, "")
	if resp.StatusCode != 422 || !strings.Contains(body, "usage.store") || !strings.Contains(body, "restart") {
		t.Errorf("reload changing usage.store: %d %s; want 422 naming usage.store and saying it needs a restart", resp.StatusCode, body)
	}
	if got := f.gw.Table().Config.Usage.Store; strings.Contains(got, "other.db") {
		t.Errorf("usage.store in force is %q after a refused reload", got)
	}
}

func TestCheckRestartOnly(t *testing.T) {
	base := func() *config.Config {
		return &config.Config{Server: config.Server{Listen: "127.0.0.1:1"}, Usage: config.Usage{Store: "sqlite:a"}}
	}
	for _, tt := range []struct {
		name   string
		change func(*config.Config)
		want   string
	}{
		{"server.listen", func(c *config.Config) { c.Server.Listen = "127.0.0.1:2" }, "server.listen"},
		{"admin.listen", func(c *config.Config) { c.Admin.Listen = "127.0.0.1:3" }, "admin.listen"},
		{"usage.store", func(c *config.Config) { c.Usage.Store = "postgres://x" }, "usage.store"},
		{"usage.journal", func(c *config.Config) { c.Usage.Journal = "j" }, "usage.journal"},
		{"metrics", func(c *config.Config) { c.Metrics.Dimensions = []string{"model"} }, "metrics"},
		{"tracing", func(c *config.Config) { c.Tracing.Endpoint = "http://collector" }, "tracing"},
		{"max connections", func(c *config.Config) { c.Server.MaxConnections = 5 }, "server.max_connections"},
		{"two at once", func(c *config.Config) { c.Server.Listen = "x"; c.Usage.Store = "y" }, "server.listen, usage.store"},
		{"a reloadable field", func(c *config.Config) { c.Server.MaxRequestBytes = 7 }, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			next := base()
			tt.change(next)
			err := checkRestartOnly(base(), next)
			var re *RestartError
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("checkRestartOnly = %v; want nil", err)
			case tt.want != "" && (!errors.As(err, &re) || strings.Join(re.Fields, ", ") != tt.want):
				t.Errorf("checkRestartOnly = %v; want a RestartError naming %s", err, tt.want)
			}
		})
	}
}

// TestReloadRetiresLimiter: a reload that changes state.* retires the old
// limiter (its queue handed to Redis, its client closed), one that keeps it
// keeps the limiter, and after shutdown no goroutine of either is left.
func TestReloadRetiresLimiter(t *testing.T) {
	rs := redistest.Start(t)
	before := runtime.NumGoroutine()
	useStore(t, rs.URL(), "fail_open")
	f := newFixture(t, withConfig(limitsYAML))
	if resp, body := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, limitedChat); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	first := f.gw.Table().Limiter
	if err := f.gw.Reload(); err != nil {
		t.Fatal(err)
	}
	if f.gw.Table().Limiter != first {
		t.Errorf("a reload that kept state.* replaced the limiter")
	}
	t.Setenv("FX_ON_STORE_ERROR", "fail_closed")
	if err := f.gw.Reload(); err != nil {
		t.Fatal(err)
	}
	if f.gw.Table().Limiter == first {
		t.Errorf("a reload that changed state.on_store_error kept the limiter")
	}
	if resp, body := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, limitedChat); resp.StatusCode != 200 {
		t.Fatalf("after the reload: %d %s", resp.StatusCode, body)
	}
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	for _, s := range f.simServers {
		s.Close()
	}
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after shutdown; want at most %d as before:\n%s",
				runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestContentEncodingRefused: a body labelled compressed is refused, so that
// a backend that decodes bodies by that label cannot read other bytes than
// the ones Sluice checked.
func TestContentEncodingRefused(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Api-Key", fxAlphaKey)
	req.Header.Set("Content-Encoding", "br")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 415 || !strings.Contains(string(body), `"code":"unsupported_content_encoding"`) {
		t.Errorf("Content-Encoding br: %d %s; want 415 unsupported_content_encoding", resp.StatusCode, body)
	}
	if n := len(f.seen.all()); n != 0 {
		t.Errorf("the backends saw %d requests; want none", n)
	}
}
