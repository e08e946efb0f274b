package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the configuration file at path and parses it with Parse.
// lookupEnv resolves ${NAME}; nil means os.LookupEnv.
func Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, lookupEnv)
}

// Parse decodes a configuration file strictly, expands ${NAME} in its values
// with lookupEnv (nil means os.LookupEnv), applies the defaults and validates
// the result. file names the data in error messages.
//
// On any problem Parse returns a nil Config and an Errors listing every
// problem it found, each as "FILE:LINE: field.path: what is wrong". When a
// value has the wrong type or a key is set twice, validation is skipped,
// because validating what that left behind would only add confusing errors.
// Parse never panics and never puts a secret into an error.
func Parse(file string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	root, errs := parseYAML(data)
	if errs != nil {
		return nil, finish(file, errs)
	}
	w := newWalker(lookupEnv)
	w.walk(root, reflect.TypeFor[Config](), "")
	if w.broken {
		return nil, w.finish(file, w.errs)
	}
	var c Config
	if err := decode(root, &c); err != nil {
		return nil, w.finish(file, append(w.errs, w.decodeErrors(err)...))
	}
	c.applyDefaults(w.present)
	all := w.errs
	for _, e := range c.validate() {
		if w.isFlagged(e.Path) {
			continue
		}
		e.Line = w.lineFor(e.Path)
		all = append(all, e)
	}
	if len(all) > 0 {
		return nil, w.finish(file, all)
	}
	return &c, nil
}

// finish hides the values that came from the environment, then names the
// file in every error and puts them in file order.
func (w *walker) finish(file string, errs Errors) error {
	hideEnvValues(errs, w.substituted)
	return finish(file, errs)
}

// finish names the file in every error and puts them in file order.
func finish(file string, errs Errors) error {
	for _, e := range errs {
		e.File = file
	}
	errs.sortByLine()
	return errs.err()
}

// parseYAML parses data as exactly one YAML document whose top level is a
// mapping, and returns that mapping.
func parseYAML(data []byte) (root *yaml.Node, errs Errors) {
	defer func() {
		if r := recover(); r != nil {
			root, errs = nil, Errors{{Msg: fmt.Sprintf("cannot parse YAML: %v", r)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{Msg: "the file is empty; want a mapping of sections (server, backends, pools, models, ...)"}}
		}
		return nil, Errors{withFlowHint(yamlError(err), data)}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || isNull(doc.Content[0]) {
		line := doc.Line
		if len(doc.Content) > 0 {
			line = doc.Content[0].Line
		}
		return nil, Errors{{Line: line, Msg: "the file is empty; want a mapping of sections (server, backends, pools, models, ...)"}}
	}
	root = doc.Content[0]
	if resolve(root).Kind != yaml.MappingNode {
		return nil, Errors{{Line: root.Line, Msg: "want a mapping of sections (server, backends, pools, models, ...), got " + shape(root)}}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, Errors{yamlError(err)}
	default:
		line := next.Line
		if len(next.Content) > 0 {
			line = next.Content[0].Line
		}
		return nil, Errors{{Line: line, Msg: "a second YAML document starts here; the file must hold exactly one"}}
	}
	return root, nil
}

// decode fills c from the checked node tree.
func decode(root *yaml.Node, c *Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot decode YAML: %v", r)
		}
	}()
	return root.Decode(c)
}

var (
	yamlLine  = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlValue = regexp.MustCompile("`[^`]*`")
)

// parserProblems are the syntax errors YAML's parser (as opposed to its
// scanner) reports. The parser gives a 0-based line, and none at all for the
// first line.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// yamlError turns a YAML error ("yaml: line 3: did not find expected key")
// into an Error with the 1-based line set.
func yamlError(err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{Msg: msg}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	}
	if parserProblems[e.Msg] {
		e.Line++
	} else if e.Line == 0 && scannerProblem(e.Msg) {
		e.Line = 1 // the scanner, too, leaves out line 1
	}
	return e
}

// scannerProblem reports whether msg is a syntax error from YAML's scanner;
// the reader's errors (bad UTF-8, control characters) carry no position.
func scannerProblem(msg string) bool {
	for _, p := range []string{"found ", "did not find ", "could not find ", "mapping ", "block sequence "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// withFlowHint explains the syntax error YAML gives for an unquoted ${NAME}
// inside { } or [ ], where braces end a plain value.
func withFlowHint(e *Error, data []byte) *Error {
	if strings.Contains(e.Msg, "did not find expected ','") && bytes.Contains(data, []byte("${")) {
		e.Msg += ` (inside { } or [ ], quote a value that uses ${NAME}: "${NAME}")`
	}
	return e
}

// decodeErrors places the errors of the final decode. The walker catches
// every error the decoder knows of, so this is a safety net.
func (w *walker) decodeErrors(err error) Errors {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return Errors{{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	var out Errors
	for _, m := range te.Errors {
		e := yamlError(errors.New(m))
		e.Msg = yamlValue.ReplaceAllString(e.Msg, "a value") // it may be a secret
		e.Path = w.pathAt(e.Line)
		out = append(out, e)
	}
	return out
}
