package usage

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseQuery(t *testing.T) {
	now := time.Date(2026, 11, 22, 15, 4, 5, 0, time.FixedZone("PST", -8*3600)) // 23:04:05 UTC
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name              string
		from, to, groupBy string
		want              Query
	}{
		{"defaults: this month so far", "", "", "", Query{From: day(2026, 11, 1), To: now.UTC()}},
		{"dates", "2026-10-01", "2026-11-01", "subscription,model",
			Query{From: day(2026, 10, 1), To: day(2026, 11, 1), GroupBy: []string{"subscription", "model"}}},
		{"RFC 3339 with an offset, spaces in groups", "2026-11-01T01:00:00+02:00", "2026-11-01T12:30:00.5Z", " day , backend ,",
			Query{From: time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 1, 12, 30, 0, 5e8, time.UTC), GroupBy: []string{"day", "backend"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseQuery(tc.from, tc.to, tc.groupBy, now)
			if err != nil {
				t.Fatalf("ParseQuery: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseQuery(%q, %q, %q) differs (-want +got):\n%s", tc.from, tc.to, tc.groupBy, diff)
			}
		})
	}
	for _, tc := range []struct {
		name, from, to, groupBy string
		is                      error
	}{
		{"bad from", "yesterday", "", "", nil},
		{"bad to", "", "2026-13-01", "", nil},
		{"from after to", "2026-11-02", "2026-11-01", "", nil},
		{"empty range", "2026-11-01", "2026-11-01", "", nil},
		{"unknown group", "", "", "model,tenant", ErrUnknownGroup},
		{"repeated group", "", "", "model,model", nil},
	} {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			_, err := ParseQuery(tc.from, tc.to, tc.groupBy, now)
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("ParseQuery(%q, %q, %q) error = %v; want an error (%v)", tc.from, tc.to, tc.groupBy, err, tc.is)
			}
		})
	}
}

// ParseQuery reads the admin API's query parameters: anything a client sends
// yields a valid query or an error.
func FuzzParseQuery(f *testing.F) {
	f.Add("2026-10-01", "2026-11-01", "subscription,model")
	f.Add("", "2026-11-01T12:30:00+01:00", "day")
	f.Add("x", "", ",,,")
	now := time.Date(2026, 11, 22, 15, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, from, to, groupBy string) {
		q, err := ParseQuery(from, to, groupBy, now)
		if err != nil {
			return
		}
		if !q.From.Before(q.To) || q.From.Location() != time.UTC || q.To.Location() != time.UTC {
			t.Errorf("ParseQuery(%q, %q, %q) = %+v; want From before To, both UTC", from, to, groupBy, q)
		}
		if err := checkGroups(q.GroupBy); err != nil {
			t.Errorf("ParseQuery(%q, %q, %q) returned groups %q that do not check: %v", from, to, groupBy, q.GroupBy, err)
		}
	})
}
