package tracker

import (
	"context"
	"fmt"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/caddy-sessions/caddy-sessions/restrict"
)

// erasedUser is the binding left for the tokens of an erased user: no
// personal data, only enough to keep refusing them.
const erasedUser = "\x00erased"

// DayRow is one day of the activity overview.
type DayRow struct {
	Date string `json:"date"`
	// ActiveSeconds is the sum of that day's session durations, sessions
	// crossing midnight split at midnight in the user's time zone.
	ActiveSeconds int64  `json:"active_seconds"`
	Active        string `json:"active"`
	Sessions      int    `json:"sessions"`
}

// ActivityReport is the per-day overview of a user.
type ActivityReport struct {
	User string `json:"user"`
	// UserTimeZone is where the days are counted: the time zone of the
	// user's latest session location, else the realm default.
	UserTimeZone  string   `json:"user_time_zone"`
	AdminTimeZone string   `json:"admin_time_zone"`
	ZoneDiffers   bool     `json:"time_zone_differs"`
	From          string   `json:"from"`
	To            string   `json:"to"`
	Days          []DayRow `json:"days"`
}

// userTZ is the user's time zone: that of their latest session with one.
func (t *Tracker) userTZ(ctx context.Context, realm, user string) (*time.Location, error) {
	list, _, err := t.Sessions(ctx, realm, user, "all", 0, 20)
	if err != nil {
		return nil, err
	}
	for _, s := range list {
		if z := zone(s.Location.TimeZone); z != nil {
			return z, nil
		}
	}
	return t.cfg.TimeZone, nil
}

// Activity returns the user's active days among the last days local dates,
// each read directly (O(days)).
func (t *Tracker) Activity(ctx context.Context, realm, user string, days int, admin *time.Location) (*ActivityReport, error) {
	tz, err := t.userTZ(ctx, realm, user)
	if err != nil {
		return nil, err
	}
	today := t.now().In(tz)
	dates := make([]string, days)
	for i := range days {
		dates[i] = time.Date(today.Year(), today.Month(), today.Day()-(days-1-i), 12, 0, 0, 0, tz).Format(dateLayout)
	}
	totals, err := t.cfg.Store.Days(ctx, realm, user, dates)
	if err != nil {
		return nil, err
	}
	rep := &ActivityReport{User: user, UserTimeZone: tz.String(), AdminTimeZone: admin.String(),
		ZoneDiffers: zoneDiffers(tz, admin, today), From: dates[0], To: dates[len(dates)-1], Days: []DayRow{}}
	for _, d := range dates {
		if tot, ok := totals[d]; ok {
			rep.Days = append(rep.Days, DayRow{Date: d, ActiveSeconds: int64(tot.Active / time.Second),
				Active: tot.Active.Round(time.Second).String(), Sessions: tot.Sessions})
		}
	}
	return rep, nil
}

// zoneDiffers: two zones differ if their names or current offsets do.
func zoneDiffers(a, b *time.Location, at time.Time) bool {
	if a.String() == b.String() {
		return false
	}
	_, oa := at.In(a).Zone()
	_, ob := at.In(b).Zone()
	return oa != ob || a.String() != b.String()
}

// DaySession is one session of the per-day view.
type DaySession struct {
	ID         string `json:"id"`
	DeviceType string `json:"device_type"` // Mobile, Tablet or Web
	// Start and End are in the user's time zone; End is "active" while
	// the session lasts.
	Start       string `json:"start"`
	End         string `json:"end"`
	Duration    string `json:"duration"`
	DurationSec int64  `json:"duration_seconds"`
	// OnThisDay is the part of the session on this local date.
	OnThisDaySec int64 `json:"on_this_day_seconds"`
	// AdminStart and AdminEnd are the same times in the admin's zone,
	// present when the zones differ.
	AdminStart string             `json:"admin_start,omitempty"`
	AdminEnd   string             `json:"admin_end,omitempty"`
	IP         string             `json:"ip"`
	Location   string             `json:"location"`
	Browser    string             `json:"browser"`
	OS         string             `json:"os"`
	Trail      []store.TrailEntry `json:"trail,omitempty"`
}

// DayReport lists the sessions of one local date.
type DayReport struct {
	User          string       `json:"user"`
	Date          string       `json:"date"`
	UserTimeZone  string       `json:"user_time_zone"`
	AdminTimeZone string       `json:"admin_time_zone"`
	ZoneDiffers   bool         `json:"time_zone_differs"`
	Sessions      []DaySession `json:"sessions"`
}

// ActivityDay lists the sessions active on date (YYYY-MM-DD, local to the
// user), newest first.
func (t *Tracker) ActivityDay(ctx context.Context, realm, user, date string, admin *time.Location) (*DayReport, error) {
	tz, err := t.userTZ(ctx, realm, user)
	if err != nil {
		return nil, err
	}
	day, err := time.ParseInLocation(dateLayout, date, tz)
	if err != nil {
		return nil, fmt.Errorf("date %q is not YYYY-MM-DD", date)
	}
	dayEnd := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, tz)
	now := t.now()
	rep := &DayReport{User: user, Date: date, UserTimeZone: tz.String(), AdminTimeZone: admin.String(),
		ZoneDiffers: zoneDiffers(tz, admin, day), Sessions: []DaySession{}}
	for offset := 0; ; offset += 500 {
		list, total, err := t.Sessions(ctx, realm, user, "all", offset, 500)
		if err != nil {
			return nil, err
		}
		for _, s := range list {
			end := now
			if s.EndedAt != nil {
				end = *s.EndedAt
			}
			if !s.StartedAt.Before(dayEnd) || !end.After(day) {
				continue
			}
			from, to := maxTime(s.StartedAt, day), minTime(end, dayEnd)
			ds := DaySession{
				ID: s.ID, DeviceType: deviceLabel(s.Agent.DeviceType), Start: s.StartedAt.In(tz).Format(time.RFC3339),
				End: "active", Duration: end.Sub(s.StartedAt).Round(time.Second).String(), DurationSec: int64(end.Sub(s.StartedAt) / time.Second),
				OnThisDaySec: int64(to.Sub(from) / time.Second),
				IP:           s.IP, Location: s.Location.String(), Browser: joinNonEmpty(s.Agent.Browser, s.Agent.BrowserVersion),
				OS: joinNonEmpty(s.Agent.OS, s.Agent.OSVersion),
			}
			if s.EndedAt != nil {
				ds.End = s.EndedAt.In(tz).Format(time.RFC3339)
			}
			if rep.ZoneDiffers {
				ds.AdminStart = s.StartedAt.In(admin).Format(time.RFC3339)
				ds.AdminEnd = "active"
				if s.EndedAt != nil {
					ds.AdminEnd = s.EndedAt.In(admin).Format(time.RFC3339)
				}
			}
			if trail, err := t.cfg.Store.Trail(ctx, realm, user, s.ID); err == nil {
				ds.Trail = trail
			}
			rep.Sessions = append(rep.Sessions, ds)
		}
		if offset+500 >= total {
			break
		}
	}
	return rep, nil
}

func deviceLabel(deviceType string) string {
	switch deviceType {
	case "mobile":
		return "Mobile"
	case "tablet":
		return "Tablet"
	}
	return "Web"
}

func joinNonEmpty(a, b string) string {
	if b == "" {
		return a
	}
	return a + " " + b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Export is everything held about one user.
type Export struct {
	Realm      string                        `json:"realm"`
	User       string                        `json:"user"`
	ExportedAt time.Time                     `json:"exported_at"`
	Summary    *store.UserSummary            `json:"summary"`
	Sessions   []*store.Session              `json:"sessions"`
	Trails     map[string][]store.TrailEntry `json:"trails"`
	Devices    []*store.Device               `json:"devices"`
	Violations []*restrict.Violation         `json:"violations"`
	Days       map[string]ExportDay          `json:"days"`
}

// ExportDay is one local date's totals in an export.
type ExportDay struct {
	ActiveSeconds int64 `json:"active_seconds"`
	Sessions      int   `json:"sessions"`
}

// Export collects everything held about user; ErrNotFound if nothing is.
func (t *Tracker) Export(ctx context.Context, realm, user string) (*Export, error) {
	sum, err := t.User(ctx, realm, user)
	if err != nil {
		return nil, err
	}
	ex := &Export{Realm: realm, User: user, ExportedAt: t.now().UTC(), Summary: sum, Trails: map[string][]store.TrailEntry{}}
	if ex.Sessions, _, err = t.Sessions(ctx, realm, user, "all", 0, 0); err != nil {
		return nil, err
	}
	for _, s := range ex.Sessions {
		if tr, err := t.cfg.Store.Trail(ctx, realm, user, s.ID); err == nil && len(tr) > 0 {
			ex.Trails[s.ID] = tr
		}
	}
	if ex.Devices, err = t.Devices(ctx, realm, user); err != nil {
		return nil, err
	}
	if ex.Violations, _, err = t.Violations(ctx, realm, user, 0, 1<<30); err != nil {
		return nil, err
	}
	days, err := t.cfg.Store.Days(ctx, realm, user, nil)
	if err != nil {
		return nil, err
	}
	ex.Days = make(map[string]ExportDay, len(days))
	for d, tot := range days {
		ex.Days[d] = ExportDay{ActiveSeconds: int64(tot.Active / time.Second), Sessions: tot.Sessions}
	}
	// Lists are lists in the JSON, empty or not.
	if ex.Devices == nil {
		ex.Devices = []*store.Device{}
	}
	if ex.Violations == nil {
		ex.Violations = []*restrict.Violation{}
	}
	return ex, nil
}

// Erase revokes the user's active sessions and deletes everything held
// about them. The tokens they had stay refused (an HMAC each, bound to no
// user) for the revoke hold.
func (t *Tracker) Erase(ctx context.Context, realm, user string) (int, error) {
	closed, err := t.RevokeAll(ctx, realm, user, "")
	if err != nil {
		return 0, err
	}
	toks, err := t.cfg.Store.Erase(ctx, realm, user)
	if err != nil {
		return len(closed), err
	}
	for _, th := range toks {
		if err := t.cfg.Store.BindToken(ctx, th, erasedUser, t.cfg.Policy.RevokeHold); err != nil {
			return len(closed), err
		}
	}
	_ = t.announce(ctx, store.Invalidation{Realm: realm, UserTag: t.cfg.Keys.UserTag(realm, user), Deny: store.EndErased, Tokens: toks})
	return len(closed), nil
}
