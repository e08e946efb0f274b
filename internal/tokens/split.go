package tokens

import (
	"unicode"
	"unicode/utf8"
)

// The encodings first split text into pieces with a regular expression and
// then encode each piece on its own. The library's regexp engine allocates for
// every piece and runs at about 12 MB/s; the splitters below implement the
// same two expressions by hand, as tiktoken's backtracking engine evaluates
// them, without allocating. TestSplitMatchesRegexp and FuzzCountMatchesCodec
// hold them to the library's results.
//
// cl100k_base:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//	 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// o200k_base:
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
//	\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+

// Character classes, as bits.
const (
	cLetter  = 1 << iota // \p{L}
	cNumber              // \p{N}
	cSpace               // \s
	cNewline             // [\r\n]
	cUpper               // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	cLower               // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
)

// asciiClass holds the class of every ASCII character.
var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for r := range rune(utf8.RuneSelf) {
		t[r] = classOfRune(r)
	}
	return t
}()

func classOfRune(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		switch {
		case unicode.In(r, unicode.Lu, unicode.Lt):
			return cLetter | cUpper
		case unicode.Is(unicode.Ll, r):
			return cLetter | cLower
		default: // Lm, Lo
			return cLetter | cUpper | cLower
		}
	case unicode.IsMark(r):
		return cUpper | cLower
	case unicode.IsNumber(r):
		return cNumber
	case r == '\r' || r == '\n':
		return cSpace | cNewline
	case unicode.IsSpace(r):
		return cSpace
	}
	return 0
}

// classAt returns the class and width of the character at s[i]. An invalid
// byte is a one-byte character of no class, as U+FFFD would be.
func classAt(s string, i int) (uint8, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return asciiClass[b], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return classOfRune(r), n
}

// span returns the end of the run of characters from i whose class has any
// of the bits in want.
func span(s string, i int, want uint8) int {
	for i < len(s) {
		c, n := classAt(s, i)
		if c&want == 0 {
			break
		}
		i += n
	}
	return i
}

// contraction returns the end of (?i:'s|'t|'re|'ve|'m|'ll|'d) at i, or i.
func contraction(s string, i int) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return i
	}
	switch s[i+1] | 0x20 {
	case 's', 't', 'm', 'd':
		return i + 2
	case 'r', 'v', 'l':
		if i+2 < len(s) {
			if want := map2[s[i+1]|0x20]; s[i+2]|0x20 == want {
				return i + 3
			}
		}
	}
	return i
}

// map2 gives the second letter of the three-character contractions.
var map2 = [256]byte{'r': 'e', 'v': 'e', 'l': 'l'}

// notPrefix are the classes that [^\r\n\p{L}\p{N}] excludes.
const notPrefix = cLetter | cNumber | cNewline

// nextCl100k returns the end of the cl100k_base piece that starts at i.
func nextCl100k(s string, i int) int {
	if j := contraction(s, i); j > i {
		return j
	}
	c, n := classAt(s, i)
	if c&cLetter != 0 {
		return span(s, i, cLetter)
	}
	if c&notPrefix == 0 && i+n < len(s) {
		if c2, _ := classAt(s, i+n); c2&cLetter != 0 {
			return span(s, i+n, cLetter)
		}
	}
	if c&cNumber != 0 {
		return digits(s, i)
	}
	if j := punctuation(s, i, c); j > i {
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j
	}
	return whitespace(s, i)
}

// nextO200k returns the end of the o200k_base piece that starts at i.
func nextO200k(s string, i int) int {
	c, n := classAt(s, i)
	prefixed := c&notPrefix == 0
	if prefixed {
		if j := o200kWordLower(s, i+n); j > 0 {
			return j
		}
	}
	if j := o200kWordLower(s, i); j > 0 {
		return j
	}
	if prefixed {
		if j := o200kWordUpper(s, i+n); j > 0 {
			return j
		}
	}
	if j := o200kWordUpper(s, i); j > 0 {
		return j
	}
	if c&cNumber != 0 {
		return digits(s, i)
	}
	if j := punctuation(s, i, c); j > i {
		for j < len(s) && (s[j] == '\r' || s[j] == '\n' || s[j] == '/') {
			j++
		}
		return j
	}
	return whitespace(s, i)
}

// o200kWordLower matches [upper]*[lower]+(contraction)? at i, returning its
// end or -1. The starred run gives characters back, as a backtracking engine
// would, until a lower character follows it.
func o200kWordLower(s string, i int) int {
	b, lastLower := i, -1
	for b < len(s) {
		c, n := classAt(s, b)
		if c&cUpper == 0 {
			break
		}
		b += n
		if c&cLower != 0 {
			lastLower = b
		}
	}
	if b < len(s) {
		if c, _ := classAt(s, b); c&cLower != 0 {
			return contraction(s, span(s, b, cLower))
		}
	}
	if lastLower < 0 {
		return -1
	}
	return contraction(s, lastLower)
}

// o200kWordUpper matches [upper]+[lower]*(contraction)? at i, returning its
// end or -1.
func o200kWordUpper(s string, i int) int {
	b := span(s, i, cUpper)
	if b == i {
		return -1
	}
	return contraction(s, span(s, b, cLower))
}

// digits matches \p{N}{1,3} at i, where s[i] is a number.
func digits(s string, i int) int {
	for k := 0; k < 3 && i < len(s); k++ {
		c, n := classAt(s, i)
		if c&cNumber == 0 {
			break
		}
		i += n
	}
	return i
}

// punctuation matches " ?[^\s\p{L}\p{N}]+" at i, where the character at i
// has class c; it returns i if there is no match.
func punctuation(s string, i int, c uint8) int {
	j := i
	if s[i] == ' ' {
		j++
		if j == len(s) {
			return i
		}
		c, _ = classAt(s, j)
	}
	if c&(cSpace|cLetter|cNumber) != 0 {
		return i
	}
	for j < len(s) {
		c, w := classAt(s, j)
		if c&(cSpace|cLetter|cNumber) != 0 {
			break
		}
		j += w
	}
	return j
}

// whitespace matches \s*[\r\n]+|\s+(?!\S)|\s+ at i, where s[i] is a space.
func whitespace(s string, i int) int {
	end, lastNewline, lastStart, runes := i, -1, i, 0
	for end < len(s) {
		c, n := classAt(s, end)
		if c&cSpace == 0 {
			break
		}
		if c&cNewline != 0 {
			lastNewline = end
		}
		lastStart = end
		end += n
		runes++
	}
	switch {
	case runes == 0: // not a space: unreachable, but never loop forever
		_, n := classAt(s, i)
		return i + n
	case lastNewline >= 0:
		return lastNewline + 1 // \s*[\r\n]+ gives back the spaces after the last newline
	case end == len(s) || runes == 1:
		return end
	default:
		return lastStart // \s+(?!\S) leaves the last space to the next word
	}
}
