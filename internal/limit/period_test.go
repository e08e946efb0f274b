package limit

import (
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPeriodWindows(t *testing.T) {
	tests := []struct {
		name       string
		p          Period
		t          string
		start, end string
	}{
		{"minute", Minute, "2025-03-14T12:34:56.789Z", "2025-03-14T12:34:00Z", "2025-03-14T12:35:00Z"},
		{"minute on its start", Minute, "2025-03-14T12:34:00Z", "2025-03-14T12:34:00Z", "2025-03-14T12:35:00Z"},
		{"minute last nanosecond", Minute, "2025-03-14T12:34:59.999999999Z", "2025-03-14T12:34:00Z", "2025-03-14T12:35:00Z"},
		{"minute in another zone", Minute, "2025-03-14T18:04:56+05:30", "2025-03-14T12:34:00Z", "2025-03-14T12:35:00Z"},
		{"minute before 1970", Minute, "1969-12-31T23:59:30.5Z", "1969-12-31T23:59:00Z", "1970-01-01T00:00:00Z"},
		{"hour", Hour, "2025-03-14T12:34:56Z", "2025-03-14T12:00:00Z", "2025-03-14T13:00:00Z"},
		{"hour at day end", Hour, "2025-12-31T23:59:59Z", "2025-12-31T23:00:00Z", "2026-01-01T00:00:00Z"},
		{"day", Day, "2025-03-14T12:34:56Z", "2025-03-14T00:00:00Z", "2025-03-15T00:00:00Z"},
		{"day is UTC, not local", Day, "2025-03-15T01:00:00+05:00", "2025-03-14T00:00:00Z", "2025-03-15T00:00:00Z"},
		{"week from Friday", Week, "2025-03-14T12:00:00Z", "2025-03-10T00:00:00Z", "2025-03-17T00:00:00Z"},
		{"week on Monday midnight", Week, "2025-03-10T00:00:00Z", "2025-03-10T00:00:00Z", "2025-03-17T00:00:00Z"},
		{"week on Sunday night", Week, "2025-03-16T23:59:59Z", "2025-03-10T00:00:00Z", "2025-03-17T00:00:00Z"},
		{"week across the year", Week, "2026-01-01T10:00:00Z", "2025-12-29T00:00:00Z", "2026-01-05T00:00:00Z"},
		{"week of the epoch", Week, "1970-01-01T00:00:00Z", "1969-12-29T00:00:00Z", "1970-01-05T00:00:00Z"},
		{"month", Month, "2025-03-14T12:00:00Z", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z"},
		{"month of 31 days", Month, "2025-01-31T23:59:59Z", "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z"},
		{"month of February, leap year", Month, "2024-02-29T12:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"month of February", Month, "2025-02-28T12:00:00Z", "2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z"},
		{"month of December", Month, "2025-12-31T23:59:59.999Z", "2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z"},
		{"month is UTC, not local", Month, "2025-04-01T02:00:00+03:00", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z"},
		{"year", Year, "2025-03-14T12:00:00Z", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"},
		{"year last second", Year, "2025-12-31T23:59:59Z", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"},
		{"year is UTC, not local", Year, "2026-01-01T01:00:00+02:00", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := at(tt.t)
			if got := tt.p.Start(tm); !got.Equal(at(tt.start)) || got.Location() != time.UTC {
				t.Errorf("%v.Start(%s) = %s; want %s UTC", tt.p, tt.t, got, tt.start)
			}
			if got := tt.p.End(tm); !got.Equal(at(tt.end)) {
				t.Errorf("%v.End(%s) = %s; want %s", tt.p, tt.t, got, tt.end)
			}
		})
	}
}

// TestPeriodContiguous walks across boundaries: each window's end is the
// next one's start, and every instant is inside its window.
func TestPeriodContiguous(t *testing.T) {
	for _, p := range []Period{Minute, Hour, Day, Week, Month, Year} {
		tm := at("2023-11-27T00:00:00Z")
		for range 40 {
			start, end := p.Start(tm), p.End(tm)
			if tm.Before(start) || !tm.Before(end) {
				t.Fatalf("%v: %s is outside its window [%s, %s)", p, tm, start, end)
			}
			if next := p.Start(end); !next.Equal(end) {
				t.Fatalf("%v: window after [%s, %s) starts at %s", p, start, end, next)
			}
			if prev := p.Start(start.Add(-time.Nanosecond)); !p.End(prev).Equal(start) {
				t.Fatalf("%v: window before %s ends at %s", p, start, p.End(prev))
			}
			tm = end.Add(time.Duration(len(p.String())) * 17 * time.Second) // a little into the next
		}
	}
}

func TestParsePeriod(t *testing.T) {
	tests := []struct {
		in      string
		want    Period
		wantErr bool
	}{
		{"hourly", Hour, false},
		{"daily", Day, false},
		{"weekly", Week, false},
		{"monthly", Month, false},
		{"yearly", Year, false},
		{"Monthly", Month, false}, // Azure's docs capitalize them
		{"minute", 0, true},
		{"", 0, true},
		{"month", 0, true},
	}
	for _, tt := range tests {
		got, err := ParsePeriod(tt.in)
		if (err != nil) != tt.wantErr || err == nil && got != tt.want {
			t.Errorf("ParsePeriod(%q) = %v, %v; want %v (error: %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.want.String() {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

func TestCounterString(t *testing.T) {
	start := at("2025-03-14T12:34:00Z").Unix()
	tests := []struct {
		name string
		c    Counter
		want string
	}{
		{"subscription tpm", Counter{Rule: "standard/0", Key: KeySubscription, Kind: TokensPerMinute, Subject: "alice", Start: start}, "sluice:standard/0:alice:tpm:1741955640"},
		{"product rpm", Counter{Rule: "gold/1", Key: KeyProduct, Kind: RequestsPerMinute, Subject: "gold", Start: start}, "sluice:gold/1:gold:rpm:1741955640"},
		{"subscription and model quota", Counter{Rule: "r", Key: KeySubscriptionModel, Kind: Quota, Period: Month, Subject: "alice", Model: "gpt-4o", Start: 1740787200}, "sluice:r:alice/gpt-4o:monthly:1740787200"},
		{"global", Counter{Rule: "all", Key: KeyGlobal, Kind: TokensPerMinute, Subject: "global", Start: start}, "sluice:all:global:tpm:1741955640"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("%s: String() = %q; want %q", tt.name, got, tt.want)
		}
	}
}
