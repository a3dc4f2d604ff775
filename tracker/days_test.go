package tracker

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

func rxZone(t testing.TB, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return l
}

// rxLocal is a wall-clock time in loc.
func rxLocal(loc *time.Location, y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, loc)
}

func TestDaysSplitByDay(t *testing.T) {
	ams := rxZone(t, "Europe/Amsterdam")
	la := rxZone(t, "America/Los_Angeles")
	utc := time.UTC
	tests := []struct {
		name     string
		from, to time.Time
		loc      *time.Location
		want     []DaySpan
	}{
		{
			name: "within a day", loc: ams,
			from: rxLocal(ams, 2026, 6, 10, 9, 0), to: rxLocal(ams, 2026, 6, 10, 11, 30),
			want: []DaySpan{{"2026-06-10", 150 * time.Minute}},
		},
		{
			name: "crossing midnight in Amsterdam", loc: ams,
			from: rxLocal(ams, 2026, 6, 10, 23, 30), to: rxLocal(ams, 2026, 6, 11, 0, 40),
			want: []DaySpan{{"2026-06-10", 30 * time.Minute}, {"2026-06-11", 40 * time.Minute}},
		},
		{
			// 21:30Z..00:10Z is 23:30..02:10 CEST.
			name: "UTC instants split at the local midnight", loc: ams,
			from: time.Date(2026, 6, 10, 21, 30, 0, 0, utc), to: time.Date(2026, 6, 11, 0, 10, 0, 0, utc),
			want: []DaySpan{{"2026-06-10", 30 * time.Minute}, {"2026-06-11", 130 * time.Minute}},
		},
		{
			name: "Amsterdam spring DST day has 23 hours", loc: ams,
			from: rxLocal(ams, 2026, 3, 29, 0, 0), to: rxLocal(ams, 2026, 3, 30, 0, 0),
			want: []DaySpan{{"2026-03-29", 23 * time.Hour}},
		},
		{
			name: "Amsterdam autumn DST day has 25 hours", loc: ams,
			from: rxLocal(ams, 2026, 10, 25, 0, 0), to: rxLocal(ams, 2026, 10, 26, 0, 0),
			want: []DaySpan{{"2026-10-25", 25 * time.Hour}},
		},
		{
			name: "three days around the spring change", loc: ams,
			from: rxLocal(ams, 2026, 3, 28, 22, 0), to: rxLocal(ams, 2026, 3, 30, 1, 0),
			want: []DaySpan{{"2026-03-28", 2 * time.Hour}, {"2026-03-29", 23 * time.Hour}, {"2026-03-30", time.Hour}},
		},
		{
			// 01:30 CEST to 03:30 CET is three hours of real time.
			name: "through the repeated hour", loc: ams,
			from: rxLocal(ams, 2026, 10, 25, 1, 30), to: time.Date(2026, 10, 25, 2, 30, 0, 0, utc),
			want: []DaySpan{{"2026-10-25", 3 * time.Hour}},
		},
		{
			name: "Los Angeles crossing midnight", loc: la,
			from: rxLocal(la, 2026, 1, 14, 23, 30), to: rxLocal(la, 2026, 1, 15, 0, 15),
			want: []DaySpan{{"2026-01-14", 30 * time.Minute}, {"2026-01-15", 15 * time.Minute}},
		},
		{
			name: "Los Angeles spring DST day", loc: la,
			from: rxLocal(la, 2026, 3, 7, 23, 0), to: rxLocal(la, 2026, 3, 9, 1, 0),
			want: []DaySpan{{"2026-03-07", time.Hour}, {"2026-03-08", 23 * time.Hour}, {"2026-03-09", time.Hour}},
		},
		{
			name: "UTC crossing midnight", loc: utc,
			from: time.Date(2026, 12, 31, 22, 0, 0, 0, utc), to: time.Date(2027, 1, 1, 3, 0, 0, 0, utc),
			want: []DaySpan{{"2026-12-31", 2 * time.Hour}, {"2027-01-01", 3 * time.Hour}},
		},
		{
			name: "inputs in another zone than loc", loc: utc,
			from: rxLocal(ams, 2026, 6, 11, 1, 0), to: rxLocal(ams, 2026, 6, 11, 3, 0),
			want: []DaySpan{{"2026-06-10", time.Hour}, {"2026-06-11", time.Hour}},
		},
		{
			name: "ending exactly at midnight", loc: utc,
			from: time.Date(2026, 5, 1, 23, 0, 0, 0, utc), to: time.Date(2026, 5, 2, 0, 0, 0, 0, utc),
			want: []DaySpan{{"2026-05-01", time.Hour}},
		},
		{
			name: "starting exactly at midnight", loc: utc,
			from: time.Date(2026, 5, 2, 0, 0, 0, 0, utc), to: time.Date(2026, 5, 2, 0, 1, 0, 0, utc),
			want: []DaySpan{{"2026-05-02", time.Minute}},
		},
		{name: "empty interval", loc: utc, from: time.Date(2026, 5, 2, 0, 0, 0, 0, utc), to: time.Date(2026, 5, 2, 0, 0, 0, 0, utc)},
		{name: "reversed interval", loc: utc, from: time.Date(2026, 5, 2, 1, 0, 0, 0, utc), to: time.Date(2026, 5, 2, 0, 0, 0, 0, utc)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := splitByDay(tt.from, tt.to, tt.loc)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("splitByDay(%v, %v, %s) = %v, want %v", tt.from, tt.to, tt.loc, got, tt.want)
			}
			var sum time.Duration
			for _, s := range got {
				sum += s.Dur
			}
			if len(tt.want) > 0 && sum != tt.to.Sub(tt.from) {
				t.Errorf("spans sum to %v, interval is %v", sum, tt.to.Sub(tt.from))
			}
		})
	}
}

func TestDaysMakeDaysArg(t *testing.T) {
	ams := rxZone(t, "Europe/Amsterdam")
	la := rxZone(t, "America/Los_Angeles")
	type bound struct {
		at   time.Time
		date string
	}
	tests := []struct {
		name      string
		from, now time.Time
		loc       *time.Location
		retention time.Duration
		base, cut string
		bounds    []bound
	}{
		{
			name: "one day", loc: ams, retention: 24 * time.Hour,
			from: rxLocal(ams, 2026, 6, 10, 8, 0), now: rxLocal(ams, 2026, 6, 10, 10, 0),
			base: "2026-06-10", cut: "2026-06-09",
		},
		{
			name: "across the spring change", loc: ams, retention: 30 * 24 * time.Hour,
			from: rxLocal(ams, 2026, 3, 28, 22, 0), now: rxLocal(ams, 2026, 3, 30, 1, 0),
			base: "2026-03-28", cut: "2026-02-28",
			bounds: []bound{
				{time.Date(2026, 3, 28, 23, 0, 0, 0, time.UTC), "2026-03-29"}, // CET midnight
				{time.Date(2026, 3, 29, 22, 0, 0, 0, time.UTC), "2026-03-30"}, // CEST midnight
			},
		},
		{
			name: "Los Angeles", loc: la, retention: 400 * 24 * time.Hour,
			from: rxLocal(la, 2026, 1, 14, 22, 0), now: rxLocal(la, 2026, 1, 15, 1, 0),
			base: "2026-01-14", cut: "2024-12-11",
			bounds: []bound{{time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC), "2026-01-15"}},
		},
		{
			name: "UTC", loc: time.UTC, retention: time.Hour,
			from: time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC), now: time.Date(2026, 1, 1, 0, 45, 0, 0, time.UTC),
			base: "2026-01-01", cut: "2025-12-31",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := makeDaysArg(tt.from, tt.now, tt.loc, tt.retention)
			var a struct {
				Base  string  `json:"base"`
				Bound [][]any `json:"b"`
				Cut   string  `json:"cut"`
			}
			if err := json.Unmarshal([]byte(raw), &a); err != nil {
				t.Fatalf("makeDaysArg = %s: %v", raw, err)
			}
			if a.Base != tt.base || a.Cut != tt.cut {
				t.Errorf("base %q cut %q, want %q %q (%s)", a.Base, a.Cut, tt.base, tt.cut, raw)
			}
			if a.Bound == nil {
				t.Errorf("bounds are null, want a JSON array (%s)", raw)
			}
			if len(a.Bound) != len(tt.bounds) {
				t.Fatalf("%d bounds, want %d (%s)", len(a.Bound), len(tt.bounds), raw)
			}
			for i, b := range tt.bounds {
				at, _ := a.Bound[i][0].(float64)
				date, _ := a.Bound[i][1].(string)
				if int64(at) != b.at.UnixMilli() || date != b.date {
					t.Errorf("bound %d = [%v %q], want [%d %q] (%v)", i, a.Bound[i][0], date, b.at.UnixMilli(), b.date, b.at)
				}
			}
		})
	}
}

// rxDaysPolicy keeps everything for ten years: the fixed dates of these
// tests may lie in the past of the real clock the memory store expires by.
var rxDaysPolicy = store.Policy{Idle: 2 * time.Hour, Retention: 10 * 365 * 24 * time.Hour, Refresh: time.Minute, RevokeHold: 10 * time.Minute}

func (f *rxFx) daysArg(now time.Time, loc *time.Location) string {
	return makeDaysArg(now.Add(-f.p.Idle-f.p.Refresh), now, loc, f.p.Retention)
}

// openAt opens a session for tok at now, counting days in loc.
func (f *rxFx) openAt(tok string, now time.Time, loc *time.Location) string {
	f.t.Helper()
	return f.open(rxHit{tok: tok, when: now, days: f.daysArg(now, loc)})
}

// touchAt refreshes session sid at now, counting days in loc.
func (f *rxFx) touchAt(sid string, now time.Time, loc *time.Location) {
	f.t.Helper()
	res := f.env.Touch(f.ctx, []store.Touch{{Realm: f.realm, User: f.user, SessionID: sid, Now: now, Policy: f.p,
		Activity: store.Activity{Days: f.daysArg(now, loc)}}})
	if res[0].Err != nil || res[0].Ended {
		f.t.Fatalf("Touch(%s at %v) = %+v", sid, now, res[0])
	}
}

func (f *rxFx) days(dates []string) map[string]store.DayTotal {
	f.t.Helper()
	got, err := f.env.Days(f.ctx, f.realm, f.user, dates)
	if err != nil {
		f.t.Fatalf("Days: %v", err)
	}
	return got
}

func rxWantDays(t *testing.T, got, want map[string]store.DayTotal) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("days = %v, want %v", got, want)
	}
}

// TestDaysStore: per-day totals kept by Seen and Touch, on every store.
func TestDaysStore(t *testing.T) {
	ams := rxZone(t, "Europe/Amsterdam")
	rxForEachStore(t, func(t *testing.T, env *rxEnv) {
		newFx := func(t *testing.T) *rxFx {
			f := rxNew(t, env)
			f.p = rxDaysPolicy
			return f
		}
		t.Run("open counts the session, touches add time", func(t *testing.T) {
			f := newFx(t)
			start := rxLocal(ams, 2026, 7, 1, 10, 0)
			sid := f.openAt("a", start, ams)
			rxWantDays(t, f.days([]string{"2026-07-01", "2026-07-02"}), map[string]store.DayTotal{"2026-07-01": {Active: 0, Sessions: 1}})
			f.touchAt(sid, start.Add(10*time.Minute), ams)
			rxWantDays(t, f.days([]string{"2026-07-01"}), map[string]store.DayTotal{"2026-07-01": {Active: 10 * time.Minute, Sessions: 1}})
			f.touchAt(sid, start.Add(25*time.Minute), ams)
			// A refresh through Seen (active session) adds time as well.
			res := f.seen(rxHit{tok: "a", when: start.Add(40 * time.Minute), days: f.daysArg(start.Add(40*time.Minute), ams)})
			if res.Status != store.StatusActive {
				t.Fatalf("Seen = %s", res.Status)
			}
			rxWantDays(t, f.days([]string{"2026-07-01"}), map[string]store.DayTotal{"2026-07-01": {Active: 40 * time.Minute, Sessions: 1}})
			rxWantDays(t, f.days([]string{}), map[string]store.DayTotal{})
		})
		t.Run("session across local midnight is split", func(t *testing.T) {
			f := newFx(t)
			sid := f.openAt("a", rxLocal(ams, 2026, 7, 1, 23, 30), ams)
			f.touchAt(sid, rxLocal(ams, 2026, 7, 2, 0, 40), ams)
			want := map[string]store.DayTotal{
				"2026-07-01": {Active: 30 * time.Minute, Sessions: 1},
				"2026-07-02": {Active: 40 * time.Minute, Sessions: 1},
			}
			rxWantDays(t, f.days([]string{"2026-07-01", "2026-07-02"}), want)
			rxWantDays(t, f.days(nil), want)
			// Further time on day 2 does not count the session again.
			f.touchAt(sid, rxLocal(ams, 2026, 7, 2, 1, 0), ams)
			rxWantDays(t, f.days([]string{"2026-07-02"}), map[string]store.DayTotal{"2026-07-02": {Active: time.Hour, Sessions: 1}})
		})
		t.Run("two sessions on one day sum", func(t *testing.T) {
			f := newFx(t)
			s1 := f.openAt("a", rxLocal(ams, 2026, 7, 1, 9, 0), ams)
			f.touchAt(s1, rxLocal(ams, 2026, 7, 1, 9, 20), ams)
			s2 := f.openAt("b", rxLocal(ams, 2026, 7, 1, 14, 0), ams)
			f.touchAt(s2, rxLocal(ams, 2026, 7, 1, 14, 45), ams)
			rxWantDays(t, f.days(nil), map[string]store.DayTotal{"2026-07-01": {Active: 65 * time.Minute, Sessions: 2}})
		})
		for _, dst := range []struct {
			name string
			day  time.Time
			date string
			want time.Duration
		}{
			{"spring DST day sums to 23h", rxLocal(ams, 2026, 3, 29, 0, 0), "2026-03-29", 23 * time.Hour},
			{"autumn DST day sums to 25h", rxLocal(ams, 2026, 10, 25, 0, 0), "2026-10-25", 25 * time.Hour},
		} {
			t.Run(dst.name, func(t *testing.T) {
				f := newFx(t)
				end := time.Date(dst.day.Year(), dst.day.Month(), dst.day.Day()+1, 0, 0, 0, 0, ams)
				sid := f.openAt("a", dst.day, ams)
				for now := dst.day.Add(30 * time.Minute); !now.After(end); now = now.Add(30 * time.Minute) {
					f.touchAt(sid, now, ams)
				}
				rxWantDays(t, f.days([]string{dst.date}), map[string]store.DayTotal{dst.date: {Active: dst.want, Sessions: 1}})
				var sum time.Duration
				for _, d := range f.days(nil) {
					sum += d.Active
				}
				if sum != dst.want {
					t.Errorf("active time on all dates = %v, want %v on %s only", sum, dst.want, dst.date)
				}
			})
		}
		t.Run("session opened exactly at local midnight counts on that date", func(t *testing.T) {
			f := newFx(t)
			midnight := rxLocal(ams, 2026, 7, 2, 0, 0)
			sid := f.openAt("a", midnight, ams)
			f.touchAt(sid, midnight.Add(10*time.Minute), ams)
			rxWantDays(t, f.days(nil), map[string]store.DayTotal{"2026-07-02": {Active: 10 * time.Minute, Sessions: 1}})
		})
		t.Run("without day data no totals are kept", func(t *testing.T) {
			f := newFx(t)
			sid := f.open(rxHit{tok: "a", when: rxLocal(ams, 2026, 7, 1, 10, 0)})
			res := env.Touch(f.ctx, []store.Touch{{Realm: f.realm, User: f.user, SessionID: sid, Now: rxLocal(ams, 2026, 7, 1, 10, 5), Policy: f.p}})
			if res[0].Err != nil || res[0].Ended {
				t.Fatalf("Touch = %+v", res[0])
			}
			rxWantDays(t, f.days(nil), map[string]store.DayTotal{})
		})
	})
}
