package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
		name   string
		header map[string]string
		query  string
		want   string
		ok     bool
	}{
		{name: "api-key", header: map[string]string{"api-key": "k1"}, want: "k1", ok: true},
		{name: "apim header", header: map[string]string{"Ocp-Apim-Subscription-Key": "k2"}, want: "k2", ok: true},
		{name: "bearer", header: map[string]string{"Authorization": "Bearer k3"}, want: "k3", ok: true},
		{name: "bearer lower case", header: map[string]string{"Authorization": "bearer  k3 "}, want: "k3", ok: true},
		{name: "basic is not a key", header: map[string]string{"Authorization": "Basic Zm9v"}},
		{name: "empty bearer", header: map[string]string{"Authorization": "Bearer "}},
		{name: "query subscription-key", query: "subscription-key=k4", want: "k4", ok: true},
		{name: "query api-key", query: "api-version=1&api-key=k5", want: "k5", ok: true},
		{name: "header wins over query", header: map[string]string{"api-key": "h"}, query: "api-key=q", want: "h", ok: true},
		{name: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/chat/completions?"+tt.query, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			got, ok := KeyFromRequest(r)
			if got != tt.want || ok != tt.ok {
				t.Errorf("KeyFromRequest = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
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
