package limit

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/redistest"
)

// TestAdaptive: an adaptive limit is its base plus a share of what the
// global limit has left in the minute, read atomically with the check.
func TestAdaptive(t *testing.T) {
	stores := map[string]func(t *testing.T) Store{
		"memory": func(*testing.T) Store { return NewMemory() },
		"redis": func(t *testing.T) Store {
			s, err := NewRedis(redistest.Start(t).URL() + longTimeouts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			l := New(Options{Store: newStore(t), Timeout: patient})
			global := &Rule{ID: "global", Key: KeyGlobal, TokensPerMinute: 1000}
			tier := &Rule{ID: "p/1", Key: KeySubscription, TokensPerMinute: 100, AdaptiveShare: 0.1, AdaptiveOf: global}
			now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
			admit := func(sub string, tokens int64) Decision {
				return l.Admit(context.Background(), Request{Rules: []*Rule{global, tier},
					Subject: Subject{Subscription: sub, Product: "p"}, Tokens: tokens, Now: now})
			}
			// Global has 1000 left: the tier's limit is 100 + 100 = 200.
			if d := admit("a", 200); !d.Allowed {
				t.Fatalf("200 tokens with 1000 global left: refused (%+v); want admitted (limit 200)", d.Denial)
			}
			if d := admit("a", 1); d.Allowed || d.Denial.Kind != TokensPerMinute || d.Denial.Rule != tier || d.Denial.Limit != 180 {
				t.Fatalf("one more token: %+v; want refused by the tier at its effective limit 100 + 0.1*800 = 180", d.Denial)
			}
			// b and c use 700 more of the global: 100 left, so b's tier limit
			// shrinks to 100 + 0.1*100 = 110.
			if d := admit("b", 100); !d.Allowed {
				t.Fatal("b's first 100 refused")
			}
			for range 6 {
				if d := l.Admit(context.Background(), Request{Rules: []*Rule{global},
					Subject: Subject{Subscription: "c", Product: "p"}, Tokens: 100, Now: now}); !d.Allowed {
					t.Fatal("global traffic refused")
				}
			}
			if d := admit("b", 11); d.Allowed || d.Denial.Limit != 110 {
				t.Fatalf("b asking 11 more with 100 global left: %+v; want refused at 110", d.Denial)
			}
			if d := admit("b", 10); !d.Allowed {
				t.Fatalf("b asking 10 more: refused (%+v); want admitted up to 110", d.Denial)
			}
		})
	}
}
