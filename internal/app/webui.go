package app

import (
	"fmt"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/simulator"
	"net/http"
	"strings"

	"github.com/sluice-gateway/sluice/internal/usage"
	"github.com/sluice-gateway/sluice/internal/webui"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// mountUI puts the web UI (package webui) in front of the client and admin
// handlers: the chat at /chat/ on the client listener while ui.chat is on,
// the dashboard at /ui/ on the admin listener while ui.dashboard is on. The
// switches are read per request, so a reload turns the pages on and off.
//
// When state.store is a Redis URL the dashboard's sessions live in that
// Redis, so that every instance sharing it shares the sign-ins; a changed
// state.store takes effect for them on restart.
func (g *Gateway) mountUI(cfg *config.Config) error {
	o := webui.Options{Table: g.Table, Admin: g.Admin, Logger: g.log, Now: g.now, UsageCSV: g.usageCSV}
	rc, err := sessionRedis(cfg.State)
	if err != nil {
		return err
	}
	if rc != nil {
		g.uiRedis, o.SessionRedis = rc, rc
	}
	if g.obs.metrics != nil {
		o.Gatherer = g.obs.metrics.Registry()
	}
	g.ui = webui.New(o)
	chat, dashboard := g.ui.Chat(), g.ui.Dashboard()
	api, adm := g.Handler, g.Admin
	g.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if underPrefix(r.URL.Path, "/chat/") && g.Table().Config.UI.Chat {
			chat.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
	g.Admin = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if underPrefix(r.URL.Path, "/ui/") && g.Table().Config.UI.Dashboard {
			dashboard.ServeHTTP(w, r)
			return
		}
		adm.ServeHTTP(w, r)
	})
	return nil
}

// closeUIRedis closes the dashboard sessions' Redis client, if any.
func (g *Gateway) closeUIRedis() {
	if g.uiRedis == nil {
		return
	}
	if err := g.uiRedis.Close(); err != nil {
		g.log.Warn("closing the dashboard sessions' Redis client", "err", err)
	}
}

// underPrefix reports whether path is prefix ("/chat/") or below it, or
// the prefix without its slash.
func underPrefix(path, prefix string) bool {
	return strings.HasPrefix(path, prefix) || path == strings.TrimSuffix(prefix, "/")
}

// usageCSV answers the dashboard's CSV download: the ledger's report for
// from, to and group_by, written as sluice usage --format csv writes it.
func (g *Gateway) usageCSV(w http.ResponseWriter, r *http.Request) {
	q, err := usage.ParseQuery(r.URL.Query().Get("from"), r.URL.Query().Get("to"), r.URL.Query().Get("group_by"), g.now())
	if err != nil {
		wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "invalid_query", err.Error()).Write(w)
		return
	}
	rows, err := g.obs.ledger.Report(r.Context(), q)
	if err != nil {
		g.log.Warn("usage report", "err", err)
		wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "usage_unavailable", "The usage store cannot be read now.").Write(w)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="sluice-usage.csv"`)
	_ = writeReport(w, "csv", q.GroupBy, rows, g.Table().Config.Usage.Prices.Currency)
}

// demoFaults is the demo's control of its simulators, for the dashboard's
// fault injection panel.
type demoFaults struct {
	mu       sync.Mutex // guards backends
	backends []demoSim
}

type demoSim struct {
	name, region, fault string
	faults              simulator.Faults
	gen                 uint64 // counts the changes of fault
	sim                 *simulator.Simulator
}

func (d *demoFaults) add(name, region string, sim *simulator.Simulator) {
	d.mu.Lock()
	d.backends = append(d.backends, demoSim{name: name, region: region, fault: "none", sim: sim})
	d.mu.Unlock()
}

// Backends returns the simulated backends with the fault each has.
func (d *demoFaults) Backends() []webui.DemoBackend {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]webui.DemoBackend, 0, len(d.backends))
	for _, b := range d.backends {
		out = append(out, webui.DemoBackend{Name: b.name, Region: b.region, Fault: b.fault})
	}
	return out
}

// demoFaultSettings are the simulator faults behind the panel's names.
var demoFaultSettings = map[string]simulator.Faults{
	"none":         {},
	"rate_limited": {RetryAfter: 30 * time.Second},
	"errors":       {ErrorRate: 1, ErrorStatus: http.StatusInternalServerError},
	"hang":         {Hang: true},
	"drop_stream":  {DropAfterChunks: 3},
}

// Inject gives a simulated backend one of webui.Faults.
func (d *demoFaults) Inject(backend, fault string) error {
	f, ok := demoFaultSettings[fault]
	if !ok {
		return fmt.Errorf("no fault %q", fault)
	}
	_, err := d.set(backend, f, fault, nil)
	return err
}

// demoFaultsWere is a simulated backend's faults before a change, and the
// change's number.
type demoFaultsWere struct {
	faults simulator.Faults
	fault  string
	gen    uint64
}

// set gives a simulated backend faults f, shown on the panel as fault, and
// returns what it had. With unless set, it changes nothing when the backend's
// faults were changed since unless.gen.
func (d *demoFaults) set(backend string, f simulator.Faults, fault string, unless *demoFaultsWere) (demoFaultsWere, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.backends {
		b := &d.backends[i]
		if b.name != backend {
			continue
		}
		was := demoFaultsWere{faults: b.faults, fault: b.fault, gen: b.gen}
		if unless != nil && unless.gen != b.gen {
			return was, nil
		}
		b.sim.SetFaults(f)
		b.faults, b.fault = f, fault
		b.gen++
		was.gen = b.gen
		return was, nil
	}
	return demoFaultsWere{}, fmt.Errorf("no simulated backend %q", backend)
}
