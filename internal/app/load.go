package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// demoLoad sends a steady trickle of chat requests through the gateway as one
// subscription, so that the demo tells its story: the PTU backend fills its
// small token limit, answers 429, its breaker opens for the Retry-After and
// pay-as-you-go takes the traffic; then the subscription reaches its
// product's tokens-per-minute limit and is refused until the minute turns.
// It prints each of these turns as it sees it, and every interval a summary
// of where its requests went. No other subscription is ever used, so keys
// given to the user are never driven over their limits by it.
//
// Its fields are set before run and not changed after.
type demoLoad struct {
	url       string
	name, key string          // the subscription it sends as
	rate      float64         // requests per second
	maxTokens int             // each request's max_tokens
	ptu       map[string]bool // the backends that are PTU, by name
	providers map[string]bool // the backends of another provider (kind anthropic or gemini), by name
	interval  time.Duration
	out       io.Writer
	client    *http.Client
	now       func() time.Time

	mu         sync.Mutex     // guards what follows, and serialises writes to out
	seq        uint64         // requests sent
	counts     map[string]int // outcomes since the last summary
	lastServed uint64         // the newest request served
	offPTU     bool           // whether it was served by pay-as-you-go
	lastAnswer uint64         // the newest request served or refused by the limit
	limited    bool           // whether it was refused
	failover   bool           // whether it was served by another provider
}

func (l *demoLoad) run(ctx context.Context) {
	l.counts = make(map[string]int)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(time.Duration(float64(time.Second) / l.rate))
	defer tick.Stop()
	report := time.NewTicker(l.interval)
	defer report.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-report.C:
			l.report()
		case <-tick.C:
			l.mu.Lock()
			l.seq++
			seq := l.seq
			l.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.one(ctx, seq)
			}()
		}
	}
}

// one sends request number seq and records what became of it.
func (l *demoLoad) one(ctx context.Context, seq uint64) {
	body := fmt.Sprintf(`{"model":"gpt-4o","max_tokens":%d,"messages":[{"role":"user","content":"Tell me about rivers."}]}`, l.maxTokens)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+l.key)
	req.Header.Set("Content-Type", "application/json")
	// The same question every time: without this the response cache would
	// answer all but the first, and the load would reach no backend.
	req.Header.Set("Cache-Control", "no-store")
	resp, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.record(seq, "no answer", "", "")
		}
		return
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	backend := resp.Header.Get("X-Sluice-Backend")
	switch {
	case resp.StatusCode == http.StatusOK:
		l.record(seq, "served by "+backend, backend, "")
	case resp.StatusCode == http.StatusTooManyRequests && backend == "":
		// The gateway's own refusal: no backend was asked.
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		_ = json.Unmarshal(data, &e)
		l.record(seq, "refused by its limit (429)", "", e.Error.Message)
	default:
		what := fmt.Sprintf("answered %d", resp.StatusCode)
		if backend != "" {
			what += " by " + backend
		}
		l.record(seq, what, "", "")
	}
}

// record counts an outcome for the summary and prints a turn of the story:
// served is the backend that served the request, refusal the message of a
// limit's 429. A turn is told by a request newer than the one that told the
// last: a slow answer from before a turn does not undo it.
func (l *demoLoad) record(seq uint64, what, served, refusal string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[what]++
	say := func(format string, args ...any) {
		fmt.Fprintf(l.out, "%s  %s\n", l.now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
	}
	if (served != "" || refusal != "") && seq > l.lastAnswer {
		l.lastAnswer = seq
		switch limited := refusal != ""; {
		case limited && !l.limited:
			say("%s reached its limit and is refused with 429: %s", l.name, refusal)
		case !limited && l.limited:
			say("the minute turned: %s is served again", l.name)
		}
		l.limited = refusal != ""
	}
	if served != "" && seq > l.lastServed {
		l.lastServed = seq
		switch offPTU, failover := !l.ptu[served], l.providers[served]; {
		case failover && !l.failover:
			say("failover: the Azure OpenAI members are out, so another provider serves %s: %s", l.name, served)
		case failover:
		case offPTU && (!l.offPTU || l.failover):
			say("spillover: the PTU is full, so pay-as-you-go serves %s: %s", l.name, served)
		case !offPTU && l.offPTU:
			say("the PTU serves %s again: %s", l.name, served)
		}
		l.offPTU, l.failover = !l.ptu[served], l.providers[served]
	}
}

// report prints where the requests answered since the last report went.
func (l *demoLoad) report() {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	items := make([]string, 0, len(l.counts))
	for what, c := range l.counts {
		n += c
		items = append(items, fmt.Sprintf("%s %d", what, c))
	}
	clear(l.counts)
	if n == 0 {
		return
	}
	sort.Strings(items)
	fmt.Fprintf(l.out, "%s  last %v, %s: %d answered: %s\n", l.now().Format(time.TimeOnly), l.interval, l.name, n, strings.Join(items, ", "))
}
