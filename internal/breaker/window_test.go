package breaker

import (
	"testing"
	"time"
)

func TestNewWindow(t *testing.T) {
	tests := []struct {
		interval  time.Duration
		wantWidth time.Duration
		wantN     uint64
	}{
		{10 * time.Second, time.Second, 10},
		{time.Minute, 6 * time.Second, 10},
		{24 * time.Hour, 144 * time.Minute, 10},
		{15 * time.Millisecond, 1500 * time.Microsecond, 10},
		{10*time.Second + 1, time.Second + 1, 10},
		{5 * time.Millisecond, time.Millisecond, 5},
		{3500 * time.Microsecond, time.Millisecond, 4},
		{time.Microsecond, time.Millisecond, 1},
	}
	for _, tt := range tests {
		w := newWindow(tt.interval)
		if time.Duration(w.width) != tt.wantWidth || w.n != tt.wantN {
			t.Errorf("newWindow(%v): %d buckets of %v; want %d of %v", tt.interval, w.n, time.Duration(w.width), tt.wantN, tt.wantWidth)
		}
		if covered := time.Duration(w.width) * time.Duration(w.n); covered < tt.interval {
			t.Errorf("newWindow(%v) covers only %v", tt.interval, covered)
		}
	}
}

func TestWindow(t *testing.T) {
	// Epochs just below a multiple of 2^epochBits, so that the tags wrap.
	const width = int64(time.Millisecond)
	base := time.Unix(0, (25<<epochBits-3)*width)
	at := func(buckets int) time.Time { return base.Add(time.Duration(int64(buckets) * width)) }

	w := newWindow(10 * time.Millisecond) // 10 buckets of 1ms
	for _, b := range []int{0, 1, 2, 2, 3, 5} {
		w.add(&w.fail, w.epoch(at(b)))
	}
	tests := []struct {
		now  int
		want int
	}{
		{0, 1}, {2, 4}, {5, 6}, {10, 6}, {11, 5}, {12, 4}, {13, 2}, {15, 1}, {16, 0}, {100, 0},
	}
	for _, tt := range tests {
		if got := w.sum(&w.fail, w.epoch(at(tt.now))); got != tt.want {
			t.Errorf("at bucket %d: %d events; want %d", tt.now, got, tt.want)
		}
	}

	// An event whose bucket was reused for a later epoch is dropped, and the
	// later count kept.
	w.add(&w.fail, w.epoch(at(16))) // the ring slot of bucket 5
	w.add(&w.fail, w.epoch(at(5)))
	if got := w.sum(&w.fail, w.epoch(at(16))); got != 1 {
		t.Errorf("after a late event: %d events at bucket 16; want 1", got)
	}
	// A bucket reused after the ring went round starts from 1.
	w.add(&w.fail, w.epoch(at(27)))
	if got := w.sum(&w.fail, w.epoch(at(27))); got != 1 {
		t.Errorf("after a ring round: %d events at bucket 27; want 1", got)
	}
}
