package pii

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/internal/wire"
)

func all(t testing.TB, patterns ...Pattern) *Masker {
	t.Helper()
	m, err := New(Options{Entities: []string{Email, PhoneNumber, CreditCardNumber, IBAN, IPAddress}, Patterns: patterns})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFind(t *testing.T) {
	m := all(t, Pattern{Category: "EmployeeId", Regex: `EMP-[0-9]{6}`})
	tests := []struct {
		name, text string
		want       []string // category=value
	}{
		{"email", "write to jane.doe+x@example.co.uk today", []string{"Email=jane.doe+x@example.co.uk"}},
		{"phone intl", "call +44 20 7946 0958 now", []string{"PhoneNumber=+44 20 7946 0958"}},
		{"phone us", "call (555) 123-4567.", []string{"PhoneNumber=(555) 123-4567"}},
		{"phone plain", "call 4155550100 now", []string{"PhoneNumber=4155550100"}},
		{"date is not a phone", "on 2024-01-15 and 15.01.2024", nil},
		{"amount is not a phone", "paid 1234567 EUR", nil},
		{"version is not a phone", "v1.22.333.4444", nil},
		{"email at end", "mail x@y.de.", []string{"Email=x@y.de"}},
		{"not an email", "user@localhost and @home", nil},
		{"iban grouped then text", "IBAN GB82 WEST 1234 5698 7654 32 thanks", []string{"IBAN=GB82 WEST 1234 5698 7654 32"}},
		{"card dashes", "4111-1111-1111-1111", []string{"CreditCardNumber=4111-1111-1111-1111"}},
		{"card luhn", "card 4111 1111 1111 1111 ok", []string{"CreditCardNumber=4111 1111 1111 1111"}},
		{"card not luhn", "ref 4111 1111 1111 1112 ok", nil},
		{"iban", "pay DE89 3704 0044 0532 0130 00 now", []string{"IBAN=DE89 3704 0044 0532 0130 00"}},
		{"iban bad check", "pay DE88370400440532013000 now", nil},
		{"ipv4", "from 192.168.10.200 at", []string{"IPAddress=192.168.10.200"}},
		{"not an ip", "version 1.2.3.400", nil},
		{"ipv6", "host 2001:db8::1 up", []string{"IPAddress=2001:db8::1"}},
		{"time is not ipv6", "at 12:30:45 sharp", nil},
		{"year is not a phone", "in 2024 and 2025", nil},
		{"pattern", "I am EMP-123456.", []string{"EmployeeId=EMP-123456"}},
		{"several", "a@b.io and 10.0.0.1", []string{"Email=a@b.io", "IPAddress=10.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range m.Find(tt.text) {
				got = append(got, e.Category+"="+tt.text[e.Start:e.End])
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("Find(%q) = %q; want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestPlaceholderName(t *testing.T) {
	for in, want := range map[string]string{"Email": "EMAIL", "PhoneNumber": "PHONE_NUMBER", "IPAddress": "IP_ADDRESS",
		"IBAN": "IBAN", "CreditCardNumber": "CREDIT_CARD_NUMBER", "EmployeeId": "EMPLOYEE_ID", "Person": "PERSON", "x-y": "X_Y"} {
		if got := placeholderName(in); got != want {
			t.Errorf("placeholderName(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestMaskChat(t *testing.T) {
	m := all(t)
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"system","content":"be nice"},` +
		`{"role":"user","content":"I am bob@example.com, again bob@example.com, or alice@example.com"},` +
		`{"role":"user","content":[{"type":"text","text":"call +1 415 555 0100"},{"type":"image_url","image_url":{"url":"http://x/bob@example.com"}}]}],"stream":true}`)
	out, v, err := m.Mask(context.Background(), wire.OpChatCompletions, body)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("masked body is not JSON: %v\n%s", err, out)
	}
	if doc.Model != "gpt-4o" || !doc.Stream {
		t.Errorf("model, stream = %q, %v; want them kept", doc.Model, doc.Stream)
	}
	if got, want := string(doc.Messages[1].Content), `"I am <EMAIL_1>, again <EMAIL_1>, or <EMAIL_2>"`; got != want {
		t.Errorf("content = %s; want %s", got, want)
	}
	if !strings.Contains(string(doc.Messages[2].Content), `"call <PHONE_NUMBER_1>"`) {
		t.Errorf("part = %s; want the phone masked", doc.Messages[2].Content)
	}
	if !strings.Contains(string(out), "http://x/bob@example.com") {
		t.Errorf("an image URL was changed: %s", out)
	}
	if got := v.Restore("to <EMAIL_2> and <EMAIL_1>, <PHONE_NUMBER_1>, <EMAIL_9>"); got != "to alice@example.com and bob@example.com, +1 415 555 0100, <EMAIL_9>" {
		t.Errorf("Restore = %q", got)
	}
}

func TestMaskOtherOperations(t *testing.T) {
	m := all(t)
	tests := []struct {
		op         wire.Operation
		body, want string
	}{
		{wire.OpCompletions, `{"prompt":["x a@b.io","y"]}`, `{"prompt":["x <EMAIL_1>","y"]}`},
		{wire.OpEmbeddings, `{"input":"a@b.io"}`, `{"input":"<EMAIL_1>"}`},
		{wire.OpResponses, `{"instructions":"1.2.3.4","input":[{"role":"user","content":"a@b.io"},{"role":"user","content":[{"type":"input_text","text":"c@d.io"}]}]}`,
			`{"instructions":"<IP_ADDRESS_1>","input":[{"role":"user","content":"<EMAIL_1>"},{"role":"user","content":[{"type":"input_text","text":"<EMAIL_2>"}]}]}`},
		{wire.OpResponses, `{"input":"mail a@b.io"}`, `{"input":"mail <EMAIL_1>"}`},
		{wire.OpChatCompletions, `{"messages":[{"role":"user","content":"a placeholder <EMAIL_1> of mine, and a@b.io"}]}`,
			`{"messages":[{"role":"user","content":"a placeholder <EMAIL_1> of mine, and <EMAIL_2>"}]}`},
		{wire.OpChatCompletions, `{"messages":[{"role":"user","content":"esc\u00e9 \"q\" a@b.io\n"}]}`,
			`{"messages":[{"role":"user","content":"escé \"q\" <EMAIL_1>\n"}]}`},
	}
	for _, tt := range tests {
		out, _, err := m.Mask(context.Background(), tt.op, []byte(tt.body))
		if err != nil || string(out) != tt.want {
			t.Errorf("Mask(%s, %s) = %s, %v; want %s", tt.op, tt.body, out, err, tt.want)
		}
	}
}

type fakeService struct {
	err   error
	calls int
}

func (f *fakeService) Recognise(_ context.Context, texts, cats []string) ([][]Entity, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	out := make([][]Entity, len(texts))
	for i, t := range texts {
		if j := strings.Index(t, "Jane Doe"); j >= 0 {
			out[i] = append(out[i], Entity{Category: "Person", Start: j, End: j + 8})
		}
		out[i] = append(out[i], Entity{Category: "Person", Start: -1, End: 99999}) // out of range: ignored
	}
	return out, nil
}

func TestMaskService(t *testing.T) {
	if _, err := New(Options{Entities: []string{"Person"}}); err == nil {
		t.Error("New with Person and no service: got nil error")
	}
	svc := &fakeService{}
	m, err := New(Options{Entities: []string{Email, "Person"}, Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := m.Mask(context.Background(), wire.OpChatCompletions, []byte(`{"messages":[{"role":"user","content":"Jane Doe <j@d.io>"}]}`))
	if err != nil || string(out) != `{"messages":[{"role":"user","content":"<PERSON_1> <<EMAIL_1>>"}]}` {
		t.Errorf("Mask = %s, %v", out, err)
	}
	svc.err = errors.New("down")
	if _, _, err := m.Mask(context.Background(), wire.OpChatCompletions, []byte(`{"messages":[{"role":"user","content":"x"}]}`)); !errors.Is(err, svc.err) {
		t.Errorf("Mask with the service down: err = %v; want it", err)
	}
}

func TestRestoreJSON(t *testing.T) {
	v := newVault(nil)
	v.placeholder(Email, `a"b@c.io`)
	for in, want := range map[string]string{
		`{"c":"to <EMAIL_1>."}`:               `{"c":"to a\"b@c.io."}`,
		`{"c":"to \u003cEMAIL_1\u003e."}`:     `{"c":"to a\"b@c.io."}`,
		`{"c":"<EMAIL_2> <EMAIL_1"}`:          `{"c":"<EMAIL_2> <EMAIL_1"}`,
		`{"c":"<<EMAIL_1>>","d":"<EMAIL_1>"}`: `{"c":"<a\"b@c.io>","d":"a\"b@c.io"}`,
	} {
		if got := string(v.RestoreJSON([]byte(in))); got != want {
			t.Errorf("RestoreJSON(%s) = %s; want %s", in, got, want)
		}
	}
}
