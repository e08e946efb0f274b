package guard

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/internal/safety"
)

// stats counts what the guardrails did, for the metrics. Safe for
// concurrent use.
type stats struct {
	mu       sync.Mutex                    // guards the maps (not the counters in them)
	verdicts map[VerdictKey]*atomic.Uint64 // checks by product, check and result
	errors   map[ErrorKey]*atomic.Uint64   // service failures
	masked   map[MaskKey]*atomic.Uint64    // values masked
	seconds  map[string]*durations         // check latency by check
}

// VerdictKey labels a count of checks: check is prompt or completion,
// result pass, or the kind of refusal (category, blocklist, attack).
type VerdictKey struct{ Product, Check, Result string }

// ErrorKey labels a count of service failures: check is prompt,
// completion or pii.
type ErrorKey struct{ Product, Check, OnError string }

// MaskKey labels a count of masked values.
type MaskKey struct{ Product, Category string }

type durations struct {
	mu  sync.Mutex // guards the fields
	n   uint64
	sum float64
}

func counter[K comparable](mu *sync.Mutex, m *map[K]*atomic.Uint64, k K) *atomic.Uint64 {
	mu.Lock()
	defer mu.Unlock()
	if *m == nil {
		*m = map[K]*atomic.Uint64{}
	}
	c, ok := (*m)[k]
	if !ok {
		c = new(atomic.Uint64)
		(*m)[k] = c
	}
	return c
}

func (s *stats) verdict(product, check string, v safety.Verdict) {
	r := "pass"
	if v.Blocked {
		r = v.Kind
	}
	counter(&s.mu, &s.verdicts, VerdictKey{product, check, r}).Add(1)
}

func (s *stats) serviceError(product, check string, open bool) {
	counter(&s.mu, &s.errors, ErrorKey{product, check, onError(open)}).Add(1)
}

func (s *stats) addMasked(product, category string, n int) {
	counter(&s.mu, &s.masked, MaskKey{product, category}).Add(uint64(n))
}

func (s *stats) observe(check string, d time.Duration) {
	s.mu.Lock()
	if s.seconds == nil {
		s.seconds = map[string]*durations{}
	}
	ds, ok := s.seconds[check]
	if !ok {
		ds = &durations{}
		s.seconds[check] = ds
	}
	s.mu.Unlock()
	ds.mu.Lock()
	ds.n++
	ds.sum += d.Seconds()
	ds.mu.Unlock()
}

// Stats is a snapshot of the guardrails' counters.
type Stats struct {
	Verdicts map[VerdictKey]uint64
	Errors   map[ErrorKey]uint64
	Masked   map[MaskKey]uint64
	// Checks are the calls' count and total seconds by check (prompt,
	// completion, pii).
	Checks map[string]CheckTime
}

// CheckTime is the calls of a check and their total time.
type CheckTime struct {
	Count   uint64
	Seconds float64
}

// Stats returns the counters.
func (s *Stage) Stats() Stats {
	st := &s.stats
	st.mu.Lock()
	defer st.mu.Unlock()
	out := Stats{Verdicts: map[VerdictKey]uint64{}, Errors: map[ErrorKey]uint64{}, Masked: map[MaskKey]uint64{},
		Checks: map[string]CheckTime{}}
	for k, v := range st.verdicts {
		out.Verdicts[k] = v.Load()
	}
	for k, v := range st.errors {
		out.Errors[k] = v.Load()
	}
	for k, v := range st.masked {
		out.Masked[k] = v.Load()
	}
	for k, d := range st.seconds {
		d.mu.Lock()
		out.Checks[k] = CheckTime{d.n, d.sum}
		d.mu.Unlock()
	}
	return out
}
