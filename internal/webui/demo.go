package webui

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// Faults the demo panel offers, by name:
//
//	none          the backend answers normally
//	rate_limited  every request answered 429 with Retry-After (30 s)
//	errors        every request answered 500
//	hang          requests never answered (the gateway's timeout ends them)
//	drop_stream   streams broken off after a few events
var Faults = []string{"none", "rate_limited", "errors", "hang", "drop_stream"}

// Demo is the demo's control of its simulated backends.
type Demo interface {
	// Backends returns each simulated backend with the fault it has now.
	Backends() []DemoBackend
	// Inject gives backend the named fault (one of Faults).
	Inject(backend, fault string) error
}

// DemoBackend is a simulated backend of the demo.
type DemoBackend struct {
	Name   string `json:"name"`
	Region string `json:"region"`
	Fault  string `json:"fault"`
}

func (u *UI) demoState(w http.ResponseWriter, _ *http.Request, _ *session) {
	d := u.demoCtl()
	if d == nil {
		wire.NewError(http.StatusNotFound, wire.TypeNotFound, "not_demo", "Faults can be injected only in the demo.").Write(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"faults": Faults, "backends": d.Backends()})
}

func (u *UI) demoInject(w http.ResponseWriter, r *http.Request, _ *session) {
	d := u.demoCtl()
	if d == nil {
		wire.NewError(http.StatusNotFound, wire.TypeNotFound, "not_demo", "Faults can be injected only in the demo.").Write(w)
		return
	}
	var in struct {
		Backend string `json:"backend"`
		Fault   string `json:"fault"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&in); err != nil || !slices.Contains(Faults, in.Fault) {
		wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "invalid_body",
			`Send {"backend": "<name>", "fault": "none|rate_limited|errors|hang|drop_stream"}.`).Write(w)
		return
	}
	if err := d.Inject(in.Backend, in.Fault); err != nil {
		wire.NewError(http.StatusNotFound, wire.TypeNotFound, "unknown_backend", err.Error()).Write(w)
		return
	}
	u.o.Logger.Info("demo fault injected", "backend", in.Backend, "fault", in.Fault)
	writeJSON(w, http.StatusOK, map[string]any{"faults": Faults, "backends": d.Backends()})
}
