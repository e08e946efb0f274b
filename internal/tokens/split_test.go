package tokens

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
	"github.com/tiktoken-go/tokenizer/codec"
)

// The expressions the encodings split with. The library's regexp engine
// mis-evaluates the whole alternation on some whitespace runs (it splits
// "\r  \n" after the "\r", where every alternative before \s*[\r\n]+ fails
// and that one takes all four characters, as Python's regex module, which
// tiktoken used, also does). So the oracle tries each alternative on its own,
// in order, at each position: that is what alternation means in a
// backtracking engine, and regexp2 gets each alternative right alone.
const (
	cl100kPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	o200kPattern  = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

var splitters = []struct {
	name    string
	enc     Encoding
	source  string
	pattern *regexp2.Regexp
	next    func(string, int) int
	codec   func() *codec.Codec
}{
	{"cl100k_base", Cl100kBase, cl100kPattern, regexp2.MustCompile(cl100kPattern, regexp2.None), nextCl100k, codec.NewCl100kBase},
	{"o200k_base", O200kBase, o200kPattern, regexp2.MustCompile(o200kPattern, regexp2.None), nextO200k, codec.NewO200kBase},
}

// oracle splits text as the expression's alternatives, tried in order at each
// position, would.
type oracle []*regexp2.Regexp

func newOracle(pattern string) oracle {
	var o oracle
	depth, start := 0, 0
	for i := 0; i <= len(pattern); i++ {
		if i < len(pattern) {
			switch pattern[i] {
			case '(', '[':
				depth++
				continue
			case ')', ']':
				depth--
				continue
			case '\\':
				i++
				continue
			case '|':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		o = append(o, regexp2.MustCompile(`^(?:`+pattern[start:i]+`)`, regexp2.None))
		start = i + 1
	}
	return o
}

func (o oracle) split(t testing.TB, text string) []string {
	var pieces []string
	for i := 0; i < len(text); {
		var m *regexp2.Match
		for _, alt := range o {
			var err error
			if m, err = alt.FindStringMatch(text[i:]); err != nil {
				t.Fatal(err)
			}
			if m != nil && m.String() != "" {
				break
			}
		}
		if m == nil || m.String() == "" {
			t.Fatalf("no alternative matches %q at %d", text, i)
		}
		pieces = append(pieces, m.String())
		i += len(m.String())
	}
	return pieces
}

// tricky holds texts that exercise every alternative of both expressions.
var tricky = []string{
	"hello world", "Hello, World!", "  leading and trailing  ", "tabs\tand\u00a0nbsp",
	"I'm sure we'LL see, DON'T you? 'S 're 'x '", "it's  'twas 'Tis",
	"HTTPServer iPhone McDonald's camelCaseWord ALLCAPS ǅungla ǈ",
	"12345 1,000,000 3.14159 ½ ٣٤٥ Ⅻ", "a1b2c3 x86_64 v1.2.3-rc.1",
	"line one\nline two\r\n\r\n  indented\n\n\n", "   \n", "\n   ", " \t \n \t x", "x \n y",
	"trailing spaces   ", "trailing newline\n", " ", "\n", "\r\n", "   x", "  !!x",
	"func main() { fmt.Println(\"hi\") } // comment\n\tif x != nil {\n\t\treturn\n\t}",
	`{"role":"user","content":"what's up?"}`, "path/to/file.go:12:3 https://example.com/a/b?c=d",
	"!!!??? ... --- ///\n//", "a/b//c///\n", " /x", ".\n/",
	"Ελληνικά κείμενο Кириллица ТЕКСТ", "日本語のテキスト、中文文本。한국어 텍스트",
	"العربية مع التشكيل: كَتَبَ", "हिन्दी पाठ देवनागरी", "e\u0301te\u0301 \u0301alone a\u0308",
	"emoji 👍🏽 👨‍👩‍👧 🇸🇪 ❤️", "zero\u200bwidth\u200djoin", "\u2028sep\u2029para\u0085nel",
	strings.Repeat("a", 300), strings.Repeat("!", 200), strings.Repeat(" ", 150) + "x",
	strings.Repeat("ab", 120), strings.Repeat("é", 100), strings.Repeat("日本", 80),
	"<|endoftext|> special <|endofprompt|>",
}

// randomText draws from an alphabet chosen to collide the expressions'
// alternatives: case, marks, digits, spaces, newlines, quotes and slashes.
func randomText(r *rand.Rand) string {
	alphabet := []string{"a", "B", "z", "Q", "é", "É", "ǅ", "ʰ", "日", "\u0301", "\u0308", "1", "9", "½", "٣",
		" ", " ", "  ", "\t", "\n", "\r", "\u00a0", "\u3000", "'", "'s", "'LL", "'re", "/", "!", ".", ",", "-", "👍", "_", "\"", "{"}
	var b strings.Builder
	for range r.IntN(24) {
		b.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

func TestSplitMatchesRegexp(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	texts := append([]string(nil), tricky...)
	for range 3000 {
		texts = append(texts, randomText(r))
	}
	for _, sp := range splitters {
		o := newOracle(sp.source)
		for _, text := range texts {
			if got, want := splitAll(text, sp.next), o.split(t, text); !equal(got, want) {
				t.Errorf("%s split %q:\n got %q\nwant %q", sp.name, text, got, want)
			}
		}
	}
}

func TestCountMatchesCodec(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	texts := append([]string(nil), tricky...)
	for range 2000 {
		texts = append(texts, randomText(r))
	}
	for _, sp := range splitters {
		c, o := sp.codec(), newOracle(sp.source)
		skipped := 0
		for _, text := range texts {
			if !equal(regexpSplit(t, sp.pattern, text), o.split(t, text)) {
				skipped++ // the library splits wrongly; see oracle
				continue
			}
			want, err := c.Count(text)
			if err != nil {
				t.Fatal(err)
			}
			if got := sp.enc.Count(text); got != want {
				t.Errorf("%s Count(%q) = %d; want %d (the library's count)", sp.name, text, got, want)
			}
		}
		t.Logf("%s: %d of %d texts skipped where the library splits wrongly", sp.name, skipped, len(texts))
	}
}

// TestMergeLargeMatchesSmall holds the heap merge to the quadratic one on
// pieces both can take.
func TestMergeLargeMatchesSmall(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, sp := range splitters {
		v := vocabs[sp.enc]()
		for range 2000 {
			var b strings.Builder
			for range 2 + r.IntN(smallPiece-2) {
				b.WriteByte("aeiourstlnmbcdxyzQ_-0"[r.IntN(21)])
			}
			piece := b.String()
			if got, want := v.mergeLarge(piece), v.mergeSmall(piece); got != want {
				t.Errorf("%s mergeLarge(%q) = %d; mergeSmall = %d", sp.name, piece, got, want)
			}
		}
	}
}

func FuzzCountMatchesCodec(f *testing.F) {
	for _, s := range tricky {
		f.Add(s)
	}
	codecs := []*codec.Codec{splitters[0].codec(), splitters[1].codec()}
	oracles := []oracle{newOracle(cl100kPattern), newOracle(o200kPattern)}
	f.Fuzz(func(t *testing.T, text string) {
		if !utf8.ValidString(text) {
			// The library's regexp engine reads invalid bytes as U+FFFD and
			// counts that; Count counts the bytes. Only check it terminates.
			Count("gpt-4o", text)
			Count("gpt-4", text)
			return
		}
		for i, sp := range splitters {
			pieces := oracles[i].split(t, text)
			if got := splitAll(text, sp.next); !equal(got, pieces) {
				t.Fatalf("%s split %q:\n got %q\nwant %q", sp.name, text, got, pieces)
			}
			if !equal(regexpSplit(t, sp.pattern, text), pieces) {
				continue // the library splits wrongly; see oracle
			}
			want, err := codecs[i].Count(text)
			if err != nil {
				t.Fatal(err)
			}
			if got := sp.enc.Count(text); got != want {
				t.Errorf("%s Count(%q) = %d; want %d", sp.name, text, got, want)
			}
		}
	})
}

func splitAll(text string, next func(string, int) int) []string {
	var pieces []string
	for i := 0; i < len(text); {
		j := next(text, i)
		if j <= i {
			return append(pieces, "<no progress>")
		}
		pieces = append(pieces, text[i:j])
		i = j
	}
	return pieces
}

func regexpSplit(t testing.TB, re *regexp2.Regexp, text string) []string {
	t.Helper()
	var pieces []string
	m, err := re.FindStringMatch(text)
	for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
		pieces = append(pieces, m.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	return pieces
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
