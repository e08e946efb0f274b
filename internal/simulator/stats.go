package simulator

import (
	"maps"
	"sync"
)

// Stats is what the simulator has served since it started or was reset.
type Stats struct {
	// Deployments holds one entry per configured deployment.
	Deployments map[string]DeploymentStats `json:"deployments"`
	// Unrouted counts, by status, the API requests that reached no configured
	// deployment: unknown paths and deployments, bad JSON, wrong keys.
	Unrouted map[int]int64 `json:"unrouted"`
}

// DeploymentStats is what one deployment served. Tokens are those delivered:
// a reply's prompt tokens count once a 2xx reply started, and its completion
// tokens as they were sent, so a stream cut short (TruncatedStreams) counts
// only the tokens that reached the client.
type DeploymentStats struct {
	// Requests counts requests by the status they were answered with; 499
	// counts requests whose client went away before any answer.
	Requests         map[int]int64 `json:"requests"`
	PromptTokens     int64         `json:"prompt_tokens"`
	CompletionTokens int64         `json:"completion_tokens"`
	TotalTokens      int64         `json:"total_tokens"`
	// TruncatedStreams counts streams that ended before their last event,
	// because the client went away or DropAfterChunks cut them.
	TruncatedStreams int64 `json:"truncated_streams"`
}

// statsRecorder accumulates Stats. It is safe for concurrent use.
type statsRecorder struct {
	names []string

	mu       sync.Mutex // guards the fields below
	byName   map[string]*DeploymentStats
	unrouted map[int]int64
}

func (r *statsRecorder) init(names []string) {
	r.names = names
	r.reset()
}

func (r *statsRecorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byName = make(map[string]*DeploymentStats, len(r.names))
	for _, n := range r.names {
		r.byName[n] = &DeploymentStats{Requests: map[int]int64{}}
	}
	r.unrouted = map[int]int64{}
}

// record adds one request; name is "" for a request that reached no
// deployment.
func (r *statsRecorder) record(name string, status, prompt, completion int, truncated bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.byName[name]
	if d == nil {
		r.unrouted[status]++
		return
	}
	d.Requests[status]++
	d.PromptTokens += int64(prompt)
	d.CompletionTokens += int64(completion)
	d.TotalTokens += int64(prompt + completion)
	if truncated {
		d.TruncatedStreams++
	}
}

// Stats returns a copy of what the simulator has served.
func (s *Simulator) Stats() Stats {
	r := &s.stats
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Stats{Deployments: make(map[string]DeploymentStats, len(r.byName)), Unrouted: maps.Clone(r.unrouted)}
	for n, d := range r.byName {
		c := *d
		c.Requests = maps.Clone(d.Requests)
		st.Deployments[n] = c
	}
	return st
}
