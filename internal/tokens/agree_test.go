package tokens

import (
	"encoding/json"
	"testing"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// The JSON shapes of a chat request as Go's encoding/json reads them: keys
// matched case-insensitively, the last match kept. Values stay raw, so that
// only which key is read is compared, not how values convert.
type (
	jsonChat struct {
		Messages []jsonMessage `json:"messages"`
	}
	jsonMessage struct {
		Role      json.RawMessage `json:"role"`
		Name      json.RawMessage `json:"name"`
		Refusal   json.RawMessage `json:"refusal"`
		Content   json.RawMessage `json:"content"`
		ToolCalls []struct {
			Function struct {
				Name      json.RawMessage `json:"name"`
				Arguments json.RawMessage `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	}
	jsonPart struct {
		Type    json.RawMessage `json:"type"`
		Text    json.RawMessage `json:"text"`
		Refusal json.RawMessage `json:"refusal"`
	}
)

// str is a raw JSON value as the counter reads it: a string's text, or "".
func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// countAsEncodingJSON counts the prompt of body as a backend that decodes it
// with encoding/json would see it; ok is false when that decoder refuses
// the body or the counter's rules do not apply (content of another type).
func countAsEncodingJSON(enc Encoding, body []byte) (n int, ok bool) {
	var c jsonChat
	if json.Unmarshal(body, &c) != nil {
		return 0, false
	}
	n = replyPriming
	for _, m := range c.Messages {
		n += tokensPerMessage + enc.Count(str(m.Role)) + enc.Count(str(m.Refusal))
		if name := str(m.Name); name != "" {
			n += tokensPerName + enc.Count(name)
		}
		for _, tc := range m.ToolCalls {
			n += enc.Count(str(tc.Function.Name)) + enc.Count(str(tc.Function.Arguments))
		}
		switch content := m.Content; {
		case len(content) == 0 || string(content) == "null":
		case content[0] == '"':
			n += enc.Count(str(content))
		case content[0] == '[':
			var parts []jsonPart
			if json.Unmarshal(content, &parts) != nil {
				return 0, false
			}
			for _, p := range parts {
				switch str(p.Type) {
				case "text", "input_text", "output_text":
					n += enc.Count(str(p.Text))
				case "refusal":
					n += enc.Count(str(p.Refusal))
				case "image_url", "input_image":
					n += ImageTokens
				}
			}
		default:
			return 0, false
		}
	}
	return n, true
}

// FuzzCountAgreesWithEncodingJSON checks that for every body the gateway
// accepts, the prompt it counts for admission is the prompt a backend that
// reads JSON like Go's encoding/json is given: no spelling of a key ("Content",
// "ROLE", a duplicate) can hide text from the limit.
func FuzzCountAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"role":"user","content":"hello world"}]}`,
		`{"messages":[{"role":"user","content":"a","Content":"a much longer text that the limit never saw"}]}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a","Text":"hidden"}]}]}`,
		`{"messages":[{"role":"user","content":[{"type":"image_url","TYPE":"text","text":"x"}]}]}`,
		`{"messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{}","ARGUMENTS":"long"}}]}]}`,
		`{"messages":[{"role":"user","content":"x"}],"Messages":[{"role":"user","content":"hidden"}]}`,
		`{"messages":[{"role":"user","name":"n","NAME":"m","content":"x"}]}`,
		`{"messages":[{"role":"user","content":"one","content":"two"}]}`,
	} {
		f.Add([]byte(s))
	}
	enc := EncodingFor("gpt-4o")
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := wire.ParseRequest(body); err != nil {
			return
		}
		got, err := CountValidChatJSON("gpt-4o", body)
		if err != nil {
			return
		}
		want, ok := countAsEncodingJSON(enc, body)
		if ok && got != want {
			t.Fatalf("%s: the gateway counts %d prompt tokens; a backend reading it with encoding/json sees %d", body, got, want)
		}
	})
}
