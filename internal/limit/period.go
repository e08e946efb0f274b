package limit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Period is a fixed window in UTC: a counter counts from the window's start
// to its end and a new window starts from zero, as Azure API Management's
// token-quota-period does ("fixed window starting at UTC truncated to the
// unit"). The zero Period is Minute.
type Period uint8

// The periods. Week starts on Monday 00:00 UTC.
const (
	Minute Period = iota
	Hour
	Day
	Week
	Month
	Year
)

// Lengths of the periods with a fixed length, in seconds.
const (
	minuteSecs = 60
	hourSecs   = 60 * minuteSecs
	daySecs    = 24 * hourSecs
	weekSecs   = 7 * daySecs
	// mondayOffset is how far Monday 1970-01-05 is from the Unix epoch, a
	// Thursday.
	mondayOffset = 4 * daySecs
)

// ParsePeriod parses a quota period as Azure's token-quota-period spells it:
// "hourly", "daily", "weekly", "monthly" or "yearly", in any case.
func ParsePeriod(s string) (Period, error) {
	switch strings.ToLower(s) {
	case "hourly":
		return Hour, nil
	case "daily":
		return Day, nil
	case "weekly":
		return Week, nil
	case "monthly":
		return Month, nil
	case "yearly":
		return Year, nil
	}
	return 0, fmt.Errorf("unknown quota period %q (want hourly, daily, weekly, monthly or yearly)", s)
}

// String returns "minute" or the name ParsePeriod parses.
func (p Period) String() string {
	switch p {
	case Minute:
		return "minute"
	case Hour:
		return "hourly"
	case Day:
		return "daily"
	case Week:
		return "weekly"
	case Month:
		return "monthly"
	case Year:
		return "yearly"
	}
	return "period " + strconv.Itoa(int(p))
}

// Start returns the start of the window that holds t, in UTC.
func (p Period) Start(t time.Time) time.Time {
	return time.Unix(p.startUnix(t), 0).UTC()
}

// End returns the end of the window that holds t, in UTC: the start of the
// next one.
func (p Period) End(t time.Time) time.Time {
	return time.Unix(p.endUnix(p.startUnix(t)), 0).UTC()
}

// startUnix returns the start of the window that holds t, in Unix seconds.
// Periods of a fixed length are computed on the seconds without building a
// calendar date, since the minute window is on every request's path.
func (p Period) startUnix(t time.Time) int64 {
	s := t.Unix() // floors: t's nanoseconds are never negative
	switch p {
	case Minute:
		return s - floorMod(s, minuteSecs)
	case Hour:
		return s - floorMod(s, hourSecs)
	case Day:
		return s - floorMod(s, daySecs)
	case Week:
		return s - floorMod(s-mondayOffset, weekSecs)
	case Month:
		u := t.UTC()
		return time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC).Unix()
	case Year:
		return time.Date(t.UTC().Year(), 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	}
	panic("limit: unknown period " + p.String())
}

// endUnix returns the end of the window that starts at start (Unix seconds).
func (p Period) endUnix(start int64) int64 {
	switch p {
	case Minute:
		return start + minuteSecs
	case Hour:
		return start + hourSecs
	case Day:
		return start + daySecs
	case Week:
		return start + weekSecs
	case Month:
		return time.Unix(start, 0).UTC().AddDate(0, 1, 0).Unix()
	case Year:
		return time.Unix(start, 0).UTC().AddDate(1, 0, 0).Unix()
	}
	panic("limit: unknown period " + p.String())
}

// floorMod is a mod b in [0, b), for windows before 1970 too.
func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
