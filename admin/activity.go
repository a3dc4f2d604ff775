package admin

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker"
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

func (a *API) activity(w http.ResponseWriter, r *http.Request, t *tracker.Tracker, realm, user string, rest []string) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(r, http.MethodGet)
	}
	if len(rest) > 1 {
		return apiErr(http.StatusNotFound, "no such endpoint %s", r.URL.Path)
	}
	admin, err := adminZone(r)
	if err != nil {
		return err
	}
	if err := needUser(r, t, realm, user); err != nil {
		return err
	}
	if len(rest) == 1 {
		if _, err := time.Parse("2006-01-02", rest[0]); err != nil {
			return apiErr(http.StatusBadRequest, "date: %q is not YYYY-MM-DD", rest[0])
		}
		rep, err := t.ActivityDay(r.Context(), realm, user, rest[0], admin)
		if err != nil {
			return storeErr(err, "user")
		}
		return writeJSON(w, http.StatusOK, rep)
	}
	days := 14
	if v := r.URL.Query().Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 366 {
			return apiErr(http.StatusBadRequest, "days: %q is not a number from 1 to 366", v)
		}
		days = n
	}
	rep, err := t.Activity(r.Context(), realm, user, days, admin)
	if err != nil {
		return storeErr(err, "user")
	}
	return writeJSON(w, http.StatusOK, rep)
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
func (a *API) sessionsCSV(w http.ResponseWriter, r *http.Request, t *tracker.Tracker, realm, user string) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(r, http.MethodGet)
	}
	q := r.URL.Query()
	from, err := parseBound("from", q.Get("from"), false)
	if err != nil {
		return err
	}
	to, err := parseBound("to", q.Get("to"), true)
	if err != nil {
		return err
	}
	if err := needUser(r, t, realm, user); err != nil {
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

func (a *API) export(w http.ResponseWriter, r *http.Request, t *tracker.Tracker, realm, user string) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(r, http.MethodGet)
	}
	ex, err := t.Export(r.Context(), realm, user)
	if err != nil {
		return storeErr(err, "user")
	}
	w.Header().Set("Content-Disposition", `attachment; filename="export.json"`)
	return writeJSON(w, http.StatusOK, ex)
}

func (a *API) settings(w http.ResponseWriter, r *http.Request, t *tracker.Tracker, realm string) error {
	switch r.Method {
	case http.MethodGet:
		return writeJSON(w, http.StatusOK, t.Settings(r.Context(), realm))
	case http.MethodPut, http.MethodPatch:
		// Unset fields keep their current value.
		st := t.Settings(r.Context(), realm)
		var body struct {
			Tracking      *bool   `json:"tracking"`
			Geolocation   *bool   `json:"geolocation"`
			IPPrecision   *string `json:"ip_precision"`
			ActivityTrail *bool   `json:"activity_trail"`
		}
		if err := decodeBody(r, &body); err != nil {
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
			if *p != tracker.IPFull && *p != tracker.IPTruncated && *p != tracker.IPNone {
				return apiErr(http.StatusBadRequest, "ip_precision: %q is not full, truncated or none", *p)
			}
			st.IPPrecision = *p
		}
		if err := t.SetSettings(r.Context(), realm, st); err != nil {
			return storeErr(err, "realm")
		}
		return writeJSON(w, http.StatusOK, st)
	}
	return methodNotAllowed(r, http.MethodGet, http.MethodPut)
}
