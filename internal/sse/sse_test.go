package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func readAll(t *testing.T, r io.Reader) ([]string, error) {
	t.Helper()
	rd := NewReader(r)
	var evs []string
	for {
		ev, err := rd.Next()
		if len(ev) > 0 {
			evs = append(evs, string(ev))
		}
		if err != nil {
			if err == io.EOF {
				return evs, nil
			}
			return evs, err
		}
	}
}

func TestReaderNext(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"openai", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []string{"data: {\"a\":1}\n\n", "data: [DONE]\n\n"}},
		{"crlf", "data: x\r\n\r\ndata: y\r\n\r\n", []string{"data: x\r\n\r\n", "data: y\r\n\r\n"}},
		{"multi-line event", "event: response.created\ndata: {}\nid: 1\n\n", []string{"event: response.created\ndata: {}\nid: 1\n\n"}},
		{"comment", ": keep-alive\n\ndata: x\n\n", []string{": keep-alive\n\n", "data: x\n\n"}},
		{"unterminated tail", "data: x\n\ndata: y\n", []string{"data: x\n\n", "data: y\n"}},
		{"no newline at all", "data: y", []string{"data: y"}},
		{"leading blank", "\ndata: x\n\n", []string{"\n", "data: x\n\n"}},
		{"long line", "data: " + strings.Repeat("x", 10000) + "\n\n", []string{"data: " + strings.Repeat("x", 10000) + "\n\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range map[string]io.Reader{
				"whole":    strings.NewReader(tt.in),
				"one byte": iotest.OneByteReader(strings.NewReader(tt.in)),
			} {
				got, err := readAll(t, r)
				if err != nil {
					t.Fatalf("read error %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("events differ (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestReaderBrokenStream(t *testing.T) {
	broken := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(broken))
	rd := NewReader(r)
	ev, err := rd.Next()
	if string(ev) != "data: a\n\n" || err != nil {
		t.Fatalf("first Next = %q, %v; want the first event", ev, err)
	}
	ev, err = rd.Next()
	if string(ev) != "data: b" || !errors.Is(err, broken) {
		t.Fatalf("second Next = %q, %v; want the partial event and the read error", ev, err)
	}
}

func TestReaderTooLarge(t *testing.T) {
	rd := NewReader(strings.NewReader("data: " + strings.Repeat("x", 100) + "\n\n"))
	rd.SetMaxEventBytes(50)
	if _, err := rd.Next(); !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("Next error = %v; want ErrEventTooLarge", err)
	}
}

func TestData(t *testing.T) {
	tests := []struct {
		event string
		want  []byte
	}{
		{"data: {\"a\":1}\n\n", []byte(`{"a":1}`)},
		{"data:nospace\n\n", []byte("nospace")},
		{"data:  two spaces\n\n", []byte(" two spaces")},
		{"event: x\ndata: a\ndata: b\n\n", []byte("a\nb")},
		{"data: a\r\ndata: b\r\n\r\n", []byte("a\nb")},
		{"data\n\n", []byte{}},
		{": comment\n\n", nil},
		{"event: ping\n\n", nil},
	}
	for _, tt := range tests {
		if got := Data([]byte(tt.event)); !bytes.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("Data(%q) = %q; want %q", tt.event, got, tt.want)
		}
	}
}

// FuzzReader checks that splitting never panics, never loses or adds a byte,
// and that every event but the last ends with a blank line.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"data: {\"choices\":[]}\n\ndata: [DONE]\n\n",
		"event: a\r\ndata: b\r\n\r\n",
		": c\n\n\n\ndata: x",
		"\r\n\r\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// Byte by byte, the events must be the same as read at once.
		events := func(src io.Reader) (evs [][]byte) {
			rd := NewReader(src)
			for {
				ev, err := rd.Next()
				evs = append(evs, bytes.Clone(ev))
				if err != nil {
					return evs
				}
			}
		}
		once, split := events(bytes.NewReader(in)), events(iotest.OneByteReader(bytes.NewReader(in)))
		if len(once) != len(split) {
			t.Fatalf("%d events read at once, %d byte by byte", len(once), len(split))
		}
		for i := range once {
			if !bytes.Equal(once[i], split[i]) {
				t.Fatalf("event %d: %q at once, %q byte by byte", i, once[i], split[i])
			}
		}
		rd := NewReader(bytes.NewReader(in))
		var all []byte
		for {
			ev, err := rd.Next()
			all = append(all, ev...)
			_ = Data(ev)
			if err != nil {
				if err != io.EOF {
					t.Fatalf("Next error %v", err)
				}
				break
			}
			if !bytes.HasSuffix(ev, []byte("\n\n")) && !bytes.HasSuffix(ev, []byte("\r\n\r\n")) &&
				!bytes.HasSuffix(ev, []byte("\n\r\n")) && !bytes.HasSuffix(ev, []byte("\r\n\n")) && !(len(ev) <= 2) {
				t.Fatalf("event %q does not end with a blank line", ev)
			}
		}
		if !bytes.Equal(all, in) {
			t.Fatalf("events joined = %q; want the input %q", all, in)
		}
	})
}

// TestReaderHoldsLittle: an open stream keeps a buffer the size of its
// largest event, not a fixed read buffer on top of it.
func TestReaderHoldsLittle(t *testing.T) {
	ev := "data: " + strings.Repeat("x", 700) + "\n\n"
	rd := NewReader(strings.NewReader(strings.Repeat(ev, 50)))
	for {
		got, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil || string(got) != ev {
			t.Fatalf("Next = %q, %v", got, err)
		}
	}
	if c := cap(rd.buf); c > 2*initialBytes {
		t.Errorf("buffer of %d bytes for 708-byte events; want at most %d", c, 2*initialBytes)
	}
}

func BenchmarkReader(b *testing.B) {
	var stream bytes.Buffer
	for i := 0; i < 100; i++ {
		stream.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":" word"},"finish_reason":null}]}` + "\n\n")
	}
	stream.WriteString("data: [DONE]\n\n")
	in := stream.Bytes()
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		drain(in)
	}
}

func TestReaderBuffered(t *testing.T) {
	rd := NewReader(strings.NewReader("data: a\n\ndata: b\r\n\r\ndata: c\n"))
	if rd.Buffered() {
		t.Error("Buffered before any read = true; want false")
	}
	for i, want := range []bool{true, false} {
		if _, err := rd.Next(); err != nil {
			t.Fatal(err)
		}
		if got := rd.Buffered(); got != want {
			t.Errorf("after event %d: Buffered = %v; want %v", i+1, got, want)
		}
	}
}

// stutterReader gives one byte per read, with a read of nothing between.
type stutterReader struct {
	src  io.Reader
	idle bool
}

func (s *stutterReader) Read(p []byte) (int, error) {
	if s.idle = !s.idle; s.idle || len(p) == 0 {
		return 0, nil
	}
	return s.src.Read(p[:1])
}

// TestReaderEmptyReads: reads of nothing between reads of data are progress
// enough; only 100 in a row mean a broken source.
func TestReaderEmptyReads(t *testing.T) {
	ev := "data: " + strings.Repeat("y", 500) + "\n\n"
	rd := NewReader(&stutterReader{src: strings.NewReader(ev)})
	if got, err := rd.Next(); err != nil || string(got) != ev {
		t.Fatalf("Next = %d bytes, %v; want the %d-byte event", len(got), err, len(ev))
	}
	rd = NewReader(iotest.ErrReader(nil)) // always 0, nil
	if _, err := rd.Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("a source that never gives anything: %v; want io.ErrNoProgress", err)
	}
}

// TestReaderTooLargeKeepsTheRest: an event over the limit is reported, and
// the events after it are still read.
func TestReaderTooLargeKeepsTheRest(t *testing.T) {
	rd := NewReader(strings.NewReader("data: " + strings.Repeat("z", 100) + "\n\ndata: small\n\n"))
	rd.SetMaxEventBytes(50)
	if _, err := rd.Next(); !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("first event: %v; want ErrEventTooLarge", err)
	}
	if got, err := rd.Next(); err != nil || string(got) != "data: small\n\n" {
		t.Errorf("second event: %q, %v; want it whole", got, err)
	}
}

// BenchmarkReaderAfterLargeEvent: small events read after a 1 MB one, from
// a source that fills the grown buffer. Unread bytes are not moved per event,
// so this costs what small events cost anywhere.
func BenchmarkReaderAfterLargeEvent(b *testing.B) {
	var stream bytes.Buffer
	stream.WriteString("data: " + strings.Repeat("x", 1<<20) + "\n\n")
	small := `data: {"choices":[{"index":0,"delta":{"content":" word"}}]}` + "\n\n"
	for stream.Len() < 4<<20 {
		stream.WriteString(small)
	}
	in := stream.Bytes()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		drain(in)
	}
}

// drain reads every event of in.
func drain(in []byte) {
	rd := NewReader(bytes.NewReader(in))
	for {
		if _, err := rd.Next(); err != nil {
			return
		}
	}
}
