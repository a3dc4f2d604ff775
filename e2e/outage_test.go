package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// TestRedisUnreachable (14): with Redis down, requests flow untracked and
// Caddy keeps running; once Redis is back, new logins are tracked again
// within a few seconds. With fail_closed, a request that needs the store is
// answered 503 while it is down.
func TestRedisUnreachable(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	_, up := startShop(t, true)
	frag := "store " + srv.URL() + "\nsecret " + e2eSecret
	const realm = "default"
	open := startCaddy(t, caddyfile("", shopSite(up, frag+"\nlogin @login", "")))
	closed := startCaddy(t, caddyfile("", shopSite(up, frag+"\nlogin @login\nfail_closed", "")))

	// A session from before the outage, on the fail_closed instance.
	pre := newClient(t, uaChromeWindows, ipLondon)
	pre.login(closed.Site, "alice", "alice")

	srv.Stop()
	downAt := time.Now()

	// Requests flow: login (answered by the app), pages, anonymous pages.
	cl := newClient(t, uaIPhone, ipMilton)
	loginStart := time.Now()
	r := cl.form(open.Site+"/login", map[string][]string{"username": {"alice"}, "password": {"alice"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("login with Redis down: want the app's 303, got %s", r)
	}
	slowest := time.Since(loginStart)
	t.Logf("login with Redis just gone answered in %v", slowest)
	for i := 0; i < 20; i++ {
		for _, path := range []string{"/account", "/", "/products/1"} {
			start := time.Now()
			if r := cl.get(open.Site + path); r.Status != http.StatusOK {
				t.Fatalf("GET %s with Redis down: %s", path, r)
			}
			slowest = max(slowest, time.Since(start))
		}
	}
	t.Logf("login and 60 requests with Redis down answered in %v, slowest %v", time.Since(downAt), slowest)
	// The store timeout (default 1s) bounds what a request waits for it.
	if slowest > 2500*time.Millisecond {
		t.Errorf("a request waited %v for the unreachable store (timeout 1s)", slowest)
	}
	if !open.Running() || !closed.Running() {
		t.Fatal("caddy exited while Redis was down")
	}
	if status, body := open.adminDo(t, http.MethodGet, "/sessions/"+realm+"/users/alice/sessions"); status != http.StatusServiceUnavailable {
		t.Errorf("admin list with Redis down: want 503, got %d %s", status, body)
	}

	// fail_closed: an unknown token needs the store -> 503; no cookie -> app.
	stranger := newClient(t, uaChromeWindows, ipLondon)
	rr, err := stranger.send(false, http.MethodGet, closed.Site+"/account", nil, func(q *http.Request) {
		q.Header.Set("Cookie", "shop_session="+strings.Repeat("q", 43))
	})
	if err != nil || rr.Status != http.StatusServiceUnavailable {
		t.Errorf("fail_closed with Redis down, unknown token: want 503, got %v %v", rr, err)
	}
	if r := stranger.get(closed.Site + "/"); r.Status != http.StatusOK {
		t.Errorf("fail_closed with Redis down, anonymous request: want 200 from the app, got %s", r)
	}
	// For the record: a session logged in before the outage. The lost
	// invalidation subscription makes every instance drop its cache
	// (resync), so it needs the store as well.
	t.Logf("fail_closed with Redis down, session from before the outage: %d", pre.get(closed.Site+"/account").Status)

	srv.Restart(t)
	d := eventually(t, 10*time.Second, 200*time.Millisecond, func() (bool, string) {
		nc := newClient(t, uaFirefoxLinux, ipOther)
		nc.login(open.Site, "alice", "alice")
		status, body := open.adminDo(t, http.MethodGet, "/sessions/"+realm+"/users/alice/sessions")
		return status == http.StatusOK && strings.Contains(string(body), ipOther), "login not tracked yet: " + string(body)
	})
	t.Logf("logins tracked again %v after Redis came back", d)
	if !open.Running() || !closed.Running() {
		t.Fatal("caddy exited after Redis came back")
	}
	// fail_closed passes an unknown token again once Redis answers.
	eventually(t, 5*time.Second, 100*time.Millisecond, func() (bool, string) {
		rr, err := stranger.send(false, http.MethodGet, closed.Site+"/", nil, func(q *http.Request) {
			q.Header.Set("Cookie", "shop_session="+strings.Repeat("r", 43))
		})
		if err != nil {
			return false, err.Error()
		}
		return rr.Status == http.StatusOK, "fail_closed still refusing: " + rr.String()
	})
}

// TestRevokedStaysRevokedWhenRedisHangs: revoke all of a user's sessions,
// then pause Redis (SIGSTOP): the revoked browser's next request is
// refused, from the instance's deny list, not let through untracked; and
// so is a logged-out cookie, also on an instance started after both, which
// never saw either cookie (it replayed the invalidation log). A browser the
// instance never saw passes untracked, as documented for an outage.
func TestRevokedStaysRevokedWhenRedisHangs(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	_, up := startShop(t, true)
	const realm = "hang"
	c := startCaddy(t, caddyfile("", shopSite(up, "store "+srv.URL()+"\nsecret "+e2eSecret+"\nrealm "+realm+"\nlogin @login\nlogout @logout", "")))

	alice := newClient(t, uaChromeWindows, ipLondon)
	alice.login(c.Site, "alice", "alice")
	if r := alice.get(c.Site + "/account"); r.Status != http.StatusOK {
		t.Fatalf("before: %s", r)
	}
	bob := newClient(t, uaFirefoxLinux, ipMilton)
	bob.login(c.Site, "bob", "bob")
	bobCookie := bob.cookieHeader(c.Site)
	if r := bob.get(c.Site + "/logout"); r.Status >= 400 {
		t.Fatalf("bob's logout: %s", r)
	}
	c.adminWant(t, http.MethodDelete, userPath(realm, "alice")+"/sessions", "", http.StatusOK, nil)
	aliceCookie := alice.cookieHeader(c.Site)

	// A second instance, started now: it learns both from the log.
	later := startCaddy(t, caddyfile("", shopSite(up, "store "+srv.URL()+"\nsecret "+e2eSecret+"\nrealm "+realm+"\nlogin @login\nlogout @logout", "")))
	eventually(t, 10*time.Second, 20*time.Millisecond, func() (bool, string) {
		var idx struct {
			Denied int `json:"denied_tokens"`
		}
		body := later.adminJSON(t, http.MethodGet, "/sessions/", http.StatusOK, &idx)
		return idx.Denied >= 2, "the new instance has not replayed the log: " + string(body)
	})

	srv.Pause(t)
	defer srv.Resume(t)
	if r := alice.get(c.Site + "/account"); r.Status != http.StatusUnauthorized {
		t.Errorf("the revoked browser with Redis paused: want 401, got %s", r)
	}
	for _, inst := range []*Caddy{c, later} {
		r, err := newClient(t, uaFirefoxLinux, ipMilton).send(false, http.MethodGet, inst.Site+"/account", nil, func(q *http.Request) { q.Header.Set("Cookie", bobCookie) })
		if err != nil || r.Status != http.StatusUnauthorized {
			t.Errorf("a logged-out cookie with Redis paused: want 401, got %v %v", r, err)
		}
	}
	r, err := newClient(t, uaChromeWindows, ipLondon).send(false, http.MethodGet, later.Site+"/account", nil, func(q *http.Request) { q.Header.Set("Cookie", aliceCookie) })
	if err != nil || r.Status != http.StatusUnauthorized {
		t.Errorf("the revoked cookie on an instance started after the revocation, Redis paused: want 401, got %v %v", r, err)
	}
	carol := newClient(t, uaIPhone, ipLondon)
	if r := carol.get(c.Site + "/"); r.Status != http.StatusOK {
		t.Errorf("an anonymous visitor with Redis paused: %s", r)
	}
}
