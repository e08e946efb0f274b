package backend

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sluice-gateway/sluice/internal/secret"
)

// A Credential authenticates Sluice to a backend: it sets the header the
// backend reads. A backend's credential is chosen when the config is
// compiled: an API key by default, or any other source (a managed identity,
// OAuth2 client credentials) the routing table is given. Implementations
// must be safe for concurrent use.
type Credential interface {
	// Apply sets the credential on an outbound request's header. ctx
	// bounds any wait for a token. An error means the credential cannot be
	// had now (a token endpoint that does not answer): the request is not
	// sent.
	Apply(ctx context.Context, h http.Header) error
}

// staticHeader is a credential that never changes. Its one-element value
// slice is shared by every request: the transport only reads it.
type staticHeader struct {
	key   string // canonical header name
	value []string
}

func (c *staticHeader) Apply(_ context.Context, h http.Header) error {
	h[c.key] = c.value
	return nil
}

// APIKey is the credential Azure OpenAI reads: the api-key header.
func APIKey(key secret.Value) Credential {
	return &staticHeader{key: "Api-Key", value: []string{key.Reveal()}}
}

// BearerKey is the credential OpenAI and compatible servers read: an
// Authorization: Bearer header with a static key.
func BearerKey(key secret.Value) Credential {
	return &staticHeader{key: "Authorization", value: []string{"Bearer " + key.Reveal()}}
}

// CredentialError is a backend's credential that could not be had: the
// request was not sent, and the backend is not to blame for it (its
// breaker does not hear of it).
type CredentialError struct {
	Backend string
	Err     error
}

func (e *CredentialError) Error() string {
	return fmt.Sprintf("backend %s: credential unavailable: %v", e.Backend, e.Err)
}

func (e *CredentialError) Unwrap() error { return e.Err }

// A Renewer is a Credential that can drop a token the backend refused, so
// that the next Apply gets a fresh one.
type Renewer interface {
	// Invalidate drops the token h carries, if it is the one in force,
	// and reports whether a fresh token may help.
	Invalidate(h http.Header) bool
}

// Renew tells the backend's credential that the backend refused the
// request whose header was h, and reports whether sending it again with a
// fresh credential may help: only a token credential can renew.
func (b *Backend) Renew(h http.Header) bool {
	r, ok := b.cred.(Renewer)
	return ok && r.Invalidate(h)
}

// Credential returns the backend's credential.
func (b *Backend) Credential() Credential { return b.cred }
