package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"sync"
	"time"
)

// hist is a log-linear latency histogram in nanoseconds, in the manner of
// HdrHistogram: 64 linear sub-buckets per power of two, so every recorded
// value is known to within 1/64 (1.6%). The zero value is empty and ready;
// it is not safe for concurrent use, so each worker keeps its own and they
// are merged at the end.
type hist struct {
	counts [64 * 60]uint64
	n      uint64
	max    int64
}

const subBits = 6 // 64 sub-buckets

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < 2<<subBits {
		return int(u)
	}
	shift := bits.Len64(u) - subBits - 1
	return shift<<subBits + int(u>>shift)
}

// valueOf is the midpoint of bucket i.
func valueOf(i int) int64 {
	if i < 2<<subBits {
		return int64(i)
	}
	shift := i>>subBits - 1
	lo := int64(i-shift<<subBits) << shift
	return lo + int64(1)<<shift/2
}

func (h *hist) record(d time.Duration) {
	h.counts[bucketOf(int64(d))]++
	h.n++
	h.max = max(h.max, int64(d))
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the value at q (0 to 1); 0 when empty.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(valueOf(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// result is what one run of load against one target measured.
type result struct {
	requests, errors uint64
	elapsed          time.Duration
	lat              hist // whole request, or time to first token for streams
	gap              hist // streams: time between successive chunks
	last             hist // streams: time to the last chunk
	chunks           uint64
	firstErr         string
}

func (r *result) merge(o *result) {
	r.requests += o.requests
	r.errors += o.errors
	r.elapsed += o.elapsed
	r.lat.merge(&o.lat)
	r.gap.merge(&o.gap)
	r.last.merge(&o.last)
	r.chunks += o.chunks
	if r.firstErr == "" {
		r.firstErr = o.firstErr
	}
}

func (r *result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

// target is an endpoint that answers the same chat request: the simulator
// itself or the gateway in front of it.
type target struct {
	name, url, key string
	pid            int    // process whose CPU time is charged to this target's requests
	admin          string // the gateway's admin URL, for profiles; empty for the simulator
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 20000,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

// shot sends one request and reads the whole answer. For a stream it records
// the time to the first content chunk, the gaps between chunks and the time
// to the last chunk into r.
func shot(ctx context.Context, c *http.Client, t target, body []byte, stream bool, start time.Time, r *result) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		r.fail(err.Error())
		return
	}
	req.Header.Set("api-key", t.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		r.fail(err.Error())
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		r.fail(fmt.Sprintf("%s: %s", resp.Status, b))
		return
	}
	if !stream {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			r.fail(err.Error())
			return
		}
		r.requests++
		r.lat.record(time.Since(start))
		return
	}
	br := bufio.NewReaderSize(resp.Body, 16<<10)
	var last time.Time
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, []byte("data: {")) && bytes.Contains(line, []byte(`"delta"`)) {
			now := time.Now()
			if last.IsZero() {
				r.lat.record(now.Sub(start))
			} else {
				r.gap.record(now.Sub(last))
			}
			last = now
			r.chunks++
		}
		if err == io.EOF {
			if !last.IsZero() {
				r.last.record(last.Sub(start))
			}
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			r.fail(err.Error())
			return
		}
	}
	r.requests++
}

func (r *result) fail(msg string) {
	r.errors++
	if r.firstErr == "" {
		r.firstErr = msg
	}
}

// closedLoop keeps conc requests in flight for d. Each worker sends at least
// one request, so that a short run on a busy machine, whose workers may start
// after d has passed, still measures something.
func closedLoop(ctx context.Context, c *http.Client, t target, body []byte, stream bool, conc int, d time.Duration) *result {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	deadline := time.Now().Add(d)
	parts := make([]result, conc)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range parts {
		wg.Go(func() {
			for {
				shot(ctx, c, t, body, stream, time.Now(), &parts[i])
				if !time.Now().Before(deadline) || ctx.Err() != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	total := &result{}
	for i := range parts {
		total.merge(&parts[i])
	}
	total.elapsed = time.Since(begin)
	return total
}

// openLoop starts rate requests per second for d (at least one), each at its
// scheduled time whatever the earlier ones are doing. Latency counts from the
// scheduled time, so a stall is not hidden (no coordinated omission). At most
// maxInFlight requests run at once; a request that would exceed it counts as
// an error.
func openLoop(ctx context.Context, c *http.Client, t target, body []byte, stream bool, rate float64, d time.Duration) *result {
	const maxInFlight = 4096
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	total := &result{}
	var mu sync.Mutex // guards total while workers finish
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxInFlight)
	interval := time.Duration(float64(time.Second) / rate)
	begin := time.Now()
	n := max(1, int(rate*d.Seconds()))
	for i := 0; i < n && ctx.Err() == nil; i++ {
		at := begin.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case sem <- struct{}{}:
		default:
			mu.Lock()
			total.fail("open loop: too many requests in flight")
			mu.Unlock()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			var r result
			shot(ctx, c, t, body, stream, at, &r)
			mu.Lock()
			total.merge(&r)
			mu.Unlock()
		})
	}
	wg.Wait()
	total.elapsed = time.Since(begin)
	return total
}
