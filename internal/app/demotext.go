package app

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/sluice-gateway/sluice/examples"
	"github.com/sluice-gateway/sluice/internal/config"
)

// bannerData is what the demo's banner says.
type bannerData struct {
	Self                          string // how to run this sluice again: sluice, a path, or go run ./cmd/sluice
	Gateway, Admin, AdminKey      string
	Backends                      []bannerBackend
	User, UserProduct, UserTPM    string
	UserKey                       string
	GoProgram                     string // the Go snippet, indented
	Load                          string // "N requests" (per second), "" for none
	LoadSub, LoadProduct, LoadTPM string
	LoadMaxTokens                 int
	PTU, PTUTPM                   string
	Provider                      bool   // a simulated backend of another provider (kind anthropic) is in the pools
	AccessLog                     string // "" when it is printed on the terminal
	Dir, Ledger                   string
}

type bannerBackend struct{ Name, URL, What string }

func bannerFor(cfg *config.Config, env demoEnv, backendURL map[string]string, gw, adm string, load float64, accessLog, dir string) bannerData {
	d := bannerData{
		Self: selfCommand(), Gateway: gw, Admin: adm, AdminKey: env["SLUICE_ADMIN_KEY"],
		User: demoUserSubscription, UserKey: env[demoUserKeyVar],
		LoadSub: demoLoadSubscription, LoadMaxTokens: demoLoadMaxTokens,
		AccessLog: accessLog, Dir: dir, Ledger: strings.TrimPrefix(cfg.Usage.Store, "sqlite:"),
	}
	d.UserProduct, d.UserTPM = subscriptionTPM(cfg, demoUserSubscription)
	d.LoadProduct, d.LoadTPM = subscriptionTPM(cfg, demoLoadSubscription)
	if load > 0 {
		d.Load = strconv.FormatFloat(load, 'g', -1, 64) + " requests"
		if load == 1 {
			d.Load = "1 request"
		}
	}
	for _, db := range demoSimulators() {
		what := "pay-as-you-go"
		for _, b := range cfg.Backends {
			if b.Name == db.name && isProviderKind(b.Kind) {
				what = providerAPI[b.Kind] + ", translated (kind " + b.Kind + "): takes over when the Azure OpenAI members are out"
			}
		}
		if db.ptu {
			what = "PTU"
			for name, dep := range db.deployments {
				what += fmt.Sprintf(", %s: %s tokens per minute", name, thousands(int64(dep.TokensPerMinute)))
				d.PTU, d.PTUTPM = db.name, thousands(int64(dep.TokensPerMinute))
			}
		}
		for _, b := range cfg.Backends {
			if b.Name == db.name && b.Kind == "openai" {
				what += ", OpenAI-compatible (kind openai)"
			}
			if b.Name == db.name && b.Auth.ManagedIdentity != nil {
				what += ", managed identity: tokens from " + env["IDENTITY_ENDPOINT"] +
					" (simulated App Service), keys refused"
			}
		}
		d.Provider = d.Provider || strings.Contains(what, "(kind anthropic)")
		d.Backends = append(d.Backends, bannerBackend{Name: db.name, URL: backendURL[db.name], What: what})
	}
	var prog bytes.Buffer
	if err := goSnippet.Execute(&prog, d); err == nil {
		d.GoProgram = indent(prog.String(), "  ")
	}
	return d
}

// providerAPI names the API of each provider kind, for the banner.
var providerAPI = map[string]string{"anthropic": "Anthropic Messages API", "gemini": "Gemini API"}

// subscriptionTPM returns the product of subscription sub and its
// tokens-per-minute limit per subscription, written out for people.
func subscriptionTPM(cfg *config.Config, sub string) (product, tpm string) {
	for _, s := range cfg.Subscriptions {
		if s.Name == sub {
			product = s.Product
		}
	}
	for _, p := range cfg.Products {
		if p.Name != product {
			continue
		}
		for _, l := range p.Limits {
			if (l.Key == "" || l.Key == "subscription") && l.TokensPerMinute > 0 {
				return product, thousands(l.TokensPerMinute) + " tokens per minute"
			}
		}
	}
	return product, "no tokens-per-minute limit"
}

// thousands writes n with commas between thousands: 50,000.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// indent puts prefix before every line of s that is not empty.
func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if safeWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var safeWord = regexp.MustCompile(`^[A-Za-z0-9_./:=,@%+-]+$`)

// selfCommand is how the user runs this sluice again, for the commands the
// demo prints: "go run ./cmd/sluice" under go run (the binary is in the go
// command's temporary directory), "sluice" when that is this binary on the
// PATH, and otherwise its path.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "sluice"
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/sluice"
	}
	if p, err := exec.LookPath(filepath.Base(exe)); err == nil {
		if a, err := os.Stat(p); err == nil {
			if b, err := os.Stat(exe); err == nil && os.SameFile(a, b) {
				return filepath.Base(exe)
			}
		}
	}
	return shellWord(exe)
}

func printBanner(w io.Writer, d bannerData) error {
	return bannerText.Execute(w, d)
}

var templateFuncs = template.FuncMap{"sh": shellWord}

// bannerText is what the demo prints when it starts. Every command and
// snippet in it works as printed: the tests run them.
var bannerText = template.Must(template.New("banner").Funcs(templateFuncs).Parse(`
Sluice demo: simulated Azure OpenAI backends{{if .Provider}} and an Anthropic one{{end}} behind the gateway, configured
by examples/sluice.yaml with keys generated for this run.

  gateway   {{.Gateway}}
  admin     {{.Admin}}   (admin key: {{.AdminKey}})
  chat      {{.Gateway}}/chat/   (sign in with your key, below)
  dashboard {{.Admin}}/ui/   (sign in with the admin key; its Demo tab injects faults)
{{range .Backends}}  backend   {{printf "%-19s" .Name}} {{.URL}}   {{.What}}
{{end}}
Your key: {{.UserKey}}
  subscription {{.User}}, product {{.UserProduct}}: {{.UserTPM}}. The demo's own traffic
  never uses this key, so the snippets below work as printed, whatever the --load.

Azure OpenAI style:

  curl -s '{{.Gateway}}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21' \
    -H 'api-key: {{.UserKey}}' -H 'Content-Type: application/json' \
    -d '{"messages":[{"role":"user","content":"Hello!"}]}'

OpenAI style, streaming:

  curl -sN {{.Gateway}}/v1/chat/completions \
    -H 'Authorization: Bearer {{.UserKey}}' -H 'Content-Type: application/json' \
    -d '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hello!"}]}'

Python (pip install openai):

  from openai import OpenAI
  client = OpenAI(base_url="{{.Gateway}}/v1", api_key="{{.UserKey}}")
  print(client.chat.completions.create(model="gpt-4o",
        messages=[{"role": "user", "content": "Hello!"}]).choices[0].message.content)

Go, a whole program (in a module: go get github.com/openai/openai-go/v3):

{{.GoProgram}}
{{if .Provider}}Failover: once, at the start, every Azure OpenAI member of the chat pool answers 429 for a
moment (the simulators' fault injection), and the Anthropic backend serves instead: a line below
says so, with the backend's name from the response's x-sluice-backend header.

{{end}}{{if .Load}}The story: the demo sends itself {{.Load}} per second as {{.LoadSub}} (--load), each
with max_tokens {{.LoadMaxTokens}}. The PTU backend, {{.PTU}} ({{.PTUTPM}} tokens per minute), fills up
and answers 429; its circuit breaker opens for the Retry-After, and pay-as-you-go takes over
until it closes. {{.LoadSub}}'s product, {{.LoadProduct}}, allows {{.LoadTPM}}: once they are
used, {{.LoadSub}} is refused with 429 until the minute turns. Each turn is printed below as it
happens, the circuit breakers' changes too, and a summary every 10 s.
{{else}}The demo sends itself no traffic (--load 0). With --load 1 it shows the PTU spilling over to
pay-as-you-go and {{.LoadSub}} reaching its limit.
{{end}}
Access log     {{if .AccessLog}}{{.AccessLog}}   (--log-requests prints it here instead){{else}}printed here, a line per request (--log-requests){{end}}
Usage ledger   {{.Ledger}}, new for this run:
               {{.Self}} usage --store {{sh (print "sqlite:" .Ledger)}} --group-by subscription,backend
               curl -s -H 'api-key: {{.AdminKey}}' '{{.Admin}}/admin/usage?group_by=subscription,model'
Backends       curl -s -H 'api-key: {{.AdminKey}}' {{.Admin}}/admin/backends
Metrics        curl -s {{.Admin}}/metrics
{{.Dir}} is removed when the demo stops.

Your own config: {{.Self}} demo --print-config > sluice.yaml   (then run what it prints)

Press Ctrl-C to stop.
`))

// goSnippet is the Go program the demo prints, gofmt-formatted.
var goSnippet = template.Must(template.New("go").Parse(`package main

import (
	"context"
	"fmt"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func main() {
	client := openai.NewClient(
		option.WithBaseURL("{{.Gateway}}/v1"),
		option.WithAPIKey("{{.UserKey}}"),
	)
	resp, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Choices[0].Message.Content)
}
`))

// configRun is what --print-config says on standard error.
type configRun struct {
	Self             string
	Exports          []string // NAME=value
	Simulators       []configSimulator
	Gateway, UserKey string
	User             string
	Latency          string
	Jobs             string // the simulators' shell jobs: %1 %2 ...
}

type configSimulator struct {
	Addr, KeyVar, Region string
	Deployments          []string // name=model,tpm=N,rpm=N
}

// printDemoConfig prints the reference config on stdout and, on stderr, how
// to run it against the demo's simulators: fresh keys to export, the simulators'
// commands and the gateway's.
func printDemoConfig(stdout, stderr io.Writer, env demoEnv) error {
	cfg, err := config.Parse("examples/sluice.yaml", examples.Reference, env.lookup)
	if err != nil {
		return err
	}
	r := configRun{Self: selfCommand(), Gateway: "http://" + cfg.Server.Listen, User: demoUserSubscription, UserKey: env[demoUserKeyVar],
		Latency: fmt.Sprintf("--latency-base %v --latency-per-token %v --latency-per-token-stddev %v",
			demoLatency.Base, demoLatency.PerToken, demoLatency.PerTokenStdDev)}
	for name, v := range env {
		r.Exports = append(r.Exports, name+"="+shellWord(v))
	}
	slices.Sort(r.Exports)
	for _, db := range demoSimulators() {
		s := configSimulator{Addr: db.addr, KeyVar: db.keyVar, Region: db.region}
		for _, b := range cfg.Backends {
			if b.Name == db.name {
				s.Addr = strings.TrimPrefix(b.URL, "http://")
			}
		}
		for name, dep := range db.deployments {
			spec := name + "=" + dep.Model
			if dep.TokensPerMinute > 0 {
				spec += ",tpm=" + strconv.Itoa(dep.TokensPerMinute)
			}
			if dep.RequestsPerMinute > 0 {
				spec += ",rpm=" + strconv.Itoa(dep.RequestsPerMinute)
			}
			s.Deployments = append(s.Deployments, spec)
		}
		slices.Sort(s.Deployments)
		r.Simulators = append(r.Simulators, s)
		r.Jobs = strings.TrimSpace(r.Jobs + " %" + strconv.Itoa(len(r.Simulators)))
	}
	if _, err := stdout.Write(examples.Reference); err != nil {
		return err
	}
	return configRunText.Execute(stderr, r)
}

var configRunText = template.Must(template.New("config").Funcs(templateFuncs).Parse(`
That is examples/sluice.yaml, the demo's config. To run the gateway with it against {{len .Simulators}}
simulators, as the demo does, save it:

  {{.Self}} demo --print-config > sluice.yaml

and run these in the same directory. The keys are fresh; the config reads them from the
environment. Each simulator runs in the background, the gateway in the foreground:

{{range .Exports}}  export {{.}}
{{end}}{{range .Simulators}}  {{$.Self}} simulate --listen {{.Addr}} --key "${{.KeyVar}}" --region {{.Region}} \
   {{range .Deployments}} --deployment {{.}}{{end}} \
    {{$.Latency}} --log-level warn &
{{end}}  {{.Self}} serve --config sluice.yaml --log-format text

Then, from another terminal, with your key ({{.User}}):

  curl -s {{.Gateway}}/v1/chat/completions \
    -H 'Authorization: Bearer {{.UserKey}}' -H 'Content-Type: application/json' \
    -d '{"model":"gpt-4o","messages":[{"role":"user","content":"Hello!"}]}'

Ctrl-C stops the gateway, and "kill {{.Jobs}}" the simulators. To make the config your own,
point its backends at your deployments and set their keys in the environment: every field is
in docs/configuration.md, and "{{.Self}} check --config sluice.yaml" validates the file.
`))
