package redact

import (
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	r, err := New([]string{`\bACME-[0-9]{6}\b`}, 60)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"my key is sk-abcdef0123456789 ok", "my key is [REDACTED] ok"},
		{"Authorization: Bearer eyJhbGciOi.J9.x", "Authorization: [REDACTED]"},
		{"mail jane.doe+x@example.co.uk now", "mail [REDACTED] now"},
		{"azure 0123456789abcdef0123456789ABCDEF", "azure [REDACTED]"},
		{"customer ACME-123456", "customer [REDACTED]"},
		{"plain text stays", "plain text stays"},
		{strings.Repeat("é", 40), strings.Repeat("é", 30) + "…[truncated]"},
	}
	for _, tt := range tests {
		if got := r.Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	if _, err := New([]string{"("}, 10); err == nil {
		t.Error("New with a broken pattern succeeded")
	}
}
