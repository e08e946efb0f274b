package pii

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// FuzzMask holds Mask to its promise: for any body the gateway accepts, the
// masked body is valid JSON, and restoring it gives back the same document.
func FuzzMask(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"mail a@b.io or call +1 415 555 0100"}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"4111111111111111 \u003cEMAIL_1\u003e x@y.zz"}]}]}`,
		`{"model":"m","prompt":["10.0.0.1","DE89370400440532013000"],"input":"c@d.ee","instructions":"\"q\" 1.2.3.4"}`,
		`{"model":"m","input":[{"role":"user","content":"e\u2028f@g.hh\n"}]}`,
		`{"model":"m","messages":[{"role":"user","content":"EMP-123456 <EMAIL_1> a@b.io"}]}`,
	} {
		f.Add([]byte(s))
	}
	m := all(f, Pattern{Category: "EmployeeId", Regex: `EMP-[0-9]{6}`})
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := wire.ParseRequest(body); err != nil || !json.Valid(body) {
			return
		}
		var want any
		if err := json.Unmarshal(body, &want); err != nil {
			return
		}
		for _, op := range []wire.Operation{wire.OpChatCompletions, wire.OpCompletions, wire.OpEmbeddings, wire.OpResponses} {
			out, v, err := m.Mask(context.Background(), op, body)
			if err != nil {
				continue
			}
			if !json.Valid(out) {
				t.Fatalf("%s: masked body is not JSON:\n%s\nfrom\n%s", op, out, body)
			}
			if _, err := wire.ParseRequest(out); err != nil {
				t.Fatalf("%s: masked body does not parse: %v\n%s", op, err, out)
			}
			var got any
			if err := json.Unmarshal(v.RestoreJSON(out), &got); err != nil {
				t.Fatalf("%s: restored body is not JSON: %v", op, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: restore(mask(body)) differs:\n got %v\nwant %v", op, got, want)
			}
		}
	})
}
