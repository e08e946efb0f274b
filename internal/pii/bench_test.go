package pii

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/internal/wire"
)

func BenchmarkMask(b *testing.B) {
	m := all(b, Pattern{Category: "EmployeeId", Regex: `EMP-[0-9]{6}`})
	text := strings.Repeat("Please summarise the quarterly report for the board. ", 40) + "Reply to jane@example.com or +44 20 7946 0958."
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` + text + `"}]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.Mask(context.Background(), wire.OpChatCompletions, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRestorerEvent(b *testing.B) {
	v := newVault(nil)
	v.placeholder(Email, "jane@example.com")
	r := v.Restorer()
	evs := [][]byte{[]byte(chunk("The report says ", "")), []byte(chunk("write to <EMA", "")), []byte(chunk("IL_1> soon", ""))}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Event(evs[i%3])
	}
}
