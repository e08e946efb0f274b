package config

import "strings"

// Defaults of the backends whose API Sluice translates to (kinds anthropic
// and gemini; docs/providers.md).
const (
	// defaultAnthropicVersion is the anthropic-version header sent when
	// api_version is not set.
	defaultAnthropicVersion = "2023-06-01"
	// defaultAnthropicMaxTokens is max_tokens for a request that sets
	// none: the Messages API requires one, the Chat Completions API does not.
	defaultAnthropicMaxTokens = 4096
)

// provider fills the defaults of the translated kinds.
func (d defaulter) provider(path string, b *Backend) {
	if b.Kind == "anthropic" {
		d.str(field(path, "api_version"), &b.APIVersion, defaultAnthropicVersion)
		d.num(field(path, "default_max_tokens"), &b.DefaultMaxTokens, defaultAnthropicMaxTokens)
	}
}

// checkProvider checks the fields of the translated kinds.
func checkProvider(p *problems, path string, b Backend) {
	switch {
	case b.DefaultMaxTokens < 0:
		p.add(field(path, "default_max_tokens"), "must be positive")
	case b.DefaultMaxTokens != 0 && b.Kind != "anthropic":
		p.add(field(path, "default_max_tokens"), "applies only to kind anthropic, whose API requires max_tokens")
	}
	if b.Kind == "gemini" {
		for model, d := range b.Deployments {
			if strings.ContainsAny(d, "/?#%:") {
				p.add(field(field(path, "deployments"), model), "%s cannot be a Gemini model name: it must not contain /, ?, #, %% or :", quote(d))
			}
		}
	}
}
