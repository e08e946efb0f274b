package wire

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain", "gpt-4o", 256, "gpt-4o"},
		{"CRLF and NUL", "a\r\nb\x00c", 256, "abc"},
		{"tab and DEL", "a\tb\x7fc", 256, "abc"},
		{"C1", "a\u0085b", 256, "ab"},
		{"separators and bidi", "a\u2028b\u202ec\u2066d", 256, "abcd"},
		{"invalid UTF-8", "a\xffb", 256, "ab"},
		{"unicode kept", "modèle-日本", 256, "modèle-日本"},
		{"cut", strings.Repeat("x", 300), 256, strings.Repeat("x", 256)},
		{"cut on a rune boundary", "ab日", 4, "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CleanText(tt.in, tt.max); got != tt.want {
				t.Errorf("CleanText(%q, %d) = %q; want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
	if got := EchoText(strings.Repeat("m", 1<<20)); got != strings.Repeat("m", MaxEchoBytes)+"…" {
		t.Errorf("EchoText of 1 MiB = %d bytes; want %d and an ellipsis", len(got), MaxEchoBytes)
	}
	if got := testing.AllocsPerRun(100, func() { CleanText("gpt-4o-mini", MaxModelBytes) }); got != 0 {
		t.Errorf("CleanText of a plain name allocates %v times; want 0", got)
	}
}

func FuzzCleanText(f *testing.F) {
	f.Add("a\r\nb", 10)
	f.Add("日本語\u202e", 5)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<20 {
			return
		}
		got := CleanText(s, max)
		if len(got) > max || !utf8.ValidString(got) {
			t.Fatalf("CleanText(%q, %d) = %q: too long or invalid", s, max, got)
		}
		for _, r := range got {
			if unsafeRune(r) {
				t.Fatalf("CleanText(%q, %d) = %q keeps %U", s, max, got, r)
			}
		}
	})
}
