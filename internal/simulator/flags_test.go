package simulator

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBindFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		want    Options
		wantErr string
	}{
		{
			name: "defaults",
			want: Options{Region: "eastus", Deployments: DefaultDeployments(), MeanCompletionTokens: 125, Faults: Faults{ErrorStatus: 500}},
		},
		{
			name: "everything",
			args: "--key k --region westeurope --deployment gpt-4o=gpt-4o-2024-08-06,tpm=30000,rpm=180 " +
				"--deployment emb=text-embedding-3-large,dims=3072 --deployment mini " +
				"--latency-base 300ms --latency-per-token 15ms --latency-per-token-stddev 3ms --completion-tokens 60 " +
				"--error-rate 0.1 --error-status 503 --added-latency 1s --hang --drop-after-chunks 5 --retry-after 10s --seed 42",
			want: Options{
				APIKey: "k", Region: "westeurope",
				Deployments: map[string]Deployment{
					"gpt-4o": {Model: "gpt-4o-2024-08-06", TokensPerMinute: 30000, RequestsPerMinute: 180},
					"emb":    {Model: "text-embedding-3-large", EmbeddingDimensions: 3072},
					"mini":   {Model: "mini"},
				},
				Latency:              Latency{Base: 300 * time.Millisecond, PerToken: 15 * time.Millisecond, PerTokenStdDev: 3 * time.Millisecond},
				MeanCompletionTokens: 60,
				Faults: Faults{ErrorRate: 0.1, ErrorStatus: 503, AddedLatency: time.Second, Hang: true, DropAfterChunks: 5,
					RetryAfter: 10 * time.Second},
				Seed: 42,
			},
		},
		{
			name: "retry-after in seconds",
			args: "--retry-after 7",
			want: Options{Region: "eastus", Deployments: DefaultDeployments(), MeanCompletionTokens: 125,
				Faults: Faults{ErrorStatus: 500, RetryAfter: 7 * time.Second}},
		},
		{name: "bad retry-after", args: "--retry-after soon", wantErr: "neither seconds nor a duration"},
		{name: "bad setting", args: "--deployment a=b,tpm=lots", wantErr: `"tpm=lots" is not key=N`},
		{name: "unknown setting", args: "--deployment a=b,burst=1", wantErr: `unknown setting "burst"`},
		{name: "duplicate", args: "--deployment a --deployment a=b", wantErr: "defined twice"},
		{name: "no name", args: "--deployment =b", wantErr: "missing name"},
		{name: "error rate", args: "--error-rate 1.5", wantErr: "error_rate 1.5 is not between 0 and 1"},
		{name: "error status", args: "--error-status 200", wantErr: "error_status 200"},
		{name: "negative latency", args: "--latency-base -1s", wantErr: "latencies must not be negative"},
		{name: "completion tokens", args: "--completion-tokens 0", wantErr: "--completion-tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			get := BindFlags(fs)
			err := fs.Parse(strings.Fields(tt.args))
			var got Options
			if err == nil {
				got, err = get()
			}
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v; want one containing %q", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("err = %v", err)
			default:
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("Options (-want +got):\n%s", diff)
				}
			}
		})
	}
}
