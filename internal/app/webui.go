package app

import (
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
func (g *Gateway) mountUI() {
	o := webui.Options{Table: g.Table, Admin: g.Admin, Logger: g.log, Now: g.now, UsageCSV: g.usageCSV}
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
