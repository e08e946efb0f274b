package backend

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/secret"
	"github.com/sluice-gateway/sluice/internal/translate"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// The translated kinds. A backend of kind anthropic or gemini looks to the
// pipeline like an OpenAI one: NewRequest translates the chat completions
// request into the provider's, RoundTrip its answer (body, event stream or
// error) back. The pipeline's meter, taps, cache, breakers and retries see
// only OpenAI responses, and OpenAI and Azure backends take none of this
// path: their bodies stay byte for byte what the client sent.

// translates reports whether the backend's API is translated to.
func (b *Backend) translates() bool { return b.Kind == KindAnthropic || b.Kind == KindGemini }

// providerKey is a static key sent as the provider expects it: x-api-key
// (Anthropic), x-goog-api-key (Gemini).
func providerKey(kind Kind, key secret.Value) Credential {
	if kind == KindAnthropic {
		return &staticHeader{key: "X-Api-Key", value: []string{key.Reveal()}}
	}
	return &staticHeader{key: "X-Goog-Api-Key", value: []string{key.Reveal()}}
}

// providerPath is the path of a model's chat on a translated backend.
func providerPath(kind Kind, prefix, name string) string {
	if kind == KindAnthropic {
		return prefix + "/v1/messages"
	}
	return prefix + "/v1beta/models/" + name + ":generateContent"
}

// translation is what the answer's translation needs to know of the
// request; it travels in the outbound request's context.
type translation struct {
	// toMessages is set for a Messages request sent as a chat
	// completion: the answer goes back to the Messages API's shape.
	toMessages   bool
	kind         Kind
	stream       bool
	includeUsage bool
}

type translationKey struct{}

// newProviderRequest builds the outbound request of a translated backend.
// A request that cannot be translated faithfully is a *wire.Error 400:
// the request is not sent, and another pool member may serve it.
func (b *Backend) newProviderRequest(ctx context.Context, c *Call, d deployment) (*http.Request, error) {
	if c.Op == wire.OpMessages {
		return b.newMessagesRequest(ctx, c, d)
	}
	if c.Op != wire.OpChatCompletions {
		return nil, wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "unsupported_by_provider",
			"This model's "+b.Kind.String()+" backend serves chat completions only, not "+c.Op.String()+".")
	}
	o := &outbound{url: *b.url}
	o.url.Host, o.url.Path = b.host, d.paths[c.Op]
	opts := translate.Options{Model: d.name, DefaultMaxTokens: b.maxTokens}
	var (
		body []byte
		err  error
	)
	if b.Kind == KindAnthropic {
		body, err = translate.AnthropicRequest(c.Body, opts)
	} else {
		body, err = translate.GeminiRequest(c.Body, opts)
		if c.Request.Stream {
			o.url.Path = strings.TrimSuffix(o.url.Path, ":generateContent") + ":streamGenerateContent"
			o.url.RawQuery = "alt=sse"
		}
	}
	if err != nil {
		return nil, err
	}
	h, err := b.header(ctx, o, c.Header, c.TrustedPeer, c.ForwardedFor, c.RequestID)
	if err != nil {
		return nil, err
	}
	if b.Kind == KindAnthropic {
		h["Anthropic-Version"] = []string{b.apiVersion}
	}
	ctx = context.WithValue(ctx, translationKey{}, &translation{kind: b.Kind, stream: c.Request.Stream, includeUsage: c.Request.IncludeUsage})
	return b.post(ctx, o, h, body), nil
}

// roundTripProvider sends a translated request and translates the answer.
func (b *Backend) roundTripProvider(req *http.Request) (*http.Response, error) {
	resp, err := b.State.transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t, _ := req.Context().Value(translationKey{}).(*translation)
	if t == nil {
		return resp, nil // a probe
	}
	return t.response(resp)
}

// maxProviderBody bounds a provider's non-streaming answer.
const maxProviderBody = 16 << 20

// response translates a provider's answer into the OpenAI one.
func (t *translation) response(resp *http.Response) (*http.Response, error) {
	if t.toMessages {
		return t.messagesResponse(resp)
	}
	created := time.Now().Unix()
	if resp.StatusCode < 300 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var st translate.Stream
		if t.kind == KindAnthropic {
			st = translate.NewAnthropicStream(created, t.includeUsage)
		} else {
			st = translate.NewGeminiStream(created, t.includeUsage)
		}
		resp.Body = translate.NewStreamBody(resp.Body, st)
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderBody))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	status := resp.StatusCode
	switch {
	case status >= 400:
		var pe translate.ProviderError
		if t.kind == KindAnthropic {
			pe = translate.AnthropicError(status, body)
		} else {
			pe = translate.GeminiError(status, body)
		}
		status, body = pe.Status, pe.Body
		if pe.RetryAfter > 0 {
			ms := max(pe.RetryAfter.Milliseconds(), 1)
			resp.Header.Set("Retry-After-Ms", strconv.FormatInt(ms, 10))
			resp.Header.Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
		}
	case t.kind == KindAnthropic:
		body, err = translate.AnthropicResponse(body, created)
	default:
		body, err = translate.GeminiResponse(body, created)
	}
	if err != nil {
		status = http.StatusBadGateway
		body = wire.NewError(status, wire.TypeServer, "backend_answer_untranslatable",
			"The backend's answer could not be translated. Retry later.").Body()
	}
	resp.StatusCode, resp.Status = status, strconv.Itoa(status)+" "+http.StatusText(status)
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Content-Encoding")
	resp.ContentLength = int64(len(body))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// newMessagesRequest passes an Anthropic Messages request to an anthropic
// backend as it is, but for "model", set to the deployment: the client's
// anthropic-version and anthropic-beta headers go with it (the backend's
// api_version when the client sent none).
func (b *Backend) newMessagesRequest(ctx context.Context, c *Call, d deployment) (*http.Request, error) {
	o := &outbound{url: *b.url}
	o.url.Host, o.url.Path = b.host, d.paths[wire.OpMessages]
	h, err := b.header(ctx, o, c.Header, c.TrustedPeer, c.ForwardedFor, c.RequestID)
	if err != nil {
		return nil, err
	}
	if h.Get("Anthropic-Version") == "" {
		h["Anthropic-Version"] = []string{b.apiVersion}
	}
	return b.post(ctx, o, h, withModel(c.Request, c.Body, d)), nil
}

// newMessagesToChatRequest sends a Messages request (the Anthropic surface)
// to an OpenAI or Azure OpenAI backend as a chat completion.
func (b *Backend) newMessagesToChatRequest(ctx context.Context, c *Call, d deployment) (*http.Request, error) {
	body, err := translate.MessagesToChat(c.Body, d.name)
	if err != nil {
		return nil, err
	}
	o := &outbound{url: *b.url}
	o.url.Host, o.url.Path = b.host, d.paths[wire.OpChatCompletions]
	if b.Kind == KindAzureOpenAI {
		o.url.RawQuery = b.apiQuery
	}
	h, err := b.header(ctx, o, c.Header, c.TrustedPeer, c.ForwardedFor, c.RequestID)
	if err != nil {
		return nil, err
	}
	delete(h, "Anthropic-Version")
	delete(h, "Anthropic-Beta")
	ctx = context.WithValue(ctx, translationKey{}, &translation{toMessages: true, kind: b.Kind, stream: c.Request.Stream})
	return b.post(ctx, o, h, body), nil
}

// messagesResponse translates a chat completions answer into the Messages
// API's.
func (t *translation) messagesResponse(resp *http.Response) (*http.Response, error) {
	if resp.StatusCode < 300 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body = translate.NewStreamBody(resp.Body, translate.NewMessagesStream())
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderBody))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	status := resp.StatusCode
	if status >= 400 {
		body = translate.ChatErrorToMessages(status, body)
	} else if body, err = translate.ChatToMessages(body); err != nil {
		status = http.StatusBadGateway
		body = translate.ChatErrorToMessages(status, []byte(`{"error":{"message":"The backend's answer could not be translated. Retry later."}}`))
	}
	resp.StatusCode, resp.Status = status, strconv.Itoa(status)+" "+http.StatusText(status)
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.ContentLength = int64(len(body))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}
