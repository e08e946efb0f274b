// Package guard is the guardrails stage of the request pipeline: it masks
// personal data in prompts (package pii), checks prompts with a content
// safety service (package safety) and refuses them with 403 content_filter,
// and adds the taps that check answers (buffered, or in windows as they
// stream) and restore masked values. It sits between proxy, whose Stage and
// Tap it implements, and app, which builds it.
//
// Order within a request: masking first, so that the safety service, the
// backend, the access log and traces see placeholders only; then the prompt
// check; on the answer, the completion check (on the masked text) before the
// restoring of placeholders, so that the client gets the values back last.
package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/pii"
	"github.com/sluice-gateway/sluice/internal/proxy"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/safety"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// Options configure a Stage.
type Options struct {
	// Table returns the routing table in force; the guardrails of its
	// config apply. Required.
	Table func() *route.Table
	// Logger receives a line per service failure and per refusal.
	Logger *slog.Logger
	// Credential makes the credential of a service that authenticates
	// with a managed identity; nil: such services fail every call.
	Credential func(config.SafetyService) (safety.Credential, error)
	// HTTP is the client the services are called through; nil: each
	// service gets its own.
	HTTP *http.Client
}

// Stage is the guardrails stage. It is safe for concurrent use.
type Stage struct {
	o     Options
	log   *slog.Logger
	cur   atomic.Pointer[compiled]
	mu    sync.Mutex                // guards clients and compiling
	conns map[string]*safety.Client // by service configuration, across reloads
	creds []io.Closer               // credentials to close
	stats stats
}

// compiled is the guardrails of one config.
type compiled struct {
	cfg      *config.Config
	products map[string]*policy
}

// policy is one product's guardrails.
type policy struct {
	product string
	broken  error // the guardrails could not be built: every request is refused

	masker, local *pii.Masker // local: without the service, for pii.on_error fail_open
	piiFailOpen   bool
	restore       bool

	client        *safety.Client // nil: no content safety
	check         safety.Policy
	mode          string // off, buffered, window
	size, overlap int
	failOpen      bool
}

// New returns the guardrails stage.
func New(o Options) *Stage {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Stage{o: o, log: o.Logger, conns: map[string]*safety.Client{}}
}

// Close closes the services' idle connections and credentials.
func (s *Stage) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.CloseIdle()
	}
	for _, c := range s.creds {
		_ = c.Close()
	}
	s.creds = nil
}

// policies returns the guardrails of the table in force, compiling them on
// the first request after a reload.
func (s *Stage) policies() *compiled {
	t := s.o.Table()
	if c := s.cur.Load(); c != nil && c.cfg == t.Config {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cur.Load(); c != nil && c.cfg == t.Config {
		return c
	}
	c := s.compileLocked(t.Config)
	s.cur.Store(c)
	return c
}

func (s *Stage) compileLocked(cfg *config.Config) *compiled {
	c := &compiled{cfg: cfg, products: map[string]*policy{}}
	services := map[string]config.SafetyService{}
	for _, svc := range cfg.ContentSafety {
		services[svc.Name] = svc
	}
	for _, pr := range cfg.Products {
		if pr.ContentSafety == nil && pr.PII == nil {
			continue
		}
		p := &policy{product: pr.Name}
		if err := s.buildLocked(p, pr, services); err != nil {
			p.broken = err
			s.log.Error("guardrails cannot be built; the product's requests are refused", "product", pr.Name, "err", err)
		}
		c.products[pr.Name] = p
	}
	return c
}

func (s *Stage) buildLocked(p *policy, pr config.Product, services map[string]config.SafetyService) error {
	if cs := pr.ContentSafety; cs != nil {
		cl, err := s.clientLocked(services[cs.Service])
		if err != nil {
			return err
		}
		p.client = cl
		p.check = safety.Policy{Categories: cs.Categories, OutputType: cs.OutputType, Blocklists: cs.Blocklists, Shield: cs.ShieldPrompt}
		p.mode, p.size, p.overlap = cs.Completions.Mode, cs.Completions.WindowSize, cs.Completions.WindowOverlap
		p.failOpen = cs.OnError == "fail_open"
	}
	if pc := pr.PII; pc != nil {
		patterns := make([]pii.Pattern, len(pc.Patterns))
		for i, pt := range pc.Patterns {
			patterns[i] = pii.Pattern{Category: pt.Category, Regex: pt.Regex}
		}
		var local []string
		for _, e := range pc.Entities {
			if pii.BuiltIn(e) {
				local = append(local, e)
			}
		}
		var err error
		if p.local, err = pii.New(pii.Options{Entities: local, Patterns: patterns}); err != nil {
			return err
		}
		p.masker = p.local
		if pc.Service != "" && len(local) < len(pc.Entities) {
			cl, err := s.clientLocked(services[pc.Service])
			if err != nil {
				return err
			}
			if p.masker, err = pii.New(pii.Options{Entities: pc.Entities, Patterns: patterns, Service: safety.Language{C: cl}}); err != nil {
				return err
			}
		}
		p.restore, p.piiFailOpen = pc.Restore, pc.OnError == "fail_open"
	}
	return nil
}

// clientLocked returns the client of a service, the same one across
// reloads while its configuration stays the same.
func (s *Stage) clientLocked(svc config.SafetyService) (*safety.Client, error) {
	if svc.Name == "" {
		return nil, errors.New("no such content_safety service")
	}
	k := fmt.Sprintf("%s\x00%s\x00%s\x00%d\x00%s\x00%v", svc.Name, svc.URL, svc.APIVersion, svc.Timeout, svc.Auth.APIKey.Reveal(), svc.Auth.ManagedIdentity)
	if c, ok := s.conns[k]; ok {
		return c, nil
	}
	var cred safety.Credential
	switch {
	case !svc.Auth.APIKey.IsZero():
		cred = safety.APIKey(svc.Auth.APIKey)
	case s.o.Credential != nil:
		var err error
		if cred, err = s.o.Credential(svc); err != nil {
			return nil, fmt.Errorf("content_safety %s: %w", svc.Name, err)
		}
		if c, ok := cred.(io.Closer); ok {
			s.creds = append(s.creds, c)
		}
	default:
		return nil, fmt.Errorf("content_safety %s: no credential", svc.Name)
	}
	c, err := safety.NewClient(safety.Options{Name: svc.Name, URL: svc.URL, APIVersion: svc.APIVersion, Credential: cred,
		Timeout: svc.Timeout.D(), HTTP: s.o.HTTP})
	if err != nil {
		return nil, err
	}
	s.conns[k] = c
	return c, nil
}

// Errors the client sees.
var (
	errUnavailable = wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "content_safety_unavailable",
		"The content safety service could not check the request. Retry later.")
	errPIIUnavailable = wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "pii_service_unavailable",
		"The personal data service could not check the request. Retry later.")
	errBroken = wire.NewError(http.StatusServiceUnavailable, wire.TypeServer, "guardrails_unavailable",
		"The guardrails of this product are not available. Retry later.")
	errUnreadable = wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "invalid_request_body",
		"The request's message text could not be read for masking.")
)

// filtered is the refusal of a prompt, naming why but never the text.
func filtered(what string, v safety.Verdict) *wire.Error {
	e := wire.NewError(http.StatusForbidden, wire.TypeInvalidRequest, "content_filter",
		"The "+what+" was refused by the content filter: "+v.Reason+".")
	e.NoRetry = true // the same text is refused again
	return e
}

// Before masks the prompt's personal data, checks the prompt, and adds the
// taps on the answer; see the package doc for the order.
func (s *Stage) Before(ctx context.Context, r *proxy.Request) (*proxy.Answer, error) {
	if r.Subscription == nil || r.Subscription.Product == nil {
		return nil, nil
	}
	p := s.policies().products[r.Subscription.Product.Name]
	if p == nil {
		return nil, nil
	}
	if p.broken != nil {
		return nil, errBroken
	}
	var vault *pii.Vault
	if p.masker != nil {
		var err error
		if vault, err = s.mask(ctx, p, r); err != nil {
			return nil, err
		}
	}
	if p.client != nil {
		if err := s.checkPrompt(ctx, p, r); err != nil {
			return nil, err
		}
	}
	// Taps run innermost first (proxy.Request.AddTap): the answer is
	// checked, then its placeholders restored, so that a later stage's tap
	// (the cache's) sees it checked and still masked.
	if vault.Len() > 0 && p.restore {
		r.AddTap(&restoreTap{r: vault.Restorer(), v: vault})
	}
	if p.client != nil && p.mode != "off" {
		r.AddTap(s.newCompletionTap(ctx, p, r.Op))
	}
	return nil, nil
}

// mask replaces the prompt's personal data by placeholders.
func (s *Stage) mask(ctx context.Context, p *policy, r *proxy.Request) (*pii.Vault, error) {
	start := time.Now()
	body, vault, err := p.masker.Mask(ctx, r.Op, r.Body)
	if err != nil && !errors.Is(err, pii.ErrUnreadable) && p.masker != p.local {
		s.stats.serviceError(p.product, "pii", p.piiFailOpen)
		s.log.Warn("pii service failed", "product", p.product, "on_error", onError(p.piiFailOpen), "err", err)
		if !p.piiFailOpen {
			return nil, errPIIUnavailable
		}
		body, vault, err = p.local.Mask(ctx, r.Op, r.Body)
	}
	s.stats.observe("pii", time.Since(start))
	if err != nil {
		return nil, errUnreadable
	}
	if vault.Len() == 0 {
		return vault, nil
	}
	if err := r.SetBody(body); err != nil {
		return nil, err
	}
	for cat, n := range vault.Counts() {
		s.stats.addMasked(p.product, cat, n)
	}
	return vault, nil
}

// checkPrompt checks the (masked) text of the prompt.
func (s *Stage) checkPrompt(ctx context.Context, p *policy, r *proxy.Request) error {
	texts, err := pii.Texts(r.Op, r.Body)
	if err != nil {
		return errUnreadable
	}
	values := make([]string, len(texts))
	for i, t := range texts {
		values[i] = t.Value
	}
	start := time.Now()
	v, err := p.client.CheckPrompt(ctx, p.check, values)
	s.stats.observe("prompt", time.Since(start))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.stats.serviceError(p.product, "prompt", p.failOpen)
		s.log.Warn("content safety service failed", "service", p.client.Name, "product", p.product,
			"check", "prompt", "on_error", onError(p.failOpen), "err", err)
		if p.failOpen {
			return nil
		}
		return errUnavailable
	}
	s.stats.verdict(p.product, "prompt", v)
	if v.Blocked {
		s.log.Debug("prompt refused by the content filter", "product", p.product, "reason", v.Reason)
		return filtered("prompt", v)
	}
	return nil
}

func onError(open bool) string {
	if open {
		return "fail_open"
	}
	return "fail_closed"
}

// restoreTap puts masked values back into the answer.
type restoreTap struct {
	v *pii.Vault
	r *pii.Restorer
}

func (t *restoreTap) Event(ev []byte) ([]byte, error) {
	// A tap before this one may pass several events at once.
	if n := eventCount(ev); n > 1 {
		var out []byte
		for _, one := range splitEvents(ev) {
			out = append(out, t.r.Event(one)...)
		}
		return out, nil
	}
	return t.r.Event(ev), nil
}

func (t *restoreTap) Body(body []byte) ([]byte, error) { return t.v.RestoreJSON(body), nil }
func (t *restoreTap) End(proxy.Outcome)                {}

// eventCount counts the events of raw SSE bytes: their blank lines.
func eventCount(b []byte) int {
	return strings.Count(string(b), "\n\n") + strings.Count(string(b), "\r\n\r\n")
}

// splitEvents cuts raw SSE bytes into events, each with its blank line.
func splitEvents(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := strings.Index(string(b), "\n\n")
		j := strings.Index(string(b), "\r\n\r\n")
		switch {
		case i < 0 && j < 0:
			out = append(out, b)
			return out
		case j >= 0 && (i < 0 || j < i):
			out, b = append(out, b[:j+4]), b[j+4:]
		default:
			out, b = append(out, b[:i+2]), b[i+2:]
		}
	}
	return out
}
