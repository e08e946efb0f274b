package app

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// referenceEnv sets the variables examples/sluice.yaml names.
func referenceEnv(t *testing.T) {
	t.Helper()
	for k, v := range map[string]string{
		"SLUICE_ADMIN_KEY":           "admin-key",
		"PTU_API_KEY":                "ptu-key",
		"PAYG_WESTEUROPE_API_KEY":    "we-key",
		"PAYG_FRANCECENTRAL_API_KEY": "fr-key",
		"TEAM_ALPHA_KEY":             "alpha-key",
		"TEAM_BETA_KEY_SHA256":       strings.Repeat("ab", 32),
		"CONTENT_SAFETY_KEY":         "safety-key",
		"ANTHROPIC_API_KEY":          "anthropic-key",
	} {
		t.Setenv(k, v)
	}
}

func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = Main(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func exitCode(err error) int {
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestCommands(t *testing.T) {
	referenceEnv(t)
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("server:\n  listen: 127.0.0.1:8080\n  colour: blue\nbackends: []\nmodels:\n  gpt-4o: nowhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string
		stderr     []string
		notStdout  []string
		notStderrs []string
	}{
		{name: "check reference", args: []string{"check", "--config", "../../examples/sluice.yaml"},
			stdout: []string{"examples/sluice.yaml: ok", "backends:      4:", "ptu-swedencentral (azure-openai, swedencentral)", "claude (anthropic, westeurope)",
				"pools:         2:", "models:        2:", "gpt-4o -> chat", "products:      2: standard, premium", "subscriptions: 2: team-alpha (standard), team-beta (premium)"},
			notStdout: []string{"alpha-key", "ptu-key"}},
		{name: "check broken", args: []string{"check", "--config", broken}, code: 1,
			stderr: []string{broken + ":3: server.colour: unknown field", broken + ":6: models.gpt-4o: "}},
		{name: "check missing file", args: []string{"check", "--config", filepath.Join(dir, "none.yaml")}, code: 1,
			stderr: []string{"none.yaml"}},
		{name: "version", args: []string{"version"}, stdout: []string{"sluice ", "go1."}},
		{name: "help", args: []string{"help"}, stdout: []string{"sluice serve --config FILE"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`}},
		{name: "bad flag", args: []string{"check", "--nope"}, code: 2, stderr: []string{"flag provided but not defined: -nope"}},
		{name: "stray argument", args: []string{"check", "--config", "x.yaml", "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`}},
		{name: "serve missing config", args: []string{"serve", "--config", filepath.Join(dir, "none.yaml")}, code: 1, stderr: []string{"none.yaml"}},
		{name: "simulate bad flag", args: []string{"simulate", "--listen"}, code: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := run(t, tt.args...)
			if got := exitCode(err); got != tt.code {
				t.Fatalf("exit code = %d (err %v); want %d\nstdout: %s\nstderr: %s", got, err, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.notStdout {
				if strings.Contains(stdout, s) {
					t.Errorf("stdout shows %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}
