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
// that the demo shows it at work. team-beta (premium: a high limit) sends
// most: the PTU backend fills its small token limit, answers 429, its
// breaker opens for the Retry-After, and the pay-as-you-go backends take
// the traffic until it reopens. team-alpha (standard: 5,000 tokens per
// minute, with estimation) sends a little, with large max_tokens, and hits
// its own limit. Every interval it prints what happened to each.
type demoLoad struct {
	url      string
	senders  []demoSender
	interval time.Duration
	out      io.Writer
	client   *http.Client

	mu     sync.Mutex // guards counts
	counts map[string]map[string]int
}

// demoSender is one subscription's share of the load.
type demoSender struct {
	name, key string
	rate      float64 // requests per second
	maxTokens int
}

func (l *demoLoad) run(ctx context.Context) {
	l.counts = make(map[string]map[string]int)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, s := range l.senders {
		if s.rate <= 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.send(ctx, s)
		}()
	}
	report := time.NewTicker(l.interval)
	defer report.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-report.C:
			l.report()
		}
	}
}

func (l *demoLoad) send(ctx context.Context, s demoSender) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / s.rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.one(ctx, s)
			}()
		}
	}
}

func (l *demoLoad) one(ctx context.Context, s demoSender) {
	body := fmt.Sprintf(`{"model":"gpt-4o","max_tokens":%d,"messages":[{"role":"user","content":"Tell me about rivers."}]}`, s.maxTokens)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	what := resp.Header.Get("X-Sluice-Backend")
	switch {
	case resp.StatusCode == http.StatusTooManyRequests && what == "":
		what = "refused by its limit (429)"
	case resp.StatusCode != http.StatusOK:
		what = fmt.Sprintf("%s (%d)", what, resp.StatusCode)
	}
	l.mu.Lock()
	if l.counts[s.name] == nil {
		l.counts[s.name] = make(map[string]int)
	}
	l.counts[s.name][what]++
	l.mu.Unlock()
}

func (l *demoLoad) report() {
	l.mu.Lock()
	counts := l.counts
	l.counts = make(map[string]map[string]int)
	l.mu.Unlock()
	var parts []string
	for _, s := range l.senders {
		c := counts[s.name]
		if len(c) == 0 {
			continue
		}
		var items []string
		for what, n := range c {
			items = append(items, fmt.Sprintf("%s %d", what, n))
		}
		sort.Strings(items)
		parts = append(parts, s.name+": "+strings.Join(items, ", "))
	}
	if len(parts) > 0 {
		fmt.Fprintf(l.out, "demo load, last %v: %s\n", l.interval, strings.Join(parts, "; "))
	}
}
