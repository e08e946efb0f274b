package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// guardBase is a small valid config with a content safety service and a
// product with content safety and PII masking, as in the reference.
const guardBase = `
backends:
  - name: b
    url: http://127.0.0.1:9101
    auth: { api_key: k }
    deployments: { gpt-4o: gpt-4o }
pools: [{ name: p, members: [{ backend: b }] }]
models: { gpt-4o: p }
content_safety:
  - name: safety
    url: http://127.0.0.1:9107
    auth:
      api_key: cs-key
products:
  - name: std
    models: [gpt-4o]
    content_safety:
      service: safety
      shield_prompt: true
      blocklists: [banned-terms]
      completions:
        mode: window
    pii:
      patterns:
        - { category: EmployeeId, regex: 'EMP-[0-9]{6}' }
      restore: true
subscriptions:
  - name: s
    product: std
    keys: [k1]
`

func TestGuardDefaults(t *testing.T) {
	c, err := Parse(testFile, []byte(guardBase), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := c.ContentSafety[0]
	if s.Timeout.D().String() != "2s" || s.APIVersion != "2024-09-01" {
		t.Errorf("service defaults: timeout %v, api_version %q", s.Timeout.D(), s.APIVersion)
	}
	cs := c.Products[0].ContentSafety
	want := ContentSafety{Service: "safety", ShieldPrompt: true, OutputType: "FourSeverityLevels",
		Categories: map[string]int{"Hate": 4, "SelfHarm": 4, "Sexual": 4, "Violence": 4},
		Blocklists: []string{"banned-terms"}, Completions: SafetyCompletions{Mode: "window", WindowSize: 1000, WindowOverlap: 100},
		OnError: "fail_closed"}
	if diff := cmp.Diff(want, *cs); diff != "" {
		t.Errorf("content_safety (-want +got):\n%s", diff)
	}
	pii := c.Products[0].PII
	if diff := cmp.Diff(BuiltInPII, pii.Entities); diff != "" || pii.OnError != "fail_closed" || !pii.Restore {
		t.Errorf("pii = %+v", pii)
	}
}

func TestGuardRules(t *testing.T) {
	for _, tt := range []struct {
		name     string
		old, new string
		want     string
	}{
		{"unknown service", "      service: safety", "      service: other",
			`test.yaml:18: products[0].content_safety.service: "other" is not a content_safety service`},
		{"no auth", "      api_key: cs-key", "      {}",
			"test.yaml:12: content_safety[0].auth.api_key: required (or managed_identity)"},
		{"bad category", "      shield_prompt: true", "      shield_prompt: true\n      categories: { Hate: 4, Spam: 2, Violence: 9 }",
			"test.yaml:20: products[0].content_safety.categories.Spam: unknown category; want Hate, SelfHarm, Sexual or Violence\n" +
				"test.yaml:20: products[0].content_safety.categories.Violence: a severity from 0 to 7"},
		{"bad mode", "mode: window", "mode: async",
			`test.yaml:22: products[0].content_safety.completions.mode: "async" is not allowed; want off, buffered or window`},
		{"overlap too large", "mode: window", "mode: window\n        window_size: 100\n        window_overlap: 100",
			"test.yaml:24: products[0].content_safety.completions.window_overlap: from 0 to less than window_size"},
		{"bad on_error", "      shield_prompt: true", "      shield_prompt: true\n      on_error: ignore",
			`test.yaml:20: products[0].content_safety.on_error: "ignore" is not allowed; want fail_closed or fail_open`},
		{"bad regex", "'EMP-[0-9]{6}'", "'EMP-[0-9'",
			"test.yaml:25: products[0].pii.patterns[0].regex: error parsing regexp: missing closing ]: `[0-9`"},
		{"empty match", "'EMP-[0-9]{6}'", "'x*'",
			"test.yaml:25: products[0].pii.patterns[0].regex: matches the empty string"},
		{"person without service", "      restore: true", "      restore: true\n      entities: [Email, Person]",
			"test.yaml:27: products[0].pii.entities[1]: Person is not built in (Email, PhoneNumber, CreditCardNumber, IBAN, IPAddress): it needs pii.service"},
		{"person with service", "      restore: true", "      restore: true\n      entities: [Email, Person]\n      service: safety", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(guardBase, tt.old) {
				t.Fatalf("the base config lacks %q", tt.old)
			}
			_, err := Parse(testFile, []byte(strings.Replace(guardBase, tt.old, tt.new, 1)), noEnv)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
