// Command bench measures what the Sluice gateway costs: it sends the same
// load straight to a simulator and through a gateway in front of it, in
// alternating rounds of one run, and writes a Markdown report of both sides
// and their ratios under bench/results/.
//
// The simulator and the gateway are the real sluice binary, built fresh and
// run as separate processes on 127.0.0.1, so that their CPU time and memory
// can be read from /proc. The load generator is this process. Nothing here is
// imported by the gateway.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// options are the command-line flags.
type options struct {
	duration    time.Duration // of each measured round of each target
	rounds      int
	concurrency int             // closed loop
	rate        float64         // open loop, requests per second
	streamRate  float64         // scenario 4, streams per second
	streams     []int           // scenario 5, open streams
	out         string          // directory of the report; empty: none written
	profile     string          // directory of gateway profiles; empty: none taken
	soak        time.Duration   // scenario 8; zero: skipped
	only        map[string]bool // scenario ids to run; empty: all
	smoke       bool
	baseline    string // a git revision whose full-config gateway runs beside this one's; empty: none
	// Not flags: the smoke run shortens them.
	chunks int           // completion tokens of each stream in scenarios 4, 7 and 8
	settle time.Duration // scenario 5's waits for memory to settle and first tokens to flow
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{chunks: 100, settle: time.Second}
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured round of each target")
	fs.IntVar(&o.rounds, "rounds", 2, "rounds per target; targets alternate within a scenario")
	fs.IntVar(&o.concurrency, "concurrency", 32, "requests in flight in the closed-loop scenarios")
	fs.Float64Var(&o.rate, "rate", 1000, "requests per second in the open-loop scenario")
	fs.Float64Var(&o.streamRate, "stream-rate", 100, "streams started per second in the streaming scenario")
	only := fs.String("only", "", "comma-separated scenario ids to run (empty: all)")
	streams := fs.String("streams", "1000,5000", "open streams held at once in the memory scenario, comma-separated")
	fs.StringVar(&o.out, "out", "bench/results", "directory of the Markdown report (empty: print only)")
	fs.StringVar(&o.profile, "profile", "", "directory to write profiles of the full-config gateway: CPU and allocations in scenarios 1 and 4, heap and goroutines with the streams of scenario 5 open (empty: none)")
	fs.DurationVar(&o.soak, "soak", 0, "length of the soak (scenario 8: chat at -rate and streams at -stream-rate, memory sampled); 0 skips it")
	fs.StringVar(&o.baseline, "baseline", "", "a git revision (commit, tag, branch) built and run as a second full-config gateway in the same rounds as this tree's, in scenarios 1, 2 and 4: a change's before and after in one run")
	fs.BoolVar(&o.smoke, "smoke", false, "run every scenario for a fraction of a second with tiny counts, a few seconds in all: proves the harness works, measures nothing (for CI)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for s := range strings.SplitSeq(*streams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-streams: %q is not a positive number", s)
		}
		o.streams = append(o.streams, n)
	}
	for s := range strings.SplitSeq(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if o.only == nil {
				o.only = map[string]bool{}
			}
			o.only[s] = true
		}
	}
	if o.smoke {
		// Every scenario, process and code path of a long run, each for a
		// moment: enough to prove the harness works end to end, nothing to
		// measure with. The paced streams of scenario 7 take 10 ms a chunk.
		o.duration, o.rounds, o.rate, o.streamRate, o.streams = 50*time.Millisecond, 2, 200, 50, []int{20}
		o.concurrency = min(o.concurrency, 4)
		o.soak, o.chunks, o.settle = 500*time.Millisecond, 5, 100*time.Millisecond
	}
	if o.duration <= 0 || o.rounds < 1 || o.concurrency < 1 || o.rate <= 0 || o.streamRate <= 0 || o.soak < 0 {
		return o, fmt.Errorf("-duration, -rounds, -concurrency, -rate and -stream-rate must be positive, -soak not negative")
	}
	return o, nil
}

// wants reports whether scenario id is to run: a part such as 10a runs
// with its scenario, 10.
func (o options) wants(id string) bool {
	return len(o.only) == 0 || o.only[id] || o.only[strings.TrimRight(id, "ab")]
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	rep, err := run(ctx, o, os.Stderr)
	if rep != nil {
		fmt.Print(rep.markdown())
		if o.out != "" {
			path, werr := rep.write(o.out)
			if werr != nil {
				fmt.Fprintln(os.Stderr, "bench:", werr)
				os.Exit(1)
			}
			fmt.Fprintln(os.Stderr, "report written to", path)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if rep.errors() > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d requests failed\n", rep.errors())
		os.Exit(1)
	}
}

// run starts the processes, runs every scenario and returns the report.
func run(ctx context.Context, o options, progress io.Writer) (*report, error) {
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	logf := func(format string, a ...any) { fmt.Fprintf(progress, format+"\n", a...) }
	logf("building sluice and bareproxy in %s", dir)
	bins, err := build(ctx, dir, o.smoke, "./cmd/sluice", "./bench/bareproxy")
	if err != nil {
		return nil, err
	}
	bin, bareBin := bins[0], bins[1]
	logf("starting the simulators, gateways and bare proxies")
	sim, simURL, err := startSim(ctx, bin, dir, "simulator")
	if err != nil {
		return nil, err
	}
	defer sim.stop()
	full, fullURL, fullAdmin, err := startGateway(ctx, bin, dir, "gateway-full", simURL, true)
	if err != nil {
		return nil, err
	}
	defer full.stop()
	minimal, minURL, _, err := startGateway(ctx, bin, dir, "gateway-minimal", simURL, false)
	if err != nil {
		return nil, err
	}
	defer minimal.stop()
	bare, bareURL, err := startBare(bareBin, dir, simURL)
	if err != nil {
		return nil, err
	}
	defer bare.stop()
	// Scenario 7's simulator sends a token every 10 ms, as a model does, so
	// that the time between chunks is the model's and not a TCP batch.
	paced, pacedURL, err := startSim(ctx, bin, dir, "simulator-paced", "--latency-per-token", "10ms")
	if err != nil {
		return nil, err
	}
	defer paced.stop()
	pacedGW, pacedGWURL, _, err := startGateway(ctx, bin, dir, "gateway-full-paced", pacedURL, true)
	if err != nil {
		return nil, err
	}
	defer pacedGW.stop()
	pacedBare, pacedBareURL, err := startBare(bareBin, dir, pacedURL)
	if err != nil {
		return nil, err
	}
	defer pacedBare.stop()

	var baseBin string
	if o.baseline != "" {
		logf("building sluice at %s (the baseline)", o.baseline)
		if baseBin, err = buildAt(ctx, dir, o.baseline); err != nil {
			return nil, err
		}
	}
	const path = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
	direct := target{name: "direct", url: simURL + path, key: simKey, pid: sim.pid()}
	viaFull := target{name: fullName, url: fullURL + path, key: subKey, pid: full.pid(), admin: fullAdmin}
	viaMin := target{name: "sluice (minimal)", url: minURL + path, key: subKey, pid: minimal.pid()}
	viaBare := target{name: bareName, url: bareURL + path, key: simKey, pid: bare.pid()}
	pacedDirect := target{name: "direct", url: pacedURL + path, key: simKey, pid: paced.pid()}
	pacedFull := target{name: fullName, url: pacedGWURL + path, key: subKey, pid: pacedGW.pid()}
	pacedViaBare := target{name: bareName, url: pacedBareURL + path, key: simKey, pid: pacedBare.pid()}

	var withBase []target // the baseline's gateway, where one was asked for
	if baseBin != "" {
		base, baseURL, _, err := startGateway(ctx, baseBin, dir, "gateway-full-baseline", simURL, true)
		if err != nil {
			return nil, fmt.Errorf("the baseline's gateway: %w", err)
		}
		defer base.stop()
		withBase = []target{{name: "sluice (full) at " + o.baseline, url: baseURL + path, key: subKey, pid: base.pid()}}
	}
	rep := newReport(o)
	c := newClient()
	// Connections dialled but never used (the transport dials more than it
	// needs under load) keep a gateway's graceful shutdown waiting for its
	// whole grace: close them before the processes stop.
	defer c.CloseIdleConnections()
	small := chatBody("Say hello to the benchmark.", 16, false)
	story := chatBody("Tell a story.", o.chunks, true)
	closed := func(body []byte, stream bool) loadFunc {
		return func(ctx context.Context, t target, d time.Duration) *result {
			return closedLoop(ctx, c, t, body, stream, o.concurrency, d)
		}
	}
	open := func(body []byte, stream bool, rate float64) loadFunc {
		return func(ctx context.Context, t target, d time.Duration) *result {
			return openLoop(ctx, c, t, body, stream, rate, d)
		}
	}
	scenarios := []scenario{
		{id: "1", title: fmt.Sprintf("Small chat, closed loop at %d concurrent", o.concurrency),
			targets: append([]target{direct, viaFull, viaBare}, withBase...), load: closed(small, false), profile: true},
		{id: "2", title: fmt.Sprintf("Small chat, open loop at %g req/s", o.rate),
			targets: append([]target{direct, viaFull, viaBare}, withBase...), load: open(small, false, o.rate)},
		{id: "3", title: fmt.Sprintf("32 KB prompt, closed loop at %d concurrent", o.concurrency),
			targets: []target{direct, viaFull}, load: closed(chatBody(prompt32K(), 16, false), false)},
		{id: "4", title: fmt.Sprintf("Streaming, %d chunks, open loop at %g streams/s", o.chunks, o.streamRate),
			targets: append([]target{direct, viaFull, viaBare}, withBase...), load: open(story, true, o.streamRate), stream: true, profile: true},
		{id: "6", title: fmt.Sprintf("Minimal against full config: small chat, closed loop at %d concurrent", o.concurrency),
			targets: []target{direct, viaMin, viaFull}, load: closed(small, false)},
		{id: "7", title: fmt.Sprintf("Streaming at a model's pace (a token every 10 ms), %d chunks, open loop at %g streams/s", o.chunks, o.streamRate),
			targets: []target{pacedDirect, pacedFull, pacedViaBare}, load: open(story, true, o.streamRate), stream: true, simPID: paced.pid()},
	}
	if o.wants("9") {
		// Scenario 9: every request after the first is an exact cache hit,
		// so the gateway's cost of a hit shows against a plain request.
		cached, cachedURL, _, err := startGateway(ctx, bin, dir, "gateway-full-cached", simURL, true, withExactCache)
		if err != nil {
			return nil, err
		}
		defer cached.stop()
		viaCache := target{name: "sluice (full, exact cache hits)", url: cachedURL + path, key: subKey, pid: cached.pid()}
		scenarios = append(scenarios, scenario{id: "9",
			title:   fmt.Sprintf("Exact cache hits against plain requests: small chat, closed loop at %d concurrent", o.concurrency),
			targets: []target{direct, viaFull, viaCache}, load: closed(small, false)})
	}
	var guarded []guardGateway // scenario 10's, whose check times are read at the end
	if o.wants("10a") || o.wants("10b") {
		// Scenario 10: the guardrails of issue 16 against the same full
		// config without them, each gateway's simulator also answering its
		// Content Safety calls at zero latency. 10a: prompt checks alone,
		// then with the check of the non-streaming answer, at a fixed rate;
		// 10b: answers checked in windows as they stream at a model's pace.
		promptOnly, promptOnlyURL, promptOnlyAdmin, err := startGateway(ctx, bin, dir, "gateway-full-prompt-checks", simURL, true, withGuardrails(simURL, false))
		if err != nil {
			return nil, err
		}
		defer promptOnly.stop()
		full10, full10URL, full10Admin, err := startGateway(ctx, bin, dir, "gateway-full-guarded", simURL, true, withGuardrails(simURL, true))
		if err != nil {
			return nil, err
		}
		defer full10.stop()
		// A paced simulator of its own, whose mean reply is twice the
		// limit: every answer is exactly guardChunks tokens (about 6.5
		// characters each), filling a window of 1,000 characters and most
		// of the next, and streams compare chunk for chunk.
		n := guardChunks(o)
		sim10, sim10URL, err := startSim(ctx, bin, dir, "simulator-paced-guard", "--latency-per-token", "10ms",
			"--completion-tokens", strconv.Itoa(2*n))
		if err != nil {
			return nil, err
		}
		defer sim10.stop()
		plain10, plain10URL, _, err := startGateway(ctx, bin, dir, "gateway-full-paced-guard", sim10URL, true)
		if err != nil {
			return nil, err
		}
		defer plain10.stop()
		guarded10, guarded10URL, guarded10Admin, err := startGateway(ctx, bin, dir, "gateway-full-guarded-paced", sim10URL, true, withGuardrails(sim10URL, true))
		if err != nil {
			return nil, err
		}
		defer guarded10.stop()
		viaPrompt := target{name: promptChecksName, url: promptOnlyURL + path, key: subKey, pid: promptOnly.pid()}
		viaGuarded := target{name: guardedName, url: full10URL + path, key: subKey, pid: full10.pid()}
		plainPaced := target{name: fullName, url: plain10URL + path, key: subKey, pid: plain10.pid()}
		guardedPaced := target{name: guardedName, url: guarded10URL + path, key: subKey, pid: guarded10.pid()}
		scenarios = append(scenarios,
			scenario{id: "10a", title: fmt.Sprintf("Guardrails: small chat, open loop at %g req/s, without content safety, with prompt checks, with prompt and answer checks", guardRate),
				targets: []target{viaFull, viaPrompt, viaGuarded}, load: open(small, false, guardRate)},
			scenario{id: "10b", title: fmt.Sprintf("Guardrails: streaming at a model's pace (a token every 10 ms), %d chunks, open loop at %g streams/s, without and with window checks",
				n, guardStreamRate), targets: []target{plainPaced, guardedPaced}, load: open(chatBody("Tell a long story.", n, true), true, guardStreamRate),
				stream: true, simPID: sim10.pid()})
		guarded = []guardGateway{{scenario: "10a", name: promptChecksName, admin: promptOnlyAdmin},
			{scenario: "10a", name: guardedName, admin: full10Admin}, {scenario: "10b", name: guardedName, admin: guarded10Admin}}
	}
	for _, sc := range scenarios {
		if !o.wants(sc.id) {
			continue
		}
		logf("scenario %s: %s", sc.id, sc.title)
		if sc.simPID == 0 {
			sc.simPID = sim.pid()
		}
		res, err := runScenario(ctx, o, sc)
		if err != nil {
			return rep, err
		}
		rep.scenarios = append(rep.scenarios, res)
	}
	for _, g := range guarded {
		if !o.wants(g.scenario) {
			continue
		}
		if err := g.readChecks(ctx); err != nil {
			return rep, err
		}
		rep.guardChecks = append(rep.guardChecks, g)
	}
	if o.soak > 0 && o.wants("8") {
		logf("scenario 8: soak of %s", o.soak)
		s, err := soak(ctx, viaFull, open(small, false, o.rate), open(story, true, o.streamRate), o.soak)
		rep.soak = s
		if err != nil {
			return rep, err
		}
	}
	// Scenario 5 needs backends that hold streams open, so it has its own
	// processes; it runs last and its figures go to their own section.
	for _, n := range o.streams {
		if !o.wants("5") {
			break
		}
		logf("scenario 5: %d open streams", n)
		m, err := openStreams(ctx, bin, dir, o.profile, n, o.settle)
		if err != nil {
			return rep, err
		}
		rep.memory = append(rep.memory, m)
	}
	return rep, ctx.Err()
}

// Scenario 10's loads: the rates of issue 16's overhead measure, and
// streams three times as long as scenario 7's at most.
const (
	guardRate       = 200.0
	guardStreamRate = 20.0
)

func guardChunks(o options) int { return 3 * o.chunks }

// chatBody is an Azure OpenAI chat request.
func chatBody(content string, maxTokens int, stream bool) []byte {
	s := fmt.Sprintf(`{"messages":[{"role":"user","content":%q}],"max_tokens":%d`, content, maxTokens)
	if stream {
		s += `,"stream":true`
	}
	return []byte(s + "}")
}

// prompt32K is 32 KB of prose-like text.
func prompt32K() string {
	words := []string{"the", "gateway", "measures", "latency", "of", "every", "request", "through", "pools", "and", "backends", "quickly"}
	var b strings.Builder
	for i := 0; b.Len() < 32<<10; i++ {
		b.WriteString(words[(i*7)%len(words)])
		b.WriteByte(' ')
	}
	return b.String()[:32<<10]
}

type loadFunc func(ctx context.Context, t target, d time.Duration) *result

// scenario is one kind of load sent to each of its targets in turn.
type scenario struct {
	id, title string
	targets   []target // the first is the direct one, the baseline
	load      loadFunc
	stream    bool
	profile   bool // with -profile, the gateway is profiled in its first round
	simPID    int  // the simulator behind every target
}

// The names of the targets the report compares.
const (
	fullName = "sluice (full)"
	bareName = "bare net/http proxy (floor)"
	// Scenario 10 compares them with fullName.
	promptChecksName = "sluice (full, prompt checks)"
	guardedName      = "sluice (full, guardrails)"
)

// measured is one target's rounds of a scenario.
type measured struct {
	target  target
	rounds  []*result
	all     result
	cpu     time.Duration // of the target's process over all rounds
	simCPU  time.Duration // of the simulator over all rounds
	sidecar bool          // cpu is the simulator's own (direct target)
}

type scenarioResult struct {
	scenario
	byTarget []*measured
}

// runScenario warms every target up, then runs rounds in which the targets
// take turns, so that drift of the machine hits them alike.
func runScenario(ctx context.Context, o options, sc scenario) (*scenarioResult, error) {
	simPID := sc.simPID
	warm := min(o.duration/2, time.Second)
	for _, t := range sc.targets {
		sc.load(ctx, t, warm)
	}
	out := &scenarioResult{scenario: sc}
	for _, t := range sc.targets {
		out.byTarget = append(out.byTarget, &measured{target: t, sidecar: t.pid == simPID})
	}
	for round := range o.rounds {
		for _, m := range out.byTarget {
			cpu0, err := cpuTime(m.target.pid)
			if err != nil {
				return nil, err
			}
			sim0, _ := cpuTime(simPID)
			var prof chan error
			if o.profile != "" && sc.profile && round == 0 && m.target.admin != "" {
				prof = profileRound(ctx, o, sc.id, m.target.admin)
			}
			r := sc.load(ctx, m.target, o.duration)
			if prof != nil {
				if err := <-prof; err != nil {
					return nil, err
				}
			}
			cpu1, err := cpuTime(m.target.pid)
			if err != nil {
				return nil, err
			}
			sim1, _ := cpuTime(simPID)
			m.rounds = append(m.rounds, r)
			m.all.merge(r)
			m.cpu += cpu1 - cpu0
			m.simCPU += sim1 - sim0
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// profileRound takes a CPU profile of the gateway at admin over most of a
// round, then its allocation profile, into o.profile as scenarioID-cpu.pprof
// and scenarioID-allocs.pprof.
func profileRound(ctx context.Context, o options, scenarioID, admin string) chan error {
	done := make(chan error, 1)
	go func() {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			done <- err
			return
		}
		secs := max(1, int(o.duration/time.Second)-1)
		base := filepath.Join(o.profile, "scenario"+scenarioID)
		if err := fetchProfile(ctx, admin, fmt.Sprintf("profile?seconds=%d", secs), base+"-cpu.pprof"); err != nil {
			done <- err
			return
		}
		done <- fetchProfile(ctx, admin, "allocs", base+"-allocs.pprof")
	}()
	return done
}
