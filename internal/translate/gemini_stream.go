package translate

import (
	"io"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// GeminiStream translates a streamGenerateContent?alt=sse stream, whose
// every event is a whole GenerateContentResponse with the parts generated
// since the last (a function call arrives whole, in one event) and which
// ends without a [DONE], into chat.completion.chunk events. Use
// NewGeminiStream.
type GeminiStream struct {
	created      int64
	includeUsage bool

	id, model string
	usage     geminiUsage
	toolCount int
	started   bool
	finished  bool
	done      bool
}

// NewGeminiStream returns a stream translator; see NewAnthropicStream.
func NewGeminiStream(created int64, includeUsage bool) *GeminiStream {
	return &GeminiStream{created: created, includeUsage: includeUsage}
}

// Event implements Stream.
func (s *GeminiStream) Event(dst, data []byte) ([]byte, error) {
	ev := view(data)
	if s.done || s.finished {
		// Usage may follow the finish, in a later event.
		if u := gjson.Get(ev, "usageMetadata"); u.Exists() && !s.done {
			s.readUsage(u)
		}
		return dst, nil
	}
	if e := gjson.Get(ev, "error"); e.Exists() {
		status := int(e.Get("code").Int())
		if status < 400 || status > 599 {
			status = http.StatusInternalServerError
		}
		return dst, &StreamError{Status: status, Type: e.Get("status").String(), Msg: e.Get("message").String()}
	}
	if !s.started {
		s.started = true
		s.id, s.model = "chatcmpl-"+gjson.Get(ev, "responseId").String(), strings.Clone(gjson.Get(ev, "modelVersion").String())
		dst = chunkHead(dst, s.id, s.model, s.created)
		dst = append(dst, `[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`...)
		dst = eventEnd(dst)
	}
	if u := gjson.Get(ev, "usageMetadata"); u.Exists() {
		s.readUsage(u)
	}
	c := gjson.Get(ev, "candidates.0")
	c.Get("content.parts").ForEach(func(_, p gjson.Result) bool {
		if p.Get("thought").Bool() {
			return true
		}
		if fc := p.Get("functionCall"); fc.Exists() {
			args := fc.Get("args").Raw
			if args == "" {
				args = "{}"
			}
			dst = chunkHead(dst, s.id, s.model, s.created)
			dst = append(dst, `[{"index":0,"delta":{"tool_calls":[{"index":`...)
			dst = appendInt(dst, s.toolCount)
			dst = append(dst, `,"id":`...)
			dst = wire.AppendString(dst, geminiCallID(s.toolCount, fc.Get("id").String(), p.Get("thoughtSignature").String()))
			dst = append(dst, `,"type":"function","function":{"name":`...)
			dst = wire.AppendString(dst, fc.Get("name").String())
			dst = append(dst, `,"arguments":`...)
			dst = wire.AppendString(dst, args)
			dst = append(dst, `}}]},"finish_reason":null}]`...)
			dst = eventEnd(dst)
			s.toolCount++
			return true
		}
		if t := p.Get("text").String(); t != "" {
			dst = chunkHead(dst, s.id, s.model, s.created)
			dst = append(dst, `[{"index":0,"delta":{"content":`...)
			dst = wire.AppendString(dst, t)
			dst = append(dst, `},"finish_reason":null}]`...)
			dst = eventEnd(dst)
		}
		return true
	})
	reason := c.Get("finishReason").String()
	if reason == "" {
		if b := gjson.Get(ev, "promptFeedback.blockReason").String(); b != "" {
			reason = "SAFETY"
		}
	}
	if reason != "" && reason != "FINISH_REASON_UNSPECIFIED" {
		s.finished = true
		dst = chunkHead(dst, s.id, s.model, s.created)
		dst = append(dst, `[{"index":0,"delta":{},"finish_reason":`...)
		dst = wire.AppendString(dst, GeminiFinish(reason, s.toolCount > 0))
		dst = append(dst, `}]`...)
		dst = eventEnd(dst)
	}
	return dst, nil
}

func (s *GeminiStream) readUsage(u gjson.Result) {
	s.usage = geminiUsage{
		PromptTokenCount:        u.Get("promptTokenCount").Int(),
		CandidatesTokenCount:    u.Get("candidatesTokenCount").Int(),
		CachedContentTokenCount: u.Get("cachedContentTokenCount").Int(),
		ThoughtsTokenCount:      u.Get("thoughtsTokenCount").Int(),
		ToolUsePromptTokenCount: u.Get("toolUsePromptTokenCount").Int(),
	}
}

// Usage returns the usage reported so far.
func (s *GeminiStream) Usage() Usage { return s.usage.usage() }

// End implements Stream: Gemini sends no end marker, so the stream is
// complete when a candidate has finished.
func (s *GeminiStream) End(dst []byte) ([]byte, error) {
	if s.done {
		return dst, nil
	}
	if !s.finished {
		return dst, io.ErrUnexpectedEOF
	}
	s.done = true
	if s.includeUsage {
		dst = chunkHead(dst, s.id, s.model, s.created)
		dst = append(dst, `[],"usage":`...)
		dst = appendUsage(dst, s.usage.usage())
		dst = eventEnd(dst)
	}
	return append(dst, doneEvent...), nil
}

// Done implements Stream.
func (s *GeminiStream) Done() bool { return s.done }
