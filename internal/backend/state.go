package backend

import (
	"context"
	"math"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/internal/breaker"
)

// State is a backend's live state: its connection pool, circuit breaker,
// latency average and counters. It survives a config reload for as long as
// a backend of the same name and URL exists. It is safe for concurrent use.
type State struct {
	// Breaker is the backend's circuit breaker.
	Breaker *breaker.Breaker

	transport      *http.Transport
	connectTimeout atomic.Int64 // nanoseconds; read by every dial

	inflight atomic.Int64
	requests atomic.Uint64
	errors   atomic.Uint64
	latency  atomic.Uint64 // math.Float64bits of the moving average of time to first byte, in seconds
}

// NewState returns the state of a new backend with its own connection pool
// and a breaker with no rules; New sets the rules.
func NewState(name string, onChange func(breaker.Change)) *State {
	s := &State{Breaker: breaker.New(name, nil, onChange)}
	s.connectTimeout.Store(int64(10 * time.Second))
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	s.transport = &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, time.Duration(s.connectTimeout.Load()))
			defer cancel()
			return dialer.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		// The gateway passes bodies through as they come; transparent
		// decompression would hide the encoding and delay stream events.
		DisableCompression: true,
	}
	return s
}

// Close releases the state's idle connections.
func (s *State) Close() { s.transport.CloseIdleConnections() }

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
