// Package admin serves the operator listener: liveness and readiness probes,
// the effective config with its secrets redacted, config reloads, and the
// live state of backends and of the subscriptions' limits. It is never
// served on the client port. Everything under /admin/ needs the admin key;
// the probes do not.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	rpprof "runtime/pprof"
	"time"

	"github.com/sluice-gateway/sluice/internal/auth"
	"github.com/sluice-gateway/sluice/internal/oidc"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/usage"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// Options configure the admin handler.
type Options struct {
	// Table returns the routing table in force; the admin key and the
	// effective config are read from it.
	Table func() *route.Table
	// Reload loads the config again and swaps it in; on error the old one
	// stays in force.
	Reload func() error
	// Ready reports whether the gateway takes traffic (false while shutting down).
	Ready func() bool
	// LedgerDegraded reports whether the usage ledger's store does not
	// answer, so records wait in its journal; /readyz says so. Nil: never.
	LedgerDegraded func() bool
	// Logger receives a line per admin action.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Metrics serves GET /metrics (no key); nil: not served.
	Metrics http.Handler
	// Usage answers GET /admin/usage; nil: not served.
	Usage func(context.Context, usage.Query) ([]usage.Row, error)
	// Tokens returns the verifier of auth.jwt, for admin.jwt_roles; nil:
	// tokens open nothing.
	Tokens func() *oidc.Verifier
	// Subscriptions keeps runtime subscriptions (the usage store); nil:
	// /admin/subscriptions is not served.
	Subscriptions usage.Subscriptions
	// SubscriptionsChanged is called after a change through the API, so
	// that this instance applies it at once (others poll the store).
	SubscriptionsChanged func()
	// ClearCache drops the response cache's entries of a subscription ("":
	// all) for DELETE /admin/cache, and returns how many it dropped; nil:
	// not served.
	ClearCache func(ctx context.Context, subscription string) (int64, error)
}

// New returns the admin handler.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &handler{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /admin/config", a.guard(a.config))
	mux.HandleFunc("POST /admin/reload", a.guard(a.reload))
	mux.HandleFunc("GET /admin/backends", a.guard(a.backends))
	mux.HandleFunc("GET /admin/limits", a.guard(a.limits))
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	mux.HandleFunc("GET /admin/debug/pprof/{profile}", a.guard(profile))
	if o.Usage != nil {
		mux.HandleFunc("GET /admin/usage", a.guard(a.usage))
	}
	if o.Subscriptions != nil {
		sa := &subscriptionsAPI{a: a, store: o.Subscriptions}
		mux.HandleFunc("GET /admin/subscriptions", a.guard(sa.list))
		mux.HandleFunc("POST /admin/subscriptions", a.guard(sa.create))
		mux.HandleFunc("POST /admin/subscriptions/{name}/regenerate", a.guard(sa.regenerate))
		mux.HandleFunc("PATCH /admin/subscriptions/{name}", a.guard(sa.patch))
		mux.HandleFunc("DELETE /admin/subscriptions/{name}", a.guard(sa.delete))
		mux.HandleFunc("GET /admin/subscriptions-audit", a.guard(sa.audit))
	}
	if o.ClearCache != nil {
		mux.HandleFunc("DELETE /admin/cache", a.guard(a.clearCache))
	}
	mux.HandleFunc("/", a.notFound)
	return mux
}

type handler struct{ o Options }

func (a *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 503 {"status":"shutting down"} once shutdown has begun,
// so that load balancers stop sending traffic, and 200 otherwise:
// {"status":"ready"}, or {"status":"degraded","ledger":...} while the usage
// store does not answer. A degraded gateway serves every request and keeps
// their records in its journal, so it stays in the load balancer; the body
// tells the operator.
func (a *handler) readyz(w http.ResponseWriter, _ *http.Request) {
	switch {
	case a.o.Ready != nil && !a.o.Ready():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
	case a.o.LedgerDegraded != nil && a.o.LedgerDegraded():
		writeJSON(w, http.StatusOK, map[string]string{"status": "degraded",
			"ledger": "usage store unreachable; records are journaled until it answers"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// methods are the admin paths and the method each takes, for 405 answers.
var methods = map[string]string{
	"/healthz": "GET", "/readyz": "GET", "/admin/config": "GET", "/admin/reload": "POST", "/admin/backends": "GET",
	"/metrics": "GET", "/admin/usage": "GET", "/admin/limits": "GET",
}

// notFound answers what no route matched: 405 for a known path, else 404.
// (The catch-all route shadows the mux's own 405.)
func (a *handler) notFound(w http.ResponseWriter, r *http.Request) {
	if m, ok := methods[r.URL.Path]; ok {
		w.Header().Set("Allow", m)
		wire.NewError(http.StatusMethodNotAllowed, wire.TypeInvalidRequest, "method_not_allowed",
			"Use "+m+" for "+r.URL.Path+".").Write(w)
		return
	}
	wire.NewError(http.StatusNotFound, wire.TypeNotFound, "not_found",
		"No admin API at "+r.Method+" "+r.URL.Path+".").Write(w)
}

// guard requires the admin key, as api-key or Authorization: Bearer; never
// in the query string, which proxies and access logs keep. A bearer token
// valid for auth.jwt whose roles hold one of admin.jwt_roles is let in too.
func (a *handler) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cfg := a.o.Table().Config.Admin
		want := cfg.APIKey
		if want.IsZero() && len(cfg.JWTRoles) == 0 {
			wire.NewError(http.StatusForbidden, wire.TypePermission, "admin_disabled",
				"The admin API is disabled: set admin.api_key to enable it.").Write(w)
			return
		}
		if tok, err := auth.BearerToken(r.Header); err == nil && len(cfg.JWTRoles) > 0 && a.o.Tokens != nil {
			claims, err := a.o.Tokens().Verify(r.Context(), tok)
			switch {
			case err != nil:
				e := wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "invalid_token", "The bearer token was refused.")
				e.Challenge = `Bearer error="invalid_token"`
				e.Write(w)
			case !claims.HasRole(cfg.JWTRoles):
				wire.NewError(http.StatusForbidden, wire.TypePermission, "admin_role_required",
					"The token carries none of the roles of admin.jwt_roles.").Write(w)
			default:
				next(w, r.WithContext(withActor(r.Context(), "token:"+claims.App)))
			}
			return
		}
		got, err := auth.KeyFromHeader(r.Header)
		if errors.Is(err, auth.ErrConflict) {
			wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "conflicting_credentials",
				"The request carries two different keys. Send the admin key once, as api-key or Authorization: Bearer.").Write(w)
			return
		}
		if err != nil || want.IsZero() || !equalKeys(got, want.Reveal()) {
			wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "invalid_api_key",
				"The admin key is missing or wrong.").Write(w)
			return
		}
		next(w, r.WithContext(withActor(r.Context(), "admin-key")))
	}
}

type actorKey struct{}

// withActor records who an admin request acts as, for the audit.
func withActor(ctx context.Context, who string) context.Context {
	return context.WithValue(ctx, actorKey{}, who)
}

// actor returns who an admin request acts as.
func actor(r *http.Request) string {
	if s, ok := r.Context().Value(actorKey{}).(string); ok {
		return s
	}
	return "unknown"
}

// equalKeys compares in constant time, whatever the lengths.
func equalKeys(a, b string) bool {
	da, db := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(da[:], db[:]) == 1
}

// config shows the effective config; secrets marshal as [REDACTED].
func (a *handler) config(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.o.Table().Config)
}

func (a *handler) reload(w http.ResponseWriter, _ *http.Request) {
	if err := a.o.Reload(); err != nil {
		a.o.Logger.Warn("config reload refused; the previous config stays in force", "err", err)
		e := wire.NewError(http.StatusUnprocessableEntity, wire.TypeInvalidRequest, "invalid_config",
			"The new config was refused and the previous one stays in force:\n"+err.Error())
		e.Write(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

// profile serves the runtime's profiles for performance work:
// /admin/debug/pprof/profile?seconds=N (CPU), trace, heap, allocs,
// goroutine, block, mutex, threadcreate.
func profile(w http.ResponseWriter, r *http.Request) {
	switch name := r.PathValue("profile"); name {
	case "profile":
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		if rpprof.Lookup(name) == nil {
			wire.NewError(http.StatusNotFound, wire.TypeNotFound, "not_found", "No profile "+name+".").Write(w)
			return
		}
		pprof.Handler(name).ServeHTTP(w, r)
	}
}

// backendStatus is one backend in GET /admin/backends.
type backendStatus struct {
	Name          string     `json:"name"`
	Kind          string     `json:"kind"`
	Region        string     `json:"region,omitempty"`
	State         string     `json:"state"`
	Reason        string     `json:"reason,omitempty"`
	ReopensAt     *time.Time `json:"reopens_at,omitempty"`
	WindowFails   int64      `json:"failures_in_window"`
	WindowReqs    int64      `json:"requests_in_window"`
	Trips         uint64     `json:"trips"`
	InFlight      int64      `json:"in_flight"`
	LatencyMillis float64    `json:"latency_ms"`
	Requests      uint64     `json:"requests"`
	Errors        uint64     `json:"errors"`
	HealthCheck   bool       `json:"health_check"`
}

// backends shows the live state of every backend: breaker, in-flight
// requests, latency average, requests and errors served.
func (a *handler) backends(w http.ResponseWriter, _ *http.Request) {
	t := a.o.Table()
	now := a.o.Now()
	out := make([]backendStatus, 0, len(t.Backends))
	for _, c := range t.Config.Backends {
		b := t.Backends[c.Name]
		snap := b.State.Breaker.Snapshot(now)
		s := backendStatus{
			Name: b.Name, Kind: b.Kind.String(), Region: b.Region,
			State: snap.State.String(), Reason: snap.LastReason,
			WindowFails: snap.Failures, WindowReqs: snap.Requests, Trips: snap.Trips,
			InFlight: b.State.InFlight(), LatencyMillis: float64(b.State.Latency().Microseconds()) / 1000,
			Requests: b.State.Requests(), Errors: b.State.Errors(), HealthCheck: b.HealthCheck != nil,
		}
		if !snap.ReopenAt.IsZero() {
			at := snap.ReopenAt.UTC()
			s.ReopensAt = &at
		}
		out = append(out, s)
	}
	writeJSON(w, http.StatusOK, map[string]any{"backends": out})
}

// usage answers GET /admin/usage?from=&to=&group_by=: the ledger's report,
// as sluice usage prints it. from and to are RFC 3339 times or dates; the
// default is this month so far.
func (a *handler) usage(w http.ResponseWriter, r *http.Request) {
	q, err := usage.ParseQuery(r.URL.Query().Get("from"), r.URL.Query().Get("to"), r.URL.Query().Get("group_by"), a.o.Now())
	if err != nil {
		wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "invalid_query", err.Error()).Write(w)
		return
	}
	rows, err := a.o.Usage(r.Context(), q)
	if err != nil {
		a.o.Logger.Warn("usage report", "err", err)
		wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "usage_unavailable",
			"The usage store cannot be read now.").Write(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"from": q.From, "to": q.To, "group_by": q.GroupBy, "rows": rows})
}

// clearCache answers DELETE /admin/cache[?subscription=NAME]: the response
// cache's entries of the subscription (those of products that vary by
// subscription), or all of them.
func (a *handler) clearCache(w http.ResponseWriter, r *http.Request) {
	sub := r.URL.Query().Get("subscription")
	n, err := a.o.ClearCache(r.Context(), sub)
	if err != nil {
		a.o.Logger.Warn("clearing the response cache", "err", err)
		wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "cache_unavailable",
			"The response cache cannot be reached now.").Write(w)
		return
	}
	a.o.Logger.Info("response cache purged", "actor", actor(r), "subscription", sub, "entries", n)
	writeJSON(w, http.StatusOK, map[string]any{"cleared": true, "subscription": sub, "purged": n})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		wire.NewError(http.StatusInternalServerError, wire.TypeServer, "internal_error", "Could not encode the answer.").Write(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
