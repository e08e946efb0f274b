package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const key = "sk-very-secret"

func TestValueNeverShowsItself(t *testing.T) {
	v := New(key)
	type holder struct {
		Key Value `json:"key" yaml:"key"`
	}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, v), fmt.Sprintf(verb, holder{v}), fmt.Sprintf(verb, &holder{v}))
	}
	j, _ := json.Marshal(holder{v})
	y, _ := yaml.Marshal(holder{v})
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "key", v, "holder", holder{v})
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "key", v)
	outputs = append(outputs, string(j), string(y), logs.String(), v.String())
	for _, out := range outputs {
		if strings.Contains(out, key) || strings.Contains(out, fmt.Sprintf("%x", key)) {
			t.Errorf("output shows the secret: %s", out)
		}
	}
	if !strings.Contains(string(j), Redacted) || !strings.Contains(logs.String(), Redacted) {
		t.Errorf("json %s / logs %s; want [REDACTED]", j, logs.String())
	}
	if v.Reveal() != key {
		t.Errorf("Reveal() = %q; want the key", v.Reveal())
	}
}

func TestZeroAndYAML(t *testing.T) {
	var h struct {
		Key Value `yaml:"key"`
	}
	if !h.Key.IsZero() || h.Key.String() != "" {
		t.Errorf("zero Value: IsZero %v, String %q; want true, empty", h.Key.IsZero(), h.Key.String())
	}
	if err := yaml.Unmarshal([]byte("key: abc"), &h); err != nil || h.Key.Reveal() != "abc" {
		t.Errorf("yaml decode = %q, %v; want abc", h.Key.Reveal(), err)
	}
	if err := yaml.Unmarshal([]byte("key: [1]"), &h); err == nil {
		t.Error("yaml decode of a list succeeded; want an error")
	}
}
