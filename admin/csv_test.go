package admin

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var wantCSVHeader = []string{
	"id", "realm", "user", "started_at", "last_seen", "ended_at", "end_reason", "duration_seconds",
	"ip", "city", "region", "country", "country_code", "time_zone", "latitude", "longitude",
	"browser", "browser_version", "os", "os_version", "device_family", "device_type", "device_id",
}

// The columns the module formats itself: times, the duration and the
// coordinates. Everything else is text from users, user agents or GeoIP.
var csvNumericCols = map[string]bool{
	"started_at": true, "last_seen": true, "ended_at": true, "duration_seconds": true, "latitude": true, "longitude": true,
}

// csvRows fetches a user's CSV (query may be "") and parses it back with a
// real CSV reader, checking the framing. Rows are maps by column name.
func (e *env) csvRows(user, query string) []map[string]string {
	e.t.Helper()
	p := e.path(user, "sessions.csv")
	if query != "" {
		p += "?" + query
	}
	r := e.call(http.MethodGet, p, "").want(e.t, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		e.t.Errorf("Content-Type %q, want text/csv; charset=utf-8", ct)
	}
	if cd := r.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
		e.t.Errorf("Content-Disposition %q, want an attachment", cd)
	}
	if !bytes.HasSuffix(r.Body, []byte("\r\n")) {
		e.t.Errorf("CSV does not end in CRLF (RFC 4180): %q", r.Body)
	}
	first, _, _ := bytes.Cut(r.Body, []byte("\n"))
	if !bytes.HasSuffix(first, []byte("\r")) {
		e.t.Errorf("header line does not end in CRLF: %q", first)
	}
	recs, err := csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
	if err != nil {
		e.t.Fatalf("CSV does not parse: %v\n%s", err, r.Body)
	}
	if len(recs) == 0 || !slices.Equal(recs[0], wantCSVHeader) {
		e.t.Fatalf("header %q, want %q", recs, wantCSVHeader)
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, v := range rec {
			row[wantCSVHeader[i]] = v
		}
		rows = append(rows, row)
	}
	return rows
}

func csvIDs(rows []map[string]string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r["id"]
	}
	return out
}

func TestSessionsCSV(t *testing.T) {
	forStores(t, envConfig{geo: true}, func(t *testing.T, e *env) {
		d := e.day
		laptop := e.login(aliceLaptop).SessionID
		e.clock.Set(d.Add(10*time.Hour + 10*time.Minute))
		phone := e.login(alicePhone).SessionID
		e.clock.Set(d.Add(10*time.Hour + 25*time.Minute))
		e.logout(alicePhone)
		e.login(client{user: "bob", token: "tok-bob-csv-3c3c", ip: ipLondon, ua: uaFirefox, device: "devBobFirefox001"})

		rows := e.csvRows("alice", "")
		if got := csvIDs(rows); !slices.Equal(got, []string{phone, laptop}) {
			t.Fatalf("rows %v, want one per session of alice, newest first: %v", got, []string{phone, laptop})
		}
		want := map[string]string{
			"id": phone, "realm": e.realm, "user": "alice",
			"started_at": d.Add(10*time.Hour + 10*time.Minute).Format(time.RFC3339), "last_seen": d.Add(10*time.Hour + 10*time.Minute).Format(time.RFC3339),
			"ended_at": d.Add(10*time.Hour + 25*time.Minute).Format(time.RFC3339), "end_reason": "logout", "duration_seconds": "900",
			"ip": ipMilton, "city": "Milton", "region": "Washington", "country": "United States", "country_code": "US",
			"time_zone": "America/Los_Angeles", "latitude": "47.25", "longitude": "-122.31",
			"browser": "Mobile Safari", "browser_version": "17.1", "os": "iOS", "os_version": "17.1",
			"device_family": "iPhone", "device_type": "mobile", "device_id": alicePhone.device,
		}
		for col, v := range want {
			if rows[0][col] != v {
				t.Errorf("phone row %s = %q, want %q", col, rows[0][col], v)
			}
		}
		l := rows[1]
		if l["ended_at"] != "" || l["end_reason"] != "" || l["city"] != "London" || l["country_code"] != "GB" ||
			l["browser"] != "Chrome" || l["os"] != "Windows" || l["device_type"] != "desktop" || l["ip"] != ipLondon {
			t.Errorf("laptop row %v", l)
		}
		// Negative coordinates stay numbers, not neutralised text.
		for _, r := range rows {
			for _, col := range []string{"latitude", "longitude"} {
				if _, err := strconv.ParseFloat(r[col], 64); err != nil {
					t.Errorf("%s %q is not a number: %v", col, r[col], err)
				}
			}
		}
		if l["longitude"] != "-0.09" || l["latitude"] != "51.51" {
			t.Errorf("London at %s, %s; want 51.51, -0.09", l["latitude"], l["longitude"])
		}
	})
}

func TestSessionsCSVFromTo(t *testing.T) {
	e := newEnv(t, envConfig{})
	d := e.day
	day0, day1 := d.Format(time.DateOnly), d.AddDate(0, 0, 1).Format(time.DateOnly)
	s0 := e.login(aliceLaptop).SessionID // D 10:00
	e.clock.Set(d.Add(34 * time.Hour))   // D+1 10:00
	s1 := e.login(alicePhone).SessionID
	at := func(h int) string { return d.Add(time.Duration(h) * time.Hour).Format(time.RFC3339) }

	for q, want := range map[string][]string{
		"":                                {s1, s0},
		"from=" + day0:                    {s1, s0},
		"from=" + day1:                    {s1},
		"to=" + day0:                      {s0},
		"to=" + day1:                      {s1, s0},
		"from=" + day0 + "&to=" + day0:    {s0},
		"from=" + day1 + "&to=" + day0:    {},
		"from=" + at(10):                  {s1, s0},
		"from=" + at(11):                  {s1},
		"from=" + at(34):                  {s1},
		"to=" + at(33):                    {s0},
		"from=" + at(9) + "&to=" + at(11): {s0},
	} {
		if got := csvIDs(e.csvRows("alice", q)); !slices.Equal(got, want) {
			t.Errorf("sessions.csv?%s rows %v, want %v", q, got, want)
		}
	}
	for q, name := range map[string]string{
		"from=yesterday": "from", "from=2024-02-30": "from", "from=2024-01-01T00:00:00": "from",
		"to=tomorrow": "to", "to=01/02/2024": "to",
	} {
		e.call(http.MethodGet, e.path("alice", "sessions.csv")+"?"+q, "").wantErr(t, http.StatusBadRequest, name)
	}
	e.call(http.MethodGet, e.path("nobody", "sessions.csv"), "").wantErr(t, http.StatusNotFound, "user")
	e.call(http.MethodPost, e.path("alice", "sessions.csv"), "").wantErr(t, http.StatusMethodNotAllowed)
}

// TestSessionsCSVManyPages: the export reads the store page by page (500);
// every session comes out once.
func TestSessionsCSVManyPages(t *testing.T) {
	e := newEnv(t, envConfig{})
	const n = 1234
	want := make([]string, 0, n)
	for i := range n {
		c := aliceLaptop
		c.token = "tok-many-" + strconv.Itoa(i) + "-5e5e"
		want = append(want, e.login(c).SessionID)
		e.clock.Advance(time.Second)
		if i%100 == 99 {
			e.logout(c) // some closed ones too
		}
	}
	slices.Reverse(want)
	if got := csvIDs(e.csvRows("alice", "")); !slices.Equal(got, want) {
		t.Errorf("%d rows, want %d, each session once, newest first", len(got), len(want))
	}
}

// TestSessionsCSVInjection: user ids, user agents (through what uap-go keeps
// of them) and device ids are attacker-controlled; no cell may start a
// spreadsheet formula.
func TestSessionsCSVInjection(t *testing.T) {
	e := newEnv(t, envConfig{})
	const (
		uaSpider  = "-Spider"                            // browser "-Spider"
		uaAtFoo   = "@Foo/2.0 CFNetwork/1.0 Darwin/20.0" // browser "@Foo"
		uaAndroid = "Mozilla/5.0 (Linux; Android 14; =Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"
	)
	for i, c := range []struct {
		user, ua, device string
		want             map[string]string // column -> exact cell
	}{
		{`=HYPERLINK("http://x","click")`, uaChromeWin, "devInjection0001",
			map[string]string{"user": `'=HYPERLINK("http://x","click")`}},
		{"+1", uaSpider, "devInjection0002", map[string]string{"user": "'+1", "browser": "'-Spider"}},
		{"-2+3", uaAtFoo, "devInjection0003", map[string]string{"user": "'-2+3", "browser": "'@Foo"}},
		{"@SUM(1)", uaAndroid, "=cmd|'/C calc'!A0", map[string]string{"user": "'@SUM(1)", "device_family": "'=Pixel 8", "device_id": "'=cmd|'/C calc'!A0"}},
		{"\tX", uaChromeWin, "-devInjection005", map[string]string{"user": "'\tX", "device_id": "'-devInjection005"}},
		{"\rX", uaChromeWin, "+devInjection006", map[string]string{"device_id": "'+devInjection006"}},
		{"=1+2\r\n=3", uaChromeWin, "@devInjection007", map[string]string{"device_id": "'@devInjection007"}},
		{"plain", uaChromeWin, "devInjection0008", map[string]string{"user": "plain", "browser": "Chrome"}},
	} {
		t.Run(strconv.Quote(c.user), func(t *testing.T) {
			// No IP at all (ip_precision none, or a client without one).
			sid := e.login(client{user: c.user, token: "tok-inject-" + strconv.Itoa(i) + "-abab", ua: c.ua, device: c.device}).SessionID
			rows := e.csvRows(c.user, "")
			if len(rows) != 1 || rows[0]["id"] != sid {
				t.Fatalf("rows %v, want the one session %s", rows, sid)
			}
			row := rows[0]
			for col, v := range c.want {
				if row[col] != v {
					t.Errorf("%s cell %q, want %q", col, row[col], v)
				}
			}
			if !strings.HasPrefix(row["user"], "'") && c.user != "plain" {
				t.Errorf("user cell %q is not neutralised", row["user"])
			}
			if row["ip"] != "" || row["city"] != "" {
				t.Errorf("IP-less session: ip %q city %q", row["ip"], row["city"])
			}
			for col, v := range row {
				if csvNumericCols[col] {
					if v == "" {
						continue
					}
					_, errT := time.Parse(time.RFC3339, v)
					_, errF := strconv.ParseFloat(v, 64)
					if errT != nil && errF != nil {
						t.Errorf("numeric column %s holds %q", col, v)
					}
					continue
				}
				if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
					t.Errorf("%s cell %q starts a formula", col, v)
				}
			}
		})
	}
}

// TestSessionsCSVActiveDuration: an active session's duration must be
// counted on the tracker's clock (Config.Now), as activity/{date} does.
func TestSessionsCSVActiveDuration(t *testing.T) {
	e := newEnv(t, envConfig{})
	sid := e.login(aliceLaptop).SessionID
	at := e.clock.Advance(20 * time.Minute)
	e.observe(aliceLaptop)
	e.waitLastSeen("alice", sid, at)

	var day dayReport
	e.call(http.MethodGet, e.path("alice", "activity", e.day.Format(time.DateOnly)), "").want(t, http.StatusOK).decode(t, &day)
	if len(day.Sessions) != 1 || day.Sessions[0].DurationSec != 1200 {
		t.Fatalf("activity day %+v, want one session of 1200 s", day)
	}
	rows := e.csvRows("alice", "")
	if len(rows) != 1 || rows[0]["ended_at"] != "" {
		t.Fatalf("rows %v", rows)
	}
	if got := rows[0]["duration_seconds"]; got != "1200" {
		t.Errorf("CSV duration_seconds of the active session = %s, want 1200 (the activity API's duration, on the tracker clock)", got)
	}
}
