package simulator

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// BindFlags defines the simulator's command-line flags on fs and returns a
// function that, after fs.Parse, validates them and returns the Options they
// describe. Now, OnRequest and Logger are left for the caller to set.
func BindFlags(fs *flag.FlagSet) func() (Options, error) {
	var (
		o    Options
		deps deploymentsFlag
	)
	fs.StringVar(&o.APIKey, "key", "", "API key clients must send in api-key or Authorization: Bearer (empty: no authentication)")
	fs.StringVar(&o.Region, "region", "eastus", "region reported in the x-ms-region header")
	fs.Var(&deps, "deployment", "deployment as name=model[,tpm=N][,rpm=N][,dims=N]; repeatable "+
		"(default gpt-4o=gpt-4o-2024-11-20 and text-embedding-3-small)")
	fs.DurationVar(&o.Latency.Base, "latency-base", 0, "latency before the first token, and of embeddings")
	fs.DurationVar(&o.Latency.PerToken, "latency-per-token", 0, "mean latency per completion token")
	fs.DurationVar(&o.Latency.PerTokenStdDev, "latency-per-token-stddev", 0, "standard deviation of the latency per completion token")
	fs.IntVar(&o.MeanCompletionTokens, "completion-tokens", 125, "mean reply length in tokens when a request sets no limit")
	fs.Float64Var(&o.Faults.ErrorRate, "error-rate", 0, "fraction of requests, 0 to 1, answered with --error-status")
	fs.IntVar(&o.Faults.ErrorStatus, "error-status", 500, "status of injected errors")
	fs.DurationVar(&o.Faults.AddedLatency, "added-latency", 0, "latency added to every request")
	fs.BoolVar(&o.Faults.Hang, "hang", false, "never answer; requests end when their clients give up")
	fs.BoolVar(&o.Faults.Disconnect, "disconnect", false, "close every connection without an answer")
	fs.IntVar(&o.Faults.DropAfterChunks, "drop-after-chunks", 0, "break every stream's connection after N events (0: never)")
	fs.Var((*seconds)(&o.Faults.RetryAfter), "retry-after", "answer every request 429 with this Retry-After, in seconds or as a duration such as 1500ms (0: off)")
	fs.Int64Var(&o.Seed, "seed", 0, "seed of the generated replies and fault draws")
	var entra Entra
	var issuers string
	fs.StringVar(&entra.JWKSURL, "entra-jwks", "", "Entra mode: accept bearer tokens signed with the keys of this JWKS URL")
	fs.StringVar(&issuers, "entra-issuers", "", "Entra mode: accepted token issuers, comma-separated (the tenant's v1 and v2)")
	fs.StringVar(&entra.Audience, "entra-audience", CognitiveServices, "Entra mode: accepted token audience")
	fs.BoolVar(&entra.DisableLocalAuth, "disable-local-auth", false, "Entra mode: refuse keys, as an account with disableLocalAuth does")
	return func() (Options, error) {
		if entra.JWKSURL != "" {
			if issuers == "" {
				return o, errors.New("--entra-jwks needs --entra-issuers")
			}
			entra.Issuers = strings.Split(issuers, ",")
			o.Entra = &entra
		} else if entra.DisableLocalAuth || issuers != "" {
			return o, errors.New("--disable-local-auth and --entra-issuers need --entra-jwks")
		}
		o.Deployments = DefaultDeployments()
		if len(deps) > 0 {
			o.Deployments = map[string]Deployment(deps)
		}
		switch {
		case o.Latency.Base < 0 || o.Latency.PerToken < 0 || o.Latency.PerTokenStdDev < 0:
			return o, errors.New("latencies must not be negative")
		case o.MeanCompletionTokens < 1:
			return o, errors.New("--completion-tokens must be at least 1")
		}
		if err := o.Faults.Validate(); err != nil {
			return o, fmt.Errorf("faults: %w", err)
		}
		return o, nil
	}
}

// deploymentsFlag collects --deployment flags.
type deploymentsFlag map[string]Deployment

func (f *deploymentsFlag) String() string {
	if f == nil {
		return ""
	}
	var parts []string
	for name, d := range *f {
		parts = append(parts, name+"="+d.Model)
	}
	return strings.Join(parts, " ")
}

// Set parses name=model[,tpm=N][,rpm=N][,dims=N]; a bare name is its own
// model.
func (f *deploymentsFlag) Set(v string) error {
	fields := strings.Split(v, ",")
	name, model, _ := strings.Cut(fields[0], "=")
	if name == "" {
		return fmt.Errorf("deployment %q: missing name", v)
	}
	if *f == nil {
		*f = make(deploymentsFlag)
	}
	if _, dup := (*f)[name]; dup {
		return fmt.Errorf("deployment %q: defined twice", name)
	}
	d := Deployment{Model: cmpOr(model, name)}
	for _, kv := range fields[1:] {
		k, val, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(val)
		if !ok || err != nil || n < 0 {
			return fmt.Errorf("deployment %q: %q is not key=N with N a whole number", name, kv)
		}
		switch k {
		case "tpm":
			d.TokensPerMinute = n
		case "rpm":
			d.RequestsPerMinute = n
		case "dims":
			d.EmbeddingDimensions = n
		default:
			return fmt.Errorf("deployment %q: unknown setting %q (want tpm, rpm or dims)", name, k)
		}
	}
	(*f)[name] = d
	return nil
}

// seconds is a duration flag that also takes a bare number of seconds, as
// Retry-After does.
type seconds time.Duration

func (s *seconds) String() string { return time.Duration(*s).String() }

func (s *seconds) Set(v string) error {
	d, err := parseSeconds(v)
	*s = seconds(d)
	return err
}

// parseSeconds reads a whole number of seconds or a Go duration.
func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is neither seconds nor a duration such as 1500ms", v)
	}
	return d, nil
}
