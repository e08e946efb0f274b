package listener

import "bytes"

// refusal is why a request was refused before net/http could read it.
type refusal uint32

const (
	refuseNone refusal = iota
	// refuseBothFramings: the head carries Transfer-Encoding and
	// Content-Length. RFC 9112, section 6.1: such a message "ought to be
	// handled as an error"; net/http drops Content-Length and serves it.
	refuseBothFramings
	// refuseOldChunked: an HTTP/1.0 head carries Transfer-Encoding. RFC
	// 9112, section 6.1: the framing is faulty; net/http ignores the
	// Transfer-Encoding and reads the chunked body as the next request.
	refuseOldChunked
)

func (r refusal) String() string {
	switch r {
	case refuseBothFramings:
		return "Transfer-Encoding with Content-Length"
	case refuseOldChunked:
		return "Transfer-Encoding in HTTP/1.0"
	}
	return "none"
}

// The tracker's states. A request is the request line, the header lines, the
// blank line, then a body framed by Content-Length or by chunks and trailers.
const (
	sLineStart    = iota // start of a request: CR/LF skipped after a POST, or the method
	sMethod              // the method, up to the first space
	sTarget              // the request target, up to the second space
	sProto               // the version, up to LF
	sFieldStart          // start of a header line
	sFieldCR             // CR at the start of a header line: the head ends if LF follows
	sName                // a field name that may be Content-Length or Transfer-Encoding
	sSkipLine            // the rest of a header line that does not matter
	sValue               // the value of Content-Length or Transfer-Encoding
	sValueCR             // CR in such a value: LF must follow
	sBody                // Content-Length body
	sChunkSize           // a chunk-size line's hex digits
	sChunkOWS            // white space after the chunk size
	sChunkExt            // a chunk extension, up to CR
	sChunkLF             // LF ending a chunk-size line
	sChunkData           // a chunk's data
	sChunkDataCR         // CR after a chunk's data
	sChunkDataLF         // LF after a chunk's data
	sTrailerStart        // start of a trailer line
	sTrailerCR           // CR at the start of a trailer line
	sTrailerSkip         // the rest of a trailer line
	sOff                 // not following: malformed input net/http refuses itself
	sRefused             // a request was refused; nothing more is read
)

// The header fields that frame a body, and what a value of each is at.
const (
	fieldOther = iota
	fieldCL
	fieldTE
)

const (
	phaseLead   = iota // white space before the value
	phaseDigits        // Content-Length digits
	phaseMatch         // matching "chunked"
	phaseTrail         // white space after the value
	phaseOther         // a Transfer-Encoding that is not exactly chunked
)

var fieldNames = [...]string{fieldCL: "content-length", fieldTE: "transfer-encoding"}

const maxContentLength = 1<<63 - 1 // net/http parses it with strconv.ParseUint(s, 10, 63)

// tracker follows HTTP/1.1 message framing (RFC 9112) over the bytes a server
// reads from a connection, as net/http's server reads them, so that a request
// whose framing is ambiguous is refused before net/http parses it. It reads
// only what framing needs: the method (net/http skips CR/LF after a POST), the
// version, the Content-Length and Transfer-Encoding fields (with obsolete line
// folding), the body's length or chunk sizes, and the trailer's end.
// Where the input is malformed in a way net/http refuses itself, it stops
// following (sOff): net/http answers an error and closes the connection, so
// nothing after it is ever read as a request.
//
// Its zero value is ready for a new connection. It is not safe for
// concurrent use; net/http never reads a connection from two goroutines at once.
type tracker struct {
	state  uint8
	pos    int64 // bytes fed so far
	headAt int64 // offset of the first byte of the request being read

	// The request line.
	lastPOST bool  // the previous request was a POST: up to 4 CR/LF may precede this one
	skipped  uint8 // CR/LF skipped before this request
	method   uint8 // bytes of the method matching "POST"; 5 once it does not
	proto    [9]byte
	protoN   uint8
	old      bool // HTTP/1.0: net/http ignores Transfer-Encoding

	// The header section.
	anyField  bool  // a header line was read: a continuation line is allowed
	field     uint8 // the field of the line being read
	nameIdx   uint8
	phase     uint8
	teIdx     uint8  // bytes of "chunked" matched
	zeros     uint64 // leading zeros of the Content-Length being read
	value     uint64 // the Content-Length being read
	nonzero   bool   // a non-zero digit was read
	clSeen    bool
	clZeros   uint64 // the first Content-Length, as its leading zeros and value,
	clValue   uint64 // which together spell the string net/http compares
	teCount   int
	teChunked bool
	why       refusal

	// The body.
	remaining   uint64 // body or chunk bytes to skip
	chunkDigits uint8
	anyTrailer  bool

	// onRequest, when set (by tests), is called when a request ends, with
	// the offsets where its head and the whole request end.
	onRequest func(headEnd, end int64)
	headEnd   int64
}

// feed follows p, the next bytes the server reads. It returns how many of them
// the server may have: all of them, or, when a request whose head ends in p is
// refused, only the bytes before that request (none if it began earlier).
func (t *tracker) feed(p []byte) (keep int, why refusal) {
	base := t.pos
	t.pos += int64(len(p))
	i := 0
	for i < len(p) {
		switch t.state {
		case sLineStart:
			c := p[i]
			if c == '\r' || c == '\n' {
				// net/http discards up to four CR or LF after a POST
				// (RFC 7230, section 3.5); anywhere else they make
				// an empty request line, which it refuses.
				if !t.lastPOST || t.skipped == 4 {
					t.state = sOff
					return len(p), refuseNone
				}
				t.skipped++
				i++
				continue
			}
			t.state = sMethod
			// Most request lines arrive whole: read one at once.
			if j := bytes.IndexByte(p[i:], '\n'); j >= 0 {
				if !t.requestLine(p[i : i+j]) {
					t.state = sOff
					return len(p), refuseNone
				}
				i += j + 1
				t.state = sFieldStart
			}
		case sMethod:
			c := p[i]
			switch {
			case c == ' ':
				t.state = sTarget
			case c == '\r' || c == '\n':
				t.state = sOff
				return len(p), refuseNone
			case t.method < 4 && c == "POST"[t.method]:
				t.method++
			default:
				t.method = 5
			}
			i++
		case sTarget:
			rest := p[i:]
			sp := bytes.IndexByte(rest, ' ')
			var lf int
			if sp >= 0 {
				lf = bytes.IndexByte(rest[:sp], '\n')
			} else {
				lf = bytes.IndexByte(rest, '\n')
			}
			switch {
			case lf >= 0:
				// One space only: net/http refuses the request line.
				t.state = sOff
				return len(p), refuseNone
			case sp >= 0:
				t.state = sProto
				i += sp + 1
			default:
				i = len(p)
			}
		case sProto:
			c := p[i]
			i++
			if c != '\n' {
				if int(t.protoN) == len(t.proto) {
					t.state = sOff // longer than "HTTP/1.1\r"
					return len(p), refuseNone
				}
				t.proto[t.protoN] = c
				t.protoN++
				continue
			}
			if !t.version() {
				t.state = sOff
				return len(p), refuseNone
			}
			t.state = sFieldStart
		case sFieldStart:
			c := p[i]
			switch c {
			case '\n':
				i++
				t.endHead(base + int64(i))
			case '\r':
				i++
				t.state = sFieldCR
			case ' ', '\t':
				// Obsolete line folding: the line continues the field
				// before it, joined with a space.
				if !t.anyField {
					t.state = sOff // net/http refuses a first line that starts so
					return len(p), refuseNone
				}
				i++
				if t.field == fieldOther {
					t.state = sSkipLine
					continue
				}
				t.fold()
				t.state = sValue
			default:
				if !t.endField() {
					t.state = sOff
					return len(p), refuseNone
				}
				t.anyField = true
				field := uint8(fieldOther)
				switch lower(c) {
				case 'c':
					field = fieldCL
				case 't':
					field = fieldTE
				}
				j := bytes.IndexByte(p[i:], '\n')
				switch {
				case j >= 0:
					// Most lines arrive whole: read one at once.
					if field != fieldOther && !t.fieldLine(field, p[i:i+j]) {
						t.state = sOff
						return len(p), refuseNone
					}
					i += j + 1
				case field == fieldOther:
					i = len(p)
					t.state = sSkipLine
				default:
					i++
					t.field, t.nameIdx, t.state = field, 1, sName
				}
			}
		case sFieldCR:
			if p[i] != '\n' {
				t.state = sOff // a field name with a CR: net/http refuses it
				return len(p), refuseNone
			}
			i++
			t.endHead(base + int64(i))
		case sName:
			c := p[i]
			name := fieldNames[t.field]
			switch {
			case c == ':' && int(t.nameIdx) == len(name):
				i++
				t.phase, t.teIdx, t.zeros, t.value, t.nonzero = phaseLead, 0, 0, 0, false
				t.state = sValue
			case int(t.nameIdx) < len(name) && lower(c) == name[t.nameIdx]:
				i++
				t.nameIdx++
			default:
				t.field = fieldOther
				t.state = sSkipLine
			}
		case sSkipLine:
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				i = len(p)
				continue
			}
			i += j + 1
			t.state = sFieldStart
		case sValue:
			c := p[i]
			i++
			switch c {
			case '\n':
				t.state = sFieldStart
			case '\r':
				t.state = sValueCR
			default:
				if !t.valueByte(c) {
					t.state = sOff
					return len(p), refuseNone
				}
			}
		case sValueCR:
			if p[i] != '\n' {
				t.state = sOff // a CR inside a value: net/http refuses it
				return len(p), refuseNone
			}
			i++
			t.state = sFieldStart
		case sBody:
			n := uint64(len(p) - i)
			if n >= t.remaining {
				i += int(t.remaining)
				t.remaining = 0
				t.endRequest(base + int64(i))
				continue
			}
			t.remaining -= n
			i = len(p)
		case sChunkSize:
			c := p[i]
			i++
			if d, ok := unhex(c); ok {
				if t.chunkDigits == 16 {
					t.state = sOff // net/http: chunk length too large
					return len(p), refuseNone
				}
				t.remaining = t.remaining<<4 | uint64(d)
				t.chunkDigits++
				continue
			}
			if t.chunkDigits == 0 {
				t.state = sOff
				return len(p), refuseNone
			}
			switch c {
			case ';':
				t.state = sChunkExt
			case ' ', '\t':
				t.state = sChunkOWS
			case '\r':
				t.state = sChunkLF
			default:
				t.state = sOff
				return len(p), refuseNone
			}
		case sChunkOWS:
			// net/http trims white space at the end of the line and then
			// cuts the extension: "5 ;x" leaves "5 ", which it refuses.
			c := p[i]
			i++
			switch c {
			case ' ', '\t':
			case '\r':
				t.state = sChunkLF
			default:
				t.state = sOff
				return len(p), refuseNone
			}
		case sChunkExt:
			c := p[i]
			i++
			switch c {
			case '\r':
				t.state = sChunkLF
			case '\n':
				t.state = sOff // a bare LF ends no chunk line for net/http
				return len(p), refuseNone
			}
		case sChunkLF:
			if p[i] != '\n' {
				t.state = sOff
				return len(p), refuseNone
			}
			i++
			if t.remaining == 0 {
				t.anyTrailer = false
				t.state = sTrailerStart
				continue
			}
			t.state = sChunkData
		case sChunkData:
			n := uint64(len(p) - i)
			if n >= t.remaining {
				i += int(t.remaining)
				t.remaining = 0
				t.state = sChunkDataCR
				continue
			}
			t.remaining -= n
			i = len(p)
		case sChunkDataCR, sChunkDataLF:
			want := byte('\r')
			if t.state == sChunkDataLF {
				want = '\n'
			}
			if p[i] != want {
				t.state = sOff // net/http: malformed chunked encoding
				return len(p), refuseNone
			}
			i++
			t.state++
			if t.state > sChunkDataLF {
				t.state = sChunkSize
				t.chunkDigits = 0
			}
		case sTrailerStart:
			switch p[i] {
			case '\n':
				i++
				t.endRequest(base + int64(i))
			case '\r':
				i++
				t.state = sTrailerCR
			case ' ', '\t':
				if !t.anyTrailer {
					t.state = sOff
					return len(p), refuseNone
				}
				t.state = sTrailerSkip
			default:
				t.anyTrailer = true
				t.state = sTrailerSkip
			}
		case sTrailerCR:
			if p[i] != '\n' {
				t.state = sOff
				return len(p), refuseNone
			}
			i++
			t.endRequest(base + int64(i))
		case sTrailerSkip:
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				i = len(p)
				continue
			}
			i += j + 1
			t.state = sTrailerStart
		case sRefused:
			return int(max(t.headAt-base, 0)), t.why
		default: // sOff
			return len(p), refuseNone
		}
	}
	if t.state == sRefused {
		return int(max(t.headAt-base, 0)), t.why
	}
	return len(p), refuseNone
}

// requestLine reads a whole request line, without its LF, as sMethod,
// sTarget and sProto do byte by byte. It reports false when net/http would
// refuse it.
func (t *tracker) requestLine(line []byte) bool {
	method, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok || bytes.IndexByte(method, '\r') >= 0 {
		return false
	}
	_, proto, ok := bytes.Cut(rest, []byte{' '})
	if !ok || len(proto) > len(t.proto) {
		return false
	}
	t.protoN = uint8(copy(t.proto[:], proto))
	if string(method) == "POST" {
		t.method = 4
	} else {
		t.method = 5
	}
	return t.version()
}

// fieldLine reads a whole header line, without its LF, whose name may be
// field's, as sName, sValue and sValueCR do byte by byte. It reports false
// when net/http would refuse the value.
func (t *tracker) fieldLine(field uint8, line []byte) bool {
	name := fieldNames[field]
	if len(line) <= len(name) || line[len(name)] != ':' {
		return true // another field
	}
	for k := 1; k < len(name); k++ {
		if lower(line[k]) != name[k] {
			return true
		}
	}
	t.field = field
	t.phase, t.teIdx, t.zeros, t.value, t.nonzero = phaseLead, 0, 0, 0, false
	v := line[len(name)+1:]
	if n := len(v); n > 0 && v[n-1] == '\r' {
		v = v[:n-1]
	}
	for _, c := range v {
		if c == '\r' || !t.valueByte(c) {
			return false
		}
	}
	return true
}

// version checks the request line's version as net/http does: "HTTP/1.x",
// or "HTTP/2.0", which it takes only as "PRI * HTTP/2.0" and frames like 1.1.
// Anything else it refuses (505 or 400).
func (t *tracker) version() bool {
	p := t.proto[:t.protoN]
	if len(p) > 0 && p[len(p)-1] == '\r' {
		p = p[:len(p)-1]
	}
	if len(p) != 8 || string(p[:5]) != "HTTP/" || p[6] != '.' || p[7] < '0' || p[7] > '9' {
		return false
	}
	switch {
	case p[5] == '1':
		t.old = p[7] == '0'
		return true
	case p[5] == '2' && p[7] == '0':
		return true
	}
	return false
}

// valueByte reads one byte of a Content-Length or Transfer-Encoding value. It
// reports false when net/http would refuse the value.
func (t *tracker) valueByte(c byte) bool {
	ows := c == ' ' || c == '\t'
	if t.field == fieldCL {
		// net/http trims white space and parses the rest with
		// strconv.ParseUint(s, 10, 63).
		switch {
		case c >= '0' && c <= '9' && t.phase != phaseTrail:
			t.phase = phaseDigits
			d := uint64(c - '0')
			if !t.nonzero && d == 0 {
				t.zeros++
				return true
			}
			t.nonzero = true
			if t.value > (maxContentLength-d)/10 {
				return false
			}
			t.value = t.value*10 + d
			return true
		case ows:
			if t.phase == phaseDigits {
				t.phase = phaseTrail
			}
			return true
		}
		return false
	}
	// Transfer-Encoding: net/http trims leading white space and compares the
	// rest, case-insensitively, with "chunked".
	switch t.phase {
	case phaseLead:
		if ows {
			return true
		}
		t.phase = phaseMatch
		fallthrough
	case phaseMatch:
		switch {
		case t.teIdx < 7 && lower(c) == "chunked"[t.teIdx]:
			t.teIdx++
		case t.teIdx == 7 && ows:
			t.phase = phaseTrail
		default:
			t.phase = phaseOther
		}
	case phaseTrail:
		if !ows {
			t.phase = phaseOther
		}
	}
	return true
}

// fold continues a Content-Length or Transfer-Encoding value on a folded
// line: net/http joins the lines with a space, which only leading white
// space absorbs.
func (t *tracker) fold() {
	switch {
	case t.phase == phaseLead:
	case t.field == fieldCL:
		t.phase = phaseTrail
	default:
		t.phase = phaseOther
	}
}

// endField ends the field whose lines were being read. It reports false for
// a Content-Length net/http refuses: empty, or unlike an earlier one.
func (t *tracker) endField() bool {
	f := t.field
	t.field = fieldOther
	switch f {
	case fieldCL:
		if t.phase == phaseLead {
			return false
		}
		if !t.clSeen {
			t.clSeen, t.clZeros, t.clValue = true, t.zeros, t.value
			return true
		}
		return t.zeros == t.clZeros && t.value == t.clValue
	case fieldTE:
		t.teCount++
		t.teChunked = (t.phase == phaseMatch && t.teIdx == 7) || t.phase == phaseTrail
	}
	return true
}

// endHead decides the body's framing once the blank line ending the head at
// end has been read, or refuses the request.
func (t *tracker) endHead(end int64) {
	if !t.endField() {
		t.state = sOff
		return
	}
	t.headEnd = end
	switch {
	case t.teCount > 0 && t.clSeen:
		t.refuse(refuseBothFramings)
	case t.teCount > 0 && t.old:
		t.refuse(refuseOldChunked)
	case t.teCount > 1 || (t.teCount == 1 && !t.teChunked):
		t.state = sOff // net/http answers 501
	case t.teCount == 1:
		t.state = sChunkSize
		t.remaining, t.chunkDigits = 0, 0
	case t.clSeen && t.clValue > 0:
		t.state = sBody
		t.remaining = t.clValue
	default:
		t.endRequest(end)
	}
}

func (t *tracker) refuse(why refusal) {
	t.state = sRefused
	t.why = why
}

// endRequest starts the next request at end.
func (t *tracker) endRequest(end int64) {
	if t.onRequest != nil {
		t.onRequest(t.headEnd, end)
	}
	*t = tracker{
		pos:       t.pos,
		headAt:    end,
		lastPOST:  t.method == 4,
		onRequest: t.onRequest,
	}
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
