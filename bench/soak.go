package main

import (
	"context"
	"sync"
	"time"
)

// soakResult is the gateway's resident memory sampled through a long run of
// steady load.
type soakResult struct {
	duration, warmup time.Duration
	samples          []soakSample
	chat, streams    result
}

type soakSample struct {
	at  time.Duration // since the start
	rss int64
}

// soak sends chat requests at rate and streams at streamRate to t for d, at
// the same time, and samples the VmRSS of t's process every interval, at
// least twice however late the sampler runs.
func soak(ctx context.Context, t target, chat, stream loadFunc, d time.Duration) (*soakResult, error) {
	interval := min(10*time.Second, d/10)
	s := &soakResult{duration: d, warmup: min(time.Minute, d/5)}
	begin := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { s.chat = *chat(ctx, t, d) })
	wg.Go(func() { s.streams = *stream(ctx, t, d) })
	sampled := make(chan error, 1)
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			v, err := rss(t.pid)
			if err != nil {
				sampled <- err
				return
			}
			s.samples = append(s.samples, soakSample{at: time.Since(begin), rss: v})
			if time.Since(begin) >= d && len(s.samples) > 1 {
				sampled <- nil
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				sampled <- ctx.Err()
				return
			}
		}
	}()
	err := <-sampled
	wg.Wait()
	return s, err
}

// windows returns the mean VmRSS over the first interval after the warm-up
// and over the last one of the same length.
func (s *soakResult) windows() (afterWarmup, end int64) {
	w := s.warmup
	var a, b, na, nb int64
	for _, x := range s.samples {
		if x.at >= w && x.at < 2*w {
			a += x.rss
			na++
		}
		if x.at >= s.duration-w {
			b += x.rss
			nb++
		}
	}
	if na == 0 || nb == 0 {
		return 0, 0
	}
	return a / na, b / nb
}

// growth is how much the end window's memory exceeds the one after the
// warm-up, as a fraction.
func (s *soakResult) growth() float64 {
	a, b := s.windows()
	if a == 0 {
		return 0
	}
	return float64(b-a) / float64(a)
}

// flat is the verdict: under 5% growth after the warm-up.
func (s *soakResult) flat() bool { return s.growth() <= 0.05 }
