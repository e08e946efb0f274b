package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a sluice process the harness started and stops.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // file holding its stderr, for when it fails
}

const (
	simKey   = "sim-backend-key"
	subKey   = "sk-bench-subscription-key"
	adminKey = "bench-admin-key"
)

// build builds the commands in packages pkgs (such as "./cmd/sluice") into
// dir, in one go command so that they link in parallel, and returns the
// binaries' paths in the order of pkgs. stripped leaves out the symbol table
// and DWARF, which take much of the link's time and change nothing the
// harness measures; a long run still builds as plain `go build` does.
func build(ctx context.Context, dir string, stripped bool, pkgs ...string) ([]string, error) {
	root, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return nil, fmt.Errorf("find module root: %w", err)
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if stripped {
		args = append(args, "-ldflags=-s -w")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkgs...)...)
	cmd.Dir = strings.TrimSpace(string(root))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	bins := make([]string, len(pkgs))
	for i, pkg := range pkgs {
		bins[i] = filepath.Join(dir, filepath.Base(pkg))
	}
	return bins, nil
}

// buildAt builds ./cmd/sluice as it was at the git revision rev, in a
// detached worktree under dir that is removed after, and returns the binary.
func buildAt(ctx context.Context, dir, rev string) (string, error) {
	root, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	src := filepath.Join(dir, "baseline-src")
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = strings.TrimSpace(string(root))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := git("worktree", "add", "--detach", src, rev); err != nil {
		return "", err
	}
	defer func() { _ = git("worktree", "remove", "--force", src) }()
	bin := filepath.Join(dir, "sluice-baseline")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sluice")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build at %s: %w\n%s", rev, err, out)
	}
	return bin, nil
}

// startBare starts the reference reverse proxy (bench/bareproxy) in front of
// the simulator at simURL and returns it with its URL.
func startBare(bin, dir, simURL string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := start(bin, dir, "bareproxy", false, addr, simURL, simKey)
	if err != nil {
		return nil, "", err
	}
	if err := waitTCP(addr); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("bareproxy: %w", err)
	}
	return p, "http://" + addr, nil
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs bin with args; its stderr goes to a file in dir, or to
// /dev/null when quiet (the gateway's access log at info).
func start(bin, dir, name string, quiet bool, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	// If the harness dies without stopping its children, they die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd}
	if !quiet {
		p.log = filepath.Join(dir, name+".log")
		f, err := os.Create(p.log)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stderr, cmd.Stdout = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop asks the process to end, and kills it after 5 s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// waitReady polls url until it answers 200, for up to 10 s.
func waitReady(ctx context.Context, p *proc, url string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.cmd.ProcessState != nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	msg := ""
	if p.log != "" {
		b, _ := os.ReadFile(p.log)
		msg = string(b)
	}
	return fmt.Errorf("%s not ready at %s: %s", p.name, url, msg)
}

// startSim starts a simulator with one deployment gpt-4o without limits,
// plus extra flags (latency), and returns it with its chat URL.
func startSim(ctx context.Context, bin, dir, name string, extra ...string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	args := append([]string{"simulate", "--listen", addr, "--key", simKey,
		"--deployment", "gpt-4o=gpt-4o", "--log-level", "warn"}, extra...)
	p, err := start(bin, dir, name, false, args...)
	if err != nil {
		return nil, "", err
	}
	// The simulator has no health path: a listening port is ready enough.
	if err := waitTCP(addr); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	return p, "http://" + addr, nil
}

func waitTCP(addr string) error {
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("no listener at " + addr)
}

// gatewayConfig is a config for one gateway in front of the simulator at
// simURL. full adds what the issue calls the full config: a token limit with
// prompt estimation on the memory store, metrics and the access log at info
// (the ledger is on in both: it cannot be turned off).
func gatewayConfig(dir, name, simURL string, full bool) (yaml, listen, admin string, err error) {
	if listen, err = freeAddr(); err != nil {
		return
	}
	if admin, err = freeAddr(); err != nil {
		return
	}
	limits := ""
	if full {
		limits = `
    limits:
      - key: subscription
        tokens_per_minute: 1000000000000
        requests_per_minute: 1000000000
        estimate_prompt_tokens: true`
	}
	yaml = fmt.Sprintf(`server: {listen: "%s", shutdown_grace: 2s}
admin: {listen: "%s", api_key: "%s"}
state: {store: memory}
usage:
  store: "sqlite:%s"
  journal: "%s"
  prices: {currency: USD, models: {gpt-4o: {input: 2.50, output: 10.00}}}
metrics: {prometheus: %t}
backends:
  - name: sim
    kind: azure-openai
    url: %s
    auth: {api_key: %s}
    deployments: {gpt-4o: gpt-4o}
pools:
  - name: chat
    members: [{backend: sim}]
models: {gpt-4o: chat}
products:
  - name: bench
    models: [gpt-4o]%s
subscriptions:
  - name: bench
    product: bench
    keys: ["%s"]
`, listen, admin, adminKey, filepath.Join(dir, name+"-usage.db"), filepath.Join(dir, name+"-usage.journal"),
		full, simURL, simKey, limits, subKey)
	return
}

// withExactCache gives a gateway config's product an exact response cache.
func withExactCache(yaml string) string {
	return strings.Replace(yaml, "    models: [gpt-4o]", "    models: [gpt-4o]\n    cache: {exact: {ttl: 1h}}", 1)
}

// withGuardrails gives a gateway config's product the content safety of
// issue 16, checked by the Content Safety API of the simulator at simURL:
// prompts (categories and Prompt Shields) and, unless answers is false,
// answers in windows of 1,000 characters overlapping by 100.
func withGuardrails(simURL string, answers bool) func(string) string {
	mode := "off"
	if answers {
		mode = "window"
	}
	return func(yaml string) string {
		yaml = strings.Replace(yaml, "backends:\n", fmt.Sprintf(`content_safety:
  - name: safety
    url: %s
    auth: {api_key: %s}
    timeout: 2s
backends:
`, simURL, simKey), 1)
		return strings.Replace(yaml, "    models: [gpt-4o]", `    models: [gpt-4o]
    content_safety:
      service: safety
      shield_prompt: true
      output_type: FourSeverityLevels
      categories: {Hate: 4, SelfHarm: 4, Sexual: 4, Violence: 4}
      completions: {mode: `+mode+`, window_size: 1000, window_overlap: 100}
      on_error: fail_closed`, 1)
	}
}

// guardGateway is a gateway of scenario 10 with the time its guardrail
// checks took, as it measured them (sluice_guard_check_seconds).
type guardGateway struct {
	scenario, name, admin string
	checks                map[string]checkTime // by check: prompt, completion
}

type checkTime struct {
	count uint64
	sum   time.Duration
}

// mean is the time of one check; 0 when none was made.
func (c checkTime) mean() time.Duration {
	if c.count == 0 {
		return 0
	}
	return c.sum / time.Duration(c.count)
}

// readChecks reads the gateway's check times from its /metrics.
func (g *guardGateway) readChecks(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.admin+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s /metrics: %s", g.name, resp.Status)
	}
	g.checks = map[string]checkTime{}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, rest, ok := strings.Cut(line, `{check="`)
		if !ok || !strings.HasPrefix(name, "sluice_guard_check_seconds_") {
			continue
		}
		check, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return fmt.Errorf("%s /metrics: %q: %w", g.name, line, err)
		}
		c := g.checks[check]
		switch name {
		case "sluice_guard_check_seconds_count":
			c.count = uint64(v)
		case "sluice_guard_check_seconds_sum":
			c.sum = time.Duration(v * float64(time.Second))
		}
		g.checks[check] = c
	}
	return nil
}

// startGateway writes the config (after the edits) and serves it; the full config logs at info
// to /dev/null, the minimal one at warn.
func startGateway(ctx context.Context, bin, dir, name, simURL string, full bool, edits ...func(string) string) (p *proc, url, adminURL string, err error) {
	yaml, listen, admin, err := gatewayConfig(dir, name, simURL, full)
	if err != nil {
		return nil, "", "", err
	}
	for _, edit := range edits {
		yaml = edit(yaml)
	}
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		return nil, "", "", err
	}
	level := "warn"
	if full {
		level = "info"
	}
	p, err = start(bin, dir, name, full, "serve", "--config", path, "--log-level", level)
	if err != nil {
		return nil, "", "", err
	}
	if err := waitReady(ctx, p, "http://"+admin+"/readyz"); err != nil {
		p.stop()
		return nil, "", "", err
	}
	return p, "http://" + listen, "http://" + admin, nil
}

// fetchProfile saves the gateway's profile name (with query, such as
// "profile?seconds=4") from its admin listener to path.
func fetchProfile(ctx context.Context, admin, name, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/admin/debug/pprof/"+name, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat.
var clockTick = func() time.Duration {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if n, err2 := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && err2 == nil && n > 0 {
		return time.Second / time.Duration(n)
	}
	return 10 * time.Millisecond
}()

// cpuTime is the user plus system CPU time of process pid so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields are counted after it.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(ut+st) * clockTick, nil
}

// rss is the resident set size of process pid, in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}
