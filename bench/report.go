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

	p("\n## Summary\n\n| scenario | via | added p50 | added p99 | throughput via Sluice / direct | Sluice CPU per request |\n|---|---|---|---|---|---|\n")
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

// targets compares the full-config figures with the targets of issue 6.
func (r *report) targets(p func(string, ...any)) {
	p("\n## Targets (issue 6, full config)\n\n| target | measured | |\n|---|---|---|\n")
	const full = "sluice (full)"
	if d, m := r.find("1", full); m != nil && m.all.requests > 0 {
		cpu := m.cpu / time.Duration(m.all.requests)
		p("| CPU per non-streaming request ≤ 60 µs | %s | %s |\n", cpuPerReq(m.cpu, &m.all), verdict(cpu <= 60*time.Microsecond, true))
		ratio := m.all.rps() / max(d.all.rps(), 1e-9)
		p("| throughput at saturation ≥ 40%% of direct | %.0f%% | %s |\n", 100*ratio, verdict(ratio >= 0.4, true))
	}
	if d, m := r.find("2", full); m != nil {
		a50 := m.all.lat.quantile(0.5) - d.all.lat.quantile(0.5)
		a99 := m.all.lat.quantile(0.99) - d.all.lat.quantile(0.99)
		p("| at %g req/s, added p50 ≤ 100 µs | %s | %s |\n", r.opts.rate, signedUs(a50), verdict(a50 <= 100*time.Microsecond, r.opts.rate == 1000))
		p("| at %g req/s, added p99 ≤ 1 ms | %s | %s |\n", r.opts.rate, signedUs(a99), verdict(a99 <= time.Millisecond, r.opts.rate == 1000))
	}
	if d, m := r.find("4", full); m != nil {
		t50 := m.all.lat.quantile(0.5) - d.all.lat.quantile(0.5)
		g99 := m.all.gap.quantile(0.99) - d.all.gap.quantile(0.99)
		p("| streaming: added time to first token p50 ≤ 200 µs | %s | %s |\n", signedUs(t50), verdict(t50 <= 200*time.Microsecond, true))
		p("| streaming: added delay between chunks p99 ≤ 50 µs | %s | %s |\n", signedUs(g99), verdict(g99 <= 50*time.Microsecond, true))
	}
	measured := false
	for _, m := range r.memory {
		if m.streams == 5000 {
			measured = true
			p("| ≤ 64 KB resident per open stream at 5,000 streams | %.1f KB | %s |\n",
				float64(m.perStream())/1024, verdict(m.perStream() <= 64<<10 && m.opened == m.streams, true))
		}
	}
	if !measured {
		p("| ≤ 64 KB resident per open stream at 5,000 streams | - | not measured |\n")
	}
	p("| memory flat over a 10-minute soak | - | not measured (no soak scenario yet) |\n")
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
