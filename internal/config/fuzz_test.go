package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// fuzzSecret is what every environment variable holds while fuzzing; no
// error may show it.
const fuzzSecret = "fuzz-secret-0123456789"

// FuzzParse checks that Parse never panics, that every error names the file,
// that errors never show an environment value, that Parse is deterministic,
// and that whatever Parse accepts also passes Validate.
func FuzzParse(f *testing.F) {
	reference, err := os.ReadFile(referencePath)
	if err != nil {
		f.Fatal(err)
	}
	seeds := []string{
		string(reference),
		base,
		minimal,
		"",
		"---\n---\n",
		"[]",
		strings.Replace(base, "timeout: 60s", "timeoutt: 60s", 1),
		strings.Replace(base, "api_key: backend-key-1", "api_key: ${UNSET}", 1),
		strings.Replace(base, "failures: 3", "failures: [3]", 1),
		strings.Replace(base, "models:\n  gpt-4o: chat", "models:\n  gpt-4o: chat\n  gpt-4o: chat", 1),
		strings.Replace(base, "server:\n", "server: &s\n  <<: *s\n", 1),
		strings.Replace(minimal, "{ m: d }", "&d { m: d }\n    x: *d", 1),
		strings.Replace(string(reference), "status_codes: [\"429\"]", "status_codes: [\"4xx\", \"599-500\"]", 1),
		strings.Replace(base, "\n", "\n\t", 3),
		strings.Replace(base, "percentage: 50", "percentage: 500\n        failures: -1", 1),
		strings.Replace(base, "cookie: chat-affinity", "cookie: \"a;b\"", 1),
		strings.Replace(base, "adaptive_share: 0.5", "adaptive_share: 2\n        default_max_tokens: 0", 1),
		strings.Replace(base, "tokens_consumed: x-tokens-consumed", "tokens_consumed: X-Remaining-Tokens", 1),
		strings.Replace(base, "min_remaining_tokens: 2000", "min_remaining_tokens: -1\n      min_remaining_requests: 0", 1),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	env := func(string) (string, bool) { return fuzzSecret, true }
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "fuzz.yaml"
		cfg, err := Parse(file, data, env)
		if err == nil {
			if cfg == nil {
				t.Fatal("Parse returned neither a Config nor an error")
			}
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that Validate rejects:\n%v", verr)
			}
			return
		}
		if cfg != nil {
			t.Fatal("Parse returned a Config with an error")
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("Parse error %T %q is not a non-empty Errors", err, err)
		}
		for _, e := range errs {
			if e.File != file {
				t.Errorf("error %q has File %q; want %q", e, e.File, file)
			}
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(line, file+":") {
				t.Errorf("error line %q does not start with %q", line, file+":")
			}
		}
		if !strings.Contains(string(data), "fuzz-secret") && strings.Contains(err.Error(), fuzzSecret) {
			t.Errorf("error shows an environment value:\n%v", err)
		}
		if _, again := Parse(file, data, env); again == nil || again.Error() != err.Error() {
			t.Errorf("second Parse error differs:\n%v\nfirst:\n%v", again, err)
		}
	})
}
