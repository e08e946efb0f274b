package oidc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/entratest"
	"github.com/sluice-gateway/sluice/internal/oidc"
)

// clock is a settable clock for the refresh limits and token times.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func provider(e *entratest.Server) config.JWTProvider {
	return config.JWTProvider{
		Name: "entra", OpenIDConfiguration: e.OpenIDConfiguration(),
		Issuers:      []string{e.IssuerV2(), e.IssuerV1()},
		Audiences:    []string{"api://sluice"},
		ClientClaims: []string{"azp", "appid"}, RolesClaim: "roles", Algorithms: []string{"RS256", "ES256"},
		ClockSkew: config.Duration(time.Minute), UnknownKeyRefresh: config.Duration(5 * time.Minute),
		RefreshInterval: config.Duration(time.Hour),
	}
}

// setup starts a fake tenant and a verifier of it, whose keys are loaded.
func setup(t *testing.T) (*entratest.Server, *oidc.Set, *oidc.Verifier, *clock) {
	t.Helper()
	e := entratest.New(t)
	clk := newClock()
	s := oidc.NewSet(oidc.Options{Now: clk.now})
	t.Cleanup(s.Close)
	v := s.Update([]config.JWTProvider{provider(e)})
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats()[0].Keys == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the provider's keys did not load")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return e, s, v, clk
}

func check(err error) oidc.Check {
	var e *oidc.Error
	if errors.As(err, &e) {
		return e.Check
	}
	return oidc.CheckNone
}

func TestVerify(t *testing.T) {
	e, _, v, clk := setup(t)
	now := clk.now()
	for _, tt := range []struct {
		name string
		opts entratest.TokenOptions
		want oidc.Check
		app  string
	}{
		{"v2 token", entratest.TokenOptions{Audience: "api://sluice", App: "app-2", Roles: []string{"Sluice.Premium"}}, oidc.CheckNone, "app-2"},
		{"v1 token", entratest.TokenOptions{Version: 1, Audience: "api://sluice", App: "app-1"}, oidc.CheckNone, "app-1"},
		{"wrong audience", entratest.TokenOptions{Audience: "api://other"}, oidc.CheckAudience, ""},
		{"wrong issuer", entratest.TokenOptions{Audience: "api://sluice", Issuer: "https://evil.example.com/"}, oidc.CheckIssuer, ""},
		{"another tenant", entratest.TokenOptions{Audience: "api://sluice", Tenant: "99999999-0000-0000-0000-000000000000"}, oidc.CheckIssuer, ""},
		{"expired", entratest.TokenOptions{Audience: "api://sluice", IssuedAt: now.Add(-2 * time.Hour), Expiry: now.Add(-2 * time.Minute)}, oidc.CheckExpired, ""},
		{"expired within the skew", entratest.TokenOptions{Audience: "api://sluice", IssuedAt: now.Add(-time.Hour), Expiry: now.Add(-30 * time.Second)}, oidc.CheckNone, "client-app"},
		{"not yet valid", entratest.TokenOptions{Audience: "api://sluice", NotBefore: now.Add(10 * time.Minute)}, oidc.CheckNotYetValid, ""},
		{"alg none", entratest.TokenOptions{Audience: "api://sluice", Alg: "none"}, oidc.CheckAlgorithm, ""},
		{"HS256 keyed with the public key", entratest.TokenOptions{Audience: "api://sluice", Alg: "HS256"}, oidc.CheckAlgorithm, ""},
		{"unknown key id", entratest.TokenOptions{Audience: "api://sluice", KeyID: "forged"}, oidc.CheckUnknownKey, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), e.Token(tt.opts))
			if got := check(err); got != tt.want {
				t.Fatalf("Verify: check %v (%v); want %v", got, err, tt.want)
			}
			if tt.want == oidc.CheckNone && c.App != tt.app {
				t.Errorf("App = %q; want %q", c.App, tt.app)
			}
		})
	}
	c, _ := v.Verify(context.Background(), e.Token(entratest.TokenOptions{Audience: "api://sluice", Roles: []string{"a", "b"}}))
	if !c.HasRole([]string{"b"}) || c.HasRole([]string{"c"}) {
		t.Errorf("roles %v", c.Roles)
	}
	if _, err := v.Verify(context.Background(), "not.a.token"); check(err) != oidc.CheckMalformed {
		t.Errorf("garbage: %v; want malformed", err)
	}
}

// TestRotation: a token signed with a new key is accepted after one fetch;
// once the provider removes the old key, the next fetch stops it.
func TestRotation(t *testing.T) {
	e, s, v, clk := setup(t)
	old := e.Token(entratest.TokenOptions{Audience: "api://sluice"})
	before := e.JWKSFetches()
	e.AddKey("k2")
	e.UseKey("k2")
	if _, err := v.Verify(context.Background(), e.Token(entratest.TokenOptions{Audience: "api://sluice"})); err != nil {
		t.Fatalf("token signed with the new key: %v", err)
	}
	if n := e.JWKSFetches() - before; n != 1 {
		t.Errorf("key set fetched %d times for the new key; want 1", n)
	}
	e.RemoveKey("k1")
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Errorf("the old key before the next fetch: %v; want accepted", err)
	}
	// The next fetch, for another unknown key once the interval passed.
	clk.advance(5 * time.Minute)
	_, _ = v.Verify(context.Background(), e.Token(entratest.TokenOptions{Audience: "api://sluice", KeyID: "k3"}))
	if _, err := v.Verify(context.Background(), old); check(err) != oidc.CheckUnknownKey {
		t.Errorf("the removed key after a fetch: %v; want unknown_key", err)
	}
	if st := s.Stats()[0]; st.Keys != 1 {
		t.Errorf("keys known = %d; want 1", st.Keys)
	}
}

// TestUnknownKeyFlood: a thousand tokens with random key ids make at most
// one key set fetch per unknown_key_refresh, and none waits long.
func TestUnknownKeyFlood(t *testing.T) {
	e, _, v, clk := setup(t)
	before := e.JWKSFetches()
	var wg sync.WaitGroup
	var slow atomic.Int64
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				start := time.Now()
				_, err := v.Verify(context.Background(), e.Token(entratest.TokenOptions{Audience: "api://sluice", KeyID: fmt.Sprintf("forged-%d-%d", g, i)}))
				if check(err) != oidc.CheckUnknownKey {
					t.Errorf("forged key id: %v; want unknown_key", err)
				}
				if time.Since(start) > 2*time.Second {
					slow.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := e.JWKSFetches() - before; n > 1 {
		t.Errorf("1000 unknown key ids fetched the key set %d times; want at most 1", n)
	}
	if n := slow.Load(); n > 0 {
		t.Errorf("%d verifications took over 2s", n)
	}
	clk.advance(5 * time.Minute)
	_, _ = v.Verify(context.Background(), e.Token(entratest.TokenOptions{Audience: "api://sluice", KeyID: "forged-again"}))
	if n := e.JWKSFetches() - before; n > 2 {
		t.Errorf("after the interval: %d fetches; want at most 2", n)
	}
}

// TestProviderDown: while the provider does not answer, tokens signed with
// keys already known are accepted, and unknown keys refused at once.
func TestProviderDown(t *testing.T) {
	e, _, v, _ := setup(t)
	e.SetDown(true)
	if _, err := v.Verify(context.Background(), e.Token(entratest.TokenOptions{Audience: "api://sluice"})); err != nil {
		t.Errorf("known key with the provider down: %v", err)
	}
	if _, err := v.Verify(context.Background(), e.Token(entratest.TokenOptions{Audience: "api://sluice", KeyID: "new"})); check(err) != oidc.CheckUnknownKey {
		t.Errorf("unknown key with the provider down: %v; want unknown_key", err)
	}
}

// TestKeysUnavailable: before the provider's keys were ever fetched, a
// token is not judged invalid but unverifiable, and the keys load once the
// provider answers.
func TestKeysUnavailable(t *testing.T) {
	e := entratest.New(t)
	e.SetDown(true)
	s := oidc.NewSet(oidc.Options{RetryMax: 50 * time.Millisecond})
	t.Cleanup(s.Close)
	p := provider(e)
	v := s.Update([]config.JWTProvider{p})
	tok := e.Token(entratest.TokenOptions{Audience: "api://sluice"})
	if _, err := v.Verify(context.Background(), tok); check(err) != oidc.CheckKeysUnavailable {
		t.Fatalf("before any fetch: %v; want keys_unavailable", err)
	}
	e.SetDown(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := v.Verify(context.Background(), tok); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the keys did not load once the provider answered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A reload with the same provider keeps its keys (no new fetch).
	before := e.JWKSFetches()
	v2 := s.Update([]config.JWTProvider{p})
	if _, err := v2.Verify(context.Background(), tok); err != nil || e.JWKSFetches() != before {
		t.Errorf("after an identical update: %v, %d new fetches; want accepted and none", err, e.JWKSFetches()-before)
	}
}
