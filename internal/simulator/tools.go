package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sluice-gateway/sluice/internal/tokens"
	"github.com/tidwall/gjson"
)

// toolUse is what a chat or Responses request asks of function tools and of
// the format of its output, read before admission. The zero toolUse offers
// no function and asks for text.
type toolUse struct {
	functions []function // the function tools that may be called, in the request's order
	choice    choice
	named     string // the function tool_choice names, with choiceNamed
	parallel  bool   // parallel_tool_calls: more than one call may be made
	format    outputFormat

	// What the conversation says, read only when there are functions.
	afterResults bool   // it ends with tool results
	lastUser     string // the text of the last user message
}

// choice is a request's tool_choice.
type choice uint8

const (
	choiceNone choice = iota
	choiceAuto
	choiceRequired
	choiceNamed
)

// function is one function tool.
type function struct {
	name   string
	desc   string
	params gjson.Result // the parameters' JSON Schema; absent when none
}

// outputFormat is a request's response_format (chat) or text.format
// (Responses).
type outputFormat struct {
	json   bool         // a JSON object, not text
	schema gjson.Result // the JSON Schema it must follow; absent for json_object
}

// maxTools is the most tools OpenAI accepts in one request.
const maxTools = 128

// readTools reads the request's tools, tool_choice, parallel_tool_calls and
// output format, answering 400 as OpenAI does for what it would refuse, and
// adds the tools' definitions to the prompt tokens.
func (c *call) readTools(req *apiRequest) (toolUse, bool) {
	u := toolUse{parallel: req.ParallelToolCalls == nil || *req.ParallelToolCalls}
	responses := c.route.op == opResponses
	if !c.readFunctions(req, &u, responses) || !c.readChoice(req, &u, responses) || !c.readFormat(req, &u, responses) {
		return u, false
	}
	if len(u.functions) > 0 {
		c.prompt += toolTokens(c.d.model, u.functions)
		if responses {
			u.lastUser, u.afterResults = responsesConversation(req.Input)
		} else {
			u.lastUser, u.afterResults = chatConversation(req.Messages)
		}
	}
	return u, true
}

func (c *call) readFunctions(req *apiRequest, u *toolUse, responses bool) bool {
	if isNull(req.Tools) {
		return true
	}
	tools := gjson.ParseBytes(req.Tools)
	if !tools.IsArray() {
		c.badRequest("invalid_type", "Invalid type for 'tools': expected an array, but got %s instead.", jsonType(tools))
		return false
	}
	all := tools.Array()
	switch {
	case len(all) == 0 && !responses:
		c.badRequest("empty_array", "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.")
		return false
	case len(all) > maxTools:
		c.badRequest("array_above_max_length", "Invalid 'tools': array too long. Expected an array with maximum length %d, "+
			"but got an array with length %d instead.", maxTools, len(all))
		return false
	}
	for i, t := range all {
		at := fmt.Sprintf("tools[%d]", i)
		if !t.IsObject() {
			c.badRequest("invalid_type", "Invalid type for '%s': expected an object, but got %s instead.", at, jsonType(t))
			return false
		}
		typ := t.Get("type")
		if typ.Str != "function" {
			if !responses && typ.Str != "custom" {
				c.badRequest("invalid_value", "Invalid value: '%s'. Supported values are: 'function' and 'custom'.", typ.Str)
				return false
			}
			continue // custom and built-in tools: never called here
		}
		f := t
		if !responses {
			at += ".function"
			if f = t.Get("function"); !f.IsObject() {
				c.badRequest("missing_required_parameter", "Missing required parameter: '%s'.", at)
				return false
			}
		}
		name := f.Get("name")
		if name.Type != gjson.String {
			c.badRequest("missing_required_parameter", "Missing required parameter: '%s.name'.", at)
			return false
		}
		if !validName(name.Str) {
			c.badRequest("invalid_value", "Invalid '%s.name': string does not match pattern. "+
				"Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.", at)
			return false
		}
		params := f.Get("parameters")
		if params.Exists() && params.Type != gjson.Null && !params.IsObject() {
			c.badRequest("invalid_type", "Invalid type for '%s.parameters': expected an object, but got %s instead.", at, jsonType(params))
			return false
		}
		if params.Type == gjson.Null {
			params = gjson.Result{}
		}
		u.functions = append(u.functions, function{name: name.Str, desc: f.Get("description").Str, params: params})
	}
	return true
}

// validName reports whether a function name is one OpenAI accepts.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// readChoice reads tool_choice: "none", "auto", "required", a named
// function, or allowed_tools, which narrows the functions and gives the mode.
// Without it the choice is auto when there are tools, as in OpenAI's API.
func (c *call) readChoice(req *apiRequest, u *toolUse, responses bool) bool {
	u.choice = choiceNone
	if len(u.functions) > 0 {
		u.choice = choiceAuto
	}
	if isNull(req.ToolChoice) {
		return true
	}
	v := gjson.ParseBytes(req.ToolChoice)
	mode := v.Str
	switch {
	case v.Type == gjson.String:
	case v.IsObject() && v.Get("type").Str == "function":
		name := v.Get("name")
		if !responses {
			name = v.Get("function.name")
		}
		if name.Type != gjson.String {
			at := "tool_choice.function.name"
			if responses {
				at = "tool_choice.name"
			}
			c.badRequest("missing_required_parameter", "Missing required parameter: '%s'.", at)
			return false
		}
		if !u.offers(name.Str) {
			c.badRequest("invalid_value", "Invalid value for 'tool_choice': function '%s' is not among the 'tools'.", name.Str)
			return false
		}
		u.choice, u.named = choiceNamed, name.Str
		return true
	case v.IsObject() && v.Get("type").Str == "allowed_tools":
		allowed := v
		if !responses {
			allowed = v.Get("allowed_tools")
		}
		mode = allowed.Get("mode").Str
		var keep []function
		allowed.Get("tools").ForEach(func(_, t gjson.Result) bool {
			name := t.Get("name")
			if !responses {
				name = t.Get("function.name")
			}
			for _, f := range u.functions {
				if t.Get("type").Str == "function" && f.name == name.Str {
					keep = append(keep, f)
				}
			}
			return true
		})
		u.functions = keep
	case v.IsObject():
		// A built-in or custom tool: not simulated, so no call is made.
		u.choice = choiceNone
		return true
	default:
		c.badRequest("invalid_type", "Invalid type for 'tool_choice': expected a string or an object, but got %s instead.", jsonType(v))
		return false
	}
	switch mode {
	case "none":
		u.choice = choiceNone
	case "auto":
	case "required":
		if isNull(req.Tools) {
			c.badRequest("invalid_value", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.")
			return false
		}
		u.choice = choiceRequired
	default:
		c.badRequest("invalid_value", "Invalid value: '%s'. Supported values are: 'none', 'auto', and 'required'.", mode)
		return false
	}
	if len(u.functions) == 0 {
		u.choice = choiceNone
	}
	return true
}

func (u *toolUse) offers(name string) bool {
	for _, f := range u.functions {
		if f.name == name {
			return true
		}
	}
	return false
}

// readFormat reads response_format (chat) or text.format (Responses):
// text, json_object or json_schema. JSON mode needs the word "json"
// somewhere in the conversation, as OpenAI requires.
func (c *call) readFormat(req *apiRequest, u *toolUse, responses bool) bool {
	param, raw := "response_format", req.ResponseFormat
	if responses {
		param, raw = "text.format", nil
		if t := gjson.ParseBytes(req.Text); t.IsObject() {
			if f := t.Get("format"); f.Exists() {
				raw = []byte(f.Raw)
			}
		}
	}
	if isNull(raw) {
		return true
	}
	f := gjson.ParseBytes(raw)
	if !f.IsObject() {
		c.badRequest("invalid_type", "Invalid type for '%s': expected an object, but got %s instead.", param, jsonType(f))
		return false
	}
	switch typ := f.Get("type").Str; typ {
	case "text":
		return true
	case "json_object":
		if !mentionsJSON(req.Messages) && !mentionsJSON(req.Input) && !strings.Contains(strings.ToLower(req.Instructions), "json") {
			what := "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."
			if responses {
				what = "Response input messages must contain the word 'json' in some form to use 'text.format' of type 'json_object'."
			}
			c.badRequest("invalid_value", "%s", what)
			return false
		}
		u.format.json = true
	case "json_schema":
		s := f
		if !responses {
			if s = f.Get("json_schema"); !s.IsObject() {
				c.badRequest("missing_required_parameter", "Missing required parameter: '%s.json_schema'.", param)
				return false
			}
		}
		if s.Get("name").Type != gjson.String {
			at := param + ".name"
			if !responses {
				at = param + ".json_schema.name"
			}
			c.badRequest("missing_required_parameter", "Missing required parameter: '%s'.", at)
			return false
		}
		schema := s.Get("schema")
		if schema.Exists() && !schema.IsObject() {
			c.badRequest("invalid_type", "Invalid type for '%s': expected an object, but got %s instead.", param+".schema", jsonType(schema))
			return false
		}
		u.format = outputFormat{json: true, schema: schema}
	default:
		c.badRequest("invalid_value", "Invalid value: '%s'. Supported values are: 'text', 'json_object', and 'json_schema'.", typ)
		return false
	}
	return true
}

// mentionsJSON reports whether the word json appears, in any case, in a
// request's messages or input.
func mentionsJSON(raw json.RawMessage) bool {
	for i := 0; i+4 <= len(raw); i++ {
		if raw[i]|0x20 == 'j' && raw[i+1]|0x20 == 's' && raw[i+2]|0x20 == 'o' && raw[i+3]|0x20 == 'n' {
			return true
		}
	}
	return false
}

// isNull reports whether raw is absent or null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// jsonType names a JSON value's type as OpenAI's errors do.
func jsonType(v gjson.Result) string {
	switch v.Type {
	case gjson.String:
		return "a string"
	case gjson.Number:
		return "a number"
	case gjson.True, gjson.False:
		return "a boolean"
	case gjson.Null:
		return "null"
	}
	if v.IsArray() {
		return "an array"
	}
	return "an object"
}

// toolTokens approximates what function definitions add to a prompt, with
// the formula of OpenAI's cookbook that the gateway's admission counts with
// too (tokens.CountTools).
func toolTokens(model string, fs []function) int {
	defs := make([]tokens.ToolDef, len(fs))
	for i, f := range fs {
		defs[i] = tokens.ToolDef{Name: f.name, Description: f.desc, Parameters: []byte(f.params.Raw)}
	}
	return tokens.EncodingFor(model).CountTools(defs)
}

// chatConversation returns the text of the last user message of a chat
// request and whether the messages end with tool results.
func chatConversation(messages json.RawMessage) (lastUser string, afterResults bool) {
	last := ""
	gjson.ParseBytes(messages).ForEach(func(_, m gjson.Result) bool {
		last = m.Get("role").Str
		if last == "user" {
			lastUser = contentText(m.Get("content"))
		}
		return true
	})
	return lastUser, last == "tool" || last == "function"
}

// responsesConversation is chatConversation for a Responses API input: a
// string is one user message, and function_call_output items are tool
// results.
func responsesConversation(input json.RawMessage) (lastUser string, afterResults bool) {
	in := gjson.ParseBytes(input)
	if in.Type == gjson.String {
		return in.Str, false
	}
	in.ForEach(func(_, item gjson.Result) bool {
		afterResults = item.Get("type").Str == "function_call_output"
		if item.Get("role").Str == "user" {
			lastUser = contentText(item.Get("content"))
		}
		return true
	})
	return lastUser, afterResults
}

// contentText joins a message's text: a string, or the text of its parts.
func contentText(v gjson.Result) string {
	if v.Type == gjson.String {
		return v.Str
	}
	var b strings.Builder
	v.ForEach(func(_, p gjson.Result) bool {
		if t := p.Get("text"); t.Type == gjson.String {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(t.Str)
		}
		return true
	})
	return b.String()
}

// responsesToolTokens counts what the Responses API input items that carry
// tool traffic cost beyond what tokens.CountMessagesJSON counts of them, as
// the gateway's admission counts them (tokens.CountToolItems).
func responsesToolTokens(model string, input json.RawMessage) int {
	return tokens.EncodingFor(model).CountToolItems(gjson.ParseBytes(input))
}

// calls returns the functions the simulated model calls, by the rule the
// package documents: the named function; with required, the functions the
// last user message mentions or else the first; with auto, the functions it
// mentions unless the conversation ends with tool results. Without
// parallel_tool_calls at most one.
func (u *toolUse) calls() []function {
	var out []function
	switch u.choice {
	case choiceNone:
		return nil
	case choiceNamed:
		for _, f := range u.functions {
			if f.name == u.named {
				return []function{f}
			}
		}
		return nil
	case choiceAuto:
		if u.afterResults {
			return nil
		}
		out = u.mentioned()
	case choiceRequired:
		if out = u.mentioned(); len(out) == 0 {
			out = u.functions[:1]
		}
	}
	if !u.parallel && len(out) > 1 {
		out = out[:1]
	}
	return out
}

func (u *toolUse) mentioned() []function {
	if u.lastUser == "" {
		return nil
	}
	text := strings.ToLower(u.lastUser)
	var out []function
	for _, f := range u.functions {
		if mentions(text, f.name) {
			out = append(out, f)
		}
	}
	return out
}

// mentions reports whether text, in lower case, mentions the function name:
// contains the name, or as a whole word one of the name's words of four
// letters or more, the name split at '_', '-' and where a lower-case letter
// meets a capital ("get_weather" and "getWeather" both have "weather").
func mentions(text, name string) bool {
	if strings.Contains(text, strings.ToLower(name)) {
		return true
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		boundary := i == len(name) || name[i] == '_' || name[i] == '-' ||
			i > 0 && name[i-1] >= 'a' && name[i-1] <= 'z' && name[i] >= 'A' && name[i] <= 'Z'
		if !boundary {
			continue
		}
		if w := strings.ToLower(name[start:i]); len(w) >= 4 && hasWord(text, w) {
			return true
		}
		start = i
		if i < len(name) && (name[i] == '_' || name[i] == '-') {
			start = i + 1
		}
	}
	return false
}

// hasWord reports whether w occurs in text between non-letters.
func hasWord(text, w string) bool {
	for off := 0; ; {
		i := strings.Index(text[off:], w)
		if i < 0 {
			return false
		}
		i += off
		before, _ := utf8.DecodeLastRuneInString(text[:i])
		after, _ := utf8.DecodeRuneInString(text[i+len(w):])
		if !isWordRune(before) && !isWordRune(after) {
			return true
		}
		off = i + 1
	}
}

func isWordRune(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r))
}
