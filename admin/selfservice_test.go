package admin

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

const shopHost = "shop.example.com"

// selfFixture: alice on her laptop (the current session), her phone and her
// Mac, plus a logged-out session; bob on his own browser.
type selfFixture struct {
	e                        *env
	s                        Self
	laptop, phone, mac, gone string
	bob                      string
	bobClient                client
}

func newSelfFixture(t *testing.T, prefix string) *selfFixture {
	e := newEnv(t, envConfig{})
	f := &selfFixture{e: e, s: Self{Prefix: prefix, Realm: e.realm, Tracker: e.tr}}
	old := client{user: "alice", token: "tok-alice-old-2d2d", ip: "198.51.100.20", ua: uaFirefox, device: "devAliceOldPc001"}
	f.gone = e.login(old).SessionID
	e.clock.Advance(time.Minute)
	e.logout(old)
	f.laptop = e.login(aliceLaptop).SessionID
	e.clock.Advance(time.Minute)
	f.phone = e.login(alicePhone).SessionID
	e.clock.Advance(time.Minute)
	f.mac = e.login(aliceMac).SessionID
	f.bobClient = client{user: "bob", token: "tok-bob-self-6b6b", ip: "198.51.100.30", ua: uaChromeWin, device: "devBobBrowser001"}
	f.bob = e.login(f.bobClient).SessionID
	e.clock.Advance(time.Minute)
	return f
}

// do sends r as alice on her laptop.
func (f *selfFixture) do(t *testing.T, r *http.Request) resp {
	t.Helper()
	return f.e.self(f.s, r, "alice", f.laptop)
}

// selfReq builds a request to the shop, with the CSRF header the page
// sends; origin and fetchSite are sent when set.
func selfReq(method, path, origin, fetchSite string) *http.Request {
	r := httptest.NewRequest(method, "https://"+shopHost+path, nil)
	r.Header.Set(CSRFHeader, "1")
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	if fetchSite != "" {
		r.Header.Set("Sec-Fetch-Site", fetchSite)
	}
	return r
}

func (f *selfFixture) active(t *testing.T, user string) []string {
	t.Helper()
	return ids(f.e.sessions(user, "").Sessions)
}

func TestSelfServiceList(t *testing.T) {
	for _, prefix := range []string{"/account/sessions/", "/account/sessions"} {
		t.Run(prefix, func(t *testing.T) {
			f := newSelfFixture(t, prefix)
			for _, path := range []string{"/account/sessions/", "/account/sessions"} {
				var pg sessionPage
				r := f.do(t, selfReq(http.MethodGet, path, "", ""))
				r.want(t, http.StatusOK).decode(t, &pg)
				if ct := r.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				if pg.User != "alice" || pg.Current != f.laptop || pg.Total != 3 {
					t.Errorf("GET %s: user %q current %q total %d", path, pg.User, pg.Current, pg.Total)
				}
				if got, want := ids(pg.Sessions), []string{f.mac, f.phone, f.laptop}; !slices.Equal(got, want) {
					t.Errorf("GET %s: sessions %v, want %v", path, got, want)
				}
				checkOneCurrent(t, pg.Sessions, f.laptop)
			}

			var all sessionPage
			f.do(t, selfReq(http.MethodGet, "/account/sessions/?state=all", "", "")).want(t, http.StatusOK).decode(t, &all)
			if all.Total != 4 || findSession(all.Sessions, f.gone) == nil {
				t.Errorf("state=all: %v", ids(all.Sessions))
			}
			checkOneCurrent(t, all.Sessions, f.laptop)
			for _, s := range all.Sessions {
				if s.User != "alice" {
					t.Errorf("alice's list holds a session of %q", s.User)
				}
			}

			var pg sessionPage
			f.do(t, selfReq(http.MethodGet, "/account/sessions/?limit=1", "", "")).want(t, http.StatusOK).decode(t, &pg)
			if len(pg.Sessions) != 1 || pg.NextOffset == nil || *pg.NextOffset != 1 || pg.Sessions[0].Current {
				t.Errorf("limit=1: %+v", pg)
			}
			f.do(t, selfReq(http.MethodGet, "/account/sessions/?state=bogus", "", "")).wantErr(t, http.StatusBadRequest, "state")
			f.do(t, selfReq(http.MethodGet, "/account/sessions/?limit=501", "", "")).wantErr(t, http.StatusBadRequest, "limit")
			f.do(t, selfReq(http.MethodHead, "/account/sessions/", "", "")).want(t, http.StatusOK)
		})
	}
}

func checkOneCurrent(t *testing.T, list []apiSession, current string) {
	t.Helper()
	n := 0
	for _, s := range list {
		if s.Current {
			n++
			if s.ID != current {
				t.Errorf("session %s marked current, want %s", s.ID, current)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d sessions marked current, want exactly 1", n)
	}
}

func TestSelfServiceDeleteCurrent(t *testing.T) {
	f := newSelfFixture(t, "/account/sessions/")
	for _, r := range []*http.Request{
		selfReq(http.MethodDelete, "/account/sessions/"+f.laptop, "", ""),
		selfReq(http.MethodDelete, "/account/sessions/"+f.laptop, "https://"+shopHost, "same-origin"),
		selfReq(http.MethodPost, "/account/sessions/"+f.laptop+"/delete", "https://"+shopHost, ""),
	} {
		f.do(t, r).wantErr(t, http.StatusConflict, "log out instead")
	}
	if res := f.e.observe(aliceLaptop); res.Refused || res.SessionID != f.laptop {
		t.Errorf("the current session was ended: %+v", res)
	}
}

func TestSelfServiceDeleteOther(t *testing.T) {
	f := newSelfFixture(t, "/account/sessions/")
	var s apiSession
	f.do(t, selfReq(http.MethodDelete, "/account/sessions/"+f.phone, "https://"+shopHost, "same-origin")).
		want(t, http.StatusOK).decode(t, &s)
	if s.ID != f.phone || s.EndReason != store.EndRevoked || s.EndedAt == nil {
		t.Errorf("ended session %+v", s)
	}
	if res := f.e.observe(alicePhone); !res.Refused || res.Reason != store.EndRevoked {
		t.Errorf("the deleted session's token passes: %+v", res)
	}

	// The HTML form variant, from a client that sends no Origin.
	f.do(t, selfReq(http.MethodPost, "/account/sessions/"+f.mac+"/delete", "", "")).want(t, http.StatusOK).decode(t, &s)
	if s.ID != f.mac || s.EndReason != store.EndRevoked {
		t.Errorf("ended session %+v", s)
	}
	if res := f.e.observe(aliceMac); !res.Refused {
		t.Errorf("the deleted session's token passes: %+v", res)
	}
	if got := f.active(t, "alice"); !slices.Equal(got, []string{f.laptop}) {
		t.Errorf("active sessions %v, want only the current one", got)
	}
}

func TestSelfServiceCrossSite(t *testing.T) {
	f := newSelfFixture(t, "/account/sessions/")
	for _, c := range []struct{ origin, site string }{
		{"http://evil.example", ""},
		{"https://evil.example", "cross-site"},
		{"", "cross-site"},
		{"", "same-site"},
		{"https://" + shopHost, "cross-site"},
		{"null", ""},
		{"https://" + shopHost + ".evil.example", ""},
		{"https://evil.example/" + shopHost, ""},
		{"http://" + shopHost, ""},            // another scheme
		{"https://" + shopHost + ":8443", ""}, // another port
		{"https://" + shopHost + "/path", ""}, // not an origin
	} {
		for _, r := range []*http.Request{
			selfReq(http.MethodDelete, "/account/sessions/"+f.phone, c.origin, c.site),
			selfReq(http.MethodPost, "/account/sessions/"+f.phone+"/delete", c.origin, c.site),
			selfReq(http.MethodDelete, "/account/sessions/"+f.laptop, c.origin, c.site),
		} {
			f.do(t, r).wantErr(t, http.StatusForbidden, "cross-site")
		}
	}
	if got := f.active(t, "alice"); !slices.Equal(got, []string{f.mac, f.phone, f.laptop}) {
		t.Errorf("cross-site requests ended sessions: active %v", got)
	}
	// A cross-site GET only reads (the browser keeps the answer from the
	// other site).
	f.do(t, selfReq(http.MethodGet, "/account/sessions/", "http://evil.example", "cross-site")).want(t, http.StatusOK)
}

// Same-origin, but without the header a cross-site form or script cannot
// send: refused, for browsers and other clients alike.
func TestSelfServiceNeedsCSRFHeader(t *testing.T) {
	f := newSelfFixture(t, "/account/sessions/")
	for _, c := range []struct{ origin, site string }{{"https://" + shopHost, "same-origin"}, {"", ""}} {
		for _, r := range []*http.Request{
			selfReq(http.MethodDelete, "/account/sessions/"+f.phone, c.origin, c.site),
			selfReq(http.MethodPost, "/account/sessions/"+f.phone+"/delete", c.origin, c.site),
		} {
			r.Header.Del(CSRFHeader)
			f.do(t, r).wantErr(t, http.StatusForbidden, CSRFHeader)
			r.Header.Set(CSRFHeader, "true")
			f.do(t, r).wantErr(t, http.StatusForbidden, CSRFHeader)
		}
	}
	if got := f.active(t, "alice"); !slices.Equal(got, []string{f.mac, f.phone, f.laptop}) {
		t.Errorf("requests without the CSRF header ended sessions: active %v", got)
	}
}

func TestSelfServiceOtherUsersSession(t *testing.T) {
	f := newSelfFixture(t, "/account/sessions/")
	f.do(t, selfReq(http.MethodDelete, "/account/sessions/"+f.bob, "", "")).wantErr(t, http.StatusNotFound, "not found")
	f.do(t, selfReq(http.MethodPost, "/account/sessions/"+f.bob+"/delete", "", "")).wantErr(t, http.StatusNotFound, "not found")
	f.do(t, selfReq(http.MethodDelete, "/account/sessions/nosuchsession000", "", "")).wantErr(t, http.StatusNotFound, "not found")
	if got := f.active(t, "bob"); !slices.Equal(got, []string{f.bob}) {
		t.Errorf("bob's sessions %v after alice tried to end one", got)
	}
	if res := f.e.observe(f.bobClient); res.Refused {
		t.Errorf("bob refused: %+v", res)
	}
}

func TestSelfServiceMethods(t *testing.T) {
	f := newSelfFixture(t, "/account/sessions/")
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/account/sessions/"},
		{http.MethodPut, "/account/sessions/"},
		{http.MethodDelete, "/account/sessions/"},
		{http.MethodPatch, "/account/sessions"},
		{http.MethodGet, "/account/sessions/" + f.phone},
		{http.MethodPost, "/account/sessions/" + f.phone},
		{http.MethodPut, "/account/sessions/" + f.phone},
		{http.MethodGet, "/account/sessions/" + f.phone + "/delete"},
		{http.MethodDelete, "/account/sessions/" + f.phone + "/delete"},
		{http.MethodPost, "/account/sessions/" + f.phone + "/remove"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			f.do(t, selfReq(c.method, c.path, "", "")).wantErr(t, http.StatusMethodNotAllowed)
		})
	}
	if got := f.active(t, "alice"); len(got) != 3 {
		t.Errorf("refused methods ended sessions: active %v", got)
	}
}
