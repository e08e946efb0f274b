package cache

import (
	"strings"

	"github.com/tidwall/gjson"
)

// Op is the operation of a request, as the cache tells them apart.
type Op string

// The operations the cache serves.
const (
	OpChat        Op = "chat.completions"
	OpCompletions Op = "completions"
	OpResponses   Op = "responses"
	OpEmbeddings  Op = "embeddings"
)

// Keys are what a request is looked up and stored under.
type Keys struct {
	// Exact is the exact key, after the tag's prefix: the scope, the operation, the model and the
	// canonical body. Streamed and non-streamed requests differ in it.
	Exact Hash
	// Partition is the semantic partition: the scope, the operation, the
	// model and the canonical body less the text that is embedded (the
	// last message, or the whole prompt); empty when the request cannot be
	// looked up semantically (embeddings; a last message that is not a
	// user's, or holds more than text; more messages than allowed).
	Partition Hash
	// Text is what is embedded for a semantic lookup: the last user
	// message's text, after the system text unless that is ignored.
	Text string
	// Scope is the vary_by values the keys were made with, as given.
	Scope string
	// Tag is the tag the keys were made with (KeyOptions.Tag).
	Tag string
}

// SemanticKey is the key a semantically indexed answer is stored under:
// apart from the exact one, as it lives for the semantic duration.
func (k Keys) SemanticKey() string {
	p := ScopePrefix(k.Tag)
	return p + "s" + strings.TrimPrefix(k.Exact, p)
}

// KeyOptions say how to key a request.
type KeyOptions struct {
	// Scope is the vary_by values (subscription, header values...), which
	// partition everything.
	Scope string
	// Tag is what Clear can drop the keys by: the subscription, or ""
	// when the cache does not vary by subscription.
	Tag string
	// Model is the configured model the request is for.
	Model string
	// Semantic asks for the semantic partition and text too.
	Semantic bool
	// IgnoreSystem leaves system and developer text out of Text (it
	// stays in the partition).
	IgnoreSystem bool
	// MaxMessages, when positive, skips semantic lookups of longer
	// conversations.
	MaxMessages int
}

// KeysOf returns the keys of a request body. It fails only on a body that
// is not a JSON object.
func KeysOf(op Op, body []byte, o KeyOptions) (Keys, error) {
	canon, err := Canonical(make([]byte, 0, len(body)), body)
	if err != nil {
		return Keys{}, err
	}
	tag := ScopePrefix(o.Tag)
	k := Keys{Scope: o.Scope, Tag: o.Tag, Exact: tag + hashOf([]byte("exact"), []byte(o.Scope), []byte(op), []byte(o.Model), canon)}
	if !o.Semantic || op == OpEmbeddings {
		return k, nil
	}
	v := gjson.ParseBytes(body)
	var field, text, system string
	ok := false
	switch op {
	case OpChat:
		field = "messages"
		text, system, ok = lastUserText(v.Get("messages"), o.MaxMessages)
	case OpResponses:
		field = "input"
		in := v.Get("input")
		if in.Type == gjson.String {
			text, ok = in.String(), true
		} else {
			text, system, ok = lastUserText(in, o.MaxMessages)
		}
		if ins := v.Get("instructions"); ins.Type == gjson.String {
			system = joinText(ins.String(), system)
		}
	case OpCompletions:
		field = "prompt"
		if p := v.Get("prompt"); p.Type == gjson.String {
			text, ok = p.String(), true
		}
	}
	if !ok || strings.TrimSpace(text) == "" {
		return k, nil
	}
	rest := appendObjectTrimmed(make([]byte, 0, len(canon)), v, field)
	k.Partition = tag + hashOf([]byte("semantic"), []byte(o.Scope), []byte(op), []byte(o.Model), rest)
	if !o.IgnoreSystem && system != "" {
		text = joinText(system, text)
	}
	k.Text = text
	return k, nil
}

func joinText(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "\n" + b
}

// lastUserText reads a list of messages: the text of the last, which must
// be a user's and hold text alone, and the text of the system and developer
// messages.
func lastUserText(msgs gjson.Result, max int) (text, system string, ok bool) {
	if !msgs.IsArray() {
		return "", "", false
	}
	list := msgs.Array()
	if len(list) == 0 || (max > 0 && len(list) > max) {
		return "", "", false
	}
	for _, m := range list[:len(list)-1] {
		if r := m.Get("role").String(); r == "system" || r == "developer" {
			t, _ := contentText(m.Get("content"))
			system = joinText(system, t)
		}
	}
	last := list[len(list)-1]
	if last.Get("role").String() != "user" {
		return "", "", false
	}
	if t := last.Get("type"); t.Exists() && t.String() != "message" {
		return "", "", false
	}
	text, ok = contentText(last.Get("content"))
	return text, system, ok
}

// contentText returns a message content's text: a string, or text parts
// joined; ok is false when it holds anything but text (an image, a file,
// audio), which the embedding would not see.
func contentText(c gjson.Result) (string, bool) {
	if c.Type == gjson.String {
		return c.String(), true
	}
	if !c.IsArray() {
		return "", false
	}
	var b strings.Builder
	ok := true
	c.ForEach(func(_, part gjson.Result) bool {
		switch part.Get("type").String() {
		case "text", "input_text":
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(part.Get("text").String())
			return true
		}
		ok = false
		return false
	})
	return b.String(), ok
}

// appendObjectTrimmed appends the canonical form of the top-level object v
// with the field trim's text taken out: the last element of an array, or
// the whole value of a string.
func appendObjectTrimmed(dst []byte, v gjson.Result, trim string) []byte {
	dst = appendObject(dst, v, withIgnored(trim))
	t := v.Get(trim)
	if !t.IsArray() {
		return dst
	}
	list := t.Array()
	dst = append(dst, `,"`+trim+`":[`...)
	for i, e := range list[:len(list)-1] {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendValue(dst, e)
	}
	return append(dst, ']')
}

func withIgnored(extra string) map[string]bool {
	m := make(map[string]bool, len(ignored)+1)
	for k := range ignored {
		m[k] = true
	}
	m[extra] = true
	return m
}

// ScopePrefix is the prefix of the keys and partitions made with the tag;
// "" for every key when tag is "".
func ScopePrefix(tag string) string {
	if tag == "" {
		return ""
	}
	return hashOf([]byte("tag"), []byte(tag))[:16] + ":"
}
