package listener

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// recheckEvery spaces the checks of a listener's files for changes: at most
// one stat of each per second, made by the handshake that finds the last
// check older.
const recheckEvery = time.Second

// TLSFiles name a listener's PEM files (server.tls, admin.tls).
type TLSFiles struct {
	// CertFile is the certificate chain, the server's certificate first.
	CertFile string
	// KeyFile is the certificate's private key.
	KeyFile string
	// ClientCAFile holds the authorities client certificates are verified
	// against. Empty: clients are not asked for certificates.
	ClientCAFile string
	// RequireClientCert refuses the handshake of a client without a
	// certificate that verifies; otherwise a client may present none, but
	// one it presents must verify. Only with ClientCAFile.
	RequireClientCert bool
}

// Certs holds a listener's TLS configuration as loaded from its files, and
// loads it again when a file changes (a renewed certificate, a new
// authority), so that no restart is needed: a handshake that comes a second
// or more after the last check stats the files, and if one changed, reads
// them all. A reload that fails (a certificate and key that do not match
// while a renewal is half written, say) keeps the configuration in force and
// logs a warning, once per change of the files. Safe for concurrent use.
type Certs struct {
	files TLSFiles
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex // guards the fields below
	checked time.Time  // when the files were last statted
	stamps  []stamp    // the files as loaded
	failed  []stamp    // the files as a failed reload found them
	warned  string     // the last reload error logged
	cfg     *tls.Config
}

// stamp is what tells a changed file: its size and modification time.
type stamp struct {
	size int64
	mod  time.Time
}

// LoadCerts reads f's files, failing if they do not make a configuration.
// log receives the reloads (nil: discard); now is the clock of the checks
// (nil: time.Now).
func LoadCerts(f TLSFiles, log *slog.Logger, now func() time.Time) (*Certs, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	c := &Certs{files: f, log: log, now: now}
	st, err := c.stat()
	if err != nil {
		return nil, err
	}
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	c.cfg, c.stamps, c.checked = cfg, st, now()
	return c, nil
}

// Config returns the tls.Config a Listener serves with (Options.TLS): each
// handshake takes the configuration in force, reloaded first if the files
// changed. A nil Certs returns nil: plain HTTP.
func (c *Certs) Config() *tls.Config {
	if c == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return c.current(), nil
		},
	}
}

// Leaf returns the server certificate in force.
func (c *Certs) Leaf() *x509.Certificate {
	return c.current().Certificates[0].Leaf
}

// current returns the configuration in force, after reloading it if the
// files changed since it was loaded and the last check is a second old.
func (c *Certs) current() *tls.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if now.Sub(c.checked) < recheckEvery && !now.Before(c.checked) {
		return c.cfg
	}
	c.checked = now
	st, err := c.stat()
	if err == nil && sameStamps(st, c.stamps) || err == nil && sameStamps(st, c.failed) {
		return c.cfg
	}
	var cfg *tls.Config
	if err == nil {
		cfg, err = c.load()
	}
	if err != nil {
		if err.Error() != c.warned {
			c.warned = err.Error()
			c.log.Warn("the listener's TLS files changed but cannot be loaded; the certificate in force stays", "err", err)
		}
		c.failed = st
		return c.cfg
	}
	c.cfg, c.stamps, c.failed, c.warned = cfg, st, nil, ""
	leaf := cfg.Certificates[0].Leaf
	c.log.Info("the listener's TLS certificate was reloaded", "cert_file", c.files.CertFile,
		"subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	return c.cfg
}

// stat stamps the files.
func (c *Certs) stat() ([]stamp, error) {
	names := []string{c.files.CertFile, c.files.KeyFile}
	if c.files.ClientCAFile != "" {
		names = append(names, c.files.ClientCAFile)
	}
	out := make([]stamp, len(names))
	for i, n := range names {
		fi, err := os.Stat(n)
		if err != nil {
			return nil, err
		}
		out[i] = stamp{size: fi.Size(), mod: fi.ModTime()}
	}
	return out, nil
}

func sameStamps(a, b []stamp) bool {
	if len(a) != len(b) || a == nil {
		return false
	}
	for i := range a {
		if a[i].size != b[i].size || !a[i].mod.Equal(b[i].mod) {
			return false
		}
	}
	return true
}

// ErrNoClientCAs is LoadCerts' error for a client_ca_file without a single
// certificate.
var ErrNoClientCAs = errors.New("listener: the client CA file holds no PEM certificate")

// load reads the files into a configuration: TLS 1.2 at least, with only
// the forward-secret AEAD suites below 1.3 (those HTTP/2 permits, RFC 9113
// section 9.2.2), HTTP/2 offered before HTTP/1.1.
func (c *Certs) load() (*tls.Config, error) {
	kp, err := tls.LoadX509KeyPair(c.files.CertFile, c.files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading %s and %s: %w", c.files.CertFile, c.files.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{kp},
		NextProtos:   []string{"h2", "http/1.1"},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
	if c.files.ClientCAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(c.files.ClientCAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %w", c.files.ClientCAFile, ErrNoClientCAs)
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	if c.files.RequireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
