package simulator

import (
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// The latency tests run in a synctest bubble: timers use a fake clock that
// advances only when every goroutine is blocked, so they check exact
// durations without sleeping.

func TestLatencyNonStreaming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Options{Latency: Latency{Base: 200 * time.Millisecond, PerToken: 10 * time.Millisecond}})
		for _, tc := range []struct {
			path, body string
			want       time.Duration
		}{
			{chatPath, `{"messages":[{"role":"user","content":"hi"}],"max_tokens":30}`, 200*time.Millisecond + 30*10*time.Millisecond},
			{"/openai/deployments/text-embedding-3-small/embeddings", `{"input":"hi"}`, 200 * time.Millisecond},
		} {
			start := time.Now()
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body)))
			if got := time.Since(start); rec.Code != 200 || got != tc.want {
				t.Errorf("%s: %d after %v; want 200 after %v", tc.path, rec.Code, got, tc.want)
			}
		}
	})
}

func TestLatencyStreaming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Options{Latency: Latency{Base: 100 * time.Millisecond, PerToken: 20 * time.Millisecond}})
		start := time.Now()
		w := &timedWriter{ResponseRecorder: httptest.NewRecorder(), start: start}
		s.ServeHTTP(w, httptest.NewRequest("POST", chatPath,
			strings.NewReader(`{"stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":3}`)))
		// Prompt filter and role at 100ms, then a token every 20ms, then the
		// finish and [DONE] right after the last token.
		want := []time.Duration{100, 100, 120, 140, 160, 160, 160}
		if len(w.at) != len(want) {
			t.Fatalf("got %d writes at %v; want %d", len(w.at), w.at, len(want))
		}
		for i := range want {
			if w.at[i] != want[i]*time.Millisecond {
				t.Errorf("event %d sent at %v; want %v", i, w.at[i], want[i]*time.Millisecond)
			}
		}
	})
}

func TestLatencyStdDev(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Options{Latency: Latency{PerToken: 10 * time.Millisecond, PerTokenStdDev: 5 * time.Millisecond}})
		var total time.Duration
		const runs = 20
		for range runs {
			start := time.Now()
			s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", chatPath,
				strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":50}`)))
			total += time.Since(start)
		}
		// 50 tokens of N(10ms, 5ms): the mean of 20 runs is 500ms ± a few ms.
		if mean := total / runs; mean < 470*time.Millisecond || mean > 530*time.Millisecond {
			t.Errorf("mean reply time %v; want about 500ms", mean)
		}
	})
}

// timedWriter records when each write happened, relative to start.
type timedWriter struct {
	*httptest.ResponseRecorder
	start time.Time
	at    []time.Duration
}

func (w *timedWriter) Write(b []byte) (int, error) {
	w.at = append(w.at, time.Since(w.start))
	return w.ResponseRecorder.Write(b)
}
