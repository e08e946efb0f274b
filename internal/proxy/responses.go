package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/sse"
	"github.com/sluice-gateway/sluice/internal/wire"
	"github.com/tidwall/gjson"
)

// The Responses API stores responses on the backend that made them: a
// later request that continues one (previous_response_id), retrieves,
// deletes or cancels it, or lists its input items must reach that backend.
// Sluice remembers which backend made each response it relayed, and when it
// does not know (another instance relayed it, or this one restarted), asks
// the candidate backends in turn: a backend that does not hold a response
// answers 404, so asking has no side effect.

// maxOwners bounds the responses whose backend an instance remembers.
const maxOwners = 1 << 16

// owners remembers which backend made a stored response, the most recent
// maxOwners of them. It is safe for concurrent use.
type owners struct {
	mu   sync.Mutex // guards m, ring and next
	m    map[string]string
	ring [maxOwners]string // ids in the order remembered, to forget the oldest
	next int
}

func newOwners() *owners { return &owners{m: make(map[string]string)} }

func (o *owners) get(id string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[id]
}

func (o *owners) put(id, backend string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.m[id]; !ok {
		if old := o.ring[o.next]; old != "" {
			delete(o.m, old)
		}
		o.ring[o.next] = id
		o.next = (o.next + 1) % maxOwners
	}
	o.m[id] = backend
}

// responseMethods are the methods a stored-response path allows.
func responseMethods(action string) string {
	switch action {
	case "input_items":
		return http.MethodGet
	case "cancel":
		return http.MethodPost
	}
	return "GET, DELETE"
}

// responseCandidates are the backends that may hold a stored response: the
// one known to have made it first, then every backend of the caller's
// product's models that serves the Responses API, in the product's regions.
func (x *exchange) responseCandidates(id string, pool *route.Pool) []*backend.Backend {
	var out []*backend.Backend
	add := func(b *backend.Backend) {
		if b == nil || !b.ServesResponses() {
			return
		}
		if r := x.req.Subscription.Product.Regions; r != nil && !r[b.Region] {
			return
		}
		for _, o := range out {
			if o == b {
				return
			}
		}
		out = append(out, b)
	}
	add(x.table.Backends[x.h.owners.get(id)])
	members := func(p *route.Pool) {
		for _, m := range p.Members() {
			add(m.Backend)
		}
	}
	if pool != nil {
		members(pool)
		return out
	}
	for _, m := range x.req.Subscription.Product.Models {
		if mod, ok := x.table.Model(m); ok {
			members(mod.Pool)
		}
	}
	return out
}

// storedResponse serves a call on a stored response (retrieve, delete,
// input items, cancel) on the backend that holds it.
func (x *exchange) storedResponse(t target) error {
	x.req.Op = wire.OpResponses
	call := backend.ResponseCall{Method: x.r.Method, ID: t.id, Action: t.action, RawQuery: x.r.URL.RawQuery,
		Header: x.r.Header, RequestID: x.id}
	call.ForwardedFor, call.TrustedPeer = x.forwardedFor()
	cands := x.responseCandidates(t.id, nil)
	var reached bool
	for i, b := range cands {
		resp, cancel, err := x.askStored(b, &call)
		if err != nil {
			continue
		}
		reached = true
		if resp.StatusCode == http.StatusNotFound && i < len(cands)-1 {
			resp.Body.Close()
			cancel()
			continue
		}
		defer cancel()
		defer resp.Body.Close()
		if resp.StatusCode < 300 && x.r.Method != http.MethodDelete {
			x.h.owners.put(t.id, b.Name)
		}
		x.served.backend = b.Name
		return x.relayRaw(resp, b)
	}
	if !reached && len(cands) > 0 {
		return wire.NewError(http.StatusBadGateway, wire.TypeServer, "backend_unreachable",
			"The backends that may hold the response could not be reached. Retry later.")
	}
	return wire.NewError(http.StatusNotFound, wire.TypeInvalidRequest, "response_not_found",
		"No response with the id "+quoteID(t.id)+" is stored on a backend your subscription may use.")
}

// askStored sends a stored-response call to b, bounded by b's timeout.
func (x *exchange) askStored(b *backend.Backend, call *backend.ResponseCall) (*http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(x.ctx, b.Timeout)
	req, err := b.NewResponseRequest(ctx, call)
	if err != nil {
		cancel()
		x.logger().Warn("building a stored-response request", "backend", b.Name, "err", err)
		return nil, nil, err
	}
	x.served.attempts++
	resp, err := b.RoundTrip(req)
	b.Done(err != nil || resp.StatusCode >= 500)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return resp, cancel, nil
}

// relayRaw passes a backend's answer through as it is: headers, status, and
// the body, an event stream event by event.
func (x *exchange) relayRaw(resp *http.Response, b *backend.Backend) error {
	wire.CopyHeader(x.w.Header(), resp.Header, dropFromBackend)
	x.head.set("X-Sluice-Backend", b.Name)
	if b.Region != "" && resp.Header.Get("X-Ms-Region") == "" {
		x.head.set("X-Ms-Region", b.Region)
	}
	x.firstByte = x.h.now()
	x.writeHead(resp.StatusCode)
	if !isEventStream(resp.Header) {
		_, err := io.Copy(x.w, resp.Body)
		x.served.complete = err == nil
		return nil
	}
	rc := http.NewResponseController(x.w)
	rd := sse.NewReader(resp.Body)
	for {
		ev, err := rd.Next()
		if len(ev) > 0 {
			if _, werr := x.w.Write(ev); werr != nil {
				return nil
			}
			if !rd.Buffered() {
				_ = rc.Flush()
			}
		}
		if err != nil {
			x.served.complete = err == io.EOF
			if err != io.EOF {
				x.abort = true
			}
			_ = rc.Flush()
			return nil
		}
	}
}

// pinToOwner restricts a request that continues a stored response
// (previous_response_id) to the backend that holds it: the one known to
// have made it, or the first of the pool's members that has it.
func (x *exchange) pinToOwner(pool *route.Pool) {
	id := x.req.Parsed.PreviousResponseID
	if id == "" {
		return
	}
	if owner := x.h.owners.get(id); owner != "" {
		x.served.pin = owner
		return
	}
	call := backend.ResponseCall{Method: http.MethodGet, ID: id, Header: x.r.Header, RequestID: x.id}
	call.ForwardedFor, call.TrustedPeer = x.forwardedFor()
	for _, b := range x.responseCandidates(id, pool) {
		resp, cancel, err := x.askStored(b, &call)
		if err != nil {
			continue
		}
		resp.Body.Close()
		cancel()
		if resp.StatusCode < 300 {
			x.h.owners.put(id, b.Name)
			x.served.pin = b.Name
			return
		}
	}
	// No member holds it: the pool's pick stands, and its backend answers
	// that the previous response does not exist.
}

// ownerTap remembers the backend that made a response a Responses request
// created: from a whole body's "id", or a stream's response.created event.
type ownerTap struct {
	x    *exchange
	done bool
}

func (t *ownerTap) Event(ev []byte) ([]byte, error) {
	if !t.done {
		data := sse.Data(ev)
		if r := gjson.GetBytes(data, "response.id"); r.Type == gjson.String {
			t.x.h.owners.put(r.Str, t.x.served.backend)
			t.done = true
		}
	}
	return ev, nil
}

func (t *ownerTap) Body(b []byte) ([]byte, error) {
	if r := gjson.GetBytes(b, "id"); r.Type == gjson.String && strings.HasPrefix(r.Str, "resp") {
		t.x.h.owners.put(r.Str, t.x.served.backend)
	}
	return b, nil
}

func (t *ownerTap) End(Outcome) {}

func quoteID(id string) string { return `"` + wire.EchoText(id) + `"` }
