// Package webui serves the web pages built into the binary: the chat app
// (/chat/ on the client listener) and the operations dashboard (/ui/ on the
// admin listener). The pages are small ES modules and vendored libraries
// embedded with go:embed, with no build step; the dashboard reads the admin
// API in process, on behalf of a signed-in session, and a live feed of
// snapshots of the routing table and the metrics.
//
// It sits beside package admin in the pipeline layer: it imports the
// routing table, usage types and the metrics registry's Gatherer, and is
// wired by package app.
package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/wire"
)

//go:embed static
var staticFS embed.FS

// Options configure the web UI.
type Options struct {
	// Table returns the routing table in force: ui.chat and ui.dashboard
	// are read from it on every request, so a reload turns the pages on
	// and off; the live feed reads the backends' state from it.
	Table func() *route.Table
	// Admin is the admin API's handler. The dashboard calls it in process
	// with the credential its session signed in with, so that the admin
	// API's own checks (admin key, admin.jwt_roles) decide every call.
	Admin http.Handler
	// Gatherer is the metrics registry the live feed reads traffic from;
	// nil: the feed carries the backends only.
	Gatherer prometheus.Gatherer
	// UsageCSV writes the usage report of the query string's range (from,
	// to, group_by) as `sluice usage --format csv` does; nil: no CSV.
	UsageCSV func(w http.ResponseWriter, r *http.Request)
	// SessionRedis is the Redis the dashboard's sessions live in, shared by
	// every instance behind a load balancer: a browser signed in through
	// one is signed in on all, a sign-out ends it on all. Its calls are
	// bounded by the client's timeouts; while it does not answer, requests
	// with a session cookie and sign-ins get 503. The UI does not close it.
	// Nil: sessions live in this process's memory.
	SessionRedis redis.Cmdable
	// Logger receives a line per sign-in and per refused request.
	Logger *slog.Logger
	// Now is the clock of sessions and snapshots. Default time.Now.
	Now func() time.Time
	// Interval is the live feed's sampling period. Default 1s.
	Interval time.Duration
	// Window is how much history the live feed keeps. Default 15m.
	Window time.Duration
}

// UI is the web UI: its two handlers and the live feed behind them.
type UI struct {
	o        Options
	files    map[string]file
	sessions sessionStore
	throttle *throttle
	feed     *feed
	csrf     *http.CrossOriginProtection
	feedOnce sync.Once
	demo     atomic.Pointer[demoControl] // nil outside the demo
}

type demoControl struct{ Demo }

// SetDemo gives the dashboard the demo's control of its simulated
// backends, for its fault injection panel.
func (u *UI) SetDemo(d Demo) { u.demo.Store(&demoControl{d}) }

// demoCtl returns the demo's control, or nil outside the demo.
func (u *UI) demoCtl() Demo {
	if d := u.demo.Load(); d != nil {
		return d.Demo
	}
	return nil
}

// file is an embedded file, with its ETag and type worked out once.
type file struct {
	body  []byte
	etag  string
	ctype string
}

// New returns the web UI. Its live feed starts with the first dashboard
// request, or at once when the config in force enables the dashboard; Close
// stops it.
func New(o Options) *UI {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Window <= 0 {
		o.Window = 15 * time.Minute
	}
	u := &UI{o: o, files: loadFiles(), sessions: newMemorySessions(o.Now), throttle: newThrottle(o.Now), csrf: http.NewCrossOriginProtection()}
	if o.SessionRedis != nil {
		u.sessions = newRedisSessions(o.SessionRedis, o.Now)
	}
	u.csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.Logger.Warn("dashboard request from another origin refused", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"))
		wire.NewError(http.StatusForbidden, wire.TypePermission, "cross_origin_refused",
			"The request came from another origin and was refused.").Write(w)
	}))
	u.feed = newFeed(o)
	if t := o.Table(); t != nil && t.Config.UI.Dashboard {
		u.startFeed()
	}
	return u
}

func (u *UI) startFeed() { u.feedOnce.Do(u.feed.start) }

// Close ends the live feed and every stream of it that is open, so that a
// shutdown does not wait for dashboards to go away.
func (u *UI) Close() {
	u.feedOnce.Do(func() {}) // a feed never started stays so
	u.feed.close()
}

// importMap matches the page's import map, whose hash the
// Content-Security-Policy allows: no other inline script runs.
var importMap = regexp.MustCompile(`(?s)<script type="importmap">(.*?)</script>`)

func loadFiles() map[string]file {
	out := map[string]file{}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".json":
			ctype = "application/json"
		case "":
			ctype = "text/plain; charset=utf-8"
		}
		if strings.HasPrefix(path.Base(p), "LICENSE") {
			ctype = "text/plain; charset=utf-8"
		}
		out[strings.TrimPrefix(p, "static/")] = file{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ctype}
		return nil
	})
	if err != nil {
		panic("webui: embedded files: " + err.Error()) // the binary was built without them
	}
	return out
}

// csp returns the Content-Security-Policy of a page: its own scripts, the
// hash of its import map, nothing inline otherwise, no other origin.
func csp(page []byte) string {
	scripts := "'self'"
	if m := importMap.FindSubmatch(page); m != nil {
		sum := sha256.Sum256(m[1])
		scripts += " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return "default-src 'none'; script-src " + scripts + "; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// serveFile serves an embedded file; page is the one HTML file served
// under this prefix.
func (u *UI) serveFile(w http.ResponseWriter, r *http.Request, name, page string) {
	f, ok := u.files[name]
	if !ok || strings.HasSuffix(name, ".html") && name != page {
		wire.NewError(http.StatusNotFound, wire.TypeNotFound, "not_found", "No page at "+r.URL.Path+".").Write(w)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	if strings.HasSuffix(name, ".html") {
		h.Set("Content-Security-Policy", csp(f.body))
		h.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// Chat is the chat app's handler, for /chat/ on the client listener. The
// page calls the gateway's own API with the key the user signs in with.
func (u *UI) Chat() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.servePage(w, r, "/chat/", "chat.html")
	})
}

// servePage serves the page at prefix and its files below it.
func (u *UI) servePage(w http.ResponseWriter, r *http.Request, prefix, page string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		wire.NewError(http.StatusMethodNotAllowed, wire.TypeInvalidRequest, "method_not_allowed", "Use GET for "+r.URL.Path+".").Write(w)
		return
	}
	if r.URL.Path == strings.TrimSuffix(prefix, "/") {
		http.Redirect(w, r, prefix, http.StatusMovedPermanently)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, prefix)
	if name == "" {
		name = page
	}
	u.serveFile(w, r, name, page)
}
