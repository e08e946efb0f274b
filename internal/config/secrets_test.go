package config

import (
	"strings"
	"testing"
)

// TestErrorsNeverShowSecrets breaks the configuration around values that come
// from the environment, where secrets live, and checks that no error message
// shows them.
func TestErrorsNeverShowSecrets(t *testing.T) {
	const long, short = "sk-live-0123456789abcdef", "pw42"
	env := envFrom(map[string]string{"LONG": long, "SHORT": short})
	tests := []struct {
		name  string
		edits []string
	}{
		{"same subscription key twice", []string{"keys: [alpha-key]", `keys: ["${LONG}"]`, `keys: ["sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"]`, `keys: ["${LONG}"]`}},
		{"short key twice", []string{"keys: [alpha-key]", `keys: ["${SHORT}", "${SHORT}"]`}},
		{"bad digest", []string{"keys: [alpha-key]", `keys: ["sha256:${LONG}"]`}},
		{"key with white space", []string{"keys: [alpha-key]", `keys: ["${SHORT} "]`}},
		{"admin key is a subscription key", []string{"api_key: admin-key", "api_key: ${LONG}", "keys: [alpha-key]", `keys: ["${LONG}"]`}},
		{"backend key with white space", []string{"api_key: backend-key-1", `api_key: " ${SHORT}"`}},
		{"secret in a number", []string{"listen: 127.0.0.1:8080", "listen: 127.0.0.1:8080\n  max_request_bytes: ${LONG}"}},
		{"secret in a duration", []string{"timeout: 60s", "timeout: ${SHORT}"}},
		{"secret in a bool", []string{"prometheus: true", "prometheus: ${LONG}"}},
		{"credentials in the url", []string{"url: https://one.example.com", "url: https://user:${SHORT}@one.example.com"}},
		{"key in the url", []string{"url: https://one.example.com", "url: https://one.example.com/?key=${LONG}"}},
		{"password in redis url", []string{"store: memory", "store: redis://:${SHORT}@/0"}},
		{"password in postgres url", []string{"store: sqlite:usage.db", `store: "mysql://u:${SHORT}@db/usage"`}},
		{"secret in a listen address", []string{"listen: 127.0.0.1:8080", "listen: ${LONG}"}},
		{"short secret as a whole value", []string{"listen: 127.0.0.1:8080", "listen: ${SHORT}"}},
		{"secret inside a value", []string{"kind: azure-openai", "kind: azure-${LONG}"}},
		{"secret as a name", []string{"product: premium", "product: ${LONG}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(testFile, []byte(edit(t, base, tt.edits...)), env)
			if err == nil {
				t.Fatalf("Parse succeeded; want an error")
			}
			for _, s := range []string{long, short} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows the secret %q:\n%v", s, err)
				}
			}
		})
	}
}
