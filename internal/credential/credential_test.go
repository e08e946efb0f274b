package credential

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/entratest"
	"github.com/sluice-gateway/sluice/internal/secret"
)

// fakeSource issues numbered tokens valid for lifetime on the test's clock,
// or fails while down.
type fakeSource struct {
	now      func() time.Time
	lifetime time.Duration
	n        atomic.Int64
	down     atomic.Bool
}

func (s *fakeSource) Token(context.Context) (Token, error) {
	if s.down.Load() {
		return Token{}, errors.New("connection refused")
	}
	return Token{Value: fmt.Sprintf("token-%d", s.n.Add(1)), Expiry: s.now().Add(s.lifetime)}, nil
}

// testClock is a settable clock whose After channels fire when it passes
// their time.
type testClock struct {
	mu      sync.Mutex
	t       time.Time
	waits   []wait
	waiting chan time.Duration // each After's duration, for the test to see
}

type wait struct {
	at time.Time
	c  chan time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Unix(1_800_000_000, 0), waiting: make(chan time.Duration, 100)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waits = append(c.waits, wait{c.t.Add(d), ch})
	c.waiting <- d
	return ch
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	kept := c.waits[:0]
	for _, w := range c.waits {
		if !c.t.Before(w.at) {
			w.c <- c.t
		} else {
			kept = append(kept, w)
		}
	}
	c.waits = kept
}

func bearer(t *testing.T, c *Cache) string {
	t.Helper()
	h := http.Header{}
	if err := c.Apply(context.Background(), h); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return strings.TrimPrefix(h.Get("Authorization"), "Bearer ")
}

// TestRefreshSchedule: the first token is fetched at once; a refresh comes
// at the earlier of 5 minutes before expiry and half the lifetime, while
// the current token keeps serving; a token endpoint that is down costs
// nothing while the token is valid, and once it is not, Apply fails at
// once.
func TestRefreshSchedule(t *testing.T) {
	for _, tt := range []struct {
		lifetime, refresh time.Duration
	}{
		{60 * time.Second, 30 * time.Second},
		{time.Hour, 30 * time.Minute},
		{24 * time.Hour, 12 * time.Hour},
		{8 * time.Minute, 3 * time.Minute},
	} {
		t.Run(tt.lifetime.String(), func(t *testing.T) {
			clk := newTestClock()
			src := &fakeSource{now: clk.Now, lifetime: tt.lifetime}
			c := New(src, Options{Name: "b", Now: clk.Now, After: clk.After})
			defer c.Close()
			if got := <-clk.waiting; got != tt.refresh {
				t.Fatalf("first refresh after %v; want %v", got, tt.refresh)
			}
			if got := bearer(t, c); got != "token-1" {
				t.Fatalf("token %q; want token-1", got)
			}
			clk.Advance(tt.refresh)
			<-clk.waiting
			if got := bearer(t, c); got != "token-2" {
				t.Errorf("after the refresh: %q; want token-2", got)
			}
			if r, f := c.Stats(); r != 2 || f != 0 {
				t.Errorf("stats %d refreshes %d failures; want 2, 0", r, f)
			}
		})
	}
}

func TestOutage(t *testing.T) {
	clk := newTestClock()
	src := &fakeSource{now: clk.Now, lifetime: 60 * time.Second}
	c := New(src, Options{Name: "b", Now: clk.Now, After: clk.After})
	defer c.Close()
	<-clk.waiting
	src.down.Store(true)
	clk.Advance(30 * time.Second) // the refresh fails
	<-clk.waiting
	if got := bearer(t, c); got != "token-1" {
		t.Errorf("during the outage: %q; want token-1 still", got)
	}
	clk.Advance(25 * time.Second) // 55 s: within the last tenth of the lifetime
	err := c.Apply(context.Background(), http.Header{})
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("no valid token: %v; want the source's error", err)
	}
	// The background retry the advance woke fails too; wait until it has
	// and waits again, so that no fetch that began during the outage ends
	// after it and is taken for a failure of the next second.
	<-clk.waiting
	src.down.Store(false)
	clk.Advance(2 * time.Second)
	if got := bearer(t, c); got == "token-1" || got == "" {
		t.Errorf("after the outage: %q; want a new token", got)
	}
}

// TestInvalidate: a 401 drops the token it was sent, and only that one.
func TestInvalidate(t *testing.T) {
	clk := newTestClock()
	src := &fakeSource{now: clk.Now, lifetime: time.Hour}
	c := New(src, Options{Name: "b", Now: clk.Now, After: clk.After})
	defer c.Close()
	<-clk.waiting
	h := http.Header{}
	_ = c.Apply(context.Background(), h)
	c.Invalidate(http.Header{"Authorization": {"Bearer something-else"}})
	if got := bearer(t, c); got != "token-1" {
		t.Errorf("after another token's 401: %q; want token-1", got)
	}
	c.Invalidate(h)
	if got := bearer(t, c); got != "token-2" {
		t.Errorf("after its 401: %q; want token-2", got)
	}
}

func verifyCache(t *testing.T, a config.BackendAuth, client *http.Client) *Cache {
	t.Helper()
	src, err := FromConfig(a, client)
	if err != nil {
		t.Fatal(err)
	}
	c := New(src, Options{Name: "b"})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSources: the real azidentity managed identity (App Service endpoint
// on loopback), Entra client credentials (over https, as MSAL insists) and
// OAuth2 client credentials get tokens from the fake Entra.
func TestSources(t *testing.T) {
	e := entratest.New(t)
	t.Setenv("IDENTITY_ENDPOINT", e.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", e.IdentityHeader)
	mi := verifyCache(t, config.BackendAuth{ManagedIdentity: &config.ManagedIdentity{Resource: entratest.CognitiveServices}}, nil)
	if tok := bearer(t, mi); strings.Count(tok, ".") != 2 || e.IdentityRequests() == 0 {
		t.Errorf("managed identity token %q, %d identity requests", tok, e.IdentityRequests())
	}
	cc := verifyCache(t, config.BackendAuth{ClientCredentials: &config.ClientCredentials{
		TenantID: e.Tenant, ClientID: e.ClientID, ClientSecret: secret.New(e.ClientSecret),
		AuthorityHost: e.TLSURL + "/", Scope: entratest.CognitiveServices + "/.default"}}, e.Client())
	if tok := bearer(t, cc); strings.Count(tok, ".") != 2 {
		t.Errorf("client credentials token %q", tok)
	}
	o2 := verifyCache(t, config.BackendAuth{OAuth2: &config.OAuth2{TokenURL: e.OAuth2TokenURL(), ClientID: e.ClientID,
		ClientSecret: secret.New(e.ClientSecret), Scopes: []string{"inference"}}}, nil)
	if tok := bearer(t, o2); strings.Count(tok, ".") != 2 {
		t.Errorf("oauth2 token %q", tok)
	}
	bad := verifyCache(t, config.BackendAuth{OAuth2: &config.OAuth2{TokenURL: e.OAuth2TokenURL(), ClientID: e.ClientID,
		ClientSecret: secret.New("wrong-secret-value")}}, nil)
	err := bad.Apply(context.Background(), http.Header{})
	if err == nil || strings.Contains(err.Error(), "wrong-secret-value") {
		t.Errorf("a wrong secret: %v; want an error without the secret", err)
	}
}
