package backend

import (
	"context"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/internal/breaker"
	"github.com/sluice-gateway/sluice/internal/transport"
)

// State is a backend's live state: its connection pool, circuit breaker,
// latency average and counters. It survives a config reload for as long as
// a backend of the same name and URL exists. It is safe for concurrent use.
type State struct {
	// Breaker is the backend's circuit breaker.
	Breaker *breaker.Breaker

	transport      *transport.Transport
	connectTimeout atomic.Int64 // nanoseconds; read by every dial

	inflight         atomic.Int64
	requests         atomic.Uint64
	errors           atomic.Uint64
	credentialErrors atomic.Uint64
	latency          atomic.Uint64 // math.Float64bits of the moving average of time to first byte, in seconds

	// What the backend last said of its capacity (ObserveCapacity).
	remTokens, remRequests atomic.Int64
	remUntil               atomic.Int64 // unix nanoseconds until which they hold
}

// NewState returns the state of a new backend with its own connection pool
// and a breaker with no rules; New sets the rules.
func NewState(name string, onChange func(breaker.Change)) *State {
	s := &State{Breaker: breaker.New(name, nil, onChange)}
	s.connectTimeout.Store(int64(10 * time.Second))
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Duration(s.connectTimeout.Load()))
		defer cancel()
		return dialer.DialContext(ctx, network, addr)
	}
	fallback := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dial,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		// The gateway passes bodies through as they come; transparent
		// decompression would hide the encoding and delay stream events.
		DisableCompression: true,
	}
	// Sluice's own HTTP/1.1 client, in the request's goroutine; net/http's
	// for proxies from the environment and servers that refuse HTTP/1.1.
	s.transport = &transport.Transport{
		Dial:                dial,
		Proxy:               http.ProxyFromEnvironment,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleTimeout:         90 * time.Second,
		MaxIdlePerHost:      1024,
		Fallback:            fallback,
	}
	return s
}

// Close releases the state's idle connections.
func (s *State) Close() { s.transport.CloseIdleConnections() }

// CredentialErrors returns the number of requests not sent because the
// backend's credential could not be had.
func (s *State) CredentialErrors() uint64 { return s.credentialErrors.Load() }

// InFlight returns the number of requests being served now.
func (s *State) InFlight() int64 { return s.inflight.Load() }

// Requests returns the number of requests sent.
func (s *State) Requests() uint64 { return s.requests.Load() }

// Errors returns the number of requests that failed: transport errors,
// broken responses, and statuses the breaker counts as failures.
func (s *State) Errors() uint64 { return s.errors.Load() }

// latencyWeight is the weight of a new sample in the moving average: with
// 0.3, a backend whose latency changed is seen at its new speed after about
// five requests, which least_latency's exploration provides within seconds.
const latencyWeight = 0.3

// ObserveLatency folds a time-to-first-byte sample into the moving average.
func (s *State) ObserveLatency(d time.Duration) {
	x := d.Seconds()
	for {
		old := s.latency.Load()
		avg := math.Float64frombits(old)
		next := x
		if old != 0 {
			next = avg + latencyWeight*(x-avg)
		}
		if s.latency.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// Latency returns the moving average of time to first byte; 0 when no
// request has completed yet.
func (s *State) Latency() time.Duration {
	return time.Duration(math.Float64frombits(s.latency.Load()) * float64(time.Second))
}

// LatencySeconds is Latency as float seconds, for comparisons on the hot path.
func (s *State) LatencySeconds() float64 { return math.Float64frombits(s.latency.Load()) }

// capacityTTL is how long a backend's x-ratelimit-remaining-* headers are
// believed: Azure and OpenAI count in one-minute windows, so after a minute
// the numbers say nothing about now.
const capacityTTL = time.Minute

// ObserveCapacity records what a response says of the backend's remaining
// capacity: its x-ratelimit-remaining-tokens and -requests headers, or, for
// a 429, none left until retryAfter (a minute when it gave none).
func (s *State) ObserveCapacity(h http.Header, status int, now time.Time, retryAfter time.Duration) {
	if status == http.StatusTooManyRequests {
		if retryAfter <= 0 {
			retryAfter = capacityTTL
		}
		s.remTokens.Store(0)
		s.remRequests.Store(0)
		s.remUntil.Store(now.Add(min(retryAfter, capacityTTL)).UnixNano())
		return
	}
	t, okT := headerInt(h, "X-Ratelimit-Remaining-Tokens")
	r, okR := headerInt(h, "X-Ratelimit-Remaining-Requests")
	if !okT && !okR {
		return
	}
	if !okT {
		t = -1
	}
	if !okR {
		r = -1
	}
	s.remTokens.Store(t)
	s.remRequests.Store(r)
	s.remUntil.Store(now.Add(capacityTTL).UnixNano())
}

// Capacity returns the backend's remaining tokens and requests as it last
// said; -1 for what it did not say or said too long ago.
func (s *State) Capacity(now time.Time) (tokens, requests int64) {
	if now.UnixNano() >= s.remUntil.Load() {
		return -1, -1
	}
	return s.remTokens.Load(), s.remRequests.Load()
}

func headerInt(h http.Header, name string) (int64, bool) {
	v := h[name]
	if len(v) == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v[0]), 10, 64)
	return n, err == nil && n >= 0
}
