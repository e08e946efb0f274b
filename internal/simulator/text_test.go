package simulator

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/internal/tokens"
)

func TestWordsAreOneToken(t *testing.T) {
	for _, enc := range []tokens.Encoding{tokens.O200kBase, tokens.Cl100kBase} {
		for i := range words {
			for _, form := range []string{wordFirst[i], wordStart[i], wordNext[i]} {
				if n := enc.Count(form); n != 1 {
					t.Errorf("%s: %q is %d tokens; want 1", enc, form, n)
				}
			}
		}
		for _, p := range []string{".", ","} {
			if n := enc.Count(p); n != 1 {
				t.Errorf("%s: %q is %d tokens; want 1", enc, p, n)
			}
		}
	}
}

func TestTextHasExactlyNTokens(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for n := 1; n < 400; n += 1 + n/10 {
		for _, stop := range []bool{true, false} {
			for _, model := range []string{"gpt-4o", "gpt-35-turbo"} {
				txt := newText(rng, n, stop).all()
				if got := tokens.Count(model, txt); got != n {
					t.Fatalf("text of %d pieces (stop %v) is %d %s tokens; want %d:\n%s", n, stop, got, model, n, txt)
				}
				if stop && !strings.HasSuffix(txt, ".") && n > 1 {
					t.Errorf("a reply that stops should end with a full stop: %q", txt)
				}
			}
		}
	}
}

func TestTextIsDeterministicAndVaried(t *testing.T) {
	a := newText(rand.New(rand.NewPCG(7, 1)), 50, true).all()
	b := newText(rand.New(rand.NewPCG(7, 1)), 50, true).all()
	c := newText(rand.New(rand.NewPCG(7, 2)), 50, true).all()
	if a != b {
		t.Errorf("same seed, different text:\n%s\n%s", a, b)
	}
	if a == c {
		t.Errorf("different seeds, same text: %s", a)
	}
	if !strings.Contains(a, ". ") || strings.Contains(a, "  ") {
		t.Errorf("want sentences separated by single spaces: %s", a)
	}
}
