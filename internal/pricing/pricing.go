// Package pricing turns token usage into money, from the price table of the
// config (usage.prices): every usage record carries its cost, and budgets
// are enforced in the same unit.
package pricing

import (
	"math"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// Price is what a million tokens of each kind cost.
type Price struct {
	Input, Output, CachedInput float64
}

// Table is the prices by model name, in one currency. The zero Table prices
// nothing. It is immutable once built and safe for concurrent use.
type Table struct {
	Currency string
	prices   map[string]Price
}

// New returns a table.
func New(currency string, prices map[string]Price) *Table {
	return &Table{Currency: currency, prices: prices}
}

// Has reports whether model has a price.
func (t *Table) Has(model string) bool {
	if t == nil {
		return false
	}
	_, ok := t.prices[model]
	return ok
}

// Cost returns what u costs for model: prompt tokens not served from the
// cache at the input price, cached ones at the cached-input price,
// completion tokens (reasoning included) at the output price. A model
// without a price costs 0.
func (t *Table) Cost(model string, u wire.Usage) float64 {
	if t == nil {
		return 0
	}
	p, ok := t.prices[model]
	if !ok {
		return 0
	}
	cached := min(max(u.Cached, 0), u.Prompt)
	return (float64(u.Prompt-cached)*p.Input + float64(cached)*p.CachedInput + float64(u.Completion)*p.Output) / 1e6
}

// Micros is an amount in millionths of the currency, rounded up, the unit
// budget counters count in: integers add exactly in any store.
func Micros(amount float64) int64 {
	return int64(math.Ceil(amount * 1e6))
}
