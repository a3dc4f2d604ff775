package realapps

import (
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// These tests talk to the real apps directly over HTTP (no Caddy) and pin
// down the behaviour the session proxy depends on: the exact login,
// failed-login and logout exchanges, which cookies are set when, on which
// paths, which ones authenticate where, and whether the apps re-set their
// session cookies on ordinary answers. The PHP apps (php-fpm) are reached
// through fcgiHandler, which maps requests the way Caddy's php_fastcgi does.

// ------------------------------------------------------------------ browser

// browser is a cookie-keeping HTTP client that does not follow redirects,
// so every answer (and its Set-Cookie headers) can be inspected.
type browser struct {
	t    *testing.T
	name string
	base string
	jar  *cookiejar.Jar
	hc   *http.Client
}

type answer struct {
	method, path string
	status       int
	header       http.Header
	body         string
	setCookies   []*http.Cookie // this answer's Set-Cookie headers, parsed
}

func newBrowser(t *testing.T, name, base string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, name: name, base: base, jar: jar, hc: &http.Client{
		Jar:     jar,
		Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

func (b *browser) get(path string) *answer { return b.do(http.MethodGet, path, nil) }

func (b *browser) post(path string, form url.Values) *answer {
	return b.do(http.MethodPost, path, form)
}

func (b *browser) do(method, path string, form url.Values) *answer {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.abs(path), body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) realapps-test")
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	return b.send(req)
}

// bare sends a GET with exactly the given cookies (no jar), e.g. to replay
// an old cookie or to test which cookie authenticates which path.
func (b *browser) bare(path string, cookies ...*http.Cookie) *answer {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.abs(path), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	hc := *b.hc
	hc.Jar = nil
	return (&browser{t: b.t, name: b.name + "(bare)", base: b.base, hc: &hc}).send(req)
}

func (b *browser) abs(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return b.base + path
}

func (b *browser) send(req *http.Request) *answer {
	b.t.Helper()
	var sent []string
	if b.jar != nil {
		for _, c := range b.jar.Cookies(req.URL) {
			sent = append(sent, c.Name)
		}
	}
	for _, c := range req.Cookies() {
		sent = append(sent, c.Name)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s %s: %v", b.name, req.Method, req.URL.RequestURI(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s %s: reading body: %v", b.name, req.Method, req.URL.RequestURI(), err)
	}
	a := &answer{method: req.Method, path: req.URL.RequestURI(), status: resp.StatusCode,
		header: resp.Header, body: string(data), setCookies: resp.Cookies()}
	var lines []string
	for _, sc := range resp.Header.Values("Set-Cookie") {
		lines = append(lines, "\n      Set-Cookie: "+abbrev(sc))
	}
	loc := ""
	if l := resp.Header.Get("Location"); l != "" {
		loc = " -> " + l
	}
	b.t.Logf("%s: %s %s (cookies sent: %s) => %d%s%s", b.name, req.Method, req.URL.RequestURI(),
		strings.Join(sent, ","), resp.StatusCode, loc, strings.Join(lines, ""))
	return a
}

// abbrev shortens long cookie values in logs.
func abbrev(setCookie string) string {
	name, rest, _ := strings.Cut(setCookie, "=")
	val, attrs, _ := strings.Cut(rest, ";")
	if len(val) > 24 {
		val = val[:12] + "…" + val[len(val)-6:]
	}
	if attrs != "" {
		attrs = ";" + attrs
	}
	return name + "=" + val + attrs
}

// cookie returns the jar's cookie name as sent to path.
func (b *browser) cookie(path, name string) *http.Cookie {
	u, _ := url.Parse(b.abs(path))
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// set returns the Set-Cookie entries of a named name.
func (a *answer) set(name string) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range a.setCookies {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// setNames lists "name path" for each Set-Cookie, sorted.
func (a *answer) setNames() []string {
	var out []string
	for _, c := range a.setCookies {
		out = append(out, c.Name+" "+c.Path)
	}
	sort.Strings(out)
	return out
}

func expired(c *http.Cookie) bool {
	return c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(time.Now()))
}

func (a *answer) want(t *testing.T, status int, bodyContains ...string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s %s: status %d, want %d; body:\n%.1500s", a.method, a.path, a.status, status, a.body)
	}
	for _, s := range bodyContains {
		if !strings.Contains(a.body, s) {
			t.Fatalf("%s %s: body lacks %q; body:\n%.3000s", a.method, a.path, s, a.body)
		}
	}
}

func (a *answer) wantNot(t *testing.T, bodyLacks ...string) {
	t.Helper()
	for _, s := range bodyLacks {
		if strings.Contains(a.body, s) {
			t.Fatalf("%s %s: body contains %q", a.method, a.path, s)
		}
	}
}

func (a *answer) wantNoSetCookie(t *testing.T) {
	t.Helper()
	if len(a.setCookies) > 0 {
		t.Fatalf("%s %s: unexpected Set-Cookie %v", a.method, a.path, a.header.Values("Set-Cookie"))
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// serveFastCGI exposes a php-fpm app over HTTP like Caddy's php_fastcgi.
func serveFastCGI(t *testing.T, app *App) *httptest.Server {
	t.Helper()
	if !app.FastCGI || app.Root == "" {
		t.Fatalf("%s: not a FastCGI app: %+v", app.Name, app)
	}
	srv := httptest.NewServer(&fcgiHandler{Addr: app.Upstream, Root: app.Root})
	t.Cleanup(srv.Close)
	return srv
}

// ------------------------------------------------------------- PHP session

func TestPHPSessionApp(t *testing.T) {
	t.Parallel()
	app := PHPSessionApp(t)
	if app.Users["alice"] != "alice" || app.Users["bob"] != "bob" || app.Users["carol"] != "carol" {
		t.Fatalf("users: %v", app.Users)
	}
	base := serveFastCGI(t, app).URL
	b := newBrowser(t, "alice's browser", base)

	// (c) An anonymous first request already gets a session cookie.
	a := b.get("/")
	a.want(t, 200, ">anonymous<")
	if u := a.header.Get("X-App-User"); u != "" {
		t.Fatalf("anonymous X-App-User = %q", u)
	}
	sc := a.set("PHPSESSID")
	if len(sc) != 1 || sc[0].Path != "/" || !sc[0].HttpOnly || sc[0].SameSite != http.SameSiteLaxMode ||
		!sc[0].Expires.IsZero() || sc[0].MaxAge != 0 || len(a.setCookies) != 1 {
		t.Fatalf("anonymous Set-Cookie: %v", a.header.Values("Set-Cookie"))
	}
	anonID := sc[0].Value
	if a.header.Get("X-App-Session") != anonID {
		t.Fatalf("X-App-Session %q != cookie %q", a.header.Get("X-App-Session"), anonID)
	}

	// (f) Ordinary answers do not re-set the cookie.
	a = b.get("/")
	a.want(t, 200, ">anonymous<")
	a.wantNoSetCookie(t)
	if a.header.Get("X-App-Session") != anonID {
		t.Fatal("session id changed on an ordinary answer")
	}
	b.get("/login.php").want(t, 200, `name="username"`, `name="password"`)

	// (b) A failed login: 200, the form again, no new cookie, same session.
	a = b.post("/login.php", url.Values{"username": {"alice"}, "password": {"wrong"}})
	a.want(t, 200, "Invalid username or password", `name="password"`)
	a.wantNoSetCookie(t)
	if a.header.Get("X-App-User") != "" || a.header.Get("X-App-Session") != anonID {
		t.Fatalf("failed login changed the session: user %q session %q", a.header.Get("X-App-User"), a.header.Get("X-App-Session"))
	}
	b.get("/").want(t, 200, ">anonymous<")

	// (a)+(c) A successful login: 302 to / with a new session id.
	a = b.post("/login.php", url.Values{"username": {"alice"}, "password": {"alice"}})
	a.want(t, 302)
	if a.header.Get("Location") != "/" {
		t.Fatalf("login Location = %q", a.header.Get("Location"))
	}
	sc = a.set("PHPSESSID")
	if len(sc) != 1 || sc[0].Value == anonID || sc[0].Value == "" || sc[0].Path != "/" || expired(sc[0]) {
		t.Fatalf("login Set-Cookie: %v", a.header.Values("Set-Cookie"))
	}
	aliceID := sc[0].Value
	if a.header.Get("X-App-User") != "alice" || a.header.Get("X-App-Session") != aliceID {
		t.Fatalf("login answer headers: user %q session %q", a.header.Get("X-App-User"), a.header.Get("X-App-Session"))
	}
	a = b.get("/")
	a.want(t, 200, "logged in as alice")
	a.wantNoSetCookie(t)
	if a.header.Get("X-App-User") != "alice" {
		t.Fatalf("X-App-User = %q", a.header.Get("X-App-User"))
	}

	// The pre-login id is dead (regenerate(true) deleted it). Strict mode:
	// replaying it yields a fresh anonymous session with a new id.
	a = b.bare("/", &http.Cookie{Name: "PHPSESSID", Value: anonID})
	a.want(t, 200, ">anonymous<")
	if sc := a.set("PHPSESSID"); len(sc) != 1 || sc[0].Value == anonID || sc[0].Value == aliceID {
		t.Fatalf("replayed pre-login id: Set-Cookie %v", a.header.Values("Set-Cookie"))
	}

	// Rotation mid-session on privilege change.
	a = b.get("/elevate.php")
	a.want(t, 200, "elevated alice")
	sc = a.set("PHPSESSID")
	if len(sc) != 1 || sc[0].Value == aliceID || sc[0].Path != "/" || expired(sc[0]) {
		t.Fatalf("elevate Set-Cookie: %v", a.header.Values("Set-Cookie"))
	}
	elevatedID := sc[0].Value
	if a.header.Get("X-App-User") != "alice" || a.header.Get("X-App-Session") != elevatedID {
		t.Fatalf("elevate headers: user %q session %q", a.header.Get("X-App-User"), a.header.Get("X-App-Session"))
	}
	a = b.get("/")
	a.want(t, 200, "logged in as alice", `id="elevated"`)
	a.wantNoSetCookie(t)
	a = b.bare("/", &http.Cookie{Name: "PHPSESSID", Value: aliceID})
	a.want(t, 200, ">anonymous<")
	if len(a.set("PHPSESSID")) != 1 {
		t.Fatalf("replayed pre-elevation id: Set-Cookie %v", a.header.Values("Set-Cookie"))
	}
	// The live id works without the jar as well.
	b.bare("/", &http.Cookie{Name: "PHPSESSID", Value: elevatedID}).want(t, 200, "logged in as alice")

	// (d) Logout: 302 to /, cookie expired; the id is dead afterwards.
	a = b.get("/logout.php")
	a.want(t, 302)
	if a.header.Get("Location") != "/" {
		t.Fatalf("logout Location = %q", a.header.Get("Location"))
	}
	sc = a.set("PHPSESSID")
	if len(sc) != 1 || !expired(sc[0]) || sc[0].Path != "/" {
		t.Fatalf("logout Set-Cookie: %v", a.header.Values("Set-Cookie"))
	}
	a = b.get("/")
	a.want(t, 200, ">anonymous<")
	if sc := a.set("PHPSESSID"); len(sc) != 1 || sc[0].Value == elevatedID {
		t.Fatalf("after logout: Set-Cookie %v", a.header.Values("Set-Cookie"))
	}
	a = b.bare("/", &http.Cookie{Name: "PHPSESSID", Value: elevatedID})
	a.want(t, 200, ">anonymous<")

	// Elevation needs a login; anonymous: 403, no rotation.
	a = b.get("/elevate.php")
	a.want(t, 403)
	a.wantNoSetCookie(t)

	// Other users, and independent sessions per browser.
	bob := newBrowser(t, "bob's browser", base)
	bob.get("/")
	bob.post("/login.php", url.Values{"username": {"bob"}, "password": {"bob"}}).want(t, 302)
	a = bob.get("/")
	a.want(t, 200, "logged in as bob")
	if a.header.Get("X-App-User") != "bob" {
		t.Fatalf("bob: X-App-User = %q", a.header.Get("X-App-User"))
	}
	carol := newBrowser(t, "carol's browser", base)
	carol.post("/login.php", url.Values{"username": {"carol"}, "password": {"carol"}}).want(t, 302)
	carol.get("/").want(t, 200, "logged in as carol")
	// A login POST without any prior cookie gets its first cookie there.
	if len(carol.cookie("/", "PHPSESSID").Value) == 0 {
		t.Fatal("carol has no session cookie")
	}
}

// ---------------------------------------------------------------- WordPress

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

var wpLogoutURL = regexp.MustCompile(`wp-login\.php\?action=logout&(?:amp;|#038;)_wpnonce=([0-9a-f]+)`)

func wpLogin(b *browser, user, password string) *answer {
	b.t.Helper()
	return b.post("/wp-login.php", url.Values{
		"log":         {user},
		"pwd":         {password},
		"wp-submit":   {"Log In"},
		"redirect_to": {b.base + "/wp-admin/"},
		"testcookie":  {"1"},
	})
}

func TestWordPress(t *testing.T) {
	t.Parallel()
	app := WordPress(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		if app.Users[u] == "" {
			t.Fatalf("no password for %s: %v", u, app.Users)
		}
	}
	srv := serveFastCGI(t, app)
	base := srv.URL
	host := srv.Listener.Addr().String()
	hash := md5hex("http://" + host) // COOKIEHASH = md5(siteurl), siteurl follows Host
	authName := "wordpress_" + hash
	loggedInName := "wordpress_logged_in_" + hash
	b := newBrowser(t, "alice's browser", base)

	// Anonymous pages set no cookie at all: no session before login.
	a := b.get("/")
	a.want(t, 200)
	a.wantNoSetCookie(t)
	a.wantNot(t, `id="wpadminbar"`)

	// The login page sets only the test cookie (checked by the login POST).
	a = b.get("/wp-login.php")
	a.want(t, 200, `name="log"`, `name="pwd"`, `name="testcookie"`, `action="`+base+`/wp-login.php"`)
	a.wantNot(t, "_wpnonce")
	if got := a.setNames(); !equalStrings(got, []string{"wordpress_test_cookie /"}) {
		t.Fatalf("login page Set-Cookie: %v", a.header.Values("Set-Cookie"))
	}
	if tc := a.set("wordpress_test_cookie")[0]; tc.Value != "WP%20Cookie%20check" || !tc.Expires.IsZero() {
		t.Fatalf("test cookie: %+v", tc)
	}

	// (b) Failed login: 200, error, only the test cookie again.
	a = wpLogin(b, "alice", "wrong-password")
	a.want(t, 200, `id="login_error"`)
	if got := a.setNames(); !equalStrings(got, []string{"wordpress_test_cookie /"}) {
		t.Fatalf("failed login Set-Cookie: %v", a.header.Values("Set-Cookie"))
	}
	a = b.get("/wp-admin/")
	a.want(t, 302)
	if loc := a.header.Get("Location"); !strings.HasPrefix(loc, base+"/wp-login.php?redirect_to=") || !strings.HasSuffix(loc, "&reauth=1") {
		t.Fatalf("anonymous /wp-admin/ Location = %q", loc)
	}
	// Unknown user: same shape of answer.
	wpLogin(b, "mallory", "x").want(t, 200, `id="login_error"`)

	// Surprise: without the test cookie (but with testcookie=1) WordPress
	// answers 200 "Cookies are blocked" - yet wp_signon already ran, so the
	// answer carries valid auth cookies of a real new session. A proxy must
	// treat the Set-Cookie, not the 302, as the sign of a login.
	nocookie := newBrowser(t, "cookieless browser", base)
	a = wpLogin(nocookie, "alice", app.Users["alice"])
	a.want(t, 200, `id="login_error"`, "Cookies are blocked")
	if v := a.set(loggedInName); len(v) != 1 || !strings.HasPrefix(v[0].Value, "alice%7C") {
		t.Fatalf("login without test cookie: Set-Cookie %v", a.header.Values("Set-Cookie"))
	} else {
		nocookie.bare("/", v[0]).want(t, 200, `id="wpadminbar"`, `class="display-name">alice<`)
	}

	// (a)+(c) Successful login: 302 to /wp-admin/ with the three auth
	// cookies (and, as on every wp-login.php answer, the test cookie).
	a = wpLogin(b, "alice", app.Users["alice"])
	a.want(t, 302)
	if loc := a.header.Get("Location"); loc != base+"/wp-admin/" {
		t.Fatalf("login Location = %q", loc)
	}
	want := []string{authName + " /wp-admin", authName + " /wp-content/plugins", loggedInName + " /", "wordpress_test_cookie /"}
	if got := a.setNames(); !equalStrings(got, want) {
		t.Fatalf("login Set-Cookie names/paths = %v, want %v; raw %v", got, want, a.header.Values("Set-Cookie"))
	}
	for _, c := range a.setCookies {
		if c.Name == "wordpress_test_cookie" {
			continue
		}
		// No "Remember me": browser-session cookies; HttpOnly; plain http
		// so no wordpress_sec_ cookie.
		if !c.HttpOnly || !c.Expires.IsZero() || c.MaxAge != 0 || c.Secure {
			t.Fatalf("login cookie attributes: %+v", c)
		}
		// The value names the user: login|expiration|token|hmac.
		parts := strings.Split(c.Value, "%7C")
		if len(parts) != 4 || parts[0] != "alice" {
			t.Fatalf("cookie %s value %q is not alice|exp|token|hmac", c.Name, c.Value)
		}
	}
	authAdmin := a.set(authName)[0]
	loggedIn := a.set(loggedInName)[0]
	if authAdmin.Path != "/wp-admin" {
		authAdmin = a.set(authName)[1]
	}
	if strings.Split(authAdmin.Value, "%7C")[2] != strings.Split(loggedIn.Value, "%7C")[2] {
		t.Fatal("auth and logged_in cookies carry different session tokens")
	}

	// Authenticated pages.
	a = b.get("/wp-admin/")
	a.want(t, 200, "Dashboard", `class="display-name">alice<`)
	adminAnswerCookies := a.setNames()
	a = b.get("/")
	a.want(t, 200, `id="wpadminbar"`, `class="display-name">alice<`)
	a.wantNoSetCookie(t) // (f) front-end answers never touch cookies
	a = b.get("/wp-admin/profile.php")
	a.want(t, 200, `id="your-profile"`)
	// (f) Admin pages (re-)set only the per-user settings cookies
	// wp-settings-<id> / wp-settings-time-<id>, never the auth cookies.
	for _, names := range [][]string{adminAnswerCookies, a.setNames()} {
		for _, n := range names {
			if !strings.HasPrefix(n, "wp-settings-") {
				t.Fatalf("admin page set %q", n)
			}
		}
	}
	if b.cookie("/wp-admin/", authName) == nil || b.cookie("/", authName) != nil ||
		b.cookie("/", loggedInName) == nil || b.cookie("/wp-content/plugins/x", authName) == nil {
		t.Fatal("jar does not hold the cookies on the expected paths")
	}

	// (e) Which cookie authenticates where.
	// logged_in alone: the site (front end) yes, /wp-admin/ no.
	b.bare("/", loggedIn).want(t, 200, `id="wpadminbar"`, `class="display-name">alice<`)
	a = b.bare("/wp-admin/", loggedIn)
	a.want(t, 302)
	if !strings.Contains(a.header.Get("Location"), "/wp-login.php?redirect_to=") {
		t.Fatalf("/wp-admin/ with logged_in only: Location %q", a.header.Get("Location"))
	}
	// The auth cookie (browsers send it only under /wp-admin and
	// /wp-content/plugins) alone is enough for /wp-admin/ ...
	b.bare("/wp-admin/", authAdmin).want(t, 200, "Dashboard")
	// ... and WordPress would accept it on the front end as well.
	b.bare("/", authAdmin).want(t, 200, `id="wpadminbar"`)
	// Nothing: anonymous.
	b.bare("/").wantNot(t, `id="wpadminbar"`)

	// A second, independent session for alice (another browser).
	other := newBrowser(t, "alice's second browser", base)
	other.get("/wp-login.php")
	a = wpLogin(other, "alice", app.Users["alice"])
	a.want(t, 302)
	if a.set(loggedInName)[0].Value == loggedIn.Value {
		t.Fatal("second login reused the cookie value")
	}
	other.get("/wp-admin/").want(t, 200, "Dashboard")

	// (d) Logout. Without a valid nonce WordPress only asks for
	// confirmation (wp_nonce_ays: 403 with a link carrying the nonce).
	a = b.get("/wp-login.php?action=logout")
	a.want(t, 403, "You are attempting to log out")
	a.wantNot(t, `id="loginform"`)
	if n := a.setNames(); !equalStrings(n, []string{"wordpress_test_cookie /"}) {
		t.Fatalf("logout confirmation Set-Cookie: %v", a.header.Values("Set-Cookie"))
	}
	a = b.get("/wp-admin/")
	m := wpLogoutURL.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no logout link on /wp-admin/:\n%.3000s", a.body)
	}
	a = b.get("/wp-login.php?action=logout&_wpnonce=" + m[1])
	a.want(t, 302)
	if loc := a.header.Get("Location"); loc != base+"/wp-login.php?loggedout=true&wp_lang=en_US" {
		t.Fatalf("logout Location = %q", loc)
	}
	cleared := map[string]bool{}
	for _, c := range a.setCookies {
		if c.Name == "wordpress_test_cookie" {
			continue
		}
		if !expired(c) {
			t.Fatalf("logout sets a live cookie: %+v", c)
		}
		cleared[c.Name+" "+c.Path] = true
	}
	for _, n := range []string{authName + " /wp-admin", authName + " /wp-content/plugins", loggedInName + " /",
		"wordpress_sec_" + hash + " /wp-admin", "wordpress_sec_" + hash + " /wp-content/plugins"} {
		if !cleared[n] {
			t.Fatalf("logout does not clear %q; Set-Cookie %v", n, a.header.Values("Set-Cookie"))
		}
	}
	b.get("/").wantNot(t, `id="wpadminbar"`)
	b.get("/wp-admin/").want(t, 302)
	// Server-side revocation: the old cookies are dead ...
	b.bare("/", loggedIn).wantNot(t, `id="wpadminbar"`)
	b.bare("/wp-admin/", authAdmin).want(t, 302)
	// ... but only this session's: the other browser is still logged in.
	other.get("/wp-admin/").want(t, 200, "Dashboard")

	// Other users.
	for _, u := range []string{"bob", "carol"} {
		ub := newBrowser(t, u+"'s browser", base)
		ub.get("/wp-login.php")
		a := wpLogin(ub, u, app.Users[u])
		a.want(t, 302)
		if v := a.set(loggedInName); len(v) != 1 || !strings.HasPrefix(v[0].Value, u+"%7C") {
			t.Fatalf("%s login cookies: %v", u, a.header.Values("Set-Cookie"))
		}
		ub.get("/wp-admin/profile.php").want(t, 200, `class="display-name">`+u+`<`)
	}
}

// ------------------------------------------------------------------ Redmine

var csrfField = regexp.MustCompile(`name="authenticity_token" value="([^"]+)"`)
var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)"`)

func formToken(t *testing.T, a *answer) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("%s %s: no authenticity_token field:\n%.3000s", a.method, a.path, a.body)
	}
	return htmlUnescape(m[1])
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#x2F;", "/", "&#43;", "+", "&#x3D;", "=").Replace(s)
}

func redmineLogin(t *testing.T, b *browser, user, password string) *answer {
	t.Helper()
	tok := formToken(t, b.get("/login"))
	return b.post("/login", url.Values{
		"utf8":               {"✓"},
		"authenticity_token": {tok},
		"username":           {user},
		"password":           {password},
		"login":              {"Login"},
	})
}

const redmineCookie = "Redmine"

func TestRedmine(t *testing.T) {
	t.Parallel()
	app := Redmine(t)
	if app.FastCGI || app.Upstream == "" {
		t.Fatalf("app: %+v", app)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if app.Users[u] == "" {
			t.Fatalf("no password for %s: %v", u, app.Users)
		}
	}
	base := "http://" + app.Upstream
	b := newBrowser(t, "alice's browser", base)

	// (c) Anonymous pages already get the session cookie. Debian's
	// multi-tenant Redmine names it "Redmine", not "_redmine_session".
	a := b.get("/")
	a.want(t, 200, "Sign in")
	sc := a.set(redmineCookie)
	if len(sc) != 1 || len(a.setCookies) != 1 || sc[0].Path != "/" || !sc[0].HttpOnly || sc[0].Secure ||
		!sc[0].Expires.IsZero() || sc[0].MaxAge != 0 || sc[0].SameSite != 0 {
		t.Fatalf("anonymous Set-Cookie: %v", a.header.Values("Set-Cookie"))
	}
	anon := sc[0]

	// (f) Rails' cookie store re-encrypts and re-sends the session cookie
	// on every answer that touches the session (all HTML pages: CSRF
	// token): a new value each time, while the session stays the same.
	a = b.get("/login")
	a.want(t, 200, `name="username"`, `name="password"`, `name="authenticity_token"`)
	if sc := a.set(redmineCookie); len(sc) != 1 || sc[0].Value == anon.Value {
		t.Fatalf("ordinary anonymous answer: Set-Cookie %v", a.header.Values("Set-Cookie"))
	}
	// Static files don't touch the session.
	b.get("/favicon.ico").wantNoSetCookie(t)

	// CSRF: a login POST without a valid token is refused with 422, and
	// Redmine resets the session (new cookie, new CSRF token).
	a = b.post("/login", url.Values{"username": {"alice"}, "password": {app.Users["alice"]}})
	a.want(t, 422, "Invalid form authenticity token")
	if len(a.set(redmineCookie)) != 1 {
		t.Fatalf("CSRF failure: Set-Cookie %v", a.header.Values("Set-Cookie"))
	}
	b.get("/my/page").want(t, 302)
	tok := formToken(t, b.get("/login"))

	// (b) Failed login: 200 with an error, a new (still anonymous) cookie.
	a = b.post("/login", url.Values{"utf8": {"✓"}, "authenticity_token": {tok},
		"username": {"alice"}, "password": {"wrong-password"}, "login": {"Login"}})
	a.want(t, 200, `id="flash_error"`, "Invalid user or password")
	if sc := a.set(redmineCookie); len(sc) != 1 {
		t.Fatalf("failed login Set-Cookie: %v", a.header.Values("Set-Cookie"))
	}
	a = b.get("/my/page")
	a.want(t, 302)
	if loc := a.header.Get("Location"); !strings.HasPrefix(loc, base+"/login?back_url=") {
		t.Fatalf("anonymous /my/page Location = %q", loc)
	}

	// (a)+(c) Successful login: 302 (to /my/page by default), new cookie.
	preLogin := b.cookie("/", redmineCookie)
	a = redmineLogin(t, b, "alice", app.Users["alice"])
	a.want(t, 302)
	if loc := a.header.Get("Location"); loc != base+"/my/page" {
		t.Fatalf("login Location = %q", loc)
	}
	sc = a.set(redmineCookie)
	if len(sc) != 1 || len(a.setCookies) != 1 || sc[0].Path != "/" || !sc[0].HttpOnly || expired(sc[0]) ||
		sc[0].Value == preLogin.Value {
		t.Fatalf("login Set-Cookie: %v", a.header.Values("Set-Cookie"))
	}
	atLogin := sc[0]
	if strings.Contains(atLogin.Value, "alice") {
		t.Fatal("session cookie shows the login in clear")
	}
	a = b.get("/my/page")
	a.want(t, 200, `Logged in as <a class="user active" href="/users/`, `>alice</a>`)
	if sc := a.set(redmineCookie); len(sc) != 1 || sc[0].Value == atLogin.Value {
		t.Fatalf("(f) logged-in page: Set-Cookie %v", a.header.Values("Set-Cookie"))
	}
	a = b.get("/projects")
	a.want(t, 200, ">alice</a>")
	if len(a.set(redmineCookie)) != 1 {
		t.Fatalf("(f) logged-in page: Set-Cookie %v", a.header.Values("Set-Cookie"))
	}

	// Every value issued since login authenticates (client-side store;
	// revocation is by the session token inside, not by cookie value).
	b.bare("/my/page", atLogin).want(t, 200, ">alice</a>")
	b.bare("/my/page", b.cookie("/", redmineCookie)).want(t, 200, ">alice</a>")
	// The pre-login cookie is still a valid, anonymous session.
	b.bare("/my/page", preLogin).want(t, 302)
	// (e) "Redmine" on path / is the only cookie; it authenticates every
	// path. (No autologin cookie: that feature is off by default.)
	for _, c := range b.jar.Cookies(mustURL(base + "/my/page")) {
		if c.Name != redmineCookie {
			t.Fatalf("unexpected cookie %s", c.Name)
		}
	}

	// A second, independent session for alice.
	other := newBrowser(t, "alice's second browser", base)
	redmineLogin(t, other, "alice", app.Users["alice"]).want(t, 302)
	other.get("/my/page").want(t, 200, ">alice</a>")

	// A CSRF failure while logged in drops the browser's session (new
	// anonymous cookie) but does not revoke it: the previous cookie value
	// still authenticates.
	before := other.cookie("/", redmineCookie)
	a = other.post("/my/account", url.Values{"_method": {"put"}, "authenticity_token": {"forged"}, "user[firstname]": {"Eve"}})
	a.want(t, 422)
	if sc := a.set(redmineCookie); len(sc) != 1 || sc[0].Value == before.Value {
		t.Fatalf("CSRF failure while logged in: Set-Cookie %v", a.header.Values("Set-Cookie"))
	}
	other.get("/my/page").want(t, 302)
	other.bare("/my/page", before).want(t, 200, ">alice</a>")
	other.jar.SetCookies(mustURL(base+"/"), []*http.Cookie{{Name: redmineCookie, Value: before.Value, Path: "/"}})
	other.get("/my/page").want(t, 200, ">alice</a>")

	// (d) Logout: GET /logout only asks; the "Sign out" link POSTs with
	// the page's CSRF token (rails-ujs data-method="post").
	a = b.get("/logout")
	a.want(t, 200, `action="/logout"`, `name="authenticity_token"`)
	a = b.get("/my/page")
	m := csrfMeta.FindStringSubmatch(a.body)
	link := regexp.MustCompile(`<a [^>]*href="/logout"[^>]*>`).FindString(a.body)
	if m == nil || !strings.Contains(link, `data-method="post"`) {
		t.Fatalf("no csrf meta / sign-out link (%q):\n%.3000s", link, a.body)
	}
	loggedIn := b.cookie("/", redmineCookie)
	a = b.post("/logout", url.Values{"_method": {"post"}, "authenticity_token": {htmlUnescape(m[1])}})
	a.want(t, 302)
	if loc := a.header.Get("Location"); loc != base+"/" {
		t.Fatalf("logout Location = %q", loc)
	}
	if sc := a.set(redmineCookie); len(sc) != 1 || expired(sc[0]) || sc[0].Value == loggedIn.Value {
		t.Fatalf("logout Set-Cookie: %v", a.header.Values("Set-Cookie"))
	}
	b.get("/my/page").want(t, 302)
	// Server-side revocation: every cookie value of the logged-out session
	// is dead ...
	b.bare("/my/page", loggedIn).want(t, 302)
	b.bare("/my/page", atLogin).want(t, 302)
	// ... the other session of the same user is not.
	other.get("/my/page").want(t, 200, ">alice</a>")

	// Other users.
	for _, u := range []string{"bob", "carol"} {
		ub := newBrowser(t, u+"'s browser", base)
		redmineLogin(t, ub, u, app.Users[u]).want(t, 302)
		ub.get("/my/page").want(t, 200, ">"+u+"</a>")
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
