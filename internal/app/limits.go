package app

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/limit"
)

// counterStore is the limit store in use and the state.store it came from.
// A reload keeps it while state.store stays the same, so counts and Redis
// connections survive.
type counterStore struct {
	url   string
	store limit.Store
}

// openStore opens the store state.store names: memory, or a Redis URL whose
// socket timeouts default to state.timeout.
func openStore(st config.State) (limit.Store, error) {
	if st.Store == "memory" || st.Store == "" {
		return limit.NewMemory(), nil
	}
	u, err := url.Parse(st.Store)
	if err != nil {
		return nil, fmt.Errorf("state.store: not a URL")
	}
	q := u.Query()
	for _, k := range []string{"dial_timeout", "read_timeout", "write_timeout", "pool_timeout"} {
		if !q.Has(k) {
			q.Set(k, st.Timeout.D().String())
		}
	}
	u.RawQuery = q.Encode()
	s, err := limit.NewRedis(u.String())
	if err != nil {
		return nil, fmt.Errorf("state.store: %w", err)
	}
	return s, nil
}

// limiterFor returns the limiter for cfg, on the store in use when
// state.store did not change, else on a new one; commit makes the new store
// the one in use and closes the old (call it once the table is swapped in).
func (g *Gateway) limiterFor(cfg *config.Config) (lim *limit.Limiter, commit func(), err error) {
	cur := g.counters
	next := cur
	if cur.store == nil || cur.url != cfg.State.Store {
		s, err := openStore(cfg.State)
		if err != nil {
			return nil, nil, err
		}
		next = counterStore{url: cfg.State.Store, store: s}
	}
	policy := limit.FailOpen
	if cfg.State.OnStoreError == "fail_closed" {
		policy = limit.FailClosed
	}
	lim = limit.New(limit.Options{Store: next.store, OnStoreError: policy, Timeout: cfg.State.Timeout.D(), Logger: g.log})
	return lim, func() {
		if next.store != cur.store {
			closeStore(cur.store, g.log)
		}
		g.counters = next
	}, nil
}

func closeStore(s limit.Store, log *slog.Logger) {
	if c, ok := s.(io.Closer); ok {
		if err := c.Close(); err != nil {
			log.Warn("closing the counter store", "err", err)
		}
	}
}
