package app

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/simulator"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an in-test OTLP/HTTP trace receiver.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	o.mu.Unlock()
	resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

func attr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			if v := a.Value.GetStringValue(); v != "" {
				return v
			}
			if v := a.Value.GetIntValue(); v != 0 {
				return itoa(v)
			}
		}
	}
	return ""
}

// TestTracing: a request retried once exports a server span with the GenAI
// attributes and two attempt spans under it, and the backend that answered
// got the traceparent of its attempt's span.
func TestTracing(t *testing.T) {
	rec := &otlpReceiver{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	cfg := strings.Replace(resilienceYAML, "backends:\n", "tracing:\n  endpoint: "+srv.URL+"\nbackends:\n", 1)
	f := newFixture(t, withConfig(cfg))
	f.sims["ptu-swedencentral"].SetFaults(simulator.Faults{RetryAfter: 3 * time.Second})
	if status, backend, _ := chatVia(t, f, fxAlphaKey, "gpt-4o"); status != 200 || backend == "ptu-swedencentral" {
		t.Fatalf("status %d from %s", status, backend)
	}
	if err := f.stop(); err != nil { // flushes the spans
		t.Fatal(err)
	}
	rec.mu.Lock()
	spans := rec.spans
	rec.mu.Unlock()
	var server *tracepb.Span
	var attempts []*tracepb.Span
	for _, s := range spans {
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case tracepb.Span_SPAN_KIND_CLIENT:
			attempts = append(attempts, s)
		}
	}
	if server == nil || len(attempts) < 2 {
		t.Fatalf("got %d spans (server %v, %d attempts); want a server span and an attempt span per try (at least two)", len(spans), server != nil, len(attempts))
	}
	if server.Name != "chat gpt-4o" || attr(server, "gen_ai.operation.name") != "chat" || attr(server, "gen_ai.request.model") != "gpt-4o" ||
		attr(server, "gen_ai.usage.input_tokens") == "" || attr(server, "gen_ai.usage.output_tokens") == "" || attr(server, "sluice.subscription") != "team-alpha" {
		t.Errorf("server span %q attributes %v; want the GenAI attributes", server.Name, server.Attributes)
	}
	var served *tracepb.Span
	for _, a := range attempts {
		if string(a.ParentSpanId) != string(server.SpanId) || string(a.TraceId) != string(server.TraceId) {
			t.Errorf("attempt span %q is not a child of the server span", a.Name)
		}
		if attr(a, "http.response.status_code") == "200" {
			served = a
		}
	}
	if served == nil || attr(served, "gen_ai.provider.name") == "" {
		t.Fatalf("no attempt span for the backend that answered: %v", attempts)
	}
	want := "00-" + hex.EncodeToString(served.TraceId) + "-" + hex.EncodeToString(served.SpanId) + "-01"
	found := false
	for _, r := range f.seen.all() {
		if r.header.Get("Traceparent") == want {
			found = true
		}
	}
	if !found {
		t.Errorf("no backend request carried traceparent %s", want)
	}
}
