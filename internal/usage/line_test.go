package usage

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// filled returns a Record with every field set to a value that is not its
// zero, so that a field appendLine forgets shows in a round trip. A field of
// a kind it cannot fill fails the test: teach it, and appendLine, the field.
func filled(t *testing.T) Record {
	t.Helper()
	var r Record
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(time.Date(2026, 5, 20, 12, 34, 56, 789012345, time.UTC)))
		case f.Type() == reflect.TypeFor[time.Duration]():
			f.SetInt(int64(1000*i + 7))
		case f.Kind() == reflect.String:
			f.SetString(name + " \"quoted\" \\ \n\t\x01 é ✓ <&>")
		case f.Kind() == reflect.Int, f.Kind() == reflect.Int64:
			f.SetInt(int64(100*i + 1))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.Kind() == reflect.Float64:
			f.SetFloat(0.000123456789)
		default:
			t.Fatalf("Record.%s is a %s, which filled cannot set", name, f.Type())
		}
	}
	return r
}

func decodeLine(t *testing.T, line []byte) Record {
	t.Helper()
	if len(line) == 0 || line[len(line)-1] != '\n' || strings.Count(string(line), "\n") != 1 {
		t.Fatalf("line %q is not one line ending in a newline", line)
	}
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("line %q does not decode: %v", line, err)
	}
	return r
}

func TestAppendLineRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Record
	}{
		{"every field", filled(t)},
		{"zero", Record{}},
		{"gateway record", Record{RequestID: NewID(), Time: t0, Subscription: "team-a", Model: "gpt-4o", Status: 200,
			Stream: true, PromptTokens: 12, CompletionTokens: 30, TotalTokens: 42, Latency: 1500 * time.Millisecond, Cost: 0.0042, Currency: "USD"}},
		{"tiny and huge costs", Record{Cost: 1e-300, Attempts: -1, PromptTokens: -5}},
		{"huge cost", Record{Cost: 1.7976931348623157e308}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line, err := appendLine(nil, &tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.r, decodeLine(t, line)); diff != "" {
				t.Errorf("round trip of %s differs (-want +got):\n%s", line, diff)
			}
		})
	}
}

// appendLine refuses what encoding/json refuses, rather than writing a line
// that would not read back.
func TestAppendLineRejectsYears(t *testing.T) {
	for _, tm := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if line, err := appendLine(nil, &Record{Time: tm}); err == nil {
			t.Errorf("appendLine of year %d = %q; want an error", tm.Year(), line)
		}
	}
}

// FuzzAppendLine: whatever the strings (they come from clients) and numbers,
// a line reads back as the record encoding/json's own encoding reads back as.
func FuzzAppendLine(f *testing.F) {
	f.Add("req-1", "team \"a\"", "\x00\xff\xfe bad utf-8 \u2028", int64(12), 0.5, int64(1500))
	f.Add("", "", "", int64(0), 0.0, int64(0))
	f.Fuzz(func(t *testing.T, id, sub, user string, tokens int64, cost float64, ns int64) {
		r := Record{RequestID: id, Subscription: sub, UserID: user, AppID: sub + user, PromptTokens: tokens,
			Cost: cost, Latency: time.Duration(ns), Time: time.Unix(0, ns).UTC()}
		want, err := json.Marshal(&r)
		line, lerr := appendLine(nil, &r)
		if err != nil || lerr != nil {
			if (err == nil) != (lerr == nil) {
				t.Fatalf("encoding/json: %v; appendLine: %v; want both to fail or neither", err, lerr)
			}
			return
		}
		var fromJSON Record
		if err := json.Unmarshal(want, &fromJSON); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(fromJSON, decodeLine(t, line)); diff != "" {
			t.Errorf("line %q reads back differently from %s (-json +line):\n%s", line, want, diff)
		}
	})
}

func BenchmarkAppendLine(b *testing.B) {
	r := Record{RequestID: NewID(), Time: t0, Subscription: "team-alpha", Product: "standard", Model: "gpt-4o",
		Deployment: "gpt-4o", Backend: "payg-westeurope", Region: "westeurope", Status: 200, Stream: true,
		PromptTokens: 120, CompletionTokens: 300, TotalTokens: 420, Attempts: 1, Latency: 1234567890,
		TimeToFirstByte: 234567890, Overhead: 45678, Cost: 0.00123, Currency: "USD", ClientIP: "10.1.2.3"}
	b.Run("appendLine", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = appendLine(buf[:0], &r)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(&r)
		}
	})
}
