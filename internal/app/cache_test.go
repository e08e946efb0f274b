package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/sluice-gateway/sluice/internal/redistest"
	"github.com/sluice-gateway/sluice/internal/simulator"
	"github.com/sluice-gateway/sluice/internal/usage"
)

const fxBetaCacheKey = "sk-fixture-beta-cache-0123456789"

// cacheConfig is a fixture config (the same five %s as fxConfigYAML) whose
// product caches, exact and semantic; gpt-4o is served by
// payg-francecentral alone, without retries, so every backend call shows.
const cacheConfig = `
server:
  listen: 127.0.0.1:0
  shutdown_grace: %s
admin:
  listen: 127.0.0.1:0
  api_key: ${FX_ADMIN_KEY}
usage:
  store: "${FX_USAGE_STORE}"
  journal: "${FX_USAGE_JOURNAL}"
  prices:
    models:
      gpt-4o: { input: 2.5, output: 10 }
metrics:
  prometheus: true
cache:
  store: memory
backends:
  - name: ptu-swedencentral
    kind: azure-openai
    url: %s
    auth: { api_key: "${FX_PTU_KEY}" }
    deployments: { gpt-4o: gpt-4o-ptu }
  - name: payg-westeurope
    kind: azure-openai
    url: %s
    auth: { api_key: "${FX_WEST_KEY}" }
    deployments: { text-embedding-3-small: text-embedding-3-small }
  - name: payg-francecentral
    kind: openai
    url: %s
    auth: { api_key: "${FX_FRANCE_KEY}" }
    deployments: { gpt-4o: gpt-4o }
pools:
  - name: chat
    members: [{ backend: payg-francecentral }]
    retry: { attempts: 1 }
  - name: embeddings
    members: [{ backend: payg-westeurope }]
models:
  gpt-4o: chat
  text-embedding-3-small: embeddings
products:
  - name: cached
    models: [gpt-4o, text-embedding-3-small]
    limits:
      - { tokens_per_minute: 1000000, requests_per_minute: 1000 }
    cache:
      vary_by: [subscription]
      exact: { ttl: 1h }
      semantic:
        embeddings: text-embedding-3-small
        score_threshold: 0.1
        ignore_system_messages: true
        max_message_count: 10
        duration: 10m
subscriptions:
  - name: team-alpha
    product: cached
    keys: ["${FX_ALPHA_KEY}"]
  - name: team-beta
    product: cached
    keys: ["` + fxBetaCacheKey + `"]
%s`

// chatCalls counts the chat requests that reached payg-francecentral.
func (f *fixture) chatCalls() int {
	n := 0
	for _, r := range f.seen.all() {
		if r.backend == "payg-francecentral" && strings.HasSuffix(r.path, "/chat/completions") {
			n++
		}
	}
	return n
}

type rawAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (f *fixture) post(t *testing.T, key, body string, header ...string) rawAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Logf("reading the answer: %v", err)
	}
	return rawAnswer{resp.StatusCode, resp.Header, b}
}

func TestCacheExactSDK(t *testing.T) {
	f := newFixture(t, withConfig(cacheConfig))
	client := openai.NewClient(option.WithBaseURL(f.url+"/v1"), option.WithAPIKey(fxAlphaKey), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{
		Model:     "gpt-4o",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Say something about rivers.")},
		MaxTokens: openai.Int(30),
	}
	var first, second *http.Response
	c1, err := client.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&first))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := client.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&second))
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Header.Get("X-Sluice-Cache"); got != "miss" {
		t.Errorf("first x-sluice-cache = %q; want miss", got)
	}
	if got := second.Header.Get("X-Sluice-Cache"); got != "hit-exact" {
		t.Errorf("second x-sluice-cache = %q; want hit-exact", got)
	}
	if c1.ID != c2.ID || c1.Choices[0].Message.Content != c2.Choices[0].Message.Content {
		t.Errorf("the hit differs from the answer: %s %q vs %s %q", c1.ID, c1.Choices[0].Message.Content, c2.ID, c2.Choices[0].Message.Content)
	}
	if second.Header.Get("X-Ratelimit-Remaining-Requests") == "" {
		t.Error("the hit has no x-ratelimit-remaining-requests")
	}
	if n := f.chatCalls(); n != 1 {
		t.Errorf("the backend saw %d calls; want 1", n)
	}

	// Each change that shapes the answer misses.
	for name, p := range map[string]func(*openai.ChatCompletionNewParams){
		"system prompt": func(p *openai.ChatCompletionNewParams) {
			p.Messages = []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be verbose."), openai.UserMessage("Say something about rivers.")}
		},
		"tools": func(p *openai.ChatCompletionNewParams) {
			p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_river"})}
		},
		"response_format": func(p *openai.ChatCompletionNewParams) {
			p.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfText: &shared.ResponseFormatTextParam{}}
		},
	} {
		q := params
		p(&q)
		var resp *http.Response
		if _, err := client.Chat.Completions.New(context.Background(), q, option.WithResponseInto(&resp)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := resp.Header.Get("X-Sluice-Cache"); got != "miss" {
			t.Errorf("%s changed: x-sluice-cache = %q; want miss", name, got)
		}
	}
	beta := openai.NewClient(option.WithBaseURL(f.url+"/v1"), option.WithAPIKey(fxBetaCacheKey), option.WithMaxRetries(0))
	var resp *http.Response
	if _, err := beta.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&resp)); err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Sluice-Cache"); got != "miss" {
		t.Errorf("another subscription: x-sluice-cache = %q; want miss (vary_by subscription)", got)
	}
}

func TestCacheExactRawBytes(t *testing.T) {
	f := newFixture(t, withConfig(cacheConfig))
	a := f.post(t, fxAlphaKey, `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"Hello there"}]}`)
	b := f.post(t, fxAlphaKey, "{ \"messages\": [ {\"content\":\"Hello there\", \"role\":\"user\"} ],\n \"max_tokens\": 20, \"model\": \"gpt-4o\", \"user\": \"bob\" }")
	if a.status != 200 || b.status != 200 {
		t.Fatalf("statuses %d, %d", a.status, b.status)
	}
	if b.header.Get("X-Sluice-Cache") != "hit-exact" || !bytes.Equal(a.body, b.body) {
		t.Errorf("reordered request: cache %q, body equal %v; want hit-exact, the same bytes", b.header.Get("X-Sluice-Cache"), bytes.Equal(a.body, b.body))
	}
	c := f.post(t, fxAlphaKey, `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"Hello there"}]}`, "Cache-Control", "no-cache")
	if c.header.Get("X-Sluice-Cache") != "bypass" {
		t.Errorf("no-cache: x-sluice-cache = %q; want bypass", c.header.Get("X-Sluice-Cache"))
	}
	d := f.post(t, fxAlphaKey, `{"model":"gpt-4o","max_tokens":21,"messages":[{"role":"user","content":"Hello there"}]}`, "Cache-Control", "no-store")
	e := f.post(t, fxAlphaKey, `{"model":"gpt-4o","max_tokens":21,"messages":[{"role":"user","content":"Hello there"}]}`)
	if d.header.Get("X-Sluice-Cache") != "bypass" || e.header.Get("X-Sluice-Cache") != "miss" {
		t.Errorf("no-store then plain: %q, %q; want bypass, miss (not stored)", d.header.Get("X-Sluice-Cache"), e.header.Get("X-Sluice-Cache"))
	}
	if n := f.chatCalls(); n != 4 {
		t.Errorf("the backend saw %d calls; want 4 (miss, no-cache, no-store, miss)", n)
	}
}

func TestCacheStreamReplay(t *testing.T) {
	f := newFixture(t, withConfig(cacheConfig))
	for _, withUsage := range []bool{false, true} {
		body := `{"model":"gpt-4o","max_tokens":25,"stream":true,"messages":[{"role":"user","content":"Stream about lakes"}]}`
		if withUsage {
			body = `{"model":"gpt-4o","max_tokens":25,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Stream about lakes"}]}`
		}
		a := f.post(t, fxAlphaKey, body)
		b := f.post(t, fxAlphaKey, body)
		hasUsage := bytes.Contains(b.body, []byte(`"usage":{`))
		if b.header.Get("X-Sluice-Cache") != "hit-exact" || !bytes.Equal(a.body, b.body) || hasUsage != withUsage ||
			!bytes.HasSuffix(b.body, []byte("data: [DONE]\n\n")) {
			t.Errorf("include_usage %v: cache %q, same bytes %v, usage chunk %v, ends with [DONE] %v; want hit-exact, true, %v, true\nmiss:\n%s\nhit:\n%s",
				withUsage, b.header.Get("X-Sluice-Cache"), bytes.Equal(a.body, b.body), hasUsage, bytes.HasSuffix(b.body, []byte("data: [DONE]\n\n")), withUsage, a.body, b.body)
		}
		if bytes.Contains(b.body, []byte(`"usage":null`)) != withUsage {
			t.Errorf("include_usage %v: \"usage\":null in the hit's chunks = %v", withUsage, !withUsage)
		}
	}
	if n := f.chatCalls(); n != 1 {
		t.Errorf("the backend saw %d calls; want 1 (one entry serves streams with and without include_usage)", n)
	}
}

func TestCacheNeverStoresFailures(t *testing.T) {
	f := newFixture(t, withConfig(cacheConfig))
	sim := f.sims["payg-francecentral"]
	body := `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"Failing"}]}`
	stream := `{"model":"gpt-4o","max_tokens":200,"stream":true,"messages":[{"role":"user","content":"Failing stream"}]}`
	for name, faults := range map[string]simulator.Faults{
		"500": {ErrorRate: 1, ErrorStatus: 500},
		"429": {RetryAfter: 1},
	} {
		sim.SetFaults(faults)
		if a := f.post(t, fxAlphaKey, body); a.status < 400 {
			t.Fatalf("%s: status %d", name, a.status)
		}
		sim.SetFaults(simulator.Faults{})
		if a := f.post(t, fxAlphaKey, body); a.status != 200 || a.header.Get("X-Sluice-Cache") != "miss" {
			t.Errorf("after a %s: status %d, cache %q; want 200 miss (the error was not stored)", name, a.status, a.header.Get("X-Sluice-Cache"))
		}
		_, _ = f.gw.cache.Store().Clear(context.Background(), "")
	}
	sim.SetFaults(simulator.Faults{DropAfterChunks: 3})
	f.post(t, fxAlphaKey, stream)
	sim.SetFaults(simulator.Faults{})
	if a := f.post(t, fxAlphaKey, stream); a.header.Get("X-Sluice-Cache") != "miss" {
		t.Errorf("after a broken stream: cache %q; want miss", a.header.Get("X-Sluice-Cache"))
	}
}

func TestCacheCoalescesConcurrentMisses(t *testing.T) {
	f := newFixture(t, withConfig(cacheConfig))
	body := `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"Everyone asks this"}]}`
	var wg sync.WaitGroup
	bodies := make([][]byte, 32)
	for i := range bodies {
		wg.Go(func() {
			a := f.post(t, fxAlphaKey, body)
			if a.status != 200 {
				t.Errorf("request %d: status %d", i, a.status)
			}
			bodies[i] = a.body
		})
	}
	wg.Wait()
	if n := f.chatCalls(); n != 1 {
		t.Errorf("32 identical concurrent misses made %d backend calls; want 1", n)
	}
	for i := range bodies {
		if !bytes.Equal(bodies[i], bodies[0]) {
			t.Errorf("answer %d differs from answer 0", i)
		}
	}
}

func TestCacheHitSpendsNoTokens(t *testing.T) {
	f := newFixture(t, withConfig(cacheConfig))
	body := `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"Count me once"}]}`
	a := f.post(t, fxAlphaKey, body)
	b := f.post(t, fxAlphaKey, body)
	ta, tb := a.header.Get("X-Ratelimit-Remaining-Tokens"), b.header.Get("X-Ratelimit-Remaining-Tokens")
	ra, rb := a.header.Get("X-Ratelimit-Remaining-Requests"), b.header.Get("X-Ratelimit-Remaining-Requests")
	if b.header.Get("X-Sluice-Cache") != "hit-exact" || tb != "" || ra != "999" || rb != "998" {
		t.Errorf("miss: tokens %q requests %q; hit: %s, tokens %q requests %q; want hit-exact, no token header, requests 999 then 998",
			ta, ra, b.header.Get("X-Sluice-Cache"), tb, rb)
	}
	c := f.post(t, fxAlphaKey, `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"Another question"}]}`)
	if tc := c.header.Get("X-Ratelimit-Remaining-Tokens"); tc == "" {
		t.Error("no remaining tokens on a miss")
	}
	var rows []usage.Row
	var hit, miss *usage.Row
	waitFor(t, nil, "the ledger has the hit and the misses", func() bool {
		var err error
		rows, err = f.gw.obs.ledger.Report(context.Background(), usage.Query{GroupBy: []string{"subscription", "cache"}})
		n := int64(0)
		for _, r := range rows {
			n += r.Requests
		}
		return err == nil && n >= 3
	})
	for i := range rows {
		if rows[i].Group["subscription"] != "team-alpha" {
			continue
		}
		switch rows[i].Group["cache"] {
		case "hit-exact":
			hit = &rows[i]
		case "miss":
			miss = &rows[i]
		}
	}
	if hit == nil || miss == nil {
		t.Fatalf("report rows %+v; want team-alpha hit-exact and miss", rows)
	}
	if hit.Requests != 1 || hit.TotalTokens != 0 || hit.Cost != 0 || hit.SavedTokens == 0 || hit.SavedCost == 0 {
		t.Errorf("hit row %+v; want 1 request, no tokens, no cost, tokens and cost saved", *hit)
	}
	if miss.TotalTokens == 0 {
		t.Errorf("miss row %+v; want tokens", *miss)
	}
}

func TestCacheSemantic(t *testing.T) {
	f := newFixture(t, withConfig(cacheConfig))
	ask := func(q string) rawAnswer {
		return f.post(t, fxAlphaKey, `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"system","content":"Answer briefly."},{"role":"user","content":`+strconvQuote(q)+`}]}`)
	}
	a := ask("What is the capital city of France")
	b := ask("What is the capital city of France please")
	c := ask("How tall is the Eiffel tower in metres")
	if a.header.Get("X-Sluice-Cache") != "miss" {
		t.Errorf("first question: %q; want miss", a.header.Get("X-Sluice-Cache"))
	}
	if got := b.header.Get("X-Sluice-Cache"); got != "hit-semantic" || !bytes.Equal(a.body, b.body) {
		t.Errorf("paraphrase: %q (score %q), same body %v; want hit-semantic with the first answer", got, b.header.Get("X-Sluice-Cache-Score"), bytes.Equal(a.body, b.body))
	}
	t.Logf("paraphrase distance %s", b.header.Get("X-Sluice-Cache-Score"))
	if got := c.header.Get("X-Sluice-Cache"); got != "miss" {
		t.Errorf("different question: %q (score %q); want miss", got, c.header.Get("X-Sluice-Cache-Score"))
	}
	if n := f.chatCalls(); n != 2 {
		t.Errorf("the chat backend saw %d calls; want 2", n)
	}
	waitFor(t, nil, "the embedding calls are the gateway's in the ledger", func() bool {
		rows, err := f.gw.obs.ledger.Report(context.Background(), usage.Query{GroupBy: []string{"subscription", "model"}})
		if err != nil {
			return false
		}
		for _, r := range rows {
			if r.Group["subscription"] == gatewaySubscription && r.Group["model"] == "text-embedding-3-small" && r.Requests == 3 {
				return true
			}
		}
		return false
	})
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestCacheRedisTwoInstances: two gateways share one redis-server: an
// answer stored through A is a hit through B, exact and semantic; with Redis
// stopped no request fails and the misses are counted; once it is back,
// hits again.
func TestCacheRedisTwoInstances(t *testing.T) {
	srv := redistest.Start(t)
	cfg := strings.Replace(cacheConfig, "cache:\n  store: memory", "cache:\n  store: "+srv.URL(), 1)
	a := newFixture(t, withConfig(cfg))
	b := newFixture(t, withConfig(cfg))
	q := `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"What is the capital city of France"}]}`
	para := `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"What is the capital city of France please"}]}`
	stream := `{"model":"gpt-4o","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"Shared stream"}]}`
	ra := a.post(t, fxAlphaKey, q)
	sa := a.post(t, fxAlphaKey, stream)
	rb := b.post(t, fxAlphaKey, q)
	sb := b.post(t, fxAlphaKey, stream)
	if rb.header.Get("X-Sluice-Cache") != "hit-exact" || !bytes.Equal(ra.body, rb.body) {
		t.Errorf("through B: %q, same body %v; want hit-exact, the same bytes", rb.header.Get("X-Sluice-Cache"), bytes.Equal(ra.body, rb.body))
	}
	if sb.header.Get("X-Sluice-Cache") != "hit-exact" || !bytes.Equal(sa.body, sb.body) {
		t.Errorf("stream through B: %q, same bytes %v; want hit-exact, true", sb.header.Get("X-Sluice-Cache"), bytes.Equal(sa.body, sb.body))
	}
	var pb rawAnswer
	waitFor(t, nil, "B finds A's answer semantically", func() bool {
		pb = b.post(t, fxAlphaKey, para)
		return pb.header.Get("X-Sluice-Cache") == "hit-semantic"
	})
	if !bytes.Equal(pb.body, ra.body) {
		t.Error("the semantic hit through B is not A's answer")
	}
	if n := b.chatCalls(); n != 0 {
		t.Errorf("B's backend saw %d chat calls; want 0", n)
	}

	srv.Stop()
	for i := range 3 {
		r := a.post(t, fxAlphaKey, q)
		if r.status != 200 || r.header.Get("X-Sluice-Cache") != "miss" {
			t.Errorf("Redis down, request %d: status %d, cache %q; want 200 miss", i, r.status, r.header.Get("X-Sluice-Cache"))
		}
	}
	if m := scrape(t, a.admin, "sluice_cache_store_errors_total"); m < 3 {
		t.Errorf("sluice_cache_store_errors_total = %v; want at least 3", m)
	}
	srv.Restart()
	waitFor(t, nil, "hits again once Redis is back", func() bool {
		a.post(t, fxAlphaKey, q)
		return b.post(t, fxAlphaKey, q).header.Get("X-Sluice-Cache") == "hit-exact"
	})
}

// scrape reads one unlabelled sample from the admin listener's /metrics.
func scrape(t *testing.T, admin, name string) float64 {
	t.Helper()
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// TestDemoSemantic: the demo's question and paraphrase are a semantic hit
// at the reference config's threshold of 0.05.
func TestDemoSemantic(t *testing.T) {
	cfg := strings.Replace(cacheConfig, "score_threshold: 0.1", "score_threshold: 0.05", 1)
	f := newFixture(t, withConfig(cfg))
	var out bytes.Buffer
	demoSemantic(context.Background(), http.DefaultClient, f.url, fxAlphaKey, &out)
	if !strings.Contains(out.String(), "hit-semantic") || !strings.Contains(out.String(), "saving ") || strings.Contains(out.String(), "saving 0 ") {
		t.Errorf("demo printed %q; want a semantic hit with the tokens saved", out.String())
	}
	t.Log(out.String())
}

// TestCacheCoalescesStreams: identical streams in flight together make one
// backend call, and each client gets the stream it asked for, without the
// usage chunk it did not ask for.
func TestCacheCoalescesStreams(t *testing.T) {
	f := newFixture(t, withConfig(cacheConfig), withLatency(simulator.Latency{PerToken: 5 * time.Millisecond}))
	body := `{"model":"gpt-4o","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"Streams together"}]}`
	var wg sync.WaitGroup
	bodies := make([][]byte, 8)
	for i := range bodies {
		wg.Go(func() { bodies[i] = f.post(t, fxAlphaKey, body).body })
	}
	wg.Wait()
	if n := f.chatCalls(); n != 1 {
		t.Errorf("8 identical streams made %d backend calls; want 1", n)
	}
	for i, b := range bodies {
		if !bytes.Equal(b, bodies[0]) || bytes.Contains(b, []byte(`"usage"`)) || !bytes.HasSuffix(b, []byte("data: [DONE]\n\n")) {
			t.Errorf("stream %d: same as 0 %v, has usage %v; want the same, no usage, ending [DONE]:\n%s", i, bytes.Equal(b, bodies[0]), bytes.Contains(b, []byte(`"usage"`)), b)
		}
	}
}

// TestCacheHitCountsAgainstRequestsPerMinute: a hit is one request against
// requests_per_minute, refused with 429 past it.
func TestCacheHitCountsAgainstRequestsPerMinute(t *testing.T) {
	cfg := strings.Replace(cacheConfig, "requests_per_minute: 1000", "requests_per_minute: 2", 1)
	f := newFixture(t, withConfig(cfg))
	body := `{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"Limited"}]}`
	a, b, c := f.post(t, fxAlphaKey, body), f.post(t, fxAlphaKey, body), f.post(t, fxAlphaKey, body)
	if a.status != 200 || b.status != 200 || b.header.Get("X-Sluice-Cache") != "hit-exact" || c.status != 429 {
		t.Errorf("statuses %d, %d (%s), %d; want 200, 200 (hit-exact), 429", a.status, b.status, b.header.Get("X-Sluice-Cache"), c.status)
	}
}

// TestCacheResponsesAndEmbeddings: the Responses API (streamed or not) and
// embeddings are cached too.
func TestCacheResponsesAndEmbeddings(t *testing.T) {
	f := newFixture(t, withConfig(cacheConfig))
	do := func(path, body string) rawAnswer {
		req, _ := http.NewRequest(http.MethodPost, f.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+fxAlphaKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return rawAnswer{resp.StatusCode, resp.Header, b}
	}
	for _, c := range []struct{ name, path, body string }{
		{"responses", "/v1/responses", `{"model":"gpt-4o","input":"Name a river","max_output_tokens":20}`},
		{"responses stream", "/v1/responses", `{"model":"gpt-4o","input":"Name a lake","max_output_tokens":20,"stream":true}`},
		{"embeddings", "/v1/embeddings", `{"model":"text-embedding-3-small","input":"a river"}`},
	} {
		a, b := do(c.path, c.body), do(c.path, c.body)
		if a.status != 200 || b.header.Get("X-Sluice-Cache") != "hit-exact" || !bytes.Equal(a.body, b.body) {
			t.Errorf("%s: statuses %d, %d, second %q, same bytes %v; want 200, hit-exact, the same bytes", c.name, a.status, b.status,
				b.header.Get("X-Sluice-Cache"), bytes.Equal(a.body, b.body))
		}
	}
}
