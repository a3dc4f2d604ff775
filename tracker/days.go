package tracker

import (
	"encoding/json"
	"sync"
	"time"
)

// dateLayout names a day in a user's time zone.
const dateLayout = "2006-01-02"

var zones sync.Map // name -> *time.Location

// zone loads an IANA time zone once; nil for an unknown name.
func zone(name string) *time.Location {
	if name == "" {
		return nil
	}
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil
	}
	zones.Store(name, l)
	return l
}

// DaySpan is the part of an interval that falls on one local date.
type DaySpan struct {
	Date string
	Dur  time.Duration
}

// splitByDay splits [from, to) at local midnights in loc. Days are built
// with time.Date, so a DST change day is 23 or 25 hours long.
func splitByDay(from, to time.Time, loc *time.Location) []DaySpan {
	if !to.After(from) {
		return nil
	}
	var out []DaySpan
	cur := from
	for cur.Before(to) {
		l := cur.In(loc)
		next := time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc)
		end := to
		if next.Before(to) {
			end = next
		}
		out = append(out, DaySpan{Date: l.Format(dateLayout), Dur: end.Sub(cur)})
		cur = end
	}
	return out
}

// daysArg tells a script how to split activity between from and now into
// local dates without knowing time zones: the date at from, then each
// midnight after it with the date it starts. cut is the oldest date kept.
type daysArg struct {
	Base  string  `json:"base"`
	Bound [][]any `json:"b"`
	Cut   string  `json:"cut"`
}

func makeDaysArg(from, now time.Time, loc *time.Location, retention time.Duration) string {
	a := daysArg{Base: from.In(loc).Format(dateLayout), Bound: [][]any{}, Cut: now.Add(-retention).In(loc).Format(dateLayout)}
	// every local midnight m with from < m <= now
	l := from.In(loc)
	for i := 1; ; i++ {
		m := time.Date(l.Year(), l.Month(), l.Day()+i, 0, 0, 0, 0, loc)
		if m.After(now) {
			break
		}
		a.Bound = append(a.Bound, []any{m.UnixMilli(), m.Format(dateLayout)})
	}
	b, _ := json.Marshal(a)
	return string(b)
}
