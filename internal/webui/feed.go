package webui

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Snapshot is one sample of the live feed: the backends' state and the
// traffic of the last interval, as rates.
type Snapshot struct {
	Time     time.Time      `json:"time"`
	Backends []BackendState `json:"backends"`
	Pools    []PoolState    `json:"pools"`
	// RequestsPerSecond are client requests finished in the last interval.
	RequestsPerSecond float64 `json:"requests_per_second"`
	// ErrorsPerSecond are those of them answered 4xx, 5xx or not at all
	// ("other"), by status class.
	ErrorsPerSecond map[string]float64 `json:"errors_per_second"`
	// TokensPerMinute are input and output tokens of the last interval, per minute.
	TokensPerMinute float64 `json:"tokens_per_minute"`
	// Latency and time to first token over the last 10 intervals, in
	// seconds; null without requests.
	LatencyP50 *float64 `json:"latency_p50_seconds"`
	LatencyP95 *float64 `json:"latency_p95_seconds"`
	TTFTP50    *float64 `json:"ttft_p50_seconds"`
	TTFTP95    *float64 `json:"ttft_p95_seconds"`
	// CacheHitRatio is the response cache's hits (exact and semantic) over
	// its lookups in the last 10 intervals (sluice_cache_lookups_total);
	// null without a cache or lookups.
	CacheHitRatio *float64 `json:"cache_hit_ratio"`
	// QuotaRemaining are the tokens left in each subscription's quota
	// period as of its latest request (sluice_quota_remaining_tokens; only
	// with the subscription metrics dimension).
	QuotaRemaining map[string]float64 `json:"quota_remaining_tokens,omitempty"`
	// RequestsTotal and TokensTotal count since the process started.
	RequestsTotal float64 `json:"requests_total"`
	TokensTotal   float64 `json:"tokens_total"`
}

// BackendState is a backend in a snapshot.
type BackendState struct {
	Name      string     `json:"name"`
	Region    string     `json:"region,omitempty"`
	State     string     `json:"state"`
	Reason    string     `json:"reason,omitempty"`
	ReopensAt *time.Time `json:"reopens_at,omitempty"`
	InFlight  int64      `json:"in_flight"`
	LatencyMS float64    `json:"latency_ms"`
	Requests  uint64     `json:"requests"`
	Errors    uint64     `json:"errors"`
	// RemainingTokens and RemainingRequests are what the backend last said
	// of its capacity; -1 when it said nothing lately.
	RemainingTokens   int64 `json:"remaining_tokens"`
	RemainingRequests int64 `json:"remaining_requests"`
}

// PoolState is a pool in a snapshot: its members by priority group.
type PoolState struct {
	Name   string        `json:"name"`
	Groups []PriorityGrp `json:"groups"`
}

// PriorityGrp is one priority group of a pool.
type PriorityGrp struct {
	Priority int      `json:"priority"`
	Backends []string `json:"backends"`
}

// counters are the cumulative figures a snapshot's rates come from.
type counters struct {
	requests float64
	byClass  map[string]float64
	tokens   float64
	latency  hist
	ttft     hist
	cacheHit float64
	cacheAll float64
	quota    map[string]float64
}

// hist is a cumulative histogram: counts by upper bound, summed over series.
type hist map[float64]float64

// feed samples the gateway's state every interval into a ring of encoded
// snapshots and sends each to the open streams.
type feed struct {
	o Options

	mu      sync.Mutex // guards ring, subs, closed
	ring    [][]byte   // encoded snapshots, oldest first
	subs    map[*subscriber]struct{}
	closed  bool
	history []counters // the counters of the last quantileSpan+1 samples, oldest first

	stop chan struct{}
	done chan struct{}
}

// recheckEvery is how many snapshots a live stream sends between checks
// of its session's credential.
const recheckEvery = 60

// quantileSpan is how many intervals the quantiles and ratios cover.
const quantileSpan = 10

// subscriber is an open stream: snapshots arrive on ch; done closes when
// the feed closes.
type subscriber struct {
	ch   chan []byte
	done chan struct{}
}

func newFeed(o Options) *feed {
	return &feed{o: o, subs: map[*subscriber]struct{}{}, stop: make(chan struct{}), done: make(chan struct{})}
}

func (f *feed) start() {
	go f.run()
}

func (f *feed) run() {
	defer close(f.done)
	t := time.NewTicker(f.o.Interval)
	defer t.Stop()
	f.sample()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			f.sample()
		}
	}
}

// close stops sampling and ends every stream.
func (f *feed) close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	for s := range f.subs {
		close(s.done)
		delete(f.subs, s)
	}
	f.mu.Unlock()
	close(f.stop)
}

// subscribe opens a stream; it returns the history so far. ok is false once
// the feed has closed.
func (f *feed) subscribe() (s *subscriber, history [][]byte, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, nil, false
	}
	s = &subscriber{ch: make(chan []byte, 4), done: make(chan struct{})}
	f.subs[s] = struct{}{}
	return s, append([][]byte(nil), f.ring...), true
}

func (f *feed) unsubscribe(s *subscriber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subs[s]; ok {
		delete(f.subs, s)
		close(s.done)
	}
}

// streams returns how many streams are open.
func (f *feed) streams() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// sample takes a snapshot, keeps it and sends it to every stream; a stream
// too slow to take it misses it.
func (f *feed) sample() {
	now := f.o.Now()
	snap, c := f.snapshot(now)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.history = append(f.history, c)
	if len(f.history) > quantileSpan+1 {
		f.history = f.history[len(f.history)-quantileSpan-1:]
	}
	f.rates(&snap)
	body, err := json.Marshal(snap)
	if err != nil {
		return
	}
	f.ring = append(f.ring, body)
	if max := int(f.o.Window / f.o.Interval); len(f.ring) > max {
		f.ring = f.ring[len(f.ring)-max:]
	}
	for s := range f.subs {
		select {
		case s.ch <- body:
		default:
		}
	}
}

// snapshot reads the backends from the table in force and the counters
// from the metrics.
func (f *feed) snapshot(now time.Time) (Snapshot, counters) {
	snap := Snapshot{Time: now.UTC(), ErrorsPerSecond: map[string]float64{}}
	if t := f.o.Table(); t != nil {
		for _, bc := range t.Config.Backends {
			b := t.Backends[bc.Name]
			if b == nil {
				continue
			}
			bs := b.State.Breaker.Snapshot(now)
			st := BackendState{Name: b.Name, Region: b.Region, State: bs.State.String(), Reason: bs.LastReason,
				InFlight: b.State.InFlight(), LatencyMS: float64(b.State.Latency().Microseconds()) / 1000,
				Requests: b.State.Requests(), Errors: b.State.Errors()}
			st.RemainingTokens, st.RemainingRequests = b.State.Capacity(now)
			if !bs.ReopenAt.IsZero() {
				at := bs.ReopenAt.UTC()
				st.ReopensAt = &at
			}
			snap.Backends = append(snap.Backends, st)
		}
		for _, p := range t.Config.Pools {
			ps := PoolState{Name: p.Name}
			byPrio := map[int][]string{}
			for _, m := range p.Members {
				byPrio[m.Priority] = append(byPrio[m.Priority], m.Backend)
			}
			for prio, names := range byPrio {
				ps.Groups = append(ps.Groups, PriorityGrp{Priority: prio, Backends: names})
			}
			sort.Slice(ps.Groups, func(i, j int) bool { return ps.Groups[i].Priority < ps.Groups[j].Priority })
			snap.Pools = append(snap.Pools, ps)
		}
	}
	c := counters{byClass: map[string]float64{}, latency: hist{}, ttft: hist{}}
	if f.o.Gatherer != nil {
		if mfs, err := f.o.Gatherer.Gather(); err == nil {
			readCounters(mfs, &c)
		}
	}
	snap.RequestsTotal, snap.TokensTotal, snap.QuotaRemaining = c.requests, c.tokens, c.quota
	return snap, c
}

func readCounters(mfs []*dto.MetricFamily, c *counters) {
	for _, mf := range mfs {
		name := mf.GetName()
		switch {
		case name == "sluice_requests_total":
			for _, m := range mf.GetMetric() {
				v := m.GetCounter().GetValue()
				c.requests += v
				c.byClass[label(m, "status_class")] += v
			}
		case name == "sluice_tokens_total":
			for _, m := range mf.GetMetric() {
				if t := label(m, "type"); t == "input" || t == "output" {
					c.tokens += m.GetCounter().GetValue()
				}
			}
		case name == "sluice_quota_remaining_tokens":
			for _, m := range mf.GetMetric() {
				if sub := label(m, "subscription"); sub != "" {
					if c.quota == nil {
						c.quota = map[string]float64{}
					}
					c.quota[sub] = m.GetGauge().GetValue()
				}
			}
		case name == "gen_ai_server_request_duration_seconds":
			addHist(c.latency, mf)
		case name == "gen_ai_server_time_to_first_token_seconds":
			for _, m := range mf.GetMetric() {
				if label(m, "gen_ai_request_stream") == "true" {
					addHistMetric(c.ttft, m)
				}
			}
		case name == "sluice_cache_lookups_total":
			// The response cache's lookups by result: hit-exact,
			// hit-semantic, miss; bypass is no lookup.
			for _, m := range mf.GetMetric() {
				r := label(m, "result")
				if r == "" || r == "bypass" {
					continue
				}
				v := m.GetCounter().GetValue()
				c.cacheAll += v
				if strings.HasPrefix(r, "hit") {
					c.cacheHit += v
				}
			}
		}
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func addHist(h hist, mf *dto.MetricFamily) {
	for _, m := range mf.GetMetric() {
		addHistMetric(h, m)
	}
}

func addHistMetric(h hist, m *dto.Metric) {
	hm := m.GetHistogram()
	for _, b := range hm.GetBucket() {
		h[b.GetUpperBound()] += float64(b.GetCumulativeCount())
	}
	h[math.Inf(1)] += float64(hm.GetSampleCount())
}

// rates fills the snapshot's rates from the counters' history; f.mu held.
func (f *feed) rates(s *Snapshot) {
	n := len(f.history)
	if n < 2 {
		return
	}
	cur, prev, first := f.history[n-1], f.history[n-2], f.history[0]
	secs := f.o.Interval.Seconds()
	s.RequestsPerSecond = nonNeg(cur.requests-prev.requests) / secs
	for _, class := range []string{"4xx", "5xx", "other"} {
		s.ErrorsPerSecond[class] = nonNeg(cur.byClass[class]-prev.byClass[class]) / secs
	}
	s.TokensPerMinute = nonNeg(cur.tokens-prev.tokens) / secs * 60
	s.LatencyP50, s.LatencyP95 = quantile(cur.latency, first.latency, 0.5), quantile(cur.latency, first.latency, 0.95)
	s.TTFTP50, s.TTFTP95 = quantile(cur.ttft, first.ttft, 0.5), quantile(cur.ttft, first.ttft, 0.95)
	if all := cur.cacheAll - first.cacheAll; all > 0 {
		r := nonNeg(cur.cacheHit-first.cacheHit) / all
		s.CacheHitRatio = &r
	}
}

func nonNeg(v float64) float64 { return max(v, 0) }

// quantile estimates the q-quantile of what was observed between two
// cumulative histograms, interpolating within the bucket, as Prometheus's
// histogram_quantile does. Nil when nothing was observed.
func quantile(cur, prev hist, q float64) *float64 {
	bounds := make([]float64, 0, len(cur))
	for b := range cur {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	total := nonNeg(cur[math.Inf(1)] - prev[math.Inf(1)])
	if total == 0 {
		return nil
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range bounds {
		n := nonNeg(cur[b] - prev[b])
		if n >= rank {
			if math.IsInf(b, 1) {
				v := lower
				return &v
			}
			v := lower + (b-lower)*(rank-below)/math.Max(n-below, 1e-12)
			return &v
		}
		lower, below = b, n
	}
	return nil
}

// live serves the feed as server-sent events: one "history" event with the
// ring so far, then a "snapshot" event each interval, until the browser goes
// away or the gateway shuts down.
//
// Every minute the stream checks that its session still stands, and ends
// when it does not (see stillSignedIn).
func (u *UI) live(w http.ResponseWriter, r *http.Request, se *session) {
	sub, history, ok := u.feed.subscribe()
	if !ok {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer u.feed.unsubscribe(sub)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var buf bytes.Buffer
	buf.WriteString("retry: 2000\nevent: history\ndata: [")
	for i, b := range history {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	buf.WriteString("]\n\n")
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(buf.Bytes()) {
		return
	}
	sent := 0
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.done:
			return
		case b := <-sub.ch:
			if sent++; sent%recheckEvery == 0 && !u.stillSignedIn(r, se) {
				return
			}
			buf.Reset()
			buf.WriteString("event: snapshot\ndata: ")
			buf.Write(b)
			buf.WriteString("\n\n")
			if !send(buf.Bytes()) {
				return
			}
		}
	}
}

// stillSignedIn reports whether the session of a long request still
// stands: its cookie still names a session (a sign-out on any instance
// sharing the store ends it; a store that does not answer counts as ended),
// and its credential still opens the admin API (a reload may have changed
// the admin key).
func (u *UI) stillSignedIn(r *http.Request, se *session) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	if cur, err := u.sessions.get(r.Context(), c.Value); err != nil || cur == nil {
		return false
	}
	return u.checkCredential(r, se.credential) == http.StatusOK
}
