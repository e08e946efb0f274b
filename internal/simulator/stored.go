package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// The Responses API stores what it answers (unless the request says
// store: false): a response can be retrieved, deleted, its input items
// listed, and a later request can continue it with previous_response_id.
// The simulator keeps the latest maxStored responses in memory, as one
// backend holds its own: a gateway must route calls on a response to the
// backend that made it.

// maxStored bounds the responses a Simulator keeps.
const maxStored = 10000

// storedResponse is a response as stored, with what the request gave it.
type storedResponse struct {
	response json.RawMessage // the final response object
	input    []any           // its input items, as the input_items list shows them
}

// responseStore is a Simulator's stored responses. It is safe for concurrent
// use.
type responseStore struct {
	mu   sync.Mutex // guards m, ring and next
	m    map[string]storedResponse
	ring [maxStored]string
	next int
}

func (rs *responseStore) put(id string, s storedResponse) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.m == nil {
		rs.m = make(map[string]storedResponse)
	}
	if old := rs.ring[rs.next]; old != "" {
		delete(rs.m, old)
	}
	rs.ring[rs.next] = id
	rs.next = (rs.next + 1) % maxStored
	rs.m[id] = s
}

func (rs *responseStore) get(id string) (storedResponse, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	s, ok := rs.m[id]
	return s, ok
}

func (rs *responseStore) delete(id string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	_, ok := rs.m[id]
	delete(rs.m, id)
	return ok
}

// store keeps a finished response, unless the request said store: false.
func (c *call) store(req *apiRequest, r *response) {
	if req.Store != nil && !*req.Store {
		return
	}
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	c.s.stored.put(r.ID, storedResponse{response: b, input: inputItems(req)})
}

// inputItems are a request's input as the input_items list shows it: a
// string is one user message; items are kept as they came.
func inputItems(req *apiRequest) []any {
	var s string
	if json.Unmarshal(req.Input, &s) == nil {
		return []any{map[string]any{"id": newID("msg_", 48), "type": "message", "role": "user", "status": "completed",
			"content": []any{map[string]any{"type": "input_text", "text": s}}}}
	}
	var items []json.RawMessage
	_ = json.Unmarshal(req.Input, &items)
	out := make([]any, 0, len(items))
	for _, it := range items {
		out = append(out, it)
	}
	return out
}

// previousKnown reports whether a Responses request's previous_response_id,
// if it has one, names a stored response, and answers 404 when not.
func (c *call) previousKnown(req *apiRequest) bool {
	if req.PreviousResponseID == "" {
		return true
	}
	if _, ok := c.s.stored.get(req.PreviousResponseID); ok {
		return true
	}
	c.w.Header().Set("Content-Type", "application/json")
	var b errorBody
	b.Error.Message = fmt.Sprintf("Previous response with id '%s' not found.", req.PreviousResponseID)
	b.Error.Type, b.Error.Code = "invalid_request_error", "previous_response_not_found"
	param := "previous_response_id"
	b.Error.Param = &param
	c.writeJSON(http.StatusNotFound, b)
	return false
}

// serveStored answers a call on a stored response: GET (retrieve), DELETE,
// GET .../input_items, POST .../cancel.
func (s *Simulator) serveStored(c *call) {
	id, action := c.route.responseID, c.route.action
	want := http.MethodGet
	switch {
	case action == "cancel":
		want = http.MethodPost
	case action == "" && c.r.Method == http.MethodDelete:
		want = http.MethodDelete
	}
	if !c.allow(want) {
		return
	}
	stored, ok := s.stored.get(id)
	if !ok {
		c.fail(http.StatusNotFound, "", fmt.Sprintf("Response with id '%s' not found.", id), "invalid_request_error")
		return
	}
	switch {
	case action == "input_items":
		first, last := "", ""
		if n := len(stored.input); n > 0 {
			first, last = itemID(stored.input[0]), itemID(stored.input[n-1])
		}
		c.writeJSON(http.StatusOK, map[string]any{"object": "list", "data": stored.input,
			"first_id": first, "last_id": last, "has_more": false})
	case action == "cancel":
		// Only a background response can be cancelled; the simulator's
		// are answered in the foreground, so it says what the service says.
		c.badRequest("", "Only responses created with background=true can be cancelled.")
	case c.r.Method == http.MethodDelete:
		s.stored.delete(id)
		c.writeJSON(http.StatusOK, map[string]any{"id": id, "object": "response", "deleted": true})
	default:
		c.writeJSON(http.StatusOK, stored.response)
	}
}

// itemID is an input item's id, or "".
func itemID(it any) string {
	switch v := it.(type) {
	case map[string]any:
		s, _ := v["id"].(string)
		return s
	case json.RawMessage:
		var x struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(v, &x)
		return x.ID
	}
	return ""
}
