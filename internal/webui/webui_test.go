package webui

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/route"
)

const testAdminKey = "sk-test-admin-0123456789"

// fakeAdmin stands for the admin API: 200 with the admin key, 401 without.
func fakeAdmin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testAdminKey {
			http.Error(w, `{"error":{"message":"no"}}`, http.StatusUnauthorized)
			return
		}
		if r.Header.Get("Cookie") != "" {
			http.Error(w, "the browser's cookie reached the admin API", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"path":"` + r.URL.Path + `","method":"` + r.Method + `"}`))
	})
}

func newTestUI(t *testing.T) (*UI, *httptest.Server) {
	t.Helper()
	u := New(Options{Table: func() *route.Table { return nil }, Admin: fakeAdmin(), Interval: 10 * time.Millisecond})
	srv := httptest.NewServer(u.Dashboard())
	t.Cleanup(srv.Close)
	t.Cleanup(u.Close) // runs first: ends the streams before the server waits for them
	return u, srv
}

// signIn signs a client with a cookie jar in and returns it with the CSRF token.
func signIn(t *testing.T, srv *httptest.Server) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	req, _ := http.NewRequest("POST", srv.URL+"/ui/api/session", strings.NewReader(`{"key":"`+testAdminKey+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("sign-in: status %d; want 200", resp.StatusCode)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/ui/" {
		t.Fatalf("session cookie = %+v; want HttpOnly, SameSite=Strict, Path=/ui/", cookie)
	}
	var st sessionState
	req, _ = http.NewRequest("GET", srv.URL+"/ui/api/session", nil)
	resp2, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if err := decodeJSON(resp2, &st); err != nil || st.CSRFToken == "" {
		t.Fatalf("session: %v, %+v", err, st)
	}
	return c, st.CSRFToken
}

func TestDashboardSession(t *testing.T) {
	_, srv := newTestUI(t)
	// A wrong key opens nothing.
	resp, err := http.Post(srv.URL+"/ui/api/session", "application/json", strings.NewReader(`{"key":"wrong"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("wrong key: status %d, cookies %v; want 401 and none", resp.StatusCode, resp.Cookies())
	}
	// Nothing is shown without a session.
	resp, err = http.Get(srv.URL + "/ui/api/admin/backends")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no session: status %d; want 401", resp.StatusCode)
	}
	c, csrf := signIn(t, srv)
	for _, tc := range []struct {
		name, method, origin, token string
		want                        int
	}{
		{"read", "GET", "", "", 200},
		{"change with token", "POST", "", csrf, 200},
		{"change same origin", "POST", srv.URL, csrf, 200},
		{"change without token", "POST", "", "", 403},
		{"change with a wrong token", "POST", "", "x" + csrf, 403},
		{"change from another origin", "POST", "http://evil.example", csrf, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+"/ui/api/admin/reload", nil)
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.token != "" {
				req.Header.Set(csrfHeader, tc.token)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d; want %d", resp.StatusCode, tc.want)
			}
		})
	}
	// Signed out, the cookie opens nothing.
	req, _ := http.NewRequest("DELETE", srv.URL+"/ui/api/session", nil)
	req.Header.Set(csrfHeader, csrf)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("sign out: %v %v", resp, err)
	}
	resp, err = c.Get(srv.URL + "/ui/api/admin/backends")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after sign-out: status %d; want 401", resp.StatusCode)
	}
}

// TestLiveStreamsDoNotLeak opens live streams, drops them, and checks that
// every stream and its goroutine is gone.
func TestLiveStreamsDoNotLeak(t *testing.T) {
	u, srv := newTestUI(t)
	c, _ := signIn(t, srv)
	time.Sleep(50 * time.Millisecond) // the sampler's goroutine is up
	before := runtime.NumGoroutine()
	const n = 20
	cancels := make([]context.CancelFunc, 0, n)
	for range n {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/ui/api/live", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("content type %q", ct)
		}
		// Read the history and one snapshot.
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		events := 0
		for events < 2 && sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: ") {
				events++
			}
		}
		if events < 2 {
			t.Fatalf("got %d events; want history and a snapshot", events)
		}
	}
	if got := u.feed.streams(); got != n {
		t.Fatalf("%d streams open; want %d", got, n)
	}
	for _, cancel := range cancels {
		cancel()
	}
	c.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for u.feed.streams() > 0 || runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("after the browsers left: %d streams, %d goroutines (%d before)", u.feed.streams(), runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCloseEndsStreams checks that Close ends the open streams, so that a
// shutdown does not wait for dashboards.
func TestCloseEndsStreams(t *testing.T) {
	u, srv := newTestUI(t)
	c, _ := signIn(t, srv)
	resp, err := c.Get(srv.URL + "/ui/api/live")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
		}
		close(done)
	}()
	u.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream is still open 5 s after Close")
	}
}

func TestPages(t *testing.T) {
	u := New(Options{Table: func() *route.Table { return nil }, Admin: fakeAdmin()})
	defer u.Close()
	chat := httptest.NewServer(u.Chat())
	defer chat.Close()
	for _, tc := range []struct {
		path, ctype string
		status      int
	}{
		{"/chat/", "text/html; charset=utf-8", 200},
		{"/chat/chat.js", "text/javascript; charset=utf-8", 200},
		{"/chat/vendor/preact.module.js", "text/javascript; charset=utf-8", 200},
		{"/chat/common.css", "text/css; charset=utf-8", 200},
		{"/chat/nothing.js", "", 404},
		{"/chat/dashboard.html", "", 404},
	} {
		resp, err := http.Get(chat.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s: %d %q; want %d %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, tc.ctype)
		}
		if tc.path == "/chat/" {
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self' 'sha256-") || strings.Contains(csp, "unsafe") {
				t.Errorf("CSP %q; want own scripts and the import map's hash only", csp)
			}
		}
	}
}

func decodeJSON(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestSignInThrottle checks that an address that fails to sign in ten
// times in a minute must wait for the minute's end, even with the right key.
func TestSignInThrottle(t *testing.T) {
	var now atomic.Int64 // the feed's goroutine reads the clock too
	now.Store(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	u := New(Options{Table: func() *route.Table { return nil }, Admin: fakeAdmin(), Now: clock})
	defer u.Close()
	h := u.Dashboard()
	try := func(key string) int {
		req := httptest.NewRequest("POST", "/ui/api/session", strings.NewReader(`{"key":"`+key+`"}`))
		req.RemoteAddr = "192.0.2.1:5000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range signInFailures {
		if got := try("wrong"); got != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d; want 401", i, got)
		}
	}
	if got := try(testAdminKey); got != http.StatusTooManyRequests {
		t.Errorf("the right key after %d failures: status %d; want 429", signInFailures, got)
	}
	now.Add(int64(signInWindow))
	if got := try(testAdminKey); got != http.StatusOK {
		t.Errorf("the right key a minute later: status %d; want 200", got)
	}
}

// TestLiveEndsWhenKeyChanges checks that a live stream ends once the
// session's key no longer opens the admin API (a reload changed it).
func TestLiveEndsWhenKeyChanges(t *testing.T) {
	var rotated atomic.Bool
	admin := fakeAdmin()
	u := New(Options{Table: func() *route.Table { return nil }, Interval: time.Millisecond,
		Admin: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rotated.Load() {
				http.Error(w, "rotated", http.StatusUnauthorized)
				return
			}
			admin.ServeHTTP(w, r)
		})})
	srv := httptest.NewServer(u.Dashboard())
	t.Cleanup(srv.Close)
	t.Cleanup(u.Close)
	c, _ := signIn(t, srv)
	resp, err := c.Get(srv.URL + "/ui/api/live")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
		}
		close(done)
	}()
	rotated.Store(true)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream is still open 10 s after the key stopped opening the admin API")
	}
}
