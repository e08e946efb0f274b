package simulator

import (
	"encoding/json"
	"strconv"
)

// The Responses API is simulated modestly: one message output item with one
// output_text part, the fields clients read, and the stream's event sequence.

type response struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             string            `json:"status"`
	Error              *struct{}         `json:"error"`
	IncompleteDetails  *incomplete       `json:"incomplete_details"`
	Instructions       *string           `json:"instructions"`
	MaxOutputTokens    *int              `json:"max_output_tokens"`
	Model              string            `json:"model"`
	Output             []outputItem      `json:"output"`
	ParallelToolCalls  bool              `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Temperature        float64           `json:"temperature"`
	ToolChoice         string            `json:"tool_choice"`
	Tools              []struct{}        `json:"tools"`
	TopP               float64           `json:"top_p"`
	Usage              *responseUsage    `json:"usage"`
	Metadata           map[string]string `json:"metadata"`
}

type incomplete struct {
	Reason string `json:"reason"`
}

type outputItem struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Status  string       `json:"status"`
	Content []outputText `json:"content"`
	Role    string       `json:"role"`
}

type outputText struct {
	Type        string     `json:"type"`
	Annotations []struct{} `json:"annotations"`
	Text        string     `json:"text"`
}

type responseUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

// newResponse returns the response object, in progress and without output.
func (c *call) newResponse(req *apiRequest, limit int) *response {
	r := &response{
		ID: newID("resp_", 48), Object: "response", CreatedAt: c.s.now().Unix(), Status: "in_progress",
		Model: c.d.model, Output: []outputItem{}, ParallelToolCalls: true, Temperature: 1, ToolChoice: "auto",
		Tools: []struct{}{}, TopP: 1, Metadata: map[string]string{},
	}
	if req.Instructions != "" {
		r.Instructions = &req.Instructions
	}
	if limit > 0 {
		r.MaxOutputTokens = &limit
	}
	return r
}

// complete fills in the response's output and usage.
func (r *response) complete(item outputItem, prompt, n int, finish string) {
	r.Status, item.Status = "completed", "completed"
	if finish == "length" {
		r.Status, item.Status = "incomplete", "incomplete"
		r.IncompleteDetails = &incomplete{Reason: "max_output_tokens"}
	}
	r.Output = []outputItem{item}
	r.Usage = &responseUsage{InputTokens: prompt, OutputTokens: n, TotalTokens: prompt + n}
}

// responses answers a Responses API request at once, after the latency of
// the whole reply.
func (s *Simulator) responses(c *call, req *apiRequest, limit, n int, finish string) {
	reply := newText(c.rng, n, finish == "stop").all()
	if !c.sleep(s.latency.total(c.rng, n)) {
		c.status = 499
		return
	}
	r := c.newResponse(req, limit)
	r.complete(outputItem{ID: newID("msg_", 48), Type: "message", Role: "assistant",
		Content: []outputText{{Type: "output_text", Annotations: []struct{}{}, Text: reply}}}, c.prompt, n, finish)
	c.answered, c.completion = true, n
	c.writeJSON(200, r)
}

// responsesStream streams a Responses API reply as its typed events:
// response.created, response.in_progress, response.output_item.added,
// response.content_part.added, one response.output_text.delta per token,
// response.output_text.done, response.content_part.done,
// response.output_item.done and response.completed (response.incomplete when
// max_output_tokens cut it).
func (s *Simulator) responsesStream(c *call, req *apiRequest, limit, n int, finish string) {
	if !c.sleep(s.latency.Base) {
		c.status = 499
		return
	}
	r := c.newResponse(req, limit)
	item := outputItem{ID: newID("msg_", 48), Type: "message", Status: "in_progress", Role: "assistant", Content: []outputText{}}
	part := outputText{Type: "output_text", Annotations: []struct{}{}}
	st := c.startStream()
	seq := 0
	event := func(typ string, fields map[string]any) bool {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		b, err := json.Marshal(fields)
		if err != nil {
			panic(err) // only maps of the types above: cannot fail
		}
		return st.send(append(st.open(typ), b...), 0)
	}
	pos := map[string]any{"item_id": item.ID, "output_index": 0, "content_index": 0}
	with := func(k string, v any) map[string]any {
		m := map[string]any{k: v}
		for k, v := range pos {
			m[k] = v
		}
		return m
	}
	if !event("response.created", map[string]any{"response": r}) ||
		!event("response.in_progress", map[string]any{"response": r}) ||
		!event("response.output_item.added", map[string]any{"output_index": 0, "item": item}) ||
		!event("response.content_part.added", with("part", part)) {
		return
	}
	t := newText(c.rng, n, finish == "stop")
	var full []byte
	for p := t.next(); p != ""; p = t.next() {
		if !st.pace() {
			return
		}
		b := append(st.open("response.output_text.delta"), `{"type":"response.output_text.delta","sequence_number":`...)
		b = strconv.AppendInt(b, int64(seq), 10)
		b = append(b, `,"item_id":`...)
		b = appendString(b, item.ID)
		b = append(b, `,"output_index":0,"content_index":0,"delta":`...)
		b = appendString(b, p)
		if !st.send(append(b, '}'), 1) {
			return
		}
		seq++
		full = append(full, p...)
	}
	part.Text = string(full)
	item.Content = []outputText{part}
	r.complete(item, c.prompt, n, finish)
	done := "response.completed"
	if r.Status == "incomplete" {
		done = "response.incomplete"
	}
	if !event("response.output_text.done", with("text", part.Text)) ||
		!event("response.content_part.done", with("part", part)) ||
		!event("response.output_item.done", map[string]any{"output_index": 0, "item": r.Output[0]}) {
		return
	}
	event(done, map[string]any{"response": r})
}
