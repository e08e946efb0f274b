package simulator

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// embeddingParams validates an embeddings request's dimensions and
// encoding_format, returning the vector length and whether to send base64.
func (c *call) embeddingParams(req *apiRequest) (dims int, b64 bool, ok bool) {
	dims = c.d.dims
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > dims {
			c.badRequest("invalid_value", "Invalid 'dimensions': %d; this model supports 1 to %d.", *req.Dimensions, dims)
			return 0, false, false
		}
		dims = *req.Dimensions
	}
	switch req.EncodingFormat {
	case "", "float":
		return dims, false, true
	case "base64":
		return dims, true, true
	}
	c.badRequest("invalid_value", "Invalid 'encoding_format': %q; use float or base64.", req.EncodingFormat)
	return 0, false, false
}

// embeddings answers an embeddings request after the base latency.
func (s *Simulator) embeddings(c *call, texts []string, dims int, b64 bool) {
	if !c.sleep(s.latency.Base) {
		c.status = 499
		return
	}
	v := make([]float32, dims)
	var raw []byte
	if b64 {
		raw = make([]byte, 0, 4*dims)
	}
	per := dims * 14 // "-0.0123456789,"
	if b64 {
		per = dims*4*4/3 + 4
	}
	b := make([]byte, 0, 256+len(texts)*(per+48))
	b = append(b, `{"data":[`...)
	for i, t := range texts {
		embed(v, t)
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"embedding":`...)
		if b64 {
			raw = raw[:0]
			for _, x := range v {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, '"')
		} else {
			b = append(b, '[')
			for j, x := range v {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendComponent(b, x)
			}
			b = append(b, ']')
		}
		b = appendInt(b, "index", int64(i))
		b = append(b, `,"object":"embedding"}`...)
	}
	b = append(b, `],"model":`...)
	b = wire.AppendString(b, c.d.model)
	b = append(b, `,"object":"list","usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(c.prompt), 10)
	b = appendInt(b, "total_tokens", int64(c.prompt))
	b = append(b, `}}`...)
	c.answered = true
	c.writeBody(200, b)
}

// appendComponent appends x, which is within [-1, 1], with ten decimals and
// no trailing zeros. That is as precise as the float32 values OpenAI returns
// for all but the smallest components, and several times faster than
// strconv's shortest formatting, which dominated the cost of a reply.
func appendComponent(b []byte, x float32) []byte {
	const scale = 1e10
	n := int64(math.Round(float64(x) * scale))
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	if n >= scale {
		return strconv.AppendInt(b, n/scale, 10) // ±1: the vector has one dimension
	}
	if n == 0 {
		return append(b, '0')
	}
	var buf [12]byte // "0." and ten digits, written from the right, two at a time
	buf[0], buf[1] = '0', '.'
	for i := len(buf); i > 2; i -= 2 {
		q := n / 100
		r := n - q*100
		buf[i-2], buf[i-1] = pairs[2*r], pairs[2*r+1]
		n = q
	}
	end := len(buf)
	for buf[end-1] == '0' {
		end--
	}
	return append(b, buf[:end]...)
}

const pairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"4041424344454647484950515253545556575859606162636465666768697071727374757677787980818283848586878889" +
	"90919293949596979899"

// embed sets v to the unit vector of text: the sum of one pseudo-random
// vector per word, seeded by the lowercased word. Texts that share most of
// their words point the same way; texts that share none are nearly
// orthogonal, as random vectors in many dimensions are. The first d
// components are the same whatever len(v), so asking for fewer dimensions
// truncates the vector, as text-embedding-3's "dimensions" does.
func embed(v []float32, text string) {
	clear(v)
	words := 0
	h, inWord := uint64(fnvOffset), false
	for i := 0; i <= len(text); {
		r, n := utf8.RuneError, 1
		if i < len(text) {
			r, n = utf8.DecodeRuneInString(text[i:])
		}
		if i < len(text) && (unicode.IsLetter(r) || unicode.IsNumber(r)) {
			r = unicode.ToLower(r)
			for k := 0; k < 32 && r>>k != 0; k += 8 {
				h = (h ^ uint64(byte(r>>k))) * fnvPrime
			}
			inWord = true
		} else if inWord {
			addWordVector(v, h)
			words++
			h, inWord = fnvOffset, false
		}
		i += n
	}
	if words == 0 {
		// No words (empty, or only symbols): still a deterministic unit vector.
		for i := range len(text) {
			h = (h ^ uint64(text[i])) * fnvPrime
		}
		addWordVector(v, h)
	}
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		v[0], sum = 1, 1
	}
	scale := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= scale
	}
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// addWordVector adds the word's pseudo-random vector, components uniform in
// [-1, 1) in steps of 1/128, drawn eight at a time from splitmix64 seeded by
// the word's hash. Eight bits a component keep this, the bulk of an
// embedding's cost, cheap; the sum over words and the normalisation make
// the result look continuous.
func addWordVector(v []float32, seed uint64) {
	const unit = 1.0 / 128
	i := 0
	for ; i+8 <= len(v); i += 8 {
		z := splitmix(&seed)
		w := v[i : i+8 : i+8]
		w[0] += float32(int8(z)) * unit
		w[1] += float32(int8(z>>8)) * unit
		w[2] += float32(int8(z>>16)) * unit
		w[3] += float32(int8(z>>24)) * unit
		w[4] += float32(int8(z>>32)) * unit
		w[5] += float32(int8(z>>40)) * unit
		w[6] += float32(int8(z>>48)) * unit
		w[7] += float32(int8(z>>56)) * unit
	}
	if i < len(v) {
		z := splitmix(&seed)
		for k := 0; i+k < len(v); k++ {
			v[i+k] += float32(int8(z>>(8*k))) * unit
		}
	}
}

// splitmix returns the next value of the splitmix64 sequence at *state.
func splitmix(state *uint64) uint64 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
