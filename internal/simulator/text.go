package simulator

import (
	"math/rand/v2"
	"strings"
	"unicode"
	"unicode/utf8"
)

// words are common English words each of which is one token in o200k_base and
// in cl100k_base, lowercase or capitalised, with or without a leading space
// (TestWordsAreOneToken). A reply is made of them and of "." and ",", which
// are one token too, in pieces that the encoders' pre-tokenizers never join,
// so a reply of n pieces is exactly n tokens: usage is exact by construction,
// without tokenizing the reply.
var words = strings.Fields(`the model data system service request response token gateway answer
question value result process user network server client cloud region time first second third
simple clear quick short long small large great good better best many most some other each every
more less often always never again still also just very well only even much quite rather early
late open close start end final main real true right left high low fast slow light dark warm cold
new old young strong full deep wide free safe sure ready known common public private local global
general special certain possible important different similar available current recent modern
natural social human personal national major basic standard normal regular and or but for with
from into over under about after before between through during without within along across
around among upon this that these those there here where when while which what how why because
since until although though whether if then than so as at by on of to it its is are was were be
been being has have had will would can could should may must our your their we you they people
world life work home house water food music story book plan team group company market price cost
level rate change power energy health history language science art design method project report
policy issue problem solution option choice form line point part place case fact way day year week
month hour minute moment period future past present night morning river mountain ocean forest city
country state street road bridge window door table chair paper letter number word name voice sound
color image picture field center edge surface shape size weight length distance speed force heat
air fire earth stone metal glass wood`)

// The three forms a word takes in a reply.
var (
	wordFirst = mapWords(func(w string) string { return capitalize(w) })       // "The" opens the reply
	wordStart = mapWords(func(w string) string { return " " + capitalize(w) }) // " The" opens a sentence
	wordNext  = mapWords(func(w string) string { return " " + w })             // " model" anywhere else
)

func mapWords(f func(string) string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = f(w)
	}
	return out
}

func capitalize(w string) string {
	r, n := utf8.DecodeRuneInString(w)
	return string(unicode.ToUpper(r)) + w[n:]
}

// text generates a reply of exactly n tokens, one piece (one token) at a
// time. A reply that stops (rather than hitting its token limit) ends with a
// full stop.
type text struct {
	rng         *rand.Rand
	n, i        int
	stop        bool
	prevWord    bool // the last piece was a word, so punctuation may follow
	sentence    int  // words in the current sentence
	sentenceLen int  // words the current sentence will have
}

func newText(rng *rand.Rand, n int, stop bool) *text {
	return &text{rng: rng, n: n, stop: stop}
}

// next returns the next piece, or "" when the reply is complete.
func (t *text) next() string {
	if t.i >= t.n {
		return ""
	}
	i := t.i
	t.i++
	switch {
	case i == 0:
		return t.word(wordFirst)
	case t.stop && i == t.n-1:
		return t.punct(".") // the piece before was a word: see below
	case t.stop && i == t.n-2:
		// Leave the last piece to the full stop.
	case t.sentence >= t.sentenceLen:
		return t.punct(".")
	case t.prevWord && t.sentence >= 3 && t.sentence < t.sentenceLen-2 && t.rng.IntN(8) == 0:
		return t.punct(",")
	}
	if t.sentence == 0 {
		return t.word(wordStart)
	}
	return t.word(wordNext)
}

func (t *text) word(forms []string) string {
	if t.sentence == 0 {
		t.sentenceLen = 5 + t.rng.IntN(12)
	}
	t.sentence++
	t.prevWord = true
	return forms[t.rng.IntN(len(forms))]
}

func (t *text) punct(p string) string {
	if p == "." {
		t.sentence = 0
	}
	t.prevWord = false
	return p
}

// all returns the whole reply.
func (t *text) all() string {
	var b strings.Builder
	b.Grow(t.n * 7)
	for p := t.next(); p != ""; p = t.next() {
		b.WriteString(p)
	}
	return b.String()
}
