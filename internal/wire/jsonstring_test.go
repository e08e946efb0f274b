package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzAppendString holds AppendString to encoding/json: the same string
// back for valid UTF-8 (U+FFFD for invalid bytes), and the same bytes as
// json.Marshal without HTML escaping but for \b and \f.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x1f\x7f", "\u2028\u2029", "<&>", "é😀", "\xff\xc3", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("AppendString(%q) = %s: not JSON: %v", s, got, err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); utf8.ValidString(s) && back != want {
			t.Errorf("AppendString(%q) reads back as %q", s, back)
		}
		var sb strings.Builder
		enc := json.NewEncoder(&sb)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		// encoding/json writes \b and \f short; slog (and so the access
		// log) as \u0008 and \u000c: only the decoding is compared then.
		if strings.ContainsAny(s, "\b\f") {
			return
		}
		want := strings.TrimSuffix(sb.String(), "\n")
		if string(got) != want {
			t.Errorf("AppendString(%q) = %s; encoding/json writes %s", s, got, want)
		}
	})
}
