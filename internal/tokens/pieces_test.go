package tokens

import (
	"strings"
	"testing"
)

func TestPiecesAddUpToCount(t *testing.T) {
	for _, enc := range []Encoding{O200kBase, Cl100kBase} {
		for _, text := range []string{
			"", "a", `{"city":"Oslo","days":[1,2,3],"units":"celsius","ok":true}`,
			"Hello, world! 12345 don't   stop\n\n  ünïcödé 日本語 \xff",
		} {
			var (
				joined strings.Builder
				sum    int
			)
			for p, n := range enc.Pieces(text) {
				if p == "" || n < 1 || n != enc.Count(p) {
					t.Errorf("%s: piece %q counts %d; want a non-empty piece counted %d", enc, p, n, enc.Count(p))
				}
				joined.WriteString(p)
				sum += n
			}
			if joined.String() != text || sum != enc.Count(text) {
				t.Errorf("%s: pieces of %q join to %q and count %d; want the text and %d", enc, text, joined.String(), sum, enc.Count(text))
			}
		}
	}
}
