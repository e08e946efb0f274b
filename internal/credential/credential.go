// Package credential gives backends token credentials: an Azure managed
// identity, Entra ID client credentials (secret or workload identity) or
// any OAuth2 token endpoint, behind one cache that serves the current token
// and refreshes it in the background.
//
// A Cache fetches its first token as soon as it is made, then refreshes at
// the earlier of 5 minutes before expiry and half the token's lifetime, one
// fetch at a time, the current token serving meanwhile. A token serves until
// a tenth of its lifetime (at most 30 s) before it expires. A failed refresh
// is retried with backoff; a token endpoint that is down while the token is
// valid costs nothing. When no valid token can be had, Apply fails at once
// (a fetch is tried at most once a second), so that the request goes to
// another backend. A backend's 401 drops the token it was sent (Invalidate),
// and the next Apply fetches a fresh one. No token is ever logged.
//
// The sources use github.com/Azure/azure-sdk-for-go/sdk/azidentity (managed
// identity and Entra client credentials, as Azure's own SDKs do) and
// golang.org/x/oauth2/clientcredentials.
//
// The package is a mechanism: it imports config and secret only.
package credential

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Token is an access token and its expiry.
type Token struct {
	Value  string
	Expiry time.Time
}

// A Source fetches a new token. Implementations must be safe for
// concurrent use; the Cache calls one fetch at a time.
type Source interface {
	Token(ctx context.Context) (Token, error)
}

// Options configure a Cache.
type Options struct {
	// Name names the credential (its backend) in logs.
	Name string
	// Logger receives refresh failures. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// After waits: it returns a channel that receives after d. Default
	// time.After; tests drive it with their clock.
	After func(d time.Duration) <-chan time.Time
	// FetchTimeout bounds one fetch. Default 30s.
	FetchTimeout time.Duration
}

// Timing of refreshes.
const (
	refreshBefore = 5 * time.Minute  // refresh at most this long before expiry...
	maxMargin     = 30 * time.Second // ...and stop serving a token this long before, at most
	minRetry      = time.Second      // the first retry after a failure, and the least gap between fetches
	maxRetry      = 30 * time.Second
)

// Cache is a token credential with a background refresh: it implements the
// gateway's backend credential (Apply sets Authorization: Bearer). It is
// safe for concurrent use; Close stops its refreshes.
type Cache struct {
	src Source
	o   Options

	cur atomic.Pointer[entry]

	mu        sync.Mutex // guards running, lastFail and lastErr
	running   *fetch
	lastFail  time.Time
	lastErr   error
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	refreshes atomic.Uint64
	failures  atomic.Uint64
}

// entry is a token as the cache serves it.
type entry struct {
	value     string
	header    []string // Authorization: Bearer value, shared by every request
	expiry    time.Time
	until     time.Time // served until then
	refreshAt time.Time
}

type fetch struct {
	done chan struct{}
	err  error
}

// New returns a Cache over src and starts its first fetch.
func New(src Source, o Options) *Cache {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 30 * time.Second
	}
	c := &Cache{src: src, o: o}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.loop()
	return c
}

// ErrUnavailable is Apply's error when no valid token can be had.
var ErrUnavailable = errors.New("credential: no valid token")

// Apply sets Authorization: Bearer with a valid token. Without one it joins
// or starts a fetch (at most one a second after a failure) and waits for it
// within ctx.
func (c *Cache) Apply(ctx context.Context, h http.Header) error {
	if e := c.valid(); e != nil {
		h["Authorization"] = e.header
		return nil
	}
	f, err := c.fetchNow()
	if err != nil {
		return err
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if e := c.valid(); e != nil {
		h["Authorization"] = e.header
		return nil
	}
	if f.err != nil {
		return f.err
	}
	return ErrUnavailable
}

// valid returns the token in force if it may still be served.
func (c *Cache) valid() *entry {
	e := c.cur.Load()
	if e == nil || !c.o.Now().Before(e.until) {
		return nil
	}
	return e
}

// Invalidate drops the token h carries if it is the one in force: the
// backend refused it. It reports whether a fresh token may help.
func (c *Cache) Invalidate(h http.Header) bool {
	e := c.cur.Load()
	if e == nil {
		return true
	}
	if len(h["Authorization"]) == 1 && h["Authorization"][0] == e.header[0] {
		c.cur.CompareAndSwap(e, nil)
	}
	return true
}

// fetchNow returns the fetch in flight or starts one, unless one failed
// within the last second: then the last error.
func (c *Cache) fetchNow() (*fetch, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running == nil && !c.lastFail.IsZero() && c.o.Now().Sub(c.lastFail) < minRetry {
		return nil, c.lastErr
	}
	return c.startLocked(), nil
}

func (c *Cache) startLocked() *fetch {
	if c.running != nil {
		return c.running
	}
	f := &fetch{done: make(chan struct{})}
	c.running = f
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f.err = c.refresh()
		c.mu.Lock()
		c.running = nil
		if f.err != nil {
			c.lastFail, c.lastErr = c.o.Now(), f.err
		}
		c.mu.Unlock()
		close(f.done)
	}()
	return f
}

// refresh fetches a token and puts it in force.
func (c *Cache) refresh() error {
	ctx, cancel := context.WithTimeout(c.ctx, c.o.FetchTimeout)
	defer cancel()
	start := c.o.Now()
	t, err := c.src.Token(ctx)
	if err == nil && t.Value == "" {
		err = errors.New("the token endpoint answered no token")
	}
	if err == nil && !t.Expiry.After(start) {
		err = errors.New("the token endpoint answered an expired token")
	}
	if err != nil {
		c.failures.Add(1)
		err = fmt.Errorf("credential %s: %w", c.o.Name, err)
		c.o.Logger.Warn("backend credential refresh failed", "backend", c.o.Name, "err", err)
		return err
	}
	c.refreshes.Add(1)
	lifetime := t.Expiry.Sub(start)
	e := &entry{value: t.Value, header: []string{"Bearer " + t.Value}, expiry: t.Expiry,
		until:     t.Expiry.Add(-min(lifetime/10, maxMargin)),
		refreshAt: start.Add(min(lifetime/2, lifetime-refreshBefore))}
	if lifetime <= refreshBefore {
		e.refreshAt = start.Add(lifetime / 2)
	}
	if prev := c.cur.Load(); prev != nil && prev.value == t.Value {
		// The source's own cache answered the same token (MSAL keeps
		// tokens until 5 minutes before expiry): ask again then.
		e.refreshAt = t.Expiry.Add(-refreshBefore)
		e.refreshAt = maxTime(e.refreshAt, start.Add(minRetry))
	}
	c.cur.Store(e)
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// loop refreshes in the background: at once, then at each token's refresh
// time, and after a failure with backoff.
func (c *Cache) loop() {
	defer c.wg.Done()
	backoff := minRetry
	for {
		c.mu.Lock()
		f := c.startLocked()
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-c.ctx.Done():
			return
		}
		var wait time.Duration
		if e := c.cur.Load(); f.err == nil && e != nil {
			backoff = minRetry
			wait = e.refreshAt.Sub(c.o.Now())
		} else {
			wait = backoff
			backoff = min(2*backoff, maxRetry)
		}
		select {
		case <-c.o.After(max(wait, 0)):
		case <-c.ctx.Done():
			return
		}
	}
}

// Close stops the refreshes and waits for them.
func (c *Cache) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// Stats returns the refreshes that succeeded and those that failed.
func (c *Cache) Stats() (refreshes, failures uint64) {
	return c.refreshes.Load(), c.failures.Load()
}

// Expiry returns the expiry of the token in force (zero: none).
func (c *Cache) Expiry() time.Time {
	if e := c.cur.Load(); e != nil {
		return e.expiry
	}
	return time.Time{}
}
