// Package pii finds personal data in prompt text and replaces it with
// placeholders such as <EMAIL_1> before a prompt leaves the gateway, then puts
// the values back into the answer, streams included. Built-in recognisers
// (e-mail, phone, credit card with the Luhn check, IBAN with its mod-97
// check, IP address) and regular expressions run in process; other
// categories (names, addresses) come from an Azure AI Language-compatible
// Service when one is given.
package pii

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Built-in categories, named as Azure AI Language names them (IBAN is
// Language's InternationalBankingAccountNumber).
const (
	Email            = "Email"
	PhoneNumber      = "PhoneNumber"
	CreditCardNumber = "CreditCardNumber"
	IBAN             = "IBAN"
	IPAddress        = "IPAddress"
)

// BuiltIn reports whether category is recognised in process.
func BuiltIn(category string) bool {
	_, ok := builtinNames[category]
	return ok
}

// Entity is a piece of personal data found in a text: its category and its
// byte offsets, text[Start:End].
type Entity struct {
	Category   string
	Start, End int
}

// A Service recognises the entities of categories that are not built in,
// such as Person and Address, in several texts at once. Implementations
// must be safe for concurrent use.
type Service interface {
	// Recognise returns the entities of each text, with byte offsets into
	// it, among categories.
	Recognise(ctx context.Context, texts []string, categories []string) ([][]Entity, error)
}

// Pattern is a regular expression whose matches are entities of Category.
type Pattern struct {
	Category string
	Regex    string
}

// Options configure a Masker.
type Options struct {
	// Entities are the categories to mask: the built-in ones, and any
	// other that Service recognises.
	Entities []string
	// Patterns add categories of the operator's own.
	Patterns []Pattern
	// Service recognises the categories that are not built in; nil when
	// there is none, in which case such categories are an error.
	Service Service
}

// A Masker replaces the personal data of requests with placeholders. It is
// immutable and safe for concurrent use.
type Masker struct {
	builtin builtinSet
	finders []finder
	remote  []string // categories asked of the service
	service Service
}

// finder is a pattern: a regular expression whose matches are entities of
// category.
type finder struct {
	category string
	re       *regexp.Regexp
}

// New compiles a Masker.
func New(o Options) (*Masker, error) {
	m := &Masker{service: o.Service}
	for _, c := range o.Entities {
		if set, ok := builtinNames[c]; ok {
			set(&m.builtin)
			continue
		}
		if o.Service == nil {
			return nil, fmt.Errorf("pii: %s is not built in and no service recognises it", c)
		}
		m.remote = append(m.remote, c)
	}
	for _, p := range o.Patterns {
		re, err := regexp.Compile(p.Regex)
		if err != nil {
			return nil, fmt.Errorf("pii: pattern of %s: %w", p.Category, err)
		}
		if p.Category == "" {
			return nil, fmt.Errorf("pii: pattern %q has no category", p.Regex)
		}
		m.finders = append(m.finders, finder{category: p.Category, re: re})
	}
	return m, nil
}

// Find returns the in-process entities of text, sorted by start, with
// overlaps resolved: the earliest wins, then the longest, then the
// recogniser listed first.
func (m *Masker) Find(text string) []Entity {
	var found []Entity
	if m.builtin.any() {
		found = m.builtin.find(text, found)
	}
	for _, f := range m.finders {
		for _, loc := range f.re.FindAllStringIndex(text, -1) {
			found = append(found, Entity{Category: f.category, Start: loc[0], End: loc[1]})
		}
	}
	return resolve(found)
}

// resolve sorts entities by start and drops those that overlap an earlier
// or longer one; the sort is stable, so among equal spans the first found
// wins.
func resolve(es []Entity) []Entity {
	if len(es) < 2 {
		return es
	}
	slices.SortStableFunc(es, func(a, b Entity) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return (b.End - b.Start) - (a.End - a.Start)
	})
	out := es[:1]
	for _, e := range es[1:] {
		if e.Start >= out[len(out)-1].End && e.End > e.Start {
			out = append(out, e)
		}
	}
	return out
}

// maskText replaces the given entities of text (sorted, not overlapping)
// with their placeholders from v.
func maskText(text string, es []Entity, v *Vault) string {
	if len(es) == 0 {
		return text
	}
	var b strings.Builder
	b.Grow(len(text) + 8*len(es))
	last := 0
	for _, e := range es {
		b.WriteString(text[last:e.Start])
		b.WriteString(v.placeholder(e.Category, text[e.Start:e.End]))
		last = e.End
	}
	b.WriteString(text[last:])
	return b.String()
}
