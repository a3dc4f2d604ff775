package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-sessions/caddy-sessions/internal/realapps"
)

// TestRealPHPApp runs the login, failed-login, rotation, logout and
// revocation scenarios through Caddy (php_fastcgi) against a real PHP app
// served by php-fpm that calls session_start() on every request, with the
// configuration of examples/php_session.Caddyfile on Redis.
func TestRealPHPApp(t *testing.T) {
	t.Parallel()
	app := realapps.PHPSessionApp(t)
	env := redisStore(t)
	site := `@login {
	method POST
	path /login.php
}
@logout path /logout.php
sessions {
` + indent(env.fragment, "\t") + `
	session_cookie PHPSESSID
	login @login
	user_field username
	user_normalize lower
	logout @logout
	restrict {
		max_sessions 1 block
	}
}
root * ` + app.Root + `
php_fastcgi ` + app.Upstream
	c := startCaddy(t, caddyfile("", site))
	const realm = "default"

	// As in TestSidestep: whom the app served must be whom the module
	// tracked. The module's user goes nowhere upstream here, so it is
	// read from the admin API instead: an answer for a user needs an
	// active session of that user.
	served := func(r *reply) string { return r.Header.Get("X-App-User") }
	tracked := func(t *testing.T, user string) int {
		t.Helper()
		return c.Sessions(t, realm, user, "active").Total
	}
	login := func(t *testing.T, cl *client, user string) *reply {
		t.Helper()
		if r := cl.get(c.Site + "/"); r.Status != http.StatusOK || served(r) != "" {
			t.Fatalf("anonymous page: %s", r)
		}
		return cl.form(c.Site+"/login.php", url.Values{"username": {user}, "password": {app.Users[user]}})
	}

	alice := newClient(t, uaChromeWindows, ipLondon)
	if r := login(t, alice, "alice"); r.Status != http.StatusFound {
		t.Fatalf("alice's login: %s", r)
	}
	if r := alice.get(c.Site + "/"); served(r) != "alice" || tracked(t, "alice") != 1 {
		t.Fatalf("after login: served %q, tracked %d", served(r), tracked(t, "alice"))
	}

	// Failed logins for bob: no cookie (400, never reaches PHP), the
	// anonymous cookie PHP issued (PHP answers the form), a made-up
	// cookie that PHP's strict mode would replace (400): nothing opens.
	for i := 0; i < 3; i++ {
		if r := newClient(t, uaFirefoxLinux, ipMilton).form(c.Site+"/login.php", url.Values{"username": {"bob"}, "password": {"wrong"}}); r.Status != http.StatusBadRequest {
			t.Errorf("cookie-less login: %s", r)
		}
		att := newClient(t, uaFirefoxLinux, ipMilton)
		if r := login(t, att, "bob"); r.Status != http.StatusFound {
			t.Fatalf("bob's own login: %s", r)
		}
		att2 := newClient(t, uaFirefoxLinux, ipMilton)
		att2.get(c.Site + "/")
		if r := att2.form(c.Site+"/login.php", url.Values{"username": {"bob"}, "password": {"wrong"}}); r.Status != http.StatusOK || served(r) != "" {
			t.Errorf("failed login with PHP's cookie: %s", r)
		}
		r := att2.do(http.MethodPost, c.Site+"/login.php", strings.NewReader("username=bob&password=wrong"), func(q *http.Request) {
			q.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			q.Header.Set("Cookie", "PHPSESSID=madeup0123456789")
		})
		if r.Status != http.StatusBadRequest {
			t.Errorf("login with a made-up cookie: %s", r)
		}
		c.adminWant(t, http.MethodDelete, userPath(realm, "bob")+"/sessions", "", http.StatusOK, nil)
	}
	if v := c.Violations(t, realm, "bob"); len(v) != 0 {
		t.Errorf("failed logins charged bob: %s", dump(v))
	}

	// Rotation (session_regenerate_id mid-session) under max_sessions 1.
	before := c.Sessions(t, realm, "alice", "active")
	old := alice.cookie(c.Site, "PHPSESSID")
	if r := alice.get(c.Site + "/elevate.php"); r.Status != http.StatusOK {
		t.Fatalf("elevate: %s", r)
	}
	if alice.cookie(c.Site, "PHPSESSID") == old {
		t.Fatal("PHP did not rotate its session id")
	}
	r := alice.get(c.Site + "/")
	after := c.Sessions(t, realm, "alice", "all")
	if served(r) != "alice" || r.Status != http.StatusOK || after.Total != 1 || after.Sessions[0].ID != before.Sessions[0].ID {
		t.Fatalf("after rotation: %s; sessions %s", r, dump(after))
	}
	if v := c.Violations(t, realm, "alice"); len(v) != 0 {
		t.Errorf("rotation recorded violations: %s", dump(v))
	}

	// Revocation refuses the current cookie; a new login works.
	c.adminWant(t, http.MethodDelete, userPath(realm, "alice")+"/sessions", "", http.StatusOK, nil)
	if r := alice.get(c.Site + "/"); r.Status != http.StatusUnauthorized || served(r) != "" {
		t.Errorf("revoked cookie: %s", r)
	}
	if r := login(t, alice, "alice"); r.Status != http.StatusFound {
		t.Fatalf("login after revocation: %s", r)
	}
	tok := alice.cookie(c.Site, "PHPSESSID")

	// Logout: the old id is refused from then on.
	if r := alice.get(c.Site + "/logout.php"); r.Status != http.StatusFound {
		t.Fatalf("logout: %s", r)
	}
	if l := c.Sessions(t, realm, "alice", "all"); l.Total < 2 || l.Sessions[0].EndReason != "logout" {
		t.Fatalf("after logout: %s", dump(l))
	}
	replay := newClient(t, uaChromeWindows, ipLondon)
	rr, err := replay.send(false, http.MethodGet, c.Site+"/", nil, func(q *http.Request) { q.Header.Set("Cookie", "PHPSESSID="+tok) })
	if err != nil {
		t.Fatal(err)
	}
	if rr.Status != http.StatusUnauthorized || served(rr) != "" {
		t.Errorf("logged-out id replayed: %s", rr)
	}
}
