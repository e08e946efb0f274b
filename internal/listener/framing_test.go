package listener

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// frame is where a request's head and the whole request end, as offsets in
// the connection's byte stream.
type frame struct{ HeadEnd, End int64 }

// tracked is what a tracker made of a stream.
type tracked struct {
	Frames    []frame
	RefusedAt int64 // where the refused request began; -1: none
	Why       refusal
}

// track feeds stream to a new tracker in pieces of the sizes cuts gives, in
// turn (a size of 0 is taken as 1), the way a connection's reads would.
func track(t *testing.T, stream []byte, cuts []int) tracked {
	t.Helper()
	out := tracked{RefusedAt: -1}
	var tr tracker
	tr.onRequest = func(h, e int64) { out.Frames = append(out.Frames, frame{h, e}) }
	for pos, k := 0, 0; pos < len(stream); k++ {
		n := len(stream) - pos
		if len(cuts) > 0 {
			n = min(max(cuts[k%len(cuts)], 1), n)
		}
		keep, why := tr.feed(stream[pos : pos+n])
		if why != refuseNone {
			if want := int(max(tr.headAt-int64(pos), 0)); keep != want {
				t.Fatalf("feed kept %d bytes of a piece at %d; want %d, up to the refused request at %d", keep, pos, want, tr.headAt)
			}
			out.RefusedAt, out.Why = tr.headAt, why
			return out
		}
		if keep != n {
			t.Fatalf("feed kept %d of %d bytes without refusing", keep, n)
		}
		pos += n
	}
	return out
}

// goFrame is a request net/http's server reads from a stream.
type goFrame struct {
	Start, HeadEnd, End int64
	// Refusable: the raw head carries Transfer-Encoding and Content-Length,
	// or Transfer-Encoding in HTTP/1.0.
	Refusable bool
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// goFrames reads stream as net/http's server reads a connection: after a POST
// it discards up to four CR/LF (conn.readRequest), reads a request with
// http.ReadRequest through a bufio.Reader of the server's size, refuses what
// its HTTP/1 server does not support, and reads the body whole. It returns the
// requests it accepts, up to and including the first refusable one, and stops
// at the first it cannot read.
func goFrames(stream []byte) []goFrame {
	cr := &countingReader{r: bytes.NewReader(stream)}
	br := bufio.NewReaderSize(cr, 4096)
	pos := func() int64 { return cr.n - int64(br.Buffered()) }
	var out []goFrame
	lastPOST := false
	for {
		start := pos()
		if lastPOST {
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			_, _ = br.Discard(n)
		}
		if _, err := br.Peek(1); err != nil {
			return out
		}
		headStart := pos()
		req, err := http.ReadRequest(br)
		if err != nil {
			return out
		}
		if req.ProtoMajor != 1 && (req.ProtoMajor != 2 || req.ProtoMinor != 0 || req.Method != "PRI" || req.RequestURI != "*") {
			return out // 505
		}
		f := goFrame{Start: start, HeadEnd: pos()}
		// The raw head, as net/textproto reads it, before net/http drops
		// the field it ignores.
		tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(stream[headStart:f.HeadEnd])))
		if _, err := tp.ReadLine(); err != nil {
			panic(err)
		}
		raw, err := tp.ReadMIMEHeader()
		if err != nil {
			panic(err)
		}
		te, cl := len(raw["Transfer-Encoding"]) > 0, len(raw["Content-Length"]) > 0
		if f.Refusable = te && (cl || req.ProtoMinor == 0 && req.ProtoMajor == 1); f.Refusable {
			return append(out, f)
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return out
		}
		f.End = pos()
		out = append(out, f)
		lastPOST = req.Method == "POST"
	}
}

// agree checks the tracker against net/http on stream: every request net/http
// reads, the tracker reads with the same boundaries, or refuses it when it
// is refusable; it never stops following, nor refuses, before.
func agree(t *testing.T, stream []byte, cuts []int) {
	t.Helper()
	want := goFrames(stream)
	got := track(t, stream, cuts)
	for i, w := range want {
		if w.Refusable {
			if got.RefusedAt != w.Start || len(got.Frames) != i {
				t.Fatalf("request %d at %d carries Transfer-Encoding with Content-Length or in HTTP/1.0: tracker saw %d requests, refused at %d; want %d, refused at %d\nstream %q",
					i, w.Start, len(got.Frames), got.RefusedAt, i, w.Start, stream)
			}
			return
		}
		if i >= len(got.Frames) {
			t.Fatalf("net/http reads request %d (%+v) but the tracker saw only %d requests (refused at %d)\nstream %q",
				i, w, len(got.Frames), got.RefusedAt, stream)
		}
		if g := got.Frames[i]; g.HeadEnd != w.HeadEnd || g.End != w.End {
			t.Fatalf("request %d: tracker frames it %+v; net/http reads head to %d, request to %d\nstream %q",
				i, g, w.HeadEnd, w.End, stream)
		}
	}
}

func TestTracker(t *testing.T) {
	const (
		get      = "GET /v1/models HTTP/1.1\r\nHost: a\r\n\r\n"
		post     = "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
		chunked  = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
		smuggled = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nG"
	)
	// at returns the frame of a request of length n that starts at start and
	// whose head is head bytes long.
	at := func(start, head, n int) frame { return frame{int64(start + head), int64(start + n)} }
	headLen := func(s string) int { return strings.Index(s, "\r\n\r\n") + 4 }
	g, p, c := len(get), len(post), len(chunked)
	tests := []struct {
		name   string
		stream string
		want   tracked
	}{
		{"get", get, tracked{Frames: []frame{at(0, g, g)}, RefusedAt: -1}},
		{"post", post, tracked{Frames: []frame{at(0, headLen(post), p)}, RefusedAt: -1}},
		{"chunked with extension and trailer", chunked,
			tracked{Frames: []frame{at(0, headLen(chunked), c)}, RefusedAt: -1}},
		{"pipelined", post + chunked + get,
			tracked{Frames: []frame{at(0, headLen(post), p), at(p, headLen(chunked), c), at(p+c, g, g)}, RefusedAt: -1}},
		{"CRLF after a POST is skipped", post + "\r\n" + get,
			tracked{Frames: []frame{at(0, headLen(post), p), at(p, 2+g, 2+g)}, RefusedAt: -1}},
		{"body that looks like a request", "POST / HTTP/1.1\r\nContent-Length: 36\r\n\r\n" + get,
			tracked{Frames: []frame{at(0, 39, 39+g)}, RefusedAt: -1}},
		{"chunked and Content-Length", smuggled, tracked{RefusedAt: 0, Why: refuseBothFramings}},
		{"chunked and Content-Length after a request", get + smuggled,
			tracked{Frames: []frame{at(0, g, g)}, RefusedAt: int64(g), Why: refuseBothFramings}},
		{"Content-Length before Transfer-Encoding", "POST / HTTP/1.1\r\nContent-Length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
			tracked{RefusedAt: 0, Why: refuseBothFramings}},
		{"Transfer-Encoding that is not chunked and Content-Length", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
			tracked{RefusedAt: 0, Why: refuseBothFramings}},
		{"folded Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\n",
			tracked{RefusedAt: 0, Why: refuseBothFramings}},
		{"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			tracked{RefusedAt: 0, Why: refuseOldChunked}},
		{"a field named like Content-Length", "POST / HTTP/1.1\r\nContent-Lengths: 3\r\nX-Content-Length: 4\r\n\r\n",
			tracked{Frames: []frame{at(0, 60, 60)}, RefusedAt: -1}},
		{"Content-Length with white space", "POST / HTTP/1.1\r\nContent-Length: \t 003 \t\r\n\r\nabc",
			tracked{Frames: []frame{at(0, 44, 47)}, RefusedAt: -1}},
		{"bare LF line ends", "POST / HTTP/1.1\nContent-Length: 3\n\nabcGET / HTTP/1.1\n\n",
			tracked{Frames: []frame{at(0, 35, 38), at(38, 16, 16)}, RefusedAt: -1}},
		// Malformed input net/http refuses itself: no refusal, the tracker
		// stops following.
		{"Content-Length not a number", "POST / HTTP/1.1\r\nContent-Length: 3x\r\n\r\nabc" + smuggled, tracked{RefusedAt: -1}},
		{"two Content-Lengths", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 03\r\n\r\nabc" + smuggled, tracked{RefusedAt: -1}},
		{"bare LF in chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + smuggled, tracked{RefusedAt: -1}},
		{"HTTP/0.9", "GET /\r\n\r\n" + smuggled, tracked{RefusedAt: -1}},
		{"HTTP/3.0", "GET / HTTP/3.0\r\n\r\n" + smuggled, tracked{RefusedAt: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, cuts := range [][]int{nil, {1}, {3, 7}} {
				if diff := cmp.Diff(tt.want, track(t, []byte(tt.stream), cuts)); diff != "" {
					t.Errorf("pieces %v: tracked (-want +got):\n%s", cuts, diff)
				}
			}
			agree(t, []byte(tt.stream), nil)
		})
	}
}

// validRequests writes n requests that net/http reads, drawn from rng: every
// version, method, body framing, letter case, white space and folding it
// accepts, bodies of random bytes, and CR/LF between requests after a POST.
func validRequests(rng *rand.Rand, n int) []byte {
	var b bytes.Buffer
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	ows := func() string { return pick("", "", " ", "\t", "  \t ") }
	eol := func() string { return pick("\r\n", "\r\n", "\r\n", "\n") }
	randomCase := func(s string) string {
		r := []byte(s)
		for i := range r {
			if rng.IntN(2) == 0 {
				r[i] = lower(r[i])
			} else if 'a' <= r[i] && r[i] <= 'z' {
				r[i] -= 'a' - 'A'
			}
		}
		return string(r)
	}
	body := func() []byte {
		p := make([]byte, rng.IntN(3)*rng.IntN(600))
		for i := range p {
			p[i] = pick("a", "\r", "\n", "0", ":", " ", "G", "\x00")[0]
		}
		if len(p) > 40 && rng.IntN(2) == 0 {
			copy(p, "GET / HTTP/1.1\r\nContent-Length: 9\r\n\r\n")
		}
		return p
	}
	lastPOST := false
	for range n {
		if lastPOST {
			b.WriteString(pick("", "", "\r\n", "\n", "\r\n\r\n"))
		}
		method := pick("POST", "POST", "GET", "PUT", "PATCH", "DELETE", "OPTIONS", "POSTS")
		lastPOST = method == "POST"
		old := rng.IntN(6) == 0
		proto := pick("HTTP/1.1", "HTTP/1.1", "HTTP/1.2")
		if old {
			proto = "HTTP/1.0"
		}
		fmt.Fprintf(&b, "%s /openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21 %s%s", method, proto, eol())
		fields := []string{"Host: gateway", "Api-Key: sk-0123456789", "User-Agent: OpenAI/Python 1.0", "Content-Type: application/json",
			"X-Stainless-Lang: python", "Accept: */*", "Transfer-Encodings: chunked", "Content-Lengths: 12", "X: a" + eol() + " folded"}
		rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
		fields = fields[:rng.IntN(len(fields)+1)]
		p := body()
		framing := rng.IntN(3) // 0: none, 1: Content-Length, 2: chunked
		if old && framing == 2 {
			framing = 1
		}
		if framing == 0 && len(p) > 0 {
			framing = 1
		}
		switch framing {
		case 1:
			n := fmt.Sprint(len(p))
			if rng.IntN(4) == 0 {
				n = "00" + n
			}
			field := randomCase("content-length") + ":" + ows() + n + ows()
			if rng.IntN(8) == 0 {
				field = randomCase("content-length") + ":" + ows() + eol() + " " + n + eol() + " " + ows()
			}
			fields = append(fields, field)
			if rng.IntN(6) == 0 {
				fields = append(fields, "Content-Length: "+n)
			}
		case 2:
			field := randomCase("transfer-encoding") + ":" + ows() + randomCase("chunked") + ows()
			if rng.IntN(8) == 0 {
				field = randomCase("transfer-encoding") + ":" + eol() + " " + ows() + "chunked"
			}
			fields = append(fields, field)
		}
		rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
		for _, f := range fields {
			b.WriteString(f + eol())
		}
		b.WriteString(eol())
		if framing != 2 {
			b.Write(p)
			continue
		}
		for len(p) > 0 {
			k := min(len(p), 1+rng.IntN(200))
			fmt.Fprintf(&b, "%s%s\r\n", pick(fmt.Sprintf("%x", k), fmt.Sprintf("%X", k), fmt.Sprintf("00%x", k)),
				pick("", "", ";ext", "; a=b ;c=\"d\"", " \t"))
			b.Write(p[:k])
			b.WriteString("\r\n")
			p = p[k:]
		}
		b.WriteString(pick("0", "000") + pick("", ";last") + "\r\n")
		if rng.IntN(4) == 0 {
			// net/http wants a CRLF CRLF ahead before it reads a trailer.
			b.WriteString("X-Trailer: 1\r\n folded\r\n")
		}
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// FuzzTrackerValid feeds pipelined requests net/http reads, with random
// bodies, to the tracker in random pieces: it frames every one where net/http
// does, and refuses none.
func FuzzTrackerValid(f *testing.F) {
	for seed := range uint64(16) {
		f.Add(seed, uint8(seed))
	}
	f.Fuzz(func(t *testing.T, seed uint64, n uint8) {
		rng := rand.New(rand.NewPCG(seed, uint64(n)))
		count := 1 + int(n)%8
		stream := validRequests(rng, count)
		want := goFrames(stream)
		if len(want) != count {
			t.Fatalf("the generator wrote %d requests but net/http reads %d:\n%q", count, len(want), stream)
		}
		cuts := make([]int, 1+rng.IntN(8))
		for i := range cuts {
			cuts[i] = 1 + rng.IntN(4096)
		}
		got := track(t, stream, cuts)
		if got.RefusedAt >= 0 {
			t.Fatalf("refused the request at %d:\n%q", got.RefusedAt, stream)
		}
		agree(t, stream, cuts)
		if len(got.Frames) != count {
			t.Fatalf("tracked %d requests; want %d", len(got.Frames), count)
		}
	})
}

// FuzzTrackerRaw feeds any bytes to the tracker and to net/http: the tracker
// never panics, and frames every request net/http reads where it does, or
// refuses it when its framing is ambiguous; it never stops following while
// net/http still reads requests.
func FuzzTrackerRaw(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 8 {
		f.Add(validRequests(rng, 3), uint8(0))
	}
	for _, s := range []string{
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\nGET / HTTP/1.1\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, stream []byte, cut uint8) {
		agree(t, stream, []int{int(cut)})
	})
}

// typicalRequest is a chat completion as the OpenAI Python SDK sends it:
// about 1.5 KB.
func typicalRequest() []byte {
	body := `{"model":"gpt-4o","stream":true,"max_tokens":256,"messages":[{"role":"system","content":"You are a helpful assistant."},` +
		`{"role":"user","content":"` + strings.Repeat("Tell me about the history of the river Thames. ", 18) + `"}]}`
	head := "POST /openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21 HTTP/1.1\r\n" +
		"Host: sluice.example.com\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\nAccept: application/json\r\n" +
		"Content-Type: application/json\r\nUser-Agent: AzureOpenAI/Python 1.54.4\r\nX-Stainless-Lang: python\r\n" +
		"X-Stainless-Package-Version: 1.54.4\r\nX-Stainless-Os: Linux\r\nX-Stainless-Arch: x64\r\nX-Stainless-Runtime: CPython\r\n" +
		"X-Stainless-Runtime-Version: 3.12.7\r\nApi-Key: 0123456789abcdef0123456789abcdef\r\nX-Stainless-Retry-Count: 0\r\n" +
		"Content-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n"
	return []byte(head + body)
}

// BenchmarkTracker is the tracker's cost per request on a typical request,
// read whole as net/http's 4 KB buffer reads it.
func BenchmarkTracker(b *testing.B) {
	req := typicalRequest()
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	var t tracker
	for b.Loop() {
		if keep, _ := t.feed(req); keep != len(req) || t.state != sLineStart {
			b.Fatalf("feed kept %d of %d bytes, state %d", keep, len(req), t.state)
		}
	}
}

// BenchmarkTrackerChunked is the same request with a chunked body in 256-byte
// chunks, read in 512-byte pieces.
func BenchmarkTrackerChunked(b *testing.B) {
	req := typicalRequest()
	head, body, _ := bytes.Cut(req, []byte("\r\n\r\n"))
	head = bytes.Replace(head, []byte("Content-Length: "), []byte("Transfer-Encoding: chunked\r\nX-Length: "), 1)
	var s bytes.Buffer
	s.Write(head)
	s.WriteString("\r\n\r\n")
	for p := body; len(p) > 0; {
		k := min(len(p), 256)
		fmt.Fprintf(&s, "%x\r\n%s\r\n", k, p[:k])
		p = p[k:]
	}
	s.WriteString("0\r\n\r\n")
	stream := s.Bytes()
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	var t tracker
	for b.Loop() {
		for p := stream; len(p) > 0; {
			k := min(len(p), 512)
			if keep, _ := t.feed(p[:k]); keep != k {
				b.Fatal("refused")
			}
			p = p[k:]
		}
		if t.state != sLineStart {
			b.Fatalf("state %d after the request", t.state)
		}
	}
}

// replayConn is a net.Conn whose every Read returns one whole request.
type replayConn struct {
	net.Conn
	req []byte
}

func (r replayConn) Read(p []byte) (int, error) { return copy(p, r.req), nil }

// BenchmarkConnRead is a Conn's cost per Read on top of its connection's:
// a typical request read whole into net/http's 4 KB buffer.
func BenchmarkConnRead(b *testing.B) {
	req := typicalRequest()
	buf := make([]byte, 4096)
	for _, bc := range []struct {
		name string
		conn net.Conn
	}{
		{"bare", replayConn{req: req}},
		{"wrapped", &Conn{Conn: replayConn{req: req}, l: New(nil, Options{}), hooked: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(req)))
			b.ReportAllocs()
			for b.Loop() {
				if n, err := bc.conn.Read(buf); n != len(req) || err != nil {
					b.Fatalf("Read = %d, %v", n, err)
				}
			}
		})
	}
}
