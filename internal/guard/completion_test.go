package guard

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/proxy"
	"github.com/sluice-gateway/sluice/internal/safety"
	"github.com/sluice-gateway/sluice/internal/secret"
	"github.com/sluice-gateway/sluice/internal/simulator"
	"github.com/sluice-gateway/sluice/internal/wire"
)

func testPolicy(t *testing.T, mode string, failOpen bool) (*policy, *simulator.Simulator) {
	t.Helper()
	sim := simulator.New(simulator.Options{APIKey: "k"})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, err := safety.NewClient(safety.Options{Name: "s", URL: srv.URL, Credential: safety.APIKey(secret.New("k")), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &policy{product: "p", client: c, mode: mode, size: 40, overlap: 5, failOpen: failOpen,
		check: safety.Policy{Categories: map[string]int{"Violence": 4}, OutputType: "FourSeverityLevels"}}, sim
}

func delta(i int, s string) []byte {
	return []byte(fmt.Sprintf("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", s))
}

// run passes events through a completion tap as the pipeline would, and
// returns what the client gets and whether the tap ended the stream.
func run(t *testing.T, tap proxy.Tap, events [][]byte) (string, bool, [][]byte) {
	var out strings.Builder
	var perEvent [][]byte
	for _, ev := range events {
		o, err := tap.Event(ev)
		perEvent = append(perEvent, o)
		out.Write(o)
		if errors.Is(err, proxy.ErrEndStream) {
			return out.String(), true, perEvent
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return out.String(), false, perEvent
}

func stream(words ...string) [][]byte {
	evs := [][]byte{[]byte("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n")}
	for i, w := range words {
		evs = append(evs, delta(i, w))
	}
	return append(evs, []byte("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"),
		[]byte("data: [DONE]\n\n"))
}

func TestCompletionWindow(t *testing.T) {
	s := New(Options{})
	p, _ := testPolicy(t, "window", false)
	words := []string{"The ", "quick ", "brown ", "fox ", "xviolence6 ", "jumps ", "over ", "the ", "lazy ", "dog. "}
	for i := range 20 {
		words = append(words, fmt.Sprintf("more%d ", i))
	}
	got, ended, _ := run(t, s.newCompletionTap(context.Background(), p, wire.OpChatCompletions), stream(words...))
	if !ended {
		t.Fatal("the stream was not ended")
	}
	if strings.Contains(got, "xviolence6") {
		t.Errorf("the violating word reached the client:\n%s", got)
	}
	if !strings.HasSuffix(got, `"choices":[{"index":0,"delta":{},"finish_reason":"content_filter"}]}`+"\n\ndata: [DONE]\n\n") {
		t.Errorf("the stream does not end with a content_filter chunk and [DONE]:\n%s", got)
	}
	if strings.Contains(got, "jumps") {
		t.Errorf("text after the violating window reached the client:\n%s", got)
	}

	// A clean stream passes whole and unchanged, in windows.
	clean := stream(words[:4]...)
	for _, w := range words[5:] {
		clean = append(clean[:len(clean)-2], append([][]byte{delta(0, w)}, clean[len(clean)-2:]...)...)
	}
	got, ended, per := run(t, s.newCompletionTap(context.Background(), p, wire.OpChatCompletions), clean)
	var want strings.Builder
	for _, ev := range clean {
		want.Write(ev)
	}
	if ended || got != want.String() {
		t.Errorf("clean stream changed (ended %v):\n%s", ended, got)
	}
	released := 0
	for _, o := range per[:len(per)-2] {
		if len(o) > 0 {
			released++
		}
	}
	if released < 2 {
		t.Errorf("window mode held the whole stream: %d releases before the end", released)
	}
}

func TestCompletionBuffered(t *testing.T) {
	s := New(Options{})
	p, _ := testPolicy(t, "buffered", false)
	_, ended, per := run(t, s.newCompletionTap(context.Background(), p, wire.OpChatCompletions), stream("a ", "b ", "c"))
	for i, o := range per[:len(per)-1] {
		if len(o) > 0 {
			t.Errorf("event %d went out before the end in buffered mode", i)
		}
	}
	if ended || !strings.Contains(string(per[len(per)-1]), "data: [DONE]") {
		t.Errorf("the end did not release the stream")
	}
	got, ended, _ := run(t, s.newCompletionTap(context.Background(), p, wire.OpChatCompletions), stream("a ", "xviolence4 ", "c"))
	if !ended || strings.Contains(got, "xviolence4") || !strings.Contains(got, "content_filter") {
		t.Errorf("buffered violation: ended %v\n%s", ended, got)
	}
	body := []byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"a xviolence6 b"},"finish_reason":"stop"}]}`)
	if _, err := s.newCompletionTap(context.Background(), p, wire.OpChatCompletions).Body(body); err == nil || !strings.Contains(err.Error(), "Violence") {
		t.Errorf("Body of a violating answer: err = %v", err)
	}
	clean := []byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}]}`)
	if out, err := s.newCompletionTap(context.Background(), p, wire.OpChatCompletions).Body(clean); err != nil || string(out) != string(clean) {
		t.Errorf("Body of a clean answer: %s, %v", out, err)
	}
}

func TestCompletionServiceDown(t *testing.T) {
	for _, open := range []bool{false, true} {
		s := New(Options{})
		p, sim := testPolicy(t, "window", open)
		sim.SetFaults(simulator.Faults{ErrorRate: 1})
		got, ended, _ := run(t, s.newCompletionTap(context.Background(), p, wire.OpChatCompletions), stream("a ", "b"))
		if open && (ended || !strings.Contains(got, "[DONE]") || strings.Contains(got, "content_filter")) {
			t.Errorf("fail_open: the stream did not pass:\n%s", got)
		}
		if !open && (!ended || !strings.Contains(got, "content_filter") || strings.Contains(got, `"b"`)) {
			t.Errorf("fail_closed: the stream was not ended as filtered:\n%s", got)
		}
		if st := s.Stats(); st.Errors[ErrorKey{"p", "completion", onError(open)}] == 0 {
			t.Errorf("on_error %s: no error counted: %+v", onError(open), st.Errors)
		}
	}
}

func TestCompletionResponsesStream(t *testing.T) {
	s := New(Options{})
	p, _ := testPolicy(t, "window", false)
	ev := func(typ, extra string) []byte {
		return []byte("event: " + typ + "\ndata: {\"type\":\"" + typ + "\"" + extra + "}\n\n")
	}
	events := [][]byte{ev("response.created", `,"response":{"id":"resp_1","status":"in_progress"}`)}
	for _, w := range []string{"one ", "two ", "three ", "four ", "xviolence6 ", "six ", "seven ", "eight ", "nine ", "ten ", "eleven "} {
		events = append(events, ev("response.output_text.delta", `,"output_index":0,"content_index":0,"delta":"`+w+`"`))
	}
	events = append(events, ev("response.completed", `,"response":{"id":"resp_1","status":"completed"}`))
	got, ended, _ := run(t, s.newCompletionTap(context.Background(), p, wire.OpResponses), events)
	if !ended || strings.Contains(got, "xviolence6") || strings.Contains(got, "response.completed") ||
		!strings.HasSuffix(got, `"response":{"id":"resp_1","object":"response","status":"incomplete","incomplete_details":{"reason":"content_filter"}}}`+"\n\n") {
		t.Errorf("ended %v:\n%s", ended, got)
	}
}

// BenchmarkCompletionTapEvent is the cost of a window-mode tap per event,
// between service calls (one window per 10,000 characters).
func BenchmarkCompletionTapEvent(b *testing.B) {
	s := New(Options{})
	p := &policy{product: "p", mode: "window", size: 10000, overlap: 100}
	tap := s.newCompletionTap(context.Background(), p, wire.OpChatCompletions)
	ev := delta(0, "word ")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%1000 == 0 {
			tap = s.newCompletionTap(context.Background(), p, wire.OpChatCompletions)
		}
		if _, err := tap.Event(ev); err != nil {
			b.Fatal(err)
		}
	}
}
