package secret

import (
	"encoding/base64"
	"strings"
	"testing"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestLooksLikeJWT(t *testing.T) {
	h, p := b64(`{"alg":"RS256","kid":"k1","typ":"JWT"}`), b64(`{"sub":"x"}`)
	for _, tt := range []struct {
		name string
		in   string
		want bool
	}{
		{"signed", h + "." + p + "." + b64("sig"), true},
		{"unsigned (alg none)", b64(`{"alg":"none"}`) + "." + p + ".", true},
		{"subscription key", "sk-alpha-0123456789abcdef", false},
		{"two parts", h + "." + p, false},
		{"four parts", h + "." + p + ".a.b", false},
		{"empty payload", h + "..sig", false},
		{"header not JSON", b64("hello") + "." + p + ".sig", false},
		{"header without alg", b64(`{"typ":"JWT"}`) + "." + p + ".sig", false},
		{"padded base64", h + "==." + p + ".sig", false},
		{"dotted key", "team.alpha.key", false},
		{"empty", "", false},
	} {
		if got := LooksLikeJWT(tt.in); got != tt.want {
			t.Errorf("%s: LooksLikeJWT(%q) = %v; want %v", tt.name, tt.in, got, tt.want)
		}
	}
}

// FuzzLooksLikeJWT: the detection never panics, and whatever it takes for a
// token has exactly three parts, a JSON object header with alg.
func FuzzLooksLikeJWT(f *testing.F) {
	f.Add(b64(`{"alg":"RS256"}`) + "." + b64(`{}`) + ".c2ln")
	f.Add("sk-0123")
	f.Add("a.b.c")
	f.Add(b64(`{"alg":null}`) + ".e30.")
	f.Fuzz(func(t *testing.T, s string) {
		if !LooksLikeJWT(s) {
			return
		}
		parts := strings.Split(s, ".")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
			t.Fatalf("LooksLikeJWT(%q) = true with %d parts", s, len(parts))
		}
		raw, err := base64.RawURLEncoding.DecodeString(parts[0])
		if err != nil || !strings.Contains(string(raw), "alg") {
			t.Fatalf("LooksLikeJWT(%q) = true with header %q (%v)", s, raw, err)
		}
	})
}
