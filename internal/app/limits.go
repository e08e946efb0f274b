package app

import (
	"fmt"
	"net/url"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/limit"
)

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
