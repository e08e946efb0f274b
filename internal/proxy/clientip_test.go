package proxy

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/sluice-gateway/sluice/internal/route"
)

func TestClientIP(t *testing.T) {
	trusted := &route.Table{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}}
	tests := []struct {
		name, peer string
		xff        []string
		table      *route.Table
		client     string
		forwarded  string
		trusted    bool
	}{
		{"no proxies trusted", "203.0.113.5:4000", []string{"6.6.6.6"}, &route.Table{}, "203.0.113.5", "203.0.113.5", false},
		{"untrusted peer", "203.0.113.5:4000", []string{"6.6.6.6"}, trusted, "203.0.113.5", "203.0.113.5", false},
		{"trusted peer", "10.1.2.3:4000", []string{"6.6.6.6"}, trusted, "6.6.6.6", "6.6.6.6, 10.1.2.3", true},
		{"chain of trusted", "10.1.2.3:4000", []string{"6.6.6.6, 192.0.2.7", "10.9.9.9"}, trusted, "6.6.6.6", "6.6.6.6, 192.0.2.7, 10.9.9.9, 10.1.2.3", true},
		{"spoofed left entries", "10.1.2.3:4000", []string{"1.1.1.1, 6.6.6.6"}, trusted, "6.6.6.6", "1.1.1.1, 6.6.6.6, 10.1.2.3", true},
		{"garbage entry", "10.1.2.3:4000", []string{"nonsense, 10.9.9.9"}, trusted, "10.9.9.9", "nonsense, 10.9.9.9, 10.1.2.3", true},
		{"trusted, no header", "10.1.2.3:4000", nil, trusted, "10.1.2.3", "10.1.2.3", true},
		{"ip:port entries", "10.1.2.3:4000", []string{"6.6.6.6:51234, 10.9.9.9:443"}, trusted, "6.6.6.6", "6.6.6.6:51234, 10.9.9.9:443, 10.1.2.3", true},
		{"v6 with port", "10.1.2.3:4000", []string{"[2001:db8::1]:443"}, trusted, "2001:db8::1", "[2001:db8::1]:443, 10.1.2.3", true},
		{"mapped v6 peer", "[::ffff:10.1.2.3]:4000", []string{"6.6.6.6"}, trusted, "6.6.6.6", "6.6.6.6, ::ffff:10.1.2.3", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			x := &exchange{r: r, table: tt.table}
			if got := x.clientIP(); got != tt.client {
				t.Errorf("clientIP = %q; want %q", got, tt.client)
			}
			if got, tr := x.forwardedFor(); got != tt.forwarded || tr != tt.trusted {
				t.Errorf("forwardedFor = %q, %v; want %q, %v", got, tr, tt.forwarded, tt.trusted)
			}
		})
	}
}
