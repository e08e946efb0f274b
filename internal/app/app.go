// Package app is the sluice command: it parses the command line and wires
// the packages below into a running gateway, simulator or demo.
//
// Dependencies point one way, downwards:
//
//	cmd/sluice -> app -> proxy, admin -> route -> balance, backend -> auth, wire, sse, config, secret
//	                  -> listener -> wire
//	                  -> simulator -> tokens
//
// A package never imports one above it; wire formats and config are at the
// bottom, mechanisms in the middle, the request pipeline above them.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/listener"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// Version is the release version, set with -ldflags "-X .../app.Version=v1.2.3".
var Version = ""

// ExitError carries an exit status; Main's caller exits with it without
// printing anything more, because the command has said why.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

const usageText = `Sluice is a gateway for the Azure OpenAI and OpenAI APIs.

Usage:
  sluice [demo flags]            start the demo (same as "sluice demo"; see "sluice demo -h")
  sluice serve --config FILE     run the gateway
  sluice check --config FILE     validate a config file and summarise it
  sluice simulate --listen ADDR  run the Azure OpenAI / OpenAI backend simulator
  sluice usage --config FILE     print tokens, requests, errors and cost from the usage ledger
  sluice subscriptions list      manage runtime subscriptions through the admin API
  sluice demo                    run simulated backends behind the gateway
  sluice version                 print the version

Run "sluice COMMAND -h" for a command's flags.
`

// Main runs the sluice command with args (without the program name). It
// returns when the command is done or ctx ends.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return demo(ctx, nil, stdout, stderr)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "check":
		return check(rest, stdout, stderr)
	case "simulate":
		return simulate(ctx, rest, stdout, stderr)
	case "usage":
		return usageCmd(ctx, rest, stdout, stderr)
	case "subscriptions":
		return subscriptionsCmd(ctx, rest, stdout, stderr)
	case "demo":
		return demo(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	if strings.HasPrefix(cmd, "-") {
		// "sluice --load 5" is the demo with its flags.
		return demo(ctx, args, stdout, stderr)
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", cmd, usageText)
	return &ExitError{Code: 2}
}

func versionString() string {
	v := Version
	if v == "" {
		v = "dev"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return fmt.Sprintf("sluice %s (%s, %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newFlags returns a FlagSet that reports errors to stderr and returns them.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sluice "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args; -h gives status 0, other errors status 2.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &ExitError{Code: 0}
		}
		return &ExitError{Code: 2}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return &ExitError{Code: 2}
	}
	return nil
}

type logFlags struct{ level, format string }

func (l *logFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&l.format, "log-format", "json", "log format: json or text")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "json":
		lw := &lockedWriter{w: w}
		return slog.New(jsonLog{slog.NewJSONHandler(lw, opts), lw}), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want json or text, got %q", l.format)
}

// jsonLog is slog's JSON handler that lets the access log write its lines
// to the same writer itself (proxy.JSONLines). Attributes or groups added
// with With give a plain JSONHandler, whose lines the access log leaves to
// slog.
type jsonLog struct {
	*slog.JSONHandler
	w io.Writer
}

// JSONLines implements proxy.JSONLines.
func (h jsonLog) JSONLines() io.Writer { return h.w }

// lockedWriter serializes the writes of slog's handler and of the access
// log, as the handler alone would.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "sluice.yaml", "config file")
	var lf logFlags
	lf.bind(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	if _, err := os.Stat(*path); errors.Is(err, os.ErrNotExist) {
		// A new user's first try: say where a config comes from.
		const missing = `sluice serve: %[1]s: no such file (--config names the config file).
To start from the demo's config, examples/sluice.yaml, against its simulators:

  %[2]s demo --print-config > sluice.yaml

saves it and prints the commands that run it. Or write your own from
examples/sluice.yaml (every field is in docs/configuration.md) and run
"%[2]s serve --config FILE". To see Sluice at work first: %[2]s demo
`
		fmt.Fprintf(stderr, missing, *path, selfCommand())
		return &ExitError{Code: 1}
	}
	raiseFileLimit(log)
	source := func() (*config.Config, error) { return config.Load(*path, os.LookupEnv) }
	g, err := NewGateway(source, log, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return &ExitError{Code: 1}
	}
	cfg := g.Table().Config
	ln, adminLn, err := listen(cfg.Server.Listen, cfg.Admin.Listen)
	if err != nil {
		g.Close()
		return err
	}
	log.Info("sluice serving", "version", versionString(), "listen", ln.Addr().String(),
		"admin", addrOf(adminLn), "tls", cfg.Server.TLS != nil, "config", *path)
	stopHUP := reloadOnHUP(ctx, g, log)
	defer stopHUP()
	return g.Serve(ctx, ln, adminLn)
}

// raiseFileLimit raises the open-file limit to its hard limit, so that
// server.max_connections is not cut to a low default soft limit, and logs it.
func raiseFileLimit(log *slog.Logger) {
	before, after, err := listener.RaiseFileLimit()
	switch {
	case errors.Is(err, errors.ErrUnsupported):
	case err != nil:
		log.Warn("could not raise the open-file limit", "err", err, "open_file_limit", before)
	case after > before:
		log.Info("open-file limit raised", "from", before, "to", after)
	default:
		log.Info("open-file limit", "open_file_limit", after)
	}
}

// reloadOnHUP reloads the config on every SIGHUP until ctx ends or the
// returned stop is called.
func reloadOnHUP(ctx context.Context, g *Gateway, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := g.Reload(); err != nil {
					log.Warn("config reload refused; the previous config stays in force", "err", err)
				}
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

func listen(addr, adminAddr string) (ln, adminLn net.Listener, err error) {
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("server.listen: %w", err)
	}
	if adminAddr != "" {
		adminLn, err = net.Listen("tcp", adminAddr)
		if err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("admin.listen: %w", err)
		}
	}
	return ln, adminLn, nil
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

func check(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	path := fs.String("config", "sluice.yaml", "config file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, os.LookupEnv)
	if err == nil {
		var t *route.Table
		if t, err = route.Compile(cfg, route.Env{}); err == nil {
			t.Close() // check opens nothing it keeps: the limiter is in memory
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return &ExitError{Code: 1}
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	var names []string
	for _, b := range cfg.Backends {
		names = append(names, fmt.Sprintf("%s (%s, %s)", b.Name, b.Kind, orDash(b.Region)))
	}
	summary(stdout, "backends", names)
	names = names[:0]
	for _, p := range cfg.Pools {
		names = append(names, fmt.Sprintf("%s (%d members)", p.Name, len(p.Members)))
	}
	summary(stdout, "pools", names)
	names = names[:0]
	for m, p := range cfg.Models {
		names = append(names, m+" -> "+p)
	}
	sort.Strings(names)
	summary(stdout, "models", names)
	names = names[:0]
	for _, p := range cfg.Products {
		names = append(names, p.Name)
	}
	summary(stdout, "products", names)
	names = names[:0]
	for _, s := range cfg.Subscriptions {
		names = append(names, fmt.Sprintf("%s (%s)", s.Name, s.Product))
	}
	summary(stdout, "subscriptions", names)
	return nil
}

func summary(w io.Writer, what string, names []string) {
	fmt.Fprintf(w, "%-14s %d: %s\n", what+":", len(names), strings.Join(names, ", "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func simulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("simulate", stderr)
	addr := fs.String("listen", "127.0.0.1:9101", "address to listen on")
	options := simulator.BindFlags(fs)
	var lf logFlags
	lf.bind(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	opts, err := options()
	if err != nil {
		fmt.Fprintln(stderr, "sluice simulate:", err)
		return &ExitError{Code: 2}
	}
	opts.Logger = log
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	sim := simulator.New(opts)
	defer sim.Close()
	var deps []string
	for name := range opts.Deployments {
		deps = append(deps, name)
	}
	sort.Strings(deps)
	fmt.Fprintf(stdout, "simulator listening on http://%s (deployments: %s)\n", ln.Addr(), strings.Join(deps, ", "))
	return serveUntil(ctx, ln, sim)
}
