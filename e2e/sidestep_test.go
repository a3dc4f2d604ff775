package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// phpLikeApp behaves like a PHP app that calls session_start() on every
// request: a request without its cookie gets an anonymous session id; a
// successful login regenerates the id (session_regenerate_id(true)); user
// names compare case-insensitively, as WordPress and most shops do;
// /elevate regenerates the id mid-session; /logout only expires the
// browser's cookie and keeps the server session (the worst case). Every
// answer says whom the app served (X-App-User) and whom the module said it
// tracked (X-Tracked, from header_up).
type phpLikeApp struct {
	mu       sync.Mutex
	sessions map[string]string // id -> user ("" anonymous)
	attempts atomic.Int64      // login requests that reached the app
}

func newPHPLikeApp() *phpLikeApp { return &phpLikeApp{sessions: map[string]string{}} }

func (a *phpLikeApp) newID(user string) string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	a.sessions[id] = user
	return id
}

func (a *phpLikeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := ""
	if c, err := r.Cookie("SID"); err == nil {
		if _, ok := a.sessions[c.Value]; ok {
			id = c.Value
		}
	}
	if id == "" { // session_start()
		id = a.newID("")
		http.SetCookie(w, &http.Cookie{Name: "SID", Value: id, Path: "/"})
	}
	user := a.sessions[id]
	w.Header().Set("X-Tracked", r.Header.Get("X-Sessions-User"))
	switch r.URL.Path {
	case "/login":
		if r.Method != http.MethodPost {
			_, _ = io.WriteString(w, "login form")
			break
		}
		a.attempts.Add(1)
		_ = r.ParseForm()
		name := strings.ToLower(strings.TrimSpace(r.PostForm.Get("username")))
		if name == "" || r.PostForm.Get("password") != name {
			_, _ = io.WriteString(w, "wrong password")
			break
		}
		delete(a.sessions, id)
		id = a.newID(name)
		user = name
		http.SetCookie(w, &http.Cookie{Name: "SID", Value: id, Path: "/"})
		w.Header().Set("Location", "/whoami")
		w.WriteHeader(http.StatusFound)
	case "/elevate":
		if user != "" {
			delete(a.sessions, id)
			id = a.newID(user)
			http.SetCookie(w, &http.Cookie{Name: "SID", Value: id, Path: "/"})
		}
	case "/logout":
		http.SetCookie(w, &http.Cookie{Name: "SID", Value: "", Path: "/", MaxAge: -1})
		user = ""
	}
	w.Header().Set("X-App-User", user)
	_, _ = io.WriteString(w, "user="+user)
}

// sidestepSite puts the app behind sessions with the default success rule
// and max_sessions 1, so a failed login that opened a session, a rotation
// counted twice or a name spelled differently would show.
func sidestepSite(env storeEnv, up string) string {
	return `@login {
	method POST
	path /login
}
@logout path /logout
sessions {
` + indent(env.fragment, "\t") + `
	session_cookie SID
	login @login
	user_normalize lower
	logout @logout
	restrict {
		max_sessions 1 block
	}
}
reverse_proxy ` + up + ` {
	header_up X-Sessions-User {http.sessions.user}
}`
}

// TestSidestep is the adversarial table of the controls: every trick a
// client can play with cookies, hosts, login bodies, name spellings,
// cookie-less failed logins, rotation and logout ends refused or tracked
// as the right user; no answer is one the app gave a user the module did
// not track as that user.
func TestSidestep(t *testing.T) {
	for _, s := range []struct {
		name string
		mk   func(testing.TB) storeEnv
	}{
		{"memory", func(testing.TB) storeEnv { return memoryStore() }},
		{"redis", redisStore},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			sidestepSuite(t, s.mk(t))
		})
	}
}

func sidestepSuite(t *testing.T, env storeEnv) {
	app := newPHPLikeApp()
	up := serve(t, app)
	c := startCaddy(t, caddyfile("", sidestepSite(env, up)))
	const realm = "default"

	// untracked fails the test for an answer in which the app served a
	// user whom the module did not track as that user.
	untracked := func(t *testing.T, what string, r *reply) {
		t.Helper()
		if u := r.Header.Get("X-App-User"); u != "" && r.Header.Get("X-Tracked") != u {
			t.Errorf("%s: the app served %q, the module tracked %q: %s", what, u, r.Header.Get("X-Tracked"), r)
		}
	}
	login := func(t *testing.T, cl *client, name string) string {
		t.Helper()
		untracked(t, "login page", cl.get(c.Site+"/login")) // session_start: an anonymous cookie
		r := cl.form(c.Site+"/login", url.Values{"username": {name}, "password": {strings.ToLower(strings.TrimSpace(name))}})
		if r.Status != http.StatusFound {
			t.Fatalf("login %s: %s", name, r)
		}
		w := cl.get(c.Site + "/whoami")
		untracked(t, "after login", w)
		if w.Header.Get("X-App-User") == "" {
			t.Fatalf("login %s: the app does not serve the user: %s", name, w)
		}
		return cl.cookie(c.Site, "SID")
	}
	// raw sends a request with exactly this Cookie header and Host.
	raw := func(t *testing.T, cookie, host string) *reply {
		t.Helper()
		cl := newClient(t, uaChromeWindows, ipLondon)
		r, err := cl.send(false, http.MethodGet, c.Site+"/whoami", nil, func(q *http.Request) {
			q.Header.Set("Cookie", cookie)
			if host != "" {
				q.Host = host
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		untracked(t, "Cookie: "+cookie, r)
		return r
	}

	t.Run("CookieFormsAndHostsAfterRevocation", func(t *testing.T) {
		alice := newClient(t, uaChromeWindows, ipLondon)
		tok := login(t, alice, "alice")
		l := c.Sessions(t, realm, "alice", "active")
		if l.Total != 1 {
			t.Fatalf("alice's sessions: %s", dump(l))
		}
		c.adminWant(t, http.MethodDelete, userPath(realm, "alice")+"/sessions", "", http.StatusOK, nil)
		enc := strings.Replace(tok, tok[3:4], "%"+strings.ToUpper(hex(tok[3])), 1)
		for _, cookie := range []string{
			"SID=" + tok,
			"SIDX=junk; SID=" + tok,
			"SID=junk; SID=" + tok,
			"sid=junk; SID=" + tok,
			"SID =" + tok,
			"SID=\t" + tok,
			"SID= " + tok,
			"SID=" + enc,
			`SID="` + tok + `"`,
			"a=1, SID=" + tok,
			`x="y; SID=` + tok + `; z"`,
			"SID=" + tok + "; SID=junk",
		} {
			if r := raw(t, cookie, ""); r.Header.Get("X-App-User") != "" {
				t.Errorf("revoked token as %q: the app served %q: %s", cookie, r.Header.Get("X-App-User"), r)
			}
		}
		for _, host := range []string{"localhost:" + strings.TrimPrefix(c.Site, "http://127.0.0.1:"), "LOCALHOST", "evil.example"} {
			if r := raw(t, "SID="+tok, host); r.Header.Get("X-App-User") != "" {
				t.Errorf("revoked token with Host %q: the app served %q", host, r.Header.Get("X-App-User"))
			}
		}
	})

	t.Run("LoginBodies", func(t *testing.T) {
		cl := newClient(t, uaChromeWindows, ipLondon)
		untracked(t, "login page", cl.get(c.Site+"/login"))
		long := strings.Repeat("a", 300)
		for _, b := range []struct{ ct, body, reason string }{
			{"application/x-www-form-urlencoded", "username=bob&password=bob&username=carol", "more than once"},
			{"application/x-www-form-urlencoded", "username=bob&password=bob&x=%zz", "malformed"},
			{"application/x-www-form-urlencoded", "username=bob;password=bob", "';'"},
			{"application/x-www-form-urlencoded", "username[]=bob&password=bob", "written as"},
			{"application/json", "username=bob&password=bob", "JSON"},
			{"application/json", `{"username":"bob","username":"carol","password":"bob"}`, "more than once"},
			{"text/plain", "username=bob&password=bob", "not read"},
			{"", "username=bob&password=bob", "Content-Type"},
			{"application/x-www-form-urlencoded", "username=" + long + "&password=" + long, "over 256"},
			{"application/x-www-form-urlencoded", "password=bob", "without"},
			{"application/x-www-form-urlencoded", "username=bob&password=bob&pad=" + strings.Repeat("x", 70<<10), "over 65536"},
		} {
			before := app.attempts.Load()
			r := cl.do(http.MethodPost, c.Site+"/login", strings.NewReader(b.body), func(q *http.Request) {
				if b.ct != "" {
					q.Header.Set("Content-Type", b.ct)
				}
			})
			if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), b.reason) || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s %.60q: want 400 with a JSON reason mentioning %q, got %s", b.ct, b.body, b.reason, r)
			}
			if app.attempts.Load() != before {
				t.Errorf("%s %.60q: the refused login reached the app", b.ct, b.body)
			}
		}
		for _, u := range []string{"bob", "carol"} {
			if l := c.Sessions(t, realm, u, "all"); l.Total != 0 {
				t.Errorf("%s has sessions after refused logins: %s", u, dump(l))
			}
		}
	})

	t.Run("NameSpellingsAreOneUser", func(t *testing.T) {
		a := newClient(t, uaChromeWindows, ipLondon)
		login(t, a, " Erin")
		b := newClient(t, uaFirefoxLinux, ipMilton)
		b.get(c.Site + "/login")
		r := b.form(c.Site+"/login", url.Values{"username": {"ERIN"}, "password": {"erin"}})
		untracked(t, "second spelling", r)
		if w := b.get(c.Site + "/whoami"); w.Status != http.StatusForbidden {
			t.Errorf("a second session of erin under max_sessions 1 block: want 403, got %s", w)
		}
		if l := c.Sessions(t, realm, "erin", "active"); l.Total != 1 {
			t.Errorf("erin's active sessions: %s", dump(l))
		}
		for _, u := range []string{" Erin", "Erin", "ERIN"} {
			if l := c.Sessions(t, realm, u, "all"); l.Total != 0 {
				t.Errorf("a separate user %q: %s", u, dump(l))
			}
		}
	})

	t.Run("FailedLoginsOpenNothing", func(t *testing.T) {
		victim := newClient(t, uaChromeWindows, ipLondon)
		login(t, victim, "dave")
		for i := 0; i < 3; i++ {
			// No cookie: refused, never reaches the app.
			r := newClient(t, uaFirefoxLinux, ipMilton).form(c.Site+"/login", url.Values{"username": {"dave"}, "password": {"wrong"}})
			if r.Status != http.StatusBadRequest {
				t.Errorf("cookie-less login: want 400, got %s", r)
			}
			// With the anonymous cookie: the app answers the form, and
			// nothing opens.
			att := newClient(t, uaFirefoxLinux, ipMilton)
			att.get(c.Site + "/login")
			r = att.form(c.Site+"/login", url.Values{"username": {"dave"}, "password": {"wrong"}})
			if r.Status != http.StatusOK {
				t.Errorf("failed login: %s", r)
			}
			untracked(t, "failed login", att.get(c.Site+"/whoami"))
			// A made-up cookie, which the app (strict, like PHP's
			// use_strict_mode) replaces on any answer: refused, and
			// the cookie expired so the browser gets a real one.
			r = newClient(t, uaFirefoxLinux, ipMilton).do(http.MethodPost, c.Site+"/login",
				strings.NewReader("username=dave&password=wrong"), func(q *http.Request) {
					q.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					q.Header.Set("Cookie", "SID=made-up-by-the-attacker")
				})
			if r.Status != http.StatusBadRequest || !r.expires("SID") {
				t.Errorf("login with a cookie the app never issued: want 400 expiring it, got %s", r)
			}
		}
		if l := c.Sessions(t, realm, "dave", "all"); l.Total != 1 {
			t.Errorf("dave's sessions after failed logins: %s", dump(l))
		}
		if v := c.Violations(t, realm, "dave"); len(v) != 0 {
			t.Errorf("failed logins charged dave violations: %v", dump(v))
		}
		if w := victim.get(c.Site + "/whoami"); w.Header.Get("X-App-User") != "dave" || w.Header.Get("X-Tracked") != "dave" {
			t.Errorf("dave's own session after the attempts: %s", w)
		}
	})

	t.Run("RotationContinuesTheSession", func(t *testing.T) {
		cl := newClient(t, uaChromeWindows, ipLondon)
		first := login(t, cl, "frank")
		before := c.Sessions(t, realm, "frank", "active")
		r := cl.get(c.Site + "/elevate")
		untracked(t, "elevate", r)
		if rotated := cl.cookie(c.Site, "SID"); rotated == first {
			t.Fatalf("the app did not rotate its cookie: %s", r)
		}
		w := cl.get(c.Site + "/whoami")
		untracked(t, "after rotation", w)
		if w.Status != http.StatusOK || w.Header.Get("X-Tracked") != "frank" {
			t.Fatalf("after rotation under max_sessions 1: %s", w)
		}
		after := c.Sessions(t, realm, "frank", "all")
		if after.Total != 1 || len(before.Sessions) != 1 || after.Sessions[0].ID != before.Sessions[0].ID {
			t.Errorf("rotation: sessions before %s, after %s; want the same one", dump(before), dump(after))
		}
		if v := c.Violations(t, realm, "frank"); len(v) != 0 {
			t.Errorf("rotation recorded violations: %s", dump(v))
		}
		// Revoking the session stops the rotated cookie too.
		c.adminWant(t, http.MethodDelete, userPath(realm, "frank")+"/sessions", "", http.StatusOK, nil)
		if r := raw(t, "SID="+cl.cookie(c.Site, "SID"), ""); r.Header.Get("X-App-User") != "" {
			t.Errorf("rotated cookie after revocation: %s", r)
		}
	})

	t.Run("LogoutIsFinal", func(t *testing.T) {
		cl := newClient(t, uaChromeWindows, ipLondon)
		tok := login(t, cl, "grace")
		r := cl.get(c.Site + "/logout")
		untracked(t, "logout", r)
		l := c.Sessions(t, realm, "grace", "all")
		if l.Total != 1 || l.Sessions[0].EndReason != "logout" {
			t.Fatalf("after logout: %s", dump(l))
		}
		// The app only cleared the browser's cookie: a copy of it would
		// still work there. The proxy refuses it.
		rr := raw(t, "SID="+tok, "")
		if rr.Status != http.StatusUnauthorized || rr.Header.Get("X-App-User") != "" {
			t.Errorf("old cookie after logout: want 401, got %s", rr)
		}
		// The same browser signs in again.
		login(t, cl, "grace")
	})
}

func hex(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

// TestCookieChurnIsReported: an app that sets its session cookie anew on
// ordinary answers (Rails' and Laravel's cookie sessions) makes the default
// success rule unsound, since a failed login's answer replaces the cookie
// too. The module says so, once, naming login_success.
func TestCookieChurnIsReported(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	up := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "SID", Value: "v" + strings.Repeat("x", 8) + string(rune('a'+n.Add(1)%26)), Path: "/"})
		_, _ = io.WriteString(w, "page")
	}))
	c := startCaddy(t, caddyfile("", `@login {
	method POST
	path /login
}
sessions {
	store memory
	session_cookie SID
	login @login
}
reverse_proxy `+up))
	cl := newClient(t, uaChromeWindows, ipLondon)
	const warning = "a new cookie does not prove a login, so set login_success"
	cl.get(c.Site + "/")
	if strings.Contains(c.Log(), warning) {
		t.Fatal("warned before the app replaced a cookie it issued")
	}
	for i := 0; i < 3; i++ {
		cl.get(c.Site + "/")
	}
	eventually(t, 5*time.Second, 20*time.Millisecond, func() (bool, string) {
		return strings.Count(c.Log(), warning) == 1, c.LogTail(20)
	})
}

// TestNewCookieMisfitIsReported: login_success new_cookie is only sound for
// an app whose cookie exists only after login; one that gives anonymous
// visitors a cookie (PHP's session_start()) is reported once.
func TestNewCookieMisfitIsReported(t *testing.T) {
	t.Parallel()
	up := serve(t, newPHPLikeApp())
	c := startCaddy(t, caddyfile("", `@login {
	method POST
	path /login
}
sessions {
	store memory
	session_cookie SID
	login @login
	login_success new_cookie
}
reverse_proxy `+up))
	const warning = "login_success new_cookie does not fit this app"
	for i := 0; i < 3; i++ {
		newClient(t, uaChromeWindows, ipLondon).get(c.Site + "/")
	}
	eventually(t, 5*time.Second, 20*time.Millisecond, func() (bool, string) {
		return strings.Count(c.Log(), warning) == 1, c.LogTail(20)
	})
}
