package proxy

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"testing"
	"time"
)

// slogLine is the line slog's JSONHandler writes for attrs.
func slogLine(t time.Time, attrs []slog.Attr) string {
	var buf bytes.Buffer
	r := slog.NewRecord(t, slog.LevelInfo, "request", 0)
	r.AddAttrs(attrs...)
	_ = slog.NewJSONHandler(&buf, nil).Handle(context.Background(), r)
	return buf.String()
}

func ownLine(t time.Time, attrs []slog.Attr) string {
	var buf bytes.Buffer
	writeLine(&buf, t, attrs)
	return buf.String()
}

// TestAccessLineAsSlog holds the access log's own encoder to slog's
// JSONHandler, byte for byte.
func TestAccessLineAsSlog(t *testing.T) {
	at := time.Date(2026, 12, 2, 13, 4, 5, 123456789, time.FixedZone("X", 3600))
	cases := [][]slog.Attr{
		{slog.String("request_id", "0193a-1"), slog.String("method", "POST"), slog.Int("status", 200),
			slog.Duration("duration", 1234567*time.Nanosecond), slog.Bool("stream", true),
			slog.Int64("prompt_tokens", 12), slog.Float64("cost", 0.000123)},
		{slog.String("path", "/v1/\"chat\"\\<b>&\u2028\u2029\x00\x1f\x7f\n\r\té€😀"), slog.String("bad", "a\xffb\xc3")},
		{slog.Float64("f", 1e-7), slog.Float64("g", 1e21), slog.Float64("h", 12.5), slog.Float64("z", 0),
			slog.Float64("n", -3.25e-9), slog.Float64("inf", math.Inf(1))},
		{slog.Uint64("u", 1<<63), slog.Any("any", []int{1, 2}), slog.Time("t", at)},
		{},
	}
	for i, attrs := range cases {
		if got, want := ownLine(at, attrs), slogLine(at, attrs); got != want {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func FuzzAccessLine(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\u2028\xff", "<&>", "é😀\xed\xa0\x80"} {
		f.Add(s, 1.5)
	}
	f.Fuzz(func(t *testing.T, s string, x float64) {
		at := time.Unix(1700000000, 5)
		attrs := []slog.Attr{slog.String(s, s), slog.Float64("x", x)}
		if got, want := ownLine(at, attrs), slogLine(at, attrs); got != want {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkAccessLine(b *testing.B) {
	attrs := []slog.Attr{slog.String("request_id", "0193a6f0-7c2e-7b11-9a3e-5d1f0e2c4b6a"), slog.String("method", "POST"),
		slog.String("path", "/openai/deployments/gpt-4o/chat/completions"), slog.Int("status", 200),
		slog.Duration("duration", 1234567), slog.String("subscription", "team-a"), slog.String("model", "gpt-4o"),
		slog.String("backend", "ptu-swedencentral"), slog.Int64("prompt_tokens", 12), slog.Int64("completion_tokens", 16),
		slog.Float64("cost", 0.000123)}
	at := time.Now()
	b.Run("own", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			writeLine(discard{}, at, attrs)
		}
	})
	b.Run("slog", func(b *testing.B) {
		b.ReportAllocs()
		log := slog.New(slog.NewJSONHandler(discard{}, nil))
		for b.Loop() {
			log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
