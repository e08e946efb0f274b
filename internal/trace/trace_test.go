package trace

import (
	"context"
	"encoding/hex"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// A client's trace context, the W3C Trace Context specification's example.
const (
	clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientParent = "00f067aa0ba902b7"
	clientState  = "vendor=opaque"
)

// traceparent returns a version 00 traceparent header value.
func traceparent(trace, span string, sampled bool) string {
	flags := "00"
	if sampled {
		flags = "01"
	}
	return "00-" + trace + "-" + span + "-" + flags
}

// serve plays one client request through tr the way the proxy does: a
// request span, an attempt at an Azure OpenAI backend that answers 502, a
// second at an OpenAI one that answers 200 with usage. The client sends
// traceparent (and a tracestate) unless it is empty. It returns the outbound
// headers of the two attempts, cloned from the client's as a proxy does.
func serve(tr *Tracer, traceparent string) [2]http.Header {
	r := httptest.NewRequest(http.MethodPost,
		"http://gateway.example:8080/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", nil)
	if traceparent != "" {
		r.Header.Set("traceparent", traceparent)
		r.Header.Set("tracestate", clientState)
	}
	ctx, req := tr.StartRequest(r.Context(), r, "chat", "gpt-4o")
	req.SetAttr("sluice.subscription", "team-a")

	hs := [2]http.Header{r.Header.Clone(), r.Header.Clone()}
	a1 := tr.StartAttempt(ctx, hs[0], "chat", "gpt-4o", "east", "azure-openai", "https://east.openai.azure.com/", 1)
	a1.SetStatusCode(http.StatusBadGateway)
	a1.End()
	a2 := tr.StartAttempt(ctx, hs[1], "chat", "gpt-4o", "west", "openai", "http://10.0.0.7:8443", 2)
	a2.SetStatusCode(http.StatusOK)
	a2.SetUsage(12, 34)
	a2.SetResponseModel("gpt-4o-2024-08-06")
	a2.End()

	req.SetStatusCode(http.StatusOK)
	req.SetUsage(12, 34)
	req.SetResponseModel("gpt-4o-2024-08-06")
	req.End()
	return hs
}

// shutdown flushes tr, failing the test on error.
func shutdown(t testing.TB, tr *Tracer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// newTracerTo returns a Tracer exporting to a new OTLP/HTTP receiver.
func newTracerTo(t testing.TB, o Options) (*Tracer, *receiver) {
	t.Helper()
	rc := newHTTPReceiver(t)
	o.Endpoint = rc.Endpoint
	tr, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { tr.Shutdown(context.Background()) })
	return tr, rc
}

// layout is the request span and its attempt spans, by sluice.attempt.
type layout struct {
	request  exported
	attempts []exported
}

// arrange sorts received spans into a layout, failing unless there is one
// server span and n client spans.
func arrange(t *testing.T, spans []exported, n int) layout {
	t.Helper()
	var l layout
	servers := 0
	for _, s := range spans {
		switch s.GetKind() {
		case tracepb.Span_SPAN_KIND_SERVER:
			l.request = s
			servers++
		case tracepb.Span_SPAN_KIND_CLIENT:
			l.attempts = append(l.attempts, s)
		default:
			t.Errorf("span %q has kind %v; want server or client", s.GetName(), s.GetKind())
		}
	}
	if servers != 1 || len(l.attempts) != n {
		t.Fatalf("got %d server and %d client spans; want 1 and %d", servers, len(l.attempts), n)
	}
	slices.SortFunc(l.attempts, func(a, b exported) int {
		return int(attrMap(a.GetAttributes())["sluice.attempt"].(int64) - attrMap(b.GetAttributes())["sluice.attempt"].(int64))
	})
	return l
}

// summary is what a test compares of a span.
type summary struct {
	Name   string
	Kind   tracepb.Span_SpanKind
	Status tracepb.Status_StatusCode
	Attrs  map[string]any
}

func summarize(s exported) summary {
	return summary{
		Name:   s.GetName(),
		Kind:   s.GetKind(),
		Status: s.GetStatus().GetCode(),
		Attrs:  attrMap(s.GetAttributes()),
	}
}

// TestExport sends one request with two attempts over each protocol and
// checks what the receiver got: names, kinds, attributes, statuses, the
// parent of each span, the resource, the export headers, and the
// traceparent each attempt sent to its backend.
func TestExport(t *testing.T) {
	tests := []struct {
		name     string
		receiver func(testing.TB) *receiver
		protocol string
		insecure bool
		endpoint func(rc *receiver) string
	}{
		{
			name:     "http URL",
			receiver: newHTTPReceiver,
			endpoint: func(rc *receiver) string { return rc.Endpoint },
		},
		{
			name:     "grpc host:port insecure",
			receiver: newGRPCReceiver,
			protocol: "grpc",
			insecure: true,
			endpoint: func(rc *receiver) string { return rc.Endpoint },
		},
		{
			name:     "grpc http URL",
			receiver: newGRPCReceiver,
			protocol: "grpc",
			endpoint: func(rc *receiver) string { return "http://" + rc.Endpoint },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := tt.receiver(t)
			tr, err := New(context.Background(), Options{
				Endpoint:    tt.endpoint(rc),
				Protocol:    tt.protocol,
				Insecure:    tt.insecure,
				Headers:     map[string]string{"Authorization": "Bearer collector-token"},
				SampleRatio: 1,
				ServiceName: "sluice-test",
				Version:     "1.2.3",
			})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			hs := serve(tr, "")
			shutdown(t, tr)

			l := arrange(t, rc.spans(), 2)
			want := []summary{
				{
					Name:   "chat gpt-4o",
					Kind:   tracepb.Span_SPAN_KIND_SERVER,
					Status: tracepb.Status_STATUS_CODE_UNSET,
					Attrs: map[string]any{
						"gen_ai.operation.name":      "chat",
						"gen_ai.request.model":       "gpt-4o",
						"gen_ai.provider.name":       "openai",
						"gen_ai.response.model":      "gpt-4o-2024-08-06",
						"gen_ai.usage.input_tokens":  int64(12),
						"gen_ai.usage.output_tokens": int64(34),
						"http.request.method":        "POST",
						"http.response.status_code":  int64(200),
						"url.path":                   "/openai/deployments/gpt-4o/chat/completions",
						"url.scheme":                 "http",
						"server.address":             "gateway.example",
						"server.port":                int64(8080),
						"sluice.subscription":        "team-a",
					},
				},
				{
					Name:   "chat gpt-4o",
					Kind:   tracepb.Span_SPAN_KIND_CLIENT,
					Status: tracepb.Status_STATUS_CODE_ERROR,
					Attrs: map[string]any{
						"gen_ai.operation.name":     "chat",
						"gen_ai.request.model":      "gpt-4o",
						"gen_ai.provider.name":      "azure.ai.openai",
						"http.response.status_code": int64(502),
						"error.type":                "502",
						"server.address":            "east.openai.azure.com",
						"server.port":               int64(443),
						"sluice.backend":            "east",
						"sluice.attempt":            int64(1),
					},
				},
				{
					Name:   "chat gpt-4o",
					Kind:   tracepb.Span_SPAN_KIND_CLIENT,
					Status: tracepb.Status_STATUS_CODE_UNSET,
					Attrs: map[string]any{
						"gen_ai.operation.name":      "chat",
						"gen_ai.request.model":       "gpt-4o",
						"gen_ai.provider.name":       "openai",
						"gen_ai.response.model":      "gpt-4o-2024-08-06",
						"gen_ai.usage.input_tokens":  int64(12),
						"gen_ai.usage.output_tokens": int64(34),
						"http.response.status_code":  int64(200),
						"server.address":             "10.0.0.7",
						"server.port":                int64(8443),
						"sluice.backend":             "west",
						"sluice.attempt":             int64(2),
					},
				},
			}
			got := []summary{summarize(l.request), summarize(l.attempts[0]), summarize(l.attempts[1])}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("spans (-want +got):\n%s", diff)
			}

			if p := l.request.GetParentSpanId(); len(p) != 0 {
				t.Errorf("request span has parent %x; want none", p)
			}
			for i, a := range l.attempts {
				if !slices.Equal(a.GetTraceId(), l.request.GetTraceId()) {
					t.Errorf("attempt %d: trace id %x; want the request's %x", i+1, a.GetTraceId(), l.request.GetTraceId())
				}
				if !slices.Equal(a.GetParentSpanId(), l.request.GetSpanId()) {
					t.Errorf("attempt %d: parent %x; want the request span %x", i+1, a.GetParentSpanId(), l.request.GetSpanId())
				}
				wantTP := traceparent(hex.EncodeToString(a.GetTraceId()), hex.EncodeToString(a.GetSpanId()), true)
				if got := hs[i].Get("traceparent"); got != wantTP {
					t.Errorf("attempt %d sent traceparent %q; want %q (its own span)", i+1, got, wantTP)
				}
			}

			res := l.request.resource
			if res["service.name"] != "sluice-test" || res["service.version"] != "1.2.3" {
				t.Errorf("resource service.name %v, service.version %v; want sluice-test, 1.2.3", res["service.name"], res["service.version"])
			}
			auth := rc.authHeaders()
			if len(auth) == 0 {
				t.Fatal("no export received")
			}
			for _, a := range auth {
				if a != "Bearer collector-token" {
					t.Errorf("export sent authorization %q; want the configured header", a)
				}
			}
		})
	}
}

// TestContinuesClientTrace checks that a client's traceparent is followed:
// the request span joins its trace with the client's span as parent, and
// the backends get the same trace and the client's tracestate.
func TestContinuesClientTrace(t *testing.T) {
	tr, rc := newTracerTo(t, Options{SampleRatio: 1})
	hs := serve(tr, traceparent(clientTrace, clientParent, true))
	shutdown(t, tr)

	l := arrange(t, rc.spans(), 2)
	if got := hex.EncodeToString(l.request.GetTraceId()); got != clientTrace {
		t.Errorf("request span trace id %s; want the client's %s", got, clientTrace)
	}
	if got := hex.EncodeToString(l.request.GetParentSpanId()); got != clientParent {
		t.Errorf("request span parent %s; want the client's span %s", got, clientParent)
	}
	if got := l.request.GetTraceState(); got != clientState {
		t.Errorf("request span tracestate %q; want the client's %q", got, clientState)
	}
	for i, a := range l.attempts {
		if !slices.Equal(a.GetParentSpanId(), l.request.GetSpanId()) {
			t.Errorf("attempt %d: parent %x; want the request span %x", i+1, a.GetParentSpanId(), l.request.GetSpanId())
		}
		want := traceparent(clientTrace, hex.EncodeToString(a.GetSpanId()), true)
		if got := hs[i].Get("traceparent"); got != want {
			t.Errorf("attempt %d sent traceparent %q; want %q", i+1, got, want)
		}
		if got := hs[i].Get("tracestate"); got != clientState {
			t.Errorf("attempt %d sent tracestate %q; want the client's %q", i+1, got, clientState)
		}
	}
}

// TestSampling checks the parent-based ratio sampler: the ratio decides for
// new traces, the client's sampled flag for its own; either way the
// backends get a traceparent carrying the decision.
func TestSampling(t *testing.T) {
	tests := []struct {
		name        string
		ratio       float64
		traceparent string
		wantSampled bool
	}{
		{"new trace, ratio 0", 0, "", false},
		{"new trace, ratio 1", 1, "", true},
		{"sampled client trace, ratio 0", 0, traceparent(clientTrace, clientParent, true), true},
		{"unsampled client trace, ratio 1", 1, traceparent(clientTrace, clientParent, false), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, rc := newTracerTo(t, Options{SampleRatio: tt.ratio})
			hs := serve(tr, tt.traceparent)
			shutdown(t, tr)

			n, want := len(rc.spans()), 0
			if tt.wantSampled {
				want = 3
			}
			if n != want {
				t.Errorf("exported %d spans; want %d", n, want)
			}
			for i, h := range hs {
				parts := strings.Split(h.Get("traceparent"), "-")
				if len(parts) != 4 {
					t.Fatalf("attempt %d sent traceparent %q; want one", i+1, h.Get("traceparent"))
				}
				if tt.traceparent != "" && parts[1] != clientTrace {
					t.Errorf("attempt %d sent trace id %s; want the client's %s", i+1, parts[1], clientTrace)
				}
				if parts[2] == clientParent {
					t.Errorf("attempt %d sent the client's span id as parent; want a span of Sluice's", i+1)
				}
				if got := parts[3] == "01"; got != tt.wantSampled {
					t.Errorf("attempt %d sent flags %s; want sampled %v", i+1, parts[3], tt.wantSampled)
				}
			}
		})
	}
}

// TestSpanStatus checks which status codes and errors mark a span Error,
// and the error.type each leaves.
func TestSpanStatus(t *testing.T) {
	tests := []struct {
		name          string
		attempt       bool
		set           func(s *Span)
		wantError     bool
		wantErrorType string // "" for none
		wantCode      int64  // 0 for no http.response.status_code
	}{
		{"request 200", false, func(s *Span) { s.SetStatusCode(200) }, false, "", 200},
		{"request 404 is the client's error", false, func(s *Span) { s.SetStatusCode(404) }, false, "", 404},
		{"request 429", false, func(s *Span) { s.SetStatusCode(429) }, false, "", 429},
		{"request 502", false, func(s *Span) { s.SetStatusCode(502) }, true, "502", 502},
		{"request without status", false, func(s *Span) { s.SetStatusCode(0) }, true, "_OTHER", 0},
		{"attempt 200", true, func(s *Span) { s.SetStatusCode(200) }, false, "", 200},
		{"attempt 429", true, func(s *Span) { s.SetStatusCode(429) }, true, "429", 429},
		{"attempt 503", true, func(s *Span) { s.SetStatusCode(503) }, true, "503", 503},
		{"attempt timeout", true, func(s *Span) { s.SetError("timeout") }, true, "timeout", 0},
		{"error then status", true, func(s *Span) { s.SetError("timeout"); s.SetStatusCode(0) }, true, "timeout", 0},
		{"status then error", false, func(s *Span) { s.SetStatusCode(502); s.SetError("upstream_closed") }, true, "upstream_closed", 502},
		{"empty error type", false, func(s *Span) { s.SetError("") }, true, "_OTHER", 0},
	}
	tr, rc := newTracerTo(t, Options{SampleRatio: 1})
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
		ctx, req := tr.StartRequest(context.Background(), r, "chat", "gpt-4o")
		s := req
		if tt.attempt {
			s = tr.StartAttempt(ctx, http.Header{}, "chat", "gpt-4o", "b", "openai", "b.example", 1)
		}
		s.SetAttr("test.case", tt.name)
		tt.set(s)
		s.End()
		req.End()
	}
	shutdown(t, tr)

	byCase := map[string]exported{}
	for _, s := range rc.spans() {
		if c, ok := attrMap(s.GetAttributes())["test.case"].(string); ok {
			byCase[c] = s
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := byCase[tt.name]
			if !ok {
				t.Fatal("span not exported")
			}
			attrs := attrMap(s.GetAttributes())
			if got := s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR; got != tt.wantError {
				t.Errorf("status %v; want error %v", s.GetStatus().GetCode(), tt.wantError)
			}
			if got, _ := attrs["error.type"].(string); got != tt.wantErrorType {
				t.Errorf("error.type %q; want %q", got, tt.wantErrorType)
			}
			if got, _ := attrs["http.response.status_code"].(int64); got != tt.wantCode {
				t.Errorf("http.response.status_code %d; want %d", got, tt.wantCode)
			}
		})
	}
}

// TestOff checks that tracing off (no endpoint: a nil Tracer) does nothing,
// leaves the request and the outbound header alone, and allocates nothing.
func TestOff(t *testing.T) {
	tr, err := New(context.Background(), Options{SampleRatio: 1})
	if tr != nil || err != nil {
		t.Fatalf("New without endpoint = %v, %v; want nil, nil", tr, err)
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	r.Header.Set("traceparent", traceparent(clientTrace, clientParent, true))
	ctx := context.Background()
	h := r.Header.Clone()

	run := func() {
		got, req := tr.StartRequest(ctx, r, "chat", "gpt-4o")
		if got != ctx {
			t.Error("StartRequest changed the context")
		}
		if req != nil {
			t.Error("StartRequest returned a span")
		}
		a := tr.StartAttempt(got, h, "chat", "gpt-4o", "east", "azure-openai", "east.example", 1)
		if a != nil {
			t.Error("StartAttempt returned a span")
		}
		a.SetStatusCode(502)
		a.SetError("timeout")
		a.SetUsage(1, 2)
		a.SetResponseModel("gpt-4o")
		a.SetAttr("k", "v")
		a.End()
		req.SetStatusCode(0)
		req.End()
	}
	if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
		t.Errorf("%v allocations per request; want 0", allocs)
	}
	if diff := cmp.Diff(r.Header, h); diff != "" {
		t.Errorf("outbound header changed (-client +outbound):\n%s", diff)
	}
	if err := tr.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown on nil: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string // in the error
	}{
		{"unknown protocol", Options{Endpoint: "collector:4318", Protocol: "thrift", SampleRatio: 1}, `protocol "thrift"`},
		{"negative ratio", Options{Endpoint: "collector:4318", SampleRatio: -0.1}, "sample ratio"},
		{"ratio above 1", Options{Endpoint: "collector:4318", SampleRatio: 1.5}, "sample ratio"},
		{"ratio NaN", Options{Endpoint: "collector:4318", SampleRatio: math.NaN()}, "sample ratio"},
		{"https and insecure", Options{Endpoint: "https://collector:4318", Insecure: true, SampleRatio: 1}, "insecure"},
		{"grpc with a path", Options{Endpoint: "http://collector:4317/v1/traces", Protocol: "grpc", SampleRatio: 1}, "no path"},
		{"other scheme", Options{Endpoint: "ftp://collector:4318", SampleRatio: 1}, `scheme "ftp"`},
		{"path without scheme", Options{Endpoint: "collector:4318/v1/traces", SampleRatio: 1}, "want host:port"},
		{"credentials in the URL", Options{Endpoint: "https://user:pw@collector:4318", SampleRatio: 1}, "use headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := New(context.Background(), tt.o)
			if err == nil {
				tr.Shutdown(context.Background())
				t.Fatalf("New(%+v) succeeded; want an error with %q", tt.o, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		endpoint  string
		insecure  bool
		hasPath   bool
		wantHost  string
		wantPath  string
		wantPlain bool
	}{
		{"http://collector:4318", false, true, "collector:4318", "/v1/traces", true},
		{"http://collector:4318/", false, true, "collector:4318", "/v1/traces", true},
		{"https://otel.example.com/otlp", false, true, "otel.example.com", "/otlp/v1/traces", false},
		{"https://otel.example.com/otlp/v1/traces", false, true, "otel.example.com", "/otlp/v1/traces", false},
		{"collector:4318", false, true, "collector:4318", "/v1/traces", false},
		{"collector:4318", true, true, "collector:4318", "/v1/traces", true},
		{"collector:4317", false, false, "collector:4317", "/v1/traces", false},
		{"http://collector:4317", false, false, "collector:4317", "/v1/traces", true},
		{"https://collector:4317/", false, false, "collector:4317", "/v1/traces", false},
		{"http://[::1]:4318", false, true, "[::1]:4318", "/v1/traces", true},
	}
	for _, tt := range tests {
		host, path, plain, err := parseEndpoint(tt.endpoint, tt.insecure, tt.hasPath)
		if err != nil {
			t.Errorf("parseEndpoint(%q, %v, %v): %v", tt.endpoint, tt.insecure, tt.hasPath, err)
			continue
		}
		if host != tt.wantHost || path != tt.wantPath || plain != tt.wantPlain {
			t.Errorf("parseEndpoint(%q, %v, %v) = %q, %q, %v; want %q, %q, %v", tt.endpoint, tt.insecure, tt.hasPath,
				host, path, plain, tt.wantHost, tt.wantPath, tt.wantPlain)
		}
	}
}

func TestSplitAddress(t *testing.T) {
	tests := []struct {
		in       string
		wantHost string
		wantPort int
	}{
		{"https://east.openai.azure.com", "east.openai.azure.com", 443},
		{"https://east.openai.azure.com/", "east.openai.azure.com", 443},
		{"http://sim:8080/prefix", "sim", 8080},
		{"http://sim", "sim", 80},
		{"HTTP://sim", "sim", 80},
		{"api.openai.com", "api.openai.com", 443},
		{"10.0.0.7:8443", "10.0.0.7", 8443},
		{"[::1]:9000", "::1", 9000},
		{"https://[2001:db8::1]/v1", "2001:db8::1", 443},
		{"https://user@host:444", "host", 444},
		{"", "", 443},
	}
	for _, tt := range tests {
		host, port := splitAddress(tt.in, 443)
		if host != tt.wantHost || port != tt.wantPort {
			t.Errorf("splitAddress(%q) = %q, %d; want %q, %d", tt.in, host, port, tt.wantHost, tt.wantPort)
		}
	}
}

// TestShutdownLeavesNoGoroutine checks that after Shutdown no goroutine of
// the exporters or the batch processor is left, for both protocols.
func TestShutdownLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	for _, proto := range []string{"http", "grpc"} {
		newReceiver, insecure := newHTTPReceiver, false
		if proto == "grpc" {
			newReceiver, insecure = newGRPCReceiver, true
		}
		rc := newReceiver(t)
		tr, err := New(context.Background(), Options{Endpoint: rc.Endpoint, Protocol: proto, Insecure: insecure, SampleRatio: 1})
		if err != nil {
			t.Fatal(err)
		}
		serve(tr, "")
		shutdown(t, tr)
		if len(rc.spans()) != 3 {
			t.Fatalf("%s: exported %d spans; want 3", proto, len(rc.spans()))
		}
		rc.close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Shutdown; want at most %d as before:\n%s",
				runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDocsListEveryAttribute fails when a span attribute Sluice exports is
// missing from docs/tracing.md, or one of the provider values.
func TestDocsListEveryAttribute(t *testing.T) {
	raw, err := os.ReadFile("../../docs/tracing.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	tr, rc := newTracerTo(t, Options{SampleRatio: 1})
	serve(tr, "")
	shutdown(t, tr)
	keys := map[string]bool{"service.name": true, "service.version": true, "azure.ai.openai": true}
	for _, s := range rc.spans() {
		for k := range attrMap(s.GetAttributes()) {
			keys[k] = true
		}
	}
	for k := range keys {
		if !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("docs/tracing.md does not mention `%s`", k)
		}
	}
}
