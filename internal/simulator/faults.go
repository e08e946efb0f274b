package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"time"
)

// Faults are failures the simulator injects into the API requests it would
// otherwise answer. The zero Faults injects none. They apply after the
// request's deployment is known, in this order: AddedLatency, Hang,
// Disconnect, RetryAfter, ErrorRate; DropAfterChunks applies to the stream
// that results.
type Faults struct {
	// ErrorRate is the fraction of requests, 0 to 1, answered with
	// ErrorStatus instead of a reply.
	ErrorRate float64
	// ErrorStatus is the status of injected errors, 400 to 599, with the body
	// Azure OpenAI sends with it. 0 means 500. A 429 chosen here carries no
	// Retry-After (unlike RetryAfter's), as some real 429s do not.
	ErrorStatus int
	// AddedLatency delays every request before anything else happens.
	AddedLatency time.Duration
	// Hang makes requests never answer: they end when the client gives up.
	Hang bool
	// Disconnect closes every request's connection without an answer, as a
	// backend that crashes or resets connections does.
	Disconnect bool
	// DropAfterChunks, if positive, breaks every stream's connection after it
	// has sent that many SSE events, without the end of the chunked body, so
	// the client sees an unexpected EOF rather than a clean end.
	DropAfterChunks int
	// RetryAfter, if positive, answers every request with 429 and this
	// Retry-After (whole seconds, rounded up), retry-after-ms and
	// x-ratelimit-reset-tokens, as a deployment out of quota does. In JSON it
	// is a number of seconds or a duration string.
	RetryAfter time.Duration
	// Deployments holds faults for single deployments; an entry replaces the
	// faults above, as a whole, for its deployment. Entries may not have
	// Deployments of their own.
	Deployments map[string]Faults
}

func (f *Faults) status() int {
	if f.ErrorStatus == 0 {
		return http.StatusInternalServerError
	}
	return f.ErrorStatus
}

// faultsJSON is Faults on the wire, with durations in Go syntax ("250ms").
type faultsJSON struct {
	ErrorRate       float64               `json:"error_rate"`
	ErrorStatus     int                   `json:"error_status"`
	AddedLatency    string                `json:"added_latency"`
	Hang            bool                  `json:"hang"`
	Disconnect      bool                  `json:"disconnect"`
	DropAfterChunks int                   `json:"drop_after_chunks"`
	RetryAfter      json.RawMessage       `json:"retry_after"`
	Deployments     map[string]faultsJSON `json:"deployments,omitempty"`
}

func (f Faults) toJSON() faultsJSON {
	j := faultsJSON{
		ErrorRate: f.ErrorRate, ErrorStatus: f.ErrorStatus, AddedLatency: f.AddedLatency.String(),
		Hang: f.Hang, Disconnect: f.Disconnect, DropAfterChunks: f.DropAfterChunks, RetryAfter: json.RawMessage(strconv.Quote(f.RetryAfter.String())),
	}
	for name, df := range f.Deployments {
		if j.Deployments == nil {
			j.Deployments = make(map[string]faultsJSON)
		}
		j.Deployments[name] = df.toJSON()
	}
	return j
}

func (j faultsJSON) toFaults() (Faults, error) {
	f := Faults{ErrorRate: j.ErrorRate, ErrorStatus: j.ErrorStatus, Hang: j.Hang, Disconnect: j.Disconnect, DropAfterChunks: j.DropAfterChunks}
	var err error
	if f.AddedLatency, err = parseDuration("added_latency", j.AddedLatency); err != nil {
		return f, err
	}
	if len(j.RetryAfter) > 0 && string(j.RetryAfter) != "null" {
		var v any
		if err := json.Unmarshal(j.RetryAfter, &v); err != nil {
			return f, fmt.Errorf("retry_after: %w", err)
		}
		switch v := v.(type) {
		case float64:
			f.RetryAfter = time.Duration(v * float64(time.Second))
		case string:
			if f.RetryAfter, err = parseSeconds(v); err != nil {
				return f, fmt.Errorf("retry_after: %w", err)
			}
		default:
			return f, errors.New("retry_after: want seconds or a duration string")
		}
	}
	for name, dj := range j.Deployments {
		if len(dj.Deployments) > 0 {
			return f, fmt.Errorf("deployments.%s: per-deployment faults cannot have deployments", name)
		}
		df, err := dj.toFaults()
		if err != nil {
			return f, fmt.Errorf("deployments.%s: %w", name, err)
		}
		if f.Deployments == nil {
			f.Deployments = make(map[string]Faults)
		}
		f.Deployments[name] = df
	}
	return f, nil
}

func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration such as 250ms or 2s", field, s)
	}
	return d, nil
}

// MarshalJSON writes Faults as GET /sim/config shows them.
func (f Faults) MarshalJSON() ([]byte, error) { return json.Marshal(f.toJSON()) }

// UnmarshalJSON reads Faults as PATCH /sim/config takes them: only the fields
// present change, so decoding into the current Faults is a partial update.
// Unknown fields are errors.
func (f *Faults) UnmarshalJSON(b []byte) error {
	j := f.toJSON()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	nf, err := j.toFaults()
	if err != nil {
		return err
	}
	*f = nf
	return nil
}

// Validate reports the first invalid field of f.
func (f Faults) Validate() error {
	switch {
	case f.ErrorRate < 0 || f.ErrorRate > 1:
		return fmt.Errorf("error_rate %v is not between 0 and 1", f.ErrorRate)
	case f.ErrorStatus != 0 && (f.ErrorStatus < 400 || f.ErrorStatus > 599):
		return fmt.Errorf("error_status %d is not between 400 and 599", f.ErrorStatus)
	case f.AddedLatency < 0:
		return errors.New("added_latency is negative")
	case f.DropAfterChunks < 0:
		return errors.New("drop_after_chunks is negative")
	case f.RetryAfter < 0:
		return errors.New("retry_after is negative")
	}
	for name, df := range f.Deployments {
		if len(df.Deployments) > 0 {
			return fmt.Errorf("deployments.%s: per-deployment faults cannot have deployments", name)
		}
		if err := df.Validate(); err != nil {
			return fmt.Errorf("deployments.%s: %w", name, err)
		}
	}
	return nil
}

// SetFaults replaces the injected faults. It is safe to call while requests
// are served; a request sees the faults of the moment it arrived.
func (s *Simulator) SetFaults(f Faults) {
	f.Deployments = maps.Clone(f.Deployments) // the stored Faults must never change
	s.faults.Store(&f)
}

// Faults returns the injected faults.
func (s *Simulator) Faults() Faults {
	f := *s.faults.Load()
	f.Deployments = maps.Clone(f.Deployments)
	return f
}

// faultsFor returns the faults that apply to deployment name. The result
// must not be modified.
func (s *Simulator) faultsFor(name string) *Faults {
	f := s.faults.Load()
	if df, ok := f.Deployments[name]; ok {
		return &df
	}
	return f
}

// serveControl serves the /sim/ endpoints: GET and PATCH config, GET stats,
// POST reset.
func (s *Simulator) serveControl(c *call, body []byte) {
	switch c.route.sim {
	case "config":
		switch c.r.Method {
		case http.MethodGet:
			c.writeJSON(http.StatusOK, s.Faults())
		case http.MethodPatch:
			f := s.Faults()
			if err := json.Unmarshal(body, &f); err != nil {
				c.badRequest("invalid_config", "Invalid faults: %v", err)
				return
			}
			if err := f.Validate(); err != nil {
				c.badRequest("invalid_config", "Invalid faults: %v", err)
				return
			}
			for name := range f.Deployments {
				if s.deployments[name] == nil {
					c.badRequest("invalid_config", "Invalid faults: deployments.%s: no such deployment", name)
					return
				}
			}
			s.SetFaults(f)
			s.log.Info("simulator faults changed", "request_id", c.id, "faults", f.toJSON())
			c.writeJSON(http.StatusOK, s.Faults())
		default:
			c.w.Header().Set("Allow", "GET, PATCH")
			c.fail(http.StatusMethodNotAllowed, "method_not_allowed", "Use GET or PATCH on /sim/config.", "invalid_request_error")
		}
	case "stats":
		if c.allow(http.MethodGet) {
			c.writeJSON(http.StatusOK, s.Stats())
		}
	case "reset":
		if c.allow(http.MethodPost) {
			s.stats.reset()
			c.writeJSON(http.StatusOK, s.Stats())
		}
	}
}
