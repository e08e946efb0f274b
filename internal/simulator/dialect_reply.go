package simulator

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/sluice-gateway/sluice/internal/tokens"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// dialectReply answers in the request's dialect.
func (s *Simulator) dialectReply(c *call, req *apiRequest, a *answer) {
	switch {
	case c.route.dialect == dialectAnthropic && req.Stream:
		s.anthropicStream(c, a)
	case c.route.dialect == dialectAnthropic:
		s.anthropicMessage(c, a)
	case c.route.stream:
		s.geminiStream(c, a)
	default:
		s.geminiContent(c, a)
	}
}

// preface is the text Claude and Gemini write before calling tools, which
// a translation must pass on ahead of the calls.
func (c *call) preface(a *answer) (string, int) {
	if len(a.calls) == 0 {
		return "", 0
	}
	t := "I'll use the " + a.calls[0].name + " tool."
	return t, tokens.EncodingFor(c.d.model).Count(t)
}

func anthropicStop(a *answer) string {
	switch {
	case a.finish == "length":
		return "max_tokens"
	case len(a.calls) > 0:
		return "tool_use"
	}
	return "end_turn"
}

func geminiFinish(a *answer) string {
	if a.finish == "length" {
		return "MAX_TOKENS"
	}
	return "STOP"
}

// appendAnthropicUsage appends a Messages usage object.
func appendAnthropicUsage(b []byte, prompt, output int) []byte {
	b = append(b, `{"input_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt), 10)
	b = append(b, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":0`...)
	b = appendInt(b, "output_tokens", int64(output))
	return append(b, `,"service_tier":"standard"}`...)
}

// anthropicMessage answers a Messages request at once.
func (s *Simulator) anthropicMessage(c *call, a *answer) {
	pre, preTokens := c.preface(a)
	n := a.n + preTokens
	reply := ""
	if len(a.calls) == 0 {
		reply = c.content(a)
	}
	if !c.sleep(s.latency.total(c.rng, n)) {
		c.status = 499
		return
	}
	b := append(make([]byte, 0, 1024), `{"model":`...)
	b = wire.AppendString(b, c.d.model)
	b = append(b, `,"id":`...)
	b = wire.AppendString(b, newID("msg_01", 22))
	b = append(b, `,"type":"message","role":"assistant","content":[`...)
	if len(a.calls) == 0 {
		b = append(b, `{"type":"text","text":`...)
		b = wire.AppendString(b, reply)
		b = append(b, '}')
	} else {
		b = append(b, `{"type":"text","text":`...)
		b = wire.AppendString(b, pre)
		b = append(b, '}')
		for _, tc := range a.calls {
			b = append(b, `,{"type":"tool_use","id":`...)
			b = wire.AppendString(b, anthropicID(tc.id))
			b = append(b, `,"name":`...)
			b = wire.AppendString(b, tc.name)
			b = append(b, `,"input":`...)
			b = append(b, inputObject(tc.args)...)
			b = append(b, '}')
		}
	}
	b = append(b, `],"stop_reason":`...)
	b = wire.AppendString(b, anthropicStop(a))
	b = append(b, `,"stop_sequence":null,"usage":`...)
	b = appendAnthropicUsage(b, c.prompt, n)
	b = append(b, '}')
	c.answered, c.completion = true, n
	c.writeBody(200, b)
}

// anthropicID makes a tool_use id of a call id.
func anthropicID(id string) string { return "toolu_01" + strings.TrimPrefix(id, "call_") }

// inputObject is a call's arguments as the input object: arguments cut at
// a limit are no object, and Anthropic always sends one.
func inputObject(args string) string {
	if json.Valid([]byte(args)) {
		return args
	}
	return "{}"
}

// anthropicStream answers a Messages request as the API streams it:
// message_start with the input usage, a text block (content_block_start,
// a ping, text_delta per token, content_block_stop), before tool calls a
// short text block then one tool_use block per call (input_json_delta
// pieces, the first empty), message_delta with the stop reason and the
// output usage, message_stop. No [DONE].
func (s *Simulator) anthropicStream(c *call, a *answer) {
	if !c.sleep(s.latency.Base) {
		c.status = 499
		return
	}
	pre, preTokens := c.preface(a)
	st := c.startStream()
	b := append(st.open("message_start"), `{"type":"message_start","message":{"model":`...)
	b = wire.AppendString(b, c.d.model)
	b = append(b, `,"id":`...)
	b = wire.AppendString(b, newID("msg_01", 22))
	b = append(b, `,"type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":`...)
	b = appendAnthropicUsage(b, c.prompt, 1)
	if !st.send(append(b, `}}`...), 0) {
		return
	}
	if !st.send(append(st.open("content_block_start"), `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`...), 0) ||
		!st.send(append(st.open("ping"), `{"type": "ping"}`...), 0) {
		return
	}
	textDelta := func(piece string, n int) bool {
		b := append(st.open("content_block_delta"), `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`...)
		b = wire.AppendString(b, piece)
		return st.send(append(b, `}}`...), n)
	}
	if len(a.calls) > 0 {
		if !st.pace(preTokens) || !textDelta(pre, preTokens) {
			return
		}
	} else {
		for p, n := range c.pieces(a) {
			if !st.pace(n) || !textDelta(p, n) {
				return
			}
		}
	}
	if !st.send(append(st.open("content_block_stop"), `{"type":"content_block_stop","index":0}`...), 0) {
		return
	}
	for i, tc := range a.calls {
		idx := strconv.Itoa(i + 1)
		b := append(st.open("content_block_start"), `{"type":"content_block_start","index":`+idx+`,"content_block":{"type":"tool_use","id":`...)
		b = wire.AppendString(b, anthropicID(tc.id))
		b = append(b, `,"name":`...)
		b = wire.AppendString(b, tc.name)
		if !st.send(append(b, `,"input":{}}}`...), tc.nameTokens) {
			return
		}
		args := inputObject(tc.args)
		pieces := append([]string{""}, splitN(args, 3)...)
		for _, p := range pieces {
			b := append(st.open("content_block_delta"), `{"type":"content_block_delta","index":`+idx+`,"delta":{"type":"input_json_delta","partial_json":`...)
			b = wire.AppendString(b, p)
			if !st.pace(1) || !st.send(append(b, `}}`...), 0) {
				return
			}
		}
		if !st.send(append(st.open("content_block_stop"), `{"type":"content_block_stop","index":`+idx+`}`...), 0) {
			return
		}
	}
	c.completion = a.n + preTokens // what is left is bookkeeping: the tool arguments count as delivered
	b = append(st.open("message_delta"), `{"type":"message_delta","delta":{"stop_reason":`...)
	b = wire.AppendString(b, anthropicStop(a))
	b = append(b, `,"stop_sequence":null},"usage":{"output_tokens":`...)
	b = strconv.AppendInt(b, int64(a.n+preTokens), 10)
	if !st.send(append(b, `}}`...), 0) {
		return
	}
	st.send(append(st.open("message_stop"), `{"type":"message_stop"}`...), 0)
}

// splitN cuts s into at most n pieces on rune boundaries.
func splitN(s string, n int) []string {
	var out []string
	size := max(1, len(s)/n)
	for len(s) > 0 {
		end := min(size, len(s))
		for end < len(s) && !utf8Start(s[end]) {
			end++
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	return out
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// geminiResponse appends a GenerateContentResponse with parts.
func (c *call) geminiResponse(b []byte, id string, parts func([]byte) []byte, finish string, output int, final bool) []byte {
	b = append(b, `{"candidates":[{"content":{"parts":[`...)
	b = parts(b)
	b = append(b, `],"role":"model"}`...)
	if finish != "" {
		b = append(b, `,"finishReason":`...)
		b = wire.AppendString(b, finish)
	}
	b = append(b, `,"index":0}],"usageMetadata":{"promptTokenCount":`...)
	b = strconv.AppendInt(b, int64(c.prompt), 10)
	if final {
		b = appendInt(b, "candidatesTokenCount", int64(output))
	}
	b = appendInt(b, "totalTokenCount", int64(c.prompt+output))
	b = append(b, `,"promptTokensDetails":[{"modality":"TEXT","tokenCount":`...)
	b = strconv.AppendInt(b, int64(c.prompt), 10)
	b = append(b, `}]},"modelVersion":`...)
	b = wire.AppendString(b, c.d.model)
	b = append(b, `,"responseId":`...)
	b = wire.AppendString(b, id)
	return append(b, '}')
}

// appendCalls appends functionCall parts; the first carries a thought
// signature, which Gemini 3 wants back with the call.
func appendCalls(b []byte, calls []toolCall) []byte {
	for i, tc := range calls {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"functionCall":{"name":`...)
		b = wire.AppendString(b, tc.name)
		b = append(b, `,"args":`...)
		b = append(b, inputObject(tc.args)...)
		b = append(b, '}')
		if i == 0 {
			b = append(b, `,"thoughtSignature":`...)
			b = wire.AppendString(b, "CiQB"+strings.TrimPrefix(tc.id, "call_"))
		}
		b = append(b, '}')
	}
	return b
}

func textPart(b []byte, t string) []byte {
	b = append(b, `{"text":`...)
	b = wire.AppendString(b, t)
	return append(b, '}')
}

// geminiContent answers generateContent at once.
func (s *Simulator) geminiContent(c *call, a *answer) {
	pre, preTokens := c.preface(a)
	n := a.n + preTokens
	reply := pre
	if len(a.calls) == 0 {
		reply = c.content(a)
	}
	if !c.sleep(s.latency.total(c.rng, n)) {
		c.status = 499
		return
	}
	b := c.geminiResponse(make([]byte, 0, 1024), newID("", 22), func(b []byte) []byte {
		b = textPart(b, reply)
		if len(a.calls) > 0 {
			b = appendCalls(append(b, ','), a.calls)
		}
		return b
	}, geminiFinish(a), n, true)
	c.answered, c.completion = true, n
	c.writeBody(200, b)
}

// geminiStream answers streamGenerateContent?alt=sse as Gemini streams:
// every event a whole response holding the text since the last (a few
// tokens), usageMetadata on each, function calls whole in one event, the
// finishReason and full counts on the last, and no [DONE].
func (s *Simulator) geminiStream(c *call, a *answer) {
	if !c.sleep(s.latency.Base) {
		c.status = 499
		return
	}
	pre, preTokens := c.preface(a)
	id := newID("", 22)
	st := c.startStream()
	sent := 0
	send := func(parts func([]byte) []byte, tokens int, finish string, final bool) bool {
		b := c.geminiResponse(st.open(""), id, parts, finish, sent+tokens, final)
		sent += tokens
		return st.send(b, tokens)
	}
	var batch strings.Builder
	batched := 0
	flush := func() bool {
		t, n := batch.String(), batched
		batch.Reset()
		batched = 0
		return send(func(b []byte) []byte { return textPart(b, t) }, n, "", false)
	}
	if len(a.calls) > 0 {
		if !st.pace(preTokens) || !send(func(b []byte) []byte { return textPart(b, pre) }, preTokens, "", false) {
			return
		}
		if !st.pace(a.n) || !send(func(b []byte) []byte { return appendCalls(b, a.calls) }, 0, "", false) {
			return
		}
		c.completion = a.n + preTokens
		sent = a.n + preTokens
	} else {
		for p, n := range c.pieces(a) {
			if !st.pace(n) {
				return
			}
			batch.WriteString(p)
			batched += n
			if batched >= 4 && !flush() {
				return
			}
		}
		if batched > 0 && !flush() {
			return
		}
	}
	send(func(b []byte) []byte { return textPart(b, "") }, 0, geminiFinish(a), true)
}
