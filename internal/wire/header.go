package wire

import (
	"net/http"
	"net/textproto"
	"net/url"
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

// QueryValue returns the first value of the query parameter name in a raw
// query, as url.Values.Get would after url.ParseQuery, without building the
// map of every parameter.
func QueryValue(rawQuery, name string) string {
	// The loop is url.ParseQuery's, stopping at the first match.
	for q := rawQuery; q != ""; {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if kv == "" || strings.Contains(kv, ";") {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if k, err := url.QueryUnescape(k); err != nil || k != name {
			continue
		}
		if v, err := url.QueryUnescape(v); err == nil {
			return v
		}
	}
	return ""
}
