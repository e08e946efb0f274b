package pii

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/sluice-gateway/sluice/internal/wire"
	"github.com/tidwall/gjson"
)

// ErrUnreadable is returned by Mask for a body whose text it cannot find
// safely; the request must not go on unmasked.
var ErrUnreadable = errors.New("pii: cannot locate the text of the request body")

// Text is a JSON string of a request body that holds prompt text: the
// bytes body[Start:End] (quotes included) and its Value.
type Text struct {
	Start, End int
	Value      string
}

// Mask returns body with the personal data in its message text replaced by
// placeholders, and the vault to restore them with. Only the contents of
// JSON strings change, so the body stays valid JSON with the same keys.
// When nothing is found the body is returned as it is and the vault is
// empty. An error from the service is returned as it is.
func (m *Masker) Mask(ctx context.Context, op wire.Operation, body []byte) ([]byte, *Vault, error) {
	spans, err := Texts(op, body)
	if err != nil {
		return nil, newVault(nil), err
	}
	// Placeholders the client wrote itself are not made: the answer's
	// would be ambiguous.
	var taken []byte
	for _, s := range spans {
		if strings.Contains(s.Value, "<") {
			taken = append(append(taken, s.Value...), 0)
		}
	}
	v := newVault(taken)
	found := make([][]Entity, len(spans))
	for i, s := range spans {
		found[i] = m.Find(s.Value)
	}
	if len(m.remote) > 0 && len(spans) > 0 {
		texts := make([]string, len(spans))
		for i, s := range spans {
			texts[i] = s.Value
		}
		more, err := m.service.Recognise(ctx, texts, m.remote)
		if err != nil {
			return nil, v, err
		}
		for i := range found {
			if i < len(more) {
				found[i] = resolve(append(found[i], valid(more[i], len(texts[i]))...))
			}
		}
	}
	var out []byte
	last := 0
	for i, s := range spans {
		if len(found[i]) == 0 {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(body)+64)
		}
		out = append(out, body[last:s.Start]...)
		out = appendQuoted(out, maskText(s.Value, found[i], v))
		last = s.End
	}
	if out == nil {
		return body, v, nil
	}
	return append(out, body[last:]...), v, nil
}

// valid drops entities whose offsets do not fit a text of n bytes.
func valid(es []Entity, n int) []Entity {
	out := es[:0]
	for _, e := range es {
		if e.Start >= 0 && e.End <= n && e.Start < e.End {
			out = append(out, e)
		}
	}
	return out
}

// appendQuoted appends s as a JSON string literal.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// Texts returns the JSON strings of body that hold prompt text, in body
// order: chat messages' content (a string, or the text of its parts), a
// completions prompt, embeddings input, a Responses input and instructions.
func Texts(op wire.Operation, body []byte) ([]Text, error) {
	var spans []Text
	var bad bool
	add := func(path string) {
		r := gjson.GetBytes(body, path)
		if r.Type != gjson.String {
			return
		}
		i := r.Index
		if i <= 0 || i+len(r.Raw) > len(body) || string(body[i:i+len(r.Raw)]) != r.Raw || body[i] != '"' {
			bad = true
			return
		}
		spans = append(spans, Text{Start: i, End: i + len(r.Raw), Value: r.Str})
	}
	// content adds a string, or the text of each part of an array.
	content := func(path string) {
		r := gjson.GetBytes(body, path)
		switch {
		case r.Type == gjson.String:
			add(path)
		case r.IsArray():
			n := int(gjson.GetBytes(body, path+".#").Int())
			for j := range n {
				add(path + "." + strconv.Itoa(j) + ".text")
			}
		}
	}
	// strings adds a string, or each string of an array.
	strs := func(path string) {
		r := gjson.GetBytes(body, path)
		switch {
		case r.Type == gjson.String:
			add(path)
		case r.IsArray():
			n := int(gjson.GetBytes(body, path+".#").Int())
			for j := range n {
				add(path + "." + strconv.Itoa(j))
			}
		}
	}
	switch op {
	case wire.OpChatCompletions:
		n := int(gjson.GetBytes(body, "messages.#").Int())
		for i := range n {
			content("messages." + strconv.Itoa(i) + ".content")
		}
	case wire.OpCompletions:
		strs("prompt")
	case wire.OpEmbeddings:
		strs("input")
	case wire.OpResponses:
		add("instructions")
		in := gjson.GetBytes(body, "input")
		if in.Type == gjson.String {
			add("input")
		} else if in.IsArray() {
			n := int(gjson.GetBytes(body, "input.#").Int())
			for i := range n {
				content("input." + strconv.Itoa(i) + ".content")
			}
		}
	}
	if bad {
		return nil, ErrUnreadable
	}
	// Keys are read in one pass per path; sort by position so the body is
	// rebuilt front to back.
	sortSpans(spans)
	return spans, nil
}

// sortSpans sorts texts by position (few, and nearly sorted: an insertion
// sort).
func sortSpans(s []Text) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Start < s[j-1].Start; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
