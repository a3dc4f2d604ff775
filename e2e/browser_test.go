package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-sessions/caddy-sessions/internal/browsertest"
	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// The pages in a real browser (issue 12): the "your sessions" page and
// the admin dashboard, driven in headless Chromium (internal/browsertest)
// against the real Caddy binary, the demo shop and a real Redis. Every
// browser context is one device: its own cookie jar, user agent and
// client IP (X-Forwarded-For, which Caddy trusts from 127.0.0.0/8).

// xssUA is a user agent whose parsed browser name is markup: uap-core
// takes the product before "/<version> CFNetwork" as the browser, so the
// API hands "<img src=x onerror=alert(1)>" to the pages as the browser.
const xssUA = "<img src=x onerror=alert(1)>/1.0 CFNetwork/1410.0.3 Darwin/22.6.0"

// browserSite is the shop behind sessions (Redis, GeoIP, a 1s refresh so
// that active time accrues within the test, at most one IP per day with
// violations logged, self-service) and the dashboard under
// /admin/sessions behind basic_auth (admin / "s3cret admin"). Errors are
// answered with the block reason, so a refused page says why.
func browserSite(t testing.TB, env storeEnv, up, realm string) string {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret admin"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	sessions := sessionsConf(env, "realm "+realm, "login @login", "logout @logout", "geoip "+geoDB,
		"refresh_interval 1s", restrictBlock("max_ips 1 24h log"),
		"risk {\n\tnew_device log\n\timpossible_travel log\n\tdistant_concurrent log\n}",
		"self_service /sessions/ {\n\ttitle \"Your sessions at the shop\"\n\tback / \"Back to the shop\"\n}")
	return `route /admin/sessions* {
	basic_auth {
		admin ` + string(hash) + `
	}
	sessions_admin /admin/sessions {
		realm ` + realm + `
	}
}
` + shopSite(up, sessions, "") + "\n" + blockReasonErrors
}

// browserCSVHeader is the documented column list of sessions.csv.
var browserCSVHeader = []string{
	"id", "realm", "user", "started_at", "last_seen", "ended_at", "end_reason", "duration_seconds",
	"ip", "city", "region", "country", "country_code", "time_zone", "latitude", "longitude",
	"browser", "browser_version", "os", "os_version", "device_family", "device_type", "device_id",
}

// selfItem is one entry of the "your sessions" list as the page shows it.
type selfItem struct {
	ID       string   `json:"id"`
	Current  bool     `json:"current"`
	Badge    string   `json:"badge"`
	Title    string   `json:"title"`
	Device   string   `json:"device"`
	Facts    []string `json:"facts"` // "<dt>: <dd>"
	Button   string   `json:"button"`
	HasImage bool     `json:"hasImage"`
}

const selfItemsJS = `[...document.querySelectorAll('#sessions li[data-session]')].map((li) => ({
  id: li.dataset.session,
  current: !!li.querySelector('.this-device'),
  badge: li.querySelector('.this-device') ? li.querySelector('.this-device').textContent : '',
  title: li.querySelector('.session-title strong').textContent,
  device: li.querySelector('.device-label').textContent,
  facts: [...li.querySelectorAll('.session-facts > div')].map((d) => d.querySelector('dt').textContent + ': ' + d.querySelector('dd').textContent),
  button: li.querySelector('button.end-session').textContent,
  hasImage: !!li.querySelector('img'),
}))`

// agentText and placeText are what the pages make of an agent and a
// location (ui.js browserText/osText, locationText).
func agentText(a apiAgent) string {
	join := func(parts ...string) string {
		var out []string
		for _, p := range parts {
			if p != "" {
				out = append(out, p)
			}
		}
		return strings.Join(out, " ")
	}
	b, o := join(a.Browser, a.BrowserVersion), join(a.OS, a.OSVersion)
	if b == "" {
		b = "Unknown browser"
	}
	if o == "" {
		o = "Unknown OS"
	}
	return b + " on " + o
}

func placeText(l apiLocation) string {
	var out []string
	for _, p := range []string{l.City, l.Region, l.Country} {
		if p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return "Unknown location"
	}
	return strings.Join(out, ", ")
}

// jsq is s as a JavaScript string literal.
func jsq(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// evalJS evaluates a JavaScript expression in the tab's page.
func evalJS[T any](t testing.TB, tab *browsertest.Tab, expr string) T {
	t.Helper()
	return browsertest.Run(t, tab, chromedp.Evaluate[T](expr))
}

// extraHeaders makes every request of the tab's page carry h: the
// client IP for Caddy, the admin's basic auth.
func extraHeaders(h map[string]string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		hd := network.Headers{}
		for k, v := range h {
			hd[k] = v
		}
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: hd})
		return err
	})
}

// adminSignIn gives the tab the admin's basic_auth credentials as a
// person does who typed them into the browser's prompt: the browser keeps
// them for the site (per context) and sends them with every request
// under /admin/sessions/, downloads included. (An Authorization header
// set with Network.setExtraHTTPHeaders is not sent with downloads.) The
// URL with credentials is a JSON answer: a page loaded from it could not
// fetch() anything.
func adminSignIn(t testing.TB, tab *browsertest.Tab, site string) {
	t.Helper()
	u := strings.Replace(site, "http://", "http://"+url.UserPassword("admin", "s3cret admin").String()+"@", 1)
	if r := open(t, tab, u+"/admin/sessions/api/openapi.json"); r.Status != http.StatusOK {
		t.Fatalf("signing in to the dashboard: %d", r.Status)
	}
}

// load runs steps that navigate (a click on a submit button, say) and
// returns the answer to the document's request, after redirects.
func load(t testing.TB, tab *browsertest.Tab, steps ...chromedp.Action[chromedp.Void]) *network.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.Context(), browsertest.DefaultTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		t.Fatalf("navigation: %v", err)
	}
	return resp
}

// open navigates the tab to u and returns the document's answer.
func open(t testing.TB, tab *browsertest.Tab, u string) *network.Response {
	t.Helper()
	return browsertest.Run(t, tab, chromedp.NavigateResponse(u))
}

// shopLogin signs in with the shop's form, as a person would.
func shopLogin(t testing.TB, tab *browsertest.Tab, site, user, password string) {
	t.Helper()
	if r := open(t, tab, site+"/login"); r.Status != http.StatusOK {
		t.Fatalf("GET /login: %d", r.Status)
	}
	tab.Do(t, chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), password))
	r := load(t, tab, chromedp.Click(chromedp.CSS(`form.login button[type="submit"]`)))
	if r.Status != http.StatusOK || r.URL != site+"/account" {
		t.Fatalf("login of %s: %d at %s, want 200 at /account", user, r.Status, r.URL)
	}
	if h1 := browsertest.Run(t, tab, chromedp.Text(chromedp.CSS("h1"))); h1 != "Hello "+user {
		t.Fatalf("after the login of %s the shop says %q", user, h1)
	}
}

// expectClean reports every dialog, console error, uncaught exception and
// CSP violation of the tab, except the network errors of the answers the
// test provoked on purpose (refused URLs).
func expectClean(t testing.TB, name string, tab *browsertest.Tab, refused ...string) {
	t.Helper()
	for _, d := range tab.Dialogs() {
		t.Errorf("%s: unexpected %s dialog %q on %s", name, d.Type, d.Message, d.URL)
	}
	for _, m := range tab.Errors() {
		if m.Source == "network" && slices.Contains(refused, m.URL) {
			continue
		}
		t.Errorf("%s: unexpected console %s", name, m)
	}
	for _, v := range tab.CSPViolations() {
		t.Errorf("%s: unexpected CSP violation %+v", name, v)
	}
}

// screenshot writes a full-page PNG of the tab to docs/screenshots/name
// and checks that it is width pixels wide: wider means the page scrolls
// sideways.
func screenshot(t testing.TB, tab *browsertest.Tab, name string, width int) {
	t.Helper()
	dir := filepath.Join(moduleRoot, "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	tab.Screenshot(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	if cfg.Width != width {
		t.Errorf("%s is %dx%d, want %d wide (the page overflows sideways)", name, cfg.Width, cfg.Height, width)
	}
}

// TestBrowserPages drives both pages in one Chromium against one Caddy
// with one Redis: the subtests are steps of one story and share them.
func TestBrowserPages(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	env := storeEnv{name: "redis", fragment: "store " + srv.URL() + "\nsecret " + e2eSecret}
	_, up := startShop(t, true)
	const realm = "shop-browser"
	c := startCaddy(t, caddyfile("", browserSite(t, env, up, realm)))
	site := c.Site
	apiBase := site + "/admin/sessions/api"

	b := browsertest.Start(t)
	laptop := b.NewContext(t, browsertest.WithUserAgent(uaChromeWindows))
	laptop.Do(t, extraHeaders(map[string]string{"X-Forwarded-For": ipLondon}))
	phone := b.NewContext(t, browsertest.WithViewport(browsertest.Phone), browsertest.WithUserAgent(uaIPhone))
	phone.Do(t, extraHeaders(map[string]string{"X-Forwarded-For": ipMilton}))
	bob := b.NewContext(t, browsertest.WithUserAgent(xssUA))
	bob.Do(t, extraHeaders(map[string]string{"X-Forwarded-For": ipOther}))
	admin := b.NewContext(t)
	adminSignIn(t, admin, site)
	adminPhone := b.NewContext(t, browsertest.WithViewport(browsertest.Phone), browsertest.WithUserAgent(uaIPhone))
	adminSignIn(t, adminPhone, site)

	// What each tab was refused on purpose (their console errors are expected).
	var laptopRefused, phoneRefused, bobRefused, adminRefused []string

	var laptopID, phoneID string
	if !t.Run("log in on three devices", func(t *testing.T) {
		shopLogin(t, laptop, site, "alice", "alice")
		shopLogin(t, phone, site, "alice", "alice")
		shopLogin(t, bob, site, "bob", "bob")
		l := c.Sessions(t, realm, "alice", "active")
		laptopID, phoneID = activeByIP(t, l, ipLondon).ID, activeByIP(t, l, ipMilton).ID
		if n := len(c.Sessions(t, realm, "bob", "active").Sessions); n != 1 {
			t.Fatalf("bob has %d active sessions, want 1", n)
		}
	}) {
		t.FailNow() // every step builds on these logins
	}

	// checkSelf reads the "your sessions" page of tab, which must list
	// exactly the active sessions of alice (as the API has them), with
	// current first and marked "This device".
	checkSelf := func(t *testing.T, tab *browsertest.Tab, current string) {
		t.Helper()
		l := c.Sessions(t, realm, "alice", "active")
		tab.WaitJS(t, fmt.Sprintf(`document.querySelectorAll('#sessions li[data-session]').length === %d && /active session/.test(document.getElementById('status').textContent)`, len(l.Sessions)))
		items := evalJS[[]selfItem](t, tab, selfItemsJS)
		if len(items) == 0 || items[0].ID != current {
			t.Fatalf("the current session %s is not listed first: %+v", current, items)
		}
		for _, it := range items {
			s := l.byID(it.ID)
			if s == nil {
				t.Errorf("page lists %s, which is not an active session of alice", it.ID)
				continue
			}
			wantDevice := map[string]string{"desktop": "Computer", "mobile": "Phone", "tablet": "Tablet"}[s.Agent.DeviceType]
			if it.Title != agentText(s.Agent) || it.Device != wantDevice {
				t.Errorf("session %s shows %q on a %q, want %q on a %q", it.ID, it.Title, it.Device, agentText(s.Agent), wantDevice)
			}
			if !slices.Contains(it.Facts, "Approximate location: "+placeText(s.Location)) || !slices.Contains(it.Facts, "IP address: "+s.IP) {
				t.Errorf("session %s shows %q, want location %q and IP %s", it.ID, it.Facts, placeText(s.Location), s.IP)
			}
			if cur := it.ID == current; it.Current != cur || (cur && it.Badge != "This device") {
				t.Errorf("session %s: marked current %v (%q), want %v", it.ID, it.Current, it.Badge, cur)
			}
		}
		status := browsertest.Run(t, tab, chromedp.Text(chromedp.ID("status")))
		if want := fmt.Sprintf("Signed in as alice. %d active session", len(l.Sessions)); !strings.HasPrefix(status, want) {
			t.Errorf("status line %q, want it to start with %q", status, want)
		}
	}

	t.Run("your sessions lists both devices", func(t *testing.T) {
		if r := open(t, phone, site+"/sessions/"); r.Status != http.StatusOK || r.MimeType != "text/html" {
			t.Fatalf("phone: GET /sessions/: %d %s", r.Status, r.MimeType)
		}
		checkSelf(t, phone, phoneID)
		screenshot(t, phone, "self-phone.png", int(browsertest.Phone.Width))
		expectClean(t, "phone", phone)

		open(t, laptop, site+"/sessions/")
		checkSelf(t, laptop, laptopID)
		items := evalJS[[]selfItem](t, laptop, selfItemsJS)
		if items[0].Title != "Chrome 124.0 on Windows 10" || !slices.Contains(items[0].Facts, "Approximate location: London, England, United Kingdom") ||
			items[1].Title != "Mobile Safari 17.4 on iOS 17.4" || items[1].Device != "Phone" || !strings.Contains(strings.Join(items[1].Facts, "|"), "Milton") {
			t.Errorf("laptop's page: %+v", items)
		}
		if back := browsertest.Run(t, laptop, chromedp.AttributeValue(chromedp.ID("back"), "href")); back.Value != "/" {
			t.Errorf("back link %+v, want /", back)
		}
		// The back link lines up with the page's column.
		if dx := evalJS[float64](t, laptop, `document.getElementById('back').getBoundingClientRect().left - document.querySelector('main h1').getBoundingClientRect().left`); dx < -1 || dx > 1 {
			t.Errorf("the back link is %.0fpx off the left edge of the page's column", dx)
		}
		screenshot(t, laptop, "self-desktop.png", int(browsertest.Desktop.Width))
	})

	t.Run("self-service refuses a DELETE without the CSRF header", func(t *testing.T) {
		u := site + "/sessions/" + phoneID
		r := laptop.Fetch(t, http.MethodDelete, "/sessions/"+phoneID, nil, "")
		laptopRefused = append(laptopRefused, u)
		if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "X-Sessions-CSRF") {
			t.Errorf("DELETE without X-Sessions-CSRF: %d %s, want 403 naming the header", r.Status, r.Body)
		}
		if s := c.Sessions(t, realm, "alice", "active").byID(phoneID); s == nil {
			t.Fatal("the refused DELETE ended the phone's session")
		}
	})

	t.Run("this device's button explains instead of ending", func(t *testing.T) {
		own := fmt.Sprintf(`#sessions li[data-session=%s] button.end-session`, jsq(laptopID))
		laptop.Do(t, chromedp.Click(chromedp.CSS(own)))
		laptop.WaitJS(t, `document.getElementById('explain').open`)
		text := browsertest.Run(t, laptop, chromedp.Text(chromedp.ID("explain")))
		if !strings.Contains(strings.ToLower(text), "log out") {
			t.Errorf("dialog#explain says %q, want it to say log out", text)
		}
		if focused := evalJS[string](t, laptop, `document.activeElement.id`); focused != "explain-close" {
			t.Errorf("focus in the dialog is on %q, want #explain-close", focused)
		}
		laptop.Do(t, chromedp.KeyEvent(kb.Escape))
		laptop.WaitJS(t, `!document.getElementById('explain').open`)
		// Focus goes back to the button that opened it.
		if !evalJS[bool](t, laptop, `document.activeElement === document.querySelector(`+jsq(own)+`)`) {
			t.Error("focus did not return to the button after the dialog closed")
		}
		if n := evalJS[int](t, laptop, `document.querySelectorAll('#sessions li[data-session]').length`); n != 2 {
			t.Errorf("%d sessions listed after the dialog, want 2", n)
		}
		if len(c.Sessions(t, realm, "alice", "active").Sessions) != 2 {
			t.Error("the explanation ended a session")
		}
	})

	t.Run("end the phone's session from the laptop", func(t *testing.T) {
		laptop.Do(t, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#sessions li[data-session=%s] button.end-session`, jsq(phoneID)))))
		laptop.WaitJS(t, fmt.Sprintf(`!document.querySelector('#sessions li[data-session=%s]') && !document.getElementById('banner').hidden`, jsq(phoneID)))
		if msg := browsertest.Run(t, laptop, chromedp.Text(chromedp.ID("banner"))); !strings.Contains(msg, "Mobile Safari 17.4 on iOS 17.4") {
			t.Errorf("banner %q does not name the ended session", msg)
		}
		checkSelf(t, laptop, laptopID)
		s := c.Sessions(t, realm, "alice", "all").byID(phoneID)
		if s == nil || s.EndedAt == nil || s.EndReason != "revoked" {
			t.Fatalf("the phone's session after the click: %s, want ended (revoked)", dump(s))
		}
		r := open(t, phone, site+"/account")
		phoneRefused = append(phoneRefused, site+"/account")
		if r.Status != http.StatusUnauthorized {
			t.Errorf("the phone's next request: %d, want 401 (on_revoked default)", r.Status)
		}
		if text := browsertest.Run(t, phone, chromedp.Text(chromedp.CSS("body"))); strings.TrimSpace(text) != "revoked" {
			t.Errorf("the refusal's block reason: %q, want revoked", text)
		}
		expectClean(t, "phone", phone, phoneRefused...)
		expectClean(t, "laptop", laptop, laptopRefused...)
	})

	t.Run("a user agent with markup is shown as text", func(t *testing.T) {
		bobSess := c.Sessions(t, realm, "bob", "active").Sessions[0]
		want := agentText(bobSess.Agent)
		if !strings.Contains(want, "<img src=x onerror=alert(1)>") {
			t.Fatalf("the API made %q of the user agent; the test needs the markup in the browser name", want)
		}
		// Bob's own page.
		open(t, bob, site+"/sessions/")
		bob.WaitJS(t, `document.querySelectorAll('#sessions li[data-session]').length === 1`)
		items := evalJS[[]selfItem](t, bob, selfItemsJS)
		if items[0].Title != want || items[0].HasImage {
			t.Errorf("bob's page shows %+v, want the text %q and no image", items[0], want)
		}
		// The admin's login history of bob.
		open(t, admin, site+"/admin/sessions/#/realm/"+realm+"/user/bob/history")
		admin.WaitJS(t, `document.querySelectorAll('#history tbody tr[data-session]').length === 1`)
		got := browsertest.Run(t, admin, chromedp.Text(chromedp.CSS(`#history tr[data-session] td[data-label="Browser"]`)))
		if got != strings.TrimSuffix(want, " on "+bobSess.Agent.OS+" "+bobSess.Agent.OSVersion) {
			t.Errorf("login history shows browser %q, want the text of %q", got, want)
		}
		if n := evalJS[int](t, admin, `document.querySelectorAll('#main img, #main [onerror]').length`); n != 0 {
			t.Errorf("%d elements made of the user agent's markup", n)
		}
		if d := append(admin.Dialogs(), bob.Dialogs()...); len(d) != 0 {
			t.Errorf("dialogs opened: %+v", d)
		}
		expectClean(t, "bob", bob)
		expectClean(t, "admin", admin)
	})

	t.Run("risk tab and badges", func(t *testing.T) {
		// The phone's login in Milton, a moment after London: a new
		// device, impossible travel, two distant sessions at once.
		admin.Do(t, chromedp.Evaluate[chromedp.Void](`location.hash = '#/realm/`+realm+`/user/alice/risk'`))
		admin.WaitJS(t, `document.querySelectorAll('#risk tr[data-risk]').length >= 3`)
		signals := evalJS[[]string](t, admin, `[...document.querySelectorAll('#risk tr[data-risk]')].map(r => r.dataset.signal).sort()`)
		if strings.Join(signals, ",") != "distant_concurrent,impossible_travel,new_device" {
			t.Errorf("risk tab rows: %v", signals)
		}
		if ev := browsertest.Run(t, admin, chromedp.Text(chromedp.CSS(`#risk tr[data-signal="impossible_travel"] td[data-label="Evidence"]`))); !strings.Contains(ev, "km/h") || !strings.Contains(ev, "London") {
			t.Errorf("impossible travel's evidence cell: %q", ev)
		}
		admin.Do(t, chromedp.Click(chromedp.CSS(`[role=tab][data-tab="history"]`)))
		admin.WaitJS(t, `!!document.querySelector('#history tr[data-session=`+jsq(phoneID)+`] .risk-badge[data-signal="new_device"]') && !document.querySelector('#history tr[data-session=`+jsq(laptopID)+`] .risk-badge')`)
	})

	t.Run("violation marker to restriction history and back", func(t *testing.T) {
		vs := c.Violations(t, realm, "alice")
		if len(vs) == 0 || vs[0].Policy != "max_ips" || vs[0].Viewed {
			t.Fatalf("alice's violations: %s, want an unviewed max_ips one from the phone's login", dump(vs))
		}
		admin.Do(t, chromedp.Click(chromedp.CSS(`.breadcrumb a`)))
		admin.WaitJS(t, `document.querySelector('#users tr[data-user="alice"]') && document.querySelector('#users tr[data-user="bob"]')`)
		if evalJS[bool](t, admin, `!!document.querySelector('#users tr[data-user="bob"] .violation-marker')`) {
			t.Error("bob, who has no violation, has a marker")
		}
		admin.Do(t, chromedp.Click(chromedp.CSS(`#users tr[data-user="alice"] a.violation-marker`)))
		admin.WaitJS(t, fmt.Sprintf(`location.hash.endsWith('/user/alice/violations') && document.querySelectorAll('#violations tr[data-violation]').length === %d`, len(vs)))
		if sel := evalJS[string](t, admin, `document.querySelector('[role=tab][aria-selected=true]').dataset.tab`); sel != "violations" {
			t.Errorf("selected tab %q, want violations", sel)
		}
		first := fmt.Sprintf(`#violations tr[data-violation=%s]`, jsq(vs[0].ID))
		admin.Do(t, chromedp.Click(chromedp.CSS(first+` button.viewed-toggle`)))
		admin.WaitJS(t, `document.querySelector(`+jsq(first+`[data-viewed="true"]`)+`)`)
		if len(vs) > 1 {
			admin.Do(t, chromedp.Click(chromedp.ID("mark-all-viewed")))
			admin.WaitJS(t, `document.querySelectorAll('#violations tr[data-violation][data-viewed="false"]').length === 0 && document.querySelectorAll('#violations tr[data-violation]').length > 0`)
		}
		for _, v := range c.Violations(t, realm, "alice") {
			if !v.Viewed {
				t.Errorf("violation %s not viewed after the clicks", v.ID)
			}
		}
		admin.Do(t, chromedp.Click(chromedp.CSS(`.breadcrumb a`)))
		admin.WaitJS(t, `document.querySelector('#users tr[data-user="alice"]') && !document.querySelector('#users[aria-busy]')`)
		if cell := browsertest.Run(t, admin, chromedp.Text(chromedp.CSS(`#users tr[data-user="alice"] td[data-label="Violations"]`))); cell != "None" ||
			evalJS[bool](t, admin, `!!document.querySelector('#users tr[data-user="alice"] .violation-marker')`) {
			t.Errorf("alice's marker is still shown (%q)", cell)
		}
		if u := findUser(c.Users(t, realm, ""), "alice"); u == nil || u.UnviewedViolations != 0 {
			t.Errorf("users list: %s, want alice with no unviewed violations", dump(u))
		}
	})

	t.Run("exemption switch", func(t *testing.T) {
		toggle := `#users tr[data-user="alice"] input.exempt-toggle`
		if evalJS[bool](t, admin, `document.querySelector(`+jsq(toggle)+`).checked`) {
			t.Fatal("alice starts exempt")
		}
		admin.Do(t, chromedp.Click(chromedp.CSS(toggle)))
		admin.WaitJS(t, `/alice is now exempt/.test(document.getElementById('banner').textContent) && !document.querySelector('#users[aria-busy]') && document.querySelector(`+jsq(toggle)+`).checked`)
		if u := findUser(c.Users(t, realm, ""), "alice"); u == nil || !u.Exempt {
			t.Fatalf("after the click the API says %s, want exempt", dump(u))
		}
		// Back off with the keyboard: Space on the focused switch.
		admin.Do(t, chromedp.Focus(chromedp.CSS(toggle)), chromedp.KeyEvent(" "))
		admin.WaitJS(t, `/alice is subject to limits again/.test(document.getElementById('banner').textContent) && !document.querySelector('#users[aria-busy]') && !document.querySelector(`+jsq(toggle)+`).checked`)
		if u := findUser(c.Users(t, realm, ""), "alice"); u == nil || u.Exempt {
			t.Fatalf("after Space the API says %s, want not exempt", dump(u))
		}
		if !evalJS[bool](t, admin, `document.activeElement === document.querySelector(`+jsq(toggle)+`)`) {
			t.Error("focus left alice's switch when the list was re-fetched")
		}
	})

	t.Run("block and allow a device", func(t *testing.T) {
		devs := c.Devices(t, realm, "bob")
		if len(devs) != 1 {
			t.Fatalf("bob's devices: %s", dump(devs))
		}
		dev := devs[0].ID
		row := fmt.Sprintf(`#devices tr[data-device=%s]`, jsq(dev))
		admin.Do(t, chromedp.Click(chromedp.CSS(`#users tr[data-user="bob"] a.user-link`)))
		admin.WaitJS(t, `location.hash.endsWith('/user/bob/history')`)
		admin.Do(t, chromedp.Click(chromedp.CSS(`[role=tab][data-tab="devices"]`)))
		admin.WaitJS(t, `document.querySelector(`+jsq(row+`[data-blocked="false"]`)+`)`)
		if got := browsertest.Run(t, admin, chromedp.Text(chromedp.CSS(row+` td[data-label="Browser"]`))); !strings.HasPrefix(got, "<img src=x onerror=alert(1)>") {
			t.Errorf("devices tab shows browser %q", got)
		}
		admin.Do(t, chromedp.Click(chromedp.CSS(row+` button.block-toggle`)))
		admin.WaitJS(t, `document.querySelector(`+jsq(row+`[data-blocked="true"]`)+`)`)
		if d := c.Devices(t, realm, "bob"); !d[0].Blocked {
			t.Fatalf("after Block the API says %s", dump(d))
		}
		if n := len(c.Sessions(t, realm, "bob", "active").Sessions); n != 0 {
			t.Errorf("bob still has %d active sessions on the blocked device", n)
		}
		r := open(t, bob, site+"/account")
		bobRefused = append(bobRefused, site+"/account")
		if r.Status != http.StatusForbidden {
			t.Errorf("the blocked browser's next request: %d, want 403", r.Status)
		}
		if text := browsertest.Run(t, bob, chromedp.Text(chromedp.CSS("body"))); strings.TrimSpace(text) != "device_blocked" {
			t.Errorf("the refusal's block reason: %q, want device_blocked", text)
		}

		admin.Do(t, chromedp.Click(chromedp.CSS(row+` button.block-toggle`)))
		admin.WaitJS(t, `document.querySelector(`+jsq(row+`[data-blocked="false"]`)+`)`)
		if d := c.Devices(t, realm, "bob"); d[0].Blocked {
			t.Fatalf("after Allow the API says %s", dump(d))
		}
		if r := open(t, bob, site+"/account"); r.Status != http.StatusOK {
			t.Errorf("the allowed browser's next request: %d, want 200", r.Status)
		}
		if h1 := browsertest.Run(t, bob, chromedp.Text(chromedp.CSS("h1"))); h1 != "Hello bob" {
			t.Errorf("bob's account page after Allow says %q", h1)
		}
		expectClean(t, "bob", bob, bobRefused...)
	})

	t.Run("activity chart and a day's sessions", func(t *testing.T) {
		// Bob's activity, not alice's: alice's sessions are in two time
		// zones (London, Milton US), and days are written in each
		// session's zone but read in the zone of her latest session, so
		// from midnight in London to midnight in Milton her laptop's time
		// falls outside the 14 days shown (reported as a bug; the chart
		// would rightly show nothing for it).
		zone := evalJS[string](t, admin, `Intl.DateTimeFormat().resolvedOptions().timeZone`)
		// Active time accrues with refreshes (refresh_interval 1s): bob
		// keeps browsing until today has some.
		var rep apiActivity
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if r := bob.Fetch(t, http.MethodGet, "/account", nil, ""); r.Status != http.StatusOK {
				t.Fatalf("bob GET /account: %d", r.Status)
			}
			c.adminWant(t, http.MethodGet, userPath(realm, "bob")+"/activity?days=14&tz="+url.QueryEscape(zone), "", http.StatusOK, &rep)
			if slices.ContainsFunc(rep.Days, func(d apiDayRow) bool { return d.ActiveSeconds > 0 }) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no active time recorded for bob: %s", dump(rep))
			}
			<-tick.C
		}
		var active []apiDayRow
		for _, d := range rep.Days {
			if d.ActiveSeconds > 0 {
				active = append(active, d)
			}
		}
		admin.Do(t, chromedp.Evaluate[chromedp.Void](`location.hash = '#/realm/`+realm+`/user/bob/activity'`))
		admin.WaitJS(t, `document.querySelector('svg#activity-chart') && document.querySelector('[role=tab][data-tab="activity"][aria-selected=true]')`)
		bars := evalJS[[]string](t, admin, `[...document.querySelectorAll('svg#activity-chart rect.bar')].map((r) => r.dataset.date)`)
		if len(bars) != 1 || len(active) != 1 || bars[0] != active[0].Date {
			t.Fatalf("chart bars for %q, want one per active day of the API: %s", bars, dump(active))
		}
		title := browsertest.Run(t, admin, chromedp.TextContent(chromedp.CSS(`svg#activity-chart rect.bar title`)))
		if want := fmt.Sprintf("%d session", active[0].Sessions); !strings.Contains(title, want) {
			t.Errorf("bar title %q does not say %q", title, want)
		}
		day := c.day(t, realm, "bob", bars[0], zone)
		admin.Do(t, chromedp.Click(chromedp.CSS(`svg#activity-chart rect.bar`)))
		admin.WaitJS(t, `document.querySelector('#day-sessions tbody tr') && document.querySelector('svg#activity-chart rect.bar[aria-pressed=true]')`)
		ids := evalJS[[]string](t, admin, `[...document.querySelectorAll('#day-sessions tbody tr')].map((r) => r.dataset.session)`)
		var want []string
		for _, s := range day.Sessions {
			want = append(want, s.ID)
		}
		sort.Strings(ids)
		sort.Strings(want)
		if !slices.Equal(ids, want) || len(want) != 2 {
			t.Errorf("the day lists sessions %q, the API %q; want bob's two (before the block and after)", ids, want)
		}
		if active[0].Sessions != len(day.Sessions) {
			t.Errorf("the overview counts %d sessions on %s, the day's list has %d", active[0].Sessions, bars[0], len(day.Sessions))
		}
	})

	alicePage := site + "/admin/sessions/#/realm/" + realm + "/user/alice/"
	t.Run("export CSV", func(t *testing.T) {
		total := c.Sessions(t, realm, "alice", "all").Total
		admin.Do(t, chromedp.Evaluate[chromedp.Void](`location.hash = '#/realm/`+realm+`/user/alice/history'`))
		admin.WaitJS(t, fmt.Sprintf(`document.querySelectorAll('#history tbody tr[data-session]').length === %d`, total))
		admin.Do(t, chromedp.Click(chromedp.ID("export-menu")))
		admin.WaitJS(t, `!document.getElementById('export-list').hidden && document.activeElement.id === 'export-csv'`)
		d := admin.Download(t, chromedp.Click(chromedp.ID("export-csv")))
		if d.Filename != "sessions.csv" || d.URL != apiBase+"/"+realm+"/users/alice/sessions.csv" {
			t.Errorf("download %q from %s", d.Filename, d.URL)
		}
		recs, err := csv.NewReader(bytes.NewReader(d.Data)).ReadAll()
		if err != nil || len(recs) == 0 {
			t.Fatalf("sessions.csv does not parse (%v):\n%s", err, d.Data)
		}
		if !slices.Equal(recs[0], browserCSVHeader) {
			t.Errorf("CSV header %q, want %q", recs[0], browserCSVHeader)
		}
		all := c.Sessions(t, realm, "alice", "all")
		var got, want []string
		for _, r := range recs[1:] {
			got = append(got, r[0])
			if s := all.byID(r[0]); s == nil || r[2] != "alice" || r[8] != s.IP || r[9] != s.Location.City || r[16] != s.Agent.Browser {
				t.Errorf("CSV row %q does not match the API's session %s", r, dump(s))
			}
		}
		for _, s := range all.Sessions {
			want = append(want, s.ID)
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("CSV has sessions %q, the API %q", got, want)
		}
	})

	t.Run("dashboard API refuses a DELETE without the CSRF header", func(t *testing.T) {
		u := apiBase + "/" + realm + "/users/alice/sessions/" + laptopID
		r := admin.Fetch(t, http.MethodDelete, u, nil, "")
		adminRefused = append(adminRefused, u)
		if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "X-Sessions-CSRF") {
			t.Errorf("DELETE without X-Sessions-CSRF: %d %s, want 403 naming the header", r.Status, r.Body)
		}
		if s := c.Sessions(t, realm, "alice", "active").byID(laptopID); s == nil {
			t.Fatal("the refused DELETE ended the laptop's session")
		}
		if r := laptop.Fetch(t, http.MethodGet, "/account", nil, ""); r.Status != http.StatusOK {
			t.Errorf("the laptop after the refused DELETE: %d", r.Status)
		}
	})

	t.Run("login history, tabs by keyboard, screenshots", func(t *testing.T) {
		total := c.Sessions(t, realm, "alice", "all").Total
		rowsLoaded := fmt.Sprintf(`document.querySelectorAll('#history tbody tr[data-session]').length === %d && document.querySelector('.summary dd')`, total)
		admin.Do(t, chromedp.Evaluate[chromedp.Void](`location.hash = '#/realm/`+realm+`/user/alice/history'`))
		admin.WaitJS(t, rowsLoaded)
		if n := evalJS[int](t, admin, `document.querySelectorAll('#history tr.is-active button.revoke').length`); n != 1 {
			t.Errorf("%d revoke buttons, want 1 (the laptop's active session)", n)
		}
		tabs := evalJS[[]string](t, admin, `[...document.querySelectorAll('[role=tab]')].map((b) => b.tagName + ':' + b.dataset.tab)`)
		if !slices.Equal(tabs, []string{"BUTTON:history", "BUTTON:devices", "BUTTON:violations", "BUTTON:risk", "BUTTON:activity"}) {
			t.Errorf("tabs %q, want five buttons", tabs)
		}
		admin.Do(t, chromedp.Focus(chromedp.CSS(`[role=tab][data-tab="history"]`)), chromedp.KeyEvent(kb.ArrowRight))
		admin.WaitJS(t, `location.hash.endsWith('/devices') && document.activeElement.dataset.tab === 'devices' && document.activeElement.getAttribute('aria-selected') === 'true'`)
		admin.Do(t, chromedp.KeyEvent(kb.Home))
		admin.WaitJS(t, `location.hash.endsWith('/history') && document.activeElement.dataset.tab === 'history'`)
		admin.WaitJS(t, rowsLoaded)
		admin.Do(t, chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`)) // no focus ring in the docs
		screenshot(t, admin, "dashboard-desktop.png", int(browsertest.Desktop.Width))

		open(t, adminPhone, alicePage+"history")
		adminPhone.WaitJS(t, rowsLoaded)
		screenshot(t, adminPhone, "dashboard-phone.png", int(browsertest.Phone.Width))
		expectClean(t, "admin on a phone", adminPhone)
		expectClean(t, "admin", admin, adminRefused...)
		expectClean(t, "laptop", laptop, laptopRefused...)
	})

	// Last, as it stops Redis: the store down is a clear banner on both
	// pages, not a blank page.
	t.Run("store down: a banner, not a blank page", func(t *testing.T) {
		srv.Stop()
		open(t, admin, site+"/admin/sessions/?down#/realm/"+realm)
		admin.WaitJS(t, `(document.querySelector('#banner')?.textContent || '').includes('session store is unreachable')`)
		if evalJS[bool](t, admin, `document.querySelector('#banner').offsetParent === null`) {
			t.Error("the store-down banner is not visible")
		}
	})
}
