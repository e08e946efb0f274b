package proxy

import (
	"github.com/sluice-gateway/sluice/internal/tokens"
	"github.com/tidwall/gjson"
)

// messagesPromptTokens estimates the prompt of an Anthropic Messages
// request for admission: its text (system, text blocks, tool results, tool
// inputs) with the model's tokenizer, or o200k_base for a name Sluice does
// not know, and 4 tokens a message. Anthropic's tokenizer is not public;
// the provider's reported usage settles the request exactly.
func messagesPromptTokens(model string, body []byte) int64 {
	enc := tokens.EncodingFor(model)
	var n int64
	var walk func(v gjson.Result)
	walk = func(v gjson.Result) {
		switch {
		case v.Type == gjson.String:
			n += int64(enc.Count(v.Str))
		case v.IsArray():
			v.ForEach(func(_, e gjson.Result) bool { walk(e); return true })
		case v.IsObject():
			for _, k := range []string{"text", "content", "input"} {
				if f := v.Get(k); f.Exists() {
					if k == "input" {
						n += int64(enc.Count(f.Raw))
					} else {
						walk(f)
					}
				}
			}
		}
	}
	walk(gjson.GetBytes(body, "system"))
	gjson.GetBytes(body, "messages").ForEach(func(_, m gjson.Result) bool {
		n += 4
		walk(m.Get("content"))
		return true
	})
	return n
}
