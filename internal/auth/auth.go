// Package auth finds the subscription key in a client request and looks it up
// among the configured keys. Keys are held only as SHA-256 digests, so a
// memory dump or the effective config never shows one, and are compared in
// constant time.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/sluice-gateway/sluice/internal/secret"
)

// DigestPrefix marks a key given in config as its SHA-256 hex digest.
const DigestPrefix = "sha256:"

// Digest is the SHA-256 digest of a key.
type Digest [sha256.Size]byte

// DigestOf returns the digest of a clear key.
func DigestOf(key string) Digest { return sha256.Sum256([]byte(key)) }

// ErrBadDigest is returned by ParseKey for a malformed "sha256:" key.
var ErrBadDigest = errors.New("a sha256: key must be followed by 64 hex characters")

// ParseKey returns the digest of a configured key: "sha256:<hex>" is taken as
// the digest itself, anything else as a clear key.
func ParseKey(s string) (Digest, error) {
	var d Digest
	hexs, ok := strings.CutPrefix(s, DigestPrefix)
	if !ok {
		return DigestOf(s), nil
	}
	if len(hexs) != 2*len(d) {
		return d, ErrBadDigest
	}
	if _, err := hex.Decode(d[:], []byte(hexs)); err != nil {
		return d, ErrBadDigest
	}
	return d, nil
}

// Index maps key digests to values, such as subscriptions. It is immutable
// once built and safe for concurrent use.
type Index[T any] struct {
	m map[Digest]entry[T]
}

type entry[T any] struct {
	d Digest
	v T
}

// NewIndex returns an empty Index.
func NewIndex[T any]() *Index[T] { return &Index[T]{m: make(map[Digest]entry[T])} }

// Add maps the digest d to v. It fails when d is already present.
func (ix *Index[T]) Add(d Digest, v T) error {
	if _, dup := ix.m[d]; dup {
		return fmt.Errorf("key used twice")
	}
	ix.m[d] = entry[T]{d: d, v: v}
	return nil
}

// Len returns the number of keys.
func (ix *Index[T]) Len() int { return len(ix.m) }

// Lookup returns the value of a clear key presented by a client.
//
// The map is keyed by digest, so the lookup's timing depends only on the
// digest of what the client sent, which tells it nothing about any
// configured key; the final comparison is constant time all the same.
func (ix *Index[T]) Lookup(key string) (T, bool) {
	d := DigestOf(key)
	e, ok := ix.m[d]
	if !ok || !Equal(e.d, d) {
		var zero T
		return zero, false
	}
	return e.v, true
}

// Equal compares two digests in constant time.
func Equal(a, b Digest) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }

// ErrNoCredential is an authenticator's answer to a request without a
// credential of its kind, so that the next one is asked. It lives here, at
// the bottom, so that an authentication mechanism need not import the
// pipeline; proxy re-exports it.
var ErrNoCredential = errors.New("auth: no credential of this kind")

// Errors of KeyFromRequest and KeyFromHeader.
var (
	// ErrNoKey: the request carries no key.
	ErrNoKey = errors.New("auth: no key")
	// ErrConflict: the request carries two different keys. Resolving them
	// in some order would hide from the client which one was used.
	ErrConflict = errors.New("auth: two different keys")
)

// KeyFromRequest returns the subscription key a client sent, looking where
// Azure API Management and the OpenAI SDKs put it: the api-key and
// Ocp-Apim-Subscription-Key headers, Authorization: Bearer, and the
// subscription-key and api-key query parameters. A key may be sent in
// several of them, but the same key: two different ones are ErrConflict.
// No key is ErrNoKey.
func KeyFromRequest(r *http.Request) (string, error) {
	key, err := KeyFromHeader(r.Header)
	if err != nil && !errors.Is(err, ErrNoKey) {
		return "", err
	}
	if !strings.Contains(r.URL.RawQuery, "key") {
		return key, err // most requests: no key in the query at all
	}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	for _, name := range [...]string{"subscription-key", "api-key"} {
		for _, k := range q[name] {
			if k == "" {
				continue
			}
			if key != "" && k != key {
				return "", ErrConflict
			}
			key = k
		}
	}
	if key == "" {
		return "", ErrNoKey
	}
	return key, nil
}

// KeyFromHeader is KeyFromRequest without the query: the api-key and
// Ocp-Apim-Subscription-Key headers and Authorization: Bearer. The admin
// API takes its key only from headers, because query strings end up in the
// logs of proxies on the way. A bearer shaped like a JWT is a token, not a
// key (see BearerToken), so a key in api-key beside a token in
// Authorization is no conflict.
func KeyFromHeader(h http.Header) (string, error) {
	var key string
	// Every value of every header counts: a second api-key line with
	// another key is a conflict too.
	for _, name := range [...]string{"Api-Key", "Ocp-Apim-Subscription-Key", "Authorization"} {
		for _, v := range h[name] {
			k := v
			if name == "Authorization" {
				if k = bearer(v); secret.LooksLikeJWT(k) {
					continue
				}
			}
			if k == "" {
				continue
			}
			if key != "" && k != key {
				return "", ErrConflict
			}
			key = k
		}
	}
	if key == "" {
		return "", ErrNoKey
	}
	return key, nil
}

// BearerToken returns the JWT a client sent as Authorization: Bearer, or
// ErrNoCredential when it sent none (a bearer that is not shaped like a JWT
// is a key). Two different tokens are ErrConflict.
func BearerToken(h http.Header) (string, error) {
	var tok string
	for _, v := range h["Authorization"] {
		t := bearer(v)
		if !secret.LooksLikeJWT(t) {
			continue
		}
		if tok != "" && t != tok {
			return "", ErrConflict
		}
		tok = t
	}
	if tok == "" {
		return "", ErrNoCredential
	}
	return tok, nil
}

// bearer returns the token of an Authorization: Bearer header, or "".
func bearer(h string) string {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
