package simulator

import (
	"encoding/json"

	"github.com/sluice-gateway/sluice/internal/tokens"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// The Responses API is simulated modestly: one message output item with one
// output_text part, or one function_call item per tool call, the fields
// clients read, and the stream's event sequence.

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
	Output             []any             `json:"output"`
	ParallelToolCalls  bool              `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Temperature        float64           `json:"temperature"`
	Text               json.RawMessage   `json:"text"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	Tools              json.RawMessage   `json:"tools"`
	TopP               float64           `json:"top_p"`
	Usage              *responseUsage    `json:"usage"`
	Metadata           map[string]string `json:"metadata"`
}

type incomplete struct {
	Reason string `json:"reason"`
}

type messageItem struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Status  string       `json:"status"`
	Content []outputText `json:"content"`
	Role    string       `json:"role"`
}

type functionCallItem struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	Arguments string `json:"arguments"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
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
// It repeats the request's tools, tool_choice, parallel_tool_calls and text
// settings, as the service does.
func (c *call) newResponse(req *apiRequest, limit int) *response {
	r := &response{
		ID: newID("resp_", 48), Object: "response", CreatedAt: c.s.now().Unix(), Status: "in_progress",
		Model: c.d.model, Output: []any{}, ParallelToolCalls: req.ParallelToolCalls == nil || *req.ParallelToolCalls,
		Temperature: 1, Text: json.RawMessage(`{"format":{"type":"text"}}`), ToolChoice: json.RawMessage(`"auto"`),
		Tools: json.RawMessage(`[]`), TopP: 1, Metadata: map[string]string{},
	}
	if req.Instructions != "" {
		r.Instructions = &req.Instructions
	}
	if req.PreviousResponseID != "" {
		r.PreviousResponseID = &req.PreviousResponseID
	}
	if limit > 0 {
		r.MaxOutputTokens = &limit
	}
	if !isNull(req.Text) {
		r.Text = req.Text
	}
	if !isNull(req.ToolChoice) {
		r.ToolChoice = req.ToolChoice
	}
	if !isNull(req.Tools) {
		r.Tools = req.Tools
	}
	return r
}

// itemStatus is the status of an output item that ended with finish.
func itemStatus(finish string) string {
	if finish == "length" {
		return "incomplete"
	}
	return "completed"
}

// complete fills in the response's output and usage.
func (r *response) complete(output []any, prompt, n int, finish string) {
	r.Status = itemStatus(finish)
	if finish == "length" {
		r.IncompleteDetails = &incomplete{Reason: "max_output_tokens"}
	}
	r.Output = output
	r.Usage = &responseUsage{InputTokens: prompt, OutputTokens: n, TotalTokens: prompt + n}
}

// output returns an answer's output items, complete.
func (a *answer) output(text string) []any {
	if len(a.calls) == 0 {
		return []any{messageItem{ID: newID("msg_", 48), Type: "message", Status: itemStatus(a.finish), Role: "assistant",
			Content: []outputText{{Type: "output_text", Annotations: []struct{}{}, Text: text}}}}
	}
	out := make([]any, len(a.calls))
	for i, tc := range a.calls {
		status := "completed"
		if i == len(a.calls)-1 {
			status = itemStatus(a.finish)
		}
		out[i] = functionCallItem{ID: newID("fc_", 48), Type: "function_call", Status: status,
			Arguments: tc.args, CallID: tc.id, Name: tc.name}
	}
	return out
}

// responses answers a Responses API request at once, after the latency of
// the whole reply.
func (s *Simulator) responses(c *call, req *apiRequest, limit int, a *answer) {
	reply := ""
	if len(a.calls) == 0 {
		reply = c.content(a)
	}
	if !c.sleep(s.latency.total(c.rng, a.n)) {
		c.status = 499
		return
	}
	r := c.newResponse(req, limit)
	r.complete(a.output(reply), c.prompt, a.n, a.finish)
	c.store(req, r)
	c.answered, c.completion = true, a.n
	c.writeJSON(200, r)
}

// responsesStream streams a Responses API reply as its typed events:
// response.created, response.in_progress, then for a message
// response.output_item.added, response.content_part.added, one
// response.output_text.delta per token, response.output_text.done,
// response.content_part.done and response.output_item.done; for each tool
// call response.output_item.added (a function_call item with empty
// arguments), response.function_call_arguments.delta per piece of the
// arguments, response.function_call_arguments.done and
// response.output_item.done; and last response.completed
// (response.incomplete when max_output_tokens cut it).
func (s *Simulator) responsesStream(c *call, req *apiRequest, limit int, a *answer) {
	if !c.sleep(s.latency.Base) {
		c.status = 499
		return
	}
	r := c.newResponse(req, limit)
	st := c.startStream()
	seq := 0
	event := func(typ string, fields map[string]any, tokens int) bool {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		b, err := json.Marshal(fields)
		if err != nil {
			panic(err) // only maps of the types above: cannot fail
		}
		return st.send(append(st.open(typ), b...), tokens)
	}
	// delta sends a text or arguments delta, written by hand: there is one
	// per token.
	delta := func(typ, itemID string, index int, content bool, p string, k int) bool {
		b := append(st.open(typ), `{"type":`...)
		b = wire.AppendString(b, typ)
		b = appendInt(b, "sequence_number", int64(seq))
		b = append(b, `,"item_id":`...)
		b = wire.AppendString(b, itemID)
		b = appendInt(b, "output_index", int64(index))
		if content {
			b = append(b, `,"content_index":0`...)
		}
		b = append(b, `,"delta":`...)
		b = wire.AppendString(b, p)
		seq++
		return st.send(append(b, '}'), k)
	}
	if !event("response.created", map[string]any{"response": r}, 0) ||
		!event("response.in_progress", map[string]any{"response": r}, 0) {
		return
	}
	var output []any
	if len(a.calls) > 0 {
		enc := tokens.EncodingFor(c.d.model)
		final := a.output("")
		for i, tc := range a.calls {
			item := final[i].(functionCallItem)
			added := item
			added.Status, added.Arguments = "in_progress", ""
			if !st.pace(tc.nameTokens) ||
				!event("response.output_item.added", map[string]any{"output_index": i, "item": added}, tc.nameTokens) {
				return
			}
			for p, k := range enc.Pieces(tc.args) {
				if !st.pace(k) || !delta("response.function_call_arguments.delta", item.ID, i, false, p, k) {
					return
				}
			}
			pos := map[string]any{"item_id": item.ID, "output_index": i, "arguments": tc.args}
			if !event("response.function_call_arguments.done", pos, 0) ||
				!event("response.output_item.done", map[string]any{"output_index": i, "item": item}, 0) {
				return
			}
		}
		output = final
	} else {
		item := messageItem{ID: newID("msg_", 48), Type: "message", Status: "in_progress", Role: "assistant", Content: []outputText{}}
		part := outputText{Type: "output_text", Annotations: []struct{}{}}
		pos := func(k string, v any) map[string]any {
			return map[string]any{k: v, "item_id": item.ID, "output_index": 0, "content_index": 0}
		}
		if !event("response.output_item.added", map[string]any{"output_index": 0, "item": item}, 0) ||
			!event("response.content_part.added", pos("part", part), 0) {
			return
		}
		var full []byte
		for p, k := range c.pieces(a) {
			if !st.pace(k) || !delta("response.output_text.delta", item.ID, 0, true, p, k) {
				return
			}
			full = append(full, p...)
		}
		part.Text = string(full)
		item.Status, item.Content = itemStatus(a.finish), []outputText{part}
		if !event("response.output_text.done", pos("text", part.Text), 0) ||
			!event("response.content_part.done", pos("part", part), 0) ||
			!event("response.output_item.done", map[string]any{"output_index": 0, "item": item}, 0) {
			return
		}
		output = []any{item}
	}
	r.complete(output, c.prompt, a.n, a.finish)
	c.store(req, r)
	done := "response.completed"
	if r.Status == "incomplete" {
		done = "response.incomplete"
	}
	event(done, map[string]any{"response": r}, 0)
}
