package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"

	"github.com/sluice-gateway/sluice/internal/tokens"
)

// apiRequest is what the simulator reads of a request body, for all four
// APIs.
type apiRequest struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	MaxOutputTokens     *int            `json:"max_output_tokens"`
	Messages            json.RawMessage `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	Input               json.RawMessage `json:"input"`
	Instructions        string          `json:"instructions"`
	Dimensions          *int            `json:"dimensions"`
	EncodingFormat      string          `json:"encoding_format"`
	Tools               json.RawMessage `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	ResponseFormat      json.RawMessage `json:"response_format"`      // chat
	Text                json.RawMessage `json:"text"`                 // Responses: text.format
	Store               *bool           `json:"store"`                // Responses: false keeps it from being stored
	PreviousResponseID  string          `json:"previous_response_id"` // Responses: the stored response it continues
}

func (r *apiRequest) includeUsage() bool {
	return r.StreamOptions != nil && r.StreamOptions.IncludeUsage
}

// maxLimit bounds max_tokens and its kin; real models allow far less.
const maxLimit = 1 << 20

// estimateWithoutLimit is what Azure OpenAI charges a rate limit for the
// completion of a request that sets no max_tokens.
const estimateWithoutLimit = 16

// serveAPI answers a chat completions, completions, responses or embeddings
// request.
func (s *Simulator) serveAPI(c *call, body []byte) {
	// A deployment in the path is looked up first, as Azure does: an unknown
	// one is a 404 whatever the body.
	name := c.route.deployment
	if name != "" && s.deployments[name] == nil {
		c.notFound(name)
		return
	}
	if c.route.dialect != dialectNone {
		var ok bool
		if body, ok = c.fromDialect(body); !ok {
			return
		}
	}
	var req apiRequest
	if err := json.Unmarshal(body, &req); err != nil {
		c.badRequest("invalid_json", "We could not parse the JSON body of your request. "+
			"(HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)")
		return
	}
	if name == "" {
		if name = req.Model; name == "" {
			c.badRequest("missing_required_parameter", "Missing required parameter: 'model'.")
			return
		}
	}
	d := s.deployments[name]
	if d == nil {
		c.notFound(name)
		return
	}
	c.d = d
	c.rng = rand.New(rand.NewPCG(s.seed, s.seq.Add(1)))
	c.faults = s.faultsFor(name)
	if !s.injectFaults(c) {
		return
	}
	if d.embedding != (c.route.op == opEmbeddings) {
		c.fail(http.StatusBadRequest, "OperationNotSupported", "The "+c.operation()+" operation does not work with the specified model, "+
			d.model+". Please choose different model and try again.", "invalid_request_error")
		return
	}
	limit, ok := c.limit(&req)
	if !ok {
		return
	}
	var (
		texts []string // embeddings inputs
		dims  int
		b64   bool
		use   toolUse
	)
	switch c.route.op {
	case opChat:
		ok = c.countChat(&req)
		if ok {
			use, ok = c.readTools(&req)
		}
	case opCompletions:
		ok = c.countPrompt(req.Prompt, "prompt", nil)
	case opResponses:
		ok = c.previousKnown(&req) && c.countResponsesInput(&req)
		if ok {
			use, ok = c.readTools(&req)
		}
	case opEmbeddings:
		ok = c.countPrompt(req.Input, "input", &texts)
		if ok {
			dims, b64, ok = c.embeddingParams(&req)
		}
	}
	if !ok {
		return
	}
	cost := c.prompt
	if c.route.op != opEmbeddings {
		cost += cmpOrInt(limit, estimateWithoutLimit)
	}
	if !c.admit(cost) {
		return
	}
	if c.route.op == opEmbeddings {
		s.embeddings(c, texts, dims, b64)
		return
	}
	n, finish := c.replyLength(limit)
	if c.route.op == opCompletions {
		if req.Stream {
			s.completionsStream(c, &req, n, finish)
		} else {
			s.completions(c, n, finish)
		}
		return
	}
	a := c.answer(&use, limit, n, finish)
	switch {
	case c.route.dialect != dialectNone:
		s.dialectReply(c, &req, &a)
	case c.route.op == opChat && req.Stream:
		s.chatStream(c, &req, &a)
	case c.route.op == opChat:
		s.chat(c, &a)
	case req.Stream:
		s.responsesStream(c, &req, limit, &a)
	default:
		s.responses(c, &req, limit, &a)
	}
}

// injectFaults applies the call's faults, reporting whether the request goes
// on to be answered.
func (s *Simulator) injectFaults(c *call) bool {
	f := c.faults
	if !c.sleep(f.AddedLatency) {
		c.status = 499
		return false
	}
	if f.Hang {
		<-c.r.Context().Done()
		c.status = 499
		return false
	}
	if f.Disconnect {
		// net/http closes the connection without writing a response.
		c.status = 444 // nginx's code for "closed without a response"
		panic(http.ErrAbortHandler)
	}
	if f.RetryAfter > 0 {
		c.w.Header().Set("x-ratelimit-reset-requests", strconv.Itoa(ceilSeconds(f.RetryAfter)))
		c.tooMany(f.RetryAfter, true, 0)
		return false
	}
	if f.ErrorRate > 0 && c.rng.Float64() < f.ErrorRate {
		c.serverError(f.status())
		return false
	}
	return true
}

// limit returns the request's completion token limit, 0 if none, or answers
// 400 for an invalid one. Legacy completions default to 16, as OpenAI's do.
func (c *call) limit(req *apiRequest) (int, bool) {
	var p *int
	param := "max_tokens"
	switch c.route.op {
	case opChat:
		p = req.MaxTokens
		if req.MaxCompletionTokens != nil {
			p, param = req.MaxCompletionTokens, "max_completion_tokens"
		}
	case opCompletions:
		p = req.MaxTokens
		if p == nil {
			return 16, true
		}
	case opResponses:
		p, param = req.MaxOutputTokens, "max_output_tokens"
	}
	switch {
	case p == nil:
		return 0, true
	case *p < 1 || *p > maxLimit:
		c.badRequest("invalid_value", "Invalid '%s': integer %d is out of range; use 1 to %d.", param, *p, maxLimit)
		return 0, false
	}
	return *p, true
}

// admit charges the deployment's rate limits, or answers 429.
func (c *call) admit(cost int) bool {
	if c.d.limit == nil {
		return true
	}
	v := c.d.limit.admit(c.s.now(), cost)
	if !v.ok {
		c.tooMany(v.wait, v.tokensExceeded, v.limitThatRefused)
		return false
	}
	h := c.w.Header()
	if c.d.limit.tpm > 0 {
		h.Set("x-ratelimit-remaining-tokens", strconv.Itoa(v.tokensLeft))
	}
	if c.d.limit.rpm > 0 {
		h.Set("x-ratelimit-remaining-requests", strconv.Itoa(v.requestsLeft))
	}
	return true
}

// replyLength draws the reply's length in tokens and why it ends.
func (c *call) replyLength(limit int) (int, string) {
	mean := c.s.meanTokens
	n := max(1, mean/2+c.rng.IntN(mean+1))
	if limit > 0 && limit < n {
		return limit, "length"
	}
	return n, "stop"
}

// countChat counts a chat request's prompt tokens.
func (c *call) countChat(req *apiRequest) bool {
	if isEmptyJSON(req.Messages) {
		c.badRequest("missing_required_parameter", "Missing required parameter: 'messages'.")
		return false
	}
	n, err := tokens.CountMessagesJSON(c.d.model, req.Messages)
	if err != nil {
		c.badRequest("invalid_value", "Invalid 'messages': %v.", err)
		return false
	}
	c.prompt = n
	return true
}

// countPrompt counts a completions prompt or an embeddings input: a string,
// an array of strings, an array of tokens or an array of token arrays. With
// texts set it also returns the inputs as text, token arrays as their
// numbers.
func (c *call) countPrompt(raw json.RawMessage, param string, texts *[]string) bool {
	var (
		many []string
		bat  [][]int
		err  error
	)
	// Decode by shape: a failed json.Unmarshal may leave its target half
	// filled, so trying one type after another is not safe.
	switch first, inner := jsonShape(raw); {
	case first == 0 || string(bytes.TrimSpace(raw)) == "null" || first == '[' && inner == ']':
		c.badRequest("missing_required_parameter", "Missing required parameter: '%s'.", param)
		return false
	case first == '"':
		many = make([]string, 1)
		err = json.Unmarshal(raw, &many[0])
	case first == '[' && inner == '"':
		err = json.Unmarshal(raw, &many)
	case first == '[' && inner == '[':
		err = json.Unmarshal(raw, &bat)
	case first == '[':
		bat = make([][]int, 1)
		err = json.Unmarshal(raw, &bat[0])
	default:
		err = errors.New("wrong type")
	}
	if err != nil {
		c.badRequest("invalid_type", "Invalid type for '%s': expected a string, an array of strings, "+
			"an array of tokens or an array of token arrays.", param)
		return false
	}
	if len(many)+len(bat) > 2048 {
		c.badRequest("invalid_value", "Invalid '%s': give at most 2048 inputs.", param)
		return false
	}
	for _, s := range many {
		c.prompt += tokens.Count(c.d.model, s)
		if texts != nil {
			*texts = append(*texts, s)
		}
	}
	for _, t := range bat {
		c.prompt += len(t)
		if texts != nil {
			var b []byte
			for i, v := range t {
				if i > 0 {
					b = append(b, ' ')
				}
				b = strconv.AppendInt(b, int64(v), 10)
			}
			*texts = append(*texts, string(b))
		}
	}
	return true
}

// jsonShape returns the first byte of the JSON value raw and, for an array,
// the first byte of its first element (']' when empty), skipping spaces.
func jsonShape(raw json.RawMessage) (first, inner byte) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return 0, 0
	}
	if t[0] == '[' {
		if rest := bytes.TrimSpace(t[1:]); len(rest) > 0 {
			inner = rest[0]
		}
	}
	return t[0], inner
}

// countResponsesInput counts a Responses API request's input and
// instructions, as chat messages: a string input is one user message, and
// the instructions one developer message.
func (c *call) countResponsesInput(req *apiRequest) bool {
	var text string
	if isEmptyJSON(req.Input) {
		c.badRequest("missing_required_parameter", "Missing required parameter: 'input'.")
		return false
	}
	var msgs []tokens.Message
	if req.Instructions != "" {
		msgs = append(msgs, tokens.Message{Role: "developer", Content: []string{req.Instructions}})
	}
	if json.Unmarshal(req.Input, &text) == nil {
		c.prompt = tokens.CountChat(c.d.model, append(msgs, tokens.Message{Role: "user", Content: []string{text}}))
		return true
	}
	n, err := tokens.CountMessagesJSON(c.d.model, req.Input)
	if err != nil {
		c.badRequest("invalid_value", "Invalid 'input': %v.", err)
		return false
	}
	n += responsesToolTokens(c.d.model, req.Input)
	if len(msgs) > 0 {
		n += tokens.CountChat(c.d.model, msgs) - tokens.CountChat(c.d.model, nil) // the reply is primed once
	}
	c.prompt = n
	return true
}

// isEmptyJSON reports whether raw is absent, null or an empty array.
func isEmptyJSON(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return true
	}
	return t[0] == '[' && len(bytes.TrimSpace(t[1:])) == 1
}

func cmpOrInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
