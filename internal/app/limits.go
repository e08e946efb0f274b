package app

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/limit"
)

// openStore opens the store state.store names: memory, or a Redis URL whose
// socket timeouts default to state.timeout.
func openStore(st config.State) (limit.Store, error) {
	if st.Store == "memory" || st.Store == "" {
		return limit.NewMemory(), nil
	}
	raw, err := stateURL(st)
	if err != nil {
		return nil, err
	}
	s, err := limit.NewRedis(raw)
	if err != nil {
		return nil, fmt.Errorf("state.store: %w", err)
	}
	return s, nil
}

// stateURL is state.store's Redis URL with its socket timeouts defaulting
// to state.timeout.
func stateURL(st config.State) (string, error) {
	u, err := url.Parse(st.Store)
	if err != nil {
		return "", fmt.Errorf("state.store: not a URL")
	}
	q := u.Query()
	for _, k := range []string{"dial_timeout", "read_timeout", "write_timeout", "pool_timeout"} {
		if !q.Has(k) {
			q.Set(k, st.Timeout.D().String())
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// sessionRedis opens a client of state.store's Redis for the dashboard's
// sessions (package webui), with the limit store's timeouts; nil when
// state.store is memory. Like the limit store's, it does not connect until
// its first call, and never retries a call.
func sessionRedis(st config.State) (*redis.Client, error) {
	if st.Store == "memory" || st.Store == "" {
		return nil, nil
	}
	raw, err := stateURL(st)
	if err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("state.store: %w", err)
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = 4 // a dashboard request makes one call
	}
	// The limit store's timeouts (state.timeout, 50 ms by default) are
	// for the request path; a person at the dashboard can wait longer
	// than a spurious "unavailable" is worth. webui bounds each call at 2 s.
	opts.DialTimeout = max(opts.DialTimeout, time.Second)
	opts.ReadTimeout = max(opts.ReadTimeout, 500*time.Millisecond)
	opts.WriteTimeout = max(opts.WriteTimeout, 500*time.Millisecond)
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	opts.ContextTimeoutEnabled = true
	opts.DisableIdentity = true
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return redis.NewClient(opts), nil
}
