package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// demoQuestion and demoParaphrase are close enough for the reference
// config's score_threshold of 0.05 with the simulator's word embeddings
// (one word more of about twenty: distance about 0.02).
const (
	demoQuestion   = "What are the three longest rivers in Europe and through which countries and cities does each of them flow"
	demoParaphrase = "Please, what are the three longest rivers in Europe and through which countries and cities does each of them flow?"
)

// demoSemantic shows the semantic cache once, when the subscription's
// product has one: a question answered by a backend, then a paraphrase
// answered from the cache, with the tokens it saved. It prints nothing when
// the product does not cache.
func demoSemantic(ctx context.Context, client *http.Client, url, key string, out io.Writer) {
	ask := func(q string) (cache, score string, saved int64, ok bool) {
		body := `{"model":"gpt-4o","max_tokens":60,"messages":[{"role":"user","content":"` + q + `"}]}`
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
		if err != nil {
			return "", "", 0, false
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return "", "", 0, false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.Header.Get("X-Sluice-Cache"), resp.Header.Get("X-Sluice-Cache-Score"),
			gjson.GetBytes(b, "usage.total_tokens").Int(), resp.StatusCode == http.StatusOK
	}
	// The gateway may still be starting: the first question is retried
	// for a few seconds.
	var cache string
	ok := false
	for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline) && ctx.Err() == nil; {
		if cache, _, _, ok = ask(demoQuestion); !ok {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ok || cache == "" {
		return // the product does not cache
	}
	cache, score, saved, ok := ask(demoParaphrase)
	if !ok {
		return
	}
	now := time.Now().Format(time.TimeOnly)
	if cache == "hit-semantic" {
		fmt.Fprintf(out, "%s  semantic cache: a paraphrase was answered from the cache (hit-semantic, distance %s), saving %d tokens\n", now, score, saved)
		return
	}
	fmt.Fprintf(out, "%s  semantic cache: the paraphrase was a %s\n", now, cache)
}
