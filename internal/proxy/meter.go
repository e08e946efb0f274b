package proxy

import (
	"bytes"

	"github.com/sluice-gateway/sluice/internal/sse"
	"github.com/sluice-gateway/sluice/internal/tokens"
	"github.com/sluice-gateway/sluice/internal/wire"
	"github.com/tidwall/gjson"
)

// meterBlock is how much of a stream's generated text the meter holds before
// it counts it. The count is needed only when a stream breaks before its
// usage chunk, but holding all the text for it would cost memory with the
// length of the answer: 40 long streams broken at once once took a gateway
// from 38 MB to 983 MB. Counting a block at a time keeps a stream's cost at
// this much, and most answers are shorter, so they are never counted.
const meterBlock = 4 << 10

// meter learns the usage of the response a client gets: from a
// non-streaming body, from a stream's usage chunk, or, when a stream breaks
// before that chunk, by counting what arrived.
type meter struct {
	injected bool // Sluice asked the backend for include_usage: remove it from the stream
	usage    wire.Usage
	have     bool            // usage came from the backend
	enc      tokens.Encoding // the model's tokenizer
	pending  []byte          // a stream's generated text not counted yet, at most meterBlock
	counted  int64           // the tokens of the text counted so far
	keep     int             // how much text to keep for the access log; 0: none
	kept     []byte          // the first keep bytes of a stream's text
}

// Event reads one stream event and returns what the client gets of it: the
// event, the event less the "usage":null Sluice caused, or nothing for the
// usage chunk the client did not ask for. The meter is the first Tap of
// every request.
func (m *meter) Event(ev []byte) ([]byte, error) {
	data := sse.Data(ev)
	if u, ok, chunk := wire.StreamUsage(data); ok {
		if m.have && u.Prompt == 0 {
			// Anthropic's message_delta counts the output only: the
			// input came in message_start.
			u.Prompt, u.Cached, u.Total = m.usage.Prompt, m.usage.Cached, m.usage.Prompt+u.Completion
		}
		m.usage, m.have = u, true
		if chunk && m.injected {
			return nil, nil
		}
	}
	if t := wire.StreamText(data); len(t) > 0 && !m.have {
		m.text(t)
	}
	if m.injected {
		ev = wire.WithoutNullUsage(ev)
	}
	return ev, nil
}

// text takes a piece of a stream's generated text.
func (m *meter) text(t []byte) {
	if n := min(len(t), m.keep-len(m.kept)); n > 0 {
		m.kept = append(m.kept, t[:n]...)
	}
	for len(m.pending)+len(t) > meterBlock {
		// Count what is held up to its last space, so that no word is
		// cut in two (the tokenizer splits before spaces), and hold the
		// rest; text without a space is counted as it is.
		take := meterBlock - len(m.pending)
		m.pending = append(m.pending, t[:take]...)
		t = t[take:]
		cut := bytes.LastIndexByte(m.pending, ' ')
		if cut <= 0 {
			cut = len(m.pending)
		}
		m.counted += int64(m.enc.CountBytes(m.pending[:cut]))
		m.pending = append(m.pending[:0], m.pending[cut:]...)
	}
	if m.pending == nil {
		m.pending = make([]byte, 0, min(meterBlock, max(len(t), 1024)))
	}
	m.pending = append(m.pending, t...)
}

// Body reads the usage of a whole non-streaming body, which it passes on
// as it is.
func (m *meter) Body(b []byte) ([]byte, error) {
	if u, ok := wire.UsageFromBody(b); ok {
		m.usage, m.have = u, true
	}
	return b, nil
}

// End implements Tap; the pipeline reads the meter's usage itself.
func (m *meter) End(Outcome) {}

// tail reads the usage from the end of a body too large to hold: OpenAI and
// Azure put "usage" last.
func (m *meter) tail(b []byte) {
	i := bytes.LastIndex(b, []byte(`"usage"`))
	if i < 0 {
		return
	}
	obj := append([]byte{'{'}, b[i:]...)
	if u, ok := wire.UsageFromBody(trimToObject(obj)); ok {
		m.usage, m.have = u, true
	}
}

// trimToObject cuts b after the first complete JSON object it starts with.
func trimToObject(b []byte) []byte {
	r := gjson.ParseBytes(b)
	if r.Index == 0 && len(r.Raw) > 0 && len(r.Raw) <= len(b) {
		return b[:len(r.Raw)]
	}
	return b
}

// final returns the usage to charge: the backend's, or for a successful
// response that broke off before its usage, the prompt estimate plus the
// tokens of the text that arrived, marked estimated. An error without usage
// costs nothing.
func (m *meter) final(prompt func() int64, status int) wire.Usage {
	if m.have {
		return m.usage
	}
	if status >= 300 {
		return wire.Usage{}
	}
	u := wire.Usage{Prompt: prompt(), Estimated: true}
	u.Completion = m.counted + int64(m.enc.CountBytes(m.pending))
	u.Total = u.Prompt + u.Completion
	return u
}

// promptCount returns the request's prompt tokens, counted once.
func (x *exchange) promptCount() int64 {
	if x.acct.prompt < 0 {
		x.acct.prompt = promptTokens(x.req.Op, x.req.Model, x.req.Body)
	}
	return x.acct.prompt
}

// settle fixes the usage of the request, once: when a non-streaming body has
// been read (beforeHeaders: the response headers are not out yet and can
// carry it), or at the end of the request. A request that got no answer
// used nothing, and its reservation is given back.
func (x *exchange) settle(beforeHeaders bool) {
	if x.acct.settled {
		return
	}
	x.acct.settled = true
	if x.served.relayed || x.meter.have {
		x.acct.usage = x.meter.final(x.promptCount, x.status)
	}
	if x.req.Model != "" && x.table != nil {
		x.acct.cost = x.table.Prices.Cost(x.req.Model, x.acct.usage)
	}
	x.settleLimits(x.acct.usage.Total, x.acct.cost, beforeHeaders)
}
