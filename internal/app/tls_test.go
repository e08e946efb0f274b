package app

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluice-gateway/sluice/internal/certtest"
	"github.com/sluice-gateway/sluice/internal/usage"
)

// tlsFixture is the fixture serving HTTPS on both listeners, with client
// certificates requested (or required) on the client listener, and
// subscriptions named by certificate principals.
type tlsFixture struct {
	*fixture
	ca                *certtest.CA
	certFile, keyFile string
}

const tlsSubscriptions = `  - name: cert-team
    product: standard
    principals: ["cert:CN=team-cert"]
  - name: cert-service
    product: chat-only
    principals: ["cert:URI=spiffe://example.org/batch"]
`

func newTLSFixture(t *testing.T, clientAuth string) *tlsFixture {
	t.Helper()
	ca := certtest.NewCA(t, "sluice test CA")
	certFile, keyFile, caFile := ca.Files(t, t.TempDir(), ca.Server(t, "sluice gateway"))
	t.Setenv("FX_CERT", certFile)
	t.Setenv("FX_KEY", keyFile)
	t.Setenv("FX_CA", caFile)
	tmpl := strings.Replace(fxConfigYAML, "  shutdown_grace: %s\n", `  shutdown_grace: %s
  tls:
    cert_file: ${FX_CERT}
    key_file: ${FX_KEY}
    client_ca_file: ${FX_CA}
    client_auth: `+clientAuth+`
`, 1)
	tmpl = strings.Replace(tmpl, "  api_key: ${FX_ADMIN_KEY}\n", `  api_key: ${FX_ADMIN_KEY}
  tls: { cert_file: "${FX_CERT}", key_file: "${FX_KEY}" }
`, 1)
	f := newFixture(t, withConfig(tmpl))
	f.writeConfig(tlsSubscriptions)
	if err := f.gw.Reload(); err != nil {
		t.Fatal(err)
	}
	f.url = "https://" + strings.TrimPrefix(f.url, "http://")
	f.admin = "https://" + strings.TrimPrefix(f.admin, "http://")
	return &tlsFixture{fixture: f, ca: ca, certFile: certFile, keyFile: keyFile}
}

// httpsClient trusts the fixture's authority, offers HTTP/2 as Go's
// default transport does, and presents cert when it is not nil.
func (f *tlsFixture) httpsClient(cert *certtest.Leaf) *http.Client {
	cfg := &tls.Config{RootCAs: f.ca.Pool()}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLS}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: time.Minute}
}

// sdk is the official SDK over f's HTTPS client, in OpenAI mode with key
// (none: no credential but the certificate) or in Azure mode.
func (f *tlsFixture) sdk(mode, key string, cert *certtest.Leaf) openai.Client {
	hc := option.WithHTTPClient(f.httpsClient(cert))
	if mode == "azure" {
		return openai.NewClient(azure.WithEndpoint(f.url, "2024-10-21"), azure.WithAPIKey(key), hc, option.WithMaxRetries(0))
	}
	opts := []option.RequestOption{option.WithBaseURL(f.url + "/v1"), hc, option.WithMaxRetries(0)}
	if key != "" {
		opts = append(opts, option.WithAPIKey(key))
	} else {
		opts = append(opts, option.WithHeaderDel("Authorization"))
	}
	return openai.NewClient(opts...)
}

// TestSDKOverTLS: the official SDK reaches the gateway over HTTPS with its
// own CA, in OpenAI and Azure modes, over HTTP/2; a client certificate
// whose common name or URI is a subscription's principal is served as that
// subscription without a key; the admin listener speaks HTTPS too.
func TestSDKOverTLS(t *testing.T) {
	f := newTLSFixture(t, "request")
	team := f.ca.Client(t, "team-cert", certtest.Names{})
	batch := f.ca.Client(t, "batch-job", certtest.Names{URIs: []string{"spiffe://example.org/batch"}})
	stranger := f.ca.Client(t, "stranger", certtest.Names{})
	for _, tt := range []struct {
		name, mode, key string
		cert            *certtest.Leaf
		status          int
		sub             string
	}{
		{"key, openai", "openai", fxAlphaKey, nil, 200, "team-alpha"},
		{"key, azure", "azure", fxAlphaKey, nil, 200, "team-alpha"},
		{"cert:CN", "openai", "", team, 200, "cert-team"},
		{"cert:URI", "openai", "", batch, 200, "cert-service"},
		{"key beside a certificate names the subscription", "openai", fxAlphaKey, team, 200, "team-alpha"},
		{"certificate naming no subscription", "openai", "", stranger, 401, ""},
		{"no credential", "openai", "", nil, 401, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var resp *http.Response
			client := f.sdk(tt.mode, tt.key, tt.cert)
			_, err := client.Chat.Completions.New(context.Background(), chatParams("gpt-4o"),
				option.WithResponseInto(&resp))
			if tt.status != 200 {
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.status {
					t.Fatalf("got %v; want %d", err, tt.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("chat over https: %v", err)
			}
			if resp.ProtoMajor != 2 || resp.TLS == nil {
				t.Errorf("got %s, TLS %v; want HTTP/2 over TLS", resp.Proto, resp.TLS != nil)
			}
		})
	}
	waitFor(t, nil, "the ledger records the certificate subscriptions", func() bool {
		subs := ledgerSubscriptions(f.fixture)
		return subs["cert-team"] && subs["cert-service"] && subs["team-alpha"]
	})

	// The admin listener: HTTPS, HTTP/2.
	req, _ := http.NewRequest(http.MethodGet, f.admin+"/admin/config", nil)
	req.Header.Set("api-key", fxAdminKey)
	resp, err := f.httpsClient(nil).Do(req)
	if err != nil {
		t.Fatalf("admin over https: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("admin: got %d over %s; want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
}

// ledgerSubscriptions returns the subscriptions the ledger has rows for.
func ledgerSubscriptions(f *fixture) map[string]bool {
	out := map[string]bool{}
	rows, err := f.gw.obs.ledger.Report(context.Background(), usage.Query{GroupBy: []string{"subscription"}})
	if err != nil {
		return out
	}
	for _, r := range rows {
		out[r.Group["subscription"]] = true
	}
	return out
}

// TestTLSPlainClient: a plain HTTP client on the HTTPS port gets a 400 that
// says to use https, not a hang or a reset; an HTTPS client that does not
// trust the certificate fails its handshake.
func TestTLSPlainClient(t *testing.T) {
	f := newTLSFixture(t, "request")
	plain := openai.NewClient(option.WithBaseURL("http://"+strings.TrimPrefix(f.url, "https://")+"/v1"),
		option.WithAPIKey(fxAlphaKey), option.WithMaxRetries(0))
	_, err := plain.Chat.Completions.New(context.Background(), chatParams("gpt-4o"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "tls_required" {
		t.Fatalf("plain HTTP to the HTTPS port: got %v; want 400 tls_required", err)
	}
	if !strings.Contains(apiErr.Message, "https://") {
		t.Errorf("the message %q does not say https://", apiErr.Message)
	}
	untrusting := openai.NewClient(option.WithBaseURL(f.url+"/v1"), option.WithAPIKey(fxAlphaKey), option.WithMaxRetries(0))
	if _, err := untrusting.Chat.Completions.New(context.Background(), chatParams("gpt-4o")); err == nil {
		t.Error("a client without the test CA was served; want its handshake to fail")
	}
	waitFor(t, nil, "the metrics count both", func() bool {
		s := f.gw.Connections()
		return s.PlainHTTP == 1 && s.HandshakeFailed >= 1
	})
}

// TestTLSClientCertRequired: with client_auth: require, a client without a
// certificate is refused at the handshake, and one with a certificate from
// the CA is served, even with a key that names another subscription.
func TestTLSClientCertRequired(t *testing.T) {
	f := newTLSFixture(t, "require")
	noCert := f.sdk("openai", fxAlphaKey, nil)
	_, err := noCert.Chat.Completions.New(context.Background(), chatParams("gpt-4o"))
	var apiErr *openai.Error
	if err == nil || errors.As(err, &apiErr) {
		t.Fatalf("without a certificate: got %v; want the handshake refused", err)
	}
	other := certtest.NewCA(t, "another CA").Client(t, "team-cert", certtest.Names{})
	hc := f.httpsClient(nil)
	hc.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &other.TLS, nil
	}
	client := openai.NewClient(option.WithBaseURL(f.url+"/v1"), option.WithHTTPClient(hc), option.WithAPIKey(fxAlphaKey), option.WithMaxRetries(0))
	if _, err := client.Chat.Completions.New(context.Background(), chatParams("gpt-4o")); err == nil {
		t.Fatal("a certificate from another CA was served; want the handshake refused")
	}
	team := f.ca.Client(t, "team-cert", certtest.Names{})
	for what, key := range map[string]string{"with a key": fxAlphaKey, "alone": ""} {
		client := f.sdk("openai", key, team)
		if _, err := client.Chat.Completions.New(context.Background(), chatParams("gpt-4o")); err != nil {
			t.Fatalf("with the CA's certificate, %s: %v", what, err)
		}
	}
}

// TestTLSRenewedCertificate: certificate files replaced under a running
// gateway are served from the next handshake a second later, no restart.
func TestTLSRenewedCertificate(t *testing.T) {
	f := newTLSFixture(t, "request")
	serial := func() string {
		hc := f.httpsClient(nil)
		hc.Transport.(*http.Transport).DisableKeepAlives = true
		resp, err := hc.Get(f.url + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	renewed := f.ca.Server(t, "sluice gateway renewed")
	renewed.Write(t, f.certFile, f.keyFile)
	want := renewed.Cert.SerialNumber.String()
	waitFor(t, nil, "the renewed certificate is served", func() bool { return serial() == want })
	if before == want {
		t.Fatal("the first certificate already had the renewed serial")
	}
	if !strings.Contains(f.logs.String(), "TLS certificate was reloaded") {
		t.Error("the reload was not logged")
	}
}

// TestTLSRefusesBadFiles: a gateway whose certificate cannot be loaded does
// not start.
func TestTLSRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "sluice.yaml")
	body := `server:
  listen: 127.0.0.1:0
  tls: { cert_file: ` + bad + `, key_file: ` + bad + ` }
backends:
  - { name: b, kind: openai, url: "http://127.0.0.1:1", auth: { api_key: k } , deployments: { gpt-4o: gpt-4o } }
pools: [{ name: p, members: [{ backend: b }] }]
models: { gpt-4o: p }
products: [{ name: pr, models: [gpt-4o] }]
subscriptions: [{ name: s, product: pr, keys: [sk-0123456789abcdef] }]
`
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	err := Main(context.Background(), []string{"serve", "--config", cfgPath}, &stdout, &stderr)
	if err == nil {
		t.Fatal("serve started with a certificate that is not PEM")
	}
	if !strings.Contains(stderr.String(), "server.tls") {
		t.Errorf("stderr %q does not name server.tls", stderr.String())
	}
}
