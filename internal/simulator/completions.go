package simulator

import (
	"strconv"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// completions answers a legacy completion at once, after the latency of the
// whole reply, as Azure OpenAI's text_completion object. One choice is
// generated whatever the number of prompts.
func (s *Simulator) completions(c *call, n int, finish string) {
	reply := newText(c.rng, n, finish == "stop").all()
	if !c.sleep(s.latency.total(c.rng, n)) {
		c.status = 499
		return
	}
	b := make([]byte, 0, 1024+len(reply))
	b = append(b, `{"choices":[{`...)
	if c.route.azure {
		b = append(b, `"content_filter_results":`+choiceFilter+`,`...)
	}
	b = append(b, `"finish_reason":`...)
	b = wire.AppendString(b, finish)
	b = append(b, `,"index":0,"logprobs":null,"text":`...)
	b = wire.AppendString(b, reply)
	b = append(b, `}]`...)
	b = c.appendHeader(b, "text_completion", newID("cmpl-", 29))
	if c.route.azure {
		b = append(b, `,"prompt_filter_results":`+promptFilter...)
	}
	b = append(b, `,"system_fingerprint":null,"usage":`...)
	b = appendUsage(b, c.prompt, n)
	b = append(b, '}')
	c.answered, c.completion = true, n
	c.writeBody(200, b)
}

func appendUsage(b []byte, prompt, completion int) []byte {
	b = append(b, `{"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(completion), 10)
	b = appendInt(b, "prompt_tokens", int64(prompt))
	b = appendInt(b, "total_tokens", int64(prompt+completion))
	return append(b, '}')
}

// completionsStream streams a legacy completion: Azure's prompt filter event,
// one event per token, one with the finish reason, the usage when asked,
// then [DONE].
func (s *Simulator) completionsStream(c *call, req *apiRequest, n int, finish string) {
	if !c.sleep(s.latency.Base) {
		c.status = 499
		return
	}
	usage := req.includeUsage()
	tail := c.appendHeader(nil, "text_completion", newID("cmpl-", 29))
	tail = append(tail, `,"system_fingerprint":null`...)
	if usage {
		tail = append(tail, `,"usage":null`...)
	}
	tail = append(tail, '}')
	head := `{"choices":[{"finish_reason":null,"index":0,"logprobs":null,"text":`
	if c.route.azure {
		head = `{"choices":[{"content_filter_results":` + chunkFilter + `,"finish_reason":null,"index":0,"logprobs":null,"text":`
	}

	st := c.startStream()
	if c.route.azure && !st.data(azureFirstChatLike) {
		return
	}
	t := newText(c.rng, n, finish == "stop")
	for p := t.next(); p != ""; p = t.next() {
		if !st.pace(1) {
			return
		}
		b := append(st.open(""), head...)
		b = wire.AppendString(b, p)
		if !st.send(append(append(b, `}]`...), tail...), 1) {
			return
		}
	}
	filter := ""
	if c.route.azure {
		filter = `"content_filter_results":{},`
	}
	b := append(st.open(""), `{"choices":[{`+filter+`"finish_reason":`...)
	b = wire.AppendString(b, finish)
	b = append(b, `,"index":0,"logprobs":null,"text":""}]`...)
	if !st.send(append(b, tail...), 0) {
		return
	}
	if usage {
		b = append(st.open(""), `{"choices":[]`...)
		b = append(b, tail[:len(tail)-len(`,"usage":null}`)]...)
		b = append(b, `,"usage":`...)
		b = appendUsage(b, c.prompt, n)
		if !st.send(append(b, '}'), 0) {
			return
		}
	}
	st.data("[DONE]")
}
