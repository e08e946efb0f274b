package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/sluice-gateway/sluice/internal/config"
)

// fetchTimeout bounds one discovery or key set fetch. It is the fetch's own
// bound, not a request's: a request waits at most UnknownKeyWait.
const fetchTimeout = 10 * time.Second

// maxDocument bounds a discovery document or key set read.
const maxDocument = 1 << 20

// keySet is a provider's signing keys: fetched in the background at start
// and every refresh_interval, and on demand (at most once per
// unknown_key_refresh) for a token whose key id it does not hold.
type keySet struct {
	cfg   config.JWTProvider
	o     Options
	store *jwkset.MemoryJWKSet
	kf    keyfunc.Keyfunc

	loaded      atomic.Bool // a fetch succeeded once
	nkeys       atomic.Int64
	fetches     atomic.Uint64
	fetchErrors atomic.Uint64

	mu          sync.Mutex // guards running, lastUnknown and jwksURL
	running     *fetch     // the fetch in flight, or nil
	lastUnknown time.Time  // when a token with an unknown key id last started a fetch
	jwksURL     string     // from the config, or found by discovery

	ctx    context.Context // ends every fetch on close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the loop and the fetches
}

// fetch is one fetch of the key set; done is closed when it ends, err set
// before.
type fetch struct {
	done chan struct{}
	err  error
}

func newKeySet(c config.JWTProvider, o Options) *keySet {
	ks := &keySet{cfg: c, o: o, store: jwkset.NewMemoryStorage(), jwksURL: c.JWKSURL}
	ks.ctx, ks.cancel = context.WithCancel(context.Background())
	// keyfunc.New fails only without a storage.
	ks.kf, _ = keyfunc.New(keyfunc.Options{Ctx: ks.ctx, Storage: lookup{ks.store, ks},
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	ks.wg.Add(1)
	go ks.loop()
	return ks
}

// keyfunc returns the jwt.Keyfunc of a token verified under ctx.
func (ks *keySet) keyfunc(ctx context.Context) jwt.Keyfunc { return ks.kf.KeyfuncCtx(ctx) }

func (ks *keySet) count() int { return int(ks.nkeys.Load()) }

// close stops the loop and the fetch in flight, and waits for them.
func (ks *keySet) close() {
	ks.cancel()
	ks.wg.Wait()
}

// loop fetches the key set at start, then every refresh_interval; a failed
// fetch is tried again sooner, with backoff up to RetryMax, and the keys
// known stay in force meanwhile.
func (ks *keySet) loop() {
	defer ks.wg.Done()
	backoff := time.Second
	for {
		f := ks.start()
		select {
		case <-f.done:
		case <-ks.ctx.Done():
			return
		}
		wait := ks.cfg.RefreshInterval.D()
		if f.err != nil {
			wait = min(backoff, wait)
			backoff = min(2*backoff, ks.o.RetryMax)
		} else {
			backoff = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ks.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// start returns the fetch in flight, starting one if there is none.
func (ks *keySet) start() *fetch {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.startLocked()
}

func (ks *keySet) startLocked() *fetch {
	if ks.running != nil {
		return ks.running
	}
	f := &fetch{done: make(chan struct{})}
	ks.running = f
	ks.wg.Add(1)
	go func() {
		defer ks.wg.Done()
		ctx, cancel := context.WithTimeout(ks.ctx, fetchTimeout)
		err := ks.fetch(ctx)
		cancel()
		ks.mu.Lock()
		f.err = err
		ks.running = nil
		ks.mu.Unlock()
		close(f.done)
	}()
	return f
}

// forUnknown returns the fetch a token with an unknown key id may wait
// for: the one in flight, or a new one when none started for an unknown
// key within unknown_key_refresh; nil when it must not fetch.
func (ks *keySet) forUnknown() *fetch {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.running != nil {
		return ks.running
	}
	now := ks.o.Now()
	if !ks.lastUnknown.IsZero() && now.Sub(ks.lastUnknown) < ks.cfg.UnknownKeyRefresh.D() {
		return nil
	}
	ks.lastUnknown = now
	return ks.startLocked()
}

// fetch reads the key set (after the discovery document, the first time)
// and replaces the keys with it. On an error the keys stay as they were.
func (ks *keySet) fetch(ctx context.Context) (err error) {
	ks.fetches.Add(1)
	defer func() {
		if err != nil {
			ks.fetchErrors.Add(1)
			ks.o.Logger.Warn("fetching an identity provider's signing keys failed; the keys known stay in force",
				"provider", ks.cfg.Name, "err", err)
		}
	}()
	ks.mu.Lock()
	jwksURL := ks.jwksURL
	ks.mu.Unlock()
	if jwksURL == "" {
		var doc struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := ks.getJSON(ctx, ks.cfg.OpenIDConfiguration, &doc); err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		if err := checkFetchURL(doc.JWKSURI); err != nil {
			return fmt.Errorf("discovery: jwks_uri: %w", err)
		}
		jwksURL = doc.JWKSURI
		ks.mu.Lock()
		ks.jwksURL = jwksURL
		ks.mu.Unlock()
	}
	var set jwkset.JWKSMarshal
	if err := ks.getJSON(ctx, jwksURL, &set); err != nil {
		return fmt.Errorf("key set: %w", err)
	}
	keys := make([]jwkset.JWK, 0, len(set.Keys))
	for _, m := range set.Keys {
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			continue // an unsupported or broken key is not one to verify with
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return errors.New("key set: no usable key")
	}
	if err := ks.store.KeyReplaceAll(ctx, keys); err != nil {
		return fmt.Errorf("key set: %w", err)
	}
	ks.nkeys.Store(int64(len(keys)))
	ks.loaded.Store(true)
	return nil
}

// getJSON fetches u and decodes its JSON body into v.
func (ks *keySet) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := ks.o.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxDocument)).Decode(v)
}

// checkFetchURL holds a discovered jwks_uri to the rule of the config's
// URLs: https, or http on a loopback address.
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		return errors.New("not an absolute URL")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http":
		if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return errors.New("not https")
}

// lookup is the key store keyfunc reads: a key id it does not hold makes
// it join or start a fetch, within the limits of keySet.forUnknown, and wait
// UnknownKeyWait at most for it.
type lookup struct {
	*jwkset.MemoryJWKSet
	ks *keySet
}

var (
	errKeysUnavailable = fail(CheckKeysUnavailable, nil, "the identity provider's signing keys are not loaded yet")
	errUnknownKey      = fail(CheckUnknownKey, nil, "the token is signed with a key the identity provider does not publish")
)

func (l lookup) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	k, err := l.MemoryJWKSet.KeyRead(ctx, kid)
	if !errors.Is(err, jwkset.ErrKeyNotFound) {
		return k, err
	}
	f := l.ks.forUnknown()
	if f != nil {
		t := time.NewTimer(l.ks.o.UnknownKeyWait)
		select {
		case <-f.done:
			t.Stop()
			if k, err := l.MemoryJWKSet.KeyRead(ctx, kid); err == nil {
				return k, nil
			}
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if !l.ks.loaded.Load() {
		return jwkset.JWK{}, errKeysUnavailable
	}
	return jwkset.JWK{}, errUnknownKey
}

func (l lookup) KeyReadAll(ctx context.Context) ([]jwkset.JWK, error) {
	if !l.ks.loaded.Load() {
		return nil, errKeysUnavailable
	}
	return l.MemoryJWKSet.KeyReadAll(ctx)
}
