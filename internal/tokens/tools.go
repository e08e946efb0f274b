package tokens

import (
	"strings"

	"github.com/tidwall/gjson"
)

// Tool definitions cost prompt tokens. OpenAI does not publish how it
// renders them; its cookbook ("How to count tokens with tiktoken",
// num_tokens_for_tools) approximates the cost, and Sluice counts with that
// approximation, for admission and in its simulator alike: 7 tokens a
// function for o200k_base models (10 for cl100k_base) plus its
// "name:description"; 3 more when it has properties, and for each top-level
// property 3 plus "name:type:description", an enum costing 3 a value plus
// the value, less 3; then 12 for the whole. Nested schemas are not counted,
// as the cookbook does not count them.

// ToolDef is a function tool as the formula reads it.
type ToolDef struct {
	Name, Description string
	// Parameters is the function's JSON schema, raw.
	Parameters []byte
}

// CountTools returns what function definitions add to a prompt.
func (e Encoding) CountTools(defs []ToolDef) int {
	if len(defs) == 0 {
		return 0
	}
	perFunc := 7
	if e == Cl100kBase {
		perFunc = 10
	}
	n := 12
	for _, f := range defs {
		n += perFunc + e.Count(f.Name+":"+strings.TrimSuffix(f.Description, "."))
		props := gjson.GetBytes(f.Parameters, "properties")
		if !props.IsObject() || len(props.Map()) == 0 {
			continue
		}
		n += 3
		props.ForEach(func(k, p gjson.Result) bool {
			n += 3
			if en := p.Get("enum"); en.IsArray() {
				n -= 3
				en.ForEach(func(_, v gjson.Result) bool {
					n += 3 + e.Count(v.String())
					return true
				})
			}
			n += e.Count(k.Str + ":" + p.Get("type").String() + ":" + strings.TrimSuffix(p.Get("description").Str, "."))
			return true
		})
	}
	return n
}

// ToolDefs reads the function tools of a request's "tools" array, in the
// chat completions shape ({"type":"function","function":{"name",...}}) or
// the Responses shape ({"type":"function","name",...}); other tools are
// skipped.
func ToolDefs(tools gjson.Result) []ToolDef {
	var defs []ToolDef
	tools.ForEach(func(_, t gjson.Result) bool {
		if t.Get("type").Str != "function" {
			return true
		}
		f := t
		if fn := t.Get("function"); fn.IsObject() {
			f = fn
		}
		defs = append(defs, ToolDef{Name: f.Get("name").Str, Description: f.Get("description").Str,
			Parameters: []byte(f.Get("parameters").Raw)})
		return true
	})
	return defs
}

// CountToolItems counts what a Responses API input's tool traffic costs
// beyond its messages: the arguments of function_call items and the output
// of function_call_output items, as text.
func (e Encoding) CountToolItems(input gjson.Result) int {
	if !input.IsArray() {
		return 0
	}
	n := 0
	input.ForEach(func(_, item gjson.Result) bool {
		switch item.Get("type").Str {
		case "function_call":
			n += e.Count(item.Get("arguments").Str)
		case "function_call_output":
			if out := item.Get("output"); out.Type == gjson.String {
				n += e.Count(out.Str)
			} else {
				out.ForEach(func(_, p gjson.Result) bool {
					if t := p.Get("text"); t.Type == gjson.String {
						n += e.Count(t.Str)
					}
					return true
				})
			}
		}
		return true
	})
	return n
}
