package admin

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// adminZone reads ?tz=, the admin's IANA time zone (default UTC).
func adminZone(r *http.Request) (*time.Location, error) {
	name := r.URL.Query().Get("tz")
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		return nil, apiErr(http.StatusBadRequest, "tz: %q is not an IANA time zone", name)
	}
	return loc, nil
}

// activity is a user's per-day totals over the last days.
func (a *API) activity(c *call) error {
	admin, err := adminZone(c.r)
	if err != nil {
		return err
	}
	user := c.user()
	if err := needUser(c, user); err != nil {
		return err
	}
	days := 14
	if v := c.r.URL.Query().Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 366 {
			return apiErr(http.StatusBadRequest, "days: %q is not a number from 1 to 366", v)
		}
		days = n
	}
	rep, err := c.t.Activity(c.r.Context(), c.realm, user, days, admin)
	if err != nil {
		return storeErr(err, "user")
	}
	return writeJSON(c.w, http.StatusOK, rep)
}

// activityDay lists the sessions of one local day.
func (a *API) activityDay(c *call) error {
	admin, err := adminZone(c.r)
	if err != nil {
		return err
	}
	date := c.param("date")
	if _, err := time.Parse("2006-01-02", date); err != nil {
		return apiErr(http.StatusBadRequest, "date: %q is not YYYY-MM-DD", date)
	}
	user := c.user()
	if err := needUser(c, user); err != nil {
		return err
	}
	rep, err := c.t.ActivityDay(c.r.Context(), c.realm, user, date, admin)
	if err != nil {
		return storeErr(err, "user")
	}
	return writeJSON(c.w, http.StatusOK, rep)
}

// csvHeader is the export's columns: every recorded field of a session.
var csvHeader = []string{
	"id", "realm", "user", "started_at", "last_seen", "ended_at", "end_reason", "duration_seconds",
	"ip", "city", "region", "country", "country_code", "time_zone", "latitude", "longitude",
	"browser", "browser_version", "os", "os_version", "device_family", "device_type", "device_id",
}

// csvNumeric marks the columns this code formats itself (times, numbers):
// a negative longitude stays a number.
var csvNumeric = map[int]bool{3: true, 4: true, 5: true, 7: true, 14: true, 15: true}

// csvCell neutralises a cell a spreadsheet would run as a formula: user
// agents, cities and user ids are attacker-controlled.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func csvFloat(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

// parseBound reads a from/to bound: YYYY-MM-DD (UTC midnight; to is
// inclusive of that day) or RFC 3339.
func parseBound(name, v string, end bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse("2006-01-02", v); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, apiErr(http.StatusBadRequest, "%s: %q is not YYYY-MM-DD or RFC 3339", name, v)
	}
	return t, nil
}

// sessionsCSV streams the user's sessions with from <= start < to as RFC 4180
// CSV, one page of the store at a time.
func (a *API) sessionsCSV(c *call) error {
	w, r, t, realm, user := c.w, c.r, c.t, c.realm, c.user()
	q := r.URL.Query()
	from, err := parseBound("from", q.Get("from"), false)
	if err != nil {
		return err
	}
	to, err := parseBound("to", q.Get("to"), true)
	if err != nil {
		return err
	}
	if err := needUser(c, user); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="sessions.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	cw.UseCRLF = true // RFC 4180
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	const pageSize = 500
	for offset := 0; ; offset += pageSize {
		list, total, err := t.Sessions(r.Context(), realm, user, "all", offset, pageSize)
		if err != nil {
			// Headers are sent: all that is left is to stop.
			return err
		}
		for _, s := range list {
			if (!from.IsZero() && s.StartedAt.Before(from)) || (!to.IsZero() && !s.StartedAt.Before(to)) {
				continue
			}
			end := t.Now()
			if s.EndedAt != nil {
				end = *s.EndedAt
			}
			row := []string{
				s.ID, s.Realm, s.User, csvTime(&s.StartedAt), csvTime(&s.LastSeen), csvTime(s.EndedAt), s.EndReason,
				strconv.FormatInt(int64(end.Sub(s.StartedAt)/time.Second), 10),
				s.IP, s.Location.City, s.Location.Region, s.Location.Country, s.Location.CountryCode, s.Location.TimeZone,
				csvFloat(s.Location.Latitude), csvFloat(s.Location.Longitude),
				s.Agent.Browser, s.Agent.BrowserVersion, s.Agent.OS, s.Agent.OSVersion, s.Agent.DeviceFamily, s.Agent.DeviceType, s.DeviceID,
			}
			for i := range row {
				if !csvNumeric[i] {
					row[i] = csvCell(row[i])
				}
			}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		if offset+pageSize >= total {
			return nil
		}
	}
}

// export is everything held about a user, as JSON.
func (a *API) export(c *call) error {
	ex, err := c.t.Export(c.r.Context(), c.realm, c.user())
	if err != nil {
		return storeErr(err, "user")
	}
	c.w.Header().Set("Content-Disposition", `attachment; filename="export.json"`)
	return writeJSON(c.w, http.StatusOK, ex)
}

// getSettings is the realm's switches.
func (a *API) getSettings(c *call) error {
	return writeJSON(c.w, http.StatusOK, c.t.Settings(c.r.Context(), c.realm))
}

// putSettings changes the switches given; the others keep their value.
func (a *API) putSettings(c *call) error {
	st := c.t.Settings(c.r.Context(), c.realm)
	var body struct {
		Tracking      *bool   `json:"tracking"`
		Geolocation   *bool   `json:"geolocation"`
		IPPrecision   *string `json:"ip_precision"`
		ActivityTrail *bool   `json:"activity_trail"`
	}
	if err := decodeBody(c.r, &body); err != nil {
		return err
	}
	if body.Tracking != nil {
		st.Tracking = *body.Tracking
	}
	if body.Geolocation != nil {
		st.Geolocation = *body.Geolocation
	}
	if body.ActivityTrail != nil {
		st.ActivityTrail = *body.ActivityTrail
	}
	if p := body.IPPrecision; p != nil {
		if *p != store.IPFull && *p != store.IPTruncated && *p != store.IPNone {
			return apiErr(http.StatusBadRequest, "ip_precision: %q is not full, truncated or none", *p)
		}
		st.IPPrecision = *p
	}
	if err := c.t.SetSettings(c.r.Context(), c.realm, st); err != nil {
		return storeErr(err, "realm")
	}
	return writeJSON(c.w, http.StatusOK, st)
}
