package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sluice-gateway/sluice/internal/wire"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func TestEntryRoundTrip(t *testing.T) {
	for _, e := range []*Entry{
		{Status: 200, ContentType: "application/json", Body: []byte(`{"a":1}`), UsageEvent: -1, Usage: wire.Usage{Prompt: 3, Completion: 4, Total: 7}},
		{Status: 200, ContentType: "text/event-stream", Events: [][]byte{[]byte("data: {}\n\n"), []byte("data: [DONE]\n\n")}, UsageEvent: 0},
	} {
		b, _ := e.MarshalBinary()
		var got Entry
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(e, &got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		for i := range len(b) - 1 {
			var cut Entry
			if cut.UnmarshalBinary(b[:i]) == nil {
				t.Errorf("UnmarshalBinary of %d of %d bytes succeeded; want errCorrupt", i, len(b))
			}
		}
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func entryOf(size int) *Entry {
	return &Entry{Status: 200, Body: make([]byte, size), UsageEvent: -1}
}

func TestMemoryTTLAndLRU(t *testing.T) {
	ctx := context.Background()
	c := &clock{time.Unix(1000, 0)}
	m := NewMemory(4*(1000+200)*4/3, c.now) // room for about four entries
	for i := range 4 {
		_ = m.Put(ctx, fmt.Sprint("k", i), entryOf(1000), time.Minute, nil)
	}
	if e, _ := m.Get(ctx, "k0"); e == nil {
		t.Fatal("k0 missing before any eviction")
	}
	_ = m.Put(ctx, "k4", entryOf(1000), time.Minute, nil) // evicts k1, the least recently used
	if e, _ := m.Get(ctx, "k1"); e != nil {
		t.Error("k1 still stored; want it evicted as the least recently used")
	}
	if e, _ := m.Get(ctx, "k0"); e == nil {
		t.Error("k0 evicted; want it kept, it was used")
	}
	c.t = c.t.Add(time.Minute)
	if e, _ := m.Get(ctx, "k4"); e != nil {
		t.Error("k4 served after its TTL")
	}
	if n, _ := m.Stats(); n > 3 {
		t.Errorf("%d entries; want at most 3", n)
	}
}

func TestMemoryClearByScope(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(0, nil)
	a, _ := KeysOf(OpChat, []byte(`{"x":1}`), KeyOptions{Tag: "alice", Semantic: false})
	b, _ := KeysOf(OpChat, []byte(`{"x":1}`), KeyOptions{Tag: "bob"})
	_ = m.Put(ctx, a.Exact, entryOf(1), time.Hour, &Vector{Partition: ScopePrefix("alice") + "p", V: []float32{1, 0}})
	_ = m.Put(ctx, b.Exact, entryOf(1), time.Hour, nil)
	if n, err := m.Clear(ctx, "alice"); n != 1 || err != nil {
		t.Errorf("Clear(alice) = %d, %v; want 1 entry dropped", n, err)
	}
	if e, _ := m.Get(ctx, a.Exact); e != nil {
		t.Error("alice's entry kept after Clear(alice)")
	}
	if _, _, ok := m.Nearest(ScopePrefix("alice")+"p", []float32{1, 0}); ok {
		t.Error("alice's vector kept after Clear(alice)")
	}
	if e, _ := m.Get(ctx, b.Exact); e == nil {
		t.Error("bob's entry dropped by Clear(alice)")
	}
	if n, err := m.Clear(ctx, ""); n != 1 || err != nil {
		t.Errorf("Clear(all) = %d, %v; want 1 entry dropped (bob's)", n, err)
	}
	if n, _ := m.Stats(); n != 0 {
		t.Errorf("%d entries after Clear(all)", n)
	}
}

func unit(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(s))
	}
	return v
}

func randomUnit(r *rand.Rand, dims int) []float32 {
	v := make([]float32, dims)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return unit(v)
}

func TestIndexNearest(t *testing.T) {
	x := NewIndex(0)
	r := rand.New(rand.NewPCG(1, 2))
	vecs := make([][]float32, 200)
	for i := range vecs {
		vecs[i] = randomUnit(r, 64)
		x.Add("p", fmt.Sprint(i), vecs[i], 100)
	}
	for _, i := range []int{0, 57, 199} {
		key, d, ok := x.Nearest("p", vecs[i], 50)
		if !ok || key != fmt.Sprint(i) || d > 1e-5 {
			t.Errorf("Nearest(vec %d) = %s, %v, %v; want %d at 0", i, key, d, ok, i)
		}
	}
	if _, _, ok := x.Nearest("other", vecs[0], 50); ok {
		t.Error("found in another partition")
	}
	if _, _, ok := x.Nearest("p", vecs[0], 100); ok {
		t.Error("found after expiry")
	}
	x.Remove("p", "57")
	if key, _, _ := x.Nearest("p", vecs[57], 50); key == "57" {
		t.Error("removed key still found")
	}
	if n, _ := x.Stats(); n != 199 {
		t.Errorf("%d vectors after one removal of 200", n)
	}
	x.Sweep(100)
	if n, b := x.Stats(); n != 0 || b != 0 {
		t.Errorf("%d vectors, %d bytes after the sweep; want none", n, b)
	}
}

func TestIndexBound(t *testing.T) {
	x := NewIndex(10 * rowBytes(4, "k00"))
	for i := range 30 {
		x.Add("p", fmt.Sprintf("k%02d", i), unit([]float32{1, float32(i), 0, 0}), 1e18)
	}
	if n, b := x.Stats(); n > 10 || b > 10*rowBytes(4, "k00") {
		t.Errorf("%d vectors, %d bytes; want at most 10", n, b)
	}
}

func TestFlightsCoalesce(t *testing.T) {
	var fs Flights
	lead, leader := fs.Join("k")
	if !leader {
		t.Fatal("first Join does not lead")
	}
	var wg sync.WaitGroup
	got := make([]*Entry, 8)
	for i := range got {
		f, l := fs.Join("k")
		if l {
			t.Fatal("second Join leads")
		}
		wg.Go(func() { got[i] = f.Wait(context.Background(), time.Minute) })
	}
	e := entryOf(1)
	fs.Land(lead, e)
	wg.Wait()
	for i, g := range got {
		if g != e {
			t.Errorf("follower %d got %v; want the leader's entry", i, g)
		}
	}
	if _, l := fs.Join("k"); !l {
		t.Error("Join after Land does not lead a new flight")
	}
	f, _ := fs.Join("k")
	if e := f.Wait(context.Background(), time.Millisecond); e != nil {
		t.Error("Wait past its bound returned an entry")
	}
}

func BenchmarkKeysOf(b *testing.B) {
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant that answers briefly."},` +
		`{"role":"user","content":"What is the capital of France, and what is it known for? Answer in two sentences."}],` +
		`"temperature":0.2,"max_tokens":200,"stream":false}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := KeysOf(OpChat, body, KeyOptions{Scope: "sub", Model: "gpt-4o"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryHit(b *testing.B) {
	m := NewMemory(1<<30, nil)
	ctx := context.Background()
	_ = m.Put(ctx, "k", entryOf(2000), time.Hour, nil)
	b.ReportAllocs()
	for b.Loop() {
		if e, _ := m.Get(ctx, "k"); e == nil {
			b.Fatal("miss")
		}
	}
}

func benchmarkNearest(b *testing.B, n int) {
	x := NewIndex(0)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		x.Add("p", fmt.Sprint(i), randomUnit(r, 512), math.MaxInt64)
	}
	q := randomUnit(r, 512)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		x.Nearest("p", q, 0)
	}
}

func BenchmarkNearest10k512(b *testing.B)  { benchmarkNearest(b, 10_000) }
func BenchmarkNearest100k512(b *testing.B) { benchmarkNearest(b, 100_000) }

// BenchmarkMemoryPerEntry reports the heap per stored entry of a typical
// 1 KiB answer with a 512-dimension vector.
func BenchmarkMemoryPerEntry(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	for b.Loop() {
		m := NewMemory(0, nil)
		for i := range 1000 {
			_ = m.Put(context.Background(), fmt.Sprintf("%064d", i), entryOf(1024), time.Hour,
				&Vector{Partition: "p", V: randomUnit(r, 512)})
		}
		_, bytes := m.Stats()
		b.ReportMetric(float64(bytes)/1000, "B/entry")
	}
}
