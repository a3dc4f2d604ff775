package admin

import (
	"context"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// Clients of the tests. Device ids have the 16 characters of real ones.
var (
	aliceLaptop = client{user: "alice", token: "tok-alice-laptop-7f3a9c21e", ip: ipLondon, ua: uaChromeWin, device: "devAliceLaptop01"}
	alicePhone  = client{user: "alice", token: "tok-alice-phone-0b8e44d1a", ip: ipMilton, ua: uaIPhone, device: "devAlicePhone001"}
	aliceMac    = client{user: "alice", token: "tok-alice-mac-93d1f0aa7", ip: "198.51.100.7", ua: uaFirefox, device: "devAliceMacbook1"}
)

func TestRealmsListAndRegistry(t *testing.T) {
	e := newEnv(t, envConfig{})
	var body struct {
		Realms []string `json:"realms"`
	}
	e.call(http.MethodGet, "/sessions/", "").want(t, http.StatusOK).decode(t, &body)
	if !slices.Contains(body.Realms, e.realm) {
		t.Errorf("realms %v do not list %q", body.Realms, e.realm)
	}
	e.call(http.MethodPost, "/sessions/", "{}").wantErr(t, http.StatusMethodNotAllowed, "POST")

	// Of handlers registered for a realm on one store, the newest answers
	// (a reload); unregistering it brings the older one back.
	e.login(aliceLaptop)
	other, err := tracker.New(tracker.Config{Store: redisstore.NewMemory(), Keys: e.keys, Policy: testPolicy, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	unregister := Register(e.realm, envStore, other)
	e.call(http.MethodGet, e.path("alice"), "").wantErr(t, http.StatusNotFound, "user")
	unregister()
	unregister() // idempotent
	e.call(http.MethodGet, e.path("alice"), "").want(t, http.StatusOK)

	// A realm served on two different stores is ambiguous: no answer
	// from one of them, but a 409 saying why.
	unregister = Register(e.realm, "another-store", other)
	e.call(http.MethodGet, e.path("alice"), "").wantErr(t, http.StatusConflict, "different stores")
	unregister()
	e.call(http.MethodGet, e.path("alice"), "").want(t, http.StatusOK)
}

func TestWildcardRealm(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.call(http.MethodGet, "/sessions/any.example.net/users/alice/sessions", "").wantErr(t, http.StatusNotFound, "unknown realm")
	unregister := Register(Wildcard, envStore, e.tr)
	defer unregister()
	// The wildcard tracker now answers for the realm: alice is simply
	// unknown there.
	e.call(http.MethodGet, "/sessions/any.example.net/users/alice/sessions", "").wantErr(t, http.StatusNotFound, "user not found")
}

func TestSessionsList(t *testing.T) {
	forStores(t, envConfig{geo: true}, func(t *testing.T, e *env) {
		laptop := e.login(aliceLaptop)
		e.clock.Advance(time.Minute)
		phone := e.login(alicePhone)
		e.clock.Advance(time.Minute)
		mac := e.login(aliceMac)
		e.clock.Advance(time.Minute)
		e.logout(aliceMac)

		pg := e.sessions("alice", "")
		if got, want := ids(pg.Sessions), []string{phone.SessionID, laptop.SessionID}; !slices.Equal(got, want) {
			t.Fatalf("default (active) sessions %v, want %v newest first", got, want)
		}
		if pg.Total != 2 || pg.Offset != 0 || pg.Limit != 50 || pg.NextOffset != nil {
			t.Errorf("total %d offset %d limit %d next %v, want 2 0 50 none", pg.Total, pg.Offset, pg.Limit, pg.NextOffset)
		}
		l := findSession(pg.Sessions, laptop.SessionID)
		if l.User != "alice" || l.Realm != e.realm || l.IP != ipLondon || l.DeviceID != aliceLaptop.device || l.EndedAt != nil {
			t.Errorf("laptop session %+v", *l)
		}
		if l.Agent.Browser != "Chrome" || l.Agent.OS != "Windows" || l.Agent.DeviceType != "desktop" {
			t.Errorf("laptop agent %+v", l.Agent)
		}
		if l.Location.City != "London" || l.Location.TimeZone != "Europe/London" || l.Location.Longitude == nil {
			t.Errorf("laptop location %+v", l.Location)
		}
		if !l.StartedAt.Equal(e.day.Add(10 * time.Hour)) {
			t.Errorf("laptop started_at %v, want %v", l.StartedAt, e.day.Add(10*time.Hour))
		}
		p := findSession(pg.Sessions, phone.SessionID)
		if p.Agent.DeviceType != "mobile" || p.Location.City != "Milton" || p.Location.CountryCode != "US" {
			t.Errorf("phone session %+v", *p)
		}

		closed := e.sessions("alice", "state=closed")
		if got := ids(closed.Sessions); !slices.Equal(got, []string{mac.SessionID}) || closed.Total != 1 {
			t.Fatalf("closed sessions %v (total %d), want [%s]", got, closed.Total, mac.SessionID)
		}
		if s := closed.Sessions[0]; s.EndReason != store.EndLogout || s.EndedAt == nil || !s.EndedAt.Equal(e.clock.Now()) {
			t.Errorf("closed session end %v %q, want %v logout", s.EndedAt, s.EndReason, e.clock.Now())
		}

		all := e.sessions("alice", "state=all")
		if got, want := ids(all.Sessions), []string{mac.SessionID, phone.SessionID, laptop.SessionID}; !slices.Equal(got, want) {
			t.Errorf("all sessions %v, want %v", got, want)
		}
		if active := e.sessions("alice", "state=active"); active.Total != 2 {
			t.Errorf("state=active total %d, want 2", active.Total)
		}

		e.call(http.MethodGet, e.path("alice", "sessions")+"?state=open", "").wantErr(t, http.StatusBadRequest, "state", "open")
	})
}

func TestSessionsPaging(t *testing.T) {
	e := newEnv(t, envConfig{})
	var want []string
	for i := range 7 {
		c := aliceLaptop
		c.token = "tok-paging-" + string(rune('a'+i)) + "-5d1c8e"
		want = append([]string{e.login(c).SessionID}, want...) // newest first
		e.clock.Advance(time.Minute)
	}
	var got []string
	next := 0
	for pages := 0; ; pages++ {
		pg := e.sessions("alice", "limit=3&offset="+itoa(next))
		if pg.Total != 7 || pg.Limit != 3 || pg.Offset != next {
			t.Fatalf("page at %d: total %d limit %d offset %d", next, pg.Total, pg.Limit, pg.Offset)
		}
		got = append(got, ids(pg.Sessions)...)
		if pg.NextOffset == nil {
			if len(pg.Sessions) != 1 {
				t.Errorf("last page has %d sessions, want 1", len(pg.Sessions))
			}
			break
		}
		if len(pg.Sessions) != 3 || *pg.NextOffset != next+3 {
			t.Fatalf("page at %d: %d sessions, next_offset %d", next, len(pg.Sessions), *pg.NextOffset)
		}
		next = *pg.NextOffset
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged ids %v, want %v", got, want)
	}
	if pg := e.sessions("alice", "offset=10"); len(pg.Sessions) != 0 || pg.Total != 7 || pg.NextOffset != nil {
		t.Errorf("offset past the end: %d sessions, total %d, next %v", len(pg.Sessions), pg.Total, pg.NextOffset)
	}
	if pg := e.sessions("alice", "limit=500"); len(pg.Sessions) != 7 || pg.Limit != 500 {
		t.Errorf("limit=500: %d sessions, limit %d", len(pg.Sessions), pg.Limit)
	}
	if pg := e.sessions("alice", "limit=0"); pg.Limit != 50 {
		t.Errorf("limit=0 gives limit %d, want the default 50", pg.Limit)
	}
	for q, name := range map[string]string{
		"limit=501": "limit", "limit=100000": "limit", "limit=-1": "limit", "limit=ten": "limit",
		"offset=-1": "offset", "offset=x": "offset",
	} {
		e.call(http.MethodGet, e.path("alice", "sessions")+"?"+q, "").wantErr(t, http.StatusBadRequest, name)
	}
}

func TestRevokeSession(t *testing.T) {
	forStores(t, envConfig{}, func(t *testing.T, e *env) {
		laptop := e.login(aliceLaptop)
		e.clock.Advance(time.Minute)
		phone := e.login(alicePhone)
		e.clock.Advance(time.Minute)

		var s apiSession
		e.call(http.MethodDelete, e.path("alice", "sessions", laptop.SessionID), "").want(t, http.StatusOK).decode(t, &s)
		if s.ID != laptop.SessionID || s.EndReason != store.EndRevoked || s.EndedAt == nil || !s.EndedAt.Equal(e.clock.Now()) {
			t.Fatalf("revoked session %+v, want ended now as revoked", s)
		}
		if res := e.observe(aliceLaptop); !res.Refused || res.Reason != store.EndRevoked {
			t.Errorf("the revoked token was not refused: %+v", res)
		}
		e.clock.Advance(time.Minute) // past the cache's refresh: the store is asked
		if res := e.observe(aliceLaptop); !res.Refused || res.Reason != store.EndRevoked {
			t.Errorf("the revoked token was not refused a minute later: %+v", res)
		}
		if res := e.observe(alicePhone); res.Refused || res.SessionID != phone.SessionID {
			t.Errorf("the other session was disturbed: %+v", res)
		}
		if got := ids(e.sessions("alice", "").Sessions); !slices.Equal(got, []string{phone.SessionID}) {
			t.Errorf("active sessions %v, want only the phone", got)
		}

		// Revoking an ended session changes nothing.
		var again apiSession
		e.call(http.MethodDelete, e.path("alice", "sessions", laptop.SessionID), "").want(t, http.StatusOK).decode(t, &again)
		if again.EndReason != store.EndRevoked || again.EndedAt == nil || !again.EndedAt.Equal(*s.EndedAt) {
			t.Errorf("revoking again changed the session: %+v", again)
		}

		e.call(http.MethodDelete, e.path("alice", "sessions", "nosuchsession0000"), "").wantErr(t, http.StatusNotFound, "session")
		e.call(http.MethodDelete, e.path("nobody", "sessions", phone.SessionID), "").wantErr(t, http.StatusNotFound, "session")
	})
}

func TestRevokeAllSessions(t *testing.T) {
	forStores(t, envConfig{}, func(t *testing.T, e *env) {
		laptop := e.login(aliceLaptop)
		phone := e.login(alicePhone)
		e.login(aliceMac)
		e.logout(aliceMac)
		e.clock.Advance(time.Minute)

		var body struct {
			Revoked []apiSession `json:"revoked"`
		}
		e.call(http.MethodDelete, e.path("alice", "sessions"), "").want(t, http.StatusOK).decode(t, &body)
		got := ids(body.Revoked)
		slices.Sort(got)
		want := []string{laptop.SessionID, phone.SessionID}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("revoked %v, want the two active sessions %v", got, want)
		}
		for _, s := range body.Revoked {
			if s.EndReason != store.EndRevoked || s.EndedAt == nil {
				t.Errorf("revoked session %+v", s)
			}
		}
		for _, c := range []client{aliceLaptop, alicePhone} {
			if res := e.observe(c); !res.Refused || res.Reason != store.EndRevoked {
				t.Errorf("%s not refused after revoke all: %+v", c.token, res)
			}
		}
		r := e.call(http.MethodGet, e.path("alice", "sessions"), "").want(t, http.StatusOK)
		if !strings.Contains(string(r.Body), `"sessions":[]`) || !strings.Contains(string(r.Body), `"total":0`) {
			t.Errorf("active sessions after revoke all: %s, want an empty list", r.Body)
		}
		if pg := e.sessions("alice", "state=closed"); pg.Total != 3 {
			t.Errorf("%d closed sessions, want 3", pg.Total)
		}
		r = e.call(http.MethodDelete, e.path("alice", "sessions"), "").want(t, http.StatusOK)
		if !strings.Contains(string(r.Body), `"revoked":[]`) {
			t.Errorf("revoking nothing answers %s, want an empty list", r.Body)
		}
	})
}

// TestMethodNotAllowed checks every endpoint's 405 and that its message
// offers exactly the methods the endpoint takes.
func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, envConfig{})
	sid := e.login(aliceLaptop).SessionID
	for _, c := range []struct {
		method, path, allowed string
	}{
		{http.MethodPost, "/sessions/", "GET"},
		{http.MethodPost, e.realmPath("users"), "GET"},
		{http.MethodDelete, e.realmPath("settings"), "GET, PUT, PATCH"},
		{http.MethodPost, e.path("alice"), "GET, DELETE"},
		{http.MethodPut, e.path("alice", "sessions"), "GET, DELETE"},
		{http.MethodPost, e.path("alice", "sessions"), "GET, DELETE"},
		{http.MethodGet, e.path("alice", "sessions", sid), "DELETE"},
		{http.MethodPatch, e.path("alice", "sessions", sid), "DELETE"},
		{http.MethodPost, e.path("alice", "devices"), "GET"},
		{http.MethodGet, e.path("alice", "devices", aliceLaptop.device), "PUT"},
		{http.MethodDelete, e.path("alice", "violations"), "GET, PATCH"},
		{http.MethodGet, e.path("alice", "violations", "1-1"), "PATCH"},
		{http.MethodGet, e.path("alice", "exempt"), "PUT"},
		{http.MethodGet, e.path("alice", "limits"), "PUT"},
		{http.MethodPost, e.path("alice", "activity"), "GET"},
		{http.MethodPost, e.path("alice", "sessions.csv"), "GET"},
		{http.MethodDelete, e.path("alice", "export"), "GET"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			msg := e.call(c.method, c.path, "{}").wantErr(t, http.StatusMethodNotAllowed, c.method)
			if _, offered, _ := strings.Cut(msg, "; use "); offered != c.allowed {
				t.Errorf("405 %q offers %q, want %q", msg, offered, c.allowed)
			}
		})
	}
	// Nothing was changed by the refused requests.
	if pg := e.sessions("alice", ""); pg.Total != 1 {
		t.Errorf("%d active sessions, want 1", pg.Total)
	}
}

func TestUnknownRealmAndEndpoint(t *testing.T) {
	e := newEnv(t, envConfig{})
	sid := e.login(aliceLaptop).SessionID
	e.call(http.MethodGet, "/sessions/nosuch.example.org/users/alice/sessions", "").wantErr(t, http.StatusNotFound, "unknown realm", "nosuch.example.org")
	e.call(http.MethodDelete, "/sessions/nosuch.example.org/users/alice/sessions/"+sid, "").wantErr(t, http.StatusNotFound, "unknown realm")
	e.call(http.MethodGet, "/sessions/nosuch.example.org/settings", "").wantErr(t, http.StatusNotFound, "unknown realm")
	for _, p := range []string{
		"/sessions/" + e.realm,
		"/sessions/" + e.realm + "/",
		e.realmPath("nothing"),
		e.realmPath("user"),
		e.path("alice", "bogus"),
		e.path("alice", "sessions", sid, "extra"),
		e.path("alice", "devices", aliceLaptop.device, "extra"),
		e.path("alice", "violations", "a", "b"),
		e.path("alice", "exempt", "x"),
		e.path("alice", "limits", "x"),
		e.path("alice", "activity", "2024-01-01", "x"),
		e.path("alice", "export", "x"),
		e.path("alice", "sessions.csv", "x"),
	} {
		method := http.MethodGet
		switch {
		case strings.Contains(p, "/devices/") || strings.Contains(p, "/exempt/") || strings.Contains(p, "/limits/"):
			method = http.MethodPut
		case strings.Contains(p, "/violations/"):
			method = http.MethodPatch
		}
		t.Run(method+" "+p, func(t *testing.T) {
			e.call(method, p, `{"blocked":true,"viewed":true,"exempt":true}`).wantErr(t, http.StatusNotFound, "no such endpoint")
		})
	}
}

func TestEscapedUserIDs(t *testing.T) {
	e := newEnv(t, envConfig{})
	for i, user := range []string{"team/alice", "Zoë 李 😀", "a?b#c;d%e&f=g", "..", "with space/and/slashes/"} {
		t.Run(user, func(t *testing.T) {
			c := aliceLaptop
			c.user, c.token = user, "tok-"+itoa(i)+"-escaped-8a7b6c"
			sid := e.login(c).SessionID
			pg := e.sessions(user, "")
			if pg.Total != 1 || pg.Sessions[0].User != user || pg.Sessions[0].ID != sid {
				t.Fatalf("sessions of %q: %+v", user, pg)
			}
			var sum store.UserSummary
			e.call(http.MethodGet, e.path(user), "").want(t, http.StatusOK).decode(t, &sum)
			if sum.User != user || sum.ActiveSessions != 1 {
				t.Errorf("summary %+v", sum)
			}
			var devs struct {
				Devices []store.Device `json:"devices"`
			}
			e.call(http.MethodGet, e.path(user, "devices"), "").want(t, http.StatusOK).decode(t, &devs)
			if len(devs.Devices) != 1 || devs.Devices[0].User != user {
				t.Errorf("devices %+v", devs.Devices)
			}
			var s apiSession
			e.call(http.MethodDelete, e.path(user, "sessions", sid), "").want(t, http.StatusOK).decode(t, &s)
			if s.User != user || s.EndReason != store.EndRevoked {
				t.Errorf("revoked %+v", s)
			}
		})
	}
	// "team" is not "team/alice".
	e.call(http.MethodGet, e.path("team"), "").wantErr(t, http.StatusNotFound, "user")
	var list struct {
		Users []store.UserSummary `json:"users"`
	}
	e.call(http.MethodGet, e.realmPath("users")+"?prefix=team%2F", "").want(t, http.StatusOK).decode(t, &list)
	if len(list.Users) != 1 || list.Users[0].User != "team/alice" {
		t.Errorf("prefix team/ lists %+v", list.Users)
	}
}

// TestUnknownUser404: the README promises 404 for an unknown user on every
// per-user endpoint, whatever it is asked.
func TestUnknownUser404(t *testing.T) {
	e := newEnv(t, envConfig{})
	sid := e.login(aliceLaptop).SessionID
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, e.path("nobody"), ""},
		{http.MethodDelete, e.path("nobody"), ""},
		{http.MethodGet, e.path("nobody", "sessions"), ""},
		{http.MethodDelete, e.path("nobody", "sessions"), ""},
		{http.MethodDelete, e.path("nobody", "sessions", sid), ""},
		{http.MethodGet, e.path("nobody", "devices"), ""},
		{http.MethodPut, e.path("nobody", "devices", aliceLaptop.device), `{"blocked": true}`},
		{http.MethodGet, e.path("nobody", "violations"), ""},
		{http.MethodPatch, e.path("nobody", "violations"), `{"viewed": true}`},
		{http.MethodPatch, e.path("nobody", "violations", "1-1"), `{"viewed": true}`},
		{http.MethodPut, e.path("nobody", "exempt"), `{"exempt": true}`},
		{http.MethodPut, e.path("nobody", "limits"), `{"max_sessions": {"max": 1}}`},
		{http.MethodGet, e.path("nobody", "activity"), ""},
		{http.MethodGet, e.path("nobody", "activity", "2024-01-01"), ""},
		{http.MethodGet, e.path("nobody", "sessions.csv"), ""},
		{http.MethodGet, e.path("nobody", "export"), ""},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			e.call(c.method, c.path, c.body).wantErr(t, http.StatusNotFound, "not found")
		})
	}
	if _, err := e.tr.User(context.Background(), e.realm, "nobody"); err == nil {
		t.Error("requests about an unknown user created it")
	}
	if pg := e.sessions("alice", ""); pg.Total != 1 || pg.Sessions[0].ID != sid {
		t.Errorf("alice's session was touched: %+v", pg)
	}
}

type usersPage struct {
	Users      []store.UserSummary `json:"users"`
	Total      int                 `json:"total"`
	NextOffset *int                `json:"next_offset"`
}

func userNames(p usersPage) []string {
	out := make([]string, len(p.Users))
	for i, u := range p.Users {
		out[i] = u.User
	}
	return out
}

func TestUsersList(t *testing.T) {
	e := newEnv(t, envConfig{limits: restrict.Limits{IPs: &restrict.Limit{Max: 2, Window: restrict.Duration(24 * time.Hour)}}})
	t0 := e.clock.Now()
	e.login(client{user: "alice", token: "tok-users-alice-1", ip: "198.51.100.1", ua: uaChromeWin, device: "devUsersAlice001"})
	e.clock.Advance(time.Minute)
	bob := client{user: "bob", token: "tok-users-bob-1", ip: "198.51.100.2", ua: uaFirefox, device: "devUsersBob00001"}
	e.login(bob)
	e.clock.Advance(time.Minute)
	e.logout(bob)
	e.clock.Advance(time.Minute)
	e.login(client{user: "carol", token: "tok-users-carol-1", ip: "203.0.113.1", ua: uaChromeWin, device: "devUsersCarol001"})
	e.login(client{user: "carol", token: "tok-users-carol-2", ip: "203.0.113.2", ua: uaIPhone, device: "devUsersCarol002"})
	e.clock.Advance(time.Minute)
	if res := e.login(client{user: "carol", token: "tok-users-carol-3", ip: "203.0.113.3", ua: uaFirefox, device: "devUsersCarol003"}); !res.Refused {
		t.Fatalf("carol's third IP was not refused: %+v", res)
	}
	e.clock.Advance(time.Minute)
	e.login(client{user: "albert", token: "tok-users-albert-1", ip: "198.51.100.9", ua: uaIPhone, device: "devUsersAlbert01"})

	list := func(q string) usersPage {
		t.Helper()
		var p usersPage
		path := e.realmPath("users")
		if q != "" {
			path += "?" + q
		}
		e.call(http.MethodGet, path, "").want(t, http.StatusOK).decode(t, &p)
		return p
	}
	all := list("")
	if got, want := userNames(all), []string{"albert", "carol", "bob", "alice"}; !slices.Equal(got, want) || all.Total != 4 {
		t.Fatalf("users %v (total %d), want %v by last activity", got, all.Total, want)
	}
	byName := map[string]store.UserSummary{}
	for _, u := range all.Users {
		byName[u.User] = u
	}
	if c := byName["carol"]; c.ActiveSessions != 2 || c.Devices != 2 || c.UnviewedViolations != 1 || c.Exempt {
		t.Errorf("carol %+v", c)
	}
	if b := byName["bob"]; b.ActiveSessions != 0 || b.Devices != 1 || b.UnviewedViolations != 0 {
		t.Errorf("bob %+v", b)
	}
	if a := byName["alice"]; !a.LastActivity.Equal(t0) || a.ActiveSessions != 1 {
		t.Errorf("alice %+v, want last activity %v", a, t0)
	}

	for q, want := range map[string][]string{
		"prefix=al":                       {"albert", "alice"},
		"prefix=AL":                       {},
		"prefix=carol":                    {"carol"},
		"violations=unviewed":             {"carol"},
		"active=true":                     {"albert", "carol", "alice"},
		"active=false":                    {"albert", "carol", "bob", "alice"},
		"active=true&prefix=b":            {},
		"active=true&violations=unviewed": {"carol"},
		"limit=2&offset=2":                {"bob", "alice"},
	} {
		if got := userNames(list(q)); !slices.Equal(got, want) {
			t.Errorf("users?%s = %v, want %v", q, got, want)
		}
	}
	p := list("limit=2")
	if len(p.Users) != 2 || p.Total != 4 || p.NextOffset == nil || *p.NextOffset != 2 {
		t.Errorf("limit=2: %v total %d next %v", userNames(p), p.Total, p.NextOffset)
	}

	for q, name := range map[string]string{
		"violations=yes": "violations", "violations=true": "violations", "active=yes": "active", "active=1": "active",
		"limit=501": "limit", "offset=x": "offset",
	} {
		e.call(http.MethodGet, e.realmPath("users")+"?"+q, "").wantErr(t, http.StatusBadRequest, name)
	}
}

type devicesBody struct {
	Devices []store.Device `json:"devices"`
}

func TestDevices(t *testing.T) {
	forStores(t, envConfig{}, func(t *testing.T, e *env) {
		e.login(aliceLaptop)
		e.clock.Advance(time.Minute)
		phone := e.login(alicePhone)
		e.clock.Advance(time.Minute)
		laptop2 := aliceLaptop
		laptop2.token = "tok-alice-laptop-second-51c0"
		e.login(laptop2) // a second session of the same browser
		e.login(client{user: "bob", token: "tok-bob-1-77aa", ip: "198.51.100.3", ua: uaFirefox, device: "devBobFirefox001"})

		var devs devicesBody
		e.call(http.MethodGet, e.path("alice", "devices"), "").want(t, http.StatusOK).decode(t, &devs)
		if len(devs.Devices) != 2 || devs.Devices[0].ID != aliceLaptop.device || devs.Devices[1].ID != alicePhone.device {
			t.Fatalf("devices %+v, want laptop then phone", devs.Devices)
		}
		if d := devs.Devices[1]; d.User != "alice" || d.Agent.DeviceType != "mobile" || d.LastIP != ipMilton || d.Blocked ||
			!d.FirstSeen.Equal(e.day.Add(10*time.Hour+time.Minute)) {
			t.Errorf("phone device %+v", d)
		}
		e.call(http.MethodGet, e.path("nobody", "devices"), "").wantErr(t, http.StatusNotFound, "user")

		e.clock.Advance(time.Minute)
		var blocked struct {
			Device  string       `json:"device"`
			Blocked bool         `json:"blocked"`
			Ended   []apiSession `json:"ended_sessions"`
		}
		e.call(http.MethodPut, e.path("alice", "devices", aliceLaptop.device), `{"blocked": true}`).want(t, http.StatusOK).decode(t, &blocked)
		if blocked.Device != aliceLaptop.device || !blocked.Blocked || len(blocked.Ended) != 2 {
			t.Fatalf("block answer %+v, want both laptop sessions ended", blocked)
		}
		for _, s := range blocked.Ended {
			if s.EndReason != store.EndDeviceBlocked || s.DeviceID != aliceLaptop.device {
				t.Errorf("ended session %+v", s)
			}
		}
		for _, c := range []client{aliceLaptop, laptop2} {
			if res := e.observe(c); !res.Refused || res.Reason != store.EndDeviceBlocked {
				t.Errorf("%s from the blocked device not refused: %+v", c.token, res)
			}
		}
		laptop3 := aliceLaptop
		laptop3.token = "tok-alice-laptop-third-0e9d"
		if res := e.login(laptop3); !res.Refused || res.Reason != store.EndDeviceBlocked {
			t.Errorf("a new login from the blocked device was not refused: %+v", res)
		}
		if res := e.observe(alicePhone); res.Refused || res.SessionID != phone.SessionID {
			t.Errorf("the phone was disturbed: %+v", res)
		}
		e.call(http.MethodGet, e.path("alice", "devices"), "").want(t, http.StatusOK).decode(t, &devs)
		for _, d := range devs.Devices {
			if d.Blocked != (d.ID == aliceLaptop.device) {
				t.Errorf("device %s blocked=%v", d.ID, d.Blocked)
			}
		}
		if pg := e.sessions("alice", "state=closed"); pg.Total != 2 || pg.Sessions[0].EndReason != store.EndDeviceBlocked {
			t.Errorf("closed sessions after block: %+v", pg.Sessions)
		}

		e.clock.Advance(time.Minute)
		e.call(http.MethodPut, e.path("alice", "devices", aliceLaptop.device), `{"blocked": false}`).want(t, http.StatusOK).decode(t, &blocked)
		if blocked.Blocked || len(blocked.Ended) != 0 {
			t.Errorf("unblock answer %+v", blocked)
		}
		if res := e.observe(aliceLaptop); res.Refused || !res.New {
			t.Errorf("after unblocking, the laptop is still refused: %+v", res)
		}
		e.call(http.MethodGet, e.path("alice", "devices"), "").want(t, http.StatusOK).decode(t, &devs)
		for _, d := range devs.Devices {
			if d.Blocked {
				t.Errorf("device %s still blocked", d.ID)
			}
		}

		e.call(http.MethodPut, e.path("alice", "devices", "devNoSuchDevice1"), `{"blocked": true}`).wantErr(t, http.StatusNotFound, "device")
		e.call(http.MethodPut, e.path("nobody", "devices", aliceLaptop.device), `{"blocked": true}`).wantErr(t, http.StatusNotFound)
		// Another user's device is not found under bob.
		e.call(http.MethodPut, e.path("bob", "devices", alicePhone.device), `{"blocked": true}`).wantErr(t, http.StatusNotFound, "device")
		if res := e.observe(alicePhone); res.Refused {
			t.Errorf("blocking alice's device under bob touched alice: %+v", res)
		}
	})
}

func TestDeviceBadBodies(t *testing.T) {
	e := newEnv(t, envConfig{})
	sid := e.login(aliceLaptop).SessionID
	for _, c := range []struct {
		body  string
		names []string
	}{
		{`{"blocked":"yes"}`, []string{"blocked"}},
		{`{"blocked":1}`, []string{"blocked"}},
		{`{}`, []string{"blocked"}},
		{`{"blocked":null}`, []string{"blocked"}},
		{`{"blocked":true,"until":"tomorrow"}`, []string{"until"}},
		{`{"Blocked":true,"reason":"stolen"}`, []string{"reason"}},
		{`blocked=true`, nil},
		{`{"blocked":true`, nil},
		{`[true]`, nil},
		{``, nil},
	} {
		t.Run(c.body, func(t *testing.T) {
			e.call(http.MethodPut, e.path("alice", "devices", aliceLaptop.device), c.body).wantErr(t, http.StatusBadRequest, c.names...)
		})
	}
	var devs devicesBody
	e.call(http.MethodGet, e.path("alice", "devices"), "").want(t, http.StatusOK).decode(t, &devs)
	if len(devs.Devices) != 1 || devs.Devices[0].Blocked {
		t.Errorf("a bad body changed the device: %+v", devs.Devices)
	}
	if got := ids(e.sessions("alice", "").Sessions); !slices.Equal(got, []string{sid}) {
		t.Errorf("a bad body ended sessions: %v", got)
	}
}

type violationsPage struct {
	Violations []restrict.Violation `json:"violations"`
	Total      int                  `json:"total"`
	NextOffset *int                 `json:"next_offset"`
}

func TestViolations(t *testing.T) {
	cfg := envConfig{limits: restrict.Limits{IPs: &restrict.Limit{Max: 2, Window: restrict.Duration(24 * time.Hour)}}}
	forStores(t, cfg, func(t *testing.T, e *env) {
		carol := func(i int) client {
			n := itoa(i)
			return client{user: "carol", token: "tok-carol-" + n + "-c0ffee", ip: "203.0.113." + n, ua: uaChromeWin, device: "devCarolBrowser" + n}
		}
		e.login(carol(1))
		e.clock.Advance(time.Minute)
		e.login(carol(2))
		e.clock.Advance(time.Minute)
		if res := e.login(carol(3)); !res.Refused || res.Reason != restrict.PolicyIPs {
			t.Fatalf("third IP not refused: %+v", res)
		}
		e.clock.Advance(time.Minute)
		if res := e.login(carol(4)); !res.Refused {
			t.Fatalf("fourth IP not refused: %+v", res)
		}
		e.login(aliceLaptop)

		var vp violationsPage
		e.call(http.MethodGet, e.path("carol", "violations"), "").want(t, http.StatusOK).decode(t, &vp)
		if vp.Total != 2 || len(vp.Violations) != 2 {
			t.Fatalf("violations %+v, want 2", vp)
		}
		v4, v3 := vp.Violations[0], vp.Violations[1]
		if v4.IP != "203.0.113.4" || v3.IP != "203.0.113.3" {
			t.Errorf("violations not newest first: %s, %s", v4.IP, v3.IP)
		}
		if v3.User != "carol" || v3.Policy != restrict.PolicyIPs || v3.Limit != 2 || v3.Observed != 3 ||
			v3.Action != restrict.ActionBlock || v3.Viewed || v3.Device != carol(3).device || v3.ID == "" ||
			!v3.Time.Equal(e.day.Add(10*time.Hour+2*time.Minute)) {
			t.Errorf("violation %+v", v3)
		}
		var one violationsPage
		e.call(http.MethodGet, e.path("carol", "violations")+"?limit=1", "").want(t, http.StatusOK).decode(t, &one)
		if len(one.Violations) != 1 || one.NextOffset == nil || *one.NextOffset != 1 {
			t.Errorf("limit=1 page %+v", one)
		}

		var left struct {
			Unviewed *int `json:"unviewed_violations"`
		}
		e.call(http.MethodPatch, e.path("carol", "violations", v3.ID), `{"viewed": true}`).want(t, http.StatusOK).decode(t, &left)
		if left.Unviewed == nil || *left.Unviewed != 1 {
			t.Errorf("after marking one: %+v", left)
		}
		e.call(http.MethodGet, e.path("carol", "violations"), "").want(t, http.StatusOK).decode(t, &vp)
		if !vp.Violations[1].Viewed || vp.Violations[0].Viewed {
			t.Errorf("viewed flags %v %v, want false true", vp.Violations[0].Viewed, vp.Violations[1].Viewed)
		}

		for body, names := range map[string][]string{
			`{"viewed": false}`:             {"viewed"},
			`{}`:                            {"viewed"},
			`{"viewed": "yes"}`:             {"viewed"},
			`{"viewed": true, "note": "x"}`: {"note"},
			`viewed`:                        nil,
		} {
			e.call(http.MethodPatch, e.path("carol", "violations", v4.ID), body).wantErr(t, http.StatusBadRequest, names...)
			e.call(http.MethodPatch, e.path("carol", "violations"), body).wantErr(t, http.StatusBadRequest, names...)
		}
		e.call(http.MethodPatch, e.path("carol", "violations", "0-0"), `{"viewed": true}`).wantErr(t, http.StatusNotFound, "violation")
		e.call(http.MethodPatch, e.path("alice", "violations", v4.ID), `{"viewed": true}`).wantErr(t, http.StatusNotFound, "violation")
		e.call(http.MethodPatch, e.path("nobody", "violations"), `{"viewed": true}`).wantErr(t, http.StatusNotFound, "user")
		e.call(http.MethodGet, e.path("nobody", "violations"), "").wantErr(t, http.StatusNotFound, "user")

		var users usersPage
		e.call(http.MethodGet, e.realmPath("users")+"?violations=unviewed", "").want(t, http.StatusOK).decode(t, &users)
		if got := userNames(users); !slices.Equal(got, []string{"carol"}) {
			t.Errorf("users with unviewed violations %v", got)
		}
		e.call(http.MethodPatch, e.path("carol", "violations"), `{"viewed": true}`).want(t, http.StatusOK).decode(t, &left)
		if left.Unviewed == nil || *left.Unviewed != 0 {
			t.Errorf("after marking all: %+v", left)
		}
		e.call(http.MethodGet, e.realmPath("users")+"?violations=unviewed", "").want(t, http.StatusOK).decode(t, &users)
		if len(users.Users) != 0 {
			t.Errorf("users with unviewed violations after marking all: %v", userNames(users))
		}
		e.call(http.MethodGet, e.path("carol", "violations"), "").want(t, http.StatusOK).decode(t, &vp)
		for _, v := range vp.Violations {
			if !v.Viewed {
				t.Errorf("violation %s not viewed", v.ID)
			}
		}

		// Viewed never changes a restriction: the refused IP stays
		// refused, the admitted ones stay admitted.
		e.clock.Advance(time.Minute) // past the cached refusal
		if res := e.observe(carol(3)); !res.Refused || res.Reason != restrict.PolicyIPs {
			t.Errorf("after marking viewed, the refused IP passes: %+v", res)
		}
		if res := e.observe(carol(1)); res.Refused {
			t.Errorf("an admitted IP is refused: %+v", res)
		}
	})
}

func TestExempt(t *testing.T) {
	e := newEnv(t, envConfig{limits: restrict.Limits{IPs: &restrict.Limit{Max: 1, Window: restrict.Duration(24 * time.Hour)}}})
	d1 := client{user: "dave", token: "tok-dave-1-aa11", ip: "203.0.113.11", ua: uaChromeWin, device: "devDaveBrowser01"}
	d2 := client{user: "dave", token: "tok-dave-2-bb22", ip: "203.0.113.12", ua: uaIPhone, device: "devDaveBrowser02"}
	d3 := client{user: "dave", token: "tok-dave-3-cc33", ip: "203.0.113.13", ua: uaFirefox, device: "devDaveBrowser03"}
	e.login(d1)
	if res := e.login(d2); !res.Refused {
		t.Fatalf("second IP admitted: %+v", res)
	}

	var ans struct {
		User   string `json:"user"`
		Exempt *bool  `json:"exempt"`
	}
	e.call(http.MethodPut, e.path("dave", "exempt"), `{"exempt": true}`).want(t, http.StatusOK).decode(t, &ans)
	if ans.User != "dave" || ans.Exempt == nil || !*ans.Exempt {
		t.Errorf("answer %+v", ans)
	}
	var sum store.UserSummary
	e.call(http.MethodGet, e.path("dave"), "").want(t, http.StatusOK).decode(t, &sum)
	if !sum.Exempt {
		t.Errorf("summary %+v not exempt", sum)
	}
	e.clock.Advance(time.Minute)
	if res := e.observe(d2); res.Refused {
		t.Errorf("exempt user refused: %+v", res)
	}
	var vp violationsPage
	e.call(http.MethodGet, e.path("dave", "violations"), "").want(t, http.StatusOK).decode(t, &vp)
	if vp.Total != 1 {
		t.Errorf("history after exemption: %d violations, want the 1 kept", vp.Total)
	}

	e.call(http.MethodPut, e.path("dave", "exempt"), `{"exempt": false}`).want(t, http.StatusOK).decode(t, &ans)
	if ans.Exempt == nil || *ans.Exempt {
		t.Errorf("answer %+v", ans)
	}
	e.clock.Advance(time.Minute)
	if res := e.login(d3); !res.Refused {
		t.Errorf("after the exemption ends, a new IP passes: %+v", res)
	}

	for body, name := range map[string]string{`{}`: "exempt", `{"exempt":"yes"}`: "exempt", `{"exempt":1}`: "exempt", `{"exempt":true,"why":"vip"}`: "why"} {
		e.call(http.MethodPut, e.path("dave", "exempt"), body).wantErr(t, http.StatusBadRequest, name)
	}
	e.call(http.MethodPut, e.path("dave", "exempt"), `true`).wantErr(t, http.StatusBadRequest)
	e.call(http.MethodPut, e.path("nobody", "exempt"), `{"exempt": true}`).wantErr(t, http.StatusNotFound, "user")
	if _, err := e.tr.User(context.Background(), e.realm, "nobody"); err == nil {
		t.Error("a 404 exempt PUT created the user")
	}
}

func TestLimits(t *testing.T) {
	// The realm allows 10 IPs; erin's overrides change that.
	e := newEnv(t, envConfig{limits: restrict.Limits{IPs: &restrict.Limit{Max: 10, Window: restrict.Duration(24 * time.Hour)}}})
	erin := func(i int) client {
		n := itoa(i)
		return client{user: "erin", token: "tok-erin-" + n + "-e1e1", ip: "192.0.2." + n, ua: uaChromeWin, device: "devErinBrowser0" + n}
	}
	e.login(erin(1))

	var ans struct {
		User   string          `json:"user"`
		Limits restrict.Limits `json:"limits"`
	}
	e.call(http.MethodPut, e.path("erin", "limits"), `{"max_ips": {"max": 1, "window": "24h", "action": "log"}}`).
		want(t, http.StatusOK).decode(t, &ans)
	if ans.User != "erin" || ans.Limits.IPs == nil || ans.Limits.IPs.Max != 1 || ans.Limits.IPs.Action != "log" ||
		time.Duration(ans.Limits.IPs.Window) != 24*time.Hour {
		t.Fatalf("answer %+v", ans)
	}
	var sum store.UserSummary
	e.call(http.MethodGet, e.path("erin"), "").want(t, http.StatusOK).decode(t, &sum)
	if sum.Limits == nil || sum.Limits.IPs == nil || sum.Limits.IPs.Max != 1 {
		t.Errorf("summary limits %+v", sum.Limits)
	}
	e.clock.Advance(time.Minute)
	if res := e.login(erin(2)); res.Refused {
		t.Errorf("log action refused: %+v", res)
	}
	var vp violationsPage
	e.call(http.MethodGet, e.path("erin", "violations"), "").want(t, http.StatusOK).decode(t, &vp)
	if vp.Total != 1 || vp.Violations[0].Action != restrict.ActionLog || vp.Violations[0].Policy != restrict.PolicyIPs {
		t.Errorf("violations %+v, want one logged max_ips", vp.Violations)
	}

	// A PUT replaces the overrides: now only max_sessions 1 (block).
	e.call(http.MethodPut, e.path("erin", "limits"), `{"max_sessions": {"max": 1}}`).want(t, http.StatusOK)
	e.clock.Advance(time.Minute)
	if res := e.login(erin(3)); !res.Refused || res.Reason != restrict.PolicySessions {
		t.Errorf("max_sessions 1 with 2 active: %+v", res)
	}
	e.call(http.MethodPut, e.path("erin", "limits"), `{}`).want(t, http.StatusOK)
	sum = store.UserSummary{}
	e.call(http.MethodGet, e.path("erin"), "").want(t, http.StatusOK).decode(t, &sum)
	if sum.Limits != nil {
		t.Errorf("limits after clearing: %+v", sum.Limits)
	}
	e.clock.Advance(time.Minute)
	if res := e.login(erin(4)); res.Refused {
		t.Errorf("refused without limits: %+v", res)
	}
	e.call(http.MethodPut, e.path("nobody", "limits"), `{"max_sessions": {"max": 1}}`).wantErr(t, http.StatusNotFound, "user")
}

// TestLimitsOverrideWithoutRealmDefault: a per-user max_ips must apply
// even when the realm sets no max_ips of its own.
func TestLimitsOverrideWithoutRealmDefault(t *testing.T) {
	forStores(t, envConfig{}, func(t *testing.T, e *env) {
		e.login(client{user: "erin", token: "tok-erin-a-7e7e", ip: "192.0.2.1", ua: uaChromeWin, device: "devErinBrowserA1"})
		e.call(http.MethodPut, e.path("erin", "limits"), `{"max_ips": {"max": 1, "window": "24h"}}`).want(t, http.StatusOK)
		e.clock.Advance(time.Minute)
		if res := e.login(client{user: "erin", token: "tok-erin-b-8f8f", ip: "192.0.2.2", ua: uaIPhone, device: "devErinBrowserB1"}); !res.Refused {
			t.Errorf("max_ips 1 (user override, block) admitted a second IP: %+v", res)
		}
		var vp violationsPage
		e.call(http.MethodGet, e.path("erin", "violations"), "").want(t, http.StatusOK).decode(t, &vp)
		if vp.Total != 1 {
			t.Errorf("%d violations recorded, want 1", vp.Total)
		}
	})
}

func TestLimitsBadBodies(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.login(aliceLaptop)
	for _, c := range []struct {
		body  string
		names []string
	}{
		{`{"max_ips": {"max": -1, "window": "1h"}}`, []string{"max_ips"}},
		{`{"max_sessions": {"max": 2, "action": "explode"}}`, []string{"max_sessions", "explode"}},
		{`{"max_devices": {"max": 2, "window": "1h", "action": "evict_oldest"}}`, []string{"max_devices", "evict_oldest"}},
		{`{"max_ips": {"max": 3}}`, []string{"max_ips", "window"}},
		{`{"max_devices": {"max": 3, "window": "-1h"}}`, []string{"max_devices", "window"}},
		{`{"max_sessions": {"max": 2, "window": "1h"}}`, []string{"max_sessions"}},
		{`{"max_ips": {"max": "3", "window": "1h"}}`, []string{"max_ips"}},
		{`{"max_cpus": {"max": 1}}`, []string{"max_cpus"}},
		{`{"max_ips": {"max": 3, "window": "1h", "burst": 2}}`, []string{"burst"}},
		// A bad duration names neither the policy nor the field.
		{`{"max_ips": {"max": 3, "window": "3 days"}}`, []string{"max_ips", "window"}},
		{`max_ips=3`, nil},
	} {
		t.Run(c.body, func(t *testing.T) {
			e.call(http.MethodPut, e.path("alice", "limits"), c.body).wantErr(t, http.StatusBadRequest, c.names...)
		})
	}
	var sum store.UserSummary
	e.call(http.MethodGet, e.path("alice"), "").want(t, http.StatusOK).decode(t, &sum)
	if sum.Limits != nil {
		t.Errorf("a bad body set limits: %+v", sum.Limits)
	}
}

// activityFixture records, for frank (no location: days in the realm's UTC):
// a desktop session on day D 10:00–11:00, and a phone session from D 23:40
// across midnight to D+1 00:20, still active. The clock ends at D+1 00:20.
func activityFixture(t *testing.T, e *env) (desk, phone string) {
	d := e.day
	fdesk := client{user: "frank", token: "tok-frank-desk-4411", ua: uaChromeWin, device: "devFrankDesktop1"}
	fphone := client{user: "frank", token: "tok-frank-phone-9922", ua: uaIPhone, device: "devFrankPhone001"}
	e.clock.Set(d.Add(10 * time.Hour))
	desk = e.login(fdesk).SessionID
	// Each refresh is waited for: the clock jumps minutes in no time,
	// faster than the batched refreshes reach the store.
	for range 6 {
		at := e.clock.Advance(10 * time.Minute)
		e.observe(fdesk)
		e.waitLastSeen("frank", desk, at)
	}
	e.clock.Set(d.Add(23*time.Hour + 40*time.Minute))
	phone = e.login(fphone).SessionID
	for _, at := range []time.Duration{24*time.Hour + 5*time.Minute, 24*time.Hour + 20*time.Minute} {
		e.clock.Set(d.Add(at))
		e.observe(fphone)
		e.waitLastSeen("frank", phone, d.Add(at))
	}
	return desk, phone
}

// waitLastSeen waits for the batched refreshes to reach the store.
func (e *env) waitLastSeen(user, id string, want time.Time) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := findSession(e.sessions(user, "state=all").Sessions, id)
		if s != nil && s.LastSeen.Equal(want) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("session %s: last_seen never reached %v (%+v)", id, want, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type activityReport struct {
	User          string `json:"user"`
	UserTimeZone  string `json:"user_time_zone"`
	AdminTimeZone string `json:"admin_time_zone"`
	ZoneDiffers   bool   `json:"time_zone_differs"`
	From, To      string
	Days          []struct {
		Date          string `json:"date"`
		ActiveSeconds int64  `json:"active_seconds"`
		Active        string `json:"active"`
		Sessions      int    `json:"sessions"`
	} `json:"days"`
}

func TestActivity(t *testing.T) {
	e := newEnv(t, envConfig{})
	activityFixture(t, e)
	day0 := e.day.Format(time.DateOnly)
	day1 := e.day.AddDate(0, 0, 1).Format(time.DateOnly)

	var rep activityReport
	e.call(http.MethodGet, e.path("frank", "activity")+"?days=14&tz=America/New_York", "").want(t, http.StatusOK).decode(t, &rep)
	if rep.User != "frank" || rep.UserTimeZone != "UTC" || rep.AdminTimeZone != "America/New_York" || !rep.ZoneDiffers {
		t.Errorf("report zones %+v", rep)
	}
	if rep.To != day1 || rep.From != e.day.AddDate(0, 0, -12).Format(time.DateOnly) {
		t.Errorf("window %s..%s, want 14 days ending %s", rep.From, rep.To, day1)
	}
	if len(rep.Days) != 2 {
		t.Fatalf("days %+v, want 2 rows", rep.Days)
	}
	if r := rep.Days[0]; r.Date != day0 || r.ActiveSeconds != 4800 || r.Sessions != 2 || r.Active != "1h20m0s" {
		t.Errorf("day %s row %+v, want 4800 s (1h desktop + 20m before midnight), 2 sessions", day0, r)
	}
	if r := rep.Days[1]; r.Date != day1 || r.ActiveSeconds != 1200 || r.Sessions != 1 {
		t.Errorf("day %s row %+v, want 1200 s after midnight, 1 session", day1, r)
	}

	rep = activityReport{}
	e.call(http.MethodGet, e.path("frank", "activity")+"?days=1", "").want(t, http.StatusOK).decode(t, &rep)
	if rep.ZoneDiffers || rep.AdminTimeZone != "UTC" || len(rep.Days) != 1 || rep.Days[0].Date != day1 {
		t.Errorf("days=1 without tz: %+v", rep)
	}
	e.call(http.MethodGet, e.path("frank", "activity"), "").want(t, http.StatusOK).decode(t, &rep)
	if len(rep.Days) != 2 {
		t.Errorf("default window: %+v", rep.Days)
	}
	e.call(http.MethodGet, e.path("frank", "activity")+"?days=366&tz=UTC", "").want(t, http.StatusOK)

	for q, name := range map[string]string{
		"tz=Mars/Olympus_Mons": "tz", "tz=Local": "tz", "tz=%2Fetc%2Fpasswd": "tz",
		"days=0": "days", "days=367": "days", "days=-1": "days", "days=two": "days",
	} {
		e.call(http.MethodGet, e.path("frank", "activity")+"?"+q, "").wantErr(t, http.StatusBadRequest, name)
	}
	e.call(http.MethodGet, e.path("nobody", "activity"), "").wantErr(t, http.StatusNotFound, "user")
}

type dayReport struct {
	User          string `json:"user"`
	Date          string `json:"date"`
	UserTimeZone  string `json:"user_time_zone"`
	AdminTimeZone string `json:"admin_time_zone"`
	ZoneDiffers   bool   `json:"time_zone_differs"`
	Sessions      []struct {
		ID           string `json:"id"`
		DeviceType   string `json:"device_type"`
		Start        string `json:"start"`
		End          string `json:"end"`
		DurationSec  int64  `json:"duration_seconds"`
		OnThisDaySec int64  `json:"on_this_day_seconds"`
		AdminStart   string `json:"admin_start"`
		AdminEnd     string `json:"admin_end"`
		IP           string `json:"ip"`
		Location     string `json:"location"`
		Browser      string `json:"browser"`
		OS           string `json:"os"`
	} `json:"sessions"`
}

func TestActivityDay(t *testing.T) {
	e := newEnv(t, envConfig{})
	desk, phone := activityFixture(t, e)
	d := e.day
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}

	var rep dayReport
	e.call(http.MethodGet, e.path("frank", "activity", d.Format(time.DateOnly))+"?tz=America/New_York", "").
		want(t, http.StatusOK).decode(t, &rep)
	if rep.Date != d.Format(time.DateOnly) || rep.UserTimeZone != "UTC" || !rep.ZoneDiffers || len(rep.Sessions) != 2 {
		t.Fatalf("day report %+v", rep)
	}
	p, k := rep.Sessions[0], rep.Sessions[1]
	if p.ID != phone || k.ID != desk {
		t.Fatalf("sessions %s, %s; want the phone then the desktop", p.ID, k.ID)
	}
	phoneStart := d.Add(23*time.Hour + 40*time.Minute)
	if p.DeviceType != "Mobile" || p.Start != phoneStart.Format(time.RFC3339) || p.End != "active" ||
		p.DurationSec != 2400 || p.OnThisDaySec != 1200 || p.Location != store.UnknownLocation ||
		p.AdminStart != phoneStart.In(ny).Format(time.RFC3339) || p.AdminEnd != "active" ||
		!strings.HasPrefix(p.Browser, "Mobile Safari") || !strings.HasPrefix(p.OS, "iOS") {
		t.Errorf("phone entry %+v", p)
	}
	if k.DeviceType != "Web" || k.Start != d.Add(10*time.Hour).Format(time.RFC3339) || k.End != d.Add(11*time.Hour).Format(time.RFC3339) ||
		k.DurationSec != 3600 || k.OnThisDaySec != 3600 || k.Browser != "Chrome 120.0" || k.OS != "Windows 10" ||
		k.AdminEnd != d.Add(11*time.Hour).In(ny).Format(time.RFC3339) {
		t.Errorf("desktop entry %+v", k)
	}

	rep = dayReport{}
	e.call(http.MethodGet, e.path("frank", "activity", d.AddDate(0, 0, 1).Format(time.DateOnly)), "").want(t, http.StatusOK).decode(t, &rep)
	if rep.ZoneDiffers || len(rep.Sessions) != 1 || rep.Sessions[0].ID != phone || rep.Sessions[0].OnThisDaySec != 1200 || rep.Sessions[0].AdminStart != "" {
		t.Errorf("next day %+v", rep)
	}
	rep = dayReport{}
	r := e.call(http.MethodGet, e.path("frank", "activity", d.AddDate(0, 0, -1).Format(time.DateOnly)), "").want(t, http.StatusOK)
	if r.decode(t, &rep); len(rep.Sessions) != 0 || !strings.Contains(string(r.Body), `"sessions":[]`) {
		t.Errorf("day before: %s", r.Body)
	}

	for _, bad := range []string{"2024-13-01", "2024-02-30", "yesterday", "2024-1-1", "20240101"} {
		e.call(http.MethodGet, e.path("frank", "activity", bad), "").wantErr(t, http.StatusBadRequest, "date")
	}
	e.call(http.MethodGet, e.path("frank", "activity", "2024-01-01")+"?tz=Nowhere/Land", "").wantErr(t, http.StatusBadRequest, "tz")
	e.call(http.MethodGet, e.path("nobody", "activity", "2024-01-01"), "").wantErr(t, http.StatusNotFound, "user")
}

type exportBody struct {
	Realm      string                        `json:"realm"`
	User       string                        `json:"user"`
	ExportedAt time.Time                     `json:"exported_at"`
	Summary    *store.UserSummary            `json:"summary"`
	Sessions   []apiSession                  `json:"sessions"`
	Trails     map[string][]store.TrailEntry `json:"trails"`
	Devices    []store.Device                `json:"devices"`
	Violations []restrict.Violation          `json:"violations"`
	Days       map[string]any                `json:"days"`
}

func TestExportAndErase(t *testing.T) {
	cfg := envConfig{limits: restrict.Limits{IPs: &restrict.Limit{Max: 1, Window: restrict.Duration(24 * time.Hour), Action: restrict.ActionLog}}}
	forStores(t, cfg, func(t *testing.T, e *env) {
		e.call(http.MethodPut, e.realmPath("settings"), `{"activity_trail": true}`).want(t, http.StatusOK)
		g1 := client{user: "gina", token: "tok-gina-1-f00d", ip: "192.0.2.1", ua: uaChromeWin, device: "devGinaBrowser01", path: "/login"}
		g2 := client{user: "gina", token: "tok-gina-2-beef", ip: "192.0.2.2", ua: uaIPhone, device: "devGinaBrowser02", path: "/login"}
		g3 := client{user: "gina", token: "tok-gina-3-cafe", ip: "192.0.2.1", ua: uaFirefox, device: "devGinaBrowser03"}
		hank := client{user: "hank", token: "tok-hank-1-d00d", ip: "192.0.2.9", ua: uaFirefox, device: "devHankBrowser01"}
		s1 := e.login(g1).SessionID
		e.clock.Advance(time.Minute)
		e.login(g2) // a second IP: logged
		e.clock.Advance(time.Minute)
		e.login(g3)
		e.clock.Advance(time.Minute)
		e.logout(g3)
		e.login(hank)

		r := e.call(http.MethodGet, e.path("gina", "export"), "").want(t, http.StatusOK)
		if cd := r.Header.Get("Content-Disposition"); !strings.Contains(cd, "attachment") {
			t.Errorf("Content-Disposition %q", cd)
		}
		var ex exportBody
		r.decode(t, &ex)
		if ex.Realm != e.realm || ex.User != "gina" || ex.Summary == nil || ex.Summary.User != "gina" || ex.ExportedAt.IsZero() {
			t.Errorf("export header %+v", ex)
		}
		if len(ex.Sessions) != 3 || len(ex.Devices) != 3 || len(ex.Violations) != 1 || len(ex.Days) == 0 {
			t.Errorf("export holds %d sessions, %d devices, %d violations, %d days; want 3, 3, 1, >0",
				len(ex.Sessions), len(ex.Devices), len(ex.Violations), len(ex.Days))
		}
		for _, s := range ex.Sessions {
			if s.User != "gina" {
				t.Errorf("export of gina holds a session of %q", s.User)
			}
		}
		if tr := ex.Trails[s1]; len(tr) != 1 || tr[0].Path != "/login" {
			t.Errorf("trail of the first session %+v (all: %+v)", tr, ex.Trails)
		}

		var erased struct {
			User    string `json:"user"`
			Erased  bool   `json:"erased"`
			Revoked int    `json:"revoked_sessions"`
		}
		e.call(http.MethodDelete, e.path("gina"), "").want(t, http.StatusOK).decode(t, &erased)
		if erased.User != "gina" || !erased.Erased || erased.Revoked != 2 {
			t.Errorf("erase answer %+v, want 2 sessions revoked", erased)
		}
		e.call(http.MethodGet, e.path("gina"), "").wantErr(t, http.StatusNotFound, "user")
		e.call(http.MethodGet, e.path("gina", "export"), "").wantErr(t, http.StatusNotFound, "user")
		e.call(http.MethodGet, e.path("gina", "devices"), "").wantErr(t, http.StatusNotFound, "user")
		e.call(http.MethodGet, e.path("gina", "violations"), "").wantErr(t, http.StatusNotFound, "user")
		e.call(http.MethodGet, e.path("gina", "activity"), "").wantErr(t, http.StatusNotFound, "user")
		e.call(http.MethodGet, e.path("gina", "sessions.csv"), "").wantErr(t, http.StatusNotFound, "user")
		if _, n, err := e.tr.Sessions(context.Background(), e.realm, "gina", "all", 0, 0); err != nil || n != 0 {
			t.Errorf("%d sessions left after erase (%v)", n, err)
		}
		var users usersPage
		e.call(http.MethodGet, e.realmPath("users"), "").want(t, http.StatusOK).decode(t, &users)
		if got := userNames(users); !slices.Equal(got, []string{"hank"}) {
			t.Errorf("users after erase %v", got)
		}

		// The app's session cookies of the erased user stay refused
		// (requests where only the cookie identifies the user).
		e.clock.Advance(time.Minute)
		for _, c := range []client{g1, g2} {
			c.user = ""
			if res := e.observe(c); !res.Refused {
				t.Errorf("token %s of the erased user passes: %+v", c.token, res)
			}
		}
		if res := e.observe(hank); res.Refused {
			t.Errorf("another user was disturbed: %+v", res)
		}
		e.call(http.MethodGet, e.path("gina"), "").wantErr(t, http.StatusNotFound, "user")
		e.call(http.MethodDelete, e.path("gina"), "").wantErr(t, http.StatusNotFound, "user")
		e.call(http.MethodDelete, e.path("nobody"), "").wantErr(t, http.StatusNotFound, "user")
	})
}

// TestEraseRefusesTokensCarryingTheUserID: with `user` configured beside
// `session_cookie`, every request carries the user id too. Erase revokes the
// user's sessions; their tokens must stay refused as after a revoke.
func TestEraseRefusesTokensCarryingTheUserID(t *testing.T) {
	forStores(t, envConfig{}, func(t *testing.T, e *env) {
		e.login(aliceLaptop)
		e.clock.Advance(time.Minute)
		e.call(http.MethodDelete, e.path("alice"), "").want(t, http.StatusOK)
		e.clock.Advance(time.Minute)
		if res := e.observe(aliceLaptop); !res.Refused {
			t.Errorf("after erase, the erased user's token (sent with the user id) opens a new session: %+v", res)
		}
		e.call(http.MethodGet, e.path("alice"), "").wantErr(t, http.StatusNotFound, "user")
	})
}

type settingsBody struct {
	Tracking      bool   `json:"tracking"`
	Geolocation   bool   `json:"geolocation"`
	IPPrecision   string `json:"ip_precision"`
	ActivityTrail bool   `json:"activity_trail"`
}

func TestSettings(t *testing.T) {
	e := newEnv(t, envConfig{})
	var st settingsBody
	e.call(http.MethodGet, e.realmPath("settings"), "").want(t, http.StatusOK).decode(t, &st)
	if st != (settingsBody{Tracking: true, Geolocation: true, IPPrecision: "full"}) {
		t.Errorf("default settings %+v", st)
	}
	e.call(http.MethodPut, e.realmPath("settings"), `{"ip_precision": "truncated"}`).want(t, http.StatusOK).decode(t, &st)
	want := settingsBody{Tracking: true, Geolocation: true, IPPrecision: "truncated"}
	if st != want {
		t.Errorf("after a partial PUT: %+v, want %+v", st, want)
	}
	e.call(http.MethodPatch, e.realmPath("settings"), `{"tracking": false, "activity_trail": true}`).want(t, http.StatusOK)
	e.call(http.MethodGet, e.realmPath("settings"), "").want(t, http.StatusOK).decode(t, &st)
	want = settingsBody{Tracking: false, Geolocation: true, IPPrecision: "truncated", ActivityTrail: true}
	if st != want {
		t.Errorf("after a second partial update: %+v, want %+v", st, want)
	}
	for body, name := range map[string]string{
		`{"ip_precision": "half"}`: "ip_precision", `{"ip_precision": ""}`: "ip_precision", `{"ip_precision": 24}`: "ip_precision",
		`{"tracking": "off"}`: "tracking", `{"geolocation": 0}`: "geolocation", `{"colour": "blue"}`: "colour",
	} {
		e.call(http.MethodPut, e.realmPath("settings"), body).wantErr(t, http.StatusBadRequest, name)
	}
	e.call(http.MethodPut, e.realmPath("settings"), ``).wantErr(t, http.StatusBadRequest)
	e.call(http.MethodPut, e.realmPath("settings"), `tracking=on`).wantErr(t, http.StatusBadRequest)
	e.call(http.MethodGet, e.realmPath("settings"), "").want(t, http.StatusOK).decode(t, &st)
	if st != want {
		t.Errorf("bad bodies changed the settings: %+v", st)
	}
}

// TestSettingsNotRetroactive: switches apply to new entries only, and the
// location is looked up before the IP is truncated.
func TestSettingsNotRetroactive(t *testing.T) {
	e := newEnv(t, envConfig{geo: true})
	ivan := func(i int, ip string) client {
		return client{user: "ivan", token: "tok-ivan-" + itoa(i) + "-1v4n", ip: ip, ua: uaChromeWin, device: "devIvanBrowser0" + itoa(i)}
	}
	old := e.login(ivan(1, ipLondon)).SessionID
	e.clock.Advance(time.Minute)
	e.call(http.MethodPut, e.realmPath("settings"), `{"geolocation": false, "ip_precision": "truncated"}`).want(t, http.StatusOK)
	s2 := e.login(ivan(2, ipMilton)).SessionID
	e.clock.Advance(time.Minute)
	e.call(http.MethodPut, e.realmPath("settings"), `{"geolocation": true, "ip_precision": "none"}`).want(t, http.StatusOK)
	s3 := e.login(ivan(3, ipMilton)).SessionID

	all := e.sessions("ivan", "state=all").Sessions
	if s := findSession(all, old); s.IP != ipLondon || s.Location.City != "London" {
		t.Errorf("the session recorded before the switches changed: %+v", *s)
	}
	if s := findSession(all, s2); s.IP != "216.160.83.0" || s.Location.City != "" || s.Location.Latitude != nil {
		t.Errorf("with geolocation off and truncated IPs: ip %q location %+v", s.IP, s.Location)
	}
	if s := findSession(all, s3); s.IP != "" || s.Location.City != "Milton" {
		t.Errorf("with IPs not stored, the location is still looked up: ip %q location %+v", s.IP, s.Location)
	}
	e.call(http.MethodGet, "/sessions/nosuch.example.org/settings", "").wantErr(t, http.StatusNotFound, "realm")
}

// TestREADMEDocumentsAdminEndpoints: issue 2 wants every endpoint documented
// (README section or an OpenAPI file in admin/).
func TestREADMEDocumentsAdminEndpoints(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "## Admin API")
	section, _, _ = strings.Cut(section, "\n## ")
	for _, ep := range []string{
		"/users/{user}/sessions", "/users/{user}/devices", "/devices/{device}", "/violations", "/exempt", "/limits",
		"/activity", "/sessions.csv", "/export", "/settings", "{realm}/users?", "DELETE /sessions/{realm}/users/{user}`",
	} {
		if !strings.Contains(section, ep) {
			t.Errorf("README's Admin API section does not document %s", ep)
		}
	}
}

var itoa = strconv.Itoa
