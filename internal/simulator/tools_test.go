package simulator

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/internal/tokens"
	"github.com/tidwall/gjson"
)

const timeSchema = `{"type":"object","properties":{"city":{"type":"string"},"when":{"type":"string","format":"date-time"}},` +
	`"required":["city","when"],"additionalProperties":false}`

// chatToolsJSON offers get_weather and get_time, as chat completions spells
// function tools.
var chatToolsJSON = `[{"type":"function","function":{"name":"get_weather","description":"Get the weather forecast for a city.",` +
	`"parameters":` + weatherSchema + `,"strict":true}},{"type":"function","function":{"name":"getLocalTime",` +
	`"description":"Get the local time.","parameters":` + timeSchema + `}}]`

// responsesToolsJSON offers the same tools as the Responses API spells them.
var responsesToolsJSON = `[{"type":"function","name":"get_weather","description":"Get the weather forecast for a city.",` +
	`"parameters":` + weatherSchema + `,"strict":true},{"type":"function","name":"getLocalTime","parameters":` + timeSchema + `},` +
	`{"type":"web_search"}]`

var toolSchemas = map[string]string{"get_weather": weatherSchema, "getLocalTime": timeSchema}

func TestToolChoiceRule(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	user := func(s string) string { return `{"role":"user","content":` + quote(s) + `}` }
	const (
		weather = "What's the weather in Oslo?"
		both    = "The weather, and the local time, in Oslo?"
		neither = "Tell me a story."
	)
	result := `{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},` +
		`{"role":"tool","tool_call_id":"call_1","content":"sunny"}`
	for _, tc := range []struct {
		name     string
		messages string
		extra    string // more fields of the request
		want     []string
		finish   string
	}{
		{"auto, a word of the name", user(weather), ``, []string{"get_weather"}, "tool_calls"},
		{"auto, camelCase name", user("What is the local TIME?"), ``, []string{"getLocalTime"}, "tool_calls"},
		{"auto, the whole name", user("call get_weather now"), ``, []string{"get_weather"}, "tool_calls"},
		{"auto, a word inside another is no mention", user("Weatherproof boots?"), ``, nil, "stop"},
		{"auto, nothing mentioned", user(neither), ``, nil, "stop"},
		{"auto is the default", user(both), ``, []string{"get_weather", "getLocalTime"}, "tool_calls"},
		{"auto, not parallel", user(both), `,"parallel_tool_calls":false`, []string{"get_weather"}, "tool_calls"},
		{"auto reads the last user message", user(weather) + `,{"role":"assistant","content":"Which city?"},` + user("Oslo."), ``, nil, "stop"},
		{"auto after tool results", user(weather) + "," + result, ``, nil, "stop"},
		{"none", user(weather), `,"tool_choice":"none"`, nil, "stop"},
		{"required, mentioned", user("What time is it?"), `,"tool_choice":"required"`, []string{"getLocalTime"}, "tool_calls"},
		{"required, nothing mentioned: the first", user(neither), `,"tool_choice":"required"`, []string{"get_weather"}, "tool_calls"},
		{"required after tool results still calls", user(weather) + "," + result, `,"tool_choice":"required"`, []string{"get_weather"}, "tool_calls"},
		{"named", user(neither), `,"tool_choice":{"type":"function","function":{"name":"getLocalTime"}}`, []string{"getLocalTime"}, "stop"},
		{"named, several mentioned", user(both), `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}`, []string{"get_weather"}, "stop"},
		{"allowed_tools narrows", user(both), `,"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"required",` +
			`"tools":[{"type":"function","function":{"name":"getLocalTime"}}]}}`, []string{"getLocalTime"}, "tool_calls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"messages":[` + tc.messages + `],"tools":` + chatToolsJSON + tc.extra + `}`
			resp, b := post(t, srv, chatPath, body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			m := decode(t, b)
			var got []string
			calls, _ := path(m, "choices", 0, "message", "tool_calls").([]any)
			completion := 0
			for i := range calls {
				name, args := str(calls[i], "function", "name"), str(calls[i], "function", "arguments")
				got = append(got, name)
				if err := validate([]byte(toolSchemas[name]), []byte(args)); err != nil {
					t.Errorf("%s: arguments %s: %v", name, args, err)
				}
				completion += tokens.Count("gpt-4o", name) + tokens.Count("gpt-4o", args)
			}
			finish := str(m, "choices", 0, "finish_reason")
			if !slices.Equal(got, tc.want) || finish != tc.finish {
				t.Fatalf("calls %v, finish %q; want %v, %q", got, finish, tc.want, tc.finish)
			}
			content := path(m, "choices", 0, "message", "content")
			if len(calls) > 0 {
				if content != nil {
					t.Errorf("content = %v; want null beside tool calls", content)
				}
			} else {
				completion = tokens.Count("gpt-4o", content.(string))
			}
			if got := num(m, "usage", "completion_tokens"); got != completion {
				t.Errorf("completion_tokens = %d; want %d", got, completion)
			}
		})
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestResponsesToolChoiceRule(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	for _, tc := range []struct {
		name, input, extra string
		want               []string
	}{
		{"string input mentions", `"Weather in Oslo?"`, ``, []string{"get_weather"}},
		{"nothing mentioned", `"Hello."`, ``, nil},
		{"named", `"Hello."`, `,"tool_choice":{"type":"function","name":"getLocalTime"}`, []string{"getLocalTime"}},
		{"required", `"Hello."`, `,"tool_choice":"required"`, []string{"get_weather"}},
		{"after a function_call_output", `[{"role":"user","content":"Weather in Oslo?"},` +
			`{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Oslo\"}"},` +
			`{"type":"function_call_output","call_id":"call_1","output":"sunny"}]`, ``, nil},
		{"a hosted tool choice calls no function", `"Weather in Oslo?"`, `,"tool_choice":{"type":"web_search"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, srv, "/v1/responses", `{"model":"gpt-4o","input":`+tc.input+`,"tools":`+responsesToolsJSON+tc.extra+`}`)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			m := decode(t, b)
			var got []string
			out, _ := m["output"].([]any)
			n := 0
			for _, item := range out {
				switch str(item, "type") {
				case "function_call":
					name, args := str(item, "name"), str(item, "arguments")
					got = append(got, name)
					if err := validate([]byte(toolSchemas[name]), []byte(args)); err != nil {
						t.Errorf("%s: arguments %s: %v", name, args, err)
					}
					if str(item, "status") != "completed" || !strings.HasPrefix(str(item, "call_id"), "call_") {
						t.Errorf("function_call item = %v", item)
					}
					n += tokens.Count("gpt-4o", name) + tokens.Count("gpt-4o", args)
				case "message":
					n += tokens.Count("gpt-4o", str(item, "content", 0, "text"))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("calls %v; want %v: %s", got, tc.want, b)
			}
			if num(m, "usage", "output_tokens") != n || str(m, "status") != "completed" {
				t.Errorf("usage %v; want %d output tokens", m["usage"], n)
			}
			if tools, _ := m["tools"].([]any); len(tools) != 3 {
				t.Errorf("the response should repeat the request's tools: %v", m["tools"])
			}
		})
	}
}

func TestMentions(t *testing.T) {
	for _, tc := range []struct {
		text, name string
		want       bool
	}{
		{"what's the weather?", "get_weather", true},
		{"weather", "getWeather", true},
		{"the weather-vane", "get-weather", true},
		{"call get_weather", "get_weather", true},
		{"get me something", "get_weather", false}, // "get" is too short to count
		{"weatherproof", "get_weather", false},
		{"sendemail", "sendEmail", true}, // the whole name, in any case
		{"an email to bob", "sendEmail", true},
		{"x", "f1", false},
		{"météo weather", "weather", true},
		{"éweatherü", "weather", true}, // contains the whole name
		{"do a lookup", "lookupOrderStatus", true},
		{"order status", "lookupOrderStatus", true},
	} {
		if got := mentions(tc.text, tc.name); got != tc.want {
			t.Errorf("mentions(%q, %q) = %v; want %v", tc.text, tc.name, got, tc.want)
		}
	}
}

func TestToolsCountInThePrompt(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	messages := `{"messages":[{"role":"user","content":"Tell me a story."}]`
	promptTokens := func(body string) int {
		_, b := post(t, srv, chatPath, body)
		return num(decode(t, b), "usage", "prompt_tokens")
	}
	without := promptTokens(messages + `}`)
	with := promptTokens(messages + `,"tools":` + chatToolsJSON + `}`)
	if want := without + toolTokens("gpt-4o", []function{
		{name: "get_weather", desc: "Get the weather forecast for a city.", params: parse(weatherSchema)},
		{name: "getLocalTime", desc: "Get the local time.", params: parse(timeSchema)},
	}); with != want {
		t.Errorf("prompt_tokens with tools = %d; want %d (%d without)", with, want, without)
	}
	// The cookbook's count for its get_current_weather example, by hand:
	// 7 + "get_current_weather:Get the current weather in a given location"
	// + 3 + 3 + "location:string:The city and state, e.g. San Francisco, CA"
	// + 3 - 3 + 3+"celsius" + 3+"fahrenheit" + "unit:string:" + 12.
	enc := tokens.O200kBase
	want := 7 + enc.Count("get_current_weather:Get the current weather in a given location") + 3 +
		3 + enc.Count("location:string:The city and state, e.g. San Francisco, CA") +
		3 - 3 + 3 + enc.Count("celsius") + 3 + enc.Count("fahrenheit") + enc.Count("unit:string:") + 12
	got := toolTokens("gpt-4o", []function{{name: "get_current_weather", desc: "Get the current weather in a given location.",
		params: parse(`{"type":"object","properties":{"location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"},` +
			`"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location"]}`)}})
	if got != want {
		t.Errorf("toolTokens = %d; want %d", got, want)
	}
}

func TestResponseFormat(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	schemaFormat := `{"type":"json_schema","json_schema":{"name":"forecast","strict":true,"schema":` + weatherSchema + `}}`
	for _, tc := range []struct {
		name, path, body string
		schema           string // the schema the content must follow; "" for any object
	}{
		{"chat json_object", chatPath, `{"messages":[{"role":"user","content":"Answer in JSON."}],"response_format":{"type":"json_object"}}`, ""},
		{"chat json_schema", chatPath, `{"messages":[{"role":"user","content":"Forecast?"}],"response_format":` + schemaFormat + `}`, weatherSchema},
		{"chat json_schema without schema", "/v1/chat/completions",
			`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}`, ""},
		{"chat text", chatPath, `{"messages":[{"role":"user","content":"Hi."}],"response_format":{"type":"text"}}`, "text"},
		{"tools offered, none called", chatPath, `{"messages":[{"role":"user","content":"Forecast?"}],"tools":` + chatToolsJSON +
			`,"response_format":` + schemaFormat + `}`, weatherSchema},
		{"responses json_schema", "/v1/responses", `{"model":"gpt-4o","input":"Forecast?","text":{"format":{"type":"json_schema",` +
			`"name":"forecast","strict":true,"schema":` + weatherSchema + `}}}`, weatherSchema},
		{"responses json_object", "/openai/v1/responses", `{"model":"gpt-4o","input":"Forecast?","instructions":"Use JSON.",` +
			`"text":{"format":{"type":"json_object"}}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, srv, tc.path, tc.body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			m := decode(t, b)
			content, n := str(m, "choices", 0, "message", "content"), num(m, "usage", "completion_tokens")
			if strings.HasSuffix(tc.path, "responses") {
				content, n = str(m, "output", 0, "content", 0, "text"), num(m, "usage", "output_tokens")
			}
			if n != tokens.Count("gpt-4o", content) {
				t.Errorf("%d completion tokens; the content %q is %d", n, content, tokens.Count("gpt-4o", content))
			}
			switch tc.schema {
			case "text":
				if json.Valid([]byte(content)) {
					t.Errorf("want text; got JSON %s", content)
				}
			case "":
				var obj map[string]any
				if err := json.Unmarshal([]byte(content), &obj); err != nil || len(obj) == 0 {
					t.Errorf("content %q is not a JSON object with fields: %v", content, err)
				}
			default:
				if err := validate([]byte(tc.schema), []byte(content)); err != nil {
					t.Errorf("content %s: %v", content, err)
				}
			}
		})
	}
}

func TestToolAndFormatErrors(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	fn := func(s string) string { return `[{"type":"function","function":` + s + `}]` }
	for _, tc := range []struct {
		name, path, body, code, mentions string
	}{
		{"tools not an array", chatPath, `{` + msgs + `,"tools":{}}`, "invalid_type", "'tools'"},
		{"empty tools", chatPath, `{` + msgs + `,"tools":[]}`, "empty_array", "'tools'"},
		{"a tool without a function", chatPath, `{` + msgs + `,"tools":[{"type":"function"}]}`, "missing_required_parameter", "tools[0].function"},
		{"a function without a name", chatPath, `{` + msgs + `,"tools":` + fn(`{"parameters":{}}`) + `}`, "missing_required_parameter", "tools[0].function.name"},
		{"a bad name", chatPath, `{` + msgs + `,"tools":` + fn(`{"name":"get weather"}`) + `}`, "invalid_value", "tools[0].function.name"},
		{"parameters not an object", chatPath, `{` + msgs + `,"tools":` + fn(`{"name":"f","parameters":[]}`) + `}`, "invalid_type", "parameters"},
		{"an unknown tool type", chatPath, `{` + msgs + `,"tools":[{"type":"browser"}]}`, "invalid_value", "'browser'"},
		{"too many tools", chatPath, `{` + msgs + `,"tools":[` + strings.Repeat(`{"type":"function","function":{"name":"f"}},`, 128) +
			`{"type":"function","function":{"name":"f"}}]}`, "array_above_max_length", "129"},
		{"required without tools", chatPath, `{` + msgs + `,"tool_choice":"required"}`, "invalid_value", "tool_choice"},
		{"an unknown tool_choice", chatPath, `{` + msgs + `,"tools":` + fn(`{"name":"f"}`) + `,"tool_choice":"always"}`, "invalid_value", "'always'"},
		{"a named function not offered", chatPath, `{` + msgs + `,"tools":` + fn(`{"name":"f"}`) +
			`,"tool_choice":{"type":"function","function":{"name":"g"}}}`, "invalid_value", "'g'"},
		{"a named choice without a name", "/v1/responses", `{"model":"gpt-4o","input":"x","tools":[{"type":"function","name":"f"}],` +
			`"tool_choice":{"type":"function"}}`, "missing_required_parameter", "tool_choice.name"},
		{"json_object without the word", chatPath, `{` + msgs + `,"response_format":{"type":"json_object"}}`, "invalid_value", "'json'"},
		{"json_schema without json_schema", chatPath, `{` + msgs + `,"response_format":{"type":"json_schema"}}`, "missing_required_parameter", "json_schema"},
		{"json_schema without a name", chatPath, `{` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"schema":{}}}}`,
			"missing_required_parameter", "response_format.json_schema.name"},
		{"an unknown format", chatPath, `{` + msgs + `,"response_format":{"type":"yaml"}}`, "invalid_value", "'yaml'"},
		{"responses format without a name", "/v1/responses", `{"model":"gpt-4o","input":"x","text":{"format":{"type":"json_schema","schema":{}}}}`,
			"missing_required_parameter", "text.format.name"},
		{"responses json_object without the word", "/v1/responses", `{"model":"gpt-4o","input":"x","text":{"format":{"type":"json_object"}}}`,
			"invalid_value", "'json'"},
		{"parallel_tool_calls not a boolean", chatPath, `{` + msgs + `,"parallel_tool_calls":"yes"}`, "invalid_json", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, srv, tc.path, tc.body)
			if resp.StatusCode != 400 {
				t.Fatalf("status %d; want 400: %s", resp.StatusCode, b)
			}
			m := decode(t, b)
			if got := str(m, "error", "code"); got != tc.code || !strings.Contains(str(m, "error", "message"), tc.mentions) {
				t.Errorf("error %s; want code %q mentioning %q", b, tc.code, tc.mentions)
			}
		})
	}
}

func TestChatToolCallStreamShape(t *testing.T) {
	s, srv := serve(t, Options{APIKey: testKey})
	for _, azure := range []bool{false, true} {
		t.Run(fmt.Sprint("azure=", azure), func(t *testing.T) {
			before := s.Stats().Deployments["gpt-4o"].CompletionTokens
			p := "/v1/chat/completions"
			if azure {
				p = chatPath
			}
			_, events := stream(t, srv.URL, testKey, p, `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},`+
				`"messages":[{"role":"user","content":"Weather and local time?"}],"tools":`+chatToolsJSON+`}`)
			if events[len(events)-1].data != "[DONE]" {
				t.Fatalf("the stream does not end with [DONE]: %v", events[len(events)-1])
			}
			var chunks []map[string]any
			for _, e := range events[:len(events)-1] {
				chunks = append(chunks, decode(t, []byte(e.data)))
			}
			if azure {
				chunks = chunks[1:] // the prompt filter results
			}
			args := map[int]*strings.Builder{}
			var names []string
			completion := 0
			for i, c := range chunks[:len(chunks)-2] {
				delta, _ := path(c, "choices", 0, "delta").(map[string]any)
				tcs, _ := delta["tool_calls"].([]any)
				if len(tcs) != 1 || path(c, "choices", 0, "finish_reason") != nil {
					t.Fatalf("chunk %d carries %d tool calls: %v", i, len(tcs), c)
				}
				tc := tcs[0].(map[string]any)
				index := num(tc, "index")
				fn := tc["function"].(map[string]any)
				if _, ok := fn["name"]; ok {
					// The first delta of a call: index, id, type, name, empty arguments.
					if index != len(names) || !strings.HasPrefix(str(tc, "id"), "call_") || str(tc, "type") != "function" || str(fn, "arguments") != "" {
						t.Errorf("the first delta of call %d: %v", len(names), tc)
					}
					if i == 0 && (str(delta, "role") != "assistant" || !hasKey(delta, "content") || delta["content"] != nil) {
						t.Errorf("the first chunk should carry the role and content null: %v", delta)
					}
					names = append(names, str(fn, "name"))
					args[index] = &strings.Builder{}
					completion += tokens.Count("gpt-4o", str(fn, "name"))
					continue
				}
				if len(tc) != 2 || len(fn) != 1 || index != len(names)-1 {
					t.Errorf("a following delta should carry only index and function.arguments: %v", tc)
				}
				args[index].WriteString(str(fn, "arguments"))
				completion += tokens.Count("gpt-4o", str(fn, "arguments"))
			}
			if !slices.Equal(names, []string{"get_weather", "getLocalTime"}) {
				t.Fatalf("calls %v", names)
			}
			for i, name := range names {
				if err := validate([]byte(toolSchemas[name]), []byte(args[i].String())); err != nil {
					t.Errorf("%s: %s: %v", name, args[i].String(), err)
				}
			}
			last, usage := chunks[len(chunks)-2], chunks[len(chunks)-1]
			if str(last, "choices", 0, "finish_reason") != "tool_calls" {
				t.Errorf("the last chunk should end with tool_calls: %v", last)
			}
			if num(usage, "usage", "completion_tokens") != completion {
				t.Errorf("usage %v; the deltas carry %d tokens", usage["usage"], completion)
			}
			if got := s.Stats().Deployments["gpt-4o"].CompletionTokens - before; got != int64(completion) {
				t.Errorf("stats count %d completion tokens; the stream carried %d", got, completion)
			}
		})
	}
}

func TestJSONContentStream(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey})
	t.Run("chat", func(t *testing.T) {
		_, events := stream(t, srv.URL, testKey, "/v1/chat/completions", `{"model":"gpt-4o","stream":true,`+
			`"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Forecast?"}],`+
			`"response_format":{"type":"json_schema","json_schema":{"name":"f","schema":`+weatherSchema+`}}}`)
		var content strings.Builder
		for _, e := range events[1 : len(events)-3] {
			content.WriteString(str(decode(t, []byte(e.data)), "choices", 0, "delta", "content"))
		}
		usage := decode(t, []byte(events[len(events)-2].data))
		if err := validate([]byte(weatherSchema), []byte(content.String())); err != nil {
			t.Errorf("%s: %v", content.String(), err)
		}
		if n := num(usage, "usage", "completion_tokens"); n != tokens.Count("gpt-4o", content.String()) || n < len(events)-5 {
			t.Errorf("%d completion tokens in %d deltas; the content %q is %d tokens", n, len(events)-4, content.String(), tokens.Count("gpt-4o", content.String()))
		}
	})
	t.Run("responses", func(t *testing.T) {
		_, events := stream(t, srv.URL, testKey, "/v1/responses", `{"model":"gpt-4o","stream":true,"input":"Forecast?",`+
			`"text":{"format":{"type":"json_schema","name":"f","schema":`+weatherSchema+`}}}`)
		var deltas strings.Builder
		var completed map[string]any
		for _, e := range events {
			m := decode(t, []byte(e.data))
			switch e.name {
			case "response.output_text.delta":
				deltas.WriteString(str(m, "delta"))
			case "response.completed":
				completed = m
			}
		}
		if err := validate([]byte(weatherSchema), []byte(deltas.String())); err != nil {
			t.Errorf("%s: %v", deltas.String(), err)
		}
		if num(completed, "response", "usage", "output_tokens") != tokens.Count("gpt-4o", deltas.String()) ||
			str(completed, "response", "text", "format", "type") != "json_schema" {
			t.Errorf("completed = %v", completed)
		}
	})
}

func TestMaxTokensCutsToolCallsAndJSON(t *testing.T) {
	s, srv := serve(t, Options{APIKey: testKey})
	for _, tc := range []struct {
		name, body string
		stream     bool
	}{
		{"tool call", `{"messages":[{"role":"user","content":"Weather?"}],"tools":` + chatToolsJSON + `,"max_tokens":6}`, false},
		{"tool call streamed", `{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Weather?"}],` +
			`"tools":` + chatToolsJSON + `,"max_tokens":6}`, true},
		{"JSON", `{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"f","schema":` +
			weatherSchema + `}},"max_tokens":5}`, false},
		{"tool name too long for the limit", `{"messages":[{"role":"user","content":"Weather?"}],"tools":` + chatToolsJSON + `,"max_tokens":1}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Stats().Deployments["gpt-4o"].CompletionTokens
			limit := 6
			if strings.Contains(tc.body, `"max_tokens":5`) {
				limit = 5
			} else if strings.Contains(tc.body, `"max_tokens":1}`) {
				limit = 1
			}
			var finish string
			var n int
			if tc.stream {
				_, events := stream(t, srv.URL, testKey, chatPath, tc.body)
				finish = str(decode(t, []byte(events[len(events)-3].data)), "choices", 0, "finish_reason")
				n = num(decode(t, []byte(events[len(events)-2].data)), "usage", "completion_tokens")
			} else {
				_, b := post(t, srv, chatPath, tc.body)
				m := decode(t, b)
				finish, n = str(m, "choices", 0, "finish_reason"), num(m, "usage", "completion_tokens")
				if calls, _ := path(m, "choices", 0, "message", "tool_calls").([]any); len(calls) > 0 {
					args := str(calls[0], "function", "arguments")
					if want := tokens.Count("gpt-4o", str(calls[0], "function", "name")) + tokens.Count("gpt-4o", args); n != want {
						t.Errorf("completion_tokens = %d; the call is %d", n, want)
					}
				}
			}
			if finish != "length" || n > limit || n == 0 {
				t.Errorf("finish %q after %d tokens; want length within %d", finish, n, limit)
			}
			if got := s.Stats().Deployments["gpt-4o"].CompletionTokens - before; got != int64(n) {
				t.Errorf("stats count %d; usage says %d", got, n)
			}
		})
	}
}

func TestCutToTokens(t *testing.T) {
	enc := tokens.O200kBase
	s := `{"city":"the   river  city","days":[1234567,2],"note":"   "}`
	for limit := 1; limit <= enc.Count(s)+1; limit++ {
		cut, n := cutToTokens(enc, s, limit)
		if !strings.HasPrefix(s, cut) || n != enc.Count(cut) || n > limit {
			t.Errorf("limit %d: cut %q counted %d (really %d)", limit, cut, n, enc.Count(cut))
		}
		if limit >= enc.Count(s) && cut != s {
			t.Errorf("limit %d: cut %q; want all of it", limit, cut)
		}
	}
}

func parse(s string) gjson.Result { return gjson.Parse(s) }
