package pricing

import (
	"math"
	"testing"

	"github.com/sluice-gateway/sluice/internal/wire"
)

func TestCost(t *testing.T) {
	tab := New("USD", map[string]Price{
		"gpt-4o":                 {Input: 2.50, Output: 10.00, CachedInput: 1.25},
		"text-embedding-3-small": {Input: 0.02, CachedInput: 0.02},
	})
	tests := []struct {
		model string
		u     wire.Usage
		want  float64
	}{
		{"gpt-4o", wire.Usage{Prompt: 1_000_000, Completion: 1_000_000}, 12.50},
		{"gpt-4o", wire.Usage{Prompt: 1000, Cached: 400, Completion: 200}, (600*2.50 + 400*1.25 + 200*10.00) / 1e6},
		{"gpt-4o", wire.Usage{Prompt: 10, Cached: 50}, 10 * 1.25 / 1e6},
		{"text-embedding-3-small", wire.Usage{Prompt: 500_000}, 0.01},
		{"unpriced", wire.Usage{Prompt: 100}, 0},
	}
	for _, tt := range tests {
		if got := tab.Cost(tt.model, tt.u); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("Cost(%s, %+v) = %v; want %v", tt.model, tt.u, got, tt.want)
		}
	}
	var none *Table
	if none.Cost("gpt-4o", wire.Usage{Prompt: 1}) != 0 || none.Has("gpt-4o") {
		t.Error("a nil table prices something")
	}
	if got := Micros(0.0000101); got != 11 {
		t.Errorf("Micros(0.0000101) = %d; want 11 (rounded up)", got)
	}
}
