package oidc

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzRoles: any JSON value of a roles claim maps to a list of strings, and
// a string claim to its words.
func FuzzRoles(f *testing.F) {
	for _, s := range []string{`["a","b"]`, `"read write"`, `[1,"x",null,{"y":2}]`, `{}`, `null`, `42`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var v any
		if json.Unmarshal([]byte(raw), &v) != nil {
			return
		}
		for _, r := range roles(v) {
			if s, ok := v.(string); ok && (r == "" || strings.ContainsAny(r, " \t\n") || !strings.Contains(s, r)) {
				t.Fatalf("roles(%q) gave %q", s, r)
			}
		}
	})
}

// FuzzVerify: whatever a client sends as a token, Verify refuses it with
// an *Error and never panics, with or without providers.
func FuzzVerify(f *testing.F) {
	for _, s := range []string{"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln", "a.b.c", "", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0."} {
		f.Add(s)
	}
	var v *Verifier
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(context.Background(), tok)
		if err == nil || c != nil {
			t.Fatalf("Verify(%q) accepted a token without providers", tok)
		}
		if _, ok := err.(*Error); !ok {
			t.Fatalf("Verify(%q) error %T; want *Error", tok, err)
		}
	})
}
