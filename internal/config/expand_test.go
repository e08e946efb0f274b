package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpandEnv(t *testing.T) {
	env := envFrom(map[string]string{"A": "alpha", "B_2": "beta", "EMPTY": "", "NESTED": "${A}"})
	tests := []struct {
		in, want string
		used     bool
		missing  []string
	}{
		{"", "", false, nil},
		{"plain", "plain", false, nil},
		{"${A}", "alpha", true, nil},
		{"x${A}y${B_2}z", "xalphaybetaz", true, nil},
		{"${EMPTY}", "", true, nil},
		{"${NESTED}", "${A}", true, nil},
		{"$${A}", "${A}", false, nil},
		{"$$${A}", "$${A}", false, nil}, // "$" then the escape "$${"
		{"$$$${A}", "$$${A}", false, nil},
		{"$A $ $$ $", "$A $ $$ $", false, nil},
		{"${A", "${A", false, nil},
		{"${1A}", "${1A}", false, nil},
		{"${}", "${}", false, nil},
		{"${A-B}", "${A-B}", false, nil},
		{"${UNSET}-${A}-${ALSO}", "-alpha-", true, []string{"UNSET", "ALSO"}},
	}
	for _, tt := range tests {
		got, used, missing := expandEnv(tt.in, env)
		if got != tt.want || used != tt.used || !cmp.Equal(missing, tt.missing) {
			t.Errorf("expandEnv(%q) = %q, %t, %q; want %q, %t, %q", tt.in, got, used, missing, tt.want, tt.used, tt.missing)
		}
	}
}
