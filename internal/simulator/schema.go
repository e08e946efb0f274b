package simulator

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// Tool-call arguments and JSON content are generated from the JSON Schema the
// request gives (a function's parameters, a response format's schema): a
// schema is compiled into a tree of schemaNodes once, then walked with the
// request's random source. The generator honours type (one or several),
// enum, const, properties, required, additionalProperties, items, minItems,
// maxItems, minLength, maxLength, format (date-time, date, time, duration,
// email, hostname, ipv4, ipv6, uuid, uri), minimum, maximum,
// exclusiveMinimum, exclusiveMaximum, multipleOf, anyOf, a one-branch allOf
// and local $refs ("#", "#/$defs/...", any JSON pointer), recursive ones
// included; a value it generates from those alone is valid against the
// schema. Any other assertion (pattern, oneOf, not, uniqueItems, ...) is not
// honoured, and the generator says so (generator.exact), though what it
// writes is still JSON.

// typeSet is a set of JSON Schema types; the empty set is any type.
type typeSet uint8

const (
	tString typeSet = 1 << iota
	tNumber
	tInteger
	tBoolean
	tNull
	tArray
	tObject
)

var typeNames = map[string]typeSet{
	"string": tString, "number": tNumber, "integer": tInteger, "boolean": tBoolean,
	"null": tNull, "array": tArray, "object": tObject,
}

// schemaNode is one compiled schema, made by compileSchema (a bare
// schemaNode would limit arrays and strings to zero length).
type schemaNode struct {
	never       bool // the schema false: nothing is valid
	unsupported bool // a keyword or value the generator does not honour
	asserts     bool // assertions besides anyOf, allOf and $ref, which then apply too
	shape       bool // assertions besides type, enum and const

	types typeSet

	enum    []gjson.Result // const is a one-value enum
	hasEnum bool

	props    []schemaProp
	required []string
	noExtra  bool        // additionalProperties: false
	extra    *schemaNode // additionalProperties as a schema; nil when absent or true

	items    *schemaNode // nil: any
	minItems int
	maxItems int // -1: none

	minLength int
	maxLength int // -1: none
	format    string

	minimum, maximum         float64
	hasMin, hasMax           bool
	minExclFlag, maxExclFlag bool // draft 4: exclusiveMinimum/Maximum true
	exclMin, exclMax         float64
	hasExclMin, hasExclMax   bool
	multipleOf               float64 // 0: none

	anyOf  []*schemaNode
	oneOf  bool // anyOf came from oneOf: one branch is generated, but that is not proof
	ref    string
	hasRef bool
}

type schemaProp struct {
	name string
	node *schemaNode
}

// maxCompileDepth bounds the nesting compiled from one schema: deeper
// schemas are not honoured, and a body cannot make compiling recurse deeply.
const maxCompileDepth = 64

// assertions are the keywords that constrain a value: those the generator
// honours (true) and those it does not (false). Any other keyword is an
// annotation, as JSON Schema says of unknown keywords.
var assertions = map[string]bool{
	"type": true, "enum": true, "const": true, "properties": true, "required": true,
	"additionalProperties": true, "items": true, "minItems": true, "maxItems": true,
	"minLength": true, "maxLength": true, "format": true, "minimum": true, "maximum": true,
	"exclusiveMinimum": true, "exclusiveMaximum": true, "multipleOf": true,

	"pattern": false, "patternProperties": false, "propertyNames": false, "minProperties": false,
	"maxProperties": false, "uniqueItems": false, "contains": false, "minContains": false,
	"maxContains": false, "prefixItems": false, "additionalItems": false, "unevaluatedItems": false,
	"unevaluatedProperties": false, "not": false, "if": false, "then": false, "else": false,
	"dependentRequired": false, "dependentSchemas": false, "dependencies": false, "$id": false,
	"id": false, "$anchor": false, "$dynamicRef": false, "$dynamicAnchor": false,
	"$recursiveRef": false, "$recursiveAnchor": false,
}

// compileSchema compiles the schema v. It never fails: what it cannot honour
// marks the node unsupported.
func compileSchema(v gjson.Result, depth int) *schemaNode {
	n := &schemaNode{maxItems: -1, maxLength: -1}
	switch {
	case v.Type == gjson.True:
		return n
	case v.Type == gjson.False:
		n.never = true
		return n
	case !v.IsObject() || depth > maxCompileDepth:
		n.unsupported = true
		return n
	}
	var (
		constV   gjson.Result
		hasConst bool
	)
	v.ForEach(func(k, val gjson.Result) bool {
		key := k.Str
		honoured, isAssertion := assertions[key]
		if isAssertion {
			n.asserts = true
			n.shape = n.shape || key != "type" && key != "enum" && key != "const"
		}
		ok := true
		switch key {
		case "type":
			n.types, ok = parseTypes(val)
		case "enum":
			ok = val.IsArray()
			n.enum, n.hasEnum = val.Array(), ok
		case "const":
			constV, hasConst = val, true
		case "properties":
			ok = val.IsObject()
			n.props = n.props[:0]
			val.ForEach(func(pk, pv gjson.Result) bool {
				if !utf8.ValidString(pk.Str) {
					ok = false
				}
				p := compileSchema(pv, depth+1)
				for i := range n.props {
					if n.props[i].name == pk.Str { // a key given twice: the last counts, as in encoding/json
						n.props[i].node = p
						return true
					}
				}
				n.props = append(n.props, schemaProp{name: pk.Str, node: p})
				return true
			})
		case "required":
			ok = val.IsArray()
			n.required = n.required[:0]
			val.ForEach(func(_, r gjson.Result) bool {
				if r.Type != gjson.String || !utf8.ValidString(r.Str) {
					ok = false
					return false
				}
				n.required = append(n.required, r.Str)
				return true
			})
		case "additionalProperties":
			n.noExtra, n.extra = false, nil
			switch {
			case val.Type == gjson.False:
				n.noExtra = true
			case val.IsObject():
				n.extra = compileSchema(val, depth+1)
				n.noExtra = n.extra.never
			default:
				ok = val.Type == gjson.True
			}
		case "items":
			n.items = nil
			switch {
			case val.Type == gjson.False, val.IsObject():
				n.items = compileSchema(val, depth+1)
			default:
				ok = val.Type == gjson.True
			}
		case "minItems":
			n.minItems, ok = count(val)
		case "maxItems":
			n.maxItems, ok = count(val)
		case "minLength":
			n.minLength, ok = count(val)
		case "maxLength":
			n.maxLength, ok = count(val)
		case "format":
			ok = val.Type == gjson.String
			n.format = val.Str
		case "minimum":
			n.minimum, ok = finite(val)
			n.hasMin = ok
		case "maximum":
			n.maximum, ok = finite(val)
			n.hasMax = ok
		case "exclusiveMinimum":
			n.hasExclMin, n.minExclFlag = false, false
			if val.IsBool() {
				n.minExclFlag = val.Bool()
			} else {
				n.exclMin, ok = finite(val)
				n.hasExclMin = ok
			}
		case "exclusiveMaximum":
			n.hasExclMax, n.maxExclFlag = false, false
			if val.IsBool() {
				n.maxExclFlag = val.Bool()
			} else {
				n.exclMax, ok = finite(val)
				n.hasExclMax = ok
			}
		case "multipleOf":
			n.multipleOf, ok = finite(val)
			ok = ok && n.multipleOf > 0
		case "anyOf", "oneOf", "allOf":
			ok = val.IsArray() && len(val.Array()) > 0
			if key == "allOf" {
				// One branch is the same schema; more would need merging.
				ok = ok && len(val.Array()) == 1
			}
			n.anyOf = n.anyOf[:0]
			for _, b := range val.Array() {
				n.anyOf = append(n.anyOf, compileSchema(b, depth+1))
			}
			n.oneOf = key == "oneOf" && len(n.anyOf) > 1
		case "$ref":
			ok = val.Type == gjson.String
			n.ref, n.hasRef = val.Str, ok
		default:
			ok = honoured || !isAssertion
		}
		if !ok {
			n.unsupported = true
		}
		return true
	})
	if hasConst {
		if n.hasEnum {
			n.unsupported = true // both must hold; only one is honoured
		}
		n.enum, n.hasEnum = []gjson.Result{constV}, true
	}
	return n
}

func parseTypes(v gjson.Result) (typeSet, bool) {
	if v.Type == gjson.String {
		t, ok := typeNames[v.Str]
		return t, ok
	}
	if !v.IsArray() {
		return 0, false
	}
	var set typeSet
	ok := true
	v.ForEach(func(_, e gjson.Result) bool {
		t, known := typeNames[e.Str]
		if e.Type != gjson.String || !known {
			ok = false
			return false
		}
		set |= t
		return true
	})
	return set, ok && set != 0
}

// count reads a non-negative integer keyword.
func count(v gjson.Result) (int, bool) {
	if v.Type != gjson.Number || v.Num < 0 || v.Num != math.Trunc(v.Num) || v.Num > math.MaxInt32 {
		return 0, false
	}
	return int(v.Num), true
}

func finite(v gjson.Result) (float64, bool) {
	if v.Type != gjson.Number || math.IsInf(v.Num, 0) || math.IsNaN(v.Num) {
		return 0, false
	}
	return v.Num, true
}

// generator writes values that a schema accepts. It is used by one request.
type generator struct {
	rng    *rand.Rand
	root   gjson.Result           // the schema local $refs point into
	refs   map[string]*schemaNode // compiled $ref targets; nil for one that cannot be resolved
	budget int                    // values left to write; bounds what a schema can ask for
	exact  bool                   // everything written so far is valid against the schema
	buf    []byte                 // scratch for strings
}

const (
	// maxValues bounds the values one generated document holds.
	maxValues = 4096
	// maxGenDepth bounds nesting, recursive $refs included.
	maxGenDepth = 32
	// leanDepth is the nesting past which the generator writes as little as
	// the schema allows (required properties, minItems), so that recursive
	// schemas end.
	leanDepth = 4
	// maxStringLen bounds a generated string, whatever minLength says.
	maxStringLen = 4096
	// maxDocBytes bounds a generated document (a little more may be written).
	maxDocBytes = 64 << 10
)

func newGenerator(rng *rand.Rand, root gjson.Result) *generator {
	return &generator{rng: rng, root: root, budget: maxValues, exact: true}
}

// document appends a value the schema at the generator's root accepts, an
// object when the schema does not say.
func (g *generator) document(b []byte) []byte {
	if !g.root.Exists() {
		return append(b, "{}"...) // a function without parameters
	}
	n := compileSchema(g.root, 0)
	if n.types == 0 && !n.hasEnum && len(n.anyOf) == 0 && !n.hasRef && !n.never {
		n.types = tObject
	}
	return g.value(b, n, 0)
}

// value appends a value n accepts.
func (g *generator) value(b []byte, n *schemaNode, depth int) []byte {
	g.budget--
	if n.unsupported {
		g.exact = false
	}
	if n.never || depth > maxGenDepth || g.budget < 0 || len(b) > maxDocBytes {
		g.exact = false
		return append(b, "null"...)
	}
	lean := depth > leanDepth
	if n.hasRef {
		if n.asserts || len(n.anyOf) > 0 {
			g.exact = false // siblings of $ref apply too; only the target is honoured
		}
		t := g.resolve(n.ref)
		if t == nil {
			g.exact = false
			return append(b, "null"...)
		}
		return g.value(b, t, depth+1)
	}
	if len(n.anyOf) > 0 {
		if n.asserts || n.oneOf {
			g.exact = false
		}
		return g.value(b, g.branch(n.anyOf, lean), depth+1)
	}
	if n.hasEnum {
		return g.enum(b, n)
	}
	switch g.pickType(n) {
	case tObject:
		return g.object(b, n, depth, lean)
	case tArray:
		return g.array(b, n, depth, lean)
	case tInteger:
		return g.integer(b, n)
	case tNumber:
		return g.number(b, n)
	case tBoolean:
		if g.rng.IntN(2) == 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case tNull:
		return append(b, "null"...)
	}
	return g.str(b, n, lean)
}

// pickType draws one of n's types; with none given, it goes by the keywords
// present, and a string when there are none.
func (g *generator) pickType(n *schemaNode) typeSet {
	set := n.types
	if set == 0 {
		switch {
		case len(n.props) > 0 || len(n.required) > 0 || n.noExtra || n.extra != nil:
			return tObject
		case n.items != nil || n.minItems > 0 || n.maxItems >= 0:
			return tArray
		case n.minLength > 0 || n.maxLength >= 0 || n.format != "":
			return tString
		case n.hasMin || n.hasMax || n.hasExclMin || n.hasExclMax || n.multipleOf > 0:
			return tNumber
		}
		return tString
	}
	k := 0
	for s := set; s != 0; s &= s - 1 {
		k++
	}
	i := g.rng.IntN(k)
	for s := set; ; s &= s - 1 {
		if i == 0 {
			return s & -s
		}
		i--
	}
}

// branch picks an anyOf branch: at random, or when lean the first that
// needs no nesting, so that a recursive schema ends.
func (g *generator) branch(bs []*schemaNode, lean bool) *schemaNode {
	if lean {
		for _, b := range bs {
			if !b.hasRef && len(b.anyOf) == 0 && (b.hasEnum || b.types != 0 && b.types&(tObject|tArray) == 0) {
				return b
			}
		}
	}
	return bs[g.rng.IntN(len(bs))]
}

// enum appends one of n's values that also has one of its types.
func (g *generator) enum(b []byte, n *schemaNode) []byte {
	if n.shape {
		g.exact = false // other assertions are not checked against the values
	}
	var fit []gjson.Result
	for _, v := range n.enum {
		if n.types == 0 || kindOf(v)&n.types != 0 {
			fit = append(fit, v)
		}
	}
	if len(fit) == 0 {
		g.exact = false
		return append(b, "null"...)
	}
	b, ok := appendJSONValue(b, fit[g.rng.IntN(len(fit))])
	if !ok {
		g.exact = false
	}
	return b
}

// kindOf returns the types a JSON value has: an integral number is an
// integer and a number.
func kindOf(v gjson.Result) typeSet {
	switch v.Type {
	case gjson.String:
		return tString
	case gjson.Number:
		if v.Num == math.Trunc(v.Num) && !math.IsInf(v.Num, 0) {
			return tNumber | tInteger
		}
		return tNumber
	case gjson.True, gjson.False:
		return tBoolean
	case gjson.Null:
		return tNull
	}
	if strings.HasPrefix(v.Raw, "[") {
		return tArray
	}
	return tObject
}

// appendJSONValue appends v in compact form, reporting false when it could
// not be written faithfully (a number out of float64's range, bad JSON).
func appendJSONValue(b []byte, v gjson.Result) ([]byte, bool) {
	switch v.Type {
	case gjson.String:
		return wire.AppendString(b, v.Str), utf8.ValidString(v.Str)
	case gjson.True:
		return append(b, "true"...), true
	case gjson.False:
		return append(b, "false"...), true
	case gjson.Null:
		return append(b, "null"...), true
	case gjson.Number:
		raw := strings.TrimSpace(v.Raw)
		if math.IsInf(v.Num, 0) || !json.Valid([]byte(raw)) {
			return append(b, '0'), false
		}
		return append(b, raw...), true
	}
	d := json.NewDecoder(strings.NewReader(v.Raw))
	d.UseNumber()
	var x any
	if d.Decode(&x) != nil {
		return append(b, "null"...), false
	}
	out, err := json.Marshal(x)
	if err != nil {
		return append(b, "null"...), false
	}
	return append(b, out...), true
}

func (g *generator) object(b []byte, n *schemaNode, depth int, lean bool) []byte {
	b = append(b, '{')
	first := true
	key := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = wire.AppendString(b, name)
		b = append(b, ':')
	}
	required := func(name string) bool {
		for _, r := range n.required {
			if r == name {
				return true
			}
		}
		return false
	}
	for _, p := range n.props {
		if !required(p.name) && (lean || p.node.never || g.rng.IntN(2) == 0) {
			continue
		}
		key(p.name)
		b = g.value(b, p.node, depth+1)
	}
	for i, name := range n.required {
		if propIndex(n.props, name) >= 0 || indexString(n.required[:i], name) >= 0 {
			continue
		}
		if n.noExtra {
			g.exact = false // required, yet not allowed
		}
		key(name)
		if n.extra != nil {
			b = g.value(b, n.extra, depth+1)
		} else {
			b = g.str(b, &schemaNode{maxLength: -1}, true)
		}
	}
	return append(b, '}')
}

func propIndex(ps []schemaProp, name string) int {
	for i := range ps {
		if ps[i].name == name {
			return i
		}
	}
	return -1
}

func indexString(s []string, v string) int {
	for i := range s {
		if s[i] == v {
			return i
		}
	}
	return -1
}

func (g *generator) array(b []byte, n *schemaNode, depth int, lean bool) []byte {
	k := 1 + g.rng.IntN(3)
	if lean {
		k = 0
	}
	k = max(k, n.minItems)
	if n.maxItems >= 0 {
		if n.maxItems < n.minItems {
			g.exact = false
		}
		k = min(k, n.maxItems)
	}
	if n.items != nil && n.items.never && n.minItems == 0 {
		k = 0
	}
	b = append(b, '[')
	for i := range k {
		if g.budget <= 0 {
			g.exact = false
			break
		}
		if i > 0 {
			b = append(b, ',')
		}
		if n.items != nil {
			b = g.value(b, n.items, depth+1)
		} else {
			b = g.str(b, &schemaNode{maxLength: -1}, true)
			g.budget--
		}
	}
	return append(b, ']')
}

// str appends a string: a value in the format n names, or words from the
// simulator's list, within minLength and maxLength.
func (g *generator) str(b []byte, n *schemaNode, lean bool) []byte {
	s := g.formatted(g.buf[:0], n.format)
	formatted := len(s) > 0
	if !formatted {
		k := 1 + g.rng.IntN(3)
		if lean {
			k = 1
		}
		for i := range k {
			if i > 0 {
				s = append(s, ' ')
			}
			s = append(s, words[g.rng.IntN(len(words))]...)
		}
	}
	lo, hi := n.minLength, n.maxLength
	if lo > maxStringLen || hi >= 0 && hi < lo {
		g.exact = false
		lo = min(lo, maxStringLen)
	}
	switch {
	case formatted && (len(s) < lo || hi >= 0 && len(s) > hi):
		g.exact = false // the format's value cannot be stretched or cut
	case !formatted:
		for len(s) < lo {
			s = append(s, ' ')
			s = append(s, words[g.rng.IntN(len(words))]...)
		}
		if hi >= 0 && len(s) > hi {
			s = s[:max(hi, lo)]
		}
		if len(s) > max(lo, 1) && s[len(s)-1] == ' ' {
			s = s[:len(s)-1]
		}
	}
	g.buf = s
	return wire.AppendString(b, string(s))
}

// formatted appends a value of format f, or nothing for a format without a
// generator (JSON Schema treats unknown formats as annotations).
func (g *generator) formatted(s []byte, f string) []byte {
	r := g.rng
	two := func(s []byte, v int) []byte {
		if v < 10 {
			s = append(s, '0')
		}
		return strconv.AppendInt(s, int64(v), 10)
	}
	date := func(s []byte) []byte {
		s = append(s, "2025-"...)
		s = two(s, 1+r.IntN(12))
		s = append(s, '-')
		return two(s, 1+r.IntN(28))
	}
	clock := func(s []byte) []byte {
		s = two(s, r.IntN(24))
		s = append(s, ':')
		s = two(s, r.IntN(60))
		return append(s, ":00Z"...)
	}
	word := words[r.IntN(len(words))]
	switch f {
	case "date-time":
		return clock(append(date(s), 'T'))
	case "date":
		return date(s)
	case "time":
		return clock(s)
	case "duration":
		return append(strconv.AppendInt(append(s, 'P'), int64(1+r.IntN(30)), 10), 'D')
	case "email", "idn-email":
		return append(append(s, word...), "@example.com"...)
	case "hostname", "idn-hostname":
		return append(append(s, word...), ".example.com"...)
	case "ipv4":
		return strconv.AppendInt(append(s, "192.0.2."...), int64(1+r.IntN(254)), 10)
	case "ipv6":
		return strconv.AppendInt(append(s, "2001:db8::"...), int64(1+r.IntN(9999)), 16)
	case "uuid":
		const hex = "0123456789abcdef"
		for i := range 32 {
			if i == 8 || i == 12 || i == 16 || i == 20 {
				s = append(s, '-')
			}
			c := hex[r.IntN(16)]
			switch i {
			case 12:
				c = '4'
			case 16:
				c = "89ab"[r.IntN(4)]
			}
			s = append(s, c)
		}
		return s
	case "uri", "iri", "uri-reference", "iri-reference":
		return append(append(s, "https://example.com/"...), word...)
	}
	return s
}

// bounds returns n's numeric bounds, ±Inf when absent, and whether each is
// exclusive.
func (n *schemaNode) bounds() (lo float64, loX bool, hi float64, hiX bool) {
	lo, hi = math.Inf(-1), math.Inf(1)
	if n.hasMin {
		lo, loX = n.minimum, n.minExclFlag
	}
	if n.hasExclMin && n.exclMin >= lo {
		lo, loX = n.exclMin, true
	}
	if n.hasMax {
		hi, hiX = n.maximum, n.maxExclFlag
	}
	if n.hasExclMax && n.exclMax <= hi {
		hi, hiX = n.exclMax, true
	}
	return lo, loX, hi, hiX
}

// maxExact is the largest integer below which every integer is a float64.
const maxExact = 1 << 53

// integer appends an integer within n's bounds and a multiple of its
// multipleOf: 1 to 100 when unbounded, up to 100 past one bound.
func (g *generator) integer(b []byte, n *schemaNode) []byte {
	m := n.multipleOf
	if m == 0 {
		m = 1
	}
	if m != math.Trunc(m) || m > maxExact {
		g.exact = false // only integral steps are honoured
		m = 1
	}
	lo, loX, hi, hiX := n.bounds()
	if loX {
		lo = math.Floor(lo) + 1
	} else {
		lo = math.Ceil(lo)
	}
	if hiX {
		hi = math.Ceil(hi) - 1
	} else {
		hi = math.Floor(hi)
	}
	return g.steps(b, lo, hi, m)
}

// steps appends k*m for an integer k with lo <= k*m <= hi.
func (g *generator) steps(b []byte, lo, hi, m float64) []byte {
	width := 99.0
	if m > 1 {
		width = 9
	}
	klo, khi := math.Ceil(lo/m), math.Floor(hi/m)
	switch {
	case math.IsInf(klo, -1) && math.IsInf(khi, 1):
		klo, khi = 1, 1+width
	case math.IsInf(klo, -1):
		klo = khi - width
	case math.IsInf(khi, 1):
		khi = klo + width
	}
	k := klo
	switch {
	case klo > khi:
		g.exact = false
	case math.Abs(klo*m) > maxExact || math.Abs(khi*m) > maxExact:
		g.exact = false // beyond float64's integers
	default:
		k = klo + float64(g.rng.Int64N(int64(khi-klo)+1))
	}
	return appendNumber(b, k*m)
}

// number appends a number within n's bounds, with two decimals when they
// allow: 0 to 100 when unbounded, up to 100 past one bound.
func (g *generator) number(b []byte, n *schemaNode) []byte {
	if m := n.multipleOf; m > 0 {
		if m == math.Trunc(m) && m <= maxExact {
			return g.integer(b, n) // the multiples of an integer are integers
		}
		g.exact = false // only integral steps are honoured
	}
	lo, loX, hi, hiX := n.bounds()
	switch {
	case math.IsInf(lo, -1) && math.IsInf(hi, 1):
		lo, hi = 0, 100
	case math.IsInf(lo, -1):
		lo = hi - 100
	case math.IsInf(hi, 1):
		hi = lo + 100
	}
	in := func(v float64) bool {
		return !math.IsInf(v, 0) && !math.IsNaN(v) && (v > lo || !loX && v == lo) && (v < hi || !hiX && v == hi)
	}
	u := g.rng.Float64()
	v := lo*(1-u) + hi*u
	for _, c := range []float64{math.Round(v*100) / 100, v, lo/2 + hi/2, lo, hi} {
		if in(c) {
			return appendNumber(b, c)
		}
	}
	g.exact = false
	if math.IsInf(v, 0) || math.IsNaN(v) {
		v = 0
	}
	return appendNumber(b, v)
}

// appendNumber writes v as encoding/json does.
func appendNumber(b []byte, v float64) []byte {
	if v == 0 {
		return append(b, '0') // and not -0
	}
	a := math.Abs(v)
	if a < 1e21 && v == math.Trunc(v) {
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	f := byte('f')
	if a < 1e-6 || a >= 1e21 {
		f = 'e'
	}
	b = strconv.AppendFloat(b, v, f, -1, 64)
	if f == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// resolve returns the compiled target of a local $ref, or nil.
func (g *generator) resolve(ref string) *schemaNode {
	if t, ok := g.refs[ref]; ok {
		return t
	}
	if g.refs == nil {
		g.refs = map[string]*schemaNode{}
	}
	var t *schemaNode
	if v, ok := pointer(g.root, ref); ok {
		t = compileSchema(v, 0)
	}
	g.refs[ref] = t
	return t
}

// pointer resolves a local reference, "#" or "#/a/b" (a JSON pointer in a
// URI fragment), in root.
func pointer(root gjson.Result, ref string) (gjson.Result, bool) {
	frag, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return gjson.Result{}, false
	}
	if strings.Contains(frag, "%") {
		var err error
		if frag, err = url.PathUnescape(frag); err != nil {
			return gjson.Result{}, false
		}
	}
	if frag == "" {
		return root, true
	}
	if frag[0] != '/' {
		return gjson.Result{}, false // an anchor
	}
	v := root
	for _, tok := range strings.Split(frag[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		var next gjson.Result
		found := false
		switch {
		case v.IsObject():
			v.ForEach(func(k, e gjson.Result) bool {
				if k.Str == tok { // the last of a key given twice, as in encoding/json
					next, found = e, true
				}
				return true
			})
		case v.IsArray():
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || strconv.Itoa(i) != tok {
				return gjson.Result{}, false
			}
			if a := v.Array(); i < len(a) {
				next, found = a[i], true
			}
		}
		if !found {
			return gjson.Result{}, false
		}
		v = next
	}
	return v, true
}

// freeObject appends a JSON object with a few fields of words, numbers and
// booleans, for a JSON response format without a schema.
func (g *generator) freeObject(b []byte) []byte {
	r := g.rng
	k := 2 + r.IntN(3)
	b = append(b, '{')
	var used [5]string
	for i := range k {
		name := words[r.IntN(len(words))]
		for indexString(used[:i], name) >= 0 {
			name = words[r.IntN(len(words))]
		}
		used[i] = name
		if i > 0 {
			b = append(b, ',')
		}
		b = wire.AppendString(b, name)
		b = append(b, ':')
		switch r.IntN(4) {
		case 0:
			b = strconv.AppendInt(b, int64(1+r.IntN(1000)), 10)
		case 1:
			b = strconv.AppendBool(b, r.IntN(2) == 0)
		case 2:
			b = append(b, '[')
			for j := range 1 + r.IntN(3) {
				if j > 0 {
					b = append(b, ',')
				}
				b = wire.AppendString(b, words[r.IntN(len(words))])
			}
			b = append(b, ']')
		default:
			b = g.str(b, &schemaNode{maxLength: -1}, false)
		}
	}
	return append(b, '}')
}
