package app

import (
	"context"
	"encoding/hex"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/internal/auth"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/usage"
)

// subscriptionPoll is how often an instance asks the usage store whether
// the runtime subscriptions changed: a change made through any instance is
// in force on every other within it (and at once on the one that made it).
const subscriptionPoll = time.Second

// subscriptionSync keeps the registry's runtime subscriptions in step with
// the usage store: one cheap query (the newest audit id) per poll, and the
// whole list when it moved.
type subscriptionSync struct {
	g       *Gateway
	store   usage.Subscriptions
	mu      sync.Mutex // guards version; held while syncing
	version int64
	cancel  context.CancelFunc
	done    chan struct{}
}

func startSubscriptionSync(g *Gateway, store usage.Subscriptions) *subscriptionSync {
	s := &subscriptionSync{g: g, store: store, version: -1, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.sync(ctx)
	go s.loop(ctx)
	return s
}

// changed syncs now: a change made through this instance's admin API is in
// force here before the API answers.
func (s *subscriptionSync) changed() { s.sync(context.Background()) }

func (s *subscriptionSync) loop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(subscriptionPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.sync(ctx)
	}
}

// sync loads the subscriptions when the store's version moved.
func (s *subscriptionSync) sync(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := s.store.SubscriptionsVersion(ctx)
	if err != nil || v == s.version {
		return // a store that does not answer keeps the subscriptions in force
	}
	subs, err := s.store.ListSubscriptions(ctx)
	if err != nil {
		return
	}
	out := make([]route.RuntimeSubscription, 0, len(subs))
	for _, st := range subs {
		rs := route.RuntimeSubscription{Name: st.Name, Product: st.Product, Principals: st.Principals,
			Suspended: st.State == "suspended", ExpiresAt: st.ExpiresAt}
		for _, h := range []string{st.PrimaryDigest, st.SecondaryDigest} {
			var d auth.Digest
			if b, err := hex.DecodeString(h); err == nil && len(b) == len(d) {
				copy(d[:], b)
				rs.Digests = append(rs.Digests, d)
			}
		}
		out = append(out, rs)
	}
	s.g.registry.SetRuntime(out)
	s.version = v
}

func (s *subscriptionSync) stop() {
	s.cancel()
	<-s.done
}
