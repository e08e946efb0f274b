package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/format"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/examples"
	"github.com/sluice-gateway/sluice/internal/testproc"
)

// runningDemo is a demo started through Main, as a user starts it.
type runningDemo struct {
	stdout, stderr *lockedBuffer
	banner         string
}

// startDemo runs Main with args until the test ends, and returns once the
// banner is printed. The demo must then stop cleanly and remove its
// directory.
func startDemo(t *testing.T, args ...string) *runningDemo {
	t.Helper()
	d := &runningDemo{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Main(ctx, args, d.stdout, d.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("demo %v: %v\nstderr:\n%s", args, err, d.stderr)
			}
		case <-time.After(time.Minute):
			t.Errorf("demo %v did not stop within a minute of its cancel", args)
			return
		}
		if dir := demoDir(d.banner); dir == "" {
			t.Errorf("banner names no directory")
		} else if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after the demo stopped, Stat(%s) = %v; want it removed", dir, err)
		}
	})
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(d.stdout.String(), "Press Ctrl-C to stop.") {
		select {
		case err := <-errc:
			t.Fatalf("demo %v ended before its banner: %v\nstderr:\n%s", args, err, d.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner within a minute; stdout:\n%s", d.stdout)
		}
	}
	out := d.stdout.String()
	d.banner = out[:strings.Index(out, "Press Ctrl-C to stop.")]
	return d
}

// waitFor polls cond every 50 ms until it holds or a minute has passed;
// then it fails, with what the demo d (if any) printed.
func waitFor(t *testing.T, d *runningDemo, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			if d != nil {
				t.Fatalf("not within a minute: %s\nstdout:\n%s\nstderr:\n%s", what, d.stdout, d.stderr)
			}
			t.Fatalf("not within a minute: %s", what)
		}
	}
}

func bannerField(t *testing.T, banner, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("banner lacks %s:\n%s", pattern, banner)
	}
	return m[1]
}

func demoDir(banner string) string {
	m := regexp.MustCompile(`(?m)^(\S+) is removed when the demo stops`).FindStringSubmatch(banner)
	if m == nil {
		return ""
	}
	return m[1]
}

// commandLines returns the lines of text with backslash-newline
// continuations joined, as a shell reads them.
func commandLines(text string) []string {
	return strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n")
}

// shellWords splits a command as a POSIX shell does for the commands the
// demo prints: '...' and "..." quoting, $NAME expanded outside single
// quotes (from the process's environment), and a final & reported.
func shellWords(t *testing.T, line string) (words []string, background bool) {
	t.Helper()
	var w strings.Builder
	inWord := false
	var quote rune
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == '\'' && r == '\'', quote == '"' && r == '"':
			quote = 0
		case quote == '\'':
			w.WriteRune(r)
		case r == '$':
			j := i + 1
			for j < len(rs) && (rs[j] == '_' || rs[j] >= 'A' && rs[j] <= 'Z' || rs[j] >= 'a' && rs[j] <= 'z' || rs[j] >= '0' && rs[j] <= '9') {
				j++
			}
			w.WriteString(os.Getenv(string(rs[i+1 : j])))
			inWord, i = true, j-1
		case quote == '"':
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unclosed quote in %q", line)
	}
	if inWord {
		words = append(words, w.String())
	}
	if n := len(words); n > 0 && words[n-1] == "&" {
		return words[:n-1], true
	}
	return words, false
}

// printedCurls returns every curl command in text, as words.
func printedCurls(t *testing.T, text string) [][]string {
	t.Helper()
	var cmds [][]string
	for _, l := range commandLines(text) {
		if i := strings.Index(l, "curl "); i >= 0 {
			words, _ := shellWords(t, l[i:])
			cmds = append(cmds, words)
		}
	}
	return cmds
}

// runCurl runs a printed curl command, with the curl binary when there is
// one and otherwise as the HTTP request it describes, and returns the
// status and body; an error when there was no answer.
func runCurl(t *testing.T, words []string) (int, string, error) {
	t.Helper()
	if bin, err := exec.LookPath("curl"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append(words[1:], "--write-out", "\n%{http_code}")...).Output()
		if err != nil {
			return 0, "", fmt.Errorf("%v: %w", words, err)
		}
		i := bytes.LastIndexByte(out, '\n')
		var status int
		_, err = fmt.Sscan(string(out[i+1:]), &status)
		return status, string(out[:i]), err
	}
	method, url, body := http.MethodGet, "", ""
	header := http.Header{}
	for i := 1; i < len(words); i++ {
		switch words[i] {
		case "-s", "-sN":
		case "-H":
			i++
			k, v, _ := strings.Cut(words[i], ":")
			header.Add(k, strings.TrimSpace(v))
		case "-d":
			i++
			method, body = http.MethodPost, words[i]
		default:
			if strings.HasPrefix(words[i], "-") {
				t.Fatalf("%v: the test does not know curl's %s", words, words[i])
			}
			url = words[i]
		}
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("%v: %w", words, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), err
}

// selfArgs returns the arguments of a printed sluice command in line, or
// false when it has none.
func selfArgs(t *testing.T, line string) ([]string, bool) {
	t.Helper()
	i := strings.Index(line, selfCommand()+" ")
	if i < 0 {
		return nil, false
	}
	words, _ := shellWords(t, line[i+len(selfCommand()):])
	return words, true
}

// TestDemoSnippetsWorkAsPrinted starts the demo with a raised load and runs
// what it prints: every curl command answers 200, ten rounds and more while
// the load drives team-alpha over its limit, the Go program compiles and
// answers, and the usage report runs.
func TestDemoSnippetsWorkAsPrinted(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	d := startDemo(t, "demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--latency=false", "--load", "10")
	userKey := bannerField(t, d.banner, `Your key: (\S+)`)
	if strings.Contains(d.banner, "sk-alpha-") {
		t.Errorf("the banner shows team-alpha's key, which the demo's load drives over its limit:\n%s", d.banner)
	}
	curls := printedCurls(t, d.banner)
	chats := 0
	for _, c := range curls {
		if strings.Contains(strings.Join(c, " "), "/chat/completions") {
			chats++
			if !strings.Contains(strings.Join(c, " "), userKey) {
				t.Errorf("%v does not use the user's key %s", c, userKey)
			}
		}
	}
	if len(curls) < 5 || chats != 2 {
		t.Fatalf("printed curl commands = %d, chat ones %d; want 2 chat, usage, backends and metrics:\n%s", len(curls), chats, d.banner)
	}

	t.Run("curl", func(t *testing.T) {
		// Ten rounds at least, and three more once team-alpha has been
		// refused: the user's key is not refused while the load's is.
		rounds, after := 0, 0
		for rounds < 10 || after < 3 {
			for _, c := range curls {
				status, body, err := runCurl(t, c)
				if err != nil {
					t.Fatalf("round %d: %v", rounds, err)
				}
				if status != http.StatusOK {
					t.Fatalf("round %d: %v: status %d; want 200\n%s", rounds, c, status, body)
				}
				if strings.Contains(strings.Join(c, " "), "/chat/completions") && !strings.Contains(body, `"choices"`) {
					t.Fatalf("round %d: %v: body without choices:\n%s", rounds, c, body)
				}
			}
			rounds++
			if strings.Contains(d.stdout.String(), "team-alpha reached its limit") {
				after++
			}
			if rounds > 300 {
				t.Fatalf("team-alpha was not refused in %d rounds; stdout:\n%s", rounds, d.stdout)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("story", func(t *testing.T) {
		waitFor(t, d, "the demo says that the PTU spilled over", func() bool {
			return strings.Contains(d.stdout.String(), "spillover: the PTU is full, so pay-as-you-go serves team-alpha")
		})
		if got := d.stderr.String(); strings.Contains(got, "msg=request") {
			t.Errorf("the terminal shows the access log; want it in the file:\n%s", got)
		}
		log := bannerField(t, d.banner, `Access log\s+(\S+)`)
		waitFor(t, d, "the access log file has the user's requests", func() bool {
			data, _ := os.ReadFile(log)
			return bytes.Contains(data, []byte("msg=request")) && bytes.Contains(data, []byte("subscription=team-beta"))
		})
	})

	t.Run("go", func(t *testing.T) {
		progs := goPrograms(d.banner)
		if len(progs) == 0 {
			t.Fatalf("no Go program in the banner:\n%s", d.banner)
		}
		for _, prog := range progs {
			if formatted, err := format.Source([]byte(prog)); err != nil || string(formatted) != prog {
				t.Errorf("the Go program is not gofmt-formatted (err %v):\n%s", err, prog)
			}
			bin := buildGo(t, prog)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			out, err := exec.CommandContext(ctx, bin).CombinedOutput()
			cancel()
			if err != nil || len(bytes.TrimSpace(out)) == 0 {
				t.Errorf("the Go program: %v; want a reply, got:\n%s", err, out)
			}
		}
	})

	t.Run("usage report", func(t *testing.T) {
		found := false
		for _, l := range commandLines(d.banner) {
			args, ok := selfArgs(t, l)
			if !ok || args[0] != "usage" {
				continue
			}
			found = true
			var out, errb bytes.Buffer
			if err := Main(context.Background(), args, &out, &errb); err != nil {
				t.Errorf("%v: %v\n%s", args, err, errb.String())
			}
		}
		if !found {
			t.Errorf("no usage command in the banner:\n%s", d.banner)
		}
	})
}

// goPrograms returns every Go program in text: from a line "package main"
// to the line "}" at its indentation, with that indentation removed.
func goPrograms(text string) []string {
	var progs []string
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		ind, ok := strings.CutSuffix(l, "package main")
		if !ok || strings.TrimSpace(ind) != "" {
			continue
		}
		var b strings.Builder
		for _, p := range lines[i:] {
			b.WriteString(strings.TrimPrefix(p, ind) + "\n")
			if p == ind+"}" {
				break
			}
		}
		progs = append(progs, b.String())
	}
	return progs
}

// buildGo compiles a Go program with this module's go.mod, so that it gets
// the SDK version the project pins, and returns the binary. The source sits
// in a directory under the package, which go's ./... patterns skip for its
// leading underscore.
func buildGo(t *testing.T, prog string) string {
	t.Helper()
	dir, err := os.MkdirTemp(".", "_snippet")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(prog), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "snippet")
	args := []string{"build", "-o", bin}
	// With the test's own -race the SDK's compiled packages come from the
	// build cache.
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append(args, "./"+filepath.Join(dir, "main.go"))...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the printed program: %v\n%s\n%s", err, out, prog)
	}
	return bin
}

// TestDemoWithoutLoadOrWord starts the demo by its flags alone, with no
// load and the access log on the terminal; then again, to see that the
// second run's ledger is empty.
func TestDemoWithoutLoadOrWord(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	args := []string{"--load", "0", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--latency=false", "--log-requests"}
	d := startDemo(t, args...)
	if !strings.Contains(d.banner, "The demo sends itself no traffic (--load 0)") || strings.Contains(d.banner, "The story") {
		t.Errorf("with --load 0 the banner does not say that it sends nothing:\n%s", d.banner)
	}
	if !strings.Contains(d.banner, "Access log     printed here") {
		t.Errorf("with --log-requests the banner does not say where the access log goes:\n%s", d.banner)
	}
	curl := printedCurls(t, d.banner)[0]
	if status, body, err := runCurl(t, curl); err != nil || status != http.StatusOK {
		t.Fatalf("%v: status %d, error %v; want 200\n%s", curl, status, err, body)
	}
	waitFor(t, d, "the access log on the terminal", func() bool {
		return strings.Contains(d.stderr.String(), "msg=request") && strings.Contains(d.stderr.String(), "subscription=team-beta")
	})
	report := func(d *runningDemo) string {
		for _, l := range commandLines(d.banner) {
			if args, ok := selfArgs(t, l); ok && args[0] == "usage" {
				var out, errb bytes.Buffer
				if err := Main(context.Background(), args, &out, &errb); err != nil {
					t.Fatalf("%v: %v\n%s", args, err, errb.String())
				}
				return out.String()
			}
		}
		t.Fatalf("no usage command in the banner:\n%s", d.banner)
		return ""
	}
	waitFor(t, d, "the first run's ledger has the request", func() bool { return strings.Contains(report(d), "team-beta") })

	second := startDemo(t, args...)
	if got := report(second); strings.Contains(got, "team-beta") {
		t.Errorf("the second run's ledger starts with the first run's records:\n%s", got)
	}
	if !strings.Contains(second.banner, ", new for this run") {
		t.Errorf("the banner does not say that the ledger is new:\n%s", second.banner)
	}
}

// TestDemoPrintConfig runs what "sluice demo --print-config" prints, as a
// new user would paste it: the exports, four simulators (claude's too) and the gateway on
// the saved config, then the curl command.
func TestDemoPrintConfig(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	var config, commands bytes.Buffer
	if err := Main(context.Background(), []string{"demo", "--print-config"}, &config, &commands); err != nil {
		t.Fatalf("demo --print-config: %v\n%s", err, commands.String())
	}
	if !bytes.Equal(config.Bytes(), examples.Reference) {
		t.Errorf("the printed config is not examples/sluice.yaml:\n%s", config.String())
	}
	// The printed addresses are the reference's; here they move to free
	// ports, in the config and the commands alike.
	replacer := func() *strings.Replacer {
		var pairs []string
		for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:9101", "127.0.0.1:9102", "127.0.0.1:9103", "127.0.0.1:9106"} {
			pairs = append(pairs, addr, "127.0.0.1:"+strconv.Itoa(testproc.FreePort(t)))
		}
		return strings.NewReplacer(pairs...)
	}()
	if err := os.WriteFile(filepath.Join(dir, "sluice.yaml"), []byte(replacer.Replace(config.String())), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type ended struct {
		args []string
		err  error
	}
	var started []chan ended
	t.Cleanup(func() {
		cancel()
		for _, c := range started {
			select {
			case e := <-c:
				if e.err != nil {
					t.Errorf("%v: %v", e.args, e.err)
				}
			case <-time.After(time.Minute):
				t.Errorf("a printed command did not stop within a minute")
			}
		}
	})
	logs := &lockedBuffer{}
	var curls [][]string
	var serving, simulators int
	for _, l := range commandLines(replacer.Replace(commands.String())) {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "export "):
			name, value, _ := strings.Cut(strings.TrimPrefix(l, "export "), "=")
			words, _ := shellWords(t, value)
			t.Setenv(name, words[0])
		case strings.HasPrefix(l, "curl "):
			words, _ := shellWords(t, l)
			curls = append(curls, words)
		case strings.HasPrefix(l, selfCommand()+" "):
			args, background := selfArgs(t, l)
			switch args[0] {
			case "demo":
				continue // the line that saved the config
			case "simulate":
				simulators++
				if !background {
					t.Errorf("%s: a simulator in the foreground", l)
				}
			case "serve":
				serving++
			}
			c := make(chan ended, 1)
			started = append(started, c)
			go func() { c <- ended{args, Main(ctx, args, io.Discard, logs)} }()
		}
	}
	if simulators != len(demoSimulators()) || simulators != 4 || serving != 1 || len(curls) != 1 {
		t.Fatalf("printed: %d simulators, %d gateways, %d curl commands; want 4 (claude's too), 1, 1:\n%s", simulators, serving, len(curls), commands.String())
	}
	waitFor(t, nil, "the printed curl command answers 200", func() bool {
		status, body, err := runCurl(t, curls[0])
		if err != nil {
			return false // the gateway is not listening yet
		}
		if status == http.StatusOK && !strings.Contains(body, `"choices"`) {
			t.Fatalf("%v: body without choices:\n%s", curls[0], body)
		}
		return status == http.StatusOK
	})
	var out, errb bytes.Buffer
	if err := Main(context.Background(), []string{"check", "--config", "sluice.yaml"}, &out, &errb); err != nil {
		t.Errorf("check --config sluice.yaml: %v\n%s", err, errb.String())
	}
}

// TestMainDemoFlags covers the command line around the demo: its flags
// without the word demo, help, and serve without a config.
func TestMainDemoFlags(t *testing.T) {
	t.Chdir(t.TempDir())
	tests := []struct {
		name                     string
		args                     []string
		code                     int
		stdout, stderr, noStderr []string
	}{
		{name: "-h is the usage", args: []string{"-h"}, stdout: []string{"sluice serve --config FILE", "sluice demo"}},
		{name: "--help is the usage", args: []string{"--help"}, stdout: []string{"sluice serve --config FILE"}},
		{name: "demo -h", args: []string{"demo", "-h"},
			stderr:   []string{"-load", "-log-requests", "-print-config", `log format: text or json (default "text")`},
			noStderr: []string{`(default "json")`}},
		{name: "a demo flag without demo", args: []string{"--load", "-1"}, code: 2, stderr: []string{"sluice demo: --load"}},
		{name: "an unknown flag goes to the demo", args: []string{"--nope"}, code: 2, stderr: []string{"sluice demo", "-nope"}},
		{name: "serve without a config", args: []string{"serve"}, code: 1,
			stderr: []string{"sluice.yaml: no such file", "demo --print-config > sluice.yaml", "examples/sluice.yaml",
				"docs/configuration.md", selfCommand() + " demo\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := run(t, tt.args...)
			if got := exitCode(err); got != tt.code {
				t.Fatalf("exit code = %d (err %v); want %d\nstdout: %s\nstderr: %s", got, err, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			for _, s := range tt.noStderr {
				if strings.Contains(stderr, s) {
					t.Errorf("stderr has %q:\n%s", s, stderr)
				}
			}
		})
	}
}

// TestDemoLoadStory tells the load's turns in the order its requests were
// sent, whatever the order their answers arrive in.
func TestDemoLoadStory(t *testing.T) {
	type answer struct {
		seq             uint64
		served, refusal string
	}
	tests := []struct {
		name    string
		answers []answer
		want    []string
	}{
		{name: "ptu, spillover, limit, minute turns on the ptu",
			answers: []answer{{1, "ptu", ""}, {2, "payg", ""}, {3, "", "full"}, {4, "", "full"}, {5, "ptu", ""}},
			want: []string{"spillover: the PTU is full, so pay-as-you-go serves team-alpha: payg",
				"team-alpha reached its limit and is refused with 429: full",
				"the minute turned: team-alpha is served again", "the PTU serves team-alpha again: ptu"}},
		{name: "a refusal answered before an older spillover",
			answers: []answer{{1, "ptu", ""}, {3, "", "full"}, {2, "payg", ""}},
			want: []string{"team-alpha reached its limit and is refused with 429: full",
				"spillover: the PTU is full, so pay-as-you-go serves team-alpha: payg"}},
		{name: "a slow ptu answer does not undo the spillover",
			answers: []answer{{2, "payg", ""}, {1, "ptu", ""}, {3, "payg", ""}},
			want:    []string{"spillover: the PTU is full, so pay-as-you-go serves team-alpha: payg"}},
		{name: "failover to another provider, then pay-as-you-go and the ptu",
			answers: []answer{{1, "ptu", ""}, {2, "claude", ""}, {3, "claude", ""}, {4, "payg", ""}, {5, "ptu", ""}},
			want: []string{"failover: the Azure OpenAI members are out, so another provider serves team-alpha: claude",
				"spillover: the PTU is full, so pay-as-you-go serves team-alpha: payg", "the PTU serves team-alpha again: ptu"}},
		{name: "a slow success does not end the refusals",
			answers: []answer{{2, "", "full"}, {1, "payg", ""}, {3, "", "full"}},
			want: []string{"team-alpha reached its limit and is refused with 429: full",
				"spillover: the PTU is full, so pay-as-you-go serves team-alpha: payg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			l := &demoLoad{name: "team-alpha", ptu: map[string]bool{"ptu": true}, providers: map[string]bool{"claude": true}, out: &out,
				now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }, counts: map[string]int{}}
			for _, a := range tt.answers {
				l.record(a.seq, "x", a.served, a.refusal)
			}
			var want string
			for _, w := range tt.want {
				want += "03:04:05  " + w + "\n"
			}
			if got := out.String(); got != want {
				t.Errorf("story:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
