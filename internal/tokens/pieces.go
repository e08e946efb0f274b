package tokens

import "iter"

// Pieces returns the pieces the encoding's pre-tokenizer splits text into,
// each with the number of tokens it encodes to, in order. Byte-pair merges
// never cross a piece's bounds, so the pieces' counts add up to Count(text)
// and a text sent piece by piece (a stream of generated JSON, say) can be
// charged exactly for what was sent. It is safe for concurrent use.
func (e Encoding) Pieces(text string) iter.Seq2[string, int] {
	return func(yield func(string, int) bool) {
		if text == "" {
			return
		}
		if e != Cl100kBase {
			e = O200kBase
		}
		v := vocabs[e]()
		for i := 0; i < len(text); {
			j := v.split(text, i)
			if !yield(text[i:j], v.countPiece(text[i:j])) {
				return
			}
			i = j
		}
	}
}
