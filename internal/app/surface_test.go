package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/sluice-gateway/sluice/internal/config"
)

// TestSDKModels: models.list and models.retrieve through the official SDK in
// OpenAI and Azure modes (Azure's client calls /openai/models?api-version=),
// listing only what the caller's product may use.
func TestSDKModels(t *testing.T) {
	f := newFixture(t)
	f.writeConfig("  - name: team-chat\n    product: chat-only\n    keys: [\"sk-fixture-chat-0123456789\"]\n")
	if err := f.gw.Reload(); err != nil {
		t.Fatal(err)
	}
	for mode, client := range sdkClients(f, "sk-fixture-chat-0123456789") {
		t.Run(mode, func(t *testing.T) {
			page, err := client.Models.List(context.Background())
			if err != nil {
				t.Fatalf("models.list: %v", err)
			}
			var ids []string
			for _, m := range page.Data {
				ids = append(ids, m.ID)
			}
			if strings.Join(ids, ",") != "gpt-4o" {
				t.Errorf("models.list = %v; want [gpt-4o], the chat-only product's", ids)
			}
			m, err := client.Models.Get(context.Background(), "gpt-4o")
			if err != nil || m.ID != "gpt-4o" {
				t.Errorf("models.retrieve(gpt-4o) = %+v, %v", m, err)
			}
			_, err = client.Models.Get(context.Background(), "text-embedding-3-small")
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
				t.Errorf("models.retrieve of a model the product may not use: %v; want 404", err)
			}
		})
	}
}

// TestSDKPathPrefix: an Azure client migrating from API Management keeps its
// base URL with the API's suffix (myAPI/openai): server.path_prefixes strips
// /myAPI, for chat, streaming chat and the model list.
func TestSDKPathPrefix(t *testing.T) {
	f := newFixture(t, withConfig(strings.Replace(fxConfigYAML, "shutdown_grace: %s", "shutdown_grace: %s\n  path_prefixes: [/myAPI]", 1)))
	client := openai.NewClient(azure.WithEndpoint(f.url+"/myAPI", "2024-10-21"), azure.WithAPIKey(fxAlphaKey),
		azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0))
	c, err := client.Chat.Completions.New(context.Background(), chatParams("gpt-4o"))
	if err != nil || len(c.Choices) != 1 {
		t.Fatalf("chat under /myAPI: %+v, %v", c, err)
	}
	stream := client.Chat.Completions.NewStreaming(context.Background(), chatParams("gpt-4o"))
	n := 0
	for stream.Next() {
		n++
	}
	if err := stream.Err(); err != nil || n == 0 {
		t.Errorf("streaming under /myAPI: %d chunks, %v", n, err)
	}
	if _, err := client.Models.List(context.Background()); err != nil {
		t.Errorf("models under /myAPI: %v", err)
	}
	seen := f.seen.all()
	if len(seen) == 0 || strings.Contains(seen[0].path, "myAPI") {
		t.Errorf("a backend saw %v; want the prefix stripped", seen)
	}
}

// TestSDKNeverFits: a request larger than the whole per-minute limit can
// never succeed, and says so (x-should-retry: false): the SDK, with its
// retries on, makes exactly one call. A 429 a retry can fix says the
// opposite.
func TestSDKNeverFits(t *testing.T) {
	useStore(t, "memory", "fail_open")
	f := newFixture(t, withConfig(limitsYAML))
	client := openai.NewClient(option.WithBaseURL(f.url+"/v1"), option.WithAPIKey(fxAlphaKey), option.WithMaxRetries(2))
	params := chatParams("gpt-4o")
	params.MaxTokens = openai.Int(5000)
	var resp *http.Response
	_, err := client.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&resp))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 {
		t.Fatalf("never fits: %v; want 429", err)
	}
	if n := len(accessLog(t, f)); n != 1 {
		t.Errorf("the SDK called %d times; want once: a request that can never fit is not retried", n)
	}
	if got := resp.Header.Get("X-Should-Retry"); got != "false" {
		t.Errorf("x-should-retry %q; want false", got)
	}
	// Fill the minute, then a 429 that the next window fixes says retry.
	for range 60 {
		r, body := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, limitedChat)
		if r.StatusCode == 429 {
			if r.Header.Get("X-Should-Retry") != "true" || r.Header.Get("Retry-After") == "" {
				t.Errorf("a full minute's 429: x-should-retry %q Retry-After %q (%s); want true and a Retry-After",
					r.Header.Get("X-Should-Retry"), r.Header.Get("Retry-After"), body)
			}
			return
		}
	}
	t.Error("the limit never refused a request")
}

// TestSDKQuotaNoRetry: a spent daily quota is refused with 403, a
// Retry-After to the end of the day, and x-should-retry: false.
func TestSDKQuotaNoRetry(t *testing.T) {
	useStore(t, "memory", "fail_open")
	f := newFixture(t, withConfig(limitsYAML))
	const quotaKey = "sk-fixture-quota-0123456789"
	for range 20 {
		r, _ := do(t, "POST", f.url+"/v1/chat/completions", quotaKey, limitedChat)
		if r.StatusCode == 403 {
			if r.Header.Get("X-Should-Retry") != "false" || r.Header.Get("Retry-After") == "" {
				t.Errorf("quota spent: x-should-retry %q Retry-After %q; want false and a Retry-After",
					r.Header.Get("X-Should-Retry"), r.Header.Get("Retry-After"))
			}
			return
		}
	}
	t.Error("the quota never refused a request")
}

// TestLimitHeadersOnEverySurface: streamed and whole responses carry Sluice's
// own remaining-limit headers, never the backend's (which counts its own
// deployment's capacity, not the subscription's limit), on every surface.
func TestLimitHeadersOnEverySurface(t *testing.T) {
	useStore(t, "memory", "fail_open")
	f := newFixture(t, withConfig(limitsYAML))
	// The PTU fails over to westeurope, whose deployment has a limit of its
	// own and sends its x-ratelimit-* headers (about 100,000 tokens left).
	f.down["ptu-swedencentral"].Store(true)
	paths := map[string]string{
		"azure deployment": "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
		"azure v1":         "/openai/v1/chat/completions",
		"openai":           "/v1/chat/completions",
	}
	for name, path := range paths {
		for _, stream := range []bool{false, true} {
			t.Run(name+" stream="+strconv.FormatBool(stream), func(t *testing.T) {
				body := `{"model":"gpt-4o","max_tokens":20,"stream":` + strconv.FormatBool(stream) + `,"messages":[{"role":"user","content":"hi"}]}`
				resp, got := do(t, "POST", f.url+path, fxAlphaKey, body)
				if resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, got)
				}
				rem, err := strconv.Atoi(resp.Header.Get("X-Ratelimit-Remaining-Tokens"))
				if err != nil || rem > 3000 || rem < 0 {
					t.Errorf("x-ratelimit-remaining-tokens %q; want Sluice's own, at most the limit of 3000", resp.Header.Get("X-Ratelimit-Remaining-Tokens"))
				}
				if vals := resp.Header.Values("X-Ratelimit-Remaining-Tokens"); len(vals) != 1 {
					t.Errorf("x-ratelimit-remaining-tokens sent %d times: %v", len(vals), vals)
				}
				if req, err := strconv.Atoi(resp.Header.Get("X-Ratelimit-Remaining-Requests")); err != nil || req > 1000 {
					t.Errorf("x-ratelimit-remaining-requests %q; want Sluice's own, at most 1000", resp.Header.Get("X-Ratelimit-Remaining-Requests"))
				}
				if v := resp.Header.Get("X-Ratelimit-Limit-Tokens"); v != "" {
					t.Errorf("x-ratelimit-limit-tokens %q passed through from the backend beside Sluice's remaining", v)
				}
			})
		}
	}
}

// TestSDKResponsesBothModes: the Responses API through the SDK in OpenAI mode
// (/v1/responses) and Azure mode (the AzureOpenAI client calls
// /openai/responses?api-version=), streaming and not, metered like chat.
func TestSDKResponsesBothModes(t *testing.T) {
	f := newFixture(t)
	for mode, client := range sdkClients(f, fxAlphaKey) {
		t.Run(mode, func(t *testing.T) {
			params := responses.ResponseNewParams{
				Model:           "gpt-4o",
				Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("Say something about rivers.")},
				MaxOutputTokens: openai.Int(30),
			}
			r, err := client.Responses.New(context.Background(), params)
			if err != nil {
				t.Fatalf("responses.create: %v", err)
			}
			if r.OutputText() == "" || r.Usage.OutputTokens == 0 {
				t.Errorf("response %q with usage %+v; want text and its usage", r.OutputText(), r.Usage)
			}
			stream := client.Responses.NewStreaming(context.Background(), params)
			var text strings.Builder
			completed := false
			for stream.Next() {
				ev := stream.Current()
				switch ev.Type {
				case "response.output_text.delta":
					text.WriteString(ev.Delta)
				case "response.completed", "response.incomplete": // incomplete: max_output_tokens reached
					completed = true
				}
			}
			if err := stream.Err(); err != nil || !completed || text.Len() == 0 {
				t.Errorf("streamed response: %d bytes of text, completed %v, err %v", text.Len(), completed, err)
			}
		})
	}
	var azure int
	for _, r := range f.seen.all() {
		if strings.HasSuffix(r.path, "/responses") {
			azure++
		}
	}
	if azure != 4 {
		t.Errorf("the backends saw %d Responses requests; want 4", azure)
	}
	for _, line := range accessLog(t, f) {
		if line["model"] == "gpt-4o" && num(line["completion_tokens"]) == 0 {
			t.Errorf("a Responses request was logged without its usage: %v", line)
		}
	}
}

// secondGateway starts another gateway instance on the fixture's config and
// simulators (with its own ledger), as a second replica would run.
func secondGateway(t *testing.T, f *fixture) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("FX_USAGE_STORE", "sqlite:"+dir+"/usage.db")
	t.Setenv("FX_USAGE_JOURNAL", dir+"/usage.journal")
	g, err := NewGateway(func() (*config.Config, error) { return config.Load(f.cfgPath, os.LookupEnv) }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

// TestSDKStoredResponses: a stored response is retrieved, listed, continued
// and deleted through the SDK in both modes, on the backend that holds it:
// made on pay-as-you-go while the PTU was down, it is continued there once
// the PTU is back, and a second instance that never saw it made finds it.
func TestSDKStoredResponses(t *testing.T) {
	f := newFixture(t, withConfig(strings.Replace(fxConfigYAML, "  - name: embeddings\n",
		"    retry: { attempts: 3, on: [\"500-599\"] }\n  - name: embeddings\n", 1)))
	second := secondGateway(t, f)
	params := responses.ResponseNewParams{
		Model:           "gpt-4o",
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("Tell me about rivers.")},
		MaxOutputTokens: openai.Int(20),
	}
	for mode, client := range sdkClients(f, fxAlphaKey) {
		t.Run(mode, func(t *testing.T) {
			f.down["ptu-swedencentral"].Store(true)
			var resp *http.Response
			r, err := client.Responses.New(context.Background(), params, option.WithResponseInto(&resp))
			f.down["ptu-swedencentral"].Store(false)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			owner := resp.Header.Get("X-Sluice-Backend")
			if owner == "ptu-swedencentral" {
				t.Fatalf("made on the PTU while it was down")
			}
			got, err := client.Responses.Get(context.Background(), r.ID, responses.ResponseGetParams{})
			if err != nil || got.ID != r.ID || got.OutputText() != r.OutputText() {
				t.Errorf("retrieve: %+v, %v", got, err)
			}
			items, err := client.Responses.InputItems.List(context.Background(), r.ID, responses.InputItemListParams{})
			if err != nil || len(items.Data) != 1 {
				t.Errorf("input items: %+v, %v", items, err)
			}
			next := params
			next.PreviousResponseID = openai.String(r.ID)
			_, err = client.Responses.New(context.Background(), next, option.WithResponseInto(&resp))
			if err != nil || resp.Header.Get("X-Sluice-Backend") != owner {
				t.Errorf("continue: %v from %q; want %q, the backend that holds the response", err, resp.Header.Get("X-Sluice-Backend"), owner)
			}
			// Another instance never saw it made: it asks the backends.
			other := openai.NewClient(option.WithBaseURL(second+"/v1"), option.WithAPIKey(fxAlphaKey), option.WithMaxRetries(0))
			if got, err := other.Responses.Get(context.Background(), r.ID, responses.ResponseGetParams{}); err != nil || got.ID != r.ID {
				t.Errorf("retrieve through the second instance: %+v, %v", got, err)
			}
			if err := client.Responses.Delete(context.Background(), r.ID); err != nil {
				t.Errorf("delete: %v", err)
			}
			_, err = client.Responses.Get(context.Background(), r.ID, responses.ResponseGetParams{})
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
				t.Errorf("retrieve after delete: %v; want 404", err)
			}
		})
	}
}

// TestEstimateCountsTools: admission counts a request's tool definitions in
// its prompt estimate, as the backend counts them: the reservation of a
// stream with tools (the limit less what remains at admission, less
// max_tokens) equals the prompt the backend reports.
func TestEstimateCountsTools(t *testing.T) {
	useStore(t, "memory", "fail_open")
	f := newFixture(t, withConfig(limitsYAML))
	body := `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"max_tokens":40,
		"messages":[{"role":"user","content":"What is the weather in Paris?"}],
		"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the current weather in a given location.",
		"parameters":{"type":"object","properties":{"location":{"type":"string","description":"The city"},
		"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location"]}}}]}`
	resp, got := do(t, "POST", f.url+"/v1/chat/completions", fxAlphaKey, body)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
	remaining, _ := strconv.Atoi(resp.Header.Get("X-Ratelimit-Remaining-Tokens"))
	reserved := 3000 - remaining - 40
	var prompt int
	for _, line := range strings.Split(got, "\n") {
		if i := strings.Index(line, `"prompt_tokens":`); i >= 0 {
			prompt, _ = strconv.Atoi(strings.TrimRight(strings.SplitN(line[i+len(`"prompt_tokens":`):], ",", 2)[0], "}"))
		}
	}
	if prompt == 0 || reserved != prompt {
		t.Errorf("admission reserved %d prompt tokens; the backend counted %d (tools included)", reserved, prompt)
	}
}
