// Package tokens counts tokens the way OpenAI's models do, so that token limits
// can be enforced before a request reaches a model and usage estimated when a
// backend does not report it. It takes the o200k_base and cl100k_base
// vocabularies from github.com/tiktoken-go/tokenizer but splits and merges
// with its own allocation-free code, since counting sits on the request path,
// and applies OpenAI's documented formula to chat messages.
package tokens

import (
	"strings"
	"sync"

	"github.com/tiktoken-go/tokenizer/codec"
)

// Encoding is a tiktoken byte-pair encoding. The zero Encoding is O200kBase.
type Encoding int

const (
	// O200kBase is the encoding of gpt-4o, gpt-4.1, gpt-5 and the o-series.
	O200kBase Encoding = iota
	// Cl100kBase is the encoding of gpt-3.5, gpt-4 and the text-embedding models.
	Cl100kBase
)

// String returns the encoding's tiktoken name.
func (e Encoding) String() string {
	if e == Cl100kBase {
		return "cl100k_base"
	}
	return "o200k_base"
}

// vocabs builds each encoding once, on first use, so that a process that
// never counts pays nothing. A vocab is read-only once built.
var vocabs = [...]func() *vocab{
	O200kBase:  sync.OnceValue(func() *vocab { return newVocab(codec.NewO200kBase(), nextO200k) }),
	Cl100kBase: sync.OnceValue(func() *vocab { return newVocab(codec.NewCl100kBase(), nextCl100k) }),
}

// Count returns the number of tokens text encodes to. Special tokens such as
// <|endoftext|> count as the text they are, as the OpenAI API counts them in
// a prompt. Invalid UTF-8 counts each invalid byte as one character. It is
// safe for concurrent use and allocates only for runs of more than 64 bytes
// that the encoding must merge (long words, symbol runs).
func (e Encoding) Count(text string) int {
	if text == "" {
		return 0
	}
	if e != Cl100kBase {
		e = O200kBase
	}
	return vocabs[e]().count(text)
}

// CountBytes is Count for text held in a byte slice, without copying it.
func (e Encoding) CountBytes(text []byte) int { return e.Count(view(text)) }

// EncodingFor returns the encoding of model, an OpenAI model name or an Azure
// deployment name that starts with one ("gpt-4o-ptu", "gpt35turbo-eu").
// Case is ignored and a fine-tune prefix "ft:" is skipped. Names that are
// recognised as gpt-3.5, gpt-4 (not gpt-4o, gpt-4.1 or gpt-4.5), the
// text-embedding models, davinci-002 or babbage-002 get Cl100kBase; everything
// else, including names it does not know, gets O200kBase, the encoding of
// every current model.
func EncodingFor(model string) Encoding {
	m := model
	if hasPrefixFold(m, "ft:") {
		m = m[len("ft:"):]
	}
	switch {
	case hasPrefixFold(m, "text-embedding-"), hasPrefixFold(m, "davinci-002"), hasPrefixFold(m, "babbage-002"):
		return Cl100kBase
	case !hasPrefixFold(m, "gpt"):
		return O200kBase
	}
	// Deployment names drop the dash as often as not: gpt-35-turbo, gpt35turbo.
	v := strings.TrimPrefix(m[len("gpt"):], "-")
	switch {
	case hasPrefixFold(v, "3.5"), hasPrefixFold(v, "35"):
		return Cl100kBase
	case !hasPrefixFold(v, "4"):
		return O200kBase
	}
	rest := v[1:]
	if rest == "" || rest[0] == '_' {
		return Cl100kBase // gpt-4, gpt4_eu
	}
	if rest[0] != '-' {
		return O200kBase // gpt-4o, gpt-4.1, gpt-4.5, gpt-41
	}
	// gpt-4-turbo, gpt-4-32k and gpt-4-1106-preview are gpt-4; an Azure
	// deployment named gpt-4-1 or gpt-4-1-mini is gpt-4.1.
	if after, ok := strings.CutPrefix(rest, "-1"); ok && (after == "" || after[0] == '-') {
		return O200kBase
	}
	return Cl100kBase
}

// Count returns the number of tokens text encodes to with model's encoding.
// It is safe for concurrent use.
func Count(model, text string) int {
	return EncodingFor(model).Count(text)
}

// hasPrefixFold reports whether s begins with prefix, ignoring ASCII case,
// without allocating.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
