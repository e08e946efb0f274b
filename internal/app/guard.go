package app

import (
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/credential"
	"github.com/sluice-gateway/sluice/internal/guard"
	"github.com/sluice-gateway/sluice/internal/metrics"
	"github.com/sluice-gateway/sluice/internal/proxy"
	"github.com/sluice-gateway/sluice/internal/safety"
)

// newGuard builds the guardrails stage (content safety, PII masking). It
// reads the guardrails of the table in force, so a reload changes them
// without a restart; services keep their connections across reloads.
func (g *Gateway) newGuard() *guard.Stage {
	return guard.New(guard.Options{Table: g.Table, Logger: g.log, Credential: g.safetyCredential})
}

// stages are the pipeline's stages, in order: the guardrails first, so that
// the cache keys, stores and replays masked text only, every answer (a hit
// too) passes the guardrails' checks, and placeholders are restored last
// for the caller in hand (see proxy.Request.AddTap).
func (g *Gateway) stages() []proxy.Stage {
	return []proxy.Stage{g.guard, g.cache}
}

// safetyCredential makes the token credential of a content safety service
// that authenticates with a managed identity, as for backends.
func (g *Gateway) safetyCredential(svc config.SafetyService) (safety.Credential, error) {
	src, err := credential.FromConfig(config.BackendAuth{ManagedIdentity: svc.Auth.ManagedIdentity}, nil)
	if err != nil {
		return nil, err
	}
	return credential.New(src, credential.Options{Name: "content_safety " + svc.Name, Logger: g.log}), nil
}

// guardStats reads the guardrails' counters for the metrics.
func (g *Gateway) guardStats() metrics.GuardStats {
	var out metrics.GuardStats
	if g.guard == nil {
		return out
	}
	s := g.guard.Stats()
	for k, n := range s.Verdicts {
		out.Checks = append(out.Checks, metrics.GuardCount{Product: k.Product, Check: k.Check, Result: k.Result, N: n})
	}
	for k, n := range s.Errors {
		out.Errors = append(out.Errors, metrics.GuardCount{Product: k.Product, Check: k.Check, Result: k.OnError, N: n})
	}
	for k, n := range s.Masked {
		out.Masked = append(out.Masked, metrics.GuardCount{Product: k.Product, Check: k.Category, N: n})
	}
	for check, d := range s.Checks {
		out.Durations = append(out.Durations, metrics.GuardDuration{Check: check, Count: d.Count, Seconds: d.Seconds})
	}
	return out
}
