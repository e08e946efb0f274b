package config

import (
	"sort"
	"strconv"
	"strings"
)

// Error is one problem in a configuration: where it is and what is wrong.
// Msg never contains a secret.
type Error struct {
	// File is the name of the configuration file; empty when the Config was
	// not read from a file.
	File string
	// Line is the 1-based line in File; 0 when unknown.
	Line int
	// Path is the field, such as backends[1].circuit_breaker.status_codes[0];
	// empty when the problem concerns the whole file.
	Path string
	// Msg says what is wrong.
	Msg string
}

// Error returns "FILE:LINE: path: msg", leaving out the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a configuration. Parse and Validate return
// it as their error, never empty.
type Errors []*Error

// Error returns one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, so that errors.As finds an *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// err returns es as an error, or nil when es is empty; it keeps a nil Errors
// from becoming a non-nil error.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// sortByLine puts the problems in file order, keeping the order of problems
// on the same line.
func (es Errors) sortByLine() {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
}

// Field paths are written the way a user reads them in the file:
// backends[1].auth.api_key, models.gpt-4o. The strict decoder and the
// validator build them with the same three functions so that a validation
// error finds its line.

// field is the path of a struct field or of a top-level section.
func field(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// index is the path of a list element.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// key is the path of a map entry. An empty key is written "" so that it
// stays visible.
func key(path, k string) string {
	if k == "" {
		return path + `.""`
	}
	return path + "." + k
}

// parent returns the path one level up, or "" at the top.
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
