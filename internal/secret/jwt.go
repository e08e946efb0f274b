package secret

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// maxJWTHeader bounds the header LooksLikeJWT decodes: real ones are a few
// dozen bytes.
const maxJWTHeader = 4096

// LooksLikeJWT reports whether a credential is shaped like a JSON Web Token
// in compact serialization (RFC 7519): three base64url parts joined by dots,
// the first (the header) a JSON object naming its "alg", the second not
// empty. The signature may be empty, as an unsigned token's is, so that such
// a token is refused as a token rather than looked up as a key. Keys that
// Sluice generates never have this shape, and configured keys may not.
func LooksLikeJWT(s string) bool {
	head, rest, ok := strings.Cut(s, ".")
	if !ok {
		return false
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || head == "" || payload == "" || len(head) > maxJWTHeader ||
		!base64URL(head) || !base64URL(payload) || !base64URL(sig) {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil || len(raw) == 0 || raw[0] != '{' {
		return false
	}
	var h struct {
		Alg *string `json:"alg"`
	}
	return json.Unmarshal(raw, &h) == nil && h.Alg != nil
}

// base64URL reports whether s holds only the unpadded base64url alphabet.
func base64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
