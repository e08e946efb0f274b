package simulator

import "strconv"

// chat answers a chat completion at once, after the latency of the
// whole reply, as Azure OpenAI's chat.completion object.
func (s *Simulator) chat(c *call, n int, finish string) {
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
	b = appendString(b, finish)
	b = append(b, `,"index":0,"logprobs":null,"message":{"annotations":[],"content":`...)
	b = appendString(b, reply)
	b = append(b, `,"refusal":null,"role":"assistant"}}]`...)
	b = c.appendHeader(b, "chat.completion", newID("chatcmpl-", 29))
	if c.route.azure {
		b = append(b, `,"prompt_filter_results":`+promptFilter...)
	}
	b = append(b, `,"system_fingerprint":`...)
	b = appendString(b, c.d.fingerprint)
	b = append(b, `,"usage":`...)
	b = appendChatUsage(b, c.prompt, n)
	b = append(b, '}')
	c.answered, c.completion = true, n
	c.writeBody(200, b)
}

// appendHeader appends the fields that follow "choices" in every chat and
// completions object: created, id, model and object.
func (c *call) appendHeader(b []byte, object, id string) []byte {
	b = appendInt(b, "created", c.s.now().Unix())
	b = append(b, `,"id":`...)
	b = appendString(b, id)
	b = append(b, `,"model":`...)
	b = appendString(b, c.d.model)
	b = append(b, `,"object":`...)
	return appendString(b, object)
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
func (s *Simulator) chatStream(c *call, req *apiRequest, n int, finish string) {
	if !c.sleep(s.latency.Base) {
		c.status = 499
		return
	}
	usage := req.includeUsage()
	// Every chunk ends with the same fields after "choices".
	tail := c.appendHeader(nil, "chat.completion.chunk", newID("chatcmpl-", 29))
	tail = append(tail, `,"system_fingerprint":`...)
	tail = appendString(tail, c.d.fingerprint)
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
	b := append(st.open(""), `{"choices":[{`+filter+`"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}]`...)
	if !st.send(append(b, tail...), 0) {
		return
	}
	head := `{"choices":[{"delta":{"content":`
	if c.route.azure {
		head = `{"choices":[{"content_filter_results":` + chunkFilter + `,"delta":{"content":`
	}
	t := newText(c.rng, n, finish == "stop")
	for p := t.next(); p != ""; p = t.next() {
		if !st.pace() {
			return
		}
		b := append(st.open(""), head...)
		b = appendString(b, p)
		b = append(b, `},"finish_reason":null,"index":0,"logprobs":null}]`...)
		if !st.send(append(b, tail...), 1) {
			return
		}
	}
	b = append(st.open(""), `{"choices":[{`+filter+`"delta":{},"finish_reason":`...)
	b = appendString(b, finish)
	b = append(b, `,"index":0,"logprobs":null}]`...)
	if !st.send(append(b, tail...), 0) {
		return
	}
	if usage {
		b = append(st.open(""), `{"choices":[]`...)
		b = append(b, tail[:len(tail)-len(`,"usage":null}`)]...)
		b = append(b, `,"usage":`...)
		b = appendChatUsage(b, c.prompt, n)
		if !st.send(append(b, '}'), 0) {
			return
		}
	}
	st.data("[DONE]")
}
