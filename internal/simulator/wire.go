package simulator

import (
	"net/http"
	"strconv"
	"time"
)

// Replies on the hot path (chat, completions, embeddings, every stream event)
// are appended byte by byte rather than marshalled, so that the simulator
// stays cheap next to the gateway it is used to measure. Keys are in Azure
// OpenAI's order, which is alphabetical.

// Azure's content filter annotations, which are constant here: nothing is
// ever filtered.
const (
	safe               = `{"filtered":false,"severity":"safe"}`
	notDetected        = `{"filtered":false,"detected":false}`
	choiceFilter       = `{"hate":` + safe + `,"protected_material_code":` + notDetected + `,"protected_material_text":` + notDetected + `,"self_harm":` + safe + `,"sexual":` + safe + `,"violence":` + safe + `}`
	chunkFilter        = `{"hate":` + safe + `,"self_harm":` + safe + `,"sexual":` + safe + `,"violence":` + safe + `}`
	promptFilter       = `[{"prompt_index":0,"content_filter_results":{"hate":` + safe + `,"jailbreak":` + notDetected + `,"self_harm":` + safe + `,"sexual":` + safe + `,"violence":` + safe + `}}]`
	azureFirstChatLike = `{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":` + promptFilter + `}`
)

// appendKV appends ,"key":value for an integer value.
func appendInt(b []byte, key string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// sse writes a Server-Sent Events stream, one flushed event at a time.
type sse struct {
	c         *call
	rc        *http.ResponseController
	buf       []byte
	sent      int
	dropAfter int
}

// startStream sends the stream's headers, with Azure OpenAI's content type.
func (c *call) startStream() *sse {
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("x-accel-buffering", "no")
	c.status, c.answered = http.StatusOK, true
	c.w.WriteHeader(http.StatusOK)
	return &sse{c: c, rc: http.NewResponseController(c.w), buf: make([]byte, 0, 1024), dropAfter: c.faults.DropAfterChunks}
}

// open starts an event: "event: NAME\n" when name is not empty, then
// "data: ". The caller appends the payload and passes the result to send.
func (st *sse) open(name string) []byte {
	b := st.buf[:0]
	if name != "" {
		b = append(b, "event: "...)
		b = append(b, name...)
		b = append(b, '\n')
	}
	return append(b, "data: "...)
}

// send ends the event, writes and flushes it, counts the completion tokens it
// carries as delivered, and reports whether the client is still there. After
// the DropAfterChunks-th event it aborts the connection, which net/http does
// without the chunked body's terminator.
func (st *sse) send(b []byte, tokens int) bool {
	b = append(b, '\n', '\n')
	st.buf = b
	if _, err := st.c.w.Write(b); err != nil {
		st.c.truncated = true
		return false
	}
	if err := st.rc.Flush(); err != nil {
		st.c.truncated = true
		return false
	}
	st.sent++
	st.c.completion += tokens
	if st.dropAfter > 0 && st.sent >= st.dropAfter {
		st.c.truncated = true
		st.c.s.log.Info("simulator dropping stream", "request_id", st.c.id, "after_events", st.sent)
		panic(http.ErrAbortHandler)
	}
	return true
}

// data sends a data-only event with payload.
func (st *sse) data(payload string) bool {
	return st.send(append(st.open(""), payload...), 0)
}

// pace waits one per-token latency draw for each of n tokens, reporting
// whether the client is still there.
func (st *sse) pace(n int) bool {
	c := st.c
	var d time.Duration
	for range n {
		d += c.s.latency.perToken(c.rng)
	}
	if !c.sleep(d) {
		c.truncated = true
		return false
	}
	return true
}
