package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/examples"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// demoProviderBackends are the simulated Anthropic and Gemini backends of
// the reference config (kinds anthropic and gemini, whose APIs Sluice
// translates; the simulator speaks both). The demo runs each one that
// examples/sluice.yaml names, so that it takes its pool's traffic when the
// Azure members are out. claude is in westeurope, as examples/sluice.yaml
// has it (the reference's eastus is outside product standard's regions).
var demoProviderBackends = []demoBackend{
	{
		name: "claude", addr: "127.0.0.1:9106", region: "westeurope", keyVar: "ANTHROPIC_API_KEY",
		deployments: map[string]simulator.Deployment{
			// A high limit: requests without max_tokens cost the backend's
			// default_max_tokens (4,096) each, and while the Azure members
			// are out every request of the pool comes here.
			"claude-haiku-4-5": {Model: "claude-haiku-4-5-20251001", TokensPerMinute: 2000000, RequestsPerMinute: 4000},
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

// isProviderKind reports whether backends of kind speak another provider's
// API, which Sluice translates to.
func isProviderKind(kind string) bool { return kind == "anthropic" || kind == "gemini" }

// providerBackends are cfg's backends of another provider's kind, by name.
func providerBackends(cfg *config.Config) map[string]bool {
	m := map[string]bool{}
	for _, b := range cfg.Backends {
		if isProviderKind(b.Kind) {
			m[b.Name] = true
		}
	}
	return m
}

// demoFailoverRetryAfter is the Retry-After of the 429s the failover moment
// injects: the Azure members' breakers open for that long, and then the
// demo's story goes on as before.
const demoFailoverRetryAfter = 5 * time.Second

// showFailover shows, once, a provider backend taking over: it makes every
// other member of model's pool answer 429 with Retry-After for model's
// deployment (the simulators' fault injection), sends requests as subscription sub (key) until one is served by a provider
// backend, prints which (from x-sluice-backend), clears the faults and waits
// for the Retry-After to pass. The PTU-like members go out first, so that a
// request from anyone else meanwhile is served by pay-as-you-go or the
// provider, never refused. It does nothing when the pool has no provider
// member or a member is not simulated.
func showFailover(ctx context.Context, out io.Writer, gw, sub, key, model string, cfg *config.Config, faults *demoFaults) {
	var first, rest, providers []string
	kind, deployment := map[string]string{}, map[string]string{}
	for _, b := range cfg.Backends {
		kind[b.Name], deployment[b.Name] = b.Kind, b.Deployments[model]
	}
	for _, p := range cfg.Pools {
		if p.Name != cfg.Models[model] {
			continue
		}
		top := 0
		for _, m := range p.Members {
			if !isProviderKind(kind[m.Backend]) && (top == 0 || m.Priority < top) {
				top = m.Priority
			}
		}
		for _, m := range p.Members {
			switch {
			case isProviderKind(kind[m.Backend]):
				providers = append(providers, m.Backend)
			case m.Priority == top:
				first = append(first, m.Backend)
			default:
				rest = append(rest, m.Backend)
			}
		}
	}
	if len(providers) == 0 || len(first)+len(rest) == 0 {
		return
	}
	// What the members had is put back after, unless the dashboard's Demo
	// tab changed it meanwhile.
	injected := map[string]demoFaultsWere{}
	defer func() {
		for name, was := range injected {
			_, _ = faults.set(name, was.faults, was.fault, &was)
		}
	}()
	inject := func(names []string) bool {
		for _, name := range names {
			// Only model's deployment: the embeddings on the same
			// simulators are served meanwhile.
			out429 := simulator.Faults{Deployments: map[string]simulator.Faults{
				deployment[name]: {RetryAfter: demoFailoverRetryAfter}}}
			was, err := faults.set(name, out429, "rate_limited", nil)
			if err != nil {
				return false
			}
			injected[name] = was
		}
		return true
	}
	client := &http.Client{Timeout: 30 * time.Second}
	send := func() (status int, backend string) {
		body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 16,
			"messages": []map[string]string{{"role": "user", "content": "Name one river in Europe."}}})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/v1/chat/completions", bytes.NewReader(body))
		if err != nil {
			return 0, ""
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Cache-Control", "no-store")
		resp, err := client.Do(req)
		if err != nil {
			return 0, ""
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Sluice-Backend")
	}
	// The first members go out first; one request trips their breakers
	// (and is served by the next ones).
	if !inject(first) {
		return
	}
	send()
	if !inject(rest) {
		return
	}
	served, status := "", 0
	for i := 0; i < 6 && served == "" && ctx.Err() == nil; i++ {
		var backend string
		if status, backend = send(); status == http.StatusOK && isProviderKind(kind[backend]) {
			served = backend
		}
	}
	now := time.Now().Format(time.TimeOnly)
	outNames := strings.Join(append(first[:len(first):len(first)], rest...), ", ")
	if served == "" {
		fmt.Fprintf(out, "%s  failover: with %s out (429), no request was served by %s (last: %d)\n",
			now, outNames, strings.Join(providers, ", "), status)
		return
	}
	fmt.Fprintf(out, "%s  failover: %s answered 429 (Retry-After %v), so %s (kind %s, translated) served %s's request\n",
		now, outNames, demoFailoverRetryAfter, served, kind[served], sub)
	// The breakers stay open for the Retry-After: the story that follows
	// starts once they have closed.
	select {
	case <-ctx.Done():
	case <-time.After(demoFailoverRetryAfter):
	}
}
