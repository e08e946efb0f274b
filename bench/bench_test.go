package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestSmoke builds sluice and runs every scenario of the harness for a
// moment (a few seconds in all), so that it cannot rot. It asserts that the
// report is complete and that no request failed, never a timing: CI machines
// are too noisy for that. The long runs are `go run ./bench`.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sluice and starts the gateway and simulators")
	}
	o, err := parseOptions([]string{"-smoke", "-out", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := run(ctx, o, logWriter{t})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	md := rep.markdown()
	for _, section := range []string{"## Machine", "## Summary", "## Targets", "## Scenario 1:", "## Scenario 2:",
		"## Scenario 3:", "## Scenario 4:", "## Scenario 5:", "## Scenario 6:", "## Scenario 7:", "## Scenario 8:",
		"## Scenario 10a:", "## Scenario 10b:", "## Targets (issue 16", "## Errors"} {
		if !strings.Contains(md, section) {
			t.Errorf("report has no %q section:\n%s", section, md)
		}
	}
	if n := rep.errors(); n > 0 {
		t.Errorf("got %d failed requests; want 0:\n%s", n, md)
	}
	for _, s := range rep.scenarios {
		for _, m := range s.byTarget {
			if m.all.requests == 0 {
				t.Errorf("scenario %s, %s: got no successful requests", s.id, m.target.name)
			}
		}
	}
	for _, g := range rep.guardChecks {
		if want := map[string]string{"10a": "prompt", "10b": "completion"}[g.scenario]; g.checks[want].count == 0 {
			t.Errorf("scenario %s, %s: the gateway counted no %s check: %+v", g.scenario, g.name, want, g.checks)
		}
	}
	if len(rep.guardChecks) != 3 {
		t.Errorf("scenario 10: got the check times of %d gateways; want 3", len(rep.guardChecks))
	}
	if len(rep.memory) == 0 || rep.memory[0].opened == 0 {
		t.Errorf("scenario 5: no stream was opened")
	}
	if s := rep.soak; s == nil || s.chat.requests == 0 || s.streams.requests == 0 || len(s.samples) < 2 {
		t.Errorf("scenario 8: the soak sent nothing or sampled no memory: %+v", s)
	}
}

// logWriter sends the harness's progress lines to the test's log, where
// their times show which step a slow or failed run was in.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {0.999, 999 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if diff := got - tc.want; diff < -tc.want/50 || diff > tc.want/50 {
			t.Errorf("quantile(%g) = %v; want %v within 2%%", tc.q, got, tc.want)
		}
	}
}
