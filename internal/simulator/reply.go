package simulator

import (
	"iter"

	"github.com/sluice-gateway/sluice/internal/tokens"
)

// answer is what the simulated model replies to a chat or Responses
// request, decided before the reply is written: tool calls, JSON content,
// or generated text.
type answer struct {
	n      int    // completion tokens
	finish string // stop, length or tool_calls, as chat completions says it
	calls  []toolCall
	json   string // the content when a response format asked for JSON
}

// toolCall is one function call the model makes.
type toolCall struct {
	id, name, args string
	nameTokens     int
}

// answer decides the reply: with functions to call, their calls with
// arguments generated from their parameters' schemas; with a JSON response
// format, a JSON document; otherwise text of the n tokens replyLength drew.
// A limit (max_tokens and its kin) cuts what does not fit, with finish
// "length", as the service cuts a reply.
func (c *call) answer(u *toolUse, limit, n int, finish string) answer {
	if fs := u.calls(); len(fs) > 0 {
		return c.callAnswer(u, fs, limit)
	}
	if !u.format.json {
		return answer{n: n, finish: finish}
	}
	g := newGenerator(c.rng, u.format.schema)
	var doc []byte
	if u.format.schema.Exists() {
		doc = g.document(nil)
	} else {
		doc = g.freeObject(nil)
	}
	a := answer{finish: "tool_calls"}
	a.json, a.n = cutToTokens(tokens.EncodingFor(c.d.model), string(doc), limit)
	switch {
	case a.json == "":
		return answer{n: limit, finish: "length"} // not a piece fits: text cut at the limit
	case len(a.json) < len(doc):
		a.finish = "length"
	}
	return a
}

func (c *call) callAnswer(u *toolUse, fs []function, limit int) answer {
	enc := tokens.EncodingFor(c.d.model)
	a := answer{finish: "tool_calls"}
	if u.choice == choiceNamed {
		// OpenAI ends a forced call to a named function with "stop".
		a.finish = "stop"
	}
	budget := limit
	for _, f := range fs {
		args := newGenerator(c.rng, f.params).document(nil)
		tc := toolCall{id: newID("call_", 24), name: f.name, args: string(args), nameTokens: enc.Count(f.name)}
		argTokens := enc.Count(tc.args)
		if limit > 0 {
			if tc.nameTokens >= budget {
				a.finish = "length"
				break
			}
			budget -= tc.nameTokens
			if argTokens > budget {
				tc.args, argTokens = cutToTokens(enc, tc.args, budget)
				a.finish = "length"
			}
			budget -= argTokens
		}
		a.calls = append(a.calls, tc)
		a.n += tc.nameTokens + argTokens
		if a.finish == "length" {
			break
		}
	}
	if len(a.calls) == 0 {
		// Not even a name fits: the reply is text cut at the limit.
		return answer{n: limit, finish: "length"}
	}
	return a
}

// cutToTokens returns the longest start of s, ending between pre-tokenizer
// pieces, that encodes to at most limit tokens (all of s when limit is 0),
// and its count.
func cutToTokens(enc tokens.Encoding, s string, limit int) (string, int) {
	total := enc.Count(s)
	if limit <= 0 || total <= limit {
		return s, total
	}
	end, sum := 0, 0
	for p, k := range enc.Pieces(s) {
		if sum+k > limit {
			break
		}
		end, sum = end+len(p), sum+k
	}
	// A cut end may split differently than it did inside s (the
	// pre-tokenizer looks ahead at spaces): count it again, and drop its
	// last piece until it fits.
	for end > 0 {
		if n := enc.Count(s[:end]); n <= limit {
			return s[:end], n
		}
		last := 0
		for p := range enc.Pieces(s[:end]) {
			last = len(p)
		}
		end -= last
	}
	return "", 0
}

// pieces returns what a stream sends of the answer's content, one piece at
// a time with the tokens it carries: a token of text each, or the JSON's
// pre-tokenizer pieces.
func (c *call) pieces(a *answer) iter.Seq2[string, int] {
	if a.json != "" {
		return tokens.EncodingFor(c.d.model).Pieces(a.json)
	}
	t := newText(c.rng, a.n, a.finish == "stop")
	return func(yield func(string, int) bool) {
		for p := t.next(); p != ""; p = t.next() {
			if !yield(p, 1) {
				return
			}
		}
	}
}

// content returns the whole content of an answer without tool calls.
func (c *call) content(a *answer) string {
	if a.json != "" {
		return a.json
	}
	return newText(c.rng, a.n, a.finish == "stop").all()
}
