package simulator

import (
	"strconv"

	"github.com/sluice-gateway/sluice/internal/tokens"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// chat answers a chat completion at once, after the latency of the
// whole reply, as Azure OpenAI's chat.completion object.
func (s *Simulator) chat(c *call, a *answer) {
	reply := ""
	if len(a.calls) == 0 {
		reply = c.content(a)
	}
	if !c.sleep(s.latency.total(c.rng, a.n)) {
		c.status = 499
		return
	}
	b := make([]byte, 0, 1024+len(reply)+128*len(a.calls))
	b = append(b, `{"choices":[{`...)
	if c.route.azure {
		b = append(b, `"content_filter_results":`+choiceFilter+`,`...)
	}
	b = append(b, `"finish_reason":`...)
	b = wire.AppendString(b, a.finish)
	b = append(b, `,"index":0,"logprobs":null,"message":{"annotations":[],"content":`...)
	if len(a.calls) > 0 {
		b = append(b, `null,"refusal":null,"role":"assistant","tool_calls":[`...)
		for i, tc := range a.calls {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"function":{"arguments":`...)
			b = wire.AppendString(b, tc.args)
			b = append(b, `,"name":`...)
			b = wire.AppendString(b, tc.name)
			b = append(b, `},"id":`...)
			b = wire.AppendString(b, tc.id)
			b = append(b, `,"type":"function"}`...)
		}
		b = append(b, `]}}]`...)
	} else {
		b = wire.AppendString(b, reply)
		b = append(b, `,"refusal":null,"role":"assistant"}}]`...)
	}
	b = c.appendHeader(b, "chat.completion", newID("chatcmpl-", 29))
	if c.route.azure {
		b = append(b, `,"prompt_filter_results":`+promptFilter...)
	}
	b = append(b, `,"system_fingerprint":`...)
	b = wire.AppendString(b, c.d.fingerprint)
	b = append(b, `,"usage":`...)
	b = appendChatUsage(b, c.prompt, a.n)
	b = append(b, '}')
	c.answered, c.completion = true, a.n
	c.writeBody(200, b)
}

// appendHeader appends the fields that follow "choices" in every chat and
// completions object: created, id, model and object.
func (c *call) appendHeader(b []byte, object, id string) []byte {
	b = appendInt(b, "created", c.s.now().Unix())
	b = append(b, `,"id":`...)
	b = wire.AppendString(b, id)
	b = append(b, `,"model":`...)
	b = wire.AppendString(b, c.d.model)
	b = append(b, `,"object":`...)
	return wire.AppendString(b, object)
}

func appendChatUsage(b []byte, prompt, completion int) []byte {
	b = append(b, `{"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(completion), 10)
	b = append(b, `,"completion_tokens_details":{"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":0,"rejected_prediction_tokens":0}`...)
	b = appendInt(b, "prompt_tokens", int64(prompt))
	b = append(b, `,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":0}`...)
	b = appendInt(b, "total_tokens", int64(prompt+completion))
	return append(b, '}')
}

// chatStream answers a chat completion as Azure OpenAI streams it: a first
// event with the prompt's filter results and no choices (Azure only), one
// with the assistant role, one per token, one with the finish reason, one
// with the usage when stream_options.include_usage is set, then [DONE].
// Tool calls stream as OpenAI streams them: the first chunk of each call
// carries its index, id, type and name with empty arguments (the first call
// with the role, content null), the following ones its index and a piece of
// the arguments.
func (s *Simulator) chatStream(c *call, req *apiRequest, a *answer) {
	if !c.sleep(s.latency.Base) {
		c.status = 499
		return
	}
	usage := req.includeUsage()
	// Every chunk ends with the same fields after "choices".
	tail := c.appendHeader(nil, "chat.completion.chunk", newID("chatcmpl-", 29))
	tail = append(tail, `,"system_fingerprint":`...)
	tail = wire.AppendString(tail, c.d.fingerprint)
	if usage {
		tail = append(tail, `,"usage":null`...)
	}
	tail = append(tail, '}')
	filter := ""
	if c.route.azure {
		filter = `"content_filter_results":{},`
	}

	st := c.startStream()
	if c.route.azure && !st.data(azureFirstChatLike) {
		return
	}
	if len(a.calls) > 0 {
		if !chatStreamCalls(st, a, filter, tail) {
			return
		}
	} else {
		b := append(st.open(""), `{"choices":[{`+filter+`"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}]`...)
		if !st.send(append(b, tail...), 0) {
			return
		}
		head := `{"choices":[{"delta":{"content":`
		if c.route.azure {
			head = `{"choices":[{"content_filter_results":` + chunkFilter + `,"delta":{"content":`
		}
		content := func(p string, k int) bool {
			if !st.pace(k) {
				return false
			}
			b := append(st.open(""), head...)
			b = wire.AppendString(b, p)
			b = append(b, `},"finish_reason":null,"index":0,"logprobs":null}]`...)
			return st.send(append(b, tail...), k)
		}
		if a.json != "" {
			for p, k := range tokens.EncodingFor(c.d.model).Pieces(a.json) {
				if !content(p, k) {
					return
				}
			}
		} else {
			// Text, the hot path, without an iterator: a token a piece.
			t := newText(c.rng, a.n, a.finish == "stop")
			for p := t.next(); p != ""; p = t.next() {
				if !content(p, 1) {
					return
				}
			}
		}
	}
	b := append(st.open(""), `{"choices":[{`+filter+`"delta":{},"finish_reason":`...)
	b = wire.AppendString(b, a.finish)
	b = append(b, `,"index":0,"logprobs":null}]`...)
	if !st.send(append(b, tail...), 0) {
		return
	}
	if usage {
		b = append(st.open(""), `{"choices":[]`...)
		b = append(b, tail[:len(tail)-len(`,"usage":null}`)]...)
		b = append(b, `,"usage":`...)
		b = appendChatUsage(b, c.prompt, a.n)
		if !st.send(append(b, '}'), 0) {
			return
		}
	}
	st.data("[DONE]")
}

// chatStreamCalls streams an answer's tool calls, reporting whether the
// client is still there.
func chatStreamCalls(st *sse, a *answer, filter string, tail []byte) bool {
	enc := tokens.EncodingFor(st.c.d.model)
	for i, tc := range a.calls {
		if !st.pace(tc.nameTokens) {
			return false
		}
		b := append(st.open(""), `{"choices":[{`+filter+`"delta":{`...)
		if i == 0 {
			b = append(b, `"content":null,"refusal":null,"role":"assistant",`...)
		}
		b = append(b, `"tool_calls":[{"function":{"arguments":"","name":`...)
		b = wire.AppendString(b, tc.name)
		b = append(b, `},"id":`...)
		b = wire.AppendString(b, tc.id)
		b = appendInt(b, "index", int64(i))
		b = append(b, `,"type":"function"}]},"finish_reason":null,"index":0,"logprobs":null}]`...)
		if !st.send(append(b, tail...), tc.nameTokens) {
			return false
		}
		for p, k := range enc.Pieces(tc.args) {
			if !st.pace(k) {
				return false
			}
			b := append(st.open(""), `{"choices":[{`+filter+`"delta":{"tool_calls":[{"function":{"arguments":`...)
			b = wire.AppendString(b, p)
			b = append(b, '}')
			b = appendInt(b, "index", int64(i))
			b = append(b, `}]},"finish_reason":null,"index":0,"logprobs":null}]`...)
			if !st.send(append(b, tail...), k) {
				return false
			}
		}
	}
	return true
}
