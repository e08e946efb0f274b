package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/metrics"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/usage"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// discardStore takes usage batches and keeps nothing.
type discardStore struct{}

func (discardStore) Write(context.Context, []usage.Record) error { return nil }
func (discardStore) Report(context.Context, usage.Query) ([]usage.Row, error) {
	return nil, nil
}
func (discardStore) Close() error { return nil }

// BenchmarkMetering is what each request pays for being metered once it is
// over: the access-log line, the metrics, and the usage record.
func BenchmarkMetering(b *testing.B) {
	cfg, err := config.Parse("bench.yaml", []byte(`
backends: [{ name: b, url: "http://b.invalid", region: westeurope, auth: { api_key: k }, deployments: { gpt-4o: gpt-4o } }]
pools: [{ name: p, members: [{ backend: b }] }]
models: { gpt-4o: p }
products: [{ name: p, models: [gpt-4o] }]
subscriptions: [{ name: s, product: p, keys: [client-key] }]
`), nil)
	if err != nil {
		b.Fatal(err)
	}
	table, err := route.Compile(cfg, route.Env{})
	if err != nil {
		b.Fatal(err)
	}
	dims, _ := metrics.ParseDimensions(cfg.Metrics.Dimensions)
	ledger, err := usage.NewLedger(usage.Options{Store: discardStore{}, Journal: b.TempDir() + "/j", QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer ledger.Close(context.Background())
	h := New(Options{Table: func() *route.Table { return table }, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Metrics: metrics.New(metrics.Options{Dimensions: dims}), Ledger: ledger})
	sub, _ := table.Subscription("client-key")
	req := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			x := exchange{h: h, r: req, start: start, id: "4f6b0d8e-2a4b-4c43-9a7e-1f0e2d3c4b5a", table: table,
				req:   Request{Subscription: sub, Model: "gpt-4o", Op: wire.OpChatCompletions},
				model: "gpt-4o", modelKnown: true, status: 200, firstByte: start.Add(time.Millisecond),
				served: served{backend: "b", deployment: "gpt-4o", attempts: 1},
				acct:   accounting{settled: true, usage: wire.Usage{Prompt: 20, Completion: 80, Total: 100}, cost: 0.00085}}
			end := start.Add(50 * time.Millisecond)
			x.log(end)
			x.observe(end)
			x.record(end)
		}
	})
}
