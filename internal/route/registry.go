package route

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/breaker"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/health"
	"github.com/sluice-gateway/sluice/internal/limit"
)

// A Registry owns what outlives a routing table: each backend's live state
// (its connection pool, breaker, latency and counters) by name and URL, the
// limiter of each state config (its store, its queue of settlements, its own
// counts), and the health probes. Tables compiled against one Registry share
// these; Commit puts a table in force and closes what it no longer uses, and
// Close closes everything. It is safe for concurrent use.
type Registry struct {
	log       *slog.Logger
	openStore func(config.State) (limit.Store, error)
	health    *health.Checker
	drain     time.Duration

	mu       sync.Mutex // guards the maps, inForce and retired
	states   map[stateKey]*backend.State
	limiters map[config.State]*limit.Limiter
	inForce  *Table
	retired  retiredStats
	closing  sync.WaitGroup // limiters draining after a swap
}

type stateKey struct{ name, url string }

// retiredStats sums the counters of the limiters a swap closed, so that the
// metrics read from them never go down.
type retiredStats struct {
	storeErrors uint64
	limit       limit.Stats
}

// RegistryOptions configure NewRegistry.
type RegistryOptions struct {
	// Log receives the breakers' state changes and closing errors; nil:
	// discard.
	Log *slog.Logger
	// OpenStore opens the counter store of a state config; nil: memory.
	OpenStore func(config.State) (limit.Store, error)
	// Health, when set, probes the backends of the table in force.
	Health *health.Checker
	// Drain bounds how long a limiter that a swap retired may take to hand
	// its queued settlements to its store before it is closed. Default 10s.
	Drain time.Duration
}

// NewRegistry returns an empty Registry.
func NewRegistry(o RegistryOptions) *Registry {
	r := &Registry{log: o.Log, openStore: o.OpenStore, health: o.Health, drain: o.Drain,
		states: map[stateKey]*backend.State{}, limiters: map[config.State]*limit.Limiter{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.openStore == nil {
		r.openStore = func(config.State) (limit.Store, error) { return limit.NewMemory(), nil }
	}
	if r.drain <= 0 {
		r.drain = 10 * time.Second
	}
	return r
}

// state returns the live state of the backend name at url, made anew when
// no table had it.
func (r *Registry) state(name, url string, onChange func(breaker.Change)) *backend.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := stateKey{name, url}
	st, ok := r.states[k]
	if !ok {
		st = backend.NewState(name, onChange)
		r.states[k] = st
	}
	return st
}

// limiter returns the limiter of a state config, opening its store when no
// table had it: a reload that keeps state.* keeps the limiter, its counts
// and its queue.
func (r *Registry) limiter(st config.State) (*limit.Limiter, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.limiters[st]; ok {
		return l, nil
	}
	store, err := r.openStore(st)
	if err != nil {
		return nil, err
	}
	policy := limit.FailOpen
	if st.OnStoreError == "fail_closed" {
		policy = limit.FailClosed
	}
	l := limit.New(limit.Options{Store: store, OnStoreError: policy, Timeout: st.Timeout.D(), Logger: r.log})
	r.limiters[st] = l
	return l, nil
}

// Commit puts t in force: it activates t, has the health probes follow its
// backends, and closes what no table in force uses any more: the idle
// connections of backends t dropped, and the limiters of a state config t
// changed, after they hand their queued settlements to their store.
// Requests still running on the previous table finish normally.
func (r *Registry) Commit(t *Table) {
	t.Activate()
	r.mu.Lock()
	r.inForce = t
	r.releaseLocked()
	r.mu.Unlock()
	if r.health != nil {
		r.health.Sync(t.Backends)
	}
}

// releaseLocked closes what the registry holds that the table in force does
// not use.
func (r *Registry) releaseLocked() {
	for k, st := range r.states {
		if r.inForce == nil || !slices.Contains(r.inForce.stateKeys, k) {
			delete(r.states, k)
			st.Close()
		}
	}
	for st, l := range r.limiters {
		if r.inForce != nil && r.inForce.Limiter == l {
			continue
		}
		delete(r.limiters, st)
		r.retired.storeErrors += l.StoreErrors()
		r.closing.Add(1)
		go func() {
			defer r.closing.Done()
			r.closeLimiter(l)
		}()
	}
}

// closeLimiter drains a retired limiter's queue into its store, bounded by
// the drain time, then closes the store, and keeps its counters.
func (r *Registry) closeLimiter(l *limit.Limiter) {
	ctx, cancel := context.WithTimeout(context.Background(), r.drain)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		r.log.Warn("closing a retired limiter", "err", err)
	}
	if c, ok := l.Store().(io.Closer); ok {
		if err := c.Close(); err != nil {
			r.log.Warn("closing the counter store", "err", err)
		}
	}
	s := l.Stats()
	r.mu.Lock()
	r.retired.limit.Queued += s.Queued
	r.retired.limit.Landed += s.Landed
	r.retired.limit.Dropped += s.Dropped
	r.retired.limit.Expired += s.Expired
	r.retired.limit.RetryErrors += s.RetryErrors
	r.retired.limit.FallbackAdmitted += s.FallbackAdmitted
	r.retired.limit.FallbackRefused += s.FallbackRefused
	r.mu.Unlock()
}

// Discard releases what only t holds, for a table compiled but never put in
// force (a reload refused after compiling): the states and the limiter it
// made that the table in force does not use.
func (r *Registry) Discard(t *Table) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t == r.inForce {
		return
	}
	r.releaseLocked()
}

// LimitStats returns the limiter counters of the table in force added to
// those of the limiters retired before it, and its store errors likewise.
func (r *Registry) LimitStats() (limit.Stats, uint64) {
	r.mu.Lock()
	t, retired := r.inForce, r.retired
	r.mu.Unlock()
	if t == nil {
		return retired.limit, retired.storeErrors
	}
	s := t.Limiter.Stats()
	s.Queued += retired.limit.Queued
	s.Landed += retired.limit.Landed
	s.Dropped += retired.limit.Dropped
	s.Expired += retired.limit.Expired
	s.RetryErrors += retired.limit.RetryErrors
	s.FallbackAdmitted += retired.limit.FallbackAdmitted
	s.FallbackRefused += retired.limit.FallbackRefused
	return s, retired.storeErrors + t.Limiter.StoreErrors()
}

// Close closes everything: the health probes, every limiter (after it
// hands its queue to its store, until ctx ends) and store, and every
// backend's idle connections. Call it once no request runs.
func (r *Registry) Close(ctx context.Context) error {
	if r.health != nil {
		r.health.Close()
	}
	r.mu.Lock()
	limiters := r.limiters
	states := r.states
	r.limiters, r.states, r.inForce = map[config.State]*limit.Limiter{}, map[stateKey]*backend.State{}, nil
	r.mu.Unlock()
	var errs []error
	for _, l := range limiters {
		if err := l.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("limiter: %w", err))
		}
		if c, ok := l.Store().(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("counter store: %w", err))
			}
		}
	}
	for _, st := range states {
		st.Close()
	}
	r.closing.Wait()
	return errors.Join(errs...)
}
