// Package health runs the active health checks of backends: a periodic cheap
// probe whose failures open the backend's circuit breaker and whose passes
// close it again. It lets a pool stop sending to a dead backend before any
// client request fails there, and find it again once it is back.
package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/config"
)

// Checker owns one probe goroutine per backend with a health check. It is
// safe for concurrent use; Close stops every goroutine it started.
type Checker struct {
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex // guards probes and closed
	probes map[*backend.State]*probe
	closed bool
	wg     sync.WaitGroup
}

type probe struct {
	cfg    config.HealthCheck
	cancel context.CancelFunc
}

// New returns a Checker. now may be nil for time.Now.
func New(log *slog.Logger, now func() time.Time) *Checker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Checker{log: log, now: now, probes: make(map[*backend.State]*probe)}
}

// Sync makes the running probes match backends: it starts probes for
// backends that have a health check, restarts those whose check changed,
// and stops the rest. Probes follow a backend's live State, so a reload that
// keeps a backend keeps its probe.
func (c *Checker) Sync(backends map[string]*backend.Backend) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	keep := make(map[*backend.State]bool, len(backends))
	for _, b := range backends {
		if b.HealthCheck == nil {
			continue
		}
		keep[b.State] = true
		if p, ok := c.probes[b.State]; ok {
			if p.cfg == *b.HealthCheck {
				continue
			}
			c.stopLocked(b.State)
		}
		c.startLocked(b)
	}
	for st := range c.probes {
		if !keep[st] {
			c.stopLocked(st)
		}
	}
}

// Close stops every probe and waits for them.
func (c *Checker) Close() {
	c.mu.Lock()
	c.closed = true
	for st := range c.probes {
		c.stopLocked(st)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *Checker) startLocked(b *backend.Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &probe{cfg: *b.HealthCheck, cancel: cancel}
	c.probes[b.State] = p
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.run(ctx, b, p.cfg)
	}()
}

func (c *Checker) stopLocked(st *backend.State) {
	if p, ok := c.probes[st]; ok {
		p.cancel()
		delete(c.probes, st)
	}
}

// run probes b every interval until ctx ends.
func (c *Checker) run(ctx context.Context, b *backend.Backend, cfg config.HealthCheck) {
	ticker := time.NewTicker(cfg.Interval.D())
	defer ticker.Stop()
	var fails, passes int
	opened := false // whether the health check opened the breaker
	for {
		err := c.probe(ctx, b, cfg)
		if ctx.Err() != nil {
			return
		}
		now := c.now()
		if err != nil {
			fails, passes = fails+1, 0
			if fails == cfg.UnhealthyThreshold {
				opened = true
				b.State.Breaker.ForceOpen(now, 0, fmt.Sprintf("health check failed %d times: %v", fails, err))
			}
		} else {
			passes, fails = passes+1, 0
			// A pass closes only what the health check opened: a breaker
			// tripped by traffic (a 429 with Retry-After, say) keeps its trip.
			if opened && passes == cfg.HealthyThreshold {
				opened = false
				b.State.Breaker.ForceClose(now, fmt.Sprintf("health check passed %d times", passes))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// probe sends one health-check request; a 2xx answer passes.
func (c *Checker) probe(ctx context.Context, b *backend.Backend, cfg config.HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout.D())
	defer cancel()
	req, err := b.NewProbeRequest(ctx, cfg.Path)
	if err != nil {
		return err
	}
	resp, err := b.Probe(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
