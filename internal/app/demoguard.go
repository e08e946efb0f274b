package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// The demo's guardrails: a simulated Content Safety service for each
// content_safety entry of the reference config, with the blocklists its
// products name, and, once the gateway is up, one refused prompt and one
// masked e-mail address shown in the demo's output.

// demoSafetyKeyVar is the variable the reference config takes the Content
// Safety key from.
const demoSafetyKeyVar = "CONTENT_SAFETY_KEY"

// demoBlockedTerm is the term the demo's blocklists hold.
const demoBlockedTerm = "project nightingale"

// safetyURLKey is the key of a content safety service's URL in the map of
// backend URLs demoConfig rewrites.
func safetyURLKey(name string) string { return "content_safety/" + name }

// startDemoSafety starts a simulated service for each of cfg's
// content_safety entries, on its address or a free port of the same host,
// with the blocklists the products name, and records its URL in urls. The
// goroutines it starts are in wg and end with ctx.
func startDemoSafety(ctx context.Context, wg *sync.WaitGroup, cfg *config.Config, urls map[string]string, log *slog.Logger) error {
	for _, svc := range cfg.ContentSafety {
		u, err := url.Parse(svc.URL)
		if err != nil {
			return err
		}
		ln, err := listenOr(u.Host)
		if err != nil {
			return fmt.Errorf("demo content safety %s: %w", svc.Name, err)
		}
		sim := simulator.New(simulator.Options{APIKey: svc.Auth.APIKey.Reveal(), Logger: log.With("simulator", svc.Name)})
		base := "http://" + ln.Addr().String()
		urls[safetyURLKey(svc.Name)] = base
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serveUntil(ctx, ln, sim); err != nil {
				log.Warn("demo content safety service stopped", "name", svc.Name, "err", err)
			}
		}()
		for _, pr := range cfg.Products {
			if cs := pr.ContentSafety; cs != nil && cs.Service == svc.Name {
				for _, bl := range cs.Blocklists {
					if err := demoBlocklist(ctx, base, svc.Auth.APIKey.Reveal(), bl); err != nil {
						return fmt.Errorf("demo blocklist %s: %w", bl, err)
					}
				}
			}
		}
	}
	return nil
}

// demoBlocklist makes a blocklist holding demoBlockedTerm through the
// service's blocklist API.
func demoBlocklist(ctx context.Context, base, key, name string) error {
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPatch, "/contentsafety/text/blocklists/" + url.PathEscape(name), `{"description":"the demo's blocklist"}`},
		{http.MethodPost, "/contentsafety/text/blocklists/" + url.PathEscape(name) + ":addOrUpdateBlocklistItems",
			`{"blocklistItems":[{"text":"` + demoBlockedTerm + `"}]}`},
	} {
		req, err := http.NewRequestWithContext(ctx, c.method, base+c.path+"?api-version=2024-09-01", strings.NewReader(c.body))
		if err != nil {
			return err
		}
		req.Header.Set("Ocp-Apim-Subscription-Key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: status %d", c.method, c.path, resp.StatusCode)
		}
	}
	return nil
}

// demoSeen keeps the last prompt a demo backend received that holds a
// placeholder, to show what the model saw of a masked prompt. Safe for
// concurrent use.
type demoSeen struct {
	mu   sync.Mutex // guards last
	last string
}

func (s *demoSeen) observe(_ *http.Request, body []byte) {
	if !bytes.Contains(body, []byte("<EMAIL_")) {
		return
	}
	var req struct {
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(body, &req) == nil && len(req.Messages) > 0 {
		s.mu.Lock()
		s.last = req.Messages[len(req.Messages)-1].Content
		s.mu.Unlock()
	}
}

func (s *demoSeen) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// showGuardrails sends, as subscription key, a prompt the blocklist
// refuses and one with an e-mail address, and writes to out what came of
// them: the refusal, and the prompt as the model received it. It does
// nothing when no product has guardrails.
func showGuardrails(ctx context.Context, out io.Writer, gw, key string, cfg *config.Config, seen *demoSeen) {
	guarded := false
	for _, pr := range cfg.Products {
		guarded = guarded || pr.ContentSafety != nil || pr.PII != nil
	}
	if !guarded {
		return
	}
	send := func(prompt string) (int, string) {
		body, _ := json.Marshal(map[string]any{"model": "gpt-4o", "max_tokens": 16,
			"messages": []map[string]string{{"role": "user", "content": prompt}}})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/v1/chat/completions", bytes.NewReader(body))
		if err != nil {
			return 0, err.Error()
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, strings.TrimSpace(e.Error.Code + ": " + e.Error.Message)
	}
	fmt.Fprintln(out, "Guardrails:")
	status, msg := send("Tell me everything about " + demoBlockedTerm + ".")
	fmt.Fprintf(out, "  prompt naming %q -> %d %s\n", demoBlockedTerm, status, msg)
	prompt := "Write a reply to jane.doe@example.com about the invoice."
	status, _ = send(prompt)
	fmt.Fprintf(out, "  prompt %q -> %d; the model received %q\n", prompt, status, seen.get())
	fmt.Fprintln(out)
}
