package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCore runs the core scenarios against the memory store, one
// redis-server and a 3-master Redis Cluster. Each store runs in parallel
// with the others; the scenarios of one store run one after the other (the
// throttling scenario counts every script call its Redis sees), each with
// its own Caddy and realm.
func TestCore(t *testing.T) {
	for _, s := range []struct {
		name string
		mk   func(testing.TB) storeEnv
	}{
		{"memory", func(testing.TB) storeEnv { return memoryStore() }},
		{"redis", redisStore},
		{"cluster", clusterStore},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			coreSuite(t, s.mk(t))
		})
	}
}

func coreSuite(t *testing.T, env storeEnv) {
	t.Run("LoginObserved", func(t *testing.T) { testLoginObserved(t, env) })
	t.Run("NonRotatingApp", func(t *testing.T) { testNonRotating(t, env) })
	t.Run("FailedLogin", func(t *testing.T) { testFailedLogin(t, env) })
	t.Run("LogoutByExpiredCookie", func(t *testing.T) { testLogoutByExpiry(t, env) })
	t.Run("LogoutMatcher", func(t *testing.T) { testLogoutMatcher(t, env) })
	t.Run("ThrottledRefresh", func(t *testing.T) { testThrottledRefresh(t, env) })
	t.Run("IdleClose", func(t *testing.T) { testIdleClose(t, env) })
	t.Run("SelfService", func(t *testing.T) { testSelfService(t, env) })
	t.Run("ForgedDeviceCookie", func(t *testing.T) { testForgedDevice(t, env) })
	t.Run("OversizedLoginBody", func(t *testing.T) { testOversizedLogin(t, env) })
	t.Run("AppCookieOnlyClient", func(t *testing.T) { testAppCookieOnly(t, env) })
	t.Run("TwoBrowsers", func(t *testing.T) { testTwoBrowsers(t, env) })
	t.Run("Placeholders", func(t *testing.T) { testPlaceholders(t, env) })
}

// sessionsConf is the sessions block body for env plus extra lines.
func sessionsConf(env storeEnv, extra ...string) string {
	return env.fragment + "\n" + strings.Join(extra, "\n")
}

// 1. A rotating app's login (default success rule: the answer sets a new
// session cookie) opens a session with agent and location; the realm is
// the handler's ("default"), whatever host the request names.
func testLoginObserved(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "login @login", "geoip "+geoDB), "")))
	const realm = "default" // a handler without a realm: never the request's host

	alice := newClient(t, uaChromeWindows, ipLondon)
	r := alice.login(c.Site, "alice", "alice")
	if r.setCookie("shop_session") == nil || r.setCookie("sessions_device") == nil {
		t.Fatalf("login answer should set shop_session (app) and sessions_device (module): %s", r)
	}

	l := c.Sessions(t, realm, "alice", "active")
	if l.Total != 1 || len(l.Sessions) != 1 {
		t.Fatalf("want one active session, got %s", dump(l))
	}
	s := l.Sessions[0]
	checkSession(t, s, "alice", realm, ipLondon, "Chrome", "Windows", "desktop", "London", "GB", "Europe/London")
	if s.DeviceID == "" || !strings.HasPrefix(alice.cookie(c.Site, "sessions_device"), s.DeviceID+".") {
		t.Errorf("session device %q does not match the device cookie %q", s.DeviceID, alice.cookie(c.Site, "sessions_device"))
	}

	// The session carries on with the cookie.
	if r := alice.get(c.Site + "/account"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "alice") {
		t.Fatalf("GET /account after login: %s", r)
	}
	if l2 := c.Sessions(t, realm, "alice", "all"); l2.Total != 1 || l2.Sessions[0].ID != s.ID {
		t.Fatalf("a page view must not open another session: %s", dump(l2))
	}

	phone := newClient(t, uaIPhone, ipMilton)
	phone.login(c.Site, "alice", "alice")
	l = c.Sessions(t, realm, "alice", "active")
	if l.Total != 2 {
		t.Fatalf("want two active sessions, got %s", dump(l))
	}
	p := activeByIP(t, l, ipMilton)
	checkSession(t, p, "alice", realm, ipMilton, "Mobile Safari", "iOS", "mobile", "Milton", "US", "America/Los_Angeles")
	if p.ID == s.ID || p.DeviceID == s.DeviceID {
		t.Errorf("phone session/device must differ from the desktop one: %s", dump(l))
	}
	if devs := c.Devices(t, realm, "alice"); len(devs) != 2 {
		t.Errorf("want 2 devices, got %s", dump(devs))
	}
}

func checkSession(t testing.TB, s apiSession, user, realm, ip, browser, os, devType, city, cc, tz string) {
	t.Helper()
	type kv struct{ name, got, want string }
	for _, f := range []kv{
		{"user", s.User, user}, {"realm", s.Realm, realm}, {"ip", s.IP, ip},
		{"agent.browser", s.Agent.Browser, browser}, {"agent.os", s.Agent.OS, os},
		{"agent.device_type", s.Agent.DeviceType, devType},
		{"location.city", s.Location.City, city}, {"location.country_code", s.Location.CountryCode, cc},
		{"location.time_zone", s.Location.TimeZone, tz},
	} {
		if f.got != f.want {
			t.Errorf("session %s = %q, want %q (session: %s)", f.name, f.got, f.want, dump(s))
		}
	}
	if s.EndedAt != nil || s.ID == "" || s.StartedAt.IsZero() {
		t.Errorf("session should be active with an id and start: %s", dump(s))
	}
}

// 2. A non-rotating app keeps the anonymous cookie it issued before the
// login. With login_success { status 303 } that token is bound; without a
// success rule nothing is tracked, because the default rule waits for a
// new cookie value that this app never sends. That is expected and
// documented (login_success in module.go).
func testNonRotating(t *testing.T, env storeEnv) {
	for _, tc := range []struct {
		name    string
		success bool
	}{{"login_success_303", true}, {"no_login_success", false}} {
		t.Run(tc.name, func(t *testing.T) {
			_, up := startShop(t, false)
			realm := "shop-nonrotate-" + tc.name // the Redis of one store is shared by its scenarios
			extra := []string{"realm " + realm, "login @login"}
			if tc.success {
				extra = append(extra, "login_success {\n\tstatus 303\n}")
			}
			c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, extra...), "")))
			cl := newClient(t, uaChromeWindows, ipLondon)
			r := cl.get(c.Site + "/login")
			anon := r.setCookie("shop_session")
			if r.Status != http.StatusOK || anon == nil {
				t.Fatalf("GET /login on the non-rotating shop should issue an anonymous cookie: %s", r)
			}
			r = cl.login(c.Site, "alice", "alice")
			if r.setCookie("shop_session") != nil {
				t.Fatalf("the non-rotating shop must not set a new cookie on login: %s", r)
			}
			if r := cl.get(c.Site + "/account"); r.Status != http.StatusOK {
				t.Fatalf("GET /account after login: %s", r)
			}
			l := c.Sessions(t, realm, "alice", "all")
			if !tc.success {
				if l.Total != 0 {
					t.Fatalf("without login_success no session should open for a non-rotating app, got %s", dump(l))
				}
				t.Logf("as documented: without login_success a non-rotating app's login is not recognised (no new cookie value); nothing tracked")
				return
			}
			if l.Total != 1 || l.Sessions[0].EndedAt != nil {
				t.Fatalf("want one active session bound to the pre-login token, got %s", dump(l))
			}
			// The same token keeps the same session.
			cl.get(c.Site + "/account")
			if l2 := c.Sessions(t, realm, "alice", "all"); l2.Total != 1 || l2.Sessions[0].ID != l.Sessions[0].ID {
				t.Fatalf("the bound token should continue its session: %s", dump(l2))
			}
		})
	}
}

// 3. A failed login (the shop answers 200 with an error) opens nothing.
func testFailedLogin(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "shop-failed"
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm "+realm, "login @login"), "")))
	cl := newClient(t, uaChromeWindows, ipLondon)
	r := cl.form(c.Site+"/login", url.Values{"username": {"alice"}, "password": {"wrong"}})
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Invalid username or password") || r.setCookie("shop_session") != nil {
		t.Fatalf("wrong password should be answered 200 with an error and no cookie: %s", r)
	}
	if l := c.Sessions(t, realm, "alice", "all"); l.Total != 0 {
		t.Fatalf("failed login opened a session: %s", dump(l))
	}
	// A user the store never saw: an empty list, or 404 "user not found".
	if status, body := c.adminDo(t, http.MethodGet, "/sessions/"+realm+"/users/alice/devices"); status == http.StatusOK {
		var d struct {
			Devices []apiDevice `json:"devices"`
		}
		if json.Unmarshal(body, &d) != nil || len(d.Devices) != 0 {
			t.Fatalf("failed login recorded a device: %s", body)
		}
	} else if status != http.StatusNotFound {
		t.Fatalf("devices of a user without sessions: %d %s", status, body)
	}
	// The same browser then logs in correctly: exactly one session.
	cl.login(c.Site, "alice", "alice")
	if l := c.Sessions(t, realm, "alice", "all"); l.Total != 1 {
		t.Fatalf("want one session after the successful login, got %s", dump(l))
	}
}

// waitClosed polls until the session id is closed and returns it.
func waitClosed(t testing.TB, c *Caddy, realm, user, id string) apiSession {
	t.Helper()
	var s apiSession
	eventually(t, 3*time.Second, 20*time.Millisecond, func() (bool, string) {
		l := c.Sessions(t, realm, user, "all")
		p := l.byID(id)
		if p == nil {
			return false, "session " + id + " not listed: " + dump(l)
		}
		s = *p
		return p.EndedAt != nil, "session still active: " + dump(p)
	})
	return s
}

// 4a. An answer that expires the app's cookie closes the session as a
// logout, without any logout matcher.
func testLogoutByExpiry(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "shop-expiry"
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm "+realm, "login @login"), "")))
	cl := newClient(t, uaChromeWindows, ipLondon)
	cl.login(c.Site, "alice", "alice")
	tok := cl.cookie(c.Site, "shop_session")
	id := c.Sessions(t, realm, "alice", "active").Sessions[0].ID
	r := cl.get(c.Site + "/logout")
	if r.Status != http.StatusSeeOther || !r.expires("shop_session") {
		t.Fatalf("the shop's logout should expire its cookie: %s", r)
	}
	s := waitClosed(t, c, realm, "alice", id)
	if s.EndReason != "logout" {
		t.Fatalf("end_reason = %q, want logout: %s", s.EndReason, dump(s))
	}
	// Replaying the logged-out token opens nothing.
	rr, err := cl.send(false, http.MethodGet, c.Site+"/account", nil, func(r *http.Request) { r.Header.Set("Cookie", "shop_session="+tok) })
	if err != nil || rr.Status >= 500 {
		t.Fatalf("replaying a logged-out token: %v %v", rr, err)
	}
	if l := c.Sessions(t, realm, "alice", "active"); l.Total != 0 {
		t.Fatalf("a logged-out token opened a session: %s", dump(l))
	}
}

// 4b + 7. With `logout @logout`, both GET /logout and POST /logout close the
// session as a logout.
func testLogoutMatcher(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "shop-logout"
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm "+realm, "login @login", "logout @logout"), "")))
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		cl := newClient(t, uaFirefoxLinux, ipOther)
		cl.login(c.Site, "alice", "alice")
		id := activeByIP(t, c.Sessions(t, realm, "alice", "active"), ipOther).ID
		r := cl.do(method, c.Site+"/logout", nil, nil)
		if r.Status != http.StatusSeeOther {
			t.Fatalf("%s /logout: %s", method, r)
		}
		if s := waitClosed(t, c, realm, "alice", id); s.EndReason != "logout" {
			t.Fatalf("%s /logout: end_reason = %q, want logout: %s", method, s.EndReason, dump(s))
		}
	}
	if l := c.Sessions(t, realm, "alice", "all"); l.Total != 2 {
		t.Fatalf("want two closed sessions in the history, got %s", dump(l))
	}
}

// 5. With refresh_interval 2s, a burst of 200 requests on one session is
// answered from the local cache: Redis sees at most 2 script calls. After
// the interval one request moves last_seen within a second.
//
// Two bursts are measured: "warm" (the session is in the instance's cache)
// and "right after login" (the first requests a browser sends after logging
// in, 8 at a time, as a page with its assets would).
func testThrottledRefresh(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "shop-throttle"
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm "+realm, "login @login", "refresh_interval 2s"), "")))
	calls := func() int64 {
		if env.scriptCalls == nil {
			return 0
		}
		return env.scriptCalls(t)
	}
	// burst sends n GET /account with 8 workers released together and
	// returns the script calls the store saw meanwhile.
	burst := func(cl *client, n int, label string) int64 {
		t.Helper()
		before := calls()
		const workers = 8
		var next, bad atomic.Int64
		var wg sync.WaitGroup
		release := make(chan struct{})
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-release
				for next.Add(1) <= int64(n) {
					r, err := cl.send(true, http.MethodGet, c.Site+"/account", nil, nil)
					if err != nil || r.Status != http.StatusOK {
						bad.Add(1)
					}
				}
			}()
		}
		start := time.Now()
		close(release)
		wg.Wait()
		if bad.Load() > 0 {
			t.Fatalf("%s: %d of %d requests failed", label, bad.Load(), n)
		}
		delta := calls() - before
		if env.scriptCalls != nil {
			t.Logf("%s: %d requests in %v, script calls (EVALSHA+EVAL): %d", label, n, time.Since(start), delta)
		}
		return delta
	}

	alice := newClient(t, uaChromeWindows, ipLondon)
	alice.login(c.Site, "alice", "alice")
	loginAt := time.Now()
	// One page view. (An instance ignores the invalidations it published
	// itself, so its login's does not evict what it has just cached.)
	before := calls()
	alice.get(c.Site + "/account")
	if env.scriptCalls != nil {
		// Not asserted: one store round trip on the first request after a
		// login, because the instance's own invalidation (Tracker.Login ->
		// Publish) evicts the entry it has just cached.
		t.Logf("first request after the login: %d script calls", calls()-before)
	}
	s0 := c.Sessions(t, realm, "alice", "active").Sessions[0]

	if n := burst(alice, 200, "warm burst"); n > 2 {
		t.Errorf("the store saw %d script calls for 200 requests of a cached session within refresh_interval 2s, want at most 2", n)
	}
	s1 := c.Sessions(t, realm, "alice", "active").Sessions[0]
	// However long the burst took: last_seen moves by a refresh interval
	// or not at all.
	if d := s1.LastSeen.Sub(s0.LastSeen); d != 0 && d < 2*time.Second {
		t.Errorf("last_seen moved within the refresh interval: %v -> %v", s0.LastSeen, s1.LastSeen)
	}

	bob := newClient(t, uaChromeWindows, ipLondon)
	bob.login(c.Site, "bob", "bob")
	// At commit 72f37a8 this saw one script call per worker: the
	// instance's own login invalidation evicted the session it had just
	// cached, and concurrent misses of one token each went to the store.
	if n := burst(bob, 200, "burst right after login"); n > 2 {
		t.Errorf("BUG: the store saw %d script calls for 200 requests right after a login (refresh_interval 2s), want at most 2", n)
	}

	// After the interval, one request refreshes last_seen (off the request
	// path, batched) within a second.
	time.Sleep(time.Until(loginAt.Add(2200 * time.Millisecond)))
	if r := alice.get(c.Site + "/account"); r.Status != http.StatusOK {
		t.Fatalf("GET /account: %s", r)
	}
	d := eventually(t, time.Second, 20*time.Millisecond, func() (bool, string) {
		s := c.Sessions(t, realm, "alice", "active").Sessions[0]
		return s.LastSeen.After(s0.LastSeen), "last_seen did not advance from " + s0.LastSeen.String()
	})
	t.Logf("last_seen advanced %v after the request", d)
}

// 6. A session idle past idle_timeout is closed as idle with ended_at =
// last_seen; the same cookie seen again opens a new session.
func testIdleClose(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "shop-idle"
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm "+realm, "login @login", "idle_timeout 2s", "refresh_interval 1s"), "")))
	cl := newClient(t, uaChromeWindows, ipLondon)
	cl.login(c.Site, "alice", "alice")
	first := c.Sessions(t, realm, "alice", "active").Sessions[0]

	time.Sleep(3 * time.Second)
	l := c.Sessions(t, realm, "alice", "all")
	s := l.byID(first.ID)
	if s == nil || s.EndedAt == nil || s.EndReason != "idle" {
		t.Fatalf("after 3s of silence the session should be closed as idle: %s", dump(l))
	}
	if !s.EndedAt.Equal(s.LastSeen) {
		t.Errorf("ended_at %v != last_seen %v", s.EndedAt, s.LastSeen)
	}
	if a := c.Sessions(t, realm, "alice", "active"); a.Total != 0 {
		t.Errorf("idle session still listed as active: %s", dump(a))
	}

	if r := cl.get(c.Site + "/account"); r.Status != http.StatusOK {
		t.Fatalf("GET /account with the old cookie: %s", r)
	}
	a := c.Sessions(t, realm, "alice", "active")
	if a.Total != 1 || a.Sessions[0].ID == first.ID {
		t.Fatalf("the same cookie after an idle close should open a NEW session (not %s): %s", first.ID, dump(a))
	}
	if all := c.Sessions(t, realm, "alice", "all"); all.Total != 2 {
		t.Fatalf("want the idle session and the new one, got %s", dump(all))
	}
}

// 9. Self-service under /sessions/.
func testSelfService(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "shop-self"
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm "+realm, "login @login", "logout @logout", "self_service /sessions/"), "")))
	a1 := newClient(t, uaChromeWindows, ipLondon)
	a2 := newClient(t, uaIPhone, ipMilton)
	a3 := newClient(t, uaFirefoxLinux, ipOther)
	bob := newClient(t, uaChromeWindows, ipLondon)
	for _, cl := range []*client{a1, a2, a3} {
		cl.login(c.Site, "alice", "alice")
	}
	bob.login(c.Site, "bob", "bob")
	all := c.Sessions(t, realm, "alice", "active")
	id1, id2, id3 := activeByIP(t, all, ipLondon).ID, activeByIP(t, all, ipMilton).ID, activeByIP(t, all, ipOther).ID

	// List: own sessions, exactly one current.
	r := a1.get(c.Site + "/sessions/")
	var l apiList
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &l) != nil {
		t.Fatalf("GET /sessions/: %s", r)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("self-service list Content-Type = %q", ct)
	}
	var current []string
	for _, s := range l.Sessions {
		if s.User != "alice" {
			t.Errorf("self-service list shows another user's session: %s", dump(s))
		}
		if s.Current {
			current = append(current, s.ID)
		}
	}
	if l.Total != 3 || len(current) != 1 || current[0] != id1 || l.Current != id1 || l.User != "alice" {
		t.Fatalf("want alice's 3 sessions with exactly %s current, got current=%v: %s", id1, current, r.Body)
	}
	if n := strings.Count(string(r.Body), `"current":true`); n != 1 {
		t.Errorf(`want exactly one "current":true in the JSON, got %d`, n)
	}

	// Ending the current session is refused.
	r = a1.do(http.MethodDelete, c.Site+"/sessions/"+id1, nil, withCSRF)
	if r.Status != http.StatusConflict || !jsonError(r) {
		t.Fatalf("DELETE current session: want 409 with a JSON error, got %s", r)
	}
	// Cross-site: refused, nothing ends.
	r = a1.do(http.MethodDelete, c.Site+"/sessions/"+id2, nil, func(q *http.Request) { withCSRF(q); q.Header.Set("Origin", "http://evil.example") })
	if r.Status != http.StatusForbidden || !jsonError(r) {
		t.Fatalf("cross-origin DELETE: want 403, got %s", r)
	}
	r = a1.do(http.MethodDelete, c.Site+"/sessions/"+id2, nil, func(q *http.Request) { withCSRF(q); q.Header.Set("Sec-Fetch-Site", "cross-site") })
	if r.Status != http.StatusForbidden {
		t.Fatalf("Sec-Fetch-Site: cross-site DELETE: want 403, got %s", r)
	}
	// Without the CSRF header: refused.
	r = a1.do(http.MethodDelete, c.Site+"/sessions/"+id2, nil, nil)
	if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "X-Sessions-CSRF") {
		t.Fatalf("DELETE without the CSRF header: want 403 naming the header, got %s", r)
	}
	if s := c.Sessions(t, realm, "alice", "active").byID(id2); s == nil {
		t.Fatalf("a refused cross-site DELETE ended the session")
	}
	// Own other session: ended, its cookie refused from now on.
	r = a1.do(http.MethodDelete, c.Site+"/sessions/"+id2, nil, withCSRF)
	var ended apiSession
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &ended) != nil || ended.ID != id2 || ended.EndedAt == nil || ended.EndReason != "revoked" {
		t.Fatalf("DELETE own other session: %s", r)
	}
	eventually(t, time.Second, 20*time.Millisecond, func() (bool, string) {
		rr, err := a2.send(false, http.MethodGet, c.Site+"/account", nil, func(q *http.Request) { q.Header.Set("Cookie", a2.cookieHeader(c.Site)) })
		if err != nil {
			return false, err.Error()
		}
		return rr.Status == http.StatusUnauthorized && rr.expires("shop_session"), "revoked session still served: " + rr.String()
	})
	// bob cannot end alice's session.
	r = bob.do(http.MethodDelete, c.Site+"/sessions/"+id3, nil, withCSRF)
	if r.Status != http.StatusNotFound {
		t.Fatalf("bob deleting alice's session: want 404, got %s", r)
	}
	if s := c.Sessions(t, realm, "alice", "active").byID(id3); s == nil {
		t.Fatalf("bob ended alice's session")
	}
	// Same origin (a browser's own fetch) is fine.
	r = a1.do(http.MethodDelete, c.Site+"/sessions/"+id3, nil, func(q *http.Request) {
		withCSRF(q)
		q.Header.Set("Origin", c.Site)
		q.Header.Set("Sec-Fetch-Site", "same-origin")
	})
	if r.Status != http.StatusOK {
		t.Fatalf("same-origin DELETE: %s", r)
	}

	// Anonymous: the path belongs to the app (the shop answers 404), and
	// nothing about any session leaks.
	anon := newClient(t, uaChromeWindows, ipLondon)
	for _, cookie := range []string{"", "shop_session=" + strings.Repeat("x", 43)} {
		rr, err := anon.send(false, http.MethodGet, c.Site+"/sessions/", nil, func(q *http.Request) {
			if cookie != "" {
				q.Header.Set("Cookie", cookie)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if rr.Status != http.StatusNotFound {
			t.Errorf("anonymous GET /sessions/ (cookie %q): want the shop's 404, got %s", cookie, rr)
		}
		for _, leak := range []string{id1, id2, id3, "alice", `"sessions"`, "device_id"} {
			if strings.Contains(string(rr.Body), leak) {
				t.Errorf("anonymous GET /sessions/ leaks %q: %s", leak, rr.Body)
			}
		}
	}
}

func jsonError(r *reply) bool {
	var e struct {
		Error string `json:"error"`
	}
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") && json.Unmarshal(r.Body, &e) == nil && e.Error != ""
}

// validDeviceCookie reports whether v looks like one the module signs:
// a 16-character id, a dot and a 22-character signature.
func validDeviceCookie(v string) (id string, ok bool) {
	id, sig, found := strings.Cut(v, ".")
	return id, found && len(id) == 16 && len(sig) == 22 && !strings.Contains(sig, ".")
}

// 10. Forged and garbage device cookies never fail a request, are replaced
// by a valid one, and never show up as devices.
func testForgedDevice(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "shop-device"
	const forgedID = "AAAAAAAAAAAAAAAA"
	forged := forgedID + ".BBBBBBBBBBBBBBBBBBBBBB"
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm "+realm, "login @login"), "")))
	cl := newClient(t, uaChromeWindows, ipLondon)
	u, _ := url.Parse(c.Site)
	cl.jar.SetCookies(u, []*http.Cookie{{Name: "sessions_device", Value: forged, Path: "/"}})

	// Login with the forged cookie.
	r := cl.login(c.Site, "alice", "alice")
	ck := r.setCookie("sessions_device")
	if ck == nil {
		t.Fatalf("login with a forged device cookie should set a new one: %s", r)
	}
	newID, ok := validDeviceCookie(ck.Value)
	if !ok || newID == forgedID {
		t.Fatalf("new device cookie %q is not a fresh valid one", ck.Value)
	}
	tok := cl.cookie(c.Site, "shop_session")

	garbage := []string{
		forged,
		"garbage",
		"",
		".",
		forgedID + ".",
		".BBBBBBBBBBBBBBBBBBBBBB",
		forged + ".CCCC",
		strings.Repeat("A", 16) + "." + strings.Repeat("B", 21) + "=",
		strings.Repeat("Z", 8000),
		strings.Repeat("A", 4000) + "." + strings.Repeat("B", 4000),
		"%00%ff%fe",
		`"` + forged + `"`,
		"____________----.______________________",
	}
	for _, g := range garbage {
		for _, path := range []string{"/account", "/"} {
			rr, err := cl.send(false, http.MethodGet, c.Site+path, nil, func(q *http.Request) {
				q.Header.Set("Cookie", "shop_session="+tok+"; sessions_device="+g)
			})
			if err != nil {
				t.Fatalf("device cookie %.40q: %v", g, err)
			}
			if rr.Status >= 500 || rr.Status != http.StatusOK {
				t.Fatalf("device cookie %.40q on %s: want 200, got %s", g, path, rr)
			}
			dc := rr.setCookie("sessions_device")
			if dc == nil {
				t.Fatalf("device cookie %.40q: no replacement device cookie set: %s", g, rr)
			}
			if id, ok := validDeviceCookie(dc.Value); !ok || id == forgedID || dc.Value == g {
				t.Fatalf("device cookie %.40q: replacement %q is not a fresh valid one", g, dc.Value)
			}
		}
		// Without the app cookie (anonymous) a forged device cookie is
		// harmless too.
		rr, err := cl.send(false, http.MethodGet, c.Site+"/", nil, func(q *http.Request) { q.Header.Set("Cookie", "sessions_device="+g) })
		if err != nil || rr.Status != http.StatusOK {
			t.Fatalf("anonymous with device cookie %.40q: %v %v", g, rr, err)
		}
	}

	// The valid cookie from the login is accepted as is.
	rr := cl.get(c.Site + "/account")
	if rr.Status != http.StatusOK || rr.setCookie("sessions_device") != nil {
		t.Fatalf("a valid device cookie should be kept: %s", rr)
	}
	devs := c.Devices(t, realm, "alice")
	for _, d := range devs {
		if d.ID == forgedID || strings.HasPrefix(d.ID, "AAAA") || strings.Contains(d.ID, "garbage") {
			t.Errorf("forged device id listed: %s", dump(devs))
		}
	}
	found := false
	for _, d := range devs {
		found = found || d.ID == newID
	}
	if !found {
		t.Errorf("the device issued at login (%s) is not listed: %s", newID, dump(devs))
	}
	t.Logf("devices after %d requests with forged device cookies: %d", len(garbage)*2, len(devs))
	if len(devs) > 2 {
		t.Errorf("BUG: every request with a forged device cookie added a device record (%d devices for one browser): "+
			"deviceFor mints a new random device id and the store records it as \"the session's token in another browser\"", len(devs))
	}
	if s := c.Sessions(t, realm, "alice", "all"); s.Total != 1 {
		t.Errorf("forged device cookies opened or ended sessions: %s", dump(s))
	}
}

// bigLoginApp answers like the shop's login (303 and a new cookie for
// alice/alice) but reads and records the whole body, whatever its size.
func bigLoginApp(t testing.TB) (*recorder, string) {
	rc := &recorder{}
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		rec := recorded{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), BodyLen: len(b)}
		if err != nil {
			rec.BodyLen = -1
		}
		rc.add(rec)
		if r.Method == http.MethodPost && r.URL.Path == "/login" {
			vals, _ := url.ParseQuery(string(b))
			if vals.Get("username") == "alice" && vals.Get("password") == "alice" {
				var tok [32]byte
				_, _ = rand.Read(tok[:])
				http.SetCookie(w, &http.Cookie{Name: "shop_session", Value: base64.RawURLEncoding.EncodeToString(tok[:]), Path: "/", HttpOnly: true})
				http.Redirect(w, r, "/account", http.StatusSeeOther)
				return
			}
			_, _ = io.WriteString(w, "Invalid username or password.")
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	return rc, addr
}

// 11. A login body over the module's 64 KiB limit is refused with 400 and
// never reaches the app (with Content-Length and chunked); with
// unreadable_login pass it reaches the app in full and passes unobserved; a
// normal one is tracked.
func testOversizedLogin(t *testing.T, env storeEnv) {
	rc, up := bigLoginApp(t)
	const realm = "shop-big"
	body := "username=alice&password=alice&pad=" + strings.Repeat("x", 100<<10)
	// postBig posts body from cl with Content-Length or chunked.
	postBig := func(cl *client, site string, chunked bool) *reply {
		return cl.do(http.MethodPost, site+"/login", strings.NewReader(body), func(q *http.Request) {
			q.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if chunked {
				q.Body = io.NopCloser(io.MultiReader(strings.NewReader(body)))
				q.ContentLength = -1
				q.GetBody = nil
			}
		})
	}
	strict := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm "+realm+"-strict", "login @login"), "")))
	for _, chunked := range []bool{false, true} {
		r := postBig(newClient(t, uaChromeWindows, ipLondon), strict.Site, chunked)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "over 65536 bytes") {
			t.Fatalf("chunked=%v: an oversized login should be refused with a reason: %s", chunked, r)
		}
		if _, ok := rc.last(http.MethodPost, "/login"); ok {
			t.Fatalf("chunked=%v: the refused login reached the app", chunked)
		}
	}

	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm "+realm, "login @login", "unreadable_login pass"), "")))
	for _, chunked := range []bool{false, true} {
		cl := newClient(t, uaChromeWindows, ipLondon)
		r := postBig(cl, c.Site, chunked)
		if r.Status != http.StatusSeeOther || r.setCookie("shop_session") == nil {
			t.Fatalf("chunked=%v: the app should accept the big login: %s", chunked, r)
		}
		got, ok := rc.last(http.MethodPost, "/login")
		if !ok || got.BodyLen != len(body) {
			t.Fatalf("chunked=%v: the app received %d of %d body bytes", chunked, got.BodyLen, len(body))
		}
		if chunked && got.Header.Get("Content-Length") != "" {
			t.Logf("note: the chunked body reached the app with Content-Length %s", got.Header.Get("Content-Length"))
		}
		if r := cl.get(c.Site + "/account"); r.Status != http.StatusOK {
			t.Fatalf("GET /account: %s", r)
		}
		if l := c.Sessions(t, realm, "alice", "all"); l.Total != 0 {
			t.Fatalf("chunked=%v: an oversized login body must pass unobserved, got %s", chunked, dump(l))
		}
	}

	cl := newClient(t, uaChromeWindows, ipLondon)
	cl.login(c.Site, "alice", "alice")
	if l := c.Sessions(t, realm, "alice", "all"); l.Total != 1 {
		t.Fatalf("a normal login through the same app should be tracked, got %s", dump(l))
	}
}

// A client that keeps the app's cookie but not the module's device cookie
// (a script, a mobile app with its own cookie store, a browser that blocks
// the second cookie) is one device and one session, however many requests
// it sends.
func testAppCookieOnly(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "shop-cookieonly"
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm "+realm, "login @login"), "")))
	cl := newClient(t, uaFirefoxLinux, ipOther)
	cl.login(c.Site, "alice", "alice")
	tok := cl.cookie(c.Site, "shop_session")
	const n = 20
	for i := 0; i < n; i++ {
		r, err := cl.send(false, http.MethodGet, c.Site+"/account", nil, func(q *http.Request) { q.Header.Set("Cookie", "shop_session="+tok) })
		if err != nil || r.Status != http.StatusOK {
			t.Fatalf("request %d with only the app cookie: %v %v", i, r, err)
		}
	}
	if l := c.Sessions(t, realm, "alice", "all"); l.Total != 1 {
		t.Fatalf("want the one session, got %s", dump(l))
	}
	if devs := c.Devices(t, realm, "alice"); len(devs) > 2 {
		t.Errorf("BUG: %d requests without the device cookie left %d device records for one client (want 1): each gets a fresh random device id (serve.go deviceFor) that the store then records",
			n, len(devs))
	}
}

// 12. Two browsers with the same user agent and IP are two devices and two
// sessions.
func testTwoBrowsers(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "shop-two"
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm "+realm, "login @login"), "")))
	b1 := newClient(t, uaChromeWindows, ipLondon)
	b2 := newClient(t, uaChromeWindows, ipLondon)
	b1.login(c.Site, "alice", "alice")
	b2.login(c.Site, "alice", "alice")
	b1.get(c.Site + "/account")
	b2.get(c.Site + "/account")
	l := c.Sessions(t, realm, "alice", "active")
	if l.Total != 2 || l.Sessions[0].ID == l.Sessions[1].ID {
		t.Fatalf("want two sessions, got %s", dump(l))
	}
	d1, d2 := b1.cookie(c.Site, "sessions_device"), b2.cookie(c.Site, "sessions_device")
	if d1 == d2 || l.Sessions[0].DeviceID == l.Sessions[1].DeviceID {
		// The login request of a rotating app carries no app cookie, so
		// deviceFor (serve.go) takes the "no cookie" branch and derives
		// the device from realm+user+UA+IP instead of making a random one.
		t.Fatalf("BUG: two browsers with their own cookie jars (same UA and IP) were given the same device: cookies %q / %q, sessions %s",
			d1, d2, dump(l))
	}
	devs := c.Devices(t, realm, "alice")
	if len(devs) != 2 {
		t.Fatalf("want two devices, got %s", dump(devs))
	}
	want := map[string]bool{l.Sessions[0].DeviceID: true, l.Sessions[1].DeviceID: true}
	for _, d := range devs {
		if !want[d.ID] {
			t.Errorf("device %s belongs to no session: %s", d.ID, dump(devs))
		}
	}
}

// 16. {http.sessions.user} and {http.sessions.id} reach the upstream.
func testPlaceholders(t *testing.T, env storeEnv) {
	rc, up := recordingShop(t, true)
	const realm = "shop-ph"
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm "+realm, "login @login"),
		"header_up X-Session-User {http.sessions.user}\nheader_up X-Session-Id {http.sessions.id}\nheader_up X-Session-Device {http.sessions.device}")))
	cl := newClient(t, uaChromeWindows, ipLondon)
	cl.login(c.Site, "alice", "alice")
	if r := cl.get(c.Site + "/account"); r.Status != http.StatusOK {
		t.Fatalf("GET /account: %s", r)
	}
	s := c.Sessions(t, realm, "alice", "active").Sessions[0]
	got, ok := rc.last(http.MethodGet, "/account")
	if !ok {
		t.Fatal("GET /account did not reach the upstream")
	}
	if u, id, dev := got.Header.Get("X-Session-User"), got.Header.Get("X-Session-Id"), got.Header.Get("X-Session-Device"); u != "alice" || id != s.ID || dev != s.DeviceID {
		t.Fatalf("upstream got X-Session-User=%q X-Session-Id=%q X-Session-Device=%q, want alice %s %s", u, id, dev, s.ID, s.DeviceID)
	}
	// An untracked request (anonymous, or the login request itself, which
	// is proxied before the module knows the answer) must not send the
	// literal placeholder text upstream: Caddy's header_up uses
	// ReplaceKnown, so a placeholder the handler never set stays as
	// "{http.sessions.user}". An app checking "X-Session-User != ''" would
	// take that for a user name.
	t.Run("untracked_requests_get_empty_values", func(t *testing.T) {
		anon := newClient(t, uaChromeWindows, ipLondon)
		anon.get(c.Site + "/products/1")
		for _, req := range []struct{ method, path string }{{http.MethodGet, "/products/1"}, {http.MethodPost, "/login"}} {
			got, ok := rc.last(req.method, req.path)
			if !ok {
				t.Fatalf("%s %s did not reach the upstream", req.method, req.path)
			}
			for _, h := range []string{"X-Session-User", "X-Session-Id", "X-Session-Device"} {
				if v := got.Header.Get(h); strings.Contains(v, "{http.sessions.") {
					t.Errorf("BUG: untracked %s %s reached the upstream with %s: %q (placeholder not set by the handler)", req.method, req.path, h, v)
				}
			}
		}
	})
}
