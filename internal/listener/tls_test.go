package listener

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/certtest"
)

// pki is a test's authority, server certificate files and TLS listener.
type pki struct {
	ca                        *certtest.CA
	certFile, keyFile, caFile string
	certs                     *Certs
	clock                     *fakeClock
}

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newPKI writes a server certificate for 127.0.0.1 and loads it, with
// client certificates from its authority when clientAuth is "request" or
// "require".
func newPKI(t *testing.T, clientAuth string) *pki {
	t.Helper()
	p := &pki{ca: certtest.NewCA(t, "test CA"), clock: &fakeClock{t: time.Now()}}
	p.certFile, p.keyFile, p.caFile = p.ca.Files(t, t.TempDir(), p.ca.Server(t, "gateway one"))
	f := TLSFiles{CertFile: p.certFile, KeyFile: p.keyFile}
	if clientAuth != "" {
		f.ClientCAFile, f.RequireClientCert = p.caFile, clientAuth == "require"
	}
	var err error
	if p.certs, err = LoadCerts(f, nil, p.clock.Now); err != nil {
		t.Fatal(err)
	}
	return p
}

// client returns an HTTPS client trusting p's authority, offering HTTP/2
// unless h1, presenting cert if not nil.
func (p *pki) client(h1 bool, cert *certtest.Leaf) *http.Client {
	cfg := &tls.Config{RootCAs: p.ca.Pool()}
	if cert != nil {
		// Sent whatever authorities the server names, as a client
		// with a certificate from elsewhere would.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: !h1, DisableKeepAlives: true}
	if h1 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	return &http.Client{Transport: tr, Timeout: waitFor}
}

// seen is what a handler saw of a request.
type seen struct {
	proto    int
	tls      bool
	verified []string // common names of the verified chain's leaf
}

// recorder answers 200 "ok" and keeps what it saw of the last request.
func recorder(last *atomic.Pointer[seen]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := &seen{proto: r.ProtoMajor, tls: r.TLS != nil}
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			s.verified = append(s.verified, r.TLS.VerifiedChains[0][0].Subject.CommonName)
		}
		last.Store(s)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	})
}

func get(t *testing.T, c *http.Client, addr string) (*http.Response, error) {
	t.Helper()
	resp, err := c.Get("https://" + addr + "/x")
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func TestTLSProtocols(t *testing.T) {
	p := newPKI(t, "")
	var last atomic.Pointer[seen]
	_, addr := serve(t, Options{TLS: p.certs.Config()}, recorder(&last))
	for _, tc := range []struct {
		name  string
		h1    bool
		proto int
	}{{"h2 offered", false, 2}, {"http/1.1 only", true, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := get(t, p.client(tc.h1, nil), addr)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.ProtoMajor != tc.proto {
				t.Errorf("got %d over %s; want 200 over HTTP/%d", resp.StatusCode, resp.Proto, tc.proto)
			}
			if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
				t.Errorf("got TLS %v; want 1.2 or later", resp.TLS)
			}
			s := last.Load()
			if s == nil || s.proto != tc.proto || !s.tls {
				t.Errorf("the handler saw %+v; want HTTP/%d with its TLS state", s, tc.proto)
			}
		})
	}
}

func TestTLSRefusesOldVersions(t *testing.T) {
	p := newPKI(t, "")
	_, addr := serve(t, Options{TLS: p.certs.Config()}, http.NotFoundHandler())
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.ca.Pool(), MaxVersion: tls.VersionTLS11})
	if err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded; want it refused")
	}
}

// dialTLS opens an HTTP/1.1 TLS connection to addr.
func dialTLS(t *testing.T, p *pki, addr string) net.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr,
		&tls.Config{RootCAs: p.ca.Pool(), NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTLSFramingChecked(t *testing.T) {
	p := newPKI(t, "")
	var served atomic.Int64
	l, addr := serve(t, Options{TLS: p.certs.Config()}, ok(&served))
	smuggle := "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	resps, bodies, closed := exchange(t, dialTLS(t, p, addr), smuggle)
	if len(resps) != 1 || !closed {
		t.Fatalf("got %d responses, closed %v; want one, then the connection closed", len(resps), closed)
	}
	checkError(t, resps[0], bodies[0], http.StatusBadRequest, "ambiguous_framing")
	resps, bodies, _ = exchange(t, dialTLS(t, p, addr), "GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
	if len(resps) != 1 {
		t.Fatalf("got %d responses to a malformed header; want one", len(resps))
	}
	checkError(t, resps[0], bodies[0], http.StatusBadRequest, "bad_request")
	if s := l.Stats(); s.Ambiguous != 1 || s.Malformed != 1 || served.Load() != 0 {
		t.Errorf("got %+v, %d served; want one ambiguous, one malformed, none served", s, served.Load())
	}
	// A request line that starts like HTTP/2's preface, then is not, is
	// followed from its first byte.
	resps, _, _ = exchange(t, dialTLS(t, p, addr), "PRI /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Errorf("got %d responses to PRI /x; want one 200", len(resps))
	}
}

func TestTLSPlainHTTPAnswered(t *testing.T) {
	p := newPKI(t, "")
	l, addr := serve(t, Options{TLS: p.certs.Config()}, http.NotFoundHandler())
	resps, bodies, closed := exchange(t, dial(t, addr), "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
	if len(resps) != 1 || !closed {
		t.Fatalf("got %d responses, closed %v; want one, then the connection closed", len(resps), closed)
	}
	checkError(t, resps[0], bodies[0], http.StatusBadRequest, "tls_required")
	if !strings.Contains(bodies[0], "https://") {
		t.Errorf("got %s; want it to say https://", bodies[0])
	}
	if s := l.Stats(); s.PlainHTTP != 1 || s.HandshakeFailed != 0 {
		t.Errorf("got %+v; want one plain HTTP, no other failure", s)
	}
	// Through net/http's client, the failure names the status.
	resp, err := http.Get("http://" + addr + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("got %d; want 400", resp.StatusCode)
	}
}

// serial returns the serial number of the certificate addr's handshake
// presents.
func serial(t *testing.T, p *pki, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestTLSCertificateReloaded(t *testing.T) {
	p := newPKI(t, "")
	_, addr := serve(t, Options{TLS: p.certs.Config()}, http.NotFoundHandler())
	first := serial(t, p, addr)
	renewed := p.ca.Server(t, "gateway renewed")
	renewed.Write(t, p.certFile, p.keyFile)
	if got := serial(t, p, addr); got != first {
		t.Fatalf("got serial %s within a second of the last check; want %s, the files not statted yet", got, first)
	}
	p.clock.Advance(2 * time.Second)
	if got, want := serial(t, p, addr), renewed.Cert.SerialNumber.String(); got != want {
		t.Fatalf("got serial %s after the renewal; want %s", got, want)
	}
	if got := p.certs.Leaf().Subject.CommonName; got != "gateway renewed" {
		t.Errorf("Leaf is %q; want the renewed certificate", got)
	}
	// A half-written renewal (the new certificate, the old key) keeps the
	// certificate in force.
	next := p.ca.Server(t, "gateway next")
	if err := os.WriteFile(p.certFile, next.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	_ = os.Chtimes(p.certFile, later, later)
	p.clock.Advance(2 * time.Second)
	if got, want := serial(t, p, addr), renewed.Cert.SerialNumber.String(); got != want {
		t.Fatalf("got serial %s with a mismatched key; want %s, the certificate in force", got, want)
	}
	next.Write(t, p.certFile, p.keyFile)
	p.clock.Advance(2 * time.Second)
	if got, want := serial(t, p, addr), next.Cert.SerialNumber.String(); got != want {
		t.Fatalf("got serial %s once the key followed; want %s", got, want)
	}
}

func TestLoadCertsErrors(t *testing.T) {
	p := newPKI(t, "")
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no PEM here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]TLSFiles{
		"missing cert":  {CertFile: filepath.Join(dir, "none.crt"), KeyFile: p.keyFile},
		"key for other": {CertFile: p.certFile, KeyFile: empty},
		"empty CA file": {CertFile: p.certFile, KeyFile: p.keyFile, ClientCAFile: empty},
	} {
		if _, err := LoadCerts(f, nil, nil); err == nil {
			t.Errorf("%s: LoadCerts succeeded; want an error", name)
		}
	}
}

func TestTLSClientCertificates(t *testing.T) {
	other := certtest.NewCA(t, "another CA")
	for _, tc := range []struct {
		mode     string
		cert     string // "", "ours", "other"
		ok       bool
		verified string
	}{
		{"request", "", true, ""},
		{"request", "ours", true, "team-a"},
		{"request", "other", false, ""},
		{"require", "", false, ""},
		{"require", "ours", true, "team-a"},
		{"require", "other", false, ""},
	} {
		t.Run(fmt.Sprintf("%s %q", tc.mode, tc.cert), func(t *testing.T) {
			p := newPKI(t, tc.mode)
			var last atomic.Pointer[seen]
			l, addr := serve(t, Options{TLS: p.certs.Config()}, recorder(&last))
			var cert *certtest.Leaf
			switch tc.cert {
			case "ours":
				cert = p.ca.Client(t, "team-a", certtest.Names{})
			case "other":
				cert = other.Client(t, "team-a", certtest.Names{})
			}
			resp, err := get(t, p.client(false, cert), addr)
			if !tc.ok {
				if err == nil {
					t.Fatalf("got %d; want the handshake refused", resp.StatusCode)
				}
				if l.Stats().HandshakeFailed == 0 {
					waitHandshakeFailed(t, l)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := last.Load()
			got := ""
			if len(s.verified) > 0 {
				got = s.verified[0]
			}
			if got != tc.verified {
				t.Errorf("the handler saw a verified certificate for %q; want %q", got, tc.verified)
			}
		})
	}
}

// waitHandshakeFailed waits for l to count a failed handshake, which the
// server may count after the client gave up.
func waitHandshakeFailed(t *testing.T, l *Listener) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for l.Stats().HandshakeFailed == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no failed handshake counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTLSMaxConns(t *testing.T) {
	p := newPKI(t, "")
	var served atomic.Int64
	l, addr := serve(t, Options{MaxConns: 1, TLS: p.certs.Config()}, ok(&served))
	held := dialTLS(t, p, addr)
	if _, err := io.WriteString(held, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = held.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := http.ReadResponse(bufio.NewReader(held), nil); err != nil {
		t.Fatal(err)
	}
	waitOpen(t, l, 1)
	resps, bodies, _ := exchange(t, dialTLS(t, p, addr), "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	if len(resps) != 1 {
		t.Fatalf("got %d responses over the cap; want one", len(resps))
	}
	checkError(t, resps[0], bodies[0], http.StatusServiceUnavailable, "too_many_connections")
}

func TestLooksLikeHTTP(t *testing.T) {
	for in, want := range map[string]bool{
		"GET /": true, "POST ": true, "PRI *": false, "OPTIO": true,
		"\x16\x03\x01\x02\x00": false, "get /": false,
	} {
		var h [5]byte
		copy(h[:], in)
		if got := looksLikeHTTP(h); got != want {
			t.Errorf("looksLikeHTTP(%q) = %v; want %v", in, got, want)
		}
	}
}

func TestMatchPreface(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []string
		h2     bool
	}{
		{"whole", []string{h2Preface + "\x00\x00\x12\x04"}, true},
		{"split", []string{"PRI * HT", "TP/2.0\r\n\r\nSM", "\r\n\r\n\x00\x00"}, true},
		{"byte by byte", strings.Split(h2Preface, ""), true},
		{"HTTP/1.1", []string{"GET / HTTP/1.1\r\n"}, false},
		{"PRI then not", []string{"PRI ", "/x HTTP/1.1\r\n"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Conn{}
			var fed int64
			for _, ch := range tc.chunks {
				if c.h2.Load() {
					break
				}
				if c.preface < 0 || !c.matchPreface([]byte(ch)) {
					c.track.feed([]byte(ch))
				}
				fed = c.track.pos
			}
			if c.h2.Load() != tc.h2 {
				t.Errorf("h2 is %v; want %v", c.h2.Load(), tc.h2)
			}
			if want := int64(len(strings.Join(tc.chunks, ""))); !tc.h2 && fed != want {
				t.Errorf("the tracker was fed %d bytes; want all %d", fed, want)
			}
		})
	}
}

func TestTLSProbeNotCounted(t *testing.T) {
	p := newPKI(t, "")
	l, addr := serve(t, Options{TLS: p.certs.Config()}, http.NotFoundHandler())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitOpen(t, l, 0)
	// A client that sends half a hello, then gives up, is counted.
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x40, 0x01})
	c.Close()
	waitHandshakeFailed(t, l)
	if s := l.Stats(); s.HandshakeFailed != 1 || s.PlainHTTP != 0 {
		t.Errorf("got %+v; want one failed handshake, the probe not counted", s)
	}
}

// FuzzPreface: on a TLS connection, a stream cut anywhere into reads is
// HTTP/2 exactly when it begins with the preface; otherwise the tracker is
// fed all of it and refuses what it refuses fed directly.
func FuzzPreface(f *testing.F) {
	f.Add([]byte(h2Preface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), uint8(5), uint8(9))
	f.Add([]byte("PRI * HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"), uint8(2), uint8(30))
	f.Add([]byte("PRI /x HTTP/1.1\r\n\r\n"), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, cut1, cut2 uint8) {
		a, b := min(int(cut1), len(stream)), min(int(cut2), len(stream))
		if a > b {
			a, b = b, a
		}
		c := &Conn{}
		var why refusal
		for _, chunk := range [][]byte{stream[:a], stream[a:b], stream[b:]} {
			if len(chunk) == 0 || c.h2.Load() {
				continue
			}
			if c.preface >= 0 && c.matchPreface(chunk) {
				continue
			}
			if _, w := c.track.feed(chunk); w != refuseNone && why == refuseNone {
				why = w
			}
		}
		isH2 := strings.HasPrefix(string(stream), h2Preface)
		if c.h2.Load() != isH2 {
			t.Fatalf("h2 = %v; want %v", c.h2.Load(), isH2)
		}
		if isH2 || c.preface > 0 { // HTTP/2, or still a prefix of the preface
			return
		}
		var direct tracker
		_, want := direct.feed(stream)
		if why != want {
			t.Errorf("refusal %v through the preface check; %v fed directly", why, want)
		}
	})
}
