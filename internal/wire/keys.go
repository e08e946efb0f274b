package wire

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// The keys of a request body's objects must read the same to Sluice and to
// any backend. Go's encoding/json (and many decoders like it) matches object
// keys to fields under Unicode case folding and keeps the last of several
// matches, so {"model":"cheap","Model":"expensive"} is "cheap" to a reader
// that matches exactly and "expensive" to the backend. Sluice therefore
// refuses, in every object it reads, a key that folds to one of the object's
// known field names without being it, and two keys that fold to each other
// (duplicates included): what is left reads the same under every rule.

// A shape is the field names one kind of request object has, and the shapes
// of the values Sluice reads inside it: an object, or each object element of
// an array. Shapes list every field of the OpenAI and Azure OpenAI
// operations, not only those Sluice reads today: refusing "Temperature" costs
// nothing, and whatever reads it tomorrow is safe already.
type shape struct {
	fields map[string]bool
	inner  map[string]*shape
}

func newShape(fields ...string) *shape {
	s := &shape{fields: make(map[string]bool, len(fields)), inner: map[string]*shape{}}
	for _, f := range fields {
		s.fields[f] = true
	}
	return s
}

// requestShape is the top-level object of every operation's body, with the
// shapes below it.
var requestShape = func() *shape {
	request := newShape(
		"model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "max_output_tokens",
		"n", "best_of", "messages", "input", "prompt", "instructions", "suffix", "echo",
		"temperature", "top_p", "top_logprobs", "logprobs", "logit_bias", "frequency_penalty",
		"presence_penalty", "seed", "stop", "user", "metadata", "store", "tools", "tool_choice",
		"parallel_tool_calls", "functions", "function_call", "response_format", "text", "reasoning",
		"reasoning_effort", "modalities", "audio", "prediction", "service_tier", "web_search_options",
		"data_sources", "previous_response_id", "include", "truncation", "background", "conversation",
		"prompt_cache_key", "safety_identifier", "verbosity", "encoding_format", "dimensions", "max_tool_calls",
	)
	// A chat message, or an item of a Responses input.
	message := newShape(
		"role", "content", "name", "refusal", "tool_calls", "tool_call_id", "function_call", "audio",
		"type", "id", "status", "call_id", "output", "arguments", "summary",
	)
	// A part of a message's content.
	part := newShape(
		"type", "text", "refusal", "image_url", "input_audio", "file", "file_id", "detail", "annotations",
	)
	toolCall := newShape("id", "type", "function")
	function := newShape("name", "arguments")
	request.inner["messages"] = message
	request.inner["input"] = message
	request.inner["stream_options"] = newShape("include_usage", "include_obfuscation")
	message.inner["content"] = part
	message.inner["tool_calls"] = toolCall
	message.inner["function_call"] = function
	toolCall.inner["function"] = function
	return request
}()

// foldKey returns the key every spelling of k under Unicode simple case
// folding shares, as encoding/json's foldName does: each rune becomes the
// smallest of its fold orbit, and ASCII letters lower case; a rune whose
// upper or lower case is ASCII becomes that letter too. Keys already in
// that form, which real requests' are, come back as they are, unallocated.
func foldKey(k string) string {
	i := 0
	for ; i < len(k); i++ {
		c := k[i]
		if c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			break
		}
	}
	if i == len(k) {
		return k
	}
	var b strings.Builder
	b.Grow(len(k))
	b.WriteString(k[:i])
	for _, r := range k[i:] {
		if r < utf8.RuneSelf {
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		// The orbit's smallest member: ASCII when the orbit holds one (the
		// Kelvin sign folds to k, the long s to s), so it meets the names.
		small := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			small = min(small, f)
		}
		// Readers that compare upper- or lower-cased runes (.NET's
		// OrdinalIgnoreCase, which System.Text.Json uses) also take the
		// dotless ı for an i and the dotted İ for an I, though simple
		// folding keeps them apart.
		if u := unicode.ToUpper(r); u < utf8.RuneSelf {
			small = u
		}
		if l := unicode.ToLower(r); l < utf8.RuneSelf {
			small = l
		}
		if small < utf8.RuneSelf {
			small = unicode.ToLower(small)
		}
		b.WriteRune(small)
	}
	return b.String()
}

// keyChecker remembers the folded keys of one object. Its zero value is
// ready; it allocates only for an object of more than len(small) keys.
type keyChecker struct {
	small [16]string
	n     int
	set   map[string]struct{} // all the keys, once there are more than len(small)
}

// add reports whether a key folding to f was added before.
func (c *keyChecker) add(f string) bool {
	if c.set != nil {
		if _, dup := c.set[f]; dup {
			return true
		}
		c.set[f] = struct{}{}
		return false
	}
	for _, s := range c.small[:c.n] {
		if s == f {
			return true
		}
	}
	if c.n < len(c.small) {
		c.small[c.n] = f
		c.n++
		return false
	}
	c.set = make(map[string]struct{}, 4*len(c.small))
	for _, s := range c.small {
		c.set[s] = struct{}{}
	}
	c.set[f] = struct{}{}
	return false
}

// keyError is a key that reads differently to different JSON readers. Its
// path is built as the error travels up from the object that has the key,
// so that a body that passes costs no path strings.
type keyError struct {
	path []string // innermost first
	key  string
	fold string // the field it spells in another case; "" for a duplicate
}

func (e *keyError) Error() string {
	where := "the request body"
	if len(e.path) > 0 {
		var b strings.Builder
		for i := len(e.path) - 1; i >= 0; i-- {
			b.WriteString(e.path[i])
		}
		where = strings.TrimPrefix(b.String(), ".")
	}
	if e.fold == "" {
		return fmt.Sprintf("%s has the key %s more than once, or in two spellings that differ only in case: send it once",
			where, quoteShort(e.key))
	}
	return fmt.Sprintf("%s has the key %s, which differs only in case from %q: send %q",
		where, quoteShort(e.key), e.fold, e.fold)
}

func (e *keyError) Unwrap() error { return ErrBadRequest }

// in adds a step to the path of err, when it is a keyError.
func in(err error, step string) error {
	if ke, ok := err.(*keyError); ok {
		ke.path = append(ke.path, step)
	}
	return err
}

// check refuses key when it is a case variant of a field of s, or folds to a
// key the object had before.
func (c *keyChecker) check(s *shape, key string) error {
	f := foldKey(key)
	if c.add(f) {
		return &keyError{key: key}
	}
	if f != key && s.fields[f] {
		return &keyError{key: key, fold: f}
	}
	return nil
}

// checkValue checks the keys of v, an object of shape s or an array of
// them (other elements are skipped: an input may mix strings and items).
func checkValue(v gjson.Result, s *shape) error {
	switch {
	case v.IsObject():
		return checkObject(v, s)
	case v.IsArray():
		var err error
		i := 0
		v.ForEach(func(_, e gjson.Result) bool {
			if e.IsObject() {
				if err = checkObject(e, s); err != nil {
					err = in(err, "["+strconv.Itoa(i)+"]")
				}
			}
			i++
			return err == nil
		})
		return err
	}
	return nil
}

// checkObject checks the keys of one object of shape s and of the objects
// inside it that s says Sluice reads.
func checkObject(obj gjson.Result, s *shape) error {
	var c keyChecker
	var err error
	obj.ForEach(func(k, v gjson.Result) bool {
		if err = c.check(s, k.Str); err != nil {
			return false
		}
		if inner := s.inner[k.Str]; inner != nil {
			if err = checkValue(v, inner); err != nil {
				err = in(err, "."+k.Str)
			}
		}
		return err == nil
	})
	return err
}

// maxEchoed bounds how much of a client's string an error repeats.
const maxEchoed = 64

// quoteShort quotes s for an error message, cut to its first maxEchoed
// bytes (on a rune boundary) and marked when cut.
func quoteShort(s string) string {
	if len(s) <= maxEchoed {
		return fmt.Sprintf("%q", s)
	}
	cut := maxEchoed
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}
