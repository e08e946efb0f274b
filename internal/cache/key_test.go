package cache

import (
	"encoding/json"
	"testing"
)

func exactKey(t *testing.T, op Op, body string) string {
	t.Helper()
	k, err := KeysOf(op, []byte(body), KeyOptions{Scope: "s", Model: "m"})
	if err != nil {
		t.Fatalf("KeysOf(%s): %v", body, err)
	}
	return k.Exact
}

func TestExactKeySameRequest(t *testing.T) {
	base := `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"temperature":0.5}`
	same := []struct{ name, body string }{
		{"keys reordered", `{"temperature":0.5,"messages":[{"content":"Hi","role":"user"}],"model":"gpt-4o"}`},
		{"whitespace", "{ \"model\" : \"gpt-4o\",\n\t\"messages\":[ {\"role\":\"user\",\"content\":\"Hi\"} ], \"temperature\":0.5 }"},
		{"escapes", `{"model":"gpt-4o","messages":[{"role":"user","content":"\u0048i"}],"temperature":0.5}`},
		{"user", `{"model":"gpt-4o","user":"bob","messages":[{"role":"user","content":"Hi"}],"temperature":0.5}`},
		{"metadata and store", `{"model":"gpt-4o","metadata":{"a":"b"},"store":true,"messages":[{"role":"user","content":"Hi"}],"temperature":0.5}`},
		{"stream_options", `{"model":"gpt-4o","stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi"}],"temperature":0.5}`},
	}
	want := exactKey(t, OpChat, base)
	for _, c := range same {
		if got := exactKey(t, OpChat, c.body); got != want {
			t.Errorf("%s: key %s; want %s (the same request)", c.name, got, want)
		}
	}
	differ := []struct{ name, body string }{
		{"stream", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hi"}],"temperature":0.5}`},
		{"number as written", `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"temperature":0.50}`},
		{"text", `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi!"}],"temperature":0.5}`},
		{"system", `{"model":"gpt-4o","messages":[{"role":"system","content":"Be terse"},{"role":"user","content":"Hi"}],"temperature":0.5}`},
		{"tools", `{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"Hi"}],"temperature":0.5}`},
		{"response_format", `{"model":"gpt-4o","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"Hi"}],"temperature":0.5}`},
		{"n", `{"model":"gpt-4o","n":2,"messages":[{"role":"user","content":"Hi"}],"temperature":0.5}`},
	}
	for _, c := range differ {
		if got := exactKey(t, OpChat, c.body); got == want {
			t.Errorf("%s: same key as the base request; want another", c.name)
		}
	}
	if exactKey(t, OpCompletions, base) == want {
		t.Error("another operation has the same key")
	}
	k1, _ := KeysOf(OpChat, []byte(base), KeyOptions{Scope: "a"})
	k2, _ := KeysOf(OpChat, []byte(base), KeyOptions{Scope: "b"})
	if k1.Exact == k2.Exact {
		t.Error("two scopes have the same key")
	}
}

func TestSemanticPartition(t *testing.T) {
	o := KeyOptions{Scope: "s", Model: "m", Semantic: true, IgnoreSystem: true, MaxMessages: 3}
	keys := func(body string) Keys {
		t.Helper()
		k, err := KeysOf(OpChat, []byte(body), o)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a := keys(`{"messages":[{"role":"system","content":"S"},{"role":"user","content":"What is the capital of France?"}]}`)
	b := keys(`{"messages":[{"role":"system","content":"S"},{"role":"user","content":"Tell me the capital of France"}]}`)
	if a.Partition == "" || a.Partition != b.Partition {
		t.Errorf("partitions %q, %q; want the same, set", a.Partition, b.Partition)
	}
	if a.Text != "What is the capital of France?" {
		t.Errorf("text %q; want the last user message alone (system ignored)", a.Text)
	}
	for name, body := range map[string]string{
		"system":          `{"messages":[{"role":"system","content":"T"},{"role":"user","content":"What is the capital of France?"}]}`,
		"tools":           `{"tools":[],"messages":[{"role":"system","content":"S"},{"role":"user","content":"What is the capital of France?"}]}`,
		"response_format": `{"response_format":{"type":"json_object"},"messages":[{"role":"system","content":"S"},{"role":"user","content":"What is the capital of France?"}]}`,
		"earlier turn":    `{"messages":[{"role":"assistant","content":"x"},{"role":"user","content":"What is the capital of France?"}]}`,
		"stream":          `{"stream":true,"messages":[{"role":"system","content":"S"},{"role":"user","content":"What is the capital of France?"}]}`,
	} {
		if k := keys(body); k.Partition == a.Partition {
			t.Errorf("%s: same partition; want another", name)
		}
	}
	for name, body := range map[string]string{
		"too many messages": `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"},{"role":"user","content":"d"}]}`,
		"last not user":     `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`,
		"image":             `{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}}]}]}`,
	} {
		if k := keys(body); k.Partition != "" {
			t.Errorf("%s: partition set; want no semantic lookup", name)
		}
	}
	o.IgnoreSystem = false
	if k := keys(`{"messages":[{"role":"system","content":"S"},{"role":"user","content":"Q"}]}`); k.Text != "S\nQ" {
		t.Errorf("text %q; want the system text then the question", k.Text)
	}
}

func TestScopePrefixClears(t *testing.T) {
	k, _ := KeysOf(OpChat, []byte(`{"messages":[]}`), KeyOptions{Tag: "alice"})
	if p := ScopePrefix("alice"); len(k.Exact) <= len(p) || k.Exact[:len(p)] != p {
		t.Errorf("key %q does not start with its tag's prefix %q", k.Exact, p)
	}
}

// FuzzCanonical holds the canonical form to its promise: valid JSON,
// unchanged by a second pass, and the same for any re-encoding a JSON
// reader reads the same (encoding/json reorders nothing, but re-escapes
// and drops whitespace).
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"temperature":0.5}`,
		`{"b":1,"a":[1,2,{"y":null,"x":true}],"s":"\u00e9\n<&>"}`,
		`{"user":"x","stream_options":{}}`, `{}`, `{"a":"\ud83d\ude00"}`, `{"a":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := Canonical(nil, body)
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("Canonical(%q) = %q: not valid JSON", body, c)
		}
		c2, err := Canonical(nil, c)
		if err != nil || string(c2) != string(c) {
			t.Fatalf("Canonical is not idempotent: %q -> %q -> %q (%v)", body, c, c2, err)
		}
		var v map[string]json.RawMessage
		if json.Unmarshal(body, &v) != nil || hasDuplicateKeys(body) {
			return
		}
		re, err := json.Marshal(v)
		if err != nil {
			return
		}
		if c3, err := Canonical(nil, re); err != nil || string(c3) != string(c) {
			t.Fatalf("a re-encoding keys differently: %q -> %q; re-encoded %q -> %q", body, c, re, c3)
		}
	})
}

// hasDuplicateKeys reports a top-level key given twice, which readers
// resolve differently (wire.ParseRequest refuses such bodies).
func hasDuplicateKeys(body []byte) bool {
	dec := json.NewDecoder(bytesReader(body))
	if _, err := dec.Token(); err != nil {
		return true
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return true
		}
		k, _ := tok.(string)
		if seen[k] {
			return true
		}
		seen[k] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return true
		}
	}
	return false
}
