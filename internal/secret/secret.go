// Package secret holds credentials so that they cannot leak by accident.
// A Value prints, logs, and marshals as [REDACTED]; the only way to read it is
// Reveal, which makes every use of a credential easy to find in review.
package secret

import (
	"fmt"
	"log/slog"

	"go.yaml.in/yaml/v3"
)

// Redacted is what a Value shows in place of its content.
const Redacted = "[REDACTED]"

// Value is a credential. The zero Value is empty. It is immutable and safe for
// concurrent use.
type Value struct {
	v string
}

// New returns a Value holding s.
func New(s string) Value { return Value{v: s} }

// Reveal returns the credential itself. Call it only where the credential is
// sent to the party that owns it.
func (s Value) Reveal() string { return s.v }

// IsZero reports whether the Value is empty.
func (s Value) IsZero() bool { return s.v == "" }

// String returns [REDACTED], or "" for an empty Value.
func (s Value) String() string {
	if s.v == "" {
		return ""
	}
	return Redacted
}

// GoString keeps %#v from printing the content.
func (s Value) GoString() string { return s.String() }

// Format keeps every fmt verb (%v, %s, %q, %x, %#v, ...) from printing the content.
func (s Value) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", s.String())
	default:
		fmt.Fprint(f, s.String())
	}
}

// LogValue keeps log/slog from printing the content.
func (s Value) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON writes [REDACTED], so that an effective config can be shown.
func (s Value) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%q", s.String())), nil
}

// MarshalYAML writes [REDACTED].
func (s Value) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText writes [REDACTED].
func (s Value) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalYAML reads a plain scalar.
func (s *Value) UnmarshalYAML(node *yaml.Node) error {
	var str string
	if err := node.Decode(&str); err != nil {
		return err
	}
	s.v = str
	return nil
}
