package trace

import (
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// receiver is an OTLP trace receiver, over HTTP or gRPC, that keeps what it
// was sent.
type receiver struct {
	// Endpoint is what Options.Endpoint takes to reach it.
	Endpoint string
	// close stops the server and waits for its goroutines.
	close func()

	mu   sync.Mutex // guards the fields below
	got  []*tracepb.ResourceSpans
	auth []string // the authorization header of each export
}

// record keeps one export request and its authorization header.
func (rc *receiver) record(req *coltracepb.ExportTraceServiceRequest, auth string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.got = append(rc.got, req.GetResourceSpans()...)
	rc.auth = append(rc.auth, auth)
}

// exported is a span as received with the resource it came with.
type exported struct {
	*tracepb.Span
	resource map[string]any
}

// spans returns every span received, in order.
func (rc *receiver) spans() []exported {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []exported
	for _, rs := range rc.got {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				out = append(out, exported{Span: s, resource: res})
			}
		}
	}
	return out
}

// authHeaders returns the authorization header of each export.
func (rc *receiver) authHeaders() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.auth...)
}

// attrMap turns OTLP attributes into a map of Go values (string, int64,
// bool, float64).
func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = v.IntValue
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = v.BoolValue
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = v.DoubleValue
		default:
			m[kv.GetKey()] = kv.GetValue().String()
		}
	}
	return m
}

// newHTTPReceiver serves OTLP/HTTP with protobuf at POST /v1/traces, as
// the OTLP specification's "OTLP/HTTP" section says.
func newHTTPReceiver(t testing.TB) *receiver {
	rc := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			http.Error(w, "content type "+ct, http.StatusUnsupportedMediaType)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.record(&req, r.Header.Get("Authorization"))
		resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(resp)
	}))
	rc.Endpoint = srv.URL
	rc.close = sync.OnceFunc(srv.Close)
	t.Cleanup(rc.close)
	return rc
}

// grpcService is the TraceService of a gRPC receiver.
type grpcService struct {
	coltracepb.UnimplementedTraceServiceServer
	rc *receiver
}

func (g grpcService) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	auth := ""
	if v := md.Get("authorization"); len(v) > 0 {
		auth = v[0]
	}
	g.rc.record(req, auth)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// newGRPCReceiver serves OTLP/gRPC in plain text on a free local port; its
// Endpoint is host:port.
func newGRPCReceiver(t testing.TB) *receiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{Endpoint: ln.Addr().String()}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, grpcService{rc: rc})
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	rc.close = sync.OnceFunc(func() {
		srv.Stop()
		<-done
	})
	t.Cleanup(rc.close)
	return rc
}
