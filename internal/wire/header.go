package wire

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopByHop are the headers RFC 9110 section 7.6.1 says a proxy must not
// forward, in canonical form.
var hopByHop = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// CopyHeader copies the end-to-end headers of src into dst: it leaves out the
// hop-by-hop headers, those that Connection names, and those for which drop
// returns true (drop gets canonical names; it may be nil). Value slices are
// shared with src, which must not be changed afterwards.
func CopyHeader(dst, src http.Header, drop func(canonical string) bool) {
	var named []string
	for _, v := range src["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				named = append(named, textproto.CanonicalMIMEHeaderKey(f))
			}
		}
	}
outer:
	for k, vv := range src {
		if hopByHop[k] || (drop != nil && drop(k)) {
			continue
		}
		for _, n := range named {
			if n == k {
				continue outer
			}
		}
		dst[k] = vv
	}
}
