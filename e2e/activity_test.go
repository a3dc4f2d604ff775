package e2e

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
	"github.com/caddy-sessions/caddy-sessions/internal/shop"
)

// Issue 4 end to end: activity reports, CSV export, the privacy switches,
// impersonation, export and erasure, through the real Caddy binary.

// uaEvilAndroid is a user agent whose parsed device family starts with "="
// (uap-core takes the model from "; <model> Build/"): a formula, if a
// spreadsheet opened the export unneutralised.
const uaEvilAndroid = "Mozilla/5.0 (Linux; Android 10; =HYPERLINK(1) Build/QQ3A) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"

// Wire format of the activity answers.
type apiDayRow struct {
	Date          string `json:"date"`
	ActiveSeconds int64  `json:"active_seconds"`
	Active        string `json:"active"`
	Sessions      int    `json:"sessions"`
}

type apiActivity struct {
	User          string      `json:"user"`
	UserTimeZone  string      `json:"user_time_zone"`
	AdminTimeZone string      `json:"admin_time_zone"`
	ZoneDiffers   bool        `json:"time_zone_differs"`
	From          string      `json:"from"`
	To            string      `json:"to"`
	Days          []apiDayRow `json:"days"`
}

type apiTrailEntry struct {
	Time time.Time `json:"time"`
	Path string    `json:"path"`
}

type apiDaySession struct {
	ID           string          `json:"id"`
	DeviceType   string          `json:"device_type"`
	Start        string          `json:"start"`
	End          string          `json:"end"`
	Duration     string          `json:"duration"`
	DurationSec  int64           `json:"duration_seconds"`
	OnThisDaySec int64           `json:"on_this_day_seconds"`
	AdminStart   string          `json:"admin_start"`
	AdminEnd     string          `json:"admin_end"`
	IP           string          `json:"ip"`
	Location     string          `json:"location"`
	Browser      string          `json:"browser"`
	OS           string          `json:"os"`
	Trail        []apiTrailEntry `json:"trail"`
}

type apiDay struct {
	User          string          `json:"user"`
	Date          string          `json:"date"`
	UserTimeZone  string          `json:"user_time_zone"`
	AdminTimeZone string          `json:"admin_time_zone"`
	ZoneDiffers   bool            `json:"time_zone_differs"`
	Sessions      []apiDaySession `json:"sessions"`
}

func (d apiDay) byID(id string) *apiDaySession {
	for i := range d.Sessions {
		if d.Sessions[i].ID == id {
			return &d.Sessions[i]
		}
	}
	return nil
}

func (s *apiDaySession) paths() []string {
	var out []string
	for _, e := range s.Trail {
		out = append(out, e.Path)
	}
	return out
}

// apiSettings is a realm's switches.
type apiSettings struct {
	Tracking      bool   `json:"tracking"`
	Geolocation   bool   `json:"geolocation"`
	IPPrecision   string `json:"ip_precision"`
	ActivityTrail bool   `json:"activity_trail"`
}

func (c *Caddy) putSettings(t testing.TB, realm, body string) apiSettings {
	t.Helper()
	var st apiSettings
	c.adminWant(t, http.MethodPut, "/sessions/"+url.PathEscape(realm)+"/settings", body, http.StatusOK, &st)
	return st
}

func (c *Caddy) day(t testing.TB, realm, user, date, tz string) apiDay {
	t.Helper()
	var d apiDay
	c.adminWant(t, http.MethodGet, userPath(realm, user)+"/activity/"+date+"?tz="+url.QueryEscape(tz), "", http.StatusOK, &d)
	return d
}

// activityConf is the shop behind sessions with env's store, realm,
// login/logout, the GeoIP test database and extra lines.
func activityConf(up string, env storeEnv, realm string, extra ...string) string {
	lines := append([]string{"realm " + realm, "login @login", "logout @logout", "geoip " + geoDB}, extra...)
	return caddyfile("", shopSite(up, sessionsConf(env, lines...), "")+"\n"+blockReasonErrors)
}

func localDate(zone string, at time.Time) string {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		panic(err)
	}
	return at.In(loc).Format("2006-01-02")
}

// TestActivityAndPrivacy runs the activity and privacy scenarios on the
// memory store and on Redis.
func TestActivityAndPrivacy(t *testing.T) {
	t.Parallel()
	for _, s := range []struct {
		name string
		mk   func(testing.TB) storeEnv
	}{
		{"memory", func(testing.TB) storeEnv { return memoryStore() }},
		{"redis", redisStore},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			env := s.mk(t)
			for _, sc := range []struct {
				name string
				fn   func(*testing.T, storeEnv)
			}{
				{"ActivityOverview", testActivityOverview},
				{"CSVExport", testCSVExport},
				{"SwitchesNotRetroactive", testSwitches},
				{"ActivityTrailConsent", testActivityTrail},
				{"Impersonation", testImpersonation},
			} {
				t.Run(sc.name, func(t *testing.T) {
					t.Parallel()
					sc.fn(t, env)
				})
			}
		})
	}
}

// A user in London (GeoIP) seen by an admin in New York: today's row with
// both sessions and their active time, the zones flagged as different;
// the per-day view lists a Web and a Mobile session with the user-zone
// and admin-zone times.
func testActivityOverview(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "activity"
	c := startCaddy(t, activityConf(up, env, realm, "refresh_interval 1s"))
	desk := newClient(t, uaChromeWindows, ipLondon)
	desk.login(c.Site, "alice", "alice")
	phone := newClient(t, uaIPhone, ipLondon)
	phone.login(c.Site, "alice", "alice")
	desk.get(c.Site + "/account")
	time.Sleep(1100 * time.Millisecond)
	desk.get(c.Site + "/products/1")
	phone.get(c.Site + "/account")
	today := localDate("Europe/London", time.Now())

	base := userPath(realm, "alice") + "/activity"
	var rep apiActivity
	eventually(t, 3*time.Second, 50*time.Millisecond, func() (bool, string) {
		c.adminWant(t, http.MethodGet, base+"?days=14&tz=America/New_York", "", http.StatusOK, &rep)
		return len(rep.Days) == 1 && rep.Days[0].ActiveSeconds >= 1, "today's active time not recorded: " + dump(rep)
	})
	row := rep.Days[0]
	if rep.User != "alice" || rep.UserTimeZone != "Europe/London" || rep.AdminTimeZone != "America/New_York" || !rep.ZoneDiffers {
		t.Errorf("activity header: %s; want user zone Europe/London, admin zone America/New_York, time_zone_differs true", dump(rep))
	}
	if row.Date != today || row.Sessions != 2 || row.ActiveSeconds > 10 || row.Active == "" {
		t.Errorf("today's row = %s; want date %s, 2 sessions, a few seconds active", dump(row), today)
	}
	todayT, _ := time.Parse("2006-01-02", today)
	if rep.To != today || rep.From != todayT.AddDate(0, 0, -13).Format("2006-01-02") {
		t.Errorf("14-day window = %s..%s, want %s..%s", rep.From, rep.To, todayT.AddDate(0, 0, -13).Format("2006-01-02"), today)
	}
	// The admin in the user's zone: no difference flagged.
	var same apiActivity
	c.adminWant(t, http.MethodGet, base+"?tz=Europe/London", "", http.StatusOK, &same)
	if same.ZoneDiffers || len(same.Days) != 1 {
		t.Errorf("with tz=Europe/London: %s", dump(same))
	}
	for _, q := range []string{"?tz=Mars/Olympus", "?days=0", "?days=abc"} {
		status, body := c.adminSend(t, http.MethodGet, base+q, "")
		param := strings.TrimPrefix(strings.SplitN(q, "=", 2)[0], "?")
		if status != http.StatusBadRequest || !strings.Contains(string(body), param) {
			t.Errorf("GET activity%s: %d %s, want 400 naming %s", q, status, body, param)
		}
	}

	d := c.day(t, realm, "alice", today, "America/New_York")
	if len(d.Sessions) != 2 || !d.ZoneDiffers || d.UserTimeZone != "Europe/London" {
		t.Fatalf("activity/%s: %s", today, dump(d))
	}
	london, _ := time.LoadLocation("Europe/London")
	ny, _ := time.LoadLocation("America/New_York")
	types := map[string]apiDaySession{}
	for _, s := range d.Sessions {
		types[s.DeviceType] = s
		start, err := time.Parse(time.RFC3339, s.Start)
		if err != nil {
			t.Fatalf("start %q: %v", s.Start, err)
		}
		if _, off := start.Zone(); func() int { _, o := start.In(london).Zone(); return o }() != off {
			t.Errorf("start %q is not in the user's zone (Europe/London)", s.Start)
		}
		as, err := time.Parse(time.RFC3339, s.AdminStart)
		if err != nil || !as.Equal(start) {
			t.Errorf("admin_start %q should be the start %q in the admin's zone", s.AdminStart, s.Start)
		} else if _, off := as.Zone(); func() int { _, o := as.In(ny).Zone(); return o }() != off {
			t.Errorf("admin_start %q is not in America/New_York", s.AdminStart)
		}
		if s.End != "active" || s.AdminEnd != "active" || s.IP != ipLondon || !strings.Contains(s.Location, "London") {
			t.Errorf("session of the day: %s", dump(s))
		}
	}
	if w, ok := types["Web"]; !ok || w.Browser != "Chrome 124.0" || w.OS != "Windows 10" {
		t.Errorf("want a Web session (Chrome 124.0 on Windows 10): %s", dump(d))
	}
	if m, ok := types["Mobile"]; !ok || !strings.HasPrefix(m.Browser, "Mobile Safari") || !strings.HasPrefix(m.OS, "iOS") {
		t.Errorf("want a Mobile session (Mobile Safari on iOS): %s", dump(d))
	}
	if d := c.day(t, realm, "alice", today, "Europe/London"); d.ZoneDiffers || len(d.Sessions) != 2 || d.Sessions[0].AdminStart != "" {
		t.Errorf("activity/%s?tz=Europe/London: zones equal, no admin times: %s", today, dump(d))
	}
	yesterday := todayT.AddDate(0, 0, -1).Format("2006-01-02")
	if d := c.day(t, realm, "alice", yesterday, "America/New_York"); len(d.Sessions) != 0 {
		t.Errorf("activity/%s (yesterday) should be empty: %s", yesterday, dump(d))
	}
}

// The CSV export parses back with encoding/csv: header, one row per
// session with every field, CRLF line ends; a login name and a parsed
// user agent field starting with "=" are neutralised, negative
// coordinates stay numbers.
func testCSVExport(t *testing.T, env storeEnv) {
	const evil = "=SUM(1+1)"
	sh := shop.New(shop.Options{Rotate: true, Users: map[string]string{evil: "pw", "alice": "alice"}})
	up := serve(t, sh)
	const realm = "csv"
	c := startCaddy(t, activityConf(up, env, realm))
	a := newClient(t, uaEvilAndroid, ipLondon)
	a.login(c.Site, evil, "pw")
	b := newClient(t, uaChromeWindows, ipMilton)
	b.login(c.Site, evil, "pw")
	bID := activeByIP(t, c.Sessions(t, realm, evil, "active"), ipMilton).ID
	if r := b.get(c.Site + "/logout"); r.Status != http.StatusSeeOther {
		t.Fatalf("logout: %s", r)
	}
	waitClosed(t, c, realm, evil, bID)

	get := func(query string) (int, http.Header, []byte) {
		req, _ := http.NewRequest(http.MethodGet, c.Admin+userPath(realm, evil)+"/sessions.csv"+query, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, body
	}
	status, hdr, body := get("")
	if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") {
		t.Fatalf("GET sessions.csv: %d %v %s", status, hdr, body)
	}
	if !bytes.Contains(body, []byte("\r\n")) || bytes.Count(body, []byte("\r\n")) != bytes.Count(body, []byte("\n")) {
		t.Errorf("RFC 4180 wants CRLF line ends: %q", body)
	}
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("parsing the CSV back: %v\n%s", err, body)
	}
	wantHeader := []string{"id", "realm", "user", "started_at", "last_seen", "ended_at", "end_reason", "duration_seconds",
		"ip", "city", "region", "country", "country_code", "time_zone", "latitude", "longitude",
		"browser", "browser_version", "os", "os_version", "device_family", "device_type", "device_id"}
	if strings.Join(recs[0], ",") != strings.Join(wantHeader, ",") {
		t.Fatalf("CSV header = %q\nwant %q", recs[0], wantHeader)
	}
	if len(recs) != 3 {
		t.Fatalf("want a header and 2 rows, got %d records:\n%s", len(recs), body)
	}
	rows := map[string]map[string]string{}
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, h := range wantHeader {
			m[h] = rec[i]
			if h == "latitude" || h == "longitude" {
				continue // numbers the module writes itself
			}
			if v := rec[i]; v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
				t.Errorf("cell %s = %q starts with a formula character", h, v)
			}
		}
		rows[m["ip"]] = m
	}
	l := c.Sessions(t, realm, evil, "all")
	for ip, want := range map[string]struct{ city, endReason, browser, family, devType string }{
		ipLondon: {"London", "", "Chrome Mobile", "'=HYPERLINK(1)", "mobile"},
		ipMilton: {"Milton", "logout", "Chrome", "Other", "desktop"},
	} {
		m := rows[ip]
		if m == nil {
			t.Fatalf("no CSV row for %s:\n%s", ip, body)
		}
		s := activeOrAny(l, ip)
		if m["id"] != s.ID || m["realm"] != realm || m["user"] != "'"+evil || m["city"] != want.city || m["end_reason"] != want.endReason ||
			m["browser"] != want.browser || m["device_family"] != want.family || m["device_type"] != want.devType || m["device_id"] != s.DeviceID {
			t.Errorf("CSV row for %s = %v\nwant id %s, user '%s, city %s, end_reason %q, browser %s, device_family %s, device_type %s",
				ip, m, s.ID, evil, want.city, want.endReason, want.browser, want.family, want.devType)
		}
		if _, err := time.Parse(time.RFC3339, m["started_at"]); err != nil {
			t.Errorf("started_at %q: %v", m["started_at"], err)
		}
		if (want.endReason == "") != (m["ended_at"] == "") {
			t.Errorf("ended_at %q with end_reason %q", m["ended_at"], m["end_reason"])
		}
		if n, err := strconv.Atoi(m["duration_seconds"]); err != nil || n < 0 {
			t.Errorf("duration_seconds %q", m["duration_seconds"])
		}
		lat, err1 := strconv.ParseFloat(m["latitude"], 64)
		lon, err2 := strconv.ParseFloat(m["longitude"], 64)
		if err1 != nil || err2 != nil || lat <= 0 || lon >= 0 {
			t.Errorf("latitude %q, longitude %q: want numbers (a negative longitude stays a number)", m["latitude"], m["longitude"])
		}
	}

	// from/to bounds.
	todayT := time.Now().UTC()
	for _, q := range []string{"?to=" + todayT.AddDate(0, 0, -1).Format("2006-01-02"), "?from=" + todayT.AddDate(0, 0, 2).Format("2006-01-02")} {
		status, _, body := get(q)
		recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if status != http.StatusOK || err != nil || len(recs) != 1 {
			t.Errorf("sessions.csv%s: %d, %d records (%v), want only the header:\n%s", q, status, len(recs), err, body)
		}
	}
	if status, _, body := get("?from=" + todayT.Format("2006-01-02") + "&to=" + todayT.Format("2006-01-02")); status != http.StatusOK || bytes.Count(body, []byte("\r\n")) != 3 {
		t.Errorf("sessions.csv for today: %d\n%s", status, body)
	}
	if status, _, body := get("?from=yesterday"); status != http.StatusBadRequest || !bytes.Contains(body, []byte("from")) {
		t.Errorf("sessions.csv?from=yesterday: %d %s, want 400 naming from", status, body)
	}
}

// activeOrAny is the session from ip (active or not).
func activeOrAny(l apiList, ip string) apiSession {
	for _, s := range l.Sessions {
		if s.IP == ip {
			return s
		}
	}
	return apiSession{}
}

// The switches, changed at runtime through the admin API, apply to new
// sessions only: geolocation off (new session without location, the
// earlier one keeps London), ip_precision truncated (81.2.69.0, still
// located) and none, tracking off (a login opens nothing, requests pass;
// turning it on reconstructs nothing).
func testSwitches(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "switches"
	c := startCaddy(t, activityConf(up, env, realm))
	login := func(ua string) (*client, apiSession) {
		t.Helper()
		before := c.Sessions(t, realm, "alice", "all")
		cl := newClient(t, ua, ipLondon)
		cl.login(c.Site, "alice", "alice")
		after := c.Sessions(t, realm, "alice", "all")
		if after.Total != before.Total+1 {
			t.Fatalf("login should open one session: %s", dump(after))
		}
		for _, s := range after.Sessions {
			if before.byID(s.ID) == nil {
				return cl, s
			}
		}
		t.Fatalf("new session not found")
		return nil, apiSession{}
	}
	c1, s1 := login(uaChromeWindows)
	if s1.Location.City != "London" || s1.IP != ipLondon {
		t.Fatalf("first session: %s", dump(s1))
	}

	if st := c.putSettings(t, realm, `{"geolocation": false}`); st.Geolocation || !st.Tracking || st.IPPrecision != "full" {
		t.Fatalf("PUT geolocation off: %s", dump(st))
	}
	_, s2 := login(uaFirefoxLinux)
	if s2.Location != (apiLocation{}) || s2.IP != ipLondon {
		t.Errorf("with geolocation off the new session should have no location: %s", dump(s2))
	}
	if s := c.Sessions(t, realm, "alice", "all").byID(s1.ID); s == nil || s.Location.City != "London" {
		t.Errorf("geolocation off must not be retroactive: the first session lost London: %s", dump(s))
	}

	if st := c.putSettings(t, realm, `{"geolocation": true, "ip_precision": "truncated"}`); !st.Geolocation || st.IPPrecision != "truncated" {
		t.Fatalf("PUT truncated: %s", dump(st))
	}
	_, s3 := login(uaIPhone)
	if s3.IP != "81.2.69.0" || s3.Location.City != "London" {
		t.Errorf("ip_precision truncated: want ip 81.2.69.0 located in London (lookup before truncation): %s", dump(s3))
	}
	c.putSettings(t, realm, `{"ip_precision": "none"}`)
	_, s4 := login(uaChromeWindows)
	if s4.IP != "" || s4.Location.City != "London" {
		t.Errorf("ip_precision none: want no ip, still located: %s", dump(s4))
	}
	l := c.Sessions(t, realm, "alice", "all")
	for _, id := range []string{s1.ID, s2.ID} {
		if s := l.byID(id); s == nil || s.IP != ipLondon {
			t.Errorf("ip_precision must not be retroactive: %s", dump(s))
		}
	}

	if st := c.putSettings(t, realm, `{"ip_precision": "full", "tracking": false}`); st.Tracking {
		t.Fatalf("PUT tracking off: %s", dump(st))
	}
	off := newClient(t, uaFirefoxLinux, ipMilton)
	off.login(c.Site, "alice", "alice")
	if r := off.get(c.Site + "/account"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "alice") {
		t.Fatalf("with tracking off requests still pass: %s", r)
	}
	if r := c1.get(c.Site + "/account"); r.Status != http.StatusOK {
		t.Fatalf("with tracking off an earlier session's requests pass: %s", r)
	}
	if l := c.Sessions(t, realm, "alice", "all"); l.Total != 4 {
		t.Fatalf("with tracking off a login must open nothing: %s", dump(l))
	}
	var st apiSettings
	c.adminWant(t, http.MethodGet, "/sessions/"+realm+"/settings", "", http.StatusOK, &st)
	if st.Tracking {
		t.Fatalf("GET settings: %s", dump(st))
	}

	c.putSettings(t, realm, `{"tracking": true}`)
	if r := off.get(c.Site + "/account"); r.Status != http.StatusOK {
		t.Fatalf("after tracking on: %s", r)
	}
	if l := c.Sessions(t, realm, "alice", "all"); l.Total != 4 {
		t.Fatalf("turning tracking on must not reconstruct the unobserved login: %s", dump(l))
	}
	_, s5 := login(uaIPhone)
	if s5.IP != ipLondon || s5.Location.City != "London" {
		t.Errorf("after all switches back: %s", dump(s5))
	}

	for _, tc := range []struct{ body, want string }{
		{`{"ip_precision": "partial"}`, "ip_precision"},
		{`{"trackin": true}`, "trackin"},
		{`{"tracking": "yes"}`, "tracking"},
	} {
		status, b := c.adminSend(t, http.MethodPut, "/sessions/"+realm+"/settings", tc.body)
		if status != http.StatusBadRequest || !strings.Contains(string(b), tc.want) {
			t.Errorf("PUT settings %s: %d %s, want 400 naming %s", tc.body, status, b, tc.want)
		}
	}
}

// activity_trail with a consent cookie: paths are kept (throttled like
// last_seen) only for the consenting browser, shown in activity/{date}
// and the export; switching the trail off at runtime stops recording.
func testActivityTrail(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "trail"
	c := startCaddy(t, activityConf(up, env, realm, "refresh_interval 1s",
		"activity_trail {\n\tpaths 5\n\tconsent {http.request.cookie.consent}\n}"))
	u, _ := url.Parse(c.Site)
	yes := newClient(t, uaChromeWindows, ipLondon)
	yes.jar.SetCookies(u, []*http.Cookie{{Name: "consent", Value: "yes"}})
	no := newClient(t, uaFirefoxLinux, ipLondon)
	no.jar.SetCookies(u, []*http.Cookie{{Name: "consent", Value: "no"}})
	none := newClient(t, uaIPhone, ipLondon)
	clients := []*client{yes, no, none}
	for _, cl := range clients {
		cl.login(c.Site, "alice", "alice")
	}
	for _, p := range []string{"/products/1", "", "/products/2", "", "/account"} {
		if p == "" {
			time.Sleep(1100 * time.Millisecond)
			continue
		}
		for _, cl := range clients {
			if r := cl.get(c.Site + p); r.Status != http.StatusOK {
				t.Fatalf("GET %s: %s", p, r)
			}
		}
	}
	l := c.Sessions(t, realm, "alice", "all")
	idOf := func(cl *client) string {
		for _, s := range l.Sessions {
			if s.DeviceID == deviceOf(cl, c.Site) {
				return s.ID
			}
		}
		t.Fatalf("no session for the device of %s: %s", cl.UA, dump(l))
		return ""
	}
	yesID := idOf(yes)
	today := localDate("Europe/London", time.Now())
	want := []string{"/login", "/products/2", "/account"}
	var d apiDay
	eventually(t, 3*time.Second, 50*time.Millisecond, func() (bool, string) {
		d = c.day(t, realm, "alice", today, "UTC")
		s := d.byID(yesID)
		return s != nil && len(s.Trail) >= len(want), "consenting session's trail not complete: " + dump(d)
	})
	if got := d.byID(yesID).paths(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("consenting session's trail = %v, want %v (the login, then one path per refresh interval)", got, want)
	}
	for _, cl := range []*client{no, none} {
		if s := d.byID(idOf(cl)); s == nil || len(s.Trail) != 0 {
			t.Errorf("a session without consent (%s) must keep no trail: %s", cl.UA, dump(s))
		}
	}
	var ex struct {
		Trails map[string][]apiTrailEntry `json:"trails"`
	}
	c.adminWant(t, http.MethodGet, userPath(realm, "alice")+"/export", "", http.StatusOK, &ex)
	if len(ex.Trails) != 1 || len(ex.Trails[yesID]) != len(want) {
		t.Errorf("export trails: %s", dump(ex.Trails))
	}

	// Switched off at runtime: no more paths, for the running session too.
	if st := c.putSettings(t, realm, `{"activity_trail": false}`); st.ActivityTrail {
		t.Fatalf("PUT activity_trail off: %s", dump(st))
	}
	time.Sleep(1100 * time.Millisecond) // a refresh is due
	n := c.refreshes(t, realm)
	yes.get(c.Site + "/products/3")
	c.waitRefreshes(t, realm, n)
	if got := c.day(t, realm, "alice", today, "UTC").byID(yesID).paths(); len(got) != len(want) {
		t.Errorf("BUG: after PUT settings {\"activity_trail\": false} the running consenting session still records paths: trail %v", got)
	}
	late := newClient(t, uaChromeWindows, ipLondon)
	late.jar.SetCookies(u, []*http.Cookie{{Name: "consent", Value: "yes"}})
	late.login(c.Site, "alice", "alice")
	time.Sleep(1100 * time.Millisecond) // a refresh is due
	n = c.refreshes(t, realm)
	late.get(c.Site + "/products/4")
	c.waitRefreshes(t, realm, n)
	d = c.day(t, realm, "alice", today, "UTC")
	for _, s := range d.Sessions {
		if s.ID != yesID && len(s.Trail) > 0 {
			t.Errorf("a session opened with the trail off keeps a trail: %s", dump(s))
		}
	}
}

// Impersonation: requests marked by the impersonation placeholder (even
// with the customer's cookie, even a login) are not recorded: no new
// session, last_seen not advanced, not counted by max_ips (a new IP past
// the limit passes, no violation).
func testImpersonation(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "impersonation"
	c := startCaddy(t, activityConf(up, env, realm, "refresh_interval 1s",
		"impersonation {http.request.header.X-Impersonator}", restrictBlock("max_ips 1 24h block")))
	alice := newClient(t, uaChromeWindows, ipA)
	alice.login(c.Site, "alice", "alice")
	s0 := c.Sessions(t, realm, "alice", "all")
	if s0.Total != 1 {
		t.Fatalf("want one session: %s", dump(s0))
	}
	sess := s0.Sessions[0]
	staff := func(r *http.Request) {
		r.Header.Set("X-Impersonator", "staff-jo")
		r.Header.Set("Cookie", alice.cookieHeader(c.Site))
	}
	time.Sleep(1100 * time.Millisecond) // a refresh of alice's session is due
	for _, ip := range []string{ipA, ipB, ipC} {
		alice.IP = ip
		r, err := alice.send(false, http.MethodGet, c.Site+"/account", nil, staff)
		if err != nil || r.Status != http.StatusOK || !strings.Contains(string(r.Body), "alice") {
			t.Fatalf("impersonated request with alice's cookie from %s: %v %v", ip, r, err)
		}
	}
	// Staff logging in as alice, then browsing with that cookie.
	st := newClient(t, uaFirefoxLinux, ipD)
	r := st.do(http.MethodPost, c.Site+"/login", strings.NewReader(url.Values{"username": {"alice"}, "password": {"alice"}}.Encode()), func(r *http.Request) {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("X-Impersonator", "staff-jo")
	})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("impersonated login: %s", r)
	}
	if r := st.do(http.MethodGet, c.Site+"/account", nil, func(r *http.Request) { r.Header.Set("X-Impersonator", "1") }); r.Status != http.StatusOK {
		t.Fatalf("impersonated browsing: %s", r)
	}
	// A refresh of bob's, queued after the impersonated requests, goes
	// through the store: one of alice's would have gone before it.
	bob := newClient(t, uaFirefoxLinux, ipD)
	bob.login(c.Site, "bob", "bob")
	time.Sleep(1100 * time.Millisecond) // bob's refresh is due
	n := c.refreshes(t, realm)
	bob.get(c.Site + "/account")
	c.waitRefreshes(t, realm, n)
	l := c.Sessions(t, realm, "alice", "all")
	if l.Total != 1 || l.Sessions[0].ID != sess.ID || !l.Sessions[0].LastSeen.Equal(sess.LastSeen) || l.Sessions[0].IP != ipA {
		t.Fatalf("impersonated requests must leave no trace (no session, last_seen %v unchanged, ip %s): %s", sess.LastSeen, ipA, dump(l))
	}
	if vs := c.Violations(t, realm, "alice"); len(vs) != 0 {
		t.Fatalf("impersonated requests from new IPs must not count against max_ips: %s", dump(vs))
	}
	if devs := c.Devices(t, realm, "alice"); len(devs) != 1 {
		t.Fatalf("impersonated requests must record no device: %s", dump(devs))
	}
	// "0" and "false" do not mark a request.
	alice.IP = ipA
	if r, _ := alice.send(false, http.MethodGet, c.Site+"/account", nil, func(r *http.Request) {
		r.Header.Set("X-Impersonator", "false")
		r.Header.Set("Cookie", alice.cookieHeader(c.Site))
	}); r == nil || r.Status != http.StatusOK {
		t.Fatalf("X-Impersonator: false: %v", r)
	}
	// Control: alice's own requests are tracked and limited as usual.
	eventually(t, 3*time.Second, 50*time.Millisecond, func() (bool, string) {
		l := c.Sessions(t, realm, "alice", "all")
		return l.Sessions[0].LastSeen.After(sess.LastSeen), "alice's own request did not refresh last_seen: " + dump(l)
	})
	wantReply(t, "alice herself from a second IP", alice.getAt(ipB, c.Site+"/account"), http.StatusForbidden, "max_ips")
	if vs := c.Violations(t, realm, "alice"); len(vs) != 1 || vs[0].Observed != 2 {
		t.Fatalf("want one violation observing 2 IPs (the impersonated ones not counted): %s", dump(vs))
	}
}

// eraseEnv is a store whose every key can be read back.
type eraseEnv struct {
	storeEnv
	// dump reads every key (nil for the memory store).
	dump func(t testing.TB) redisKeyDump
}

// TestExportErase: a user's export holds their sessions, devices,
// violations, days and trails; DELETE erases all of it (the admin user
// endpoints answer 404; on Redis and the cluster no key holds the user's
// id, by SCAN; on the memory store the snapshot holds none), revokes the
// active sessions, and the erased user's old cookie is refused.
func TestExportErase(t *testing.T) {
	t.Parallel()
	for _, s := range []struct {
		name string
		mk   func(testing.TB) eraseEnv
	}{
		{"memory", func(testing.TB) eraseEnv { return eraseEnv{storeEnv: memoryStore()} }},
		{"redis", func(t testing.TB) eraseEnv {
			srv := redistest.Start(t)
			cl := srv.Client(t)
			return eraseEnv{
				storeEnv: storeEnv{name: "redis", fragment: "store " + srv.URL() + "\nsecret " + e2eSecret},
				dump:     func(t testing.TB) redisKeyDump { return dumpRedis(t, srv.ScanAll, cl) },
			}
		}},
		{"cluster", func(t testing.TB) eraseEnv {
			cl := redistest.StartCluster(t)
			cc := cl.ClusterClient(t)
			return eraseEnv{
				storeEnv: storeEnv{name: "cluster", fragment: "store {\n\taddrs " + strings.Join(cl.Addrs, " ") + "\n\tcluster\n}\nsecret " + e2eSecret},
				dump:     func(t testing.TB) redisKeyDump { return dumpRedis(t, cl.ScanAll, cc) },
			}
		}},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			testExportErase(t, s.mk(t))
		})
	}
}

func testExportErase(t *testing.T, env eraseEnv) {
	t.Run("EraseWhileActive", func(t *testing.T) { testEraseWhileActive(t, env) })
	t.Run("PlaceholderIdentity", func(t *testing.T) { testErasePlaceholder(t, env) })
	const user = "erin-q7x"
	sh := shop.New(shop.Options{Rotate: true, Users: map[string]string{user: "pw", "alice": "alice"}})
	up := serve(t, sh)
	const realm = "erase"
	c := startCaddy(t, activityConf(up, env.storeEnv, realm, "refresh_interval 1s", restrictBlock("max_ips 1 24h log"),
		"activity_trail {\n\tconsent {http.request.cookie.consent}\n}"))
	u, _ := url.Parse(c.Site)
	e1 := newClient(t, uaChromeWindows, ipLondon)
	e1.jar.SetCookies(u, []*http.Cookie{{Name: "consent", Value: "yes"}})
	e1.login(c.Site, user, "pw")
	e2 := newClient(t, uaIPhone, ipMilton) // a second IP: a logged violation
	e2.login(c.Site, user, "pw")
	al := newClient(t, uaFirefoxLinux, ipOther)
	al.jar.SetCookies(u, []*http.Cookie{{Name: "consent", Value: "yes"}})
	al.login(c.Site, "alice", "alice")
	time.Sleep(1100 * time.Millisecond)
	for _, cl := range []*client{e1, e2, al} {
		if r := cl.get(c.Site + "/products/1"); r.Status != http.StatusOK {
			t.Fatalf("GET /products/1: %s", r)
		}
	}
	base := userPath(realm, user)
	var ex struct {
		Realm      string                     `json:"realm"`
		User       string                     `json:"user"`
		Summary    *apiUser                   `json:"summary"`
		Sessions   []apiSession               `json:"sessions"`
		Trails     map[string][]apiTrailEntry `json:"trails"`
		Devices    []apiDevice                `json:"devices"`
		Violations []apiViolation             `json:"violations"`
		Days       map[string]json.RawMessage `json:"days"`
	}
	eventually(t, 3*time.Second, 50*time.Millisecond, func() (bool, string) {
		b := c.adminWant(t, http.MethodGet, base+"/export", "", http.StatusOK, &ex)
		return len(ex.Trails) == 1 && len(ex.Trails[activeByIP(t, c.Sessions(t, realm, user, "all"), ipLondon).ID]) == 2, "export without the trail: " + string(b)
	})
	if ex.Realm != realm || ex.User != user || ex.Summary == nil || ex.Summary.User != user || len(ex.Sessions) != 2 ||
		len(ex.Devices) != 2 || len(ex.Violations) != 1 || ex.Violations[0].Policy != "max_ips" || len(ex.Days) == 0 {
		t.Fatalf("export should hold the summary, 2 sessions, 2 devices, 1 violation, the days and the trail: %s", dump(ex))
	}
	for _, s := range ex.Sessions {
		if s.User != user || s.EndedAt != nil {
			t.Fatalf("export session: %s", dump(s))
		}
	}
	if env.dump != nil {
		if keys := env.dump(t).containing(user); len(keys) == 0 {
			t.Fatalf("sanity: before the erase some key should hold %q", user)
		}
	}

	e1Token := e1.cookie(c.Site, "shop_session")
	var er struct {
		User    string `json:"user"`
		Erased  bool   `json:"erased"`
		Revoked int    `json:"revoked_sessions"`
	}
	c.adminWant(t, http.MethodDelete, base, "", http.StatusOK, &er)
	if er.User != user || !er.Erased || er.Revoked != 2 {
		t.Fatalf("DELETE user: %s, want erased with 2 revoked sessions", dump(er))
	}
	checkGone := func(stage string) {
		t.Helper()
		for _, p := range []string{"", "/sessions?state=all", "/devices", "/violations", "/activity", "/activity/" + localDate("UTC", time.Now()),
			"/export", "/sessions.csv"} {
			if status, body := c.adminSend(t, http.MethodGet, base+p, ""); status != http.StatusNotFound {
				t.Errorf("%s: GET %s%s: %d %s, want 404", stage, base, p, status, body)
			}
		}
		if u := findUser(c.Users(t, realm, ""), user); u != nil {
			t.Errorf("%s: the users list still lists the erased user: %s", stage, dump(u))
		}
		if findUser(c.Users(t, realm, ""), "alice") == nil {
			t.Errorf("%s: the erase must not touch other users", stage)
		}
		if env.dump != nil {
			d := env.dump(t)
			if keys := d.containing(user); len(keys) > 0 {
				t.Errorf("%s: %d Redis key(s) still hold %q:\n%s", stage, len(keys), user, strings.Join(keys, "\n"))
			}
			if len(d.containing("alice")) == 0 {
				t.Errorf("%s: sanity: alice's keys are gone too", stage)
			}
		}
	}
	checkGone("after the erase")

	// The erased user's old cookies are refused (on_revoked 401, the app
	// cookie expired), and refusing them records nothing.
	for _, cl := range []*client{e1, e2} {
		r := cl.get(c.Site + "/account")
		if r.Status != http.StatusUnauthorized || !r.expires("shop_session") {
			t.Errorf("the erased user's old cookie (%s): %s, want 401 expiring shop_session", cl.UA, r)
		}
	}
	if r := al.get(c.Site + "/account"); r.Status != http.StatusOK {
		t.Errorf("another user after the erase: %s", r)
	}
	checkGone("after the old cookies were refused")

	if env.dump == nil {
		// The memory store: the snapshot written at shutdown holds no
		// trace of the user, and the refusal survives the restart.
		c.Restart(t)
		snap, err := os.ReadFile(filepath.Join(c.DataDir(), "sessions", "memory-store.json"))
		if err != nil {
			t.Fatalf("memory snapshot: %v", err)
		}
		if bytes.Contains(snap, []byte(user)) {
			t.Errorf("the memory store snapshot still holds %q", user)
		}
		if !bytes.Contains(snap, []byte("alice")) {
			t.Errorf("sanity: the snapshot should hold alice")
		}
		e1b := newClient(t, uaChromeWindows, ipLondon)
		if r, err := e1b.send(false, http.MethodGet, c.Site+"/account", nil, func(r *http.Request) {
			r.Header.Set("Cookie", "shop_session="+e1Token)
		}); err != nil || r.Status != http.StatusUnauthorized {
			t.Errorf("after a restart, the erased user's old token: %v %v, want 401", r, err)
		}
		checkGone("after a restart")
	}
}

// testEraseWhileActive: the user is browsing while the admin erases them.
// A refresh of their session queued right before the DELETE (refreshes
// are written in batches every 50ms) must not bring anything back. The
// outcome depends on where the batch falls, so it is tried a few times,
// each with a new user.
func testEraseWhileActive(t *testing.T, env eraseEnv) {
	users := map[string]string{}
	for i := 0; i < 5; i++ {
		users["frank-"+strconv.Itoa(i)] = "pw"
	}
	sh := shop.New(shop.Options{Rotate: true, Users: users})
	up := serve(t, sh)
	const realm = "erase-active"
	const refresh = 200 * time.Millisecond
	c := startCaddy(t, activityConf(up, env.storeEnv, realm, "refresh_interval 200ms"))
	for i := 0; i < 5; i++ {
		user := "frank-" + strconv.Itoa(i)
		cl := newClient(t, uaChromeWindows, ipLondon)
		cl.login(c.Site, user, "pw")
		time.Sleep(refresh + 50*time.Millisecond)
		n := c.refreshes(t, realm)
		cl.get(c.Site + "/account") // queues a refresh
		c.adminWant(t, http.MethodDelete, userPath(realm, user), "", http.StatusOK, nil)
		c.waitRefreshes(t, realm, n) // the batch went through
		var leaks []string
		if u := findUser(c.Users(t, realm, ""), user); u != nil {
			leaks = append(leaks, "the users list lists it: "+dump(u))
		}
		if env.dump != nil {
			leaks = append(leaks, env.dump(t).containing(user)...)
		}
		if status, body := c.adminSend(t, http.MethodGet, userPath(realm, user), ""); status != http.StatusNotFound {
			leaks = append(leaks, "GET user: "+strconv.Itoa(status)+" "+string(body))
		}
		if len(leaks) > 0 {
			t.Fatalf("BUG: attempt %d: a refresh queued right before the erase brought %q back:\n%s", i+1, user, strings.Join(leaks, "\n"))
		}
	}
}

// testErasePlaceholder: an app identifying users by a placeholder (here a
// header, as forward_auth sets it) and no app cookie. After the erase the
// same browser, still sending the user's name, is refused (the revoke hold
// of its device token) and the refusal leaves no key of the user behind.
func testErasePlaceholder(t *testing.T, env eraseEnv) {
	_, up := startShop(t, true)
	const realm = "erase-placeholder"
	const user = "gina-ph4"
	c := startCaddy(t, caddyfile("", `sessions {
	`+strings.ReplaceAll(env.fragment, "\n", "\n\t")+`
	realm `+realm+`
	user {http.request.header.X-User}
	geoip `+geoDB+`
}
reverse_proxy `+up+`
`+blockReasonErrors))
	cl := newClient(t, uaChromeWindows, ipLondon)
	as := func(name string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("X-User", name) }
	}
	for i := 0; i < 2; i++ {
		if r := cl.do(http.MethodGet, c.Site+"/", nil, as(user)); r.Status != http.StatusOK {
			t.Fatalf("GET / as %s: %s", user, r)
		}
	}
	other := newClient(t, uaFirefoxLinux, ipOther)
	other.do(http.MethodGet, c.Site+"/", nil, as("hank"))
	if l := c.Sessions(t, realm, user, "all"); l.Total != 1 {
		t.Fatalf("want one session of %s: %s", user, dump(l))
	}
	c.adminWant(t, http.MethodDelete, userPath(realm, user), "", http.StatusOK, nil)
	r := cl.do(http.MethodGet, c.Site+"/", nil, as(user))
	wantReply(t, "the erased user's browser, still named by the header", r, http.StatusUnauthorized, "revoked")
	if status, body := c.adminSend(t, http.MethodGet, userPath(realm, user), ""); status != http.StatusNotFound {
		t.Errorf("GET user after the refused request: %d %s, want 404", status, body)
	}
	if u := findUser(c.Users(t, realm, ""), user); u != nil {
		t.Errorf("the users list lists the erased user again: %s", dump(u))
	}
	if env.dump != nil {
		if keys := env.dump(t).containing(user); len(keys) > 0 {
			t.Errorf("after the refused request %d Redis key(s) hold %q:\n%s", len(keys), user, strings.Join(keys, "\n"))
		}
	}
}
