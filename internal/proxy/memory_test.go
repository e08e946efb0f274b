package proxy_test

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestClosedStreamsBoundedMemory: 40 long streams that their clients never
// read and then close at once are each charged an estimate of what was sent,
// and the gateway's heap stays within a bound that does not grow with the
// answers. It once held and re-read up to a mebibyte of text per stream to
// count it, and a gateway went from 38 MB to 983 MB.
func TestClosedStreamsBoundedMemory(t *testing.T) {
	h := newHarness(t, "")
	// Each stream sends 1 MiB of text, then never ends (no usage chunk).
	chunk := []byte(`data: {"choices":[{"index":0,"delta":{"content":" forest word wide year great"}}]}` + "\n\n")
	var sent, started atomic.Int64
	h.azure.setHandler(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for n := 0; n < 1<<20; n += 28 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			sent.Add(28)
			if n%(64<<10) == 0 {
				_ = rc.Flush()
			}
		}
		_ = rc.Flush()
		<-r.Context().Done()
	})
	const streams = 40
	const body = `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"write"}]}`
	addr := strings.TrimPrefix(h.gateway.URL, "http://")
	peak := heapPeak(t)
	var conns []net.Conn
	for range streams {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nApi-Key: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			alphaKey, len(body), body)
	}
	// Wait until every stream has begun and the text stops flowing: each
	// is stuck on a client that does not read, or sent all it had.
	deadline := time.Now().Add(30 * time.Second)
	for started.Load() < streams && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for last := int64(-1); sent.Load() != last && time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		last = sent.Load()
	}
	for _, c := range conns {
		c.Close()
	}
	deadline = time.Now().Add(20 * time.Second)
	for strings.Count(h.logs.String(), `"msg":"request"`) < streams {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d streams logged after 20s", strings.Count(h.logs.String(), `"msg":"request"`), streams)
		}
		time.Sleep(10 * time.Millisecond)
	}
	grew := peak()
	t.Logf("%d MiB of text sent; the heap grew by at most %d MiB", sent.Load()>>20, grew>>20)
	if grew > 64<<20 {
		t.Errorf("the heap grew by %d MiB while %d unread streams were closed; want at most 64 MiB", grew>>20, streams)
	}
	if n := strings.Count(h.logs.String(), `"usage_estimated":true`); n != streams {
		t.Errorf("%d of %d streams were charged an estimate", n, streams)
	}
}

// heapPeak samples the live heap until the returned function is called, and
// that returns the most it grew over where it started.
func heapPeak(t *testing.T) func() uint64 {
	t.Helper()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	var top atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if v := read(); v > top.Load() {
				top.Store(v)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		return max(top.Load(), base) - base
	}
}
