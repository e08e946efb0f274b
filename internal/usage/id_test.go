package usage

import (
	"regexp"
	"testing"
	"time"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewID(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 3, 4, 5, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 1000 {
		id := newIDAt(t0.Add(time.Duration(i) * time.Millisecond))
		if !uuidV7.MatchString(id) {
			t.Fatalf("%q is not a UUID version 7", id)
		}
		if seen[id] {
			t.Fatalf("%q made twice", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("%q made after %q sorts before it", id, prev)
		}
		prev = id
	}
	// The first 48 bits are the time in milliseconds: 0x019aa9... for t0.
	ms := t0.UnixMilli()
	want := []byte("00000000-0000")
	const hexd = "0123456789abcdef"
	for i, j := 0, 0; i < 12; i, j = i+1, j+1 {
		if j == 8 {
			j++
		}
		want[j] = hexd[(ms>>(44-4*i))&0xf]
	}
	if id := newIDAt(t0); id[:13] != string(want) {
		t.Errorf("id %q starts with %q; want the time %q", id, id[:13], want)
	}
	if !uuidV7.MatchString(NewID()) {
		t.Error("NewID is not a UUID version 7")
	}
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = NewID()
	}
}
