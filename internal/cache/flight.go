package cache

import (
	"context"
	"sync"
	"time"
)

// Flights coalesce identical concurrent misses: the first request for a
// key goes to the backend, and the others wait for its answer instead of
// each calling the backend. Safe for concurrent use; the zero value is
// ready.
type Flights struct {
	mu sync.Mutex // guards m
	m  map[string]*Flight
}

// Flight is one miss in progress.
type Flight struct {
	key   string
	done  chan struct{}
	entry *Entry // set before done closes: the answer, or nil when not storable
}

// Join returns the flight of key and whether the caller leads it (the
// caller must then call Land exactly once), or follows it.
func (fs *Flights) Join(key string) (f *Flight, leader bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[key]; f != nil {
		return f, false
	}
	if fs.m == nil {
		fs.m = map[string]*Flight{}
	}
	f = &Flight{key: key, done: make(chan struct{})}
	fs.m[key] = f
	return f, true
}

// Land ends the flight with its answer, nil when it got none worth
// sharing, and wakes its followers.
func (fs *Flights) Land(f *Flight, e *Entry) {
	fs.mu.Lock()
	if fs.m[f.key] == f {
		delete(fs.m, f.key)
	}
	fs.mu.Unlock()
	f.entry = e
	close(f.done)
}

// Wait waits for the flight to land, for at most max or until ctx ends, and
// returns its answer (nil when it got none or the wait ran out).
func (f *Flight) Wait(ctx context.Context, max time.Duration) *Entry {
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-f.done:
		return f.entry
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}
