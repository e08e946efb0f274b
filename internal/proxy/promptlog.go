package proxy

import (
	"log/slog"
	"strings"

	"github.com/sluice-gateway/sluice/internal/wire"
	"github.com/tidwall/gjson"
)

// promptText is the text of a request's prompt, for the access log when
// logging.prompts is on: chat messages as "role: content" lines, a
// completions prompt, embeddings input, or a Responses input.
func promptText(op wire.Operation, body []byte) string {
	var b strings.Builder
	text := func(v gjson.Result) {
		switch {
		case v.Type == gjson.String:
			b.WriteString(v.Str)
		case v.IsArray():
			v.ForEach(func(_, part gjson.Result) bool {
				if part.Type == gjson.String {
					b.WriteString(part.Str)
				} else if t := part.Get("text"); t.Type == gjson.String {
					b.WriteString(t.Str)
				}
				return true
			})
		}
	}
	switch op {
	case wire.OpChatCompletions:
		gjson.GetBytes(body, "messages").ForEach(func(_, m gjson.Result) bool {
			b.WriteString(m.Get("role").Str)
			b.WriteString(": ")
			text(m.Get("content"))
			b.WriteByte('\n')
			return true
		})
	case wire.OpCompletions:
		text(gjson.GetBytes(body, "prompt"))
	case wire.OpEmbeddings:
		text(gjson.GetBytes(body, "input"))
	case wire.OpResponses:
		in := gjson.GetBytes(body, "input")
		if in.IsArray() {
			in.ForEach(func(_, m gjson.Result) bool {
				text(m.Get("content"))
				b.WriteByte('\n')
				return true
			})
		} else {
			text(in)
		}
	}
	return b.String()
}

// completionText is the generated text of a non-streaming response body.
func completionText(body []byte) string {
	for _, path := range []string{"choices.0.message.content", "choices.0.text", "output.0.content.0.text"} {
		if r := gjson.GetBytes(body, path); r.Type == gjson.String {
			return r.Str
		}
	}
	return ""
}

// promptAttrs are the access-log attributes of the prompt and completion
// text, cut and redacted; none unless logging.prompts is on.
func (x *exchange) promptAttrs(attrs []slog.Attr) []slog.Attr {
	if x.table == nil || x.table.Redactor == nil || x.req.Body == nil {
		return attrs
	}
	r := x.table.Redactor
	attrs = append(attrs, slog.String("prompt", r.Text(promptText(x.req.Op, x.req.Body))))
	completion := x.served.completion
	if completion == "" && len(x.meter.kept) > 0 {
		completion = string(x.meter.kept)
	}
	if completion != "" {
		attrs = append(attrs, slog.String("completion", r.Text(completion)))
	}
	return attrs
}

// responseModel is the model a non-streaming response names.
func responseModel(body []byte) string {
	return gjson.GetBytes(body, "model").Str
}
