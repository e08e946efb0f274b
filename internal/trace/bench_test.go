package trace

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// discard is an exporter that drops every span, so that a benchmark measures
// the request path and not the network.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// request is what the proxy does for one request with one attempt.
func request(tr *Tracer, r *http.Request, h http.Header) {
	ctx, req := tr.StartRequest(r.Context(), r, "chat", "gpt-4o")
	req.SetAttr("sluice.subscription", "team-a")
	a := tr.StartAttempt(ctx, h, "chat", "gpt-4o", "east", "azure-openai", "https://east.openai.azure.com", 1)
	a.SetStatusCode(200)
	a.SetUsage(12, 34)
	a.SetResponseModel("gpt-4o-2024-08-06")
	a.End()
	req.SetStatusCode(200)
	req.SetUsage(12, 34)
	req.SetResponseModel("gpt-4o-2024-08-06")
	req.End()
}

// BenchmarkOff is the per-request cost of tracing turned off: a nil Tracer.
func BenchmarkOff(b *testing.B) {
	var tr *Tracer
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		request(tr, r, h)
	}
}

// BenchmarkOn is the per-request cost on the request path of tracing turned
// on (a request span and one attempt span, with attributes and traceparent
// injection), with an exporter that drops the spans: the batch processor's
// export goroutine and the network are not counted. "not sampled" is a new
// trace a ratio of 0 leaves out.
func BenchmarkOn(b *testing.B) {
	for _, bc := range []struct {
		name  string
		ratio float64
	}{{"sampled", 1}, {"not sampled", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			tr, err := newTracer(context.Background(), discard{}, Options{SampleRatio: bc.ratio})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
			h := http.Header{}
			b.ReportAllocs()
			for b.Loop() {
				request(tr, r, h)
			}
		})
	}
}
