package simulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// validate reports whether the JSON document doc is valid against the JSON
// Schema schema, for the keywords the generator claims to honour: type,
// enum, const, properties, required, additionalProperties, items, minItems,
// maxItems, minLength, maxLength, format (the formats it generates),
// minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers and draft 4
// booleans), multipleOf, anyOf, oneOf, allOf and local $ref. It is written
// from the specification, apart from the generator, so that each checks the
// other.
func validate(schema, doc []byte) error {
	var s, v any
	if err := json.Unmarshal(schema, &s); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if err := json.Unmarshal(doc, &v); err != nil {
		return fmt.Errorf("document: %w", err)
	}
	vd := &validator{root: s}
	return vd.check(s, v, "$", 0)
}

type validator struct {
	root  any
	steps int
}

// errGaveUp is validate's answer for a schema too costly to check (anyOf
// and oneOf over recursive references branch exponentially).
var errGaveUp = errors.New("validation gave up")

func (vd *validator) check(s, v any, at string, depth int) error {
	if vd.steps++; vd.steps > 1e5 {
		return errGaveUp
	}
	if depth > 200 {
		return fmt.Errorf("%s: too deep", at)
	}
	switch s := s.(type) {
	case bool:
		if !s {
			return fmt.Errorf("%s: the schema false accepts nothing", at)
		}
		return nil
	case map[string]any:
		return vd.object(s, v, at, depth)
	}
	return fmt.Errorf("%s: a schema is an object or a boolean", at)
}

func (vd *validator) object(s map[string]any, v any, at string, depth int) error {
	if ref, ok := s["$ref"].(string); ok {
		t, err := resolvePointer(vd.root, ref)
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		if err := vd.check(t, v, at, depth+1); err != nil {
			return err
		}
	}
	if t, ok := s["type"]; ok {
		names, _ := t.([]any)
		if n, ok := t.(string); ok {
			names = []any{n}
		}
		match := false
		for _, n := range names {
			match = match || hasType(v, n.(string))
		}
		if !match {
			return fmt.Errorf("%s: %v is not of type %v", at, v, t)
		}
	}
	if e, ok := s["enum"].([]any); ok && !contains(e, v) {
		return fmt.Errorf("%s: %v is not in the enum %v", at, v, e)
	}
	if c, ok := s["const"]; ok && !reflect.DeepEqual(c, v) {
		return fmt.Errorf("%s: %v is not the const %v", at, v, c)
	}
	if bs, ok := s["anyOf"].([]any); ok {
		var errs []string
		for _, b := range bs {
			err := vd.check(b, v, at, depth+1)
			if err == nil {
				break
			}
			if errors.Is(err, errGaveUp) {
				return err
			}
			errs = append(errs, err.Error())
		}
		if len(errs) == len(bs) {
			return fmt.Errorf("%s: no branch of anyOf matches: %s", at, strings.Join(errs, "; "))
		}
	}
	if bs, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, b := range bs {
			err := vd.check(b, v, at, depth+1)
			if errors.Is(err, errGaveUp) {
				return err
			}
			if err == nil {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: %d branches of oneOf match", at, n)
		}
	}
	if bs, ok := s["allOf"].([]any); ok {
		for _, b := range bs {
			if err := vd.check(b, v, at, depth+1); err != nil {
				return err
			}
		}
	}
	switch v := v.(type) {
	case string:
		n := utf8.RuneCountInString(v)
		if m, ok := s["minLength"].(float64); ok && float64(n) < m {
			return fmt.Errorf("%s: %q is shorter than %v", at, v, m)
		}
		if m, ok := s["maxLength"].(float64); ok && float64(n) > m {
			return fmt.Errorf("%s: %q is longer than %v", at, v, m)
		}
		if f, ok := s["format"].(string); ok {
			if err := checkFormat(f, v); err != nil {
				return fmt.Errorf("%s: %w", at, err)
			}
		}
	case float64:
		return checkNumber(s, v, at)
	case []any:
		if m, ok := s["minItems"].(float64); ok && float64(len(v)) < m {
			return fmt.Errorf("%s: %d items, fewer than %v", at, len(v), m)
		}
		if m, ok := s["maxItems"].(float64); ok && float64(len(v)) > m {
			return fmt.Errorf("%s: %d items, more than %v", at, len(v), m)
		}
		if items, ok := s["items"]; ok {
			for i, e := range v {
				if err := vd.check(items, e, fmt.Sprintf("%s[%d]", at, i), depth+1); err != nil {
					return err
				}
			}
		}
	case map[string]any:
		if r, ok := s["required"].([]any); ok {
			for _, name := range r {
				if _, ok := v[name.(string)]; !ok {
					return fmt.Errorf("%s: required property %q is missing", at, name)
				}
			}
		}
		props, _ := s["properties"].(map[string]any)
		extra, hasExtra := s["additionalProperties"]
		for k, e := range v {
			ps, declared := props[k]
			switch {
			case declared:
				if err := vd.check(ps, e, at+"."+k, depth+1); err != nil {
					return err
				}
			case hasExtra:
				if err := vd.check(extra, e, at+"."+k, depth+1); err != nil {
					return fmt.Errorf("additional property: %w", err)
				}
			}
		}
	}
	return nil
}

func checkNumber(s map[string]any, v float64, at string) error {
	if m, ok := s["minimum"].(float64); ok {
		if x, _ := s["exclusiveMinimum"].(bool); x && v <= m || v < m {
			return fmt.Errorf("%s: %v is below the minimum %v", at, v, m)
		}
	}
	if m, ok := s["maximum"].(float64); ok {
		if x, _ := s["exclusiveMaximum"].(bool); x && v >= m || v > m {
			return fmt.Errorf("%s: %v is above the maximum %v", at, v, m)
		}
	}
	if m, ok := s["exclusiveMinimum"].(float64); ok && v <= m {
		return fmt.Errorf("%s: %v is not above %v", at, v, m)
	}
	if m, ok := s["exclusiveMaximum"].(float64); ok && v >= m {
		return fmt.Errorf("%s: %v is not below %v", at, v, m)
	}
	if m, ok := s["multipleOf"].(float64); ok {
		if q := v / m; q != math.Trunc(q) {
			return fmt.Errorf("%s: %v is not a multiple of %v", at, v, m)
		}
	}
	return nil
}

func hasType(v any, name string) bool {
	switch v := v.(type) {
	case string:
		return name == "string"
	case float64:
		return name == "number" || name == "integer" && v == math.Trunc(v)
	case bool:
		return name == "boolean"
	case nil:
		return name == "null"
	case []any:
		return name == "array"
	case map[string]any:
		return name == "object"
	}
	return false
}

func contains(vs []any, v any) bool {
	for _, e := range vs {
		if reflect.DeepEqual(e, v) {
			return true
		}
	}
	return false
}

var (
	durationRE   = regexp.MustCompile(`^P(\d+[YMWD])*(T(\d+[HMS])+)?$`)
	hostnameRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)
	formatUUIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

func checkFormat(f, v string) error {
	ok := true
	switch f {
	case "date-time":
		_, err := time.Parse(time.RFC3339, v)
		ok = err == nil
	case "date":
		_, err := time.Parse(time.DateOnly, v)
		ok = err == nil
	case "time":
		_, err := time.Parse("15:04:05Z07:00", v)
		ok = err == nil
	case "duration":
		ok = durationRE.MatchString(v) && v != "P"
	case "email", "idn-email":
		local, domain, found := strings.Cut(v, "@")
		ok = found && local != "" && hostnameRE.MatchString(domain)
	case "hostname", "idn-hostname":
		ok = hostnameRE.MatchString(v)
	case "ipv4":
		ip := net.ParseIP(v)
		ok = ip != nil && ip.To4() != nil && !strings.Contains(v, ":")
	case "ipv6":
		ok = net.ParseIP(v) != nil && strings.Contains(v, ":")
	case "uuid":
		ok = formatUUIDRE.MatchString(v)
	case "uri", "iri":
		u, err := url.Parse(v)
		ok = err == nil && u.Scheme != ""
	}
	if !ok {
		return fmt.Errorf("%q is not a %s", v, f)
	}
	return nil
}

// resolvePointer resolves a local $ref in the decoded root.
func resolvePointer(root any, ref string) (any, error) {
	frag, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, fmt.Errorf("not a local $ref: %q", ref)
	}
	if f, err := url.PathUnescape(frag); err == nil {
		frag = f
	}
	if frag == "" {
		return root, nil
	}
	v := root
	for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := v.(type) {
		case map[string]any:
			if v, ok = c[tok]; !ok {
				return nil, fmt.Errorf("$ref %q: no %q", ref, tok)
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("$ref %q: no item %q", ref, tok)
			}
			v = c[i]
		default:
			return nil, fmt.Errorf("$ref %q: cannot descend into %v", ref, v)
		}
	}
	return v, nil
}

// generate runs the generator on schema with seed.
func generate(schema string, seed uint64) ([]byte, bool) {
	g := newGenerator(rand.New(rand.NewPCG(seed, 1)), gjson.Parse(schema))
	return g.document(nil), g.exact
}

func TestGeneratorHonoursSchemas(t *testing.T) {
	for _, tc := range []struct {
		name, schema string
		exact        bool
	}{
		{"weather", `{"type":"object","properties":{"city":{"type":"string","description":"The city"},` +
			`"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false}`, true},
		{"every type", `{"type":"object","properties":{"s":{"type":"string"},"n":{"type":"number"},"i":{"type":"integer"},` +
			`"b":{"type":"boolean"},"z":{"type":"null"},"a":{"type":"array","items":{"type":"integer"}},"o":{"type":"object"}},` +
			`"required":["s","n","i","b","z","a","o"]}`, true},
		{"bounds", `{"type":"object","properties":{"age":{"type":"integer","minimum":18,"maximum":20},` +
			`"score":{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1},"step":{"type":"integer","multipleOf":7,"minimum":100},` +
			`"neg":{"type":"number","maximum":-1000.5},"old":{"type":"number","minimum":3,"exclusiveMinimum":true,"maximum":4}},` +
			`"required":["age","score","step","neg","old"]}`, true},
		{"lengths", `{"type":"object","properties":{"code":{"type":"string","minLength":40,"maxLength":41},` +
			`"tag":{"type":"string","maxLength":3},"list":{"type":"array","minItems":5,"maxItems":5,"items":{"type":"string","minLength":1}}},` +
			`"required":["code","tag","list"],"additionalProperties":false}`, true},
		{"formats", `{"type":"object","properties":{"when":{"type":"string","format":"date-time"},"day":{"type":"string","format":"date"},` +
			`"at":{"type":"string","format":"time"},"for":{"type":"string","format":"duration"},"mail":{"type":"string","format":"email"},` +
			`"host":{"type":"string","format":"hostname"},"v4":{"type":"string","format":"ipv4"},"v6":{"type":"string","format":"ipv6"},` +
			`"id":{"type":"string","format":"uuid"},"link":{"type":"string","format":"uri"}},` +
			`"required":["when","day","at","for","mail","host","v4","v6","id","link"]}`, true},
		{"nested", `{"type":"object","properties":{"order":{"type":"object","properties":{"lines":{"type":"array","minItems":1,` +
			`"items":{"type":"object","properties":{"sku":{"type":"string"},"qty":{"type":"integer","minimum":1}},"required":["sku","qty"],` +
			`"additionalProperties":false}}},"required":["lines"],"additionalProperties":false}},"required":["order"],"additionalProperties":false}`, true},
		{"nullable", `{"type":"object","properties":{"note":{"type":["string","null"]},"x":{"anyOf":[{"type":"integer"},{"type":"null"}]}},` +
			`"required":["note","x"]}`, true},
		{"const and enums of every kind", `{"type":"object","properties":{"k":{"const":"fixed"},"e":{"enum":[1,"two",null,true,{"a":[1]},[2]]},` +
			`"t":{"type":"integer","enum":["no",3,4.5]}},"required":["k","e","t"]}`, true},
		{"recursive $ref", `{"$defs":{"node":{"type":"object","properties":{"name":{"type":"string"},` +
			`"children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["name","children"],"additionalProperties":false}},` +
			`"type":"object","properties":{"root":{"$ref":"#/$defs/node"}},"required":["root"]}`, true},
		{"root $ref", `{"type":"object","properties":{"next":{"anyOf":[{"$ref":"#"},{"type":"null"}]}},"required":["next"]}`, true},
		{"allOf of one", `{"type":"object","properties":{"p":{"allOf":[{"type":"integer","maximum":-5}]}},"required":["p"]}`, true},
		{"required but not declared", `{"type":"object","required":["x"]}`, true},
		{"required, declared by additionalProperties", `{"type":"object","required":["x"],"additionalProperties":{"type":"boolean"}}`, true},
		{"empty", `{}`, true},
		{"no parameters", ``, true},
		{"pattern is not honoured", `{"type":"object","properties":{"p":{"type":"string","pattern":"^[0-9]+$"}},"required":["p"]}`, false},
		{"conflict", `{"type":"object","properties":{"p":{"type":"integer","minimum":5,"maximum":4}},"required":["p"]}`, false},
		{"required yet forbidden", `{"type":"object","required":["x"],"additionalProperties":false}`, false},
		{"false", `{"type":"object","properties":{"p":false},"required":["p"]}`, false},
		{"endless", `{"type":"object","properties":{"p":{"$ref":"#"}},"required":["p"]}`, false},
		{"missing $ref", `{"type":"object","properties":{"p":{"$ref":"#/$defs/nope"}},"required":["p"]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(20) {
				out, exact := generate(tc.schema, seed)
				if !json.Valid(out) {
					t.Fatalf("seed %d: not JSON: %s", seed, out)
				}
				if !strings.HasPrefix(string(out), "{") {
					t.Errorf("seed %d: want an object: %s", seed, out)
				}
				if exact != tc.exact {
					t.Errorf("seed %d: exact = %v; want %v: %s", seed, exact, tc.exact, out)
				}
				if exact && tc.schema != "" {
					if err := validate([]byte(tc.schema), out); err != nil {
						t.Errorf("seed %d: %v\n%s", seed, err, out)
					}
				}
			}
		})
	}
}

func TestGeneratorIsDeterministic(t *testing.T) {
	schema := `{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"number"},"c":{"type":"array"}}}`
	a, _ := generate(schema, 7)
	b, _ := generate(schema, 7)
	c, _ := generate(schema, 8)
	if string(a) != string(b) || string(a) == string(c) {
		t.Errorf("seed 7 twice gave %s and %s; seed 8 gave %s", a, b, c)
	}
}

func TestGeneratorKeepsPropertyOrder(t *testing.T) {
	out, _ := generate(`{"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"integer"},"mid":{"type":"integer"}},`+
		`"required":["mid","alpha","zeta"]}`, 1)
	if z, a, m := strings.Index(string(out), "zeta"), strings.Index(string(out), "alpha"), strings.Index(string(out), "mid"); z > a || a > m {
		t.Errorf("properties out of the schema's order: %s", out)
	}
}

func TestAppendNumberMatchesEncodingJSON(t *testing.T) {
	for _, v := range []float64{0, 1, -1, 0.5, 12.34, 1e20, 1e21, 1e-6, 1e-7, -3.25e-9, 123456789012345678, math.MaxFloat64} {
		want, _ := json.Marshal(v)
		if got := appendNumber(nil, v); string(got) != string(want) {
			t.Errorf("appendNumber(%v) = %s; want %s", v, got, want)
		}
	}
}

// FuzzGenerator feeds the generator any schema: it must not panic, must
// write JSON, and what it writes for a schema it claims to honour must be
// valid against it.
func FuzzGenerator(f *testing.F) {
	for _, s := range []string{
		`{"type":"object","properties":{"a":{"type":"string","minLength":3,"maxLength":5}},"required":["a"],"additionalProperties":false}`,
		`{"type":["integer","string"],"minimum":1e300,"exclusiveMaximum":1e301,"multipleOf":3}`,
		`{"type":"number","minimum":0.1,"maximum":0.1000000001}`,
		`{"type":"array","items":{"enum":[[1,{"b":null}],"x"]},"minItems":2}`,
		`{"anyOf":[{"$ref":"#/$defs/x"},{"type":"boolean"}],"$defs":{"x":{"type":"integer","maximum":-9007199254740993}}}`,
		`{"properties":{"a~1b":{"type":"null"}},"required":["a~1b"],"items":{"$ref":"#/properties/a~01b"}}`,
		`{"type":"integer","exclusiveMinimum":1.5,"exclusiveMaximum":2.5}`,
		`{"type":"string","format":"email","maxLength":4}`, `true`, `false`, `[]`, `{"type":"nope"}`, `{`,
	} {
		f.Add(s, uint64(1))
	}
	f.Fuzz(func(t *testing.T, schema string, seed uint64) {
		out, exact := generate(schema, seed)
		if !json.Valid(out) {
			t.Fatalf("not JSON: %s", out)
		}
		if !exact || !json.Valid([]byte(schema)) {
			return
		}
		var probe any
		if json.Unmarshal([]byte(schema), &probe) != nil {
			return // numbers beyond float64: the validator cannot read the schema
		}
		if err := validate([]byte(schema), out); err != nil && !errors.Is(err, errGaveUp) {
			t.Fatalf("%v\nschema %s\nwrote %s", err, schema, out)
		}
	})
}
