// Package redact cleans text before it goes into a log: it cuts it to a size
// and replaces what looks like a secret or personal data (API keys, bearer
// tokens, e-mail addresses, and the operator's own patterns) by [REDACTED].
// Sluice logs prompt and completion text only when the operator asks, and
// then only through a Redactor.
package redact

import (
	"fmt"
	"regexp"
	"unicode/utf8"
)

// builtin are always applied: OpenAI-style keys (sk-...), bearer tokens,
// Azure-style 32-hex keys, e-mail addresses.
var builtin = []string{
	`sk-[A-Za-z0-9_\-]{8,}`,
	`(?i)bearer\s+[A-Za-z0-9._~+/\-]+=*`,
	`\b[0-9a-fA-F]{32}\b`,
	`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`,
}

// Redactor cuts and cleans text. It is immutable and safe for concurrent use.
type Redactor struct {
	res []*regexp.Regexp
	max int
}

// New returns a Redactor with the built-in patterns plus extra, keeping at
// most max bytes of a text.
func New(extra []string, max int) (*Redactor, error) {
	r := &Redactor{max: max}
	for _, p := range append(append([]string{}, builtin...), extra...) {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("redact: %q: %w", p, err)
		}
		r.res = append(r.res, re)
	}
	return r, nil
}

// Text returns s redacted, then cut at the size limit (on a rune boundary)
// and marked when cut.
func (r *Redactor) Text(s string) string {
	for _, re := range r.res {
		s = re.ReplaceAllString(s, "[REDACTED]")
	}
	if len(s) <= r.max {
		return s
	}
	cut := r.max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[truncated]"
}
