package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	sum := sha256.Sum256([]byte("clear"))
	hexSum := hex.EncodeToString(sum[:])
	tests := []struct {
		in      string
		want    Digest
		wantErr bool
	}{
		{in: "clear", want: sum},
		{in: "sha256:" + hexSum, want: sum},
		{in: "sha256:" + strings.ToUpper(hexSum), want: sum},
		{in: "sha256:abc", wantErr: true},
		{in: "sha256:" + strings.Repeat("zz", 32), wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseKey(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrBadDigest) {
				t.Errorf("ParseKey(%q) error = %v; want ErrBadDigest", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseKey(%q) = %x, %v; want %x", tt.in, got, err, tt.want)
		}
	}
}

func TestIndex(t *testing.T) {
	ix := NewIndex[string]()
	d, _ := ParseKey("key-a")
	if err := ix.Add(d, "a"); err != nil {
		t.Fatal(err)
	}
	db := DigestOf("key-b")
	hashed, _ := ParseKey("sha256:" + hex.EncodeToString(db[:]))
	if err := ix.Add(hashed, "b"); err != nil {
		t.Fatal(err)
	}
	if err := ix.Add(DigestOf("key-a"), "dup"); err == nil {
		t.Error("Add of a key already present succeeded; want an error")
	}
	for key, want := range map[string]string{"key-a": "a", "key-b": "b"} {
		if got, ok := ix.Lookup(key); !ok || got != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
	for _, key := range []string{"", "key-c", "sha256:" + hex.EncodeToString(db[:])} {
		if got, ok := ix.Lookup(key); ok {
			t.Errorf("Lookup(%q) = %q; want not found (a digest is not a key)", key, got)
		}
	}
}

func TestKeyFromRequest(t *testing.T) {
	tests := []struct {
		name    string
		header  map[string]string
		query   string
		want    string
		wantErr error
	}{
		{name: "api-key", header: map[string]string{"api-key": "k1"}, want: "k1"},
		{name: "apim header", header: map[string]string{"Ocp-Apim-Subscription-Key": "k2"}, want: "k2"},
		{name: "bearer", header: map[string]string{"Authorization": "Bearer k3"}, want: "k3"},
		{name: "bearer lower case", header: map[string]string{"Authorization": "bearer  k3 "}, want: "k3"},
		{name: "basic is not a key", header: map[string]string{"Authorization": "Basic Zm9v"}, wantErr: ErrNoKey},
		{name: "empty bearer", header: map[string]string{"Authorization": "Bearer "}, wantErr: ErrNoKey},
		{name: "query subscription-key", query: "subscription-key=k4", want: "k4"},
		{name: "query api-key", query: "api-version=1&api-key=k5", want: "k5"},
		{name: "the same key twice", header: map[string]string{"api-key": "k", "Authorization": "Bearer k"}, query: "api-key=k", want: "k"},
		{name: "basic beside a key", header: map[string]string{"api-key": "k", "Authorization": "Basic Zm9v"}, want: "k"},
		{name: "two header keys", header: map[string]string{"api-key": "a", "Authorization": "Bearer b"}, wantErr: ErrConflict},
		{name: "apim and api-key", header: map[string]string{"api-key": "a", "Ocp-Apim-Subscription-Key": "b"}, wantErr: ErrConflict},
		{name: "header and query", header: map[string]string{"api-key": "h"}, query: "api-key=q", wantErr: ErrConflict},
		{name: "two query keys", query: "subscription-key=a&api-key=b", wantErr: ErrConflict},
		{name: "two query keys of one name", query: "api-key=a&api-key=b", wantErr: ErrConflict},
		{name: "a token is not a key", header: map[string]string{"Authorization": "Bearer " + testJWT}, wantErr: ErrNoKey},
		{name: "a key beside a token is no conflict", header: map[string]string{"api-key": "k", "Authorization": "Bearer " + testJWT}, want: "k"},
		{name: "none", wantErr: ErrNoKey},
		{name: "none with a query", query: "api-version=1", wantErr: ErrNoKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/chat/completions?"+tt.query, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			got, err := KeyFromRequest(r)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("KeyFromRequest = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestKeyFromHeaderRepeated: a second line of one header with another key
// is a conflict, not a key the first line hides.
func TestKeyFromHeaderRepeated(t *testing.T) {
	h := http.Header{"Api-Key": {"a", "b"}}
	if got, err := KeyFromHeader(h); !errors.Is(err, ErrConflict) {
		t.Errorf("KeyFromHeader = %q, %v; want ErrConflict", got, err)
	}
	h = http.Header{"Authorization": {"Bearer a", "Bearer a"}}
	if got, err := KeyFromHeader(h); err != nil || got != "a" {
		t.Errorf("KeyFromHeader = %q, %v; want a", got, err)
	}
}

// TestKeyFromHeaderIgnoresQuery: the admin API's key is never read from the
// query string, which proxies log.
func TestKeyFromHeaderIgnoresQuery(t *testing.T) {
	r := httptest.NewRequest("GET", "/admin/config?api-key=k", nil)
	if got, err := KeyFromHeader(r.Header); !errors.Is(err, ErrNoKey) {
		t.Errorf("KeyFromHeader = %q, %v; want ErrNoKey", got, err)
	}
}

func BenchmarkLookup(b *testing.B) {
	ix := NewIndex[int]()
	for i := range 1000 {
		_ = ix.Add(DigestOf(strings.Repeat("k", i+1)), i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ix.Lookup("kkkkkkkkkk"); !ok {
			b.Fatal("not found")
		}
	}
}

// testJWT is shaped like a JWT: {"alg":"RS256"}.{"sub":"x"}.sig
const testJWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"

func TestBearerToken(t *testing.T) {
	other := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ5In0.c2ln"
	for _, tt := range []struct {
		name    string
		auth    []string
		want    string
		wantErr error
	}{
		{"token", []string{"Bearer " + testJWT}, testJWT, nil},
		{"key", []string{"Bearer sk-123"}, "", ErrNoCredential},
		{"none", nil, "", ErrNoCredential},
		{"the same token twice", []string{"Bearer " + testJWT, "Bearer " + testJWT}, testJWT, nil},
		{"two tokens", []string{"Bearer " + testJWT, "Bearer " + other}, "", ErrConflict},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BearerToken(http.Header{"Authorization": tt.auth})
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("BearerToken = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
