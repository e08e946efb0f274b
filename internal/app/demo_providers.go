package app

import (
	"bytes"

	"github.com/sluice-gateway/sluice/examples"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// demoProviderBackends are the simulated Anthropic and Gemini backends of
// the reference config (kinds anthropic and gemini, whose APIs Sluice
// translates; the simulator speaks both). The demo runs each one that
// examples/sluice.yaml names, so that it takes its pool's traffic when the
// Azure members are out.
var demoProviderBackends = []demoBackend{
	{
		name: "claude", addr: "127.0.0.1:9106", region: "eastus", keyVar: "ANTHROPIC_API_KEY",
		deployments: map[string]simulator.Deployment{
			"claude-haiku-4-5": {Model: "claude-haiku-4-5-20251001", TokensPerMinute: 100000, RequestsPerMinute: 600},
		},
	},
	{
		name: "gemini", addr: "127.0.0.1:9108", region: "europe-west4", keyVar: "GEMINI_API_KEY",
		deployments: map[string]simulator.Deployment{
			"gemini-2.5-flash": {Model: "gemini-2.5-flash", TokensPerMinute: 100000, RequestsPerMinute: 600},
		},
	},
}

// demoSimulators are the demo's simulated backends: the Azure OpenAI ones,
// and the provider ones examples/sluice.yaml names.
func demoSimulators() []demoBackend { return demoSimulatorsOf(examples.Reference) }

// demoSimulatorsOf is demoSimulators for the config ref.
func demoSimulatorsOf(ref []byte) []demoBackend {
	sims := demoBackends
	for _, db := range demoProviderBackends {
		if bytes.Contains(ref, []byte("- name: "+db.name+"\n")) {
			sims = append(sims[:len(sims):len(sims)], db)
		}
	}
	return sims
}
