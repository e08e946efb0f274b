package pii

import (
	"bytes"
	"strconv"

	"github.com/sluice-gateway/sluice/internal/sse"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// A Restorer puts a vault's placeholders back into a stream of Server-Sent
// Events as it passes: chat and completions chunks (choices[].delta.content,
// choices[].text) and Responses output_text deltas. A placeholder split
// across events is held back only from its '<' until it is whole (or the
// choice finishes); everything else goes on at once. It serves one stream
// and is not safe for concurrent use.
type Restorer struct {
	v       *Vault
	pending map[string]string // per choice (or Responses output part): an unfinished placeholder
	last    []byte            // the data of the last chat or completions chunk, to flush into
}

// Restorer returns a Restorer of the vault's placeholders.
func (v *Vault) Restorer() *Restorer {
	return &Restorer{v: v, pending: map[string]string{}}
}

// Event returns what to send of one raw SSE event: the event with its
// placeholders restored, perhaps less a held-back unfinished placeholder,
// or, before the final [DONE], a chunk with what was still held.
func (r *Restorer) Event(ev []byte) []byte {
	if r.v.Len() == 0 {
		return ev
	}
	data := sse.Data(ev)
	if len(data) == 0 {
		return ev
	}
	if string(bytes.TrimSpace(data)) == "[DONE]" {
		return append(r.flush(), ev...)
	}
	if data[0] != '{' {
		return ev
	}
	// Placeholders whole within the event, wherever they are (tool call
	// arguments, a Responses done event's full text).
	nd := r.v.RestoreJSON(data)
	if choices := gjson.GetBytes(nd, "choices"); choices.IsArray() {
		nd = r.choices(nd, choices)
	} else if t := gjson.GetBytes(nd, "type").Str; t == "response.output_text.delta" || t == "response.output_text.done" {
		nd = r.responses(nd, t)
	}
	if bytes.Equal(nd, data) {
		return ev
	}
	return withData(ev, nd)
}

// choices restores the text of each choice of a chat or completions chunk.
func (r *Restorer) choices(data []byte, choices gjson.Result) []byte {
	n := int(choices.Get("#").Int())
	for k := range n {
		c := choices.Get(strconv.Itoa(k))
		idx := c.Get("index").Raw
		if idx == "" {
			idx = strconv.Itoa(k)
		}
		path := "choices." + strconv.Itoa(k) + ".delta.content"
		t := c.Get("delta.content")
		if t.Type != gjson.String {
			path, t = "choices."+strconv.Itoa(k)+".text", c.Get("text")
		}
		held := r.pending[idx]
		finished := c.Get("finish_reason").Type == gjson.String
		if t.Type != gjson.String && held == "" {
			continue
		}
		if t.Type != gjson.String {
			path = "choices." + strconv.Itoa(k) + ".delta.content"
			if c.Get("text").Exists() || !c.Get("delta").Exists() {
				path = "choices." + strconv.Itoa(k) + ".text"
			}
		}
		out, hold := r.v.restore(held+t.Str, finished)
		if hold != "" {
			r.pending[idx] = hold
		} else {
			delete(r.pending, idx)
		}
		if out != t.Str || t.Type != gjson.String {
			if nd, err := sjson.SetBytes(data, path, out); err == nil {
				data = nd
			}
		}
	}
	r.last = append(r.last[:0], data...)
	return data
}

// responses restores the text of a Responses output_text delta; the done
// event, which carries the whole text, was restored already and ends the
// part.
func (r *Restorer) responses(data []byte, typ string) []byte {
	key := "r" + gjson.GetBytes(data, "output_index").Raw + "." + gjson.GetBytes(data, "content_index").Raw
	if typ == "response.output_text.done" {
		delete(r.pending, key)
		return data
	}
	d := gjson.GetBytes(data, "delta")
	out, hold := r.v.restore(r.pending[key]+d.Str, false)
	if hold != "" {
		r.pending[key] = hold
	} else {
		delete(r.pending, key)
	}
	if out != d.Str {
		if nd, err := sjson.SetBytes(data, "delta", out); err == nil {
			data = nd
		}
	}
	return data
}

// flush returns a chunk carrying what is still held, as the stream ends
// without its choices having finished; nothing when nothing is held.
func (r *Restorer) flush() []byte {
	if len(r.pending) == 0 || r.last == nil {
		return nil
	}
	var out []byte
	for idx, held := range r.pending {
		if idx[0] == 'r' {
			continue
		}
		data := r.last
		data, _ = sjson.DeleteBytes(data, "usage")
		choice := `{"index":` + idx + `,"delta":{"content":` + string(appendQuoted(nil, held)) + `},"finish_reason":null}`
		if gjson.GetBytes(r.last, "choices.0.text").Exists() {
			choice = `{"index":` + idx + `,"text":` + string(appendQuoted(nil, held)) + `,"finish_reason":null}`
		}
		data, _ = sjson.SetRawBytes(data, "choices", []byte("["+choice+"]"))
		out = append(out, "data: "...)
		out = append(out, data...)
		out = append(out, "\n\n"...)
	}
	clear(r.pending)
	return out
}

// withData returns ev with its data replaced by data, its other fields
// (event, id) kept.
func withData(ev, data []byte) []byte {
	out := make([]byte, 0, len(data)+32)
	wrote := false
	sse.Fields(ev, func(f sse.Field) bool {
		if string(f.Name) == "data" {
			if !wrote {
				out = append(out, "data: "...)
				out = append(out, data...)
				out = append(out, '\n')
				wrote = true
			}
			return true
		}
		out = append(out, f.Name...)
		if f.Value != nil {
			out = append(out, ": "...)
			out = append(out, f.Value...)
		}
		out = append(out, '\n')
		return true
	})
	return append(out, '\n')
}
