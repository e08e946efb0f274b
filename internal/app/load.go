package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// demoLoad sends a steady trickle of chat requests through the gateway, so
// that the demo shows its pool at work: the PTU backend fills its small
// token limit, answers 429, its breaker opens for the Retry-After, and the
// pay-as-you-go backends take the traffic until it reopens. Every interval
// it prints which backend served how many requests.
type demoLoad struct {
	url, key string
	rate     float64 // requests per second
	interval time.Duration
	out      io.Writer
	client   *http.Client

	mu     sync.Mutex // guards counts
	counts map[string]int
}

func (l *demoLoad) run(ctx context.Context) {
	if l.rate <= 0 {
		return
	}
	l.counts = make(map[string]int)
	tick := time.NewTicker(time.Duration(float64(time.Second) / l.rate))
	defer tick.Stop()
	report := time.NewTicker(l.interval)
	defer report.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-report.C:
			l.report()
		case <-tick.C:
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.one(ctx)
			}()
		}
	}
}

func (l *demoLoad) one(ctx context.Context) {
	body := `{"model":"gpt-4o","max_tokens":40,"messages":[{"role":"user","content":"Tell me about rivers."}]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+l.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	key := resp.Header.Get("X-Sluice-Backend")
	if key == "" {
		key = "gateway"
	}
	if resp.StatusCode != http.StatusOK {
		key += fmt.Sprintf(" (%d)", resp.StatusCode)
	}
	l.mu.Lock()
	l.counts[key]++
	l.mu.Unlock()
}

func (l *demoLoad) report() {
	l.mu.Lock()
	counts := l.counts
	l.counts = make(map[string]int)
	l.mu.Unlock()
	names := make([]string, 0, len(counts))
	total := 0
	for k, n := range counts {
		names = append(names, fmt.Sprintf("%s %d", k, n))
		total += n
	}
	sort.Strings(names)
	fmt.Fprintf(l.out, "demo load, last %v: %d requests served by %s\n", l.interval, total, strings.Join(names, ", "))
}
