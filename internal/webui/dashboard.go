package webui

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// csrfHeader carries the session's CSRF token on every change.
const csrfHeader = "X-CSRF-Token"

// Dashboard is the operations dashboard's handler, for /ui/ on the admin
// listener. Its JSON API (docs/admin-api.md):
//
//	POST   /ui/api/session        sign in: {"key": "..."} -> session cookie, {"csrf_token"}
//	GET    /ui/api/session        whether signed in; the session's CSRF token and what the dashboard may show
//	DELETE /ui/api/session        sign out
//	*      /ui/api/admin/{path}   the admin API's /admin/{path}, on the session's credential
//	GET    /ui/api/live           server-sent events: the live feed's snapshots
//	GET    /ui/api/usage.csv      the usage report as sluice usage --format csv
//	GET    /ui/api/demo           the demo's backends and the fault each has
//	POST   /ui/api/demo           {"backend", "fault"}: inject a fault (demo only)
//
// Every change needs the session's CSRF token in X-CSRF-Token and a request
// from the dashboard's own origin (Sec-Fetch-Site or Origin).
func (u *UI) Dashboard() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("POST /ui/api/session", u.signIn)
	api.HandleFunc("GET /ui/api/session", u.sessionInfo)
	api.HandleFunc("DELETE /ui/api/session", u.signedIn(u.signOut))
	api.HandleFunc("/ui/api/admin/", u.signedIn(u.adminCall))
	api.HandleFunc("GET /ui/api/live", u.signedIn(u.live))
	api.HandleFunc("GET /ui/api/usage.csv", u.signedIn(u.usageCSV))
	api.HandleFunc("GET /ui/api/demo", u.signedIn(u.demoState))
	api.HandleFunc("POST /ui/api/demo", u.signedIn(u.demoInject))
	api.HandleFunc("/ui/api/", func(w http.ResponseWriter, r *http.Request) {
		wire.NewError(http.StatusNotFound, wire.TypeNotFound, "not_found", "No dashboard API at "+r.Method+" "+r.URL.Path+".").Write(w)
	})
	guarded := u.csrf.Handler(api)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.startFeed()
		if strings.HasPrefix(r.URL.Path, "/ui/api/") {
			w.Header().Set("Cache-Control", "no-store")
			guarded.ServeHTTP(w, r)
			return
		}
		u.servePage(w, r, "/ui/", "dashboard.html")
	})
}

type sessionHandler func(w http.ResponseWriter, r *http.Request, se *session)

// signedIn requires a session, and its CSRF token for anything but GET.
func (u *UI) signedIn(next sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		var se *session
		if err == nil {
			if se, err = u.sessions.get(r.Context(), c.Value); err != nil {
				u.storeFailed(w, r, err)
				return
			}
		}
		if se == nil {
			wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "not_signed_in",
				"Sign in to the dashboard with the admin key.").Write(w)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !se.checkCSRF(r.Header.Get(csrfHeader)) {
			u.o.Logger.Warn("dashboard change refused: missing or wrong CSRF token", "method", r.Method, "path", r.URL.Path)
			wire.NewError(http.StatusForbidden, wire.TypePermission, "csrf_token_invalid",
				"The request lacks the session's CSRF token.").Write(w)
			return
		}
		next(w, r, se)
	}
}

// signIn checks the credential against the admin API itself and starts a
// session for it.
func (u *UI) signIn(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Key string `json:"key"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in); err != nil || strings.TrimSpace(in.Key) == "" {
		wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "invalid_body", `Send {"key": "<admin key or token>"}.`).Write(w)
		return
	}
	key := strings.TrimSpace(in.Key)
	addr := clientAddr(r)
	if d := u.throttle.wait(addr); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(d.Seconds())+1))
		wire.NewError(http.StatusTooManyRequests, wire.TypeRateLimit, "too_many_sign_ins",
			"Too many failed sign-ins from this address; wait a minute.").Write(w)
		return
	}
	if code := u.checkCredential(r, key); code != http.StatusOK {
		u.throttle.fail(addr)
		u.o.Logger.Warn("dashboard sign-in refused", "status", code, "remote", r.RemoteAddr)
		status := code
		if status != http.StatusForbidden {
			status = http.StatusUnauthorized
		}
		wire.NewError(status, wire.TypeAuthentication, "sign_in_refused",
			"The admin key (or token) was refused.").Write(w)
		return
	}
	cookie, se, err := u.sessions.create(r.Context(), key)
	if err != nil {
		u.storeFailed(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: cookie, Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionMax.Seconds())})
	u.o.Logger.Info("dashboard sign-in", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, u.info(se))
}

// checkCredential asks the admin API whether key opens it, and returns
// its status: 200 when it does.
func (u *UI) checkCredential(r *http.Request, key string) int {
	probe, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/admin/backends", nil)
	if err != nil {
		return http.StatusInternalServerError
	}
	probe.RemoteAddr = r.RemoteAddr
	probe.Header.Set("Authorization", "Bearer "+key)
	rec := &discardWriter{h: http.Header{}}
	u.o.Admin.ServeHTTP(rec, probe)
	if rec.code == 0 {
		return http.StatusOK
	}
	return rec.code
}

// sessionState is what GET /ui/api/session answers.
type sessionState struct {
	SignedIn  bool   `json:"signed_in"`
	CSRFToken string `json:"csrf_token,omitempty"`
	Demo      bool   `json:"demo"`
	UsageCSV  bool   `json:"usage_csv"`
}

func (u *UI) info(se *session) sessionState {
	return sessionState{SignedIn: true, CSRFToken: se.csrf, Demo: u.demoCtl() != nil, UsageCSV: u.o.UsageCSV != nil}
}

// sessionInfo answers whether the browser is signed in (200 either way, so
// that a page that opens signed out logs no error), and the CSRF token; 503
// when the session store cannot tell, which the page shows on its sign-in
// form.
func (u *UI) sessionInfo(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		se, err := u.sessions.get(r.Context(), c.Value)
		if err != nil {
			u.storeFailed(w, r, err)
			return
		}
		if se != nil {
			writeJSON(w, http.StatusOK, u.info(se))
			return
		}
	}
	writeJSON(w, http.StatusOK, sessionState{})
}

// storeFailed answers a request the session store could not serve: 503,
// with a message the dashboard shows, and a log line with the cause.
func (u *UI) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	u.o.Logger.Warn("dashboard session store failed", "method", r.Method, "path", r.URL.Path, "err", err)
	w.Header().Set("Retry-After", "5")
	wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "session_store_unavailable",
		"The dashboard's session store (Redis) is not answering, so no session can be started or checked; try again shortly.").Write(w)
}

func (u *UI) signOut(w http.ResponseWriter, r *http.Request, _ *session) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := u.sessions.end(r.Context(), c.Value); err != nil {
			u.storeFailed(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	w.WriteHeader(http.StatusNoContent)
}

// adminCall serves /ui/api/admin/{path} as the admin API's /admin/{path},
// with the session's credential and none of the browser's cookies.
func (u *UI) adminCall(w http.ResponseWriter, r *http.Request, se *session) {
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/admin/" + strings.TrimPrefix(r.URL.Path, "/ui/api/admin/")
	r2.URL.RawPath = ""
	r2.RequestURI = r2.URL.RequestURI()
	r2.Header = http.Header{}
	for _, k := range []string{"Content-Type", "Content-Length", "Accept"} {
		if v := r.Header.Values(k); len(v) > 0 {
			r2.Header[k] = v
		}
	}
	r2.Header.Set("Authorization", "Bearer "+se.credential)
	u.o.Admin.ServeHTTP(w, r2)
}

func (u *UI) usageCSV(w http.ResponseWriter, r *http.Request, _ *session) {
	if u.o.UsageCSV == nil {
		wire.NewError(http.StatusNotFound, wire.TypeNotFound, "not_found", "The usage report is not served here.").Write(w)
		return
	}
	u.o.UsageCSV(w, r)
}

// clientAddr is the host of the request's peer.
func clientAddr(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// discardWriter keeps only the status of an in-process call.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) {
	if d.code == 0 {
		d.code = http.StatusOK
	}
	return len(p), nil
}
func (d *discardWriter) WriteHeader(code int) {
	if d.code == 0 {
		d.code = code
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		wire.NewError(http.StatusInternalServerError, wire.TypeServer, "internal_error", "Could not encode the answer.").Write(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
