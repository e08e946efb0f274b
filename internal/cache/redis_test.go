package cache

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/internal/redistest"
)

func newRedisStore(t *testing.T, srv *redistest.Server) *RedisStore {
	t.Helper()
	s, err := NewRedis(srv.URL(), RedisOptions{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitUntil polls cond for up to 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// TestRedisSharedByInstances: an answer stored through one store is found
// through another on the same Redis, exact and semantic; Clear through one
// clears both; a Redis that is down is an error (a miss to the caller),
// and the stores work again once it is back.
func TestRedisSharedByInstances(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b := newRedisStore(t, srv), newRedisStore(t, srv)
	e := &Entry{Status: 200, ContentType: "application/json", Body: []byte(`{"x":1}`), UsageEvent: -1}
	vec := unit([]float32{1, 2, 3, 4})
	if err := a.Put(ctx, "k1", e, time.Minute, &Vector{Partition: "p", V: vec}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "k1")
	if err != nil || got == nil || string(got.Body) != `{"x":1}` {
		t.Fatalf("Get through b = %v, %v; want the entry", got, err)
	}
	waitUntil(t, "b's index has a's vector", func() bool {
		k, d, ok := b.Nearest("p", vec)
		return ok && k == "k1" && d < 1e-5
	})
	// A store started later bootstraps from the log.
	c := newRedisStore(t, srv)
	waitUntil(t, "a late store's index has the vector", func() bool { _, _, ok := c.Nearest("p", vec); return ok })

	if n, err := a.Clear(ctx, ""); n != 1 || err != nil {
		t.Fatalf("Clear = %d, %v; want 1 entry dropped", n, err)
	}
	if got, _ := b.Get(ctx, "k1"); got != nil {
		t.Error("entry kept after Clear")
	}
	waitUntil(t, "b's index is cleared", func() bool { _, _, ok := b.Nearest("p", vec); return !ok })

	srv.Stop()
	if _, err := a.Get(ctx, "k1"); err == nil {
		t.Error("Get with Redis down: no error; want one")
	}
	if err := a.Put(ctx, "k2", e, time.Minute, nil); err == nil {
		t.Error("Put with Redis down: no error; want one")
	}
	srv.Restart()
	waitUntil(t, "the store works again", func() bool { return a.Put(ctx, "k3", e, time.Minute, &Vector{Partition: "q", V: vec}) == nil })
	waitUntil(t, "b sees what a stored after the restart", func() bool {
		got, err := b.Get(ctx, "k3")
		_, _, ok := b.Nearest("q", vec)
		return err == nil && got != nil && ok
	})
}

func TestRedisExpiredEntryIsAMiss(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := newRedisStore(t, srv)
	e := &Entry{Status: 200, Body: []byte("x"), UsageEvent: -1}
	if err := a.Put(ctx, "k", e, 50*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the entry expires in Redis", func() bool { got, err := a.Get(ctx, "k"); return err == nil && got == nil })
}
