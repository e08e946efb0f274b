package app

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// screenshots, when set, is a folder the browser tests also write their
// screenshots to, for the docs: scripts/screenshots.sh passes docs/images.
var screenshots = flag.String("screenshots", "", "also write the browser tests' screenshots into this folder")

// chromium finds Debian's chromium-headless-shell (or a full Chromium).
func chromium() string {
	for _, name := range []string{"chromium-headless-shell", "/usr/lib/chromium-headless-shell/chromium-headless-shell", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is a headless Chromium tab, and the console messages its pages wrote.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// newBrowser starts a headless Chromium for the test; it closes with the
// test, before the servers the test registered earlier.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromium()
	if path == "" {
		t.Skip("browser tests need Chromium: install Debian's chromium-headless-shell " +
			"(sudo apt-get install chromium-headless-shell; scripts/test.sh and .ci/run install it when run as root)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 860),
		chromedp.WSURLReadTimeout(90*time.Second)) // a loaded machine starts Chromium slowly
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	b := &browser{t: t, ctx: ctx}
	// Start the browser once, before anything else asks for it: a start
	// that failed and was tried again by a later call would leave two of
	// chromedp's allocations on one context, which panics (close of a
	// closed channel) when the test ends.
	if err := chromedp.Do(ctx); err != nil {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		<-done
	})
	return b
}

// do runs steps, failing the test on an error.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\nconsole:\n%s", what, err, b.consoleText())
	}
}

// text returns the text of the first element sel matches.
func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// eval evaluates a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript expression until it is truthy, for up to d.
func (b *browser) waitFor(what, expr string, d time.Duration) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(d))); err != nil {
		b.t.Fatalf("waiting for %s (%s): %v\nconsole:\n%s", what, expr, err, b.consoleText())
	}
}

// screenshot writes the page into the test's temp dir and, with
// -screenshots, into that folder.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	dirs := []string{b.t.TempDir()}
	if *screenshots != "" {
		dirs = append(dirs, *screenshots)
	}
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

func (b *browser) consoleText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	for _, m := range b.console {
		sb.WriteString("  " + string(m.Type) + ": " + m.Text + "\n")
	}
	return sb.String()
}

// noConsoleErrors fails the test for an error the pages wrote to the
// console, or threw; expected are substrings of the browser's own network
// errors the test provoked (a refused key's 401, a 429).
func (b *browser) noConsoleErrors(expected ...string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException {
			continue
		}
		ok := false
		for _, e := range expected {
			ok = ok || m.Source == "network" && strings.Contains(m.Text, e)
		}
		if !ok {
			b.t.Errorf("console %s (%s): %s", m.Type, m.Source, m.Text)
		}
	}
}

// phoneWidth narrows the window to a phone's (390 px), checks that the page
// does not scroll sideways (wide tables scroll inside their own box), and
// takes a screenshot.
func (b *browser) phoneWidth(name string) {
	b.t.Helper()
	b.do("phone width", chromedp.EmulateViewport(390, 844))
	b.waitFor("the page within a phone's width", `document.documentElement.scrollWidth <= window.innerWidth`, 5*time.Second)
	b.screenshot(name)
	b.do("laptop width", chromedp.EmulateViewport(1280, 860))
}

// dark switches the page to the dark colour scheme, checks that it follows,
// and takes a screenshot.
func (b *browser) dark(name string) {
	b.t.Helper()
	setScheme := func(v string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}}})
			return err
		})
	}
	b.do("dark scheme", setScheme("dark"))
	b.waitFor("the dark background", `getComputedStyle(document.body).backgroundColor === "rgb(13, 17, 23)"`, 5*time.Second)
	b.screenshot(name)
	b.do("light scheme", setScheme("light"))
}
