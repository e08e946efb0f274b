package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-gateway/sluice/internal/simulator"
)

// accessLog returns the gateway's request lines.
func accessLog(t *testing.T, f *fixture) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(f.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	return lines
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// TestStreamingUsageExact streams concurrently, with and without
// include_usage: clients that did not ask see no usage at all, those that
// did see it once, and the tokens Sluice counts equal, exactly, what the
// backend says it served.
func TestStreamingUsageExact(t *testing.T) {
	f := newFixture(t)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			withUsage := i%2 == 0
			body := fmt.Sprintf(`{"model":"gpt-4o","stream":true,"max_tokens":%d,"messages":[{"role":"user","content":"request %d"}]`, 5+i%7, i)
			if withUsage {
				body += `,"stream_options":{"include_usage":true}`
			}
			req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions", strings.NewReader(body+"}"))
			req.Header.Set("Api-Key", fxAlphaKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !strings.HasSuffix(string(raw), "data: [DONE]\n\n") {
				errs <- fmt.Errorf("request %d: incomplete stream (%v)", i, err)
				return
			}
			got := strings.Count(string(raw), `"usage"`)
			switch {
			case withUsage && (got == 0 || strings.Count(string(raw), `"prompt_tokens"`) != 1):
				errs <- fmt.Errorf("request %d asked for usage and got %d usage fields, %d usage chunks", i, got, strings.Count(string(raw), `"prompt_tokens"`))
			case !withUsage && got != 0:
				errs <- fmt.Errorf("request %d did not ask for usage and saw it %d times", i, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var charged int64
	for _, l := range accessLog(t, f) {
		if l["usage_estimated"] == true {
			t.Errorf("request %v was estimated; want the backend's usage", l["request_id"])
		}
		charged += num(l["prompt_tokens"]) + num(l["completion_tokens"])
	}
	var served int64
	for _, sim := range f.sims {
		for _, d := range sim.Stats().Deployments {
			served += d.TotalTokens
		}
	}
	if charged != served || served == 0 {
		t.Errorf("Sluice counted %d tokens; the backends served %d; want them equal", charged, served)
	}
}

// TestBrokenStreamEstimated: a stream cut before its usage chunk is charged
// the prompt plus the tokens of the chunks that arrived, marked estimated.
func TestBrokenStreamEstimated(t *testing.T) {
	f := newFixture(t)
	f.sims["ptu-swedencentral"].SetFaults(simulator.Faults{DropAfterChunks: 6})
	resp, _ := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey,
		`{"model":"gpt-4o","stream":true,"max_tokens":30,"messages":[{"role":"user","content":"tell me a story"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	lines := accessLog(t, f)
	if len(lines) != 1 {
		t.Fatalf("%d access-log lines; want 1", len(lines))
	}
	l := lines[0]
	st := f.sims["ptu-swedencentral"].Stats().Deployments["gpt-4o-ptu"]
	if l["usage_estimated"] != true || st.TruncatedStreams != 1 {
		t.Fatalf("log %v, simulator %+v; want an estimated charge for a truncated stream", l, st)
	}
	if num(l["prompt_tokens"]) != st.PromptTokens || num(l["completion_tokens"]) != st.CompletionTokens {
		t.Errorf("charged prompt %v completion %v; the backend delivered prompt %d completion %d",
			l["prompt_tokens"], l["completion_tokens"], st.PromptTokens, st.CompletionTokens)
	}
}
