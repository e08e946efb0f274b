package proxy

import (
	"runtime"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/internal/tokens"
)

// TestMeterBrokenStreamBoundedMemory: a stream that breaks before its usage
// chunk is estimated from its text, counted as it passes, in memory that
// does not grow with the answer: a mebibyte of text costs the meter a few
// kibibytes, and the count is the tokenizer's for the whole text.
func TestMeterBrokenStreamBoundedMemory(t *testing.T) {
	words := strings.Fields("Forest word wide year great at. Basic earth current data, most natural light full. Report more current image be day clear by possible would end current.")
	var whole strings.Builder
	var events [][]byte
	for i := 0; whole.Len() < 1<<20; i++ {
		piece := " " + words[i%len(words)]
		whole.WriteString(piece)
		events = append(events, []byte(`data: {"choices":[{"index":0,"delta":{"content":"`+piece+`"}}]}`+"\n\n"))
	}
	want := int64(tokens.Count("gpt-4o", whole.String())) // and the vocabulary built before measuring
	m := meter{enc: tokens.EncodingFor("gpt-4o")}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, ev := range events {
		m.Event(ev)
	}
	u := m.final(func() int64 { return 7 }, 200)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Errorf("metering 1 MiB of streamed text allocated %d bytes; want at most 64 KiB", got)
	}
	if cap(m.pending) > meterBlock {
		t.Errorf("the meter holds %d bytes of text; want at most %d", cap(m.pending), meterBlock)
	}
	if !u.Estimated || u.Prompt != 7 || u.Completion != want || u.Total != 7+want {
		t.Errorf("usage %+v; want an estimate of 7 prompt and %d completion tokens", u, want)
	}
}
