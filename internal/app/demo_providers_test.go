package app

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/simulator"
)

func TestDemoSimulatorsFollowTheConfig(t *testing.T) {
	if got := len(demoSimulatorsOf([]byte("backends:\n  - name: ptu-swedencentral\n"))); got != len(demoBackends) {
		t.Errorf("%d simulators for a config without providers; want %d", got, len(demoBackends))
	}
	ref := []byte("backends:\n  - name: claude\n    kind: anthropic\n  - name: gemini\n    kind: gemini\n")
	sims := demoSimulatorsOf(ref)
	if len(sims) != len(demoBackends)+2 || sims[len(sims)-2].name != "claude" || sims[len(sims)-1].name != "gemini" {
		t.Errorf("simulators %v; want the Azure ones, claude and gemini", sims)
	}
	if len(demoBackends) != 3 {
		t.Errorf("demoBackends was changed: %d", len(demoBackends))
	}
}

// TestDemoFailover runs the demo as a user does: its banner shows the
// simulated Anthropic backend of the chat pool, and its output a request
// served by it while every Azure OpenAI member answered 429.
func TestDemoFailover(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	d := startDemo(t, "--load", "0", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--latency=false")
	if !regexp.MustCompile(`(?m)^  backend   claude +http://127\.0\.0\.1:\d+ +Anthropic Messages API, translated \(kind anthropic\)`).MatchString(d.banner) {
		t.Errorf("the banner does not show the claude backend:\n%s", d.banner)
	}
	want := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  failover: ptu-swedencentral, payg-westeurope, payg-francecentral answered 429 ` +
		`\(Retry-After 5s\), so claude \(kind anthropic, translated\) served team-alpha's request$`)
	waitFor(t, d, "the demo says that claude served a request", func() bool { return want.MatchString(d.stdout.String()) })
	// The faults are cleared: the user's key is served by the Azure members again.
	curl := printedCurls(t, d.banner)[0]
	waitFor(t, d, "the user's request served by an Azure OpenAI member after the failover", func() bool {
		status, body, err := runCurl(t, curl)
		return err == nil && status == http.StatusOK && strings.Contains(body, `"choices"`) &&
			!strings.Contains(body, "claude")
	})
}

// TestDemoFaultsPutBack: the failover moment puts a member's faults back,
// unless the dashboard changed them meanwhile.
func TestDemoFaultsPutBack(t *testing.T) {
	d := &demoFaults{}
	d.add("ptu", "swedencentral", simulator.New(simulator.Options{}))
	was, err := d.set("ptu", simulator.Faults{RetryAfter: time.Second}, "rate_limited", nil)
	if err != nil || was.fault != "none" {
		t.Fatalf("set = %+v, %v; want it was none", was, err)
	}
	if _, _ = d.set("ptu", was.faults, was.fault, &was); d.Backends()[0].Fault != "none" {
		t.Errorf("fault %q after putting it back; want none", d.Backends()[0].Fault)
	}
	was, _ = d.set("ptu", simulator.Faults{RetryAfter: time.Second}, "rate_limited", nil)
	if err := d.Inject("ptu", "errors"); err != nil {
		t.Fatal(err)
	}
	if _, _ = d.set("ptu", was.faults, was.fault, &was); d.Backends()[0].Fault != "errors" {
		t.Errorf("fault %q; want the dashboard's errors kept", d.Backends()[0].Fault)
	}
	if _, err := d.set("nope", simulator.Faults{}, "none", nil); err == nil {
		t.Errorf("set on no backend: no error")
	}
}
