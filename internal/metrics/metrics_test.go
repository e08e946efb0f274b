package metrics

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// help is every request metric's help text, as the expected exposition
// needs it.
var help = map[string]string{
	"sluice_requests_total":                       "Client requests served, by status class (2xx, 3xx, 4xx, 5xx, other).",
	"sluice_tokens_total":                         "Tokens used, by type (input, output, cached; cached tokens are part of input).",
	"sluice_retries_total":                        "Backend attempts beyond the first (retries and failovers); backend is the one that answered last.",
	"sluice_limit_rejections_total":               "Requests refused by a limit, by reason.",
	"gen_ai_client_token_usage":                   "Tokens used per request (OpenTelemetry gen_ai.client.token.usage).",
	"gen_ai_server_request_duration_seconds":      "Time from request to the last byte of the response (OpenTelemetry gen_ai.server.request.duration).",
	"gen_ai_server_time_to_first_token_seconds":   "Time from request to the first token of a successful response (OpenTelemetry gen_ai.server.time_to_first_token).",
	"gen_ai_server_time_per_output_token_seconds": "Time per output token after the first, of successful streamed responses (OpenTelemetry gen_ai.server.time_per_output_token).",
	"sluice_overhead_seconds":                     "Time a request spent inside Sluice, excluding the time waiting on backends.",
	"sluice_quota_remaining_tokens":               "Tokens left in the subscription's quota period, as of its last request.",
}

// requestMetrics are the families Observe writes.
var requestMetrics = []string{
	"sluice_requests_total", "sluice_tokens_total", "sluice_retries_total", "sluice_limit_rejections_total",
	"gen_ai_client_token_usage", "gen_ai_server_request_duration_seconds",
	"gen_ai_server_time_to_first_token_seconds", "gen_ai_server_time_per_output_token_seconds",
	"sluice_overhead_seconds",
}

// family returns the exposition of one metric family: its HELP and TYPE
// lines, then the series.
func family(name, typ string, series ...string) string {
	return fmt.Sprintf("# HELP %s %s\n# TYPE %s %s\n%s", name, help[name], name, typ, strings.Join(series, ""))
}

// sorted returns labels (name="value" pairs without commas in the values)
// in name order, as the registry writes them.
func sorted(labels string) string {
	l := strings.Split(labels, ",")
	slices.Sort(l)
	return strings.Join(l, ",")
}

// sample returns one sample line.
func sample(name, labels string, v float64) string {
	labels = sorted(labels)
	return fmt.Sprintf("%s{%s} %s\n", name, labels, strconv.FormatFloat(v, 'g', -1, 64))
}

// hist returns the sample lines of a histogram series that observed values.
func hist(name, labels string, bounds []float64, values ...float64) string {
	labels = sorted(labels)
	var b strings.Builder
	sum := 0.0
	for _, v := range values {
		sum += v
	}
	for _, le := range append(slices.Clone(bounds), math.Inf(1)) {
		n := 0
		for _, v := range values {
			if v <= le {
				n++
			}
		}
		l := "+Inf"
		if !math.IsInf(le, 1) {
			l = strconv.FormatFloat(le, 'g', -1, 64)
		}
		fmt.Fprintf(&b, "%s_bucket{%s,le=%q} %d\n", name, labels, l, n)
	}
	fmt.Fprintf(&b, "%s_sum{%s} %s\n", name, labels, strconv.FormatFloat(sum, 'g', -1, 64))
	fmt.Fprintf(&b, "%s_count{%s} %d\n", name, labels, len(values))
	return b.String()
}

// dims is the dimension labels of the test requests with every dimension on;
// noDims with none.
const (
	dims   = `subscription="team-a",product="gold",deployment="gpt-4o-eu",backend="azure-eu",region="westeurope",client_ip="192.0.2.7"`
	noDims = `subscription="",product="",deployment="",backend="",region="",client_ip=""`
)

var all = Dimensions{Subscription: true, Product: true, Model: true, Deployment: true, Backend: true, Region: true, ClientIP: true}

// streamed is a successful streamed chat request that took a retry.
func streamed() *Request {
	return &Request{
		Operation: "chat", Subscription: "team-a", Product: "gold", Model: "gpt-4o", Deployment: "gpt-4o-eu",
		Backend: "azure-eu", Region: "westeurope", ClientIP: "192.0.2.7",
		Status: 200, Stream: true,
		InputTokens: 100, OutputTokens: 11, CachedTokens: 40,
		Duration: 2100 * time.Millisecond, TimeToFirstToken: 100 * time.Millisecond, Overhead: 150 * time.Microsecond,
		Attempts: 2,
	}
}

func TestObserve(t *testing.T) {
	tests := []struct {
		name     string
		dims     Dimensions
		requests []*Request
		want     string
	}{{
		name:     "streamed chat, every dimension, twice",
		dims:     all,
		requests: []*Request{streamed(), streamed()},
		want: family("sluice_requests_total", "counter",
			sample("sluice_requests_total", `status_class="2xx",operation="chat",model="gpt-4o",`+dims, 2)) +
			family("sluice_tokens_total", "counter",
				sample("sluice_tokens_total", `type="input",operation="chat",model="gpt-4o",`+dims, 200),
				sample("sluice_tokens_total", `type="output",operation="chat",model="gpt-4o",`+dims, 22),
				sample("sluice_tokens_total", `type="cached",operation="chat",model="gpt-4o",`+dims, 80)) +
			family("sluice_retries_total", "counter",
				sample("sluice_retries_total", `operation="chat",model="gpt-4o",`+dims, 2)) +
			family("gen_ai_client_token_usage", "histogram",
				hist("gen_ai_client_token_usage", `gen_ai_token_type="input",gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",`+dims, tokenBuckets, 100, 100),
				hist("gen_ai_client_token_usage", `gen_ai_token_type="output",gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",`+dims, tokenBuckets, 11, 11),
				hist("gen_ai_client_token_usage", `gen_ai_token_type="cached",gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",`+dims, tokenBuckets, 40, 40)) +
			family("gen_ai_server_request_duration_seconds", "histogram",
				hist("gen_ai_server_request_duration_seconds", `gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",error_type="",`+dims, durationBuckets, 2.1, 2.1)) +
			family("gen_ai_server_time_to_first_token_seconds", "histogram",
				hist("gen_ai_server_time_to_first_token_seconds", `gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_request_stream="true",`+dims, ttftBuckets, 0.1, 0.1)) +
			// (2.1 s - 0.1 s) / (11 - 1) tokens.
			family("gen_ai_server_time_per_output_token_seconds", "histogram",
				hist("gen_ai_server_time_per_output_token_seconds", `gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",`+dims, tpotBuckets, 0.2, 0.2)) +
			family("sluice_overhead_seconds", "histogram",
				hist("sluice_overhead_seconds", `operation="chat"`, overheadBuckets, 0.00015, 0.00015)),
	}, {
		name:     "dimensions off leave their labels empty",
		requests: []*Request{streamed()},
		want: family("sluice_requests_total", "counter",
			sample("sluice_requests_total", `status_class="2xx",operation="chat",model="",`+noDims, 1)) +
			family("sluice_tokens_total", "counter",
				sample("sluice_tokens_total", `type="input",operation="chat",model="",`+noDims, 100),
				sample("sluice_tokens_total", `type="output",operation="chat",model="",`+noDims, 11),
				sample("sluice_tokens_total", `type="cached",operation="chat",model="",`+noDims, 40)) +
			family("sluice_retries_total", "counter",
				sample("sluice_retries_total", `operation="chat",model="",`+noDims, 1)) +
			family("gen_ai_client_token_usage", "histogram",
				hist("gen_ai_client_token_usage", `gen_ai_token_type="input",gen_ai_operation_name="chat",gen_ai_request_model="",`+noDims, tokenBuckets, 100),
				hist("gen_ai_client_token_usage", `gen_ai_token_type="output",gen_ai_operation_name="chat",gen_ai_request_model="",`+noDims, tokenBuckets, 11),
				hist("gen_ai_client_token_usage", `gen_ai_token_type="cached",gen_ai_operation_name="chat",gen_ai_request_model="",`+noDims, tokenBuckets, 40)) +
			family("gen_ai_server_request_duration_seconds", "histogram",
				hist("gen_ai_server_request_duration_seconds", `gen_ai_operation_name="chat",gen_ai_request_model="",error_type="",`+noDims, durationBuckets, 2.1)) +
			family("gen_ai_server_time_to_first_token_seconds", "histogram",
				hist("gen_ai_server_time_to_first_token_seconds", `gen_ai_operation_name="chat",gen_ai_request_model="",gen_ai_request_stream="true",`+noDims, ttftBuckets, 0.1)) +
			family("gen_ai_server_time_per_output_token_seconds", "histogram",
				hist("gen_ai_server_time_per_output_token_seconds", `gen_ai_operation_name="chat",gen_ai_request_model="",`+noDims, tpotBuckets, 0.2)) +
			family("sluice_overhead_seconds", "histogram",
				hist("sluice_overhead_seconds", `operation="chat"`, overheadBuckets, 0.00015)),
	}, {
		name: "some dimensions on",
		dims: Dimensions{Subscription: true, Model: true},
		requests: []*Request{{
			Operation: "embeddings", Subscription: "team-a", Product: "gold", Model: "ada", Backend: "azure-eu", Region: "westeurope",
			Status: 200, InputTokens: 8, Duration: 50 * time.Millisecond, TimeToFirstToken: 50 * time.Millisecond, Attempts: 1,
		}},
		// No output tokens: no output series. Not streamed: no time per
		// output token. No overhead measured: no overhead sample.
		want: family("sluice_requests_total", "counter",
			sample("sluice_requests_total", `status_class="2xx",operation="embeddings",model="ada",subscription="team-a",product="",deployment="",backend="",region="",client_ip=""`, 1)) +
			family("sluice_tokens_total", "counter",
				sample("sluice_tokens_total", `type="input",operation="embeddings",model="ada",subscription="team-a",product="",deployment="",backend="",region="",client_ip=""`, 8)) +
			family("gen_ai_client_token_usage", "histogram",
				hist("gen_ai_client_token_usage", `gen_ai_token_type="input",gen_ai_operation_name="embeddings",gen_ai_request_model="ada",subscription="team-a",product="",deployment="",backend="",region="",client_ip=""`, tokenBuckets, 8)) +
			family("gen_ai_server_request_duration_seconds", "histogram",
				hist("gen_ai_server_request_duration_seconds", `gen_ai_operation_name="embeddings",gen_ai_request_model="ada",error_type="",subscription="team-a",product="",deployment="",backend="",region="",client_ip=""`, durationBuckets, 0.05)) +
			family("gen_ai_server_time_to_first_token_seconds", "histogram",
				hist("gen_ai_server_time_to_first_token_seconds", `gen_ai_operation_name="embeddings",gen_ai_request_model="ada",gen_ai_request_stream="false",subscription="team-a",product="",deployment="",backend="",region="",client_ip=""`, ttftBuckets, 0.05)),
	}, {
		name: "refused by quota before routing",
		dims: all,
		requests: []*Request{{
			Operation: "chat", Subscription: "team-a", Product: "gold", Model: "gpt-4o", ClientIP: "192.0.2.7",
			Status: 429, Duration: 300 * time.Microsecond, Overhead: 300 * time.Microsecond, LimitRejection: "quota",
		}},
		// An error has no time to first token, whatever the field says.
		want: family("sluice_requests_total", "counter",
			sample("sluice_requests_total", `status_class="4xx",operation="chat",model="gpt-4o",subscription="team-a",product="gold",deployment="",backend="",region="",client_ip="192.0.2.7"`, 1)) +
			family("sluice_limit_rejections_total", "counter",
				sample("sluice_limit_rejections_total", `reason="quota",operation="chat",model="gpt-4o",subscription="team-a",product="gold",deployment="",backend="",region="",client_ip="192.0.2.7"`, 1)) +
			family("gen_ai_server_request_duration_seconds", "histogram",
				hist("gen_ai_server_request_duration_seconds", `gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",error_type="429",subscription="team-a",product="gold",deployment="",backend="",region="",client_ip="192.0.2.7"`, durationBuckets, 0.0003)) +
			family("sluice_overhead_seconds", "histogram",
				hist("sluice_overhead_seconds", `operation="chat"`, overheadBuckets, 0.0003)),
	}, {
		name: "failed stream has no token timings",
		requests: []*Request{{
			Operation: "chat", Status: 502, Stream: true, OutputTokens: 5,
			Duration: time.Second, TimeToFirstToken: 200 * time.Millisecond, Attempts: 3,
		}},
		want: family("sluice_requests_total", "counter",
			sample("sluice_requests_total", `status_class="5xx",operation="chat",model="",`+noDims, 1)) +
			family("sluice_tokens_total", "counter",
				sample("sluice_tokens_total", `type="output",operation="chat",model="",`+noDims, 5)) +
			family("sluice_retries_total", "counter",
				sample("sluice_retries_total", `operation="chat",model="",`+noDims, 2)) +
			family("gen_ai_client_token_usage", "histogram",
				hist("gen_ai_client_token_usage", `gen_ai_token_type="output",gen_ai_operation_name="chat",gen_ai_request_model="",`+noDims, tokenBuckets, 5)) +
			family("gen_ai_server_request_duration_seconds", "histogram",
				hist("gen_ai_server_request_duration_seconds", `gen_ai_operation_name="chat",gen_ai_request_model="",error_type="502",`+noDims, durationBuckets, 1)),
	}, {
		name: "labels stay bounded",
		requests: []*Request{{
			Operation: "responses", Status: 0, LimitRejection: "made up by a bug",
		}, {
			Operation: "responses", Status: 1234, LimitRejection: "tokens_per_minute",
		}},
		want: family("sluice_requests_total", "counter",
			sample("sluice_requests_total", `status_class="other",operation="responses",model="",`+noDims, 2)) +
			family("sluice_limit_rejections_total", "counter",
				sample("sluice_limit_rejections_total", `reason="other",operation="responses",model="",`+noDims, 1),
				sample("sluice_limit_rejections_total", `reason="tokens_per_minute",operation="responses",model="",`+noDims, 1)) +
			family("gen_ai_server_request_duration_seconds", "histogram",
				hist("gen_ai_server_request_duration_seconds", `gen_ai_operation_name="responses",gen_ai_request_model="",error_type="_OTHER",`+noDims, durationBuckets, 0, 0)),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{Dimensions: tt.dims})
			for _, r := range tt.requests {
				m.Observe(r)
			}
			if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(tt.want), requestMetrics...); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestObserveTimePerOutputToken pins the formula with literal buckets:
// (1.5 s - 0.5 s) / (5 - 1) tokens = 0.25 s, in the 0.3 bucket but not 0.2.
func TestObserveTimePerOutputToken(t *testing.T) {
	m := New(Options{})
	m.Observe(&Request{Operation: "chat", Status: 200, Stream: true, OutputTokens: 5, Duration: 1500 * time.Millisecond, TimeToFirstToken: 500 * time.Millisecond})
	// One output token has no time per token; nor does a stream whose
	// duration is not past its first token.
	m.Observe(&Request{Operation: "chat", Status: 200, Stream: true, OutputTokens: 1, Duration: 1500 * time.Millisecond, TimeToFirstToken: 500 * time.Millisecond})
	m.Observe(&Request{Operation: "chat", Status: 200, Stream: true, OutputTokens: 9, Duration: 500 * time.Millisecond, TimeToFirstToken: 500 * time.Millisecond})
	l := sorted(`gen_ai_operation_name="chat",gen_ai_request_model="",` + noDims)
	want := family("gen_ai_server_time_per_output_token_seconds", "histogram") + strings.NewReplacer("L", l).Replace(`
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.001"} 0
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.0025"} 0
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.005"} 0
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.01"} 0
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.025"} 0
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.05"} 0
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.075"} 0
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.1"} 0
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.15"} 0
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.2"} 0
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.3"} 1
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.4"} 1
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.5"} 1
gen_ai_server_time_per_output_token_seconds_bucket{L,le="0.75"} 1
gen_ai_server_time_per_output_token_seconds_bucket{L,le="1"} 1
gen_ai_server_time_per_output_token_seconds_bucket{L,le="2.5"} 1
gen_ai_server_time_per_output_token_seconds_bucket{L,le="+Inf"} 1
gen_ai_server_time_per_output_token_seconds_sum{L} 0.25
gen_ai_server_time_per_output_token_seconds_count{L} 1
`)
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "gen_ai_server_time_per_output_token_seconds"); err != nil {
		t.Error(err)
	}
}

// TestBucketsKeepOpenTelemetry checks that every boundary OpenTelemetry
// recommends is still a boundary, so dashboards built for its buckets work.
func TestBucketsKeepOpenTelemetry(t *testing.T) {
	tests := []struct {
		name      string
		got, otel []float64
	}{
		{"gen_ai.client.token.usage", tokenBuckets, []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}},
		{"gen_ai.server.request.duration", durationBuckets, []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}},
		{"gen_ai.server.time_to_first_token", ttftBuckets, []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}},
		{"gen_ai.server.time_per_output_token", tpotBuckets, []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}},
	}
	for _, tt := range tests {
		for _, b := range tt.otel {
			if !slices.Contains(tt.got, b) {
				t.Errorf("%s: boundary %g missing from %v", tt.name, b, tt.got)
			}
		}
		if !slices.IsSorted(tt.got) {
			t.Errorf("%s: boundaries %v not sorted", tt.name, tt.got)
		}
	}
	if overheadBuckets[0] != 10e-6 {
		t.Errorf("first overhead boundary = %g; want 10µs", overheadBuckets[0])
	}
}

func TestObserveConcurrent(t *testing.T) {
	m := New(Options{Dimensions: all})
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r := streamed()
				r.Subscription = fmt.Sprintf("team-%d", (g+i)%4)
				m.Observe(r)
			}
		})
	}
	wg.Wait()
	if got, want := testutil.ToFloat64(m.requests.WithLabelValues("2xx", "chat", "gpt-4o", "team-0", "gold", "gpt-4o-eu", "azure-eu", "westeurope", "192.0.2.7")), float64(goroutines*each/4); got != want {
		t.Errorf("requests of team-0 = %v; want %v", got, want)
	}
	if got, want := testutil.CollectAndCount(m.tokenUsage), 4*numTokenTypes; got != want {
		t.Errorf("token usage series = %d; want %d", got, want)
	}
}

func TestQuotaRemaining(t *testing.T) {
	m := New(Options{Dimensions: Dimensions{Subscription: true}})
	m.QuotaRemaining("team-a", 5000)
	m.QuotaRemaining("team-b", 0)
	m.QuotaRemaining("team-a", 4200)
	want := family("sluice_quota_remaining_tokens", "gauge",
		sample("sluice_quota_remaining_tokens", `subscription="team-a"`, 4200),
		sample("sluice_quota_remaining_tokens", `subscription="team-b"`, 0))
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "sluice_quota_remaining_tokens"); err != nil {
		t.Error(err)
	}

	off := New(Options{Dimensions: Dimensions{Model: true}})
	off.QuotaRemaining("team-a", 5000)
	if n := testutil.CollectAndCount(off.quota); n != 0 {
		t.Errorf("with the subscription dimension off, quota series = %d; want 0", n)
	}
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.Observe(streamed()) // must not panic
	m.QuotaRemaining("team-a", 1)
}

func TestParseDimensions(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    Dimensions
		wantErr string
	}{
		{name: "none", in: nil, want: Dimensions{}},
		{name: "config default", in: []string{"subscription", "product", "model", "deployment", "backend", "region"},
			want: Dimensions{Subscription: true, Product: true, Model: true, Deployment: true, Backend: true, Region: true}},
		{name: "client ip", in: []string{"client_ip"}, want: Dimensions{ClientIP: true}},
		{name: "unknown", in: []string{"model", "user"}, wantErr: `unknown metrics dimension "user"`},
		{name: "twice", in: []string{"model", "model"}, wantErr: `metrics dimension "model" listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDimensions(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseDimensions(%q) error = %v; want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDimensions(%q) error = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseDimensions(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}
