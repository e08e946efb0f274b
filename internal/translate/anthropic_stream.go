package translate

import (
	"io"
	"net/http"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// AnthropicStream translates a Messages API event stream (message_start,
// content_block_start/delta/stop, message_delta, message_stop, ping,
// error) into chat.completion.chunk events. The zero value is not usable;
// use NewAnthropicStream.
type AnthropicStream struct {
	created      int64
	includeUsage bool

	id, model string
	usage     anthropicUsage
	// tools maps a content block index to its tool call index: the count
	// of tool_use blocks before it (text blocks take no tool index).
	tools     map[int64]int
	toolCount int
	started   bool // the role chunk went out
	finished  bool // the finish_reason chunk went out
	done      bool
}

// NewAnthropicStream returns a stream translator. includeUsage says
// whether the client asked for the usage chunk (stream_options); created is
// the chunks' Unix time.
func NewAnthropicStream(created int64, includeUsage bool) *AnthropicStream {
	return &AnthropicStream{created: created, includeUsage: includeUsage}
}

func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Event implements Stream.
func (s *AnthropicStream) Event(dst, data []byte) ([]byte, error) {
	if s.done {
		return dst, nil
	}
	ev := view(data)
	switch gjson.Get(ev, "type").Str {
	case "message_start":
		m := gjson.Get(ev, "message")
		// Both outlive data, which the caller reuses.
		s.id, s.model = "chatcmpl-"+m.Get("id").String(), strings.Clone(m.Get("model").String())
		s.readUsage(m.Get("usage"))
		return s.start(dst), nil
	case "content_block_start":
		dst = s.start(dst)
		b := gjson.Get(ev, "content_block")
		if b.Get("type").Str != "tool_use" {
			return dst, nil
		}
		idx := s.toolCount
		s.toolCount++
		if s.tools == nil {
			s.tools = make(map[int64]int, 2)
		}
		s.tools[gjson.Get(ev, "index").Int()] = idx
		dst = chunkHead(dst, s.id, s.model, s.created)
		dst = append(dst, `[{"index":0,"delta":{"tool_calls":[{"index":`...)
		dst = appendInt(dst, idx)
		dst = append(dst, `,"id":`...)
		dst = wire.AppendString(dst, b.Get("id").String())
		dst = append(dst, `,"type":"function","function":{"name":`...)
		dst = wire.AppendString(dst, b.Get("name").String())
		dst = append(dst, `,"arguments":""}}]},"finish_reason":null}]`...)
		return eventEnd(dst), nil
	case "content_block_delta":
		dst = s.start(dst)
		d := gjson.Get(ev, "delta")
		switch d.Get("type").Str {
		case "text_delta":
			t := d.Get("text").String()
			if t == "" {
				return dst, nil
			}
			dst = chunkHead(dst, s.id, s.model, s.created)
			dst = append(dst, `[{"index":0,"delta":{"content":`...)
			dst = wire.AppendString(dst, t)
			dst = append(dst, `},"finish_reason":null}]`...)
			return eventEnd(dst), nil
		case "input_json_delta":
			p := d.Get("partial_json").String()
			idx, ok := s.tools[gjson.Get(ev, "index").Int()]
			if p == "" || !ok {
				return dst, nil
			}
			dst = chunkHead(dst, s.id, s.model, s.created)
			dst = append(dst, `[{"index":0,"delta":{"tool_calls":[{"index":`...)
			dst = appendInt(dst, idx)
			dst = append(dst, `,"function":{"arguments":`...)
			dst = wire.AppendString(dst, p)
			dst = append(dst, `}}]},"finish_reason":null}]`...)
			return eventEnd(dst), nil
		}
		// thinking_delta, signature_delta, citations_delta: Chat
		// Completions has no place for them.
		return dst, nil
	case "message_delta":
		dst = s.start(dst)
		s.readUsage(gjson.Get(ev, "usage"))
		stop := gjson.Get(ev, "delta.stop_reason")
		if stop.Type == gjson.Null || stop.Str == "" || s.finished {
			return dst, nil
		}
		s.finished = true
		dst = chunkHead(dst, s.id, s.model, s.created)
		dst = append(dst, `[{"index":0,"delta":{},"finish_reason":`...)
		dst = wire.AppendString(dst, AnthropicFinish(stop.Str))
		dst = append(dst, `}]`...)
		return eventEnd(dst), nil
	case "message_stop":
		return s.end(s.start(dst)), nil
	case "error":
		e := gjson.Get(ev, "error")
		return dst, &StreamError{Status: anthropicStatus(e.Get("type").Str, http.StatusInternalServerError), Type: e.Get("type").Str, Msg: e.Get("message").Str}
	}
	return dst, nil // ping, and event types added later
}

// start sends the role chunk once, before anything else.
func (s *AnthropicStream) start(dst []byte) []byte {
	if s.started {
		return dst
	}
	s.started = true
	dst = chunkHead(dst, s.id, s.model, s.created)
	dst = append(dst, `[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`...)
	return eventEnd(dst)
}

// readUsage takes the counts a usage object carries; message_delta's are
// cumulative, and may repeat or leave out the input counts.
func (s *AnthropicStream) readUsage(u gjson.Result) {
	u.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "input_tokens":
			s.usage.InputTokens = max(s.usage.InputTokens, v.Int())
		case "output_tokens":
			s.usage.OutputTokens = max(s.usage.OutputTokens, v.Int())
		case "cache_read_input_tokens":
			s.usage.CacheReadInputTokens = max(s.usage.CacheReadInputTokens, v.Int())
		case "cache_creation_input_tokens":
			s.usage.CacheCreationInputTokens = max(s.usage.CacheCreationInputTokens, v.Int())
		case "output_tokens_details":
			s.usage.OutputTokensDetails.ThinkingTokens = max(s.usage.OutputTokensDetails.ThinkingTokens, v.Get("thinking_tokens").Int())
		}
		return true
	})
}

// end sends the usage chunk (when asked for) and [DONE].
func (s *AnthropicStream) end(dst []byte) []byte {
	s.done = true
	if s.includeUsage {
		dst = chunkHead(dst, s.id, s.model, s.created)
		dst = append(dst, `[],"usage":`...)
		dst = appendUsage(dst, s.usage.usage())
		dst = eventEnd(dst)
	}
	return append(dst, doneEvent...)
}

// Usage returns the usage reported so far.
func (s *AnthropicStream) Usage() Usage { return s.usage.usage() }

// End implements Stream: a Messages stream ends with message_stop.
func (s *AnthropicStream) End(dst []byte) ([]byte, error) {
	if s.done {
		return dst, nil
	}
	return dst, io.ErrUnexpectedEOF
}

// Done implements Stream.
func (s *AnthropicStream) Done() bool { return s.done }

func appendInt(dst []byte, i int) []byte {
	if i < 10 {
		return append(dst, byte('0'+i))
	}
	return appendInt64(dst, int64(i))
}
