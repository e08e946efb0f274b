package usage

import (
	"fmt"
	"strings"
	"time"
)

// ParseQuery reads a report's parameters as sluice usage and GET
// /admin/usage take them: from and to as RFC 3339 times or dates (default:
// the start of now's month, UTC, to now), groupBy as a comma-separated list.
func ParseQuery(from, to, groupBy string, now time.Time) (Query, error) {
	now = now.UTC() // this month is the UTC one, as the time groups are
	q := Query{From: time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC), To: now.UTC()}
	var err error
	if from != "" {
		if q.From, err = parseWhen(from); err != nil {
			return q, fmt.Errorf("from: %w", err)
		}
	}
	if to != "" {
		if q.To, err = parseWhen(to); err != nil {
			return q, fmt.Errorf("to: %w", err)
		}
	}
	if !q.To.After(q.From) {
		return q, fmt.Errorf("to must be after from")
	}
	for _, g := range strings.Split(groupBy, ",") {
		if g = strings.TrimSpace(g); g != "" {
			q.GroupBy = append(q.GroupBy, g)
		}
	}
	// The stores' own check: a query that parses is one Report takes.
	if err := checkGroups(q.GroupBy); err != nil {
		return q, fmt.Errorf("group-by: %w", err)
	}
	return q, nil
}

func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a date (2006-01-02)", s)
}
