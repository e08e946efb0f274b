// Package trace exports OpenTelemetry traces of Sluice's requests over OTLP
// (HTTP or gRPC): a server span per client request and a client span per
// backend attempt, named and attributed as the GenAI semantic conventions
// say, with W3C traceparent carried in from the client and out to backends.
// It is off by default, and off costs nothing: every method is a no-op on a
// nil *Tracer and a nil *Span. It is a mechanism: it imports no part of the
// request pipeline or the configuration.
package trace

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// instrumentation is the instrumentation scope of every span.
const instrumentation = "github.com/sluice-gateway/sluice/internal/trace"

// tracesPath is where OTLP/HTTP receivers take traces (OTLP specification,
// "OTLP/HTTP Request": the default URL path is /v1/traces).
const tracesPath = "/v1/traces"

// Options configures trace export. The zero value turns tracing off.
type Options struct {
	// Endpoint is the OTLP receiver. For protocol http, a URL such as
	// "http://host:4318" or "https://host:4318/prefix", to which /v1/traces
	// is appended unless the path already ends with it; a bare "host:4318"
	// means https. For grpc, "host:4317" or "http://host:4317" (plain text)
	// or "https://host:4317", without a path. Empty: tracing is off.
	Endpoint string
	// Protocol is "http" (OTLP/HTTP with protobuf, the default when empty)
	// or "grpc".
	Protocol string
	// Insecure sends in plain text, without TLS. An http:// endpoint implies
	// it; an https:// endpoint contradicts it and is an error.
	Insecure bool
	// Headers are sent with every export, such as the authorization header
	// of a hosted collector.
	Headers map[string]string
	// SampleRatio is the share of new traces recorded, 0 to 1. A trace the
	// client started follows the client's decision whatever the ratio (W3C
	// traceparent sampled flag). Unlike the configuration, whose default is
	// 1, the zero value here samples no new trace.
	SampleRatio float64
	// ServiceName is the resource's service.name. Default "sluice".
	ServiceName string
	// Version is the resource's service.version; empty leaves it out.
	Version string
}

// Tracer starts Sluice's spans and exports them. A nil *Tracer is tracing
// turned off: its methods do nothing, allocate nothing and return nil spans.
// A Tracer is safe for concurrent use.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   oteltrace.Tracer
}

// propagator reads and writes the W3C traceparent and tracestate headers
// (https://www.w3.org/TR/trace-context/). Baggage is not propagated: it is
// arbitrary data from the client that backends have no use for.
var propagator propagation.TraceContext

// New returns a Tracer exporting to o.Endpoint, or nil and no error when
// o.Endpoint is empty. It has its own TracerProvider, never the global one,
// and exports in batches from a goroutine that Shutdown stops. An unreachable
// receiver is not an error here: exports fail later, spans are dropped, and
// the OpenTelemetry SDK reports the failures through its error handler.
//
// Settings Options leaves out (export timeout, compression, CA certificate,
// client certificate) come from the standard OTEL_EXPORTER_OTLP_*
// environment variables, and OTEL_RESOURCE_ATTRIBUTES adds resource
// attributes.
func New(ctx context.Context, o Options) (*Tracer, error) {
	if o.Endpoint == "" {
		return nil, nil
	}
	if math.IsNaN(o.SampleRatio) || o.SampleRatio < 0 || o.SampleRatio > 1 {
		return nil, fmt.Errorf("trace: sample ratio %v: want 0 to 1", o.SampleRatio)
	}
	exp, err := newExporter(ctx, o)
	if err != nil {
		return nil, err
	}
	t, err := newTracer(ctx, exp, o)
	if err != nil {
		return nil, errors.Join(err, exp.Shutdown(ctx))
	}
	return t, nil
}

// newTracer returns a Tracer exporting through exp in batches.
func newTracer(ctx context.Context, exp sdktrace.SpanExporter, o Options) (*Tracer, error) {
	name := o.ServiceName
	if name == "" {
		name = "sluice"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if o.Version != "" {
		attrs = append(attrs, attribute.String("service.version", o.Version))
	}
	// Later options win: the configured name beats OTEL_SERVICE_NAME.
	res, err := resource.New(ctx,
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attrs...),
	)
	if err != nil {
		return nil, fmt.Errorf("trace: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.SampleRatio))),
	)
	return &Tracer{
		provider: tp,
		tracer:   tp.Tracer(instrumentation, oteltrace.WithInstrumentationVersion(o.Version)),
	}, nil
}

// Shutdown exports the spans that ended and are still queued, then stops
// the export goroutine and closes the exporter's connections. Spans started
// afterwards are dropped. It returns when done or when ctx ends. It is a
// no-op on a nil Tracer.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("trace: shutdown: %w", err)
	}
	return nil
}

// newExporter returns the OTLP exporter o asks for.
func newExporter(ctx context.Context, o Options) (sdktrace.SpanExporter, error) {
	switch o.Protocol {
	case "", "http":
		host, path, insecure, err := parseEndpoint(o.Endpoint, o.Insecure, true)
		if err != nil {
			return nil, err
		}
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpoint(host),
			otlptracehttp.WithURLPath(path),
		}
		if insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(o.Headers))
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("trace: otlp http exporter: %w", err)
		}
		return exp, nil
	case "grpc":
		host, _, insecure, err := parseEndpoint(o.Endpoint, o.Insecure, false)
		if err != nil {
			return nil, err
		}
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(host)}
		if insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(o.Headers))
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("trace: otlp grpc exporter: %w", err)
		}
		return exp, nil
	default:
		return nil, fmt.Errorf("trace: protocol %q: want http or grpc", o.Protocol)
	}
}

// parseEndpoint splits an OTLP endpoint into host[:port] and the URL path
// ending in /v1/traces (used by OTLP/HTTP only: hasPath is false for gRPC,
// whose endpoint must have none); plain is true for plain text.
func parseEndpoint(endpoint string, insecure, hasPath bool) (host, path string, plain bool, err error) {
	if !strings.Contains(endpoint, "://") {
		if strings.ContainsAny(endpoint, "/?#") {
			return "", "", false, fmt.Errorf("trace: endpoint %q: want host:port or a URL with http:// or https://", endpoint)
		}
		return endpoint, tracesPath, insecure, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", "", false, fmt.Errorf("trace: endpoint: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "", false, fmt.Errorf("trace: endpoint %q: scheme %q: want http or https", endpoint, u.Scheme)
	case u.Host == "":
		return "", "", false, fmt.Errorf("trace: endpoint %q: no host", endpoint)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", "", false, fmt.Errorf("trace: endpoint %q: want no user, query or fragment (use headers for credentials)", endpoint)
	case u.Scheme == "https" && insecure:
		return "", "", false, fmt.Errorf("trace: endpoint %q is https but insecure is set", endpoint)
	case !hasPath && strings.TrimSuffix(u.Path, "/") != "":
		return "", "", false, fmt.Errorf("trace: endpoint %q: a grpc endpoint has no path", endpoint)
	}
	path = strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(path, tracesPath) {
		path += tracesPath
	}
	return u.Host, path, u.Scheme == "http", nil
}
