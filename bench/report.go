package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// report is everything one run measured, and the machine it ran on.
type report struct {
	opts      options
	when      time.Time
	host, cpu string
	commit    string
	scenarios []*scenarioResult
	memory    []*memResult
	soak      *soakResult
	// guardChecks are scenario 10's gateways' own check times.
	guardChecks []guardGateway
}

func newReport(o options) *report {
	r := &report{opts: o, when: time.Now().UTC(), cpu: "unknown", commit: "unknown"}
	r.host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				r.cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		r.commit = strings.TrimSpace(string(out))
	}
	return r
}

// errors counts the failed requests and streams of the whole run.
func (r *report) errors() int {
	n := 0
	for _, s := range r.scenarios {
		for _, m := range s.byTarget {
			n += int(m.all.errors)
		}
	}
	for _, m := range r.memory {
		n += max(m.errors, m.streams-m.opened)
	}
	if r.soak != nil {
		n += int(r.soak.chat.errors + r.soak.streams.errors)
	}
	return n
}

func (r *report) write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s-%s.md", r.when.Format("2006-01-02"), r.host)
	if r.opts.smoke {
		name = strings.TrimSuffix(name, ".md") + "-smoke.md"
	}
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(r.markdown()), 0o644)
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }

func signedUs(d time.Duration) string { return fmt.Sprintf("%+.0f µs", float64(d)/1e3) }

// cpuPerReq is CPU time per successful request, in µs.
func cpuPerReq(cpu time.Duration, r *result) string {
	if r.requests == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f µs", float64(cpu)/1e3/float64(r.requests))
}

// verdict says whether got met want for a target where lower is better.
func verdict(ok, measured bool) string {
	switch {
	case !measured:
		return "not measured"
	case ok:
		return "met"
	}
	return "**not met**"
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	mode := ""
	if r.opts.smoke {
		mode = " (smoke run: too short to quote)"
	}
	p("# Sluice benchmark, %s%s\n\n", r.when.Format("2006-01-02 15:04 MST"), mode)
	p("## Machine\n\n| | |\n|---|---|\n")
	p("| host | %s |\n| cores | %d |\n| CPU | %s |\n| Go | %s %s/%s |\n| commit | %s |\n",
		r.host, runtime.NumCPU(), r.cpu, runtime.Version(), runtime.GOOS, runtime.GOARCH, r.commit)
	p("| rounds | %d of %s per target, alternating, after a warm-up |\n", r.opts.rounds, r.opts.duration)
	p("\nLoad generator, gateway and simulator share the machine. CPU time is utime+stime from /proc/PID/stat (resolution %s).\n", clockTick)

	p("\nEvery scenario compares a direct call to the simulator with the same call through Sluice, and where shown through %s: ", bareName)
	p("a reverse proxy on net/http (`bench/bareproxy`) in front of the same simulator that does nothing but swap the key. ")
	p("It is the floor for any gateway built on net/http: what Sluice adds beyond it is the cost of its own work.\n")
	p("\n## Summary\n\n| scenario | via | added p50 | added p99 | throughput / direct | proxy CPU per request |\n|---|---|---|---|---|---|\n")
	for _, s := range r.scenarios {
		d := s.byTarget[0]
		for _, m := range s.byTarget[1:] {
			p("| %s | %s | %s | %s | %.0f%% | %s |\n", s.id, m.target.name,
				signedUs(m.all.lat.quantile(0.5)-d.all.lat.quantile(0.5)),
				signedUs(m.all.lat.quantile(0.99)-d.all.lat.quantile(0.99)),
				100*m.all.rps()/max(d.all.rps(), 1e-9), cpuPerReq(m.cpu, &m.all))
		}
	}
	r.targets(p)
	r.guardTargets(p)
	for _, s := range r.scenarios {
		r.scenarioSection(p, s)
	}
	p("\n## Scenario 5: open streams, gateway resident memory\n\n")
	p("A simulator that sends one token a second holds every stream open; a fresh full-config gateway per row.\n\n")
	p("| streams | opened | errors | time to open all | VmRSS before | VmRSS with streams open | per stream |\n|---|---|---|---|---|---|---|\n")
	for _, m := range r.memory {
		p("| %d | %d | %d | %s | %.1f MB | %.1f MB | %.1f KB |\n", m.streams, m.opened, m.errors,
			m.openTime.Round(time.Millisecond), float64(m.rssBefore)/(1<<20), float64(m.rssAfter)/(1<<20), float64(m.perStream())/1024)
	}
	if s := r.soak; s != nil {
		r.soakSection(p, s)
	}
	p("\n## Errors\n\n")
	if r.errors() == 0 {
		p("None.\n")
	}
	for _, s := range r.scenarios {
		for _, m := range s.byTarget {
			if m.all.errors > 0 {
				p("- scenario %s, %s: %d errors, first: %s\n", s.id, m.target.name, m.all.errors, m.all.firstErr)
			}
		}
	}
	for _, m := range r.memory {
		if m.opened < m.streams {
			p("- scenario 5, %d streams: %d opened, %d errors, first: %s\n", m.streams, m.opened, m.errors, m.firstErr)
		}
	}
	if s := r.soak; s != nil {
		for _, res := range []*result{&s.chat, &s.streams} {
			if res.errors > 0 {
				p("- scenario 8: %d errors, first: %s\n", res.errors, res.firstErr)
			}
		}
	}
	return b.String()
}

func (r *report) find(id, via string) (direct, m *measured) {
	for _, s := range r.scenarios {
		if s.id != id {
			continue
		}
		for _, t := range s.byTarget[1:] {
			if t.target.name == via {
				return s.byTarget[0], t
			}
		}
	}
	return nil, nil
}

// targets compares the full-config figures with the targets of issue 6, and
// shows the floor's figure for the same measure.
func (r *report) targets(p func(string, ...any)) {
	p("\n## Targets (issue 6, full config)\n\n| target | Sluice (full) | | %s |\n|---|---|---|---|\n", bareName)
	floor := func(id string, f func(d, m *measured) string) string {
		if d, m := r.find(id, bareName); m != nil && m.all.requests > 0 {
			return f(d, m)
		}
		return "-"
	}
	cpu := func(_, m *measured) string { return cpuPerReq(m.cpu, &m.all) }
	ratio := func(d, m *measured) float64 { return m.all.rps() / max(d.all.rps(), 1e-9) }
	added := func(q float64) func(d, m *measured) time.Duration {
		return func(d, m *measured) time.Duration { return m.all.lat.quantile(q) - d.all.lat.quantile(q) }
	}
	gap99 := func(d, m *measured) time.Duration { return m.all.gap.quantile(0.99) - d.all.gap.quantile(0.99) }
	signed := func(f func(d, m *measured) time.Duration) func(d, m *measured) string {
		return func(d, m *measured) string { return signedUs(f(d, m)) }
	}
	if d, m := r.find("1", fullName); m != nil && m.all.requests > 0 {
		c := m.cpu / time.Duration(m.all.requests)
		p("| CPU per non-streaming request ≤ 60 µs | %s | %s | %s |\n", cpuPerReq(m.cpu, &m.all), verdict(c <= 60*time.Microsecond, true), floor("1", cpu))
		p("| throughput at saturation ≥ 40%% of direct | %.0f%% | %s | %s |\n", 100*ratio(d, m), verdict(ratio(d, m) >= 0.4, true),
			floor("1", func(d, m *measured) string { return fmt.Sprintf("%.0f%%", 100*ratio(d, m)) }))
	}
	if d, m := r.find("2", fullName); m != nil {
		a50, a99 := added(0.5)(d, m), added(0.99)(d, m)
		p("| at %g req/s, added p50 ≤ 100 µs | %s | %s | %s |\n", r.opts.rate, signedUs(a50), verdict(a50 <= 100*time.Microsecond, r.opts.rate == 1000), floor("2", signed(added(0.5))))
		p("| at %g req/s, added p99 ≤ 1 ms | %s | %s | %s |\n", r.opts.rate, signedUs(a99), verdict(a99 <= time.Millisecond, r.opts.rate == 1000), floor("2", signed(added(0.99))))
	}
	if d, m := r.find("4", fullName); m != nil {
		t50 := added(0.5)(d, m)
		p("| streaming: added time to first token p50 ≤ 200 µs | %s | %s | %s |\n", signedUs(t50), verdict(t50 <= 200*time.Microsecond, true), floor("4", signed(added(0.5))))
	}
	// The gap is measured where chunks come at a model's pace (scenario 7);
	// scenario 4's zero-latency chunks arrive in a few TCP reads.
	for _, id := range []string{"7", "4"} {
		if d, m := r.find(id, fullName); m != nil {
			g99 := gap99(d, m)
			p("| streaming: added delay between chunks p99 ≤ 50 µs (scenario %s) | %s | %s | %s |\n", id, signedUs(g99), verdict(g99 <= 50*time.Microsecond, true), floor(id, signed(gap99)))
			break
		}
	}
	measured := false
	for _, m := range r.memory {
		if m.streams == 5000 {
			measured = true
			p("| ≤ 64 KB resident per open stream at 5,000 streams | %.1f KB | %s | - |\n",
				float64(m.perStream())/1024, verdict(m.perStream() <= 64<<10 && m.opened == m.streams, true))
		}
	}
	if !measured {
		p("| ≤ 64 KB resident per open stream at 5,000 streams | - | not measured | - |\n")
	}
	if s := r.soak; s != nil {
		a, b := s.windows()
		p("| memory flat over a 10-minute soak | %s soak: %.1f MB after warm-up, %.1f MB at the end (%+.1f%%) | %s | - |\n",
			s.duration, float64(a)/(1<<20), float64(b)/(1<<20), 100*s.growth(), verdict(s.flat(), s.duration >= 10*time.Minute))
	} else {
		p("| memory flat over a 10-minute soak | - | not measured (run with -soak 10m) | - |\n")
	}
}

// guardTargets compares scenario 10's gateway with guardrails with the same
// config without them, against the overhead targets of issue 16.
func (r *report) guardTargets(p func(string, ...any)) {
	plain, prompt := r.find("10a", promptChecksName)
	_, chat := r.find("10a", guardedName)
	plainS, stream := r.find("10b", guardedName)
	if prompt == nil && chat == nil && stream == nil {
		return
	}
	p("\n## Targets (issue 16, guardrails at a zero-latency safety service)\n\n")
	p("Scenario 10 against the same full config without guardrails, in the same rounds.\n\n")
	p("| measure | without | with guardrails | added | target | |\n|---|---|---|---|---|---|\n")
	row := func(what string, a, b *hist, q float64, limit time.Duration) {
		x, y := a.quantile(q), b.quantile(q)
		goal, v := "-", "-"
		if limit > 0 {
			goal, v = "≤ "+us(limit)+" added", verdict(y-x <= limit, a.n > 0 && b.n > 0)
		}
		p("| %s | %s | %s | %s | %s | %s |\n", what, us(x), us(y), signedUs(y-x), goal, v)
	}
	if prompt != nil {
		row("10a: chat latency p50, prompt checks", &plain.all.lat, &prompt.all.lat, .5, time.Millisecond)
		row("10a: chat latency p99, prompt checks", &plain.all.lat, &prompt.all.lat, .99, 0)
	}
	if chat != nil {
		row("10a: chat latency p50, prompt and answer checks", &plain.all.lat, &chat.all.lat, .5, 0)
		row("10a: chat latency p99, prompt and answer checks", &plain.all.lat, &chat.all.lat, .99, 0)
	}
	if stream != nil {
		row("10b: gap between chunks p50", &plainS.all.gap, &stream.all.gap, .5, 0)
		row("10b: gap between chunks p99", &plainS.all.gap, &stream.all.gap, .99, 0)
		row("10b: time to first chunk p50", &plainS.all.lat, &stream.all.lat, .5, 0)
		row("10b: time to last chunk p50", &plainS.all.last, &stream.all.last, .5, 0)
		row("10b: time to last chunk p99", &plainS.all.last, &stream.all.last, .99, 0)
	}
	if len(r.guardChecks) > 0 {
		p("\nThe checks' own time, as each gateway measured it (`sluice_guard_check_seconds`, sum over count, warm-up included; the service's calls are made and waited for within it):\n\n")
		p("| scenario | gateway | check | checks | mean per check | target | |\n|---|---|---|---|---|---|---|\n")
		for _, g := range r.guardChecks {
			for _, check := range []string{"prompt", "completion"} {
				c, ok := g.checks[check]
				if !ok {
					continue
				}
				goal, v := "-", "-"
				if check == "completion" && g.scenario == "10b" {
					// Held events go out as soon as their window's check
					// returns: its time is the delay it adds to them.
					goal, v = "≤ 1000 µs added to a window's release", verdict(c.mean() <= time.Millisecond, c.count > 0)
				}
				p("| %s | %s | %s | %d | %s | %s | %s |\n", g.scenario, g.name, check, c.count, us(c.mean()), goal, v)
			}
		}
	}
	p("\nIn window mode an event goes out once the window of 1,000 characters holding its text is found clean, ")
	p("so a stream reaches the client in bursts: most gaps shrink to a burst's, a few grow to a window's generation time. ")
	p("Neither is the check's cost, so the gaps carry no verdict; nor does the time to the last chunk, whose ")
	p("differences over a stream of seconds are the simulator's pacing on a shared machine. A window's events go out ")
	p("as soon as its check returns, so the check's time, measured by the gateway, is the delay it adds to them.\n")
}

func (r *report) scenarioSection(p func(string, ...any), s *scenarioResult) {
	p("\n## Scenario %s: %s\n\n", s.id, s.title)
	if s.stream {
		p("Latency columns are time to first chunk; gaps are between successive chunks of a stream.\n\n")
		p("| target | round | streams | errors | streams/s | chunks/stream | TTFT p50 | TTFT p90 | TTFT p99 | TTFT p99.9 | gap p50 | gap p99 | gap p99.9 | gateway CPU/stream | simulator CPU/stream |\n")
		p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	} else {
		p("| target | round | requests | errors | req/s | p50 | p90 | p99 | p99.9 | gateway CPU/req | simulator CPU/req |\n")
		p("|---|---|---|---|---|---|---|---|---|---|---|\n")
	}
	for _, m := range s.byTarget {
		rows := append([]*result{}, m.rounds...)
		rows = append(rows, &m.all)
		for i, res := range rows {
			round := fmt.Sprint(i + 1)
			gwCPU, simCPU := "-", "-"
			if i == len(rows)-1 {
				round = "**all**"
				simCPU = cpuPerReq(m.simCPU, res)
				if !m.sidecar {
					gwCPU = cpuPerReq(m.cpu, res)
				}
			}
			h := &res.lat
			if s.stream {
				per := 0.0
				if res.requests > 0 {
					per = float64(res.chunks) / float64(res.requests)
				}
				p("| %s | %s | %d | %d | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
					m.target.name, round, res.requests, res.errors, res.rps(), per,
					us(h.quantile(.5)), us(h.quantile(.9)), us(h.quantile(.99)), us(h.quantile(.999)),
					us(res.gap.quantile(.5)), us(res.gap.quantile(.99)), us(res.gap.quantile(.999)), gwCPU, simCPU)
				continue
			}
			p("| %s | %s | %d | %d | %.0f | %s | %s | %s | %s | %s | %s |\n",
				m.target.name, round, res.requests, res.errors, res.rps(),
				us(h.quantile(.5)), us(h.quantile(.9)), us(h.quantile(.99)), us(h.quantile(.999)), gwCPU, simCPU)
		}
	}
}

func (r *report) soakSection(p func(string, ...any), s *soakResult) {
	p("\n## Scenario 8: soak, %s of chat at %g req/s and streams at %g/s through the full config\n\n", s.duration, r.opts.rate, r.opts.streamRate)
	p("The gateway's VmRSS, sampled; the verdict compares the mean over the %s after the warm-up (the first %s) with the mean over the last %s.\n\n", s.warmup, s.warmup, s.warmup)
	p("| | requests | errors | p50 | p99 | p99.9 |\n|---|---|---|---|---|---|\n")
	p("| chat | %d | %d | %s | %s | %s |\n", s.chat.requests, s.chat.errors, us(s.chat.lat.quantile(.5)), us(s.chat.lat.quantile(.99)), us(s.chat.lat.quantile(.999)))
	p("| streams (time to first chunk) | %d | %d | %s | %s | %s |\n", s.streams.requests, s.streams.errors, us(s.streams.lat.quantile(.5)), us(s.streams.lat.quantile(.99)), us(s.streams.lat.quantile(.999)))
	p("\n| time | VmRSS |\n|---|---|\n")
	step := max(1, len(s.samples)/20)
	for i, x := range s.samples {
		if i%step == 0 || i == len(s.samples)-1 {
			p("| %s | %.1f MB |\n", x.at.Round(time.Second), float64(x.rss)/(1<<20))
		}
	}
}
