package balance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/breaker"
	"github.com/sluice-gateway/sluice/internal/config"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// newBackend returns a backend whose breaker trips on one 429 for a minute.
func newBackend(t testing.TB, name, region string) *backend.Backend {
	t.Helper()
	b, err := backend.New(config.Backend{
		Name: name, Kind: "azure-openai", URL: "http://" + name + ".invalid", Region: region,
		Deployments: map[string]string{"m": "m"},
		CircuitBreaker: &config.CircuitBreaker{Failures: 1, Interval: config.Duration(time.Minute),
			StatusCodes: []string{"429"}, TripDuration: config.Duration(time.Minute)},
	}, backend.NewState(name, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Activate()
	return b
}

// trip opens b's breaker.
func trip(b *backend.Backend, now time.Time) {
	tk, _ := b.State.Breaker.Allow(now)
	b.State.Breaker.Done(tk, now, breaker.Outcome{Status: 429})
}

func pickN(t *testing.T, p *Pool, n int, f *Filter) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		b, tk, ok := p.Pick(t0, f, Affinity{})
		if !ok {
			t.Fatal("Pick found no member")
		}
		b.State.Breaker.Done(tk, t0, breaker.Outcome{Status: 200})
		got[b.Name]++
	}
	return got
}

func TestWeightedRoundRobin(t *testing.T) {
	a, b := newBackend(t, "a", ""), newBackend(t, "b", "")
	p := NewPool("p", []Member{{Backend: a, Priority: 1, Weight: 3}, {Backend: b, Priority: 1, Weight: 1}}, Options{})
	got := pickN(t, p, 1000, nil)
	if share := float64(got["a"]) / 1000; math.Abs(share-0.75) > 0.02 {
		t.Errorf("a got %.1f%% of 1,000; want 75%% ± 2%%", share*100)
	}
	// Smooth: nginx's interleaving, never a member's whole weight at once.
	for _, tt := range []struct {
		weights []int
		want    string
	}{
		{[]int{3, 1}, "aaba"},
		{[]int{5, 1, 1}, "aabacaa"},
		{[]int{1, 1}, "ab"},
	} {
		var ms []Member
		for i, w := range tt.weights {
			ms = append(ms, Member{Backend: newBackend(t, string(rune('a'+i)), ""), Priority: 1, Weight: w})
		}
		g := newGroup(ms)
		seq := ""
		for _, i := range g.seq {
			seq += ms[i].Backend.Name
		}
		if seq != tt.want {
			t.Errorf("weights %v: order %s; want %s", tt.weights, seq, tt.want)
		}
	}
}

func TestPrioritySpillover(t *testing.T) {
	ptu, we, fr := newBackend(t, "ptu", "sweden"), newBackend(t, "we", "westeurope"), newBackend(t, "fr", "france")
	p := NewPool("chat", []Member{
		{Backend: we, Priority: 2, Weight: 3}, {Backend: ptu, Priority: 1, Weight: 1}, {Backend: fr, Priority: 2, Weight: 1},
	}, Options{})
	if got := pickN(t, p, 20, nil); got["ptu"] != 20 {
		t.Fatalf("with the PTU available got %v; want all 20 on ptu", got)
	}
	trip(ptu, t0)
	got := pickN(t, p, 400, nil)
	if got["ptu"] != 0 || got["we"] != 300 || got["fr"] != 100 {
		t.Errorf("with the PTU tripped got %v; want we 300, fr 100 (3:1)", got)
	}
	if at := p.NextAvailable(nil); !at.Equal(t0.Add(time.Minute)) {
		t.Errorf("NextAvailable = %v; want the PTU's reopening %v", at, t0.Add(time.Minute))
	}
	trip(we, t0)
	trip(fr, t0)
	if b, _, ok := p.Pick(t0, nil, Affinity{}); ok {
		t.Errorf("every breaker open, Pick = %s; want none", b.Name)
	}
	// After the trip the PTU is half-open: one probe goes there.
	later := t0.Add(time.Minute + time.Second)
	b, _, ok := p.Pick(later, nil, Affinity{})
	if !ok || b != ptu {
		t.Errorf("after the trip Pick = %v; want the PTU's half-open probe", b)
	}
}

func TestFilter(t *testing.T) {
	se, we := newBackend(t, "se", "swedencentral"), newBackend(t, "we", "westeurope")
	p := NewPool("p", []Member{{Backend: se, Priority: 1, Weight: 1}, {Backend: we, Priority: 2, Weight: 1}}, Options{})
	f := &Filter{Regions: map[string]bool{"westeurope": true}}
	if got := pickN(t, p, 10, f); got["we"] != 10 {
		t.Errorf("regions [westeurope] got %v; want we only", got)
	}
	trip(we, t0)
	if b, _, ok := p.Pick(t0, f, Affinity{}); ok {
		t.Errorf("region down, Pick = %s; want none rather than another region", b.Name)
	}
	if n := p.Eligible(f); n != 1 {
		t.Errorf("Eligible = %d; want 1", n)
	}
	tried := &Filter{Tried: []*backend.Backend{se}}
	if b, _, ok := p.Pick(t0, tried, Affinity{}); ok {
		t.Errorf("se tried and we tripped, Pick = %s; want none", b.Name)
	}
}

func TestLeastBusy(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer hang.Close()
	defer close(release)
	a, b := newBackend(t, "a", ""), newBackend(t, "b", "")
	p := NewPool("p", []Member{{Backend: a, Priority: 1, Weight: 1}, {Backend: b, Priority: 1, Weight: 1}},
		Options{Strategy: LeastBusy, Rand: rand.New(rand.NewPCG(1, 2)).Uint64})
	// Put 3 real requests in flight on a.
	for range 3 {
		req, _ := http.NewRequest("GET", hang.URL, nil)
		go func() {
			if resp, err := a.RoundTrip(req); err == nil {
				resp.Body.Close()
			}
			a.Done(false)
		}()
	}
	for a.State.InFlight() < 3 {
		time.Sleep(time.Millisecond)
	}
	if got := pickN(t, p, 100, nil); got["b"] != 100 {
		t.Errorf("a busy got %v; want every pick on b", got)
	}
}

func TestLeastLatency(t *testing.T) {
	fast, slow := newBackend(t, "fast", ""), newBackend(t, "slow", "")
	p := NewPool("p", []Member{{Backend: fast, Priority: 1, Weight: 1}, {Backend: slow, Priority: 1, Weight: 1}},
		Options{Strategy: LeastLatency, Rand: rand.New(rand.NewPCG(3, 4)).Uint64})
	fast.State.ObserveLatency(10 * time.Millisecond)
	slow.State.ObserveLatency(50 * time.Millisecond)
	got := pickN(t, p, 1000, nil)
	if share := float64(got["fast"]) / 1000; share < 0.85 {
		t.Errorf("fast got %.1f%%; want at least 85%% (10%% exploration)", share*100)
	}
	if got["slow"] == 0 {
		t.Error("slow got no traffic; want exploration to keep measuring it")
	}
	// The slow one recovers: a few samples move its average below the other.
	for range 10 {
		slow.State.ObserveLatency(2 * time.Millisecond)
	}
	if got := pickN(t, p, 1000, nil); got["slow"] < 850 {
		t.Errorf("after recovery got %v; want the recovered backend preferred", got)
	}
}

func TestAffinity(t *testing.T) {
	var ms []Member
	for i := range 4 {
		ms = append(ms, Member{Backend: newBackend(t, fmt.Sprint("b", i), ""), Priority: 1, Weight: 1})
	}
	p := NewPool("p", ms, Options{})
	// The same key always lands on the same backend; keys spread.
	seen := map[string]bool{}
	for k := range 40 {
		key := fmt.Sprint("session-", k)
		first, tk, _ := p.Pick(t0, nil, Affinity{Key: key})
		first.State.Breaker.Done(tk, t0, breaker.Outcome{Status: 200})
		seen[first.Name] = true
		for range 5 {
			b, tk, _ := p.Pick(t0, nil, Affinity{Key: key})
			b.State.Breaker.Done(tk, t0, breaker.Outcome{Status: 200})
			if b != first {
				t.Fatalf("key %s went to %s, then %s; want the same backend", key, first.Name, b.Name)
			}
		}
	}
	if len(seen) < 3 {
		t.Errorf("40 keys reached %d backends; want them spread", len(seen))
	}
	// A cookie pins by name; a pinned backend that is down is bypassed.
	b, _, _ := p.Pick(t0, nil, Affinity{Backend: "b2"})
	if b.Name != "b2" {
		t.Errorf("cookie b2 went to %s", b.Name)
	}
	trip(ms[2].Backend, t0)
	if b, _, ok := p.Pick(t0, nil, Affinity{Backend: "b2"}); !ok || b.Name == "b2" {
		t.Errorf("cookie to a tripped backend went to %v; want another", b)
	}
}

// BenchmarkPick is member selection plus the breaker check, as every request
// does it.
func BenchmarkPick(b *testing.B) {
	for _, s := range []Strategy{RoundRobin, LeastLatency, LeastBusy} {
		b.Run(s.String(), func(b *testing.B) {
			var ms []Member
			for i := range 3 {
				ms = append(ms, Member{Backend: newBackend(b, fmt.Sprint("b", i), "r"), Priority: 1 + i/2, Weight: 1 + i})
			}
			p := NewPool("p", ms, Options{Strategy: s})
			trip(ms[0].Backend, t0) // the PTU is out: spill to the second group
			f := &Filter{Regions: map[string]bool{"r": true}}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m, tk, ok := p.Pick(t0, f, Affinity{})
					if !ok {
						b.Error("no member")
						return
					}
					m.State.Breaker.Done(tk, t0, breaker.Outcome{Status: 200})
				}
			})
		})
	}
}
