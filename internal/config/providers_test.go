package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestProviderKinds(t *testing.T) {
	// The second backend of base is kind openai; make it each translated kind.
	ok := []struct {
		name, kind string
		version    string
		maxTokens  int
	}{
		{"anthropic defaults", "kind: anthropic", "2023-06-01", 4096},
		{"anthropic set", "kind: anthropic\n    api_version: 2023-01-01\n    default_max_tokens: 512", "2023-01-01", 512},
		{"gemini", "kind: gemini", "", 0},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(testFile, []byte(edit(t, base, "kind: openai", tt.kind)), noEnv)
			if err != nil {
				t.Fatal(err)
			}
			b := cfg.Backends[1]
			if b.APIVersion != tt.version || b.DefaultMaxTokens != tt.maxTokens {
				t.Errorf("api_version %q, default_max_tokens %d; want %q, %d", b.APIVersion, b.DefaultMaxTokens, tt.version, tt.maxTokens)
			}
			want := "/v1/models"
			if tt.kind == "kind: gemini" {
				want = "/v1beta/models"
			}
			if got := healthCheckPath(&b); got != want {
				t.Errorf("health check path %q; want %q", got, want)
			}
		})
	}
	bad := []struct {
		name  string
		edits []string
		want  []string
	}{
		{"default_max_tokens on openai", []string{"kind: openai", "kind: openai\n    default_max_tokens: 10 #!"},
			[]string{"test.yaml:{#!}: backends[1].default_max_tokens: applies only to kind anthropic, whose API requires max_tokens"}},
		{"api_version on gemini", []string{"kind: openai", "kind: gemini\n    api_version: v1 #!"},
			[]string{"test.yaml:{#!}: backends[1].api_version: applies only to kinds azure-openai and anthropic"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			text := edit(t, base, tt.edits...)
			_, err := Parse(testFile, []byte(text), noEnv)
			if diff := cmp.Diff(placeLines(t, text, tt.want), errorLines(err)); diff != "" {
				t.Errorf("Parse errors mismatch (-want +got):\n%s\nconfig:\n%s", diff, numbered(text))
			}
		})
	}
}
