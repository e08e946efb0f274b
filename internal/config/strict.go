package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/sluice-gateway/sluice/internal/secret"
	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the walk, so that a file whose aliases expand into an
// enormous tree is refused instead of exhausting memory.
const maxNodes = 1_000_000

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	secretType      = reflect.TypeFor[secret.Value]()
	durationType    = reflect.TypeFor[Duration]()
)

// walker checks a YAML node tree against the Go types it will be decoded
// into, before it is decoded: unknown and duplicate fields, values of the
// wrong shape or type, and ${NAME} expansion of scalar values. It records the
// line of every field path it sees, so that later validation errors can be
// placed. A walker is used once and is not safe for concurrent use.
type walker struct {
	lookupEnv func(string) (string, bool)
	// substituted holds the value of each variable expanded, so that no
	// error shows it.
	substituted map[string]string

	errs Errors
	// broken is set by a problem that makes the decoded Config unreliable
	// (a value of the wrong type, a duplicate key); validation is then skipped.
	broken bool
	// flagged are the paths of problems; validation errors at or under them
	// would only repeat the problem and are dropped.
	flagged map[string]bool

	lines   map[string]int        // field path -> line of its key or element
	nodes   map[string]*yaml.Node // field path -> value node
	parents map[string]string     // field path -> the path it is in
	byLine  map[int]string        // line -> deepest path on it; built on demand
	// expanded are the scalars already expanded, with whether their value
	// came from the environment; an anchored scalar is expanded only once.
	expanded map[*yaml.Node]bool
	active   map[*yaml.Node]bool // alias targets being walked, to stop cycles
	visits   int
}

func newWalker(lookupEnv func(string) (string, bool)) *walker {
	w := &walker{
		substituted: map[string]string{},
		flagged:     map[string]bool{},
		lines:       map[string]int{},
		parents:     map[string]string{},
		nodes:       map[string]*yaml.Node{},
		expanded:    map[*yaml.Node]bool{},
		active:      map[*yaml.Node]bool{},
	}
	w.lookupEnv = func(name string) (string, bool) {
		v, ok := lookupEnv(name)
		if ok {
			w.substituted[name] = v
		}
		return v, ok
	}
	return w
}

// fail records a problem at path. broken says whether it leaves the decoded
// Config unreliable.
func (w *walker) fail(line int, path string, broken bool, format string, args ...any) {
	w.errs = append(w.errs, &Error{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
	w.flagged[path] = true
	w.broken = w.broken || broken
}

// present reports whether the file sets path to something other than null.
func (w *walker) present(path string) bool {
	n := w.nodes[path]
	return n != nil && !isNull(n)
}

// record notes that path, inside parent, starts on line.
func (w *walker) record(path, parent string, line int) {
	w.lines[path] = line
	w.parents[path] = parent
}

// up returns the path that path is in. A recorded path knows its parent
// exactly, even under a map key such as gpt-4.1; others are cut at the last
// . or [.
func (w *walker) up(path string) string {
	if p, ok := w.parents[path]; ok {
		return p
	}
	return parent(path)
}

// lineFor returns the line of path, or of its nearest ancestor in the file.
func (w *walker) lineFor(path string) int {
	for p := path; p != ""; p = w.up(p) {
		if l, ok := w.lines[p]; ok {
			return l
		}
	}
	return 0
}

// isFlagged reports whether path is at or under a path with a problem.
func (w *walker) isFlagged(path string) bool {
	for p := path; ; p = w.up(p) {
		if w.flagged[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// pathAt returns the deepest recorded path on line, for errors that carry
// only a line.
func (w *walker) pathAt(line int) string {
	if w.byLine == nil {
		w.byLine = map[int]string{}
		for p, l := range w.lines {
			if best, ok := w.byLine[l]; !ok || len(p) > len(best) || len(p) == len(best) && p < best {
				w.byLine[l] = p
			}
		}
	}
	return w.byLine[line]
}

// walk checks n against t. path is n's field path; "" for the whole file.
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	w.visits++
	if w.visits > maxNodes {
		if w.visits == maxNodes+1 {
			w.fail(n.Line, "", true, "the file has more than %d values once aliases are expanded", maxNodes)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		target := n.Alias
		if w.active[target] {
			w.fail(n.Line, path, true, "alias *%s refers to a value that contains it", n.Value)
			return
		}
		w.active[target] = true
		defer delete(w.active, target)
		n = target
	}
	if n.Anchor != "" {
		// An alias inside this node that points back to it is a cycle.
		w.active[n] = true
		defer delete(w.active, n)
	}
	if path != "" {
		w.nodes[path] = n
	}
	if isNull(n) {
		return // null leaves the zero value, as if the field were absent
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case reflect.PointerTo(t).Implements(unmarshalerType):
		w.scalar(n, t, path)
	case t.Kind() == reflect.Struct:
		w.structure(n, t, path)
	case t.Kind() == reflect.Map:
		w.dictionary(n, t, path)
	case t.Kind() == reflect.Slice:
		w.list(n, t, path)
	default:
		w.scalar(n, t, path)
	}
}

// structure checks a mapping whose keys are the yaml names of t's fields.
func (w *walker) structure(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		w.fail(n.Line, path, true, "want a mapping of fields, got %s", shape(n))
		return
	}
	fields := yamlFields(t)
	w.eachPair(n, path, "field", func(k, v *yaml.Node, name string) {
		p := field(path, name)
		ft, ok := fields.types[name]
		if !ok {
			w.fail(k.Line, p, false, "unknown field (known: %s)", strings.Join(fields.names, ", "))
			return
		}
		w.record(p, path, k.Line)
		w.walk(v, ft, p)
	})
}

// dictionary checks a mapping from names to values of t's element type.
func (w *walker) dictionary(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		w.fail(n.Line, path, true, "want a mapping of names to values, got %s", shape(n))
		return
	}
	w.eachPair(n, path, "key", func(k, v *yaml.Node, name string) {
		p := key(path, name)
		w.record(p, path, k.Line)
		w.walk(v, t.Elem(), p)
	})
}

// list checks a sequence of values of t's element type.
func (w *walker) list(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.SequenceNode {
		w.fail(n.Line, path, true, "want a list, got %s", shape(n))
		return
	}
	for i, e := range n.Content {
		p := index(path, i)
		w.record(p, path, e.Line)
		w.walk(e, t.Elem(), p)
	}
}

// eachPair calls f for every key of mapping n and its value, once per name:
// explicit keys first, then keys brought in by merge keys (<<: *anchor) that
// no explicit key overrides, as the YAML decoder does. A name set twice
// explicitly is an error; what names the keys (field or key) goes into it.
func (w *walker) eachPair(n *yaml.Node, path, what string, f func(k, v *yaml.Node, name string)) {
	explicit, merged := w.pairs(n, path)
	seen := map[string]int{}
	for i := 0; i < len(explicit); i += 2 {
		k, v := explicit[i], explicit[i+1]
		if k.Kind != yaml.ScalarNode {
			w.fail(k.Line, path, true, "want a name as %s, got %s", what, shape(k))
			continue
		}
		name := keyName(k)
		if first, dup := seen[name]; dup {
			w.fail(k.Line, key(path, name), true, "duplicate %s; first set at line %d", what, first)
			continue
		}
		seen[name] = k.Line
		f(k, v, name)
	}
	for i := 0; i < len(merged); i += 2 {
		k, v := merged[i], merged[i+1]
		if k.Kind != yaml.ScalarNode {
			w.fail(k.Line, path, true, "want a name as %s, got %s", what, shape(k))
			continue
		}
		name := keyName(k)
		if _, dup := seen[name]; dup {
			continue // overridden by an explicit key or an earlier merge
		}
		seen[name] = k.Line
		f(k, v, name)
	}
}

// pairs returns the keys and values of mapping n, alternating, split into
// explicit ones and those merged in by << keys.
func (w *walker) pairs(n *yaml.Node, path string) (explicit, merged []*yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!merge" {
			explicit = append(explicit, k, v)
			continue
		}
		sources := []*yaml.Node{v}
		if resolve(v).Kind == yaml.SequenceNode {
			sources = resolve(v).Content
		}
		for _, s := range sources {
			w.visits++
			target := resolve(s)
			if target.Kind != yaml.MappingNode || w.active[target] || w.visits > maxNodes {
				w.fail(k.Line, path, true, "a merge key (<<) needs a mapping or a list of mappings that does not contain it")
				continue
			}
			w.active[target] = true
			e, m := w.pairs(target, path)
			delete(w.active, target)
			merged = append(merged, e...)
			merged = append(merged, m...)
		}
	}
	return explicit, merged
}

// scalar checks a single value of type t, after expanding ${NAME} in it.
func (w *walker) scalar(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		w.fail(n.Line, path, true, "want %s, got %s", describe(t), shape(n))
		return
	}
	fromEnv := w.expand(n, t, path)
	if fits(n, t) {
		return
	}
	msg := "want " + describe(t)
	switch {
	case t == secretType:
	case fromEnv:
		msg += " (the value comes from the environment)"
	default:
		msg += ", got " + quote(n.Value)
	}
	w.fail(n.Line, path, true, "%s", msg)
}

// expand replaces ${NAME} in a scalar value once, reports every variable that
// is not set, and returns whether the value came from the environment. A
// value built from the environment for a number, bool or duration field gets
// its YAML type resolved again from the expanded text, even when quoted:
// "${PORT}" was a string when the file was parsed, and inside a flow mapping
// it must be quoted. A value for a string field stays a string, whatever it
// looks like, and an explicit tag (!!str) is always kept.
func (w *walker) expand(n *yaml.Node, t reflect.Type, path string) bool {
	if fromEnv, done := w.expanded[n]; done {
		return fromEnv
	}
	out, used, missing := expandEnv(n.Value, w.lookupEnv)
	for _, name := range missing {
		w.fail(n.Line, path, false, "environment variable %s is not set", name)
	}
	n.Value = out
	if used && out != "" && n.Style&yaml.TaggedStyle == 0 && t.Kind() != reflect.String && t != secretType {
		n.Tag, n.Style = "", 0
	}
	fromEnv := used || len(missing) > 0
	w.expanded[n] = fromEnv
	return fromEnv
}

// fits reports whether scalar n decodes into t without loss: YAML would
// otherwise turn 1.5 into the integer 1.
func fits(n *yaml.Node, t reflect.Type) bool {
	tag := n.ShortTag()
	switch {
	case reflect.PointerTo(t).Implements(unmarshalerType), t.Kind() == reflect.String:
	case t.Kind() == reflect.Bool:
		if tag != "!!bool" {
			return false
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		if tag != "!!int" {
			return false
		}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		if tag != "!!int" && tag != "!!float" {
			return false
		}
	}
	return n.Decode(reflect.New(t).Interface()) == nil
}

// describe says in words what a value of type t looks like.
func describe(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 90s, 5m or 1h"
	case t == secretType || t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Map:
		return "a mapping"
	}
	return "a " + t.String()
}

// shape names the kind of a node for error messages.
func shape(n *yaml.Node) string {
	switch resolve(n).Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

// resolve follows an alias to its anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// isNull reports whether n is YAML null (~, null or nothing).
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// keyName is the name a mapping key stands for; a null key is "".
func keyName(k *yaml.Node) string {
	if isNull(k) {
		return ""
	}
	return k.Value
}

// quote quotes a value for an error message. Parse replaces values that came
// from the environment by their ${NAME} afterwards, so only text from the
// file itself is shown.
func quote(s string) string {
	return strconv.Quote(s)
}

// fieldSet is the yaml view of a struct type: its field names in declaration
// order and their types.
type fieldSet struct {
	names []string
	types map[string]reflect.Type
}

// yamlFields returns the yaml names of t's exported fields, following
// ",inline" the way the decoder does.
func yamlFields(t reflect.Type) fieldSet {
	fs := fieldSet{types: map[string]reflect.Type{}}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			inner := yamlFields(f.Type)
			fs.names = append(fs.names, inner.names...)
			for n, ft := range inner.types {
				fs.types[n] = ft
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs.names = append(fs.names, name)
		fs.types[name] = f.Type
	}
	return fs
}
