// Package cachestage plugs the response cache (package cache) into the
// request pipeline: a proxy.Stage that answers a request from a stored
// answer (exact, then semantic), and a proxy.Tap that stores a complete
// 2xx answer on the way back. Identical concurrent misses are coalesced: one
// goes to the backend, the others wait for its answer.
//
// It sits above proxy: it imports proxy, cache and route; only app imports
// it.
package cachestage

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/internal/cache"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/proxy"
	"github.com/sluice-gateway/sluice/internal/sse"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// The cache results, as the x-sluice-cache header and the ledger give them.
const (
	HitExact    = "hit-exact"
	HitSemantic = "hit-semantic"
	Miss        = "miss"
	Bypass      = "bypass"
)

// Embedder embeds text with a model, as Sluice's own request.
type Embedder func(ctx context.Context, model string, dims int, text string) ([]float32, error)

// Options configure a Stage.
type Options struct {
	// Store keeps the answers. Required.
	Store cache.Store
	// Embed embeds prompts for semantic lookups; nil: no semantic cache.
	Embed Embedder
	// Metrics observes lookups; nil: none.
	Metrics *Metrics
	// Log gets a line when the store cannot be reached, at most one a
	// minute. Default: discard.
	Log *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// WaitMax bounds how long a request waits for an identical one in
	// flight before going to the backend itself. Default 30s.
	WaitMax time.Duration
}

// Stage is the response cache's proxy.Stage. It is safe for concurrent use.
type Stage struct {
	store   cache.Store
	embed   Embedder
	m       *Metrics
	log     *slog.Logger
	now     func() time.Time
	waitMax time.Duration
	flights cache.Flights
	lastLog atomic.Int64 // when the store's failure was last logged, Unix nanoseconds
}

// New returns a Stage.
func New(o Options) *Stage {
	s := &Stage{store: o.Store, embed: o.Embed, m: o.Metrics, log: o.Log, now: o.Now, waitMax: o.WaitMax}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.waitMax <= 0 {
		s.waitMax = 30 * time.Second
	}
	if s.m == nil {
		s.m = NewMetrics(nil, nil)
	}
	return s
}

// Store returns the stage's store.
func (s *Stage) Store() cache.Store { return s.store }

func cacheOp(op wire.Operation) cache.Op {
	switch op {
	case wire.OpChatCompletions:
		return cache.OpChat
	case wire.OpCompletions:
		return cache.OpCompletions
	case wire.OpResponses:
		return cache.OpResponses
	case wire.OpEmbeddings:
		return cache.OpEmbeddings
	}
	return ""
}

// Before implements proxy.Stage.
func (s *Stage) Before(ctx context.Context, r *proxy.Request) (*proxy.Answer, error) {
	pc := r.Subscription.Product.Cache
	op := cacheOp(r.Op)
	if pc == nil || op == "" {
		return nil, nil
	}
	noCache, noStore := cacheControl(r.Header)
	if noStore {
		r.SetResponseHeader("X-Sluice-Cache", Bypass)
		r.SetCacheResult(Bypass)
		s.m.lookup("none", Bypass)
		return nil, nil
	}
	ko := keyOptions(pc, r)
	sem := pc.Semantic != nil && s.embed != nil
	ko.Semantic = sem
	keys, err := cache.KeysOf(op, r.Body, ko)
	if err != nil {
		return nil, nil // not an object: the backend will say so
	}
	stream, clientUsage := r.Parsed.Stream, r.Parsed.IncludeUsage
	t := &tap{s: s, op: op, stream: stream, exact: pc.Exact, sem: pc.Semantic, keys: keys}
	if !noCache {
		if a := s.lookup(ctx, clientUsage, pc, keys, t); a != nil {
			return a, nil
		}
	}
	result := Miss
	if noCache {
		result = Bypass
	}
	r.SetResponseHeader("X-Sluice-Cache", result)
	r.SetCacheResult(result)
	if stream && !clientUsage && (op == cache.OpChat || op == cache.OpCompletions) {
		// Stored with its usage chunk, so that a later client that asks
		// for it gets it; this client's copy is taken out again by the tap.
		if b := r.Parsed.WithIncludeUsage(r.Body); len(b) != len(r.Body) {
			if r.SetBody(b) == nil {
				t.stripUsage = true
			}
		}
	}
	if !noCache && pc.Exact != nil {
		f, leader := s.flights.Join(keys.Exact)
		if !leader {
			s.m.coalesced.Inc()
			if e := f.Wait(ctx, s.waitMax); e != nil {
				r.SetResponseHeader("X-Sluice-Cache", HitExact)
				return s.answer(clientUsage, e, HitExact, ""), nil
			}
		} else {
			t.flight = f
		}
	}
	r.AddTap(t)
	return nil, nil
}

// lookup looks the request up, exact then semantic, and answers a hit.
func (s *Stage) lookup(ctx context.Context, clientUsage bool, pc *config.ProductCache, keys cache.Keys, t *tap) *proxy.Answer {
	if pc.Exact != nil {
		e, err := s.store.Get(ctx, keys.Exact)
		if err != nil {
			s.failed(err)
		}
		if e != nil {
			s.m.lookup("exact", HitExact)
			return s.answer(clientUsage, e, HitExact, "")
		}
		s.m.lookup("exact", Miss)
	}
	if keys.Partition == "" || pc.Semantic == nil || s.embed == nil {
		return nil
	}
	start := s.now()
	sc := pc.Semantic
	vec, err := s.embed(ctx, sc.Embeddings, sc.Dimensions, keys.Text)
	s.m.embeddings.Inc()
	if err != nil {
		s.m.embedErrors.Inc()
		s.log.Warn("embedding a prompt for the semantic cache", "err", err)
		return nil
	}
	t.vec = vec
	key, dist, ok := s.store.Nearest(keys.Partition, vec)
	s.m.semanticSeconds.Observe(s.now().Sub(start).Seconds())
	if !ok || float64(dist) > sc.ScoreThreshold {
		s.m.lookup("semantic", Miss)
		return nil
	}
	e, err := s.store.Get(ctx, key)
	if err != nil {
		s.failed(err)
	}
	if e == nil {
		if err == nil {
			s.store.Forget(keys.Partition, key) // its answer expired
		}
		s.m.lookup("semantic", Miss)
		return nil
	}
	s.m.lookup("semantic", HitSemantic)
	return s.answer(clientUsage, e, HitSemantic, strconv.FormatFloat(float64(dist), 'f', 4, 32))
}

// answer replays a stored entry: a body as it was, a stream as its
// events, the usage chunk only for a client that asked for it
// (clientUsage).
func (s *Stage) answer(clientUsage bool, e *cache.Entry, result, score string) *proxy.Answer {
	h := http.Header{"X-Sluice-Cache": {result}}
	if score != "" {
		h.Set("X-Sluice-Cache-Score", score)
	}
	if e.ContentType != "" {
		h.Set("Content-Type", e.ContentType)
	}
	a := &proxy.Answer{Status: e.Status, Header: h, Cache: result, Saved: e.Usage, CountRequest: true}
	s.m.saved(e.Usage)
	if e.Events == nil {
		a.Body = e.Body
		return a
	}
	strip := !clientUsage && e.UsageEvent >= 0
	a.Events = make([][]byte, 0, len(e.Events))
	for i, ev := range e.Events {
		if strip {
			if i == e.UsageEvent {
				continue
			}
			ev = wire.WithoutNullUsage(ev)
		}
		a.Events = append(a.Events, ev)
	}
	return a
}

// failed counts a store that could not be reached, and logs it at most once
// a minute.
func (s *Stage) failed(err error) {
	s.m.storeErrors.Inc()
	now := s.now().UnixNano()
	last := s.lastLog.Load()
	if now-last >= int64(time.Minute) && s.lastLog.CompareAndSwap(last, now) {
		s.log.Warn("the response cache cannot be reached; requests go to their backends", "err", err)
	}
}

// cacheControl reads the client's Cache-Control: no-cache skips the lookup,
// no-store skips the lookup and the store.
func cacheControl(h http.Header) (noCache, noStore bool) {
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			switch strings.ToLower(strings.TrimSpace(d)) {
			case "no-cache":
				noCache = true
			case "no-store":
				noStore = true
			}
		}
	}
	return noCache, noStore
}

// keyOptions makes the scope of the request from the product's vary_by.
func keyOptions(pc *config.ProductCache, r *proxy.Request) cache.KeyOptions {
	o := cache.KeyOptions{Model: r.Model}
	var b strings.Builder
	for _, v := range pc.VaryBy {
		b.WriteString(v)
		b.WriteByte('=')
		switch {
		case v == "subscription":
			b.WriteString(r.Subscription.Name)
			o.Tag = r.Subscription.Name
		case v == "product":
			b.WriteString(r.Subscription.Product.Name)
		case v == "model":
			b.WriteString(r.Model)
		case strings.HasPrefix(v, "header:"):
			b.WriteString(strings.Join(r.Header.Values(strings.TrimPrefix(v, "header:")), ","))
		}
		b.WriteByte(0)
	}
	o.Scope = b.String()
	if sc := pc.Semantic; sc != nil {
		o.IgnoreSystem, o.MaxMessages = sc.IgnoreSystemMessages, sc.MaxMessageCount
	}
	return o
}

// maxStored bounds an answer the tap keeps to store.
const maxStored = 8 << 20

// tap collects an answer and stores it when the request ends complete and
// 2xx.
type tap struct {
	s          *Stage
	op         cache.Op
	stream     bool
	stripUsage bool // Sluice asked for it: the client does not get it
	exact      *config.ExactCache
	sem        *config.SemanticCache
	keys       cache.Keys
	vec        []float32
	flight     *cache.Flight

	body       []byte
	events     [][]byte
	size       int
	usageEvent int
	done       bool // a stream reached its end ([DONE], or response.completed / .incomplete)
	refused    bool // nothing to store: too large, filtered
}

// Event implements proxy.Tap.
func (t *tap) Event(ev []byte) ([]byte, error) {
	if t.refused {
		return t.clientEvent(ev, false), nil
	}
	if t.events == nil {
		t.usageEvent = -1
	}
	data := sse.Data(ev)
	_, _, usageChunk := wire.StreamUsage(data)
	switch {
	case bytes.Equal(bytes.TrimSpace(data), []byte("[DONE]")):
		t.done = true
	case bytes.Contains(data, []byte(`"content_filter"`)):
		t.refused = true
	case t.op == cache.OpResponses && (bytes.Contains(data, []byte(`"response.completed"`)) ||
		bytes.Contains(data, []byte(`"response.incomplete"`))):
		// The last event of a Responses stream; incomplete at
		// max_output_tokens is the whole answer to the same request, as
		// a chat's finish_reason "length" is (a content filter is not
		// stored: see above).
		t.done = true
	}
	if usageChunk {
		t.usageEvent = len(t.events)
	}
	t.size += len(ev)
	if t.size > maxStored {
		t.refused, t.events = true, nil
	} else if !t.refused {
		t.events = append(t.events, bytes.Clone(ev))
	}
	return t.clientEvent(ev, usageChunk), nil
}

// clientEvent is what the client gets of ev: without the usage Sluice asked
// for on its behalf.
func (t *tap) clientEvent(ev []byte, usageChunk bool) []byte {
	if !t.stripUsage {
		return ev
	}
	if usageChunk {
		return nil
	}
	return wire.WithoutNullUsage(ev)
}

// Body implements proxy.Tap.
func (t *tap) Body(b []byte) ([]byte, error) {
	if len(b) <= maxStored && !bytes.Contains(b, []byte(`"content_filter"`)) {
		t.body = bytes.Clone(b)
	}
	return b, nil
}

// End implements proxy.Tap: a complete 2xx answer is stored.
func (t *tap) End(o proxy.Outcome) {
	var e *cache.Entry
	defer func() {
		if t.flight != nil {
			t.s.flights.Land(t.flight, e)
		}
	}()
	if !o.Complete || o.Status < 200 || o.Status > 299 || o.Stream != t.stream {
		return
	}
	switch {
	case t.stream && t.done && !t.refused && len(t.events) > 0:
		e = &cache.Entry{Status: o.Status, ContentType: "text/event-stream", Events: t.events, UsageEvent: t.usageEvent, Usage: o.Usage}
		if t.op == cache.OpResponses {
			e.UsageEvent = -1
		}
	case !t.stream && t.body != nil:
		e = &cache.Entry{Status: o.Status, ContentType: "application/json", Body: t.body, UsageEvent: -1, Usage: o.Usage}
	default:
		return
	}
	e.Usage.Estimated = false
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if t.exact != nil {
		if err := t.s.store.Put(ctx, t.keys.Exact, e, t.exact.TTL.D(), nil); err != nil {
			t.s.failed(err)
			return
		}
	}
	if t.sem != nil && t.vec != nil && t.keys.Partition != "" {
		if err := t.s.store.Put(ctx, t.keys.SemanticKey(), e, t.sem.Duration.D(), &cache.Vector{Partition: t.keys.Partition, V: t.vec}); err != nil {
			t.s.failed(err)
			return
		}
	}
	t.s.m.stored.Inc()
}
