package e2e

import (
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-sessions/caddy-sessions/internal/realapps"
)

// appDriver plays a browser against one real application behind Caddy.
type appDriver struct {
	name  string
	start func(testing.TB) *realapps.App
	// example is the app's Caddyfile in examples/: the test runs its
	// site as written, but for the addresses (exampleSite).
	example string
	// pages are paths that need a login, each authenticated by its
	// cookies (WordPress: the site by wordpress_logged_in_*, /wp-admin/
	// by wordpress_*).
	pages []string
	// served is the user the app served an answer to, "" for anonymous.
	served func(r *reply) string
	// login runs the whole login flow with a password and returns the
	// login answer; success says whether it is a successful one.
	login   func(t *testing.T, site string, cl *client, user, password string) *reply
	success func(r *reply) bool
	logout  func(t *testing.T, site string, cl *client)
	// rotate changes the session cookie mid-session, if the app does.
	rotate func(t *testing.T, site string, cl *client)
	// folds: the app logs in other spellings of a name as the same user.
	folds bool
	// loginPath and userField are the login form's address and name field.
	loginPath, userField string
}

const trackedHeader = `header {
	defer
	X-Tracked {http.sessions.user}
}`

var (
	wpDisplayName = regexp.MustCompile(`class="display-name">([^<]+)<`)
	wpLogoutURL   = regexp.MustCompile(`wp-login\.php\?action=logout&(?:amp;|#038;)_wpnonce=([0-9a-f]+)`)
	redmineUser   = regexp.MustCompile(`Logged in as <a [^>]*>([^<]+)</a>`)
	redmineToken  = regexp.MustCompile(`name="authenticity_token" value="([^"]+)"`)
	redmineMeta   = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)"`)
)

func firstGroup(re *regexp.Regexp, b []byte) string {
	if m := re.FindSubmatch(b); m != nil {
		return html.UnescapeString(string(m[1]))
	}
	return ""
}

var appDrivers = []appDriver{
	{
		name:    "php",
		start:   realapps.PHPSessionApp,
		example: "php_session.Caddyfile",
		pages:   []string{"/"},
		served:  func(r *reply) string { return r.Header.Get("X-App-User") },
		login: func(t *testing.T, site string, cl *client, user, password string) *reply {
			cl.get(site + "/")
			return cl.form(site+"/login.php", url.Values{"username": {user}, "password": {password}})
		},
		success: func(r *reply) bool { return r.Status == http.StatusFound },
		logout: func(t *testing.T, site string, cl *client) {
			if r := cl.get(site + "/logout.php"); r.Status != http.StatusFound {
				t.Fatalf("logout: %s", r)
			}
		},
		rotate: func(t *testing.T, site string, cl *client) {
			if r := cl.get(site + "/elevate.php"); r.Status != http.StatusOK {
				t.Fatalf("elevate: %s", r)
			}
		},
		loginPath: "/login.php", userField: "username",
	},
	{
		name:    "wordpress",
		start:   realapps.WordPress,
		example: "wordpress.Caddyfile",
		pages:   []string{"/", "/wp-admin/"},
		served: func(r *reply) string {
			return firstGroup(wpDisplayName, r.Body)
		},
		login: func(t *testing.T, site string, cl *client, user, password string) *reply {
			cl.get(site + "/wp-login.php")
			return cl.form(site+"/wp-login.php", url.Values{
				"log": {user}, "pwd": {password}, "wp-submit": {"Log In"},
				"redirect_to": {site + "/wp-admin/"}, "testcookie": {"1"},
			})
		},
		success: func(r *reply) bool { return r.Status == http.StatusFound },
		logout: func(t *testing.T, site string, cl *client) {
			nonce := firstGroup(wpLogoutURL, cl.get(site+"/wp-admin/").Body)
			if nonce == "" {
				t.Fatal("no logout link on /wp-admin/")
			}
			if r := cl.get(site + "/wp-login.php?action=logout&_wpnonce=" + nonce); r.Status != http.StatusFound {
				t.Fatalf("logout: %s", r)
			}
		},
		folds:     true,
		loginPath: "/wp-login.php", userField: "log",
	},
	{
		name:    "redmine",
		start:   realapps.Redmine,
		example: "redmine.Caddyfile",
		pages:   []string{"/my/page"},
		served:  func(r *reply) string { return firstGroup(redmineUser, r.Body) },
		login: func(t *testing.T, site string, cl *client, user, password string) *reply {
			tok := firstGroup(redmineToken, cl.get(site+"/login").Body)
			return cl.form(site+"/login", url.Values{
				"utf8": {"✓"}, "authenticity_token": {tok}, "username": {user}, "password": {password}, "login": {"Login"},
			})
		},
		success: func(r *reply) bool { return r.Status == http.StatusFound },
		logout: func(t *testing.T, site string, cl *client) {
			tok := firstGroup(redmineMeta, cl.get(site+"/my/page").Body)
			if r := cl.form(site+"/logout", url.Values{"_method": {"post"}, "authenticity_token": {tok}}); r.Status != http.StatusFound {
				t.Fatalf("logout: %s", r)
			}
		},
		// Rails' cookie store sets a new value on almost every answer.
		rotate:    func(t *testing.T, site string, cl *client) { cl.get(site + "/projects") },
		folds:     true,
		loginPath: "/login", userField: "username",
	},
}

// TestRealApps runs the scenarios of the controls through Caddy against
// real applications from Debian's packages, configured as their examples:
// login, failed logins (which must open nothing), other spellings of a
// name (one user), rotation (one session), revocation (refused on every
// path, in every cookie spelling and under every Host), logout (the old
// cookies refused). On every answer, a user the app served is the user the
// module tracked.
func TestRealApps(t *testing.T) {
	for _, d := range appDrivers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			realAppSuite(t, d)
		})
	}
}

func realAppSuite(t *testing.T, d appDriver) {
	app := d.start(t)
	env := redisStore(t)
	site, realm := exampleSite(t, d.example, app, env, "restrict {\n\tmax_sessions 1 block\n}")
	c := startCaddy(t, caddyfile("", site))
	pw := func(u string) string { return app.Users[u] }

	check := func(t *testing.T, what string, r *reply) string {
		t.Helper()
		u := d.served(r)
		if u != "" && r.Header.Get("X-Tracked") != strings.ToLower(u) {
			t.Errorf("%s: the app served %q, the module tracked %q (status %d)", what, u, r.Header.Get("X-Tracked"), r.Status)
		}
		return u
	}
	page := func(t *testing.T, cl *client, path string) string {
		t.Helper()
		return check(t, "GET "+path, cl.get(c.Site+path))
	}
	login := func(t *testing.T, cl *client, user string) {
		t.Helper()
		r := d.login(t, c.Site, cl, user, pw(strings.ToLower(strings.TrimSpace(user))))
		check(t, "login", r)
		if !d.success(r) {
			t.Fatalf("login %s: %s", user, r)
		}
	}
	active := func(t *testing.T, user string) int {
		t.Helper()
		return c.Sessions(t, realm, user, "active").Total
	}
	revokeAll := func(t *testing.T, user string) {
		t.Helper()
		c.adminWant(t, http.MethodDelete, userPath(realm, user)+"/sessions", "", http.StatusOK, nil)
	}

	alice := newClient(t, uaChromeWindows, ipLondon)
	t.Run("Login", func(t *testing.T) {
		login(t, alice, "alice")
		for _, p := range d.pages {
			if u := page(t, alice, p); u != "alice" {
				t.Errorf("GET %s after login: served %q", p, u)
			}
		}
		if n := active(t, "alice"); n != 1 {
			t.Errorf("alice's active sessions: %d", n)
		}
	})

	t.Run("FailedLogins", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			cl := newClient(t, uaFirefoxLinux, ipMilton)
			r := d.login(t, c.Site, cl, "bob", "wrong-password")
			check(t, "failed login", r)
			if d.success(r) {
				t.Fatalf("a wrong password succeeded: %s", r)
			}
			for _, p := range d.pages {
				if u := page(t, cl, p); u != "" {
					t.Errorf("after a failed login, GET %s served %q", p, u)
				}
			}
		}
		// Without any cookie (an attacker's script): nothing opens.
		for i := 0; i < 3; i++ {
			cl := newClient(t, uaFirefoxLinux, ipMilton)
			check(t, "cookie-less failed login", cl.form(c.Site+d.loginPath, url.Values{d.userField: {"bob"}, "password": {"x"}, "pwd": {"x"}}))
			if u := page(t, cl, d.pages[0]); u != "" {
				t.Errorf("after a cookie-less failed login: served %q", u)
			}
		}
		if l := c.Sessions(t, realm, "bob", "all"); l.Total != 0 {
			t.Errorf("failed logins opened sessions: %s", dump(l))
		}
		bob := newClient(t, uaFirefoxLinux, ipMilton)
		login(t, bob, "bob")
		if u := page(t, bob, d.pages[0]); u != "bob" {
			t.Errorf("bob's own login after the attempts: served %q", u)
		}
		if v := c.Violations(t, realm, "bob"); len(v) != 0 {
			t.Errorf("failed logins charged bob: %s", dump(v))
		}
	})

	t.Run("LoginBodies", func(t *testing.T) {
		cl := newClient(t, uaFirefoxLinux, ipMilton)
		f := d.userField
		for _, b := range []struct{ ct, body string }{
			{"application/x-www-form-urlencoded", f + "=carol&password=x&" + f + "=bob"},
			{"application/x-www-form-urlencoded", f + "=carol&password=x&x=%zz"},
			{"application/x-www-form-urlencoded", f + "=carol;password=x"},
			{"application/x-www-form-urlencoded", f + "[]=carol&password=x"},
			{"application/json", f + "=carol&password=x"},
			{"text/plain", f + "=carol&password=x"},
			{"", f + "=carol&password=x"},
			{"application/x-www-form-urlencoded", f + "=carol&pad=" + strings.Repeat("x", 70<<10)},
		} {
			r := cl.do(http.MethodPost, c.Site+d.loginPath, strings.NewReader(b.body), func(q *http.Request) {
				if b.ct != "" {
					q.Header.Set("Content-Type", b.ct)
				}
			})
			if r.Status != http.StatusBadRequest || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s %.50q: want the module's 400, got %s", b.ct, b.body, r)
			}
		}
	})

	if d.folds {
		t.Run("NameSpellings", func(t *testing.T) {
			other := newClient(t, uaFirefoxLinux, ipMilton)
			r := d.login(t, c.Site, other, "ALICE", pw("alice"))
			check(t, "login as ALICE", r)
			// One user: max_sessions 1 refuses alice's second session.
			if r := other.get(c.Site + d.pages[0]); r.Status != http.StatusForbidden {
				t.Errorf("a second session as ALICE under max_sessions 1: %s", r)
			}
			if n := active(t, "alice"); n != 1 {
				t.Errorf("alice's active sessions: %d", n)
			}
			if code, _ := c.adminSend(t, http.MethodGet, userPath(realm, "ALICE"), ""); code != http.StatusNotFound {
				t.Errorf("a separate user ALICE: %d", code)
			}
		})
	}

	if d.rotate != nil {
		t.Run("Rotation", func(t *testing.T) {
			before := c.Sessions(t, realm, "alice", "active")
			d.rotate(t, c.Site, alice)
			for _, p := range d.pages {
				if u := page(t, alice, p); u != "alice" {
					t.Errorf("GET %s after rotation: served %q", p, u)
				}
			}
			after := c.Sessions(t, realm, "alice", "active")
			if after.Total != 1 || before.Total != 1 || after.Sessions[0].ID != before.Sessions[0].ID {
				t.Errorf("rotation: before %s after %s", dump(before), dump(after))
			}
		})
	}

	t.Run("Revocation", func(t *testing.T) {
		type kept struct{ path, cookie string }
		var headers []kept
		for _, p := range d.pages {
			headers = append(headers, kept{p, alice.cookieHeader(c.Site + p)})
		}
		revokeAll(t, "alice")
		for _, h := range headers {
			for _, variant := range cookieVariants(h.cookie) {
				for _, host := range []string{"", "localhost:" + strings.TrimPrefix(c.Site, "http://127.0.0.1:")} {
					r, err := newClient(t, uaChromeWindows, ipLondon).send(false, http.MethodGet, c.Site+h.path, nil, func(q *http.Request) {
						q.Header.Set("Cookie", variant)
						if host != "" {
							q.Host = host
						}
					})
					if err != nil {
						t.Fatal(err)
					}
					if u := check(t, "revoked", r); u != "" {
						t.Errorf("GET %s with Host %q and revoked cookies %q: the app served %q", h.path, host, variant, u)
					}
				}
			}
		}
		// The revoked browser is refused once (its cookies expired), then
		// loads the login page anew and signs in again.
		if r := alice.get(c.Site + d.pages[0]); d.served(r) != "" || r.Status < 300 {
			t.Errorf("the revoked browser: %s", r)
		}
		login(t, alice, "alice")
		if u := page(t, alice, d.pages[0]); u != "alice" {
			t.Errorf("after signing in again: served %q", u)
		}
	})

	t.Run("Logout", func(t *testing.T) {
		var headers []string
		for _, p := range d.pages {
			headers = append(headers, alice.cookieHeader(c.Site+p))
		}
		d.logout(t, c.Site, alice)
		l := c.Sessions(t, realm, "alice", "all")
		if l.Total == 0 || l.Sessions[0].EndReason != "logout" {
			t.Fatalf("after logout: %s", dump(l))
		}
		for i, p := range d.pages {
			r, err := newClient(t, uaChromeWindows, ipLondon).send(false, http.MethodGet, c.Site+p, nil, func(q *http.Request) {
				q.Header.Set("Cookie", headers[i])
			})
			if err != nil {
				t.Fatal(err)
			}
			if u := check(t, "replay after logout", r); u != "" {
				t.Errorf("GET %s with the logged-out cookies: served %q", p, u)
			}
		}
	})
}

// exampleSite is the site block of examples/<name> with this machine's
// addresses: the test's store (and secret) instead of the example's, extra
// in the sessions block, the app's FastCGI or HTTP address and document
// root, no GeoIP database and no risk block (its alerts would need mail
// and webhook servers and their secrets); plus a deferred X-Tracked
// response header naming the user the module tracked. It returns the
// example's realm.
func exampleSite(t testing.TB, name string, app *realapps.App, env storeEnv, extra string) (site, realm string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	realm = "default"
	var out []string
	depth, in, skipTo := 0, false, -1
	for _, line := range strings.Split(string(raw), "\n") {
		trim := strings.TrimSpace(line)
		if !in {
			if strings.HasSuffix(trim, "{") && !strings.HasPrefix(line, "\t") && !strings.HasPrefix(trim, "#") {
				in, depth = true, 1
			}
			continue
		}
		before := depth
		depth += strings.Count(line, "{") - strings.Count(line, "}")
		if depth == 0 {
			break
		}
		if skipTo >= 0 {
			if depth <= skipTo {
				skipTo = -1
			}
			continue
		}
		ind := line[:len(line)-len(strings.TrimLeft(line, "\t"))]
		word, _, _ := strings.Cut(trim, " ")
		if word == "risk" && depth > before {
			skipTo = before
			continue
		}
		switch word {
		case "store":
			out = append(out, indent(env.fragment+"\n"+extra, ind))
			continue
		case "secret", "geoip":
			continue
		case "realm":
			realm = strings.TrimSpace(strings.TrimPrefix(trim, "realm"))
		case "php_fastcgi", "reverse_proxy":
			line = ind + word + " " + app.Upstream
		case "root":
			line = ind + "root * " + app.Root
		}
		out = append(out, line)
	}
	if depth != 0 || len(out) == 0 {
		t.Fatalf("examples/%s: no site block found", name)
	}
	return strings.Join(out, "\n") + "\n" + trackedHeader, realm
}

// cookieVariants are spellings of a Cookie header that try to slip its
// cookies past the module: duplicates, spaces, case, quotes, percent
// escapes, legacy comma syntax.
func cookieVariants(h string) []string {
	out := []string{h}
	parts := strings.Split(h, "; ")
	mod := func(f func(name, value string) string) string {
		var b []string
		for _, p := range parts {
			n, v, _ := strings.Cut(p, "=")
			b = append(b, f(n, v))
		}
		return strings.Join(b, "; ")
	}
	out = append(out,
		mod(func(n, v string) string { return n + "=junk; " + n + "=" + v }),
		mod(func(n, v string) string { return n + "x=junk; " + n + "=" + v }),
		mod(func(n, v string) string { return n + " =" + v }),
		mod(func(n, v string) string { return n + "=\t" + v }),
		mod(func(n, v string) string { return n + `="` + v + `"` }),
		mod(func(n, v string) string { return strings.ToUpper(n) + "=junk; " + n + "=" + v }),
		mod(func(n, v string) string { return "a=1, " + n + "=" + v }),
		mod(func(n, v string) string {
			if len(v) < 2 {
				return n + "=" + v
			}
			return n + "=" + v[:1] + "%" + strings.ToUpper(hex(v[1])) + v[2:]
		}),
	)
	return out
}
