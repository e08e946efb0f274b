package simulator

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// op is what a path asks for.
type op int

const (
	opNone op = iota
	opChat
	opCompletions
	opEmbeddings
	opResponses
	opModels
	opStored // a stored response: retrieve, delete, input items, cancel
	opSim
)

// routed is a request's path, parsed.
type routed struct {
	op         op
	deployment string // from the path; empty on the /v1 paths, where the body names it
	azure      bool   // an /openai/ path: answer with Azure's extras and error bodies
	sim        string // the /sim/ endpoint
	responseID string // opStored's response
	action     string // opStored's: "", "input_items" or "cancel"
	dialect    dialect
	stream     bool // Gemini's streamGenerateContent
}

// route parses the paths Azure OpenAI and OpenAI serve:
//
//	/openai/deployments/{deployment}/{chat/completions,completions,embeddings}
//	/openai/v1/{chat/completions,completions,embeddings,responses,models}
//	/v1/{chat/completions,completions,embeddings,responses,models}
//	/openai/models
//	/v1/responses/{id}[/input_items|/cancel], and the same under /openai/v1/
//	/sim/{config,stats,reset}
func route(path string) routed {
	if rest, ok := strings.CutPrefix(path, "/sim/"); ok {
		switch rest {
		case "config", "stats", "reset":
			return routed{op: opSim, sim: rest}
		}
		return routed{}
	}
	if path == "/openai/models" {
		// Azure's model list, with an api-version; health checks use it.
		return routed{op: opModels, azure: true}
	}
	if rest, ok := strings.CutPrefix(path, "/openai/deployments/"); ok {
		name, tail, ok := strings.Cut(rest, "/")
		if !ok || name == "" {
			return routed{}
		}
		r := routed{op: apiOp(tail), deployment: name, azure: true}
		if r.op == opResponses || r.op == opModels {
			r.op = opNone
		}
		return r
	}
	if r, ok := dialectRoute(path); ok {
		return r
	}
	if rest, ok := strings.CutPrefix(path, "/openai/v1/"); ok {
		return apiRoute(rest, true)
	}
	if rest, ok := strings.CutPrefix(path, "/v1/"); ok {
		return apiRoute(rest, false)
	}
	return routed{}
}

// apiRoute routes what follows /v1/ or /openai/v1/.
func apiRoute(rest string, azure bool) routed {
	if tail, ok := strings.CutPrefix(rest, "responses/"); ok {
		id, action, _ := strings.Cut(tail, "/")
		if id == "" || (action != "" && action != "input_items" && action != "cancel") {
			return routed{}
		}
		return routed{op: opStored, azure: azure, responseID: id, action: action}
	}
	return routed{op: apiOp(rest), azure: azure}
}

func apiOp(tail string) op {
	switch strings.TrimSuffix(tail, "/") {
	case "chat/completions":
		return opChat
	case "completions":
		return opCompletions
	case "embeddings":
		return opEmbeddings
	case "responses":
		return opResponses
	case "models":
		return opModels
	}
	return opNone
}

// call is one request in flight. Only its own goroutine touches it.
type call struct {
	s      *Simulator
	w      http.ResponseWriter
	r      *http.Request
	id     string
	route  routed
	start  time.Time
	d      *deployment // nil until the request names a configured deployment
	rng    *rand.Rand  // this request's draws, seeded by Options.Seed and its sequence number
	faults *Faults     // the faults that apply to d; must not be modified

	status     int
	prompt     int  // prompt tokens of the request
	answered   bool // a 2xx reply started, so the prompt counts as processed
	completion int  // completion tokens delivered
	truncated  bool // a stream ended before its last event
}

// finish records the call in the stats and the log. It runs even when a
// stream is aborted with http.ErrAbortHandler.
func (c *call) finish() {
	prompt := 0
	if c.answered {
		prompt = c.prompt
	}
	name := ""
	if c.d != nil {
		name = c.d.name
	}
	c.s.stats.record(name, c.status, prompt, c.completion, c.truncated)
	if ctx := c.r.Context(); c.s.log.Enabled(ctx, slog.LevelInfo) { // spare benchmarks the arguments
		c.s.log.LogAttrs(ctx, slog.LevelInfo, "simulated request", slog.String("request_id", c.id),
			slog.String("method", c.r.Method), slog.String("path", c.r.URL.Path), slog.String("deployment", name),
			slog.Int("status", c.status), slog.Int("prompt_tokens", prompt), slog.Int("completion_tokens", c.completion),
			slog.Bool("truncated", c.truncated), slog.Duration("duration", time.Since(c.start)))
	}
}

func (c *call) logControl() {
	c.s.log.Info("simulator control", "request_id", c.id, "method", c.r.Method, "path", c.r.URL.Path, "status", c.status)
}

// allow answers 405 unless the request's method is method.
func (c *call) allow(method string) bool {
	if c.r.Method == method {
		return true
	}
	c.w.Header().Set("Allow", method)
	c.fail(http.StatusMethodNotAllowed, "method_not_allowed",
		fmt.Sprintf("Method %s is not allowed on %s; use %s.", c.r.Method, c.r.URL.Path, method), "invalid_request_error")
	return false
}

// errorBody is the error shape both APIs share: Azure sends code and message,
// OpenAI adds type (and param, left out here).
type errorBody struct {
	Error struct {
		Code    string  `json:"code"`
		Message string  `json:"message"`
		Type    string  `json:"type,omitempty"`
		Param   *string `json:"param,omitempty"`
	} `json:"error"`
}

// fail answers with an error.
func (c *call) fail(status int, code, message, typ string) {
	if c.route.dialect != dialectNone {
		c.failDialect(status, message)
		return
	}
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.Type = code, message, typ
	c.writeJSON(status, b)
}

// badRequest answers 400 with an OpenAI-shaped invalid_request_error.
func (c *call) badRequest(code, format string, args ...any) {
	c.fail(http.StatusBadRequest, code, fmt.Sprintf(format, args...), "invalid_request_error")
}

func (c *call) unauthorized() {
	if c.route.azure || c.route.op == opSim {
		c.fail(http.StatusUnauthorized, "401", "Access denied due to invalid subscription key or wrong API endpoint. "+
			"Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.", "")
		return
	}
	c.fail(http.StatusUnauthorized, "invalid_api_key",
		"Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_request_error")
}

func (c *call) notFound(name string) {
	if c.route.azure {
		c.fail(http.StatusNotFound, "DeploymentNotFound", "The API deployment for this resource does not exist. "+
			"If you created the deployment within the last 5 minutes, please wait a moment and try again.", "invalid_request_error")
		return
	}
	c.fail(http.StatusNotFound, "model_not_found",
		fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", name), "invalid_request_error")
}

// serverError answers an injected error with the status's usual body.
func (c *call) serverError(status int) {
	code, msg := strconv.Itoa(status), http.StatusText(status)
	switch status {
	case http.StatusInternalServerError:
		code, msg = "InternalServerError", "The server had an error while processing your request. Sorry about that!"
	case http.StatusServiceUnavailable:
		code, msg = "ServiceUnavailable", "The service is temporarily unable to process your request. Please try again later."
	case http.StatusTooManyRequests:
		code, msg = "429", "Requests to the "+c.operation()+" Operation have exceeded call rate limit. Please retry later."
	}
	if msg == "" {
		msg = "Injected error."
	}
	c.fail(status, code, msg, "server_error")
}

// tooMany answers 429 for a rate limit, with the headers Azure OpenAI sends:
// Retry-After in whole seconds, retry-after-ms (on PTU deployments and some
// others) and x-ratelimit-reset-tokens or -requests, which APIM policies in
// Microsoft's samples read.
func (c *call) tooMany(wait time.Duration, tokens bool, limit int) {
	secs := ceilSeconds(wait)
	h := c.w.Header()
	h.Set("Retry-After", strconv.Itoa(secs))
	h.Set("retry-after-ms", strconv.FormatInt(max(wait.Milliseconds(), 1), 10))
	kind, unit := "call", "requests"
	if tokens {
		kind, unit = "token", "tokens"
	}
	h.Set("x-ratelimit-reset-"+unit, strconv.Itoa(secs))
	if c.route.azure {
		c.fail(http.StatusTooManyRequests, "429", fmt.Sprintf("Requests to the %s Operation under Azure OpenAI API version %s "+
			"have exceeded %s rate limit of your current OpenAI S0 pricing tier. Please retry after %d seconds. "+
			"Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.",
			c.operation(), c.apiVersion(), kind, secs), "")
		return
	}
	on := ""
	if limit > 0 {
		on = fmt.Sprintf(" on %s per min: Limit %d", unit, limit)
	}
	c.fail(http.StatusTooManyRequests, "rate_limit_exceeded", fmt.Sprintf("Rate limit reached for %s%s. "+
		"Please try again in %.3fs.", c.d.model, on, wait.Seconds()), unit)
}

// ceilSeconds returns d in whole seconds, rounded up, at least 1: a client
// told to retry after 0 seconds would retry at once and be refused again.
func ceilSeconds(d time.Duration) int {
	return max(int(math.Ceil(d.Seconds())), 1)
}

func (c *call) operation() string {
	switch c.route.op {
	case opChat:
		return "ChatCompletions_Create"
	case opCompletions:
		return "Completions_Create"
	case opEmbeddings:
		return "Embeddings_Create"
	}
	return "Responses_Create"
}

func (c *call) apiVersion() string {
	return cmpOr(c.r.URL.Query().Get("api-version"), "v1")
}

// writeJSON answers with v as JSON.
func (c *call) writeJSON(status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.s.log.Error("simulator: encoding a reply", "request_id", c.id, "err", err)
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"InternalServerError","message":"encoding the reply failed"}}`)
	}
	c.writeBody(status, b)
}

// writeBody answers with a JSON body.
func (c *call) writeBody(status int, b []byte) {
	c.status = status
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	c.w.WriteHeader(status)
	c.w.Write(b) //nolint:errcheck // a client that left is counted by the caller, not here
}

// sleep waits for d or until the client goes away, reporting whether the
// client is still there.
func (c *call) sleep(d time.Duration) bool {
	ctx := c.r.Context()
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// newUUID returns a random version 4 UUID, for request ids.
func newUUID() string {
	const hex = "0123456789abcdef"
	var b [36]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 4<<12   // version 4
	lo = lo&^(0x3<<62) | 0x2<<62 // variant 10
	j := 0
	for i := range 32 {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b[j] = '-'
			j++
		}
		var nib uint64
		if i < 16 {
			nib = hi >> (60 - 4*i) & 0xf
		} else {
			nib = lo >> (60 - 4*(i-16)) & 0xf
		}
		b[j] = hex[nib]
		j++
	}
	return string(b[:])
}

// newID returns prefix followed by n random letters and digits, like
// OpenAI's chatcmpl-... and resp_... ids.
func newID(prefix string, n int) string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, len(prefix)+n)
	copy(b, prefix)
	for i := len(prefix); i < len(b); i++ {
		b[i] = alnum[rand.IntN(len(alnum))]
	}
	return string(b)
}

// fingerprint returns a stable system_fingerprint for model.
func fingerprint(model string) string {
	h := uint64(14695981039346656037)
	for i := range len(model) {
		h = (h ^ uint64(model[i])) * 1099511628211
	}
	return fmt.Sprintf("fp_%010x", h&0xffffffffff)
}
