package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// memResult is the gateway's resident memory with n streams open through it.
type memResult struct {
	streams, opened, errors int
	rssBefore, rssAfter     int64
	openTime                time.Duration
	firstErr                string
}

func (m *memResult) perStream() int64 {
	if m.opened == 0 {
		return 0
	}
	return (m.rssAfter - m.rssBefore) / int64(m.opened)
}

// openStreams starts a simulator that sends one token a second and a fresh
// full-config gateway in front of it, opens n streams through the gateway,
// and reads the gateway's VmRSS before and once they are all open, waiting
// settle before each reading.
func openStreams(ctx context.Context, bin, dir, profile string, n int, settle time.Duration) (*memResult, error) {
	sim, simURL, err := startSim(ctx, bin, dir, fmt.Sprintf("slow-simulator-%d", n), "--latency-per-token", "1s")
	if err != nil {
		return nil, err
	}
	defer sim.stop()
	gw, gwURL, gwAdmin, err := startGateway(ctx, bin, dir, fmt.Sprintf("gateway-streams-%d", n), simURL, true)
	if err != nil {
		return nil, err
	}
	defer gw.stop()
	url := gwURL + "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
	c := newClient()
	defer c.CloseIdleConnections()
	// Warm the gateway up first (tokenizer tables, connection pools, the
	// ledger), so that the difference below is the streams' own memory.
	warm := holdMany(ctx, c, url, min(n, 50))
	warm.stop()
	time.Sleep(settle)
	m := &memResult{streams: n}
	if m.rssBefore, err = rss(gw.pid()); err != nil {
		return nil, err
	}
	h := holdMany(ctx, c, url, n)
	m.openTime = h.took
	time.Sleep(settle) // let the first tokens flow through every stream
	m.opened = int(h.opened.Load())
	m.rssAfter, err = rss(gw.pid())
	if profile != "" && err == nil {
		base := filepath.Join(profile, fmt.Sprintf("streams%d", n))
		if err = os.MkdirAll(profile, 0o755); err == nil {
			err = fetchProfile(ctx, gwAdmin, "heap", base+"-heap.pprof")
		}
		if err == nil {
			err = fetchProfile(ctx, gwAdmin, "goroutine", base+"-goroutine.pprof")
		}
	}
	h.stop()
	m.errors, m.firstErr = h.errors, h.firstErr
	if warm.errors > 0 && m.firstErr == "" {
		m.errors, m.firstErr = warm.errors, "warm-up: "+warm.firstErr
	}
	return m, err
}

// held is a set of open streams.
type held struct {
	opened   atomic.Int64
	took     time.Duration // until every stream was open or had failed
	stop     func()        // closes them all and waits
	mu       sync.Mutex    // guards errors and firstErr
	errors   int
	firstErr string
}

// holdMany opens n streams, at most 200 being set up at once, and returns
// once they are open or failed, or after a minute.
func holdMany(ctx context.Context, c *http.Client, url string, n int) *held {
	ctx, cancel := context.WithCancel(ctx)
	h := &held{}
	var wg sync.WaitGroup
	h.stop = func() { cancel(); wg.Wait() }
	dialing := make(chan struct{}, 200)
	begin := time.Now()
	for range n {
		dialing <- struct{}{}
		wg.Go(func() {
			var once sync.Once
			release := func() { once.Do(func() { <-dialing }) }
			defer release()
			err := holdStream(ctx, c, url, func() { h.opened.Add(1); release() })
			if err != nil && ctx.Err() == nil {
				h.mu.Lock()
				h.errors++
				if h.firstErr == "" {
					h.firstErr = err.Error()
				}
				h.mu.Unlock()
			}
		})
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		h.mu.Lock()
		done := int(h.opened.Load())+h.errors >= n
		h.mu.Unlock()
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.took = time.Since(begin)
	return h
}

// holdStream opens a stream, calls opened once its first event arrived, and
// reads it until ctx ends.
func holdStream(ctx context.Context, c *http.Client, url string, opened func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(chatBody("Hold this stream open.", 600, true)))
	if err != nil {
		return err
	}
	req.Header.Set("api-key", subKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	br := bufio.NewReader(resp.Body)
	first := true
	for {
		if _, err := br.ReadSlice('\n'); err != nil && err != bufio.ErrBufferFull {
			return err
		}
		if first {
			first = false
			opened()
		}
	}
}
