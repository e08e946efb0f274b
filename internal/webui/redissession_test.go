package webui

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"github.com/sluice-gateway/sluice/internal/redistest"
	"github.com/sluice-gateway/sluice/internal/route"
)

// newRedisClient is a client set up as package app sets up the sessions'
// one: short timeouts, no retries.
func newRedisClient(t *testing.T, rs *redistest.Server) *redis.Client {
	t.Helper()
	quietRedis.Do(func() { redis.SetLogger(&logging.VoidLogger{}) }) // as package app's limit store does
	c := redis.NewClient(&redis.Options{Addr: rs.Addr(), DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, PoolTimeout: 200 * time.Millisecond,
		MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var quietRedis sync.Once

// syncBuffer is a log that the handlers write and the test reads.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newRedisUI is one instance of the dashboard keeping its sessions in rs,
// with its own Redis client, as a second gateway process would have; its
// log goes to log when not nil.
func newRedisUI(t *testing.T, rs *redistest.Server, now func() time.Time, log *syncBuffer) *httptest.Server {
	t.Helper()
	o := Options{Table: func() *route.Table { return nil }, Admin: fakeAdmin(), Interval: 10 * time.Millisecond,
		SessionRedis: newRedisClient(t, rs), Now: now}
	if log != nil {
		o.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	u := New(o)
	srv := httptest.NewServer(u.Dashboard())
	t.Cleanup(srv.Close)
	t.Cleanup(u.Close)
	return srv
}

// call makes a request with c and returns its status and body.
func call(t *testing.T, c *http.Client, method, url, csrf string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if csrf != "" {
		req.Header.Set(csrfHeader, csrf)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, string(body)
}

// sessionCookieOf returns the session cookie c holds for srv.
func sessionCookieOf(t *testing.T, c *http.Client, srv *httptest.Server) string {
	t.Helper()
	u, _ := url.Parse(srv.URL + "/ui/")
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			return ck.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// TestSessionsAcrossInstances: two dashboards share one Redis; a browser
// signed in on one is signed in on the other, and a sign-out on the other
// ends it on the first. Redis holds no credential or CSRF token in clear.
func TestSessionsAcrossInstances(t *testing.T) {
	rs := redistest.Start(t)
	a, b := newRedisUI(t, rs, nil, nil), newRedisUI(t, rs, nil, nil)
	c, csrf := signIn(t, a) // the jar sends 127.0.0.1's cookie to both ports, as a browser does
	if got, body := call(t, c, "GET", b.URL+"/ui/api/admin/backends", ""); got != 200 {
		t.Fatalf("instance B with A's cookie: %d %s; want 200", got, body)
	}
	var st sessionState
	if _, body := call(t, c, "GET", b.URL+"/ui/api/session", ""); json.Unmarshal([]byte(body), &st) != nil || st.CSRFToken != csrf {
		t.Errorf("instance B's session = %s; want the CSRF token A gave", body)
	}
	if got, _ := call(t, c, "POST", b.URL+"/ui/api/admin/reload", csrf); got != 200 {
		t.Errorf("a change on B with A's CSRF token: %d; want 200", got)
	}

	// What Redis holds: one key named by the cookie's hash, sliding idle TTL,
	// and nothing readable.
	rc := newRedisClient(t, rs)
	ctx := context.Background()
	keys, err := rc.Keys(ctx, sessionKeyPrefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	cookie := sessionCookieOf(t, c, a)
	if len(keys) != 1 || keys[0] != sessionRedisKey(cookie) {
		t.Fatalf("session keys = %v; want [%s]", keys, sessionRedisKey(cookie))
	}
	value, err := rc.Get(ctx, keys[0]).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]string{"admin key": testAdminKey, "CSRF token": csrf, "cookie": cookie} {
		if strings.Contains(string(value), secret) {
			t.Errorf("the Redis value holds the %s in clear", name)
		}
	}
	// Idle: each use restarts the key's TTL at sessionIdle.
	if err := rc.PExpire(ctx, keys[0], time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	call(t, c, "GET", a.URL+"/ui/api/admin/backends", "")
	if ttl := rc.PTTL(ctx, keys[0]).Val(); ttl <= sessionIdle-time.Minute || ttl > sessionIdle {
		t.Errorf("TTL after a use = %v; want about %v", ttl, sessionIdle)
	}
	// A value copied under another cookie's key opens nothing.
	forged := sessionRedisKey("another-cookie")
	if err := rc.Set(ctx, forged, value, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if se, err := newRedisSessions(rc, time.Now).get(ctx, "another-cookie"); se != nil || err != nil {
		t.Errorf("a copied value under another cookie: %v, %v; want no session", se, err)
	}

	// Sign-out on B ends the session on A, and A's open live stream.
	live, err := c.Get(a.URL + "/ui/api/live")
	if err != nil || live.StatusCode != 200 {
		t.Fatalf("live stream on A: %v %v", live, err)
	}
	defer live.Body.Close()
	ended := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, live.Body)
		close(ended)
	}()
	if got, _ := call(t, c, "DELETE", b.URL+"/ui/api/session", csrf); got != http.StatusNoContent {
		t.Fatalf("sign-out on B: %d; want 204", got)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Error("A's live stream is still open 10 s after the sign-out on B")
	}
	if n := rc.Exists(ctx, keys[0]).Val(); n != 0 {
		t.Error("the session's key outlived the sign-out")
	}
	c2 := &http.Client{Jar: mustJar(t)} // the cookie, kept by a thief after sign-out
	c2.Jar.SetCookies(mustURL(t, a.URL+"/ui/"), []*http.Cookie{{Name: sessionCookie, Value: cookie, Path: "/ui/"}})
	if got, _ := call(t, c2, "GET", a.URL+"/ui/api/admin/backends", ""); got != http.StatusUnauthorized {
		t.Errorf("instance A after sign-out on B: %d; want 401", got)
	}
}

func mustJar(t *testing.T) http.CookieJar {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return jar
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestRedisSessionExpiry: a session whose key expired (idle) is gone, and
// one older than sessionMax is refused and deleted whatever its TTL.
func TestRedisSessionExpiry(t *testing.T) {
	rs := redistest.Start(t)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	srv := newRedisUI(t, rs, now, nil)
	rc := newRedisClient(t, rs)
	ctx := context.Background()

	c, _ := signIn(t, srv)
	key := sessionRedisKey(sessionCookieOf(t, c, srv))
	// Idle: the key's TTL runs out (here at once) and the session with it.
	if err := rc.PExpire(ctx, key, time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); rc.Exists(ctx, key).Val() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the key did not expire")
		}
	}
	if got, _ := call(t, c, "GET", srv.URL+"/ui/api/admin/backends", ""); got != http.StatusUnauthorized {
		t.Errorf("after the idle timeout: %d; want 401", got)
	}

	// Max age: used every hour, so never idle, but past sessionMax.
	c, _ = signIn(t, srv)
	key = sessionRedisKey(sessionCookieOf(t, c, srv))
	for h := 1; h < 12; h++ {
		offset.Store(int64(time.Duration(h) * time.Hour))
		if got, _ := call(t, c, "GET", srv.URL+"/ui/api/admin/backends", ""); got != 200 {
			t.Fatalf("after %dh of use: %d; want 200", h, got)
		}
	}
	offset.Store(int64(sessionMax + time.Minute))
	if got, _ := call(t, c, "GET", srv.URL+"/ui/api/admin/backends", ""); got != http.StatusUnauthorized {
		t.Errorf("past sessionMax: %d; want 401", got)
	}
	if rc.Exists(ctx, key).Val() != 0 {
		t.Error("a session past sessionMax was not deleted")
	}
}

// TestRedisSessionsStoreDown: with Redis stopped or hung, a request with a
// session cookie and a sign-in get a clear 503 in bounded time, never a
// hang and never a session that only this instance knows; once Redis is
// back sign-in works again.
func TestRedisSessionsStoreDown(t *testing.T) {
	rs := redistest.Start(t)
	var log syncBuffer
	srv := newRedisUI(t, rs, nil, &log)
	c, csrf := signIn(t, srv)
	cookie := sessionCookieOf(t, c, srv)
	c.Timeout = 10 * time.Second // far above the client's timeouts: a hang fails the test
	for _, outage := range []struct {
		name       string
		start, end func()
	}{
		{"stopped", rs.Stop, rs.Restart},
		{"hung", rs.Pause, rs.Resume},
	} {
		t.Run(outage.name, func(t *testing.T) {
			outage.start()
			defer outage.end()
			for _, path := range []string{"/ui/api/admin/backends", "/ui/api/session"} {
				got, body := call(t, c, "GET", srv.URL+path, "")
				if got != http.StatusServiceUnavailable || !strings.Contains(body, `"code":"session_store_unavailable"`) {
					t.Errorf("GET %s: %d %s; want 503 session_store_unavailable", path, got, body)
				}
			}
			fresh := &http.Client{Jar: mustJar(t), Timeout: 10 * time.Second}
			resp, err := fresh.Post(srv.URL+"/ui/api/session", "application/json", strings.NewReader(`{"key":"`+testAdminKey+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || len(resp.Cookies()) != 0 {
				t.Errorf("sign-in: %d with cookies %v; want 503 and no cookie", resp.StatusCode, resp.Cookies())
			}
		})
	}
	if got := log.String(); !strings.Contains(got, "dashboard session store failed") {
		t.Errorf("log = %q; want the session store's failures", got)
	}
	for name, secret := range map[string]string{"admin key": testAdminKey, "CSRF token": csrf, "cookie": cookie} {
		if strings.Contains(log.String(), secret) {
			t.Errorf("the log holds the %s", name)
		}
	}
	// Back (the restart emptied it): old sessions are gone, new ones work.
	if got, _ := call(t, c, "GET", srv.URL+"/ui/api/admin/backends", ""); got != http.StatusUnauthorized {
		t.Errorf("the old session after Redis came back empty: %d; want 401", got)
	}
	signIn(t, srv)
}
