// Package simulator is a stand-in for Azure OpenAI and OpenAI: an
// http.Handler that answers chat completions, completions, responses and
// embeddings with generated text, exact token usage, realistic latency,
// per-deployment rate limits and injected faults. It exists so that the
// gateway can be demonstrated, load-tested and tested end to end without a
// cloud account, and so that failures real backends produce rarely (429s,
// 5xx, hangs, streams cut mid-way) can be produced on demand.
//
// It is modelled on microsoft/aoai-api-simulator's generate mode, without its
// known defects: latency applies per completion token to every API and to
// embeddings, streams end with "data: [DONE]" and carry usage when asked,
// and 429s carry retry-after-ms as well as Retry-After.
//
// Chat completions and the Responses API call function tools and follow
// response formats as the service does, so that agent frameworks run
// against it. Which functions the simulated model calls is a deterministic
// rule:
//
//   - tool_choice "none", or no function tools: no call;
//   - a named function: one call to it (chat's finish_reason is then "stop",
//     as OpenAI's is);
//   - "auto" (the default with tools): a call to every function that the
//     last user message mentions, that is, contains its name, or as a whole
//     word one of its name's words of four letters or more (the name split at
//     '_', '-' and lower-to-upper case changes: "get_weather" and
//     "getWeather" are mentioned by "weather"), ignoring case; none when the
//     conversation ends with tool results (a tool message, or a
//     function_call_output item), which get a text answer;
//   - "required": the functions mentioned, or the first when none is,
//     tool results or not, since the API guarantees a call;
//   - allowed_tools narrows the functions and gives one of these modes, and
//     parallel_tool_calls false keeps only the first call.
//
// Arguments are generated from the function's parameters schema with the
// request's random source (see schema.go for the keywords honoured), and
// JSON content likewise for a json_schema response format; json_object gets
// an object of a few fields. Completion usage counts a call's name and
// arguments, or the JSON, with the model's tokenizer; prompt usage adds the
// tool definitions by the OpenAI cookbook's approximation (toolTokens).
package simulator

import (
	"crypto/subtle"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Simulator. The zero Options is a simulator without
// authentication, with the default deployments, no latency and no faults.
type Options struct {
	// APIKey is the key clients must send, in the api-key header or as
	// "Authorization: Bearer KEY". Empty means no authentication. It guards
	// the /sim/ control endpoints too.
	APIKey string
	// Region is sent in every response's x-ms-region header, as Azure OpenAI
	// does. Default "eastus".
	Region string
	// Deployments maps deployment names (the model name clients send on the
	// /v1 and /openai/v1 paths) to their configuration. Default: gpt-4o
	// (model gpt-4o-2024-11-20) and text-embedding-3-small.
	Deployments map[string]Deployment
	// Latency is how long answers take. The zero Latency answers at once.
	Latency Latency
	// MeanCompletionTokens is the mean length of a reply when the request sets
	// no token limit; lengths are uniform in [mean/2, 3*mean/2]. Default 125.
	MeanCompletionTokens int
	// Faults are the faults injected from the start; PATCH /sim/config and
	// SetFaults change them at run time.
	Faults Faults
	// Seed makes generated replies and fault draws reproducible: the same seed
	// and the same sequence of requests give the same replies.
	Seed int64
	// Now is the clock rate limits read. Default time.Now.
	Now func() time.Time
	// OnRequest, if set, is called with every request and its body before it
	// is handled, so that a test can see what reached the backend. It must not
	// modify body.
	OnRequest func(r *http.Request, body []byte)
	// Logger receives one line per request at info. Default: discard.
	Logger *slog.Logger
	// Entra, when set, accepts Entra ID bearer tokens (and may refuse keys):
	// see Entra.
	Entra *Entra
}

// Deployment is one model deployment.
type Deployment struct {
	// Model is the model name responses report, e.g. gpt-4o-2024-11-20. It
	// also chooses the tokenizer, and a model whose name contains "embedding"
	// serves only embeddings while any other serves only the text APIs.
	// Default: the deployment's name.
	Model string
	// TokensPerMinute limits the tokens admitted in any 60-second window.
	// A request costs its prompt tokens plus its max_tokens (or
	// max_completion_tokens, max_output_tokens), or plus 16 when it sets no
	// limit, which is how Azure OpenAI estimates a request before running it;
	// an embeddings request costs its prompt tokens. 0 means unlimited.
	TokensPerMinute int
	// RequestsPerMinute limits the requests admitted in any 60-second window.
	// 0 means unlimited.
	RequestsPerMinute int
	// EmbeddingDimensions is the length of the vectors an embeddings
	// deployment returns, and the largest "dimensions" a request may ask for.
	// Default 1536.
	EmbeddingDimensions int
}

// Latency is how long the simulated model takes. A non-streaming reply is sent
// after Base plus one PerToken draw per completion token; a stream sends its
// first event after Base and each token after one PerToken draw. Embeddings
// take Base. Draws are normal with mean PerToken and standard deviation
// PerTokenStdDev, clipped at zero.
type Latency struct {
	Base           time.Duration
	PerToken       time.Duration
	PerTokenStdDev time.Duration
}

// perToken draws the time one completion token takes.
func (l Latency) perToken(rng *rand.Rand) time.Duration {
	d := l.PerToken
	if l.PerTokenStdDev > 0 {
		d += time.Duration(rng.NormFloat64() * float64(l.PerTokenStdDev))
	}
	return max(d, 0)
}

// total draws the time a non-streaming reply of n tokens takes.
func (l Latency) total(rng *rand.Rand, n int) time.Duration {
	d := max(l.Base, 0)
	if l.PerToken > 0 || l.PerTokenStdDev > 0 {
		for range n {
			d += l.perToken(rng)
		}
	}
	return d
}

// DefaultDeployments are the deployments of a Simulator configured with none.
func DefaultDeployments() map[string]Deployment {
	return map[string]Deployment{
		"gpt-4o":                 {Model: "gpt-4o-2024-11-20"},
		"text-embedding-3-small": {Model: "text-embedding-3-small", EmbeddingDimensions: 1536},
	}
}

// deployment is a Deployment compiled for the request path.
type deployment struct {
	name        string
	model       string
	embedding   bool
	dims        int
	fingerprint string
	limit       *window // nil when unlimited
}

// maxBody is the largest request body accepted: far above any real chat or
// embeddings request, and a bound on what one request can make it hold.
const maxBody = 16 << 20

// Simulator is a simulated Azure OpenAI and OpenAI backend. It is an
// http.Handler and safe for concurrent use. It starts no goroutines, but in
// Entra mode, whose key fetches Close stops.
type Simulator struct {
	key         []byte
	region      string
	deployments map[string]*deployment
	names       []string // sorted deployment names, for /models
	latency     Latency
	meanTokens  int
	seed        uint64
	seq         atomic.Uint64 // requests so far; with seed, seeds each request's draws
	now         func() time.Time
	onRequest   func(*http.Request, []byte)
	log         *slog.Logger
	faults      atomic.Pointer[Faults]
	stats       statsRecorder
	stored      responseStore // the Responses API's stored responses
	entra       *entraAuth    // nil unless in Entra mode
	safety      *safetyState  // the Content Safety blocklists (safety.go), made on first use
	safetyOnce  sync.Once
}

// New returns a Simulator configured by opts. Invalid values fall back to
// their defaults; BindFlags validates what users type.
func New(opts Options) *Simulator {
	s := &Simulator{
		key:        []byte(opts.APIKey),
		region:     cmpOr(opts.Region, "eastus"),
		latency:    opts.Latency,
		meanTokens: opts.MeanCompletionTokens,
		seed:       uint64(opts.Seed),
		now:        opts.Now,
		onRequest:  opts.OnRequest,
		log:        opts.Logger,
	}
	if s.meanTokens <= 0 {
		s.meanTokens = 125
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	deps := opts.Deployments
	if len(deps) == 0 {
		deps = DefaultDeployments()
	}
	s.deployments = make(map[string]*deployment, len(deps))
	for name, d := range deps {
		s.deployments[name] = compileDeployment(name, d)
	}
	s.names = slices.Sorted(maps.Keys(s.deployments))
	s.stats.init(s.names)
	s.SetFaults(opts.Faults)
	if opts.Entra != nil {
		s.entra = newEntraAuth(opts.Entra, s.now)
	}
	return s
}

func compileDeployment(name string, d Deployment) *deployment {
	model := cmpOr(d.Model, name)
	c := &deployment{
		name:        name,
		model:       model,
		embedding:   strings.Contains(strings.ToLower(model), "embedding"),
		dims:        d.EmbeddingDimensions,
		fingerprint: fingerprint(model),
	}
	if c.dims <= 0 {
		c.dims = 1536
	}
	if d.TokensPerMinute > 0 || d.RequestsPerMinute > 0 {
		c.limit = &window{tpm: max(d.TokensPerMinute, 0), rpm: max(d.RequestsPerMinute, 0)}
	}
	return c
}

// ServeHTTP answers one request.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{s: s, w: w, r: r, start: time.Now(), status: http.StatusOK}
	c.id = newUUID()
	h := w.Header()
	h.Set("x-ms-region", s.region)
	h.Set("x-request-id", c.id)
	h.Set("apim-request-id", c.id)
	if v := r.Header.Get("x-ms-client-request-id"); v != "" {
		h.Set("x-ms-client-request-id", v)
	}
	if isSafetyPath(r.URL.Path) {
		s.serveSafety(w, r)
		return
	}
	c.route = route(r.URL.Path)
	if c.route.op == opSim {
		defer c.logControl()
	} else {
		defer c.finish()
	}
	if c.route.op == opNone {
		c.fail(http.StatusNotFound, "404", "Resource not found", "")
		return
	}
	body, ok := c.readBody()
	if !ok {
		return
	}
	if s.onRequest != nil {
		s.onRequest(r, body)
	}
	if s.entra != nil && c.route.op != opSim {
		if !s.entra.authorize(c, r, s.key, func() bool { return s.authorized(r) }) {
			return
		}
	} else if !s.authorized(r) {
		c.unauthorized()
		return
	}
	switch c.route.op {
	case opSim:
		s.serveControl(c, body)
	case opModels:
		if c.allow(http.MethodGet) {
			s.serveModels(c)
		}
	case opStored:
		s.serveStored(c)
	default:
		if c.allow(http.MethodPost) {
			s.serveAPI(c, body)
		}
	}
}

func (c *call) readBody() ([]byte, bool) {
	if c.r.Body == nil || c.r.Body == http.NoBody {
		return nil, true
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, maxBody))
	if err != nil {
		if _, tooBig := err.(*http.MaxBytesError); tooBig {
			c.fail(http.StatusRequestEntityTooLarge, "request_too_large",
				"The request body exceeds the maximum size of 16 MiB.", "invalid_request_error")
		} else {
			c.status = 499 // the client went away mid-body
		}
		return nil, false
	}
	return body, true
}

// authorized reports whether r carries the configured key, if there is one.
func (s *Simulator) authorized(r *http.Request) bool {
	if len(s.key) == 0 {
		return true
	}
	got := r.Header.Get("api-key")
	for _, h := range []string{"x-api-key", "x-goog-api-key"} { // Anthropic's, Gemini's
		if got == "" {
			got = r.Header.Get(h)
		}
	}
	if got == "" {
		got, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	return subtle.ConstantTimeCompare([]byte(got), s.key) == 1
}

// serveModels lists the deployments, as GET /v1/models does.
func (s *Simulator) serveModels(c *call) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list", Data: make([]model, 0, len(s.names))}
	for _, name := range s.names {
		list.Data = append(list.Data, model{ID: name, Object: "model", Created: 1715367049, OwnedBy: "system"})
	}
	c.writeJSON(http.StatusOK, list)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
