package guard

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-gateway/sluice/internal/proxy"
	"github.com/sluice-gateway/sluice/internal/safety"
	"github.com/sluice-gateway/sluice/internal/sse"
	"github.com/sluice-gateway/sluice/internal/wire"
	"github.com/tidwall/gjson"
)

// completionTap checks an answer with the content safety service. A
// non-streaming body is checked whole before it goes out. A stream is held
// back: in buffered mode until its end, in window mode until the window
// holding an event's text has been found clean; after a violation nothing
// more is sent and the stream ends with a finish_reason content_filter
// chunk and [DONE].
type completionTap struct {
	s   *Stage
	ctx context.Context
	p   *policy
	op  wire.Operation

	win     *safety.Windows // window mode; nil when buffered
	all     strings.Builder // buffered mode: the whole text
	held    [][]byte        // events not sent yet
	ends    []int           // the characters of text up to the end of each held event
	total   int             // characters of text seen
	choices map[string]bool // choice indexes seen, for the final chunk
	head    struct{ id, model, created string }
	done    bool
}

func (s *Stage) newCompletionTap(ctx context.Context, p *policy, op wire.Operation) *completionTap {
	t := &completionTap{s: s, ctx: ctx, p: p, op: op, choices: map[string]bool{}}
	if p.mode == "window" {
		t.win = safety.NewWindows(p.size, p.overlap)
	}
	return t
}

// Event holds ev and returns what may go out now.
func (t *completionTap) Event(ev []byte) ([]byte, error) {
	if t.done {
		return nil, nil
	}
	if eventCount(ev) > 1 {
		var out []byte
		for _, one := range splitEvents(ev) {
			o, err := t.Event(one)
			out = append(out, o...)
			if err != nil {
				return out, err
			}
		}
		return out, nil
	}
	data := sse.Data(ev)
	text, final := t.read(data)
	t.held = append(t.held, bytes.Clone(ev))
	t.total += utf8.RuneCountInString(text)
	t.ends = append(t.ends, t.total)
	if t.win == nil {
		t.all.WriteString(text)
		if !final {
			return nil, nil
		}
		if !t.check(t.all.String()) {
			return t.filtered()
		}
		return t.release(t.total), nil
	}
	for _, w := range t.win.Add(text) {
		if !t.check(w) {
			return t.filtered()
		}
	}
	if final {
		if rest := t.win.Rest(); rest != "" && !t.check(rest) {
			return t.filtered()
		}
		return t.release(t.total), nil
	}
	return t.release(t.win.Checked()), nil
}

// read returns the generated text of an event's data and whether the
// event ends the stream ([DONE], or a Responses stream's last event).
func (t *completionTap) read(data []byte) (string, bool) {
	if string(bytes.TrimSpace(data)) == "[DONE]" {
		return "", true
	}
	if len(data) == 0 || data[0] != '{' {
		return "", false
	}
	if t.head.id == "" {
		t.head.id = gjson.GetBytes(data, "id").Str
		t.head.model = gjson.GetBytes(data, "model").Str
		t.head.created = gjson.GetBytes(data, "created").Raw
		if t.head.id == "" {
			t.head.id = gjson.GetBytes(data, "response.id").Str
		}
	}
	switch typ := gjson.GetBytes(data, "type").Str; typ {
	case "response.output_text.delta":
		return gjson.GetBytes(data, "delta").Str, false
	case "response.completed", "response.incomplete", "response.failed":
		return "", true
	}
	var b strings.Builder
	gjson.GetBytes(data, "choices").ForEach(func(_, c gjson.Result) bool {
		t.choices[c.Get("index").Raw] = true
		b.WriteString(c.Get("delta.content").Str)
		b.WriteString(c.Get("text").Str)
		return true
	})
	return b.String(), false
}

// release returns the held events whose text is within the first checked
// characters, and keeps the rest.
func (t *completionTap) release(checked int) []byte {
	n := 0
	for n < len(t.held) && t.ends[n] <= checked {
		n++
	}
	if n == 0 {
		return nil
	}
	var out []byte
	if n == 1 {
		out = t.held[0]
	} else {
		out = bytes.Join(t.held[:n], nil)
	}
	t.held, t.ends = append(t.held[:0], t.held[n:]...), append(t.ends[:0], t.ends[n:]...)
	return out
}

// check reports whether text may go out; a service failure counts as a
// violation under fail_closed.
func (t *completionTap) check(text string) bool {
	start := time.Now()
	v, err := t.p.client.CheckText(t.ctx, t.p.check, text)
	t.s.stats.observe("completion", time.Since(start))
	if err != nil {
		if t.ctx.Err() != nil {
			return false
		}
		t.s.stats.serviceError(t.p.product, "completion", t.p.failOpen)
		t.s.log.Warn("content safety service failed", "service", t.p.client.Name, "product", t.p.product,
			"check", "completion", "on_error", onError(t.p.failOpen), "err", err)
		return t.p.failOpen
	}
	t.s.stats.verdict(t.p.product, "completion", v)
	if v.Blocked {
		t.s.log.Debug("answer stopped by the content filter", "product", t.p.product, "reason", v.Reason)
	}
	return !v.Blocked
}

// filtered ends the stream: what was held is dropped, and the client gets
// a last chunk with finish_reason content_filter, then [DONE].
func (t *completionTap) filtered() ([]byte, error) {
	t.done = true
	t.held, t.ends = nil, nil
	if t.op == wire.OpResponses {
		id := strconv.Quote(t.head.id)
		return []byte("event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":{\"id\":" + id +
			",\"object\":\"response\",\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"content_filter\"}}}\n\n"), proxy.ErrEndStream
	}
	object, choice := "chat.completion.chunk", `"delta":{}`
	if t.op == wire.OpCompletions {
		object, choice = "text_completion", `"text":""`
	}
	created := t.head.created
	if created == "" {
		created = strconv.FormatInt(time.Now().Unix(), 10)
	}
	var b strings.Builder
	b.WriteString(`data: {"id":` + strconv.Quote(t.head.id) + `,"object":"` + object + `","created":` + created +
		`,"model":` + strconv.Quote(t.head.model) + `,"choices":[`)
	idx := []string{"0"}
	if len(t.choices) > 0 {
		idx = idx[:0]
		for i := range t.choices {
			if i != "" {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			idx = []string{"0"}
		}
	}
	sortNumeric(idx)
	for i, ix := range idx {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"index":` + ix + `,` + choice + `,"finish_reason":"content_filter"}`)
	}
	b.WriteString("]}\n\ndata: [DONE]\n\n")
	return []byte(b.String()), proxy.ErrEndStream
}

func sortNumeric(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && atoi(s[j]) < atoi(s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// Body checks a whole non-streaming answer: 403 content_filter when it
// violates, 503 when the service fails under fail_closed.
func (t *completionTap) Body(body []byte) ([]byte, error) {
	var b strings.Builder
	for _, path := range []string{"choices.#.message.content", "choices.#.text", "output.#.content.#.text"} {
		gjson.GetBytes(body, path).ForEach(func(_, v gjson.Result) bool {
			if v.IsArray() {
				v.ForEach(func(_, w gjson.Result) bool { b.WriteString(w.Str + "\n"); return true })
			} else {
				b.WriteString(v.Str + "\n")
			}
			return true
		})
	}
	if strings.TrimSpace(b.String()) == "" {
		return body, nil
	}
	start := time.Now()
	v, err := t.p.client.CheckText(t.ctx, t.p.check, b.String())
	t.s.stats.observe("completion", time.Since(start))
	if err != nil {
		t.s.stats.serviceError(t.p.product, "completion", t.p.failOpen)
		t.s.log.Warn("content safety service failed", "service", t.p.client.Name, "product", t.p.product,
			"check", "completion", "on_error", onError(t.p.failOpen), "err", err)
		if t.p.failOpen {
			return body, nil
		}
		return nil, errUnavailable
	}
	t.s.stats.verdict(t.p.product, "completion", v)
	if v.Blocked {
		t.s.log.Debug("answer refused by the content filter", "product", t.p.product, "reason", v.Reason)
		return nil, filtered("answer", v)
	}
	return body, nil
}

func (t *completionTap) End(proxy.Outcome) {}
