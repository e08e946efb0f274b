package app

import "testing"

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
