package pii

import (
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/internal/sse"
	"github.com/tidwall/gjson"
)

func chunk(content string, finish string) string {
	f := "null"
	if finish != "" {
		f = `"` + finish + `"`
	}
	return `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":` +
		string(appendQuoted(nil, content)) + `},"finish_reason":` + f + "}]}\n\n"
}

// text returns what a client reads of the restored stream.
func text(t *testing.T, out []string) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range out {
		for _, one := range strings.SplitAfter(ev, "\n\n") {
			d := sse.Data([]byte(one))
			if len(d) == 0 || string(d) == "[DONE]" {
				continue
			}
			if !gjson.ValidBytes(d) {
				t.Fatalf("event data is not JSON: %q", d)
			}
			b.WriteString(gjson.GetBytes(d, "choices.0.delta.content").Str)
			b.WriteString(gjson.GetBytes(d, "choices.0.text").Str)
			b.WriteString(gjson.GetBytes(d, "delta").Str)
		}
	}
	return b.String()
}

func TestRestorerSplit(t *testing.T) {
	v := newVault(nil)
	v.placeholder(Email, "bob@example.com")
	v.placeholder(PhoneNumber, "+1 415 555 0100")
	tests := []struct {
		name   string
		events []string
		want   string
	}{
		{"whole", []string{chunk("Hi <EMAIL_1>!", ""), chunk("", "stop"), "data: [DONE]\n\n"}, "Hi bob@example.com!"},
		{"split in two", []string{chunk("Hi <EMA", ""), chunk("IL_1>, bye", ""), chunk("", "stop")}, "Hi bob@example.com, bye"},
		{"split in many", []string{chunk("<", ""), chunk("PHONE", ""), chunk("_NUMBER", ""), chunk("_1", ""), chunk("> ok", "")}, "+1 415 555 0100 ok"},
		{"not a placeholder", []string{chunk("a < b", ""), chunk(" and <EMX", ""), chunk(">", "")}, "a < b and <EMX>"},
		{"held at finish", []string{chunk("x <EMAIL_", ""), chunk("", "stop")}, "x <EMAIL_"},
		{"held at DONE", []string{chunk("x <EMAIL_", ""), "data: [DONE]\n\n"}, "x <EMAIL_"},
		{"escaped", []string{`data: {"choices":[{"index":0,"delta":{"content":"\u003cEMAIL_1\u003e"}}]}` + "\n\n"}, "bob@example.com"},
		{"completions", []string{`data: {"choices":[{"index":0,"text":"<EM"}]}` + "\n\n", `data: {"choices":[{"index":0,"text":"AIL_1>"}]}` + "\n\n"}, "bob@example.com"},
		{"responses", []string{"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":0,\"delta\":\"<EMAIL\"}\n\n",
			"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":0,\"delta\":\"_1> z\"}\n\n"}, "bob@example.com z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := v.Restorer()
			var out []string
			for i, ev := range tt.events {
				got := string(r.Event([]byte(ev)))
				out = append(out, got)
				if i == 0 && strings.Contains(tt.name, "split") && strings.Contains(got, "<EMA") {
					t.Errorf("first event %q passes on an unfinished placeholder", got)
				}
			}
			if got := text(t, out); got != tt.want {
				t.Errorf("client reads %q; want %q (events %q)", got, tt.want, out)
			}
		})
	}
}

func TestRestorerKeepsFields(t *testing.T) {
	v := newVault(nil)
	v.placeholder(Email, "b@c.io")
	ev := "event: response.output_text.delta\nid: 7\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"<EMAIL_1>\"}\n\n"
	got := string(v.Restorer().Event([]byte(ev)))
	want := "event: response.output_text.delta\nid: 7\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"b@c.io\"}\n\n"
	if got != want {
		t.Errorf("Event = %q; want %q", got, want)
	}
	empty := newVault(nil).Restorer()
	if got := string(empty.Event([]byte(ev))); got != ev {
		t.Errorf("with an empty vault: %q; want the event as it is", got)
	}
}
