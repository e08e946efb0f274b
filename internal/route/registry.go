package route

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/breaker"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/health"
	"github.com/sluice-gateway/sluice/internal/limit"
)

// A Registry owns what outlives a routing table: each backend's live state
// (its connection pool, breaker, latency and counters) by name and URL, the
// counter store of each state.store (its counts, its connections), the
// limiter of each state config (its queue of settlements, its own counts),
// and the health probes. Tables compiled against one Registry share these.
//
// Commit puts a table in force. What the new table no longer uses is
// retired once the requests still running on the table it replaced have
// ended: a limiter hands its queue to its store, a store no table uses is
// closed, a backend's idle connections are closed. So a request admitted
// before a reload settles into the store it reserved in. Close closes
// everything. A Registry is safe for concurrent use.
type Registry struct {
	log       *slog.Logger
	openStore func(config.State) (limit.Store, error)
	health    *health.Checker
	drain     time.Duration

	mu       sync.Mutex // guards the maps, inForce, retiring and retired
	states   map[stateKey]*backend.State
	creds    map[string]backend.Credential // token credentials, by credKey
	stores   map[string]limit.Store        // by state.store
	limiters map[config.State]*limit.Limiter
	inForce  *Table
	retiring []*limit.Limiter // retired limiters still draining, counted in LimitStats
	retired  retiredStats

	runtime atomic.Pointer[runtimeSet] // the runtime subscriptions (SetRuntime)

	ctx     context.Context // ends the drains on Close
	cancel  context.CancelFunc
	closing sync.WaitGroup // drains running
}

type stateKey struct{ name, url string }

// retiredStats sums the counters of the limiters closed since the start, so
// that the metrics read from them never go down.
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
	// Drain bounds how long a retired limiter may take to hand its queued
	// settlements to its store. Default 10s.
	Drain time.Duration
}

// NewRegistry returns an empty Registry.
func NewRegistry(o RegistryOptions) *Registry {
	r := &Registry{log: o.Log, openStore: o.OpenStore, health: o.Health, drain: o.Drain,
		states: map[stateKey]*backend.State{}, stores: map[string]limit.Store{}, creds: map[string]backend.Credential{},
		limiters: map[config.State]*limit.Limiter{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.openStore == nil {
		r.openStore = func(config.State) (limit.Store, error) { return limit.NewMemory(), nil }
	}
	if r.drain <= 0 {
		r.drain = 10 * time.Second
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
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

// credential returns the token credential of a backend's auth, made with
// newCred when no table had it: a reload that keeps a backend's name and
// auth keeps its cached token and refreshes. A nil credential (a static
// key) is not kept.
func (r *Registry) credential(bc config.Backend, newCred func(config.Backend) (backend.Credential, error)) (string, backend.Credential, error) {
	k := credKey(bc)
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.creds[k]; ok {
		return k, c, nil
	}
	c, err := newCred(bc)
	if err != nil || c == nil {
		return "", c, err
	}
	r.creds[k] = c
	return k, c, nil
}

// credKey identifies a backend's credential: its name and its auth,
// secrets included (hashed, never kept in clear).
func credKey(bc config.Backend) string {
	a := bc.Auth
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", bc.Name, bc.Kind)
	if mi := a.ManagedIdentity; mi != nil {
		fmt.Fprintf(h, "mi\x00%s\x00%s\x00", mi.ClientID, mi.Resource)
	}
	if cc := a.ClientCredentials; cc != nil {
		fmt.Fprintf(h, "cc\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00", cc.TenantID, cc.ClientID, cc.ClientSecret.Reveal(),
			cc.FederatedTokenFile, cc.AuthorityHost, cc.Scope)
	}
	if o := a.OAuth2; o != nil {
		fmt.Fprintf(h, "o2\x00%s\x00%s\x00%s\x00%q\x00", o.TokenURL, o.ClientID, o.ClientSecret.Reveal(), o.Scopes)
	}
	fmt.Fprintf(h, "key\x00%s", a.APIKey.Reveal())
	return hex.EncodeToString(h.Sum(nil))
}

// limiter returns the limiter of a state config. A reload that keeps
// state.* keeps the limiter, its own counts and its queue; one that keeps
// only state.store gets a new limiter on the same store, whose counts
// (memory) or connections (Redis) carry on.
func (r *Registry) limiter(st config.State) (*limit.Limiter, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.limiters[st]; ok {
		return l, nil
	}
	store, ok := r.stores[st.Store]
	if !ok {
		var err error
		if store, err = r.openStore(st); err != nil {
			return nil, err
		}
		r.stores[st.Store] = store
	}
	policy := limit.FailOpen
	if st.OnStoreError == "fail_closed" {
		policy = limit.FailClosed
	}
	l := limit.New(limit.Options{Store: store, OnStoreError: policy, Timeout: st.Timeout.D(), Logger: r.log})
	r.limiters[st] = l
	return l, nil
}

// Commit puts t in force: it activates t and has the health probes follow
// its backends. Once the requests still running on the table t replaces
// have ended, what t does not use is retired.
func (r *Registry) Commit(t *Table) {
	t.Activate()
	r.mu.Lock()
	prev := r.inForce
	r.inForce = t
	r.mu.Unlock()
	if r.health != nil {
		r.health.Sync(t.Backends)
	}
	if prev == nil || prev == t {
		return
	}
	// Retired now, not when the drain starts: a request that loads prev
	// from here on takes t instead.
	prev.retired.Store(true)
	r.closing.Add(1)
	go func() {
		defer r.closing.Done()
		prev.drain(r.ctx)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.releaseLocked()
	}()
}

// Discard gives back what only t holds, for a table compiled but never put
// in force (a reload refused after compiling).
func (r *Registry) Discard(t *Table) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t == r.inForce {
		return
	}
	t.retired.Store(true)
	r.releaseLocked()
}

// releaseLocked retires what the registry holds that the table in force
// does not use: idle connections of backends that left, limiters whose
// state.* changed (closed in the background after they drain) and stores no
// limiter uses.
func (r *Registry) releaseLocked() {
	for k, st := range r.states {
		if r.inForce == nil || !slices.Contains(r.inForce.stateKeys, k) {
			delete(r.states, k)
			st.Close()
		}
	}
	for k, c := range r.creds {
		if r.inForce == nil || !slices.Contains(r.inForce.credKeys, k) {
			delete(r.creds, k)
			closeCredential(c, r.log)
		}
	}
	for st, l := range r.limiters {
		if r.inForce != nil && r.inForce.Limiter == l {
			continue
		}
		delete(r.limiters, st)
		r.retiring = append(r.retiring, l)
		var store limit.Store
		if s, ok := r.stores[st.Store]; ok && !r.storeUsedLocked(st.Store) {
			delete(r.stores, st.Store)
			store = s
		}
		r.closing.Add(1)
		go func() {
			defer r.closing.Done()
			r.retire(l, store)
		}()
	}
}

// storeUsedLocked reports whether a limiter still held uses the store of url.
func (r *Registry) storeUsedLocked(url string) bool {
	for st := range r.limiters {
		if st.Store == url {
			return true
		}
	}
	return false
}

// retire drains a retired limiter's queue into its store, bounded by the
// drain time, folds its counters into the retired ones, and closes store
// when no limiter uses it any more (nil: others still do).
func (r *Registry) retire(l *limit.Limiter, store limit.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), r.drain)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		r.log.Warn("closing a retired limiter", "err", err)
	}
	if c, ok := store.(io.Closer); ok {
		if err := c.Close(); err != nil {
			r.log.Warn("closing the counter store", "err", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := slices.Index(r.retiring, l); i >= 0 {
		r.retiring = slices.Delete(r.retiring, i, i+1)
		r.retired.add(l)
	}
}

// closeCredential stops a credential's background refresh, if it has one.
func closeCredential(c backend.Credential, log *slog.Logger) {
	if cl, ok := c.(io.Closer); ok {
		if err := cl.Close(); err != nil {
			log.Warn("closing a backend credential", "err", err)
		}
	}
}

// add folds a limiter's counters in.
func (s *retiredStats) add(l *limit.Limiter) {
	s.storeErrors += l.StoreErrors()
	addStats(&s.limit, l.Stats())
}

func addStats(to *limit.Stats, s limit.Stats) {
	to.Queued += s.Queued
	to.Landed += s.Landed
	to.Dropped += s.Dropped
	to.Expired += s.Expired
	to.RetryErrors += s.RetryErrors
	to.FallbackAdmitted += s.FallbackAdmitted
	to.FallbackRefused += s.FallbackRefused
}

// LimitStats returns the limiter counters of the table in force added to
// those of every limiter retired before it (draining or closed), and their
// store errors likewise, so that they never go down.
func (r *Registry) LimitStats() (limit.Stats, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s limit.Stats
	errs := r.retired.storeErrors
	if r.inForce != nil {
		s = r.inForce.Limiter.Stats()
		errs += r.inForce.Limiter.StoreErrors()
	}
	addStats(&s, r.retired.limit)
	for _, l := range r.retiring {
		ls := l.Stats()
		addStats(&s, ls)
		s.QueueLen += ls.QueueLen
		errs += l.StoreErrors()
	}
	return s, errs
}

// Close closes everything: the health probes, the drains under way, every
// limiter (after it hands its queue to its store, until ctx ends), every
// store, and every backend's idle connections. Call it once no request runs.
func (r *Registry) Close(ctx context.Context) error {
	if r.health != nil {
		r.health.Close()
	}
	r.cancel()
	r.closing.Wait()
	r.mu.Lock()
	limiters, stores, states, creds := r.limiters, r.stores, r.states, r.creds
	r.creds = map[string]backend.Credential{}
	r.limiters, r.stores, r.states, r.inForce = map[config.State]*limit.Limiter{}, map[string]limit.Store{}, map[stateKey]*backend.State{}, nil
	r.mu.Unlock()
	var errs []error
	for _, l := range limiters {
		if err := l.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("limiter: %w", err))
		}
		r.mu.Lock()
		r.retired.add(l)
		r.mu.Unlock()
	}
	for _, s := range stores {
		if c, ok := s.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("counter store: %w", err))
			}
		}
	}
	for _, st := range states {
		st.Close()
	}
	for _, c := range creds {
		closeCredential(c, r.log)
	}
	return errors.Join(errs...)
}
