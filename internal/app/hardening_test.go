package app

import (
	"strings"
	"testing"
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
