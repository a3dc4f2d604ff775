package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// Issue 3 end to end: account-sharing limits, device blocks, exemption,
// restriction history, the concurrency race and bad restrict input,
// through the real Caddy binary. Client IPs are played with
// X-Forwarded-For (Caddy trusts 127.0.0.0/8); every cookie jar is one
// device.

// Documentation and test addresses for "many places" (none is in the
// MaxMind test database, so their location is unknown).
const (
	ipA = "198.51.100.10"
	ipB = "198.51.100.20"
	ipC = "203.0.113.30"
	ipD = "203.0.113.40"
	ipE = "192.0.2.50"
	ipF = "192.0.2.60"
)

// blockReasonErrors answers every Caddy error with the sessions block
// reason, so the tests can read {http.sessions.block_reason}.
const blockReasonErrors = `handle_errors {
	respond "{http.sessions.block_reason}"
}`

// restrictConf is a Caddyfile: the shop behind sessions with env's store,
// realm, login/logout, the GeoIP test database, extra lines (restrict
// block, refresh_interval, ...) and handle_errors showing the block reason.
func restrictConf(up string, env storeEnv, realm string, extra ...string) string {
	lines := append([]string{"realm " + realm, "login @login", "logout @logout", "geoip " + geoDB}, extra...)
	return caddyfile("", shopSite(up, sessionsConf(env, lines...), "")+"\n"+blockReasonErrors)
}

func restrictBlock(policies ...string) string {
	return "restrict {\n\t" + strings.Join(policies, "\n\t") + "\n}"
}

// wantReply checks status and, if body is not "", that the body is body
// (after trimming).
func wantReply(t testing.TB, what string, r *reply, status int, body string) {
	t.Helper()
	if r.Status != status || (body != "" && strings.TrimSpace(string(r.Body)) != body) {
		want := strconv.Itoa(status)
		if body != "" {
			want += " with body " + strconv.Quote(body)
		}
		t.Fatalf("%s: got %s, want %s", what, r, want)
	}
}

// wantViolation checks one recorded violation.
func wantViolation(t testing.TB, v apiViolation, user, policy string, limit, observed int, ip, action string) {
	t.Helper()
	if v.User != user || v.Policy != policy || v.Limit != limit || v.Observed != observed || v.IP != ip || v.Action != action {
		t.Fatalf("violation = %s\nwant user %s policy %s limit %d observed %d ip %s action %s", dump(v), user, policy, limit, observed, ip, action)
	}
	if v.ID == "" || v.Time.IsZero() || time.Since(v.Time) > time.Minute || v.Device == "" || v.Viewed {
		t.Fatalf("violation should have an id, a recent time, a device and be unviewed: %s", dump(v))
	}
}

func deviceOf(c *client, site string) string {
	v := c.cookie(site, "sessions_device")
	id, _, _ := strings.Cut(v, ".")
	return id
}

// TestRestrictPolicies runs every policy and action, the sliding window,
// prefix counting, exemption and the viewed status on the memory store
// and on Redis. Each scenario has its own Caddy and realm.
func TestRestrictPolicies(t *testing.T) {
	t.Parallel()
	for _, s := range []struct {
		name string
		mk   func(testing.TB) storeEnv
	}{
		{"memory", func(testing.TB) storeEnv { return memoryStore() }},
		{"redis", redisStore},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			env := s.mk(t)
			for _, sc := range []struct {
				name string
				fn   func(*testing.T, storeEnv)
			}{
				{"MaxIPsBlock", testMaxIPsBlock},
				{"MaxIPsLog", testMaxIPsLog},
				{"MaxIPsSlidingWindow", testMaxIPsWindow},
				{"IPPrefix", testIPPrefix},
				{"MaxDevicesBlock", testMaxDevicesBlock},
				{"MaxDevicesLog", testMaxDevicesLog},
				{"MaxSessionsBlock", testMaxSessionsBlock},
				{"MaxSessionsLog", testMaxSessionsLog},
				{"MaxSessionsEvictOldest", testMaxSessionsEvict},
				{"MaxSessionsEvictedAtOnce", testMaxSessionsEvictedAtOnce},
				{"Exemption", testExemption},
				{"ViewedStatus", testViewedStatus},
			} {
				t.Run(sc.name, func(t *testing.T) {
					t.Parallel()
					sc.fn(t, env)
				})
			}
		})
	}
}

// max_ips 2 block: the third IP is refused (403, block_reason max_ips) and
// recorded; the two known IPs keep working; a new browser logging in from
// the third IP gets the app's answer but no session, and its next request
// is refused.
func testMaxIPsBlock(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "ips-block"
	c := startCaddy(t, restrictConf(up, env, realm, restrictBlock("max_ips 2 24h block"), "refresh_interval 2s"))

	a := newClient(t, uaChromeWindows, ipLondon)
	a.login(c.Site, "alice", "alice")
	wantReply(t, "first IP", a.get(c.Site+"/account"), http.StatusOK, "")
	wantReply(t, "second IP", a.getAt(ipMilton, c.Site+"/account"), http.StatusOK, "")
	sess := c.Sessions(t, realm, "alice", "active")
	if sess.Total != 1 {
		t.Fatalf("one browser should have one session: %s", dump(sess))
	}
	r := a.getAt(ipOther, c.Site+"/account")
	wantReply(t, "third IP (max_ips 2 block)", r, http.StatusForbidden, "max_ips")

	vs := c.Violations(t, realm, "alice")
	if len(vs) != 1 {
		t.Fatalf("want one violation, got %s", dump(vs))
	}
	wantViolation(t, vs[0], "alice", "max_ips", 2, 3, ipOther, "block")
	if vs[0].Session != sess.Sessions[0].ID || vs[0].Device != sess.Sessions[0].DeviceID {
		t.Errorf("violation should name the session %s and device %s: %s", sess.Sessions[0].ID, sess.Sessions[0].DeviceID, dump(vs[0]))
	}
	if !strings.Contains(vs[0].Location, "Sweden") {
		t.Errorf("violation location = %q, want the GeoIP location of %s (Linköping, Sweden)", vs[0].Location, ipOther)
	}

	// What exists keeps working: both known IPs, the session unchanged.
	wantReply(t, "first IP after the refusal", a.getAt(ipLondon, c.Site+"/account"), http.StatusOK, "")
	wantReply(t, "second IP after the refusal", a.getAt(ipMilton, c.Site+"/account"), http.StatusOK, "")
	if l := c.Sessions(t, realm, "alice", "all"); l.Total != 1 || l.Sessions[0].EndedAt != nil {
		t.Fatalf("the refusal must not end or add sessions: %s", dump(l))
	}

	// A second browser from the third IP: the login is answered by the
	// app, but no session opens and the new cookie is refused.
	b := newClient(t, uaFirefoxLinux, ipOther)
	b.login(c.Site, "alice", "alice")
	wantReply(t, "new browser from the third IP", b.get(c.Site+"/account"), http.StatusForbidden, "max_ips")
	if l := c.Sessions(t, realm, "alice", "all"); l.Total != 1 {
		t.Fatalf("a refused login must not open a session: %s", dump(l))
	}
	// The refused login recorded one more violation; its retry within the
	// refresh interval did not.
	if vs := c.Violations(t, realm, "alice"); len(vs) != 2 {
		t.Errorf("want 2 violations (the refused request, the refused login), got %s", dump(vs))
	}
	// Another user is not affected.
	bob := newClient(t, uaChromeWindows, ipOther)
	bob.login(c.Site, "bob", "bob")
	wantReply(t, "another user from the third IP", bob.get(c.Site+"/account"), http.StatusOK, "")
}

// max_ips 2 log: the third IP passes and the violation is recorded.
func testMaxIPsLog(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "ips-log"
	c := startCaddy(t, restrictConf(up, env, realm, restrictBlock("max_ips 2 24h log")))
	a := newClient(t, uaChromeWindows, ipLondon)
	a.login(c.Site, "alice", "alice")
	wantReply(t, "second IP", a.getAt(ipMilton, c.Site+"/account"), http.StatusOK, "")
	wantReply(t, "third IP (log)", a.getAt(ipOther, c.Site+"/account"), http.StatusOK, "")
	if r := a.get(c.Site + "/account"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "alice") {
		t.Fatalf("the logged IP should be served by the app: %s", r)
	}
	vs := c.Violations(t, realm, "alice")
	if len(vs) != 1 {
		t.Fatalf("want one violation, got %s", dump(vs))
	}
	wantViolation(t, vs[0], "alice", "max_ips", 2, 3, ipOther, "log")
	l := c.Sessions(t, realm, "alice", "active")
	if l.Total != 1 || l.Sessions[0].IP != ipOther {
		t.Fatalf("the session should carry on from the logged IP: %s", dump(l))
	}
	// A fourth IP is a fourth distinct IP.
	wantReply(t, "fourth IP (log)", a.getAt(ipA, c.Site+"/account"), http.StatusOK, "")
	vs = c.Violations(t, realm, "alice")
	if len(vs) != 2 {
		t.Fatalf("want two violations, got %s", dump(vs))
	}
	wantViolation(t, vs[0], "alice", "max_ips", 2, 4, ipA, "log")
}

// max_ips 2 3s block: the window slides. The third IP is refused while the
// two others were seen within 3s, and admitted once they fell out.
func testMaxIPsWindow(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "ips-window"
	const window = 3 * time.Second
	c := startCaddy(t, restrictConf(up, env, realm, restrictBlock("max_ips 2 3s block"), "refresh_interval 1s"))
	a := newClient(t, uaChromeWindows, ipA)
	a.login(c.Site, "alice", "alice")
	wantReply(t, "second IP", a.getAt(ipB, c.Site+"/account"), http.StatusOK, "")
	lastUse := time.Now() // ipA and ipB were last seen before this
	wantReply(t, "third IP within the window", a.getAt(ipC, c.Site+"/account"), http.StatusForbidden, "max_ips")

	// Past the refusal memory (one refresh interval), still within the
	// window: the store refuses again.
	time.Sleep(time.Until(lastUse.Add(window / 2)))
	wantReply(t, "third IP half a window later", a.get(c.Site+"/account"), http.StatusForbidden, "max_ips")

	// Once both IPs are older than the window, the third is admitted.
	time.Sleep(time.Until(lastUse.Add(window + 200*time.Millisecond)))
	took := eventually(t, 3*time.Second, 100*time.Millisecond, func() (bool, string) {
		r := a.get(c.Site + "/account")
		return r.Status == http.StatusOK, "third IP after the window: " + r.String()
	})
	t.Logf("third IP admitted %v after the window passed", took+200*time.Millisecond)
	vs := c.Violations(t, realm, "alice")
	if len(vs) != 2 {
		t.Fatalf("want the two refusals within the window recorded, got %s", dump(vs))
	}
	for _, v := range vs {
		wantViolation(t, v, "alice", "max_ips", 2, 3, ipC, "block")
	}
	if l := c.Sessions(t, realm, "alice", "active"); l.Total != 1 || l.Sessions[0].IP != ipC {
		t.Fatalf("the session should now be on the third IP: %s", dump(l))
	}
}

// ip_prefix 24: addresses of one /24 count once.
func testIPPrefix(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "ips-prefix"
	c := startCaddy(t, restrictConf(up, env, realm, restrictBlock("max_ips 2 24h block", "ip_prefix 24 64")))
	a := newClient(t, uaChromeWindows, "203.0.113.10")
	a.login(c.Site, "alice", "alice")
	for _, ip := range []string{"203.0.113.11", "203.0.113.200", "203.0.113.254", "198.51.100.7", "198.51.100.99", "203.0.113.12"} {
		wantReply(t, "IP "+ip+" (two /24s)", a.getAt(ip, c.Site+"/account"), http.StatusOK, "")
	}
	wantReply(t, "a third /24", a.getAt("192.0.2.5", c.Site+"/account"), http.StatusForbidden, "max_ips")
	vs := c.Violations(t, realm, "alice")
	if len(vs) != 1 {
		t.Fatalf("want one violation, got %s", dump(vs))
	}
	wantViolation(t, vs[0], "alice", "max_ips", 2, 3, "192.0.2.5", "block")
	// Another address of a counted /24 is still fine.
	wantReply(t, "another address of a counted /24", a.getAt("198.51.100.1", c.Site+"/account"), http.StatusOK, "")
	// IPv6: a /64 counts once, but it is a third prefix.
	wantReply(t, "an IPv6 /64 as a third prefix", a.getAt("2001:db8:1:2::1", c.Site+"/account"), http.StatusForbidden, "max_ips")
}

// loginN logs n new browsers (devices) of user in from ip.
func loginN(t testing.TB, site, user string, n int, ua, ip string) []*client {
	var out []*client
	for i := 0; i < n; i++ {
		cl := newClient(t, ua, ip)
		cl.login(site, user, user)
		out = append(out, cl)
	}
	return out
}

// max_devices 2 block: a third browser is refused; the two known keep
// working.
func testMaxDevicesBlock(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "devs-block"
	c := startCaddy(t, restrictConf(up, env, realm, restrictBlock("max_devices 2 30d block")))
	cls := loginN(t, c.Site, "alice", 3, uaChromeWindows, ipLondon)
	wantReply(t, "device 1", cls[0].get(c.Site+"/account"), http.StatusOK, "")
	wantReply(t, "device 2", cls[1].get(c.Site+"/account"), http.StatusOK, "")
	wantReply(t, "device 3 (max_devices 2 block)", cls[2].get(c.Site+"/account"), http.StatusForbidden, "max_devices")
	devs := c.Devices(t, realm, "alice")
	if len(devs) != 2 {
		t.Fatalf("the refused device must not be recorded: %s", dump(devs))
	}
	for _, d := range devs {
		if d.ID == deviceOf(cls[2], c.Site) {
			t.Fatalf("the refused device is listed: %s", dump(devs))
		}
	}
	if l := c.Sessions(t, realm, "alice", "active"); l.Total != 2 {
		t.Fatalf("want 2 sessions, got %s", dump(l))
	}
	vs := c.Violations(t, realm, "alice")
	if len(vs) != 1 {
		t.Fatalf("want one violation, got %s", dump(vs))
	}
	wantViolation(t, vs[0], "alice", "max_devices", 2, 3, ipLondon, "block")
	if vs[0].Device != deviceOf(cls[2], c.Site) {
		t.Errorf("violation device %q, want the refused browser's %q", vs[0].Device, deviceOf(cls[2], c.Site))
	}
	wantReply(t, "device 1 after the refusal", cls[0].get(c.Site+"/account"), http.StatusOK, "")
	wantReply(t, "device 2 after the refusal", cls[1].get(c.Site+"/account"), http.StatusOK, "")
}

// max_devices 2 log: a third browser passes, recorded.
func testMaxDevicesLog(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "devs-log"
	c := startCaddy(t, restrictConf(up, env, realm, restrictBlock("max_devices 2 30d log")))
	cls := loginN(t, c.Site, "alice", 3, uaChromeWindows, ipLondon)
	for i, cl := range cls {
		wantReply(t, fmt.Sprintf("device %d", i+1), cl.get(c.Site+"/account"), http.StatusOK, "")
	}
	if devs := c.Devices(t, realm, "alice"); len(devs) != 3 {
		t.Fatalf("want 3 devices, got %s", dump(devs))
	}
	vs := c.Violations(t, realm, "alice")
	if len(vs) != 1 {
		t.Fatalf("want one violation, got %s", dump(vs))
	}
	wantViolation(t, vs[0], "alice", "max_devices", 2, 3, ipLondon, "log")
}

// max_sessions 2 block: a third concurrent session is refused; once one
// ends there is room again.
func testMaxSessionsBlock(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "sess-block"
	c := startCaddy(t, restrictConf(up, env, realm, restrictBlock("max_sessions 2 block")))
	cls := loginN(t, c.Site, "alice", 3, uaChromeWindows, ipLondon)
	wantReply(t, "session 1", cls[0].get(c.Site+"/account"), http.StatusOK, "")
	wantReply(t, "session 2", cls[1].get(c.Site+"/account"), http.StatusOK, "")
	wantReply(t, "session 3 (max_sessions 2 block)", cls[2].get(c.Site+"/account"), http.StatusForbidden, "max_sessions")
	if l := c.Sessions(t, realm, "alice", "all"); l.Total != 2 {
		t.Fatalf("want 2 sessions, got %s", dump(l))
	}
	vs := c.Violations(t, realm, "alice")
	if len(vs) != 1 {
		t.Fatalf("want one violation, got %s", dump(vs))
	}
	wantViolation(t, vs[0], "alice", "max_sessions", 2, 3, ipLondon, "block")
	// A logout makes room: a new login is admitted.
	if r := cls[0].get(c.Site + "/logout"); r.Status != http.StatusSeeOther {
		t.Fatalf("logout: %s", r)
	}
	d := newClient(t, uaChromeWindows, ipLondon)
	d.login(c.Site, "alice", "alice")
	wantReply(t, "a new session after a logout", d.get(c.Site+"/account"), http.StatusOK, "")
	wantReply(t, "session 2 still", cls[1].get(c.Site+"/account"), http.StatusOK, "")
	if l := c.Sessions(t, realm, "alice", "active"); l.Total != 2 {
		t.Fatalf("want 2 active sessions, got %s", dump(l))
	}
}

// max_sessions 2 log: a third session opens, recorded.
func testMaxSessionsLog(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "sess-log"
	c := startCaddy(t, restrictConf(up, env, realm, restrictBlock("max_sessions 2 log")))
	cls := loginN(t, c.Site, "alice", 3, uaChromeWindows, ipLondon)
	for i, cl := range cls {
		wantReply(t, fmt.Sprintf("session %d", i+1), cl.get(c.Site+"/account"), http.StatusOK, "")
	}
	if l := c.Sessions(t, realm, "alice", "active"); l.Total != 3 {
		t.Fatalf("want 3 active sessions, got %s", dump(l))
	}
	vs := c.Violations(t, realm, "alice")
	if len(vs) != 1 {
		t.Fatalf("want one violation, got %s", dump(vs))
	}
	wantViolation(t, vs[0], "alice", "max_sessions", 2, 3, ipLondon, "log")
}

// max_sessions 2 evict_oldest: the third login evicts the least recently
// used session (not the oldest by start); its cookie is then refused with
// on_revoked (401) and the app cookie expired.
func testMaxSessionsEvict(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "sess-evict"
	c := startCaddy(t, restrictConf(up, env, realm, restrictBlock("max_sessions 2 evict_oldest"), "refresh_interval 1s"))
	first := newClient(t, uaChromeWindows, ipLondon)
	first.login(c.Site, "alice", "alice")
	second := newClient(t, uaIPhone, ipMilton)
	second.login(c.Site, "alice", "alice")
	l := c.Sessions(t, realm, "alice", "active")
	firstID, secondID := activeByIP(t, l, ipLondon).ID, activeByIP(t, l, ipMilton).ID

	// The first session is used after a refresh interval: the second is
	// now the least recently used.
	time.Sleep(1100 * time.Millisecond)
	wantReply(t, "first session", first.get(c.Site+"/account"), http.StatusOK, "")
	eventually(t, 3*time.Second, 20*time.Millisecond, func() (bool, string) {
		l := c.Sessions(t, realm, "alice", "active")
		f, s := l.byID(firstID), l.byID(secondID)
		return f != nil && s != nil && f.LastSeen.After(s.LastSeen), "first session's last_seen not refreshed: " + dump(l)
	})

	third := newClient(t, uaFirefoxLinux, ipOther)
	third.login(c.Site, "alice", "alice")
	wantReply(t, "the third session", third.get(c.Site+"/account"), http.StatusOK, "")
	all := c.Sessions(t, realm, "alice", "all")
	ev := all.byID(secondID)
	if ev == nil || ev.EndedAt == nil || ev.EndReason != "evicted" {
		t.Fatalf("the least recently used session %s should be evicted: %s", secondID, dump(all))
	}
	if f := all.byID(firstID); f == nil || f.EndedAt != nil {
		t.Fatalf("the recently used (older) session %s must stay: %s", firstID, dump(all))
	}
	if a := c.Sessions(t, realm, "alice", "active"); a.Total != 2 {
		t.Fatalf("want 2 active sessions, got %s", dump(a))
	}
	// Refused with on_revoked, the app cookie expired. (Whether that
	// happens at the very next request is MaxSessionsEvictedAtOnce.)
	var r *reply
	eventually(t, 3*time.Second, 20*time.Millisecond, func() (bool, string) {
		r = second.get(c.Site + "/account")
		return r.Status != http.StatusOK, "evicted session still served: " + r.String()
	})
	wantReply(t, "the evicted session's cookie", r, http.StatusUnauthorized, "evicted")
	if !r.expires("shop_session") {
		t.Errorf("the refusal of the evicted session should expire shop_session: %s", r)
	}
	wantReply(t, "first session after the eviction", first.get(c.Site+"/account"), http.StatusOK, "")
	vs := c.Violations(t, realm, "alice")
	if len(vs) != 1 {
		t.Fatalf("want one violation, got %s", dump(vs))
	}
	wantViolation(t, vs[0], "alice", "max_sessions", 2, 3, ipOther, "evict_oldest")
}

// max_sessions 1 evict_oldest with the default refresh interval (30s):
// "its token refused from then on" — the evicted browser's very next
// request is refused, as a revoked session's is, although the instance
// had the session cached.
func testMaxSessionsEvictedAtOnce(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "sess-evict-now"
	c := startCaddy(t, restrictConf(up, env, realm, restrictBlock("max_sessions 1 evict_oldest")))
	first := newClient(t, uaChromeWindows, ipLondon)
	first.login(c.Site, "alice", "alice")
	wantReply(t, "first session", first.get(c.Site+"/account"), http.StatusOK, "")
	second := newClient(t, uaIPhone, ipMilton)
	second.login(c.Site, "alice", "alice")
	if s := c.Sessions(t, realm, "alice", "all"); s.Total != 2 || activeByIP(t, s, ipMilton).ID == "" || activeOrAny(s, ipLondon).EndReason != "evicted" {
		t.Fatalf("the second login should evict the first: %s", dump(s))
	}
	r := first.get(c.Site + "/account")
	if r.Status == http.StatusUnauthorized && strings.TrimSpace(string(r.Body)) == "evicted" && r.expires("shop_session") {
		return
	}
	// Measure how long the evicted session keeps being served.
	start, served := time.Now(), 1
	for time.Since(start) < 2*time.Second {
		rr, err := first.send(false, http.MethodGet, c.Site+"/account", nil, func(q *http.Request) { q.Header.Set("Cookie", first.cookieHeader(c.Site)) })
		if err != nil || rr.Status != http.StatusOK {
			break
		}
		served++
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("BUG: the evicted session is still served: its next request got %d (want 401 \"evicted\" expiring shop_session); %d requests over %v were all served from the instance's cache (it is refused only once its refresh, every refresh_interval = 30s, finds it ended)",
		r.Status, served, time.Since(start).Round(100*time.Millisecond))
}

// Exemption: an exempt user passes every limit (the refused IP, then new
// ones), no violation is recorded meanwhile and the history stays; a
// device block still applies to them; un-exempting restores the limit.
func testExemption(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "exempt"
	c := startCaddy(t, restrictConf(up, env, realm, restrictBlock("max_ips 2 24h block"), "refresh_interval 1s"))
	a := newClient(t, uaChromeWindows, ipA)
	a.login(c.Site, "bob", "bob")
	wantReply(t, "second IP", a.getAt(ipB, c.Site+"/account"), http.StatusOK, "")
	wantReply(t, "third IP", a.getAt(ipC, c.Site+"/account"), http.StatusForbidden, "max_ips")
	before := c.Violations(t, realm, "bob")
	if len(before) != 1 {
		t.Fatalf("want one violation, got %s", dump(before))
	}

	var ans struct {
		User   string `json:"user"`
		Exempt bool   `json:"exempt"`
	}
	c.adminWant(t, http.MethodPut, userPath(realm, "bob")+"/exempt", `{"exempt": true}`, http.StatusOK, &ans)
	if ans.User != "bob" || !ans.Exempt {
		t.Fatalf("PUT exempt answer: %s", dump(ans))
	}
	if u := findUser(c.Users(t, realm, ""), "bob"); u == nil || !u.Exempt {
		t.Fatalf("users list should show bob exempt: %s", dump(u))
	}
	// The refused IP is admitted (at the latest once the refusal memory of
	// one refresh interval has passed), and so are more new IPs.
	took := eventually(t, 3*time.Second, 50*time.Millisecond, func() (bool, string) {
		r := a.get(c.Site + "/account")
		return r.Status == http.StatusOK, "refused IP after the exemption: " + r.String()
	})
	t.Logf("the refused IP was admitted %v after the exemption", took)
	for _, ip := range []string{ipD, ipE} {
		wantReply(t, "new IP "+ip+" while exempt", a.getAt(ip, c.Site+"/account"), http.StatusOK, "")
	}
	b := newClient(t, uaFirefoxLinux, ipF)
	b.login(c.Site, "bob", "bob")
	wantReply(t, "a new browser from a new IP while exempt", b.get(c.Site+"/account"), http.StatusOK, "")
	after := c.Violations(t, realm, "bob")
	if len(after) != 1 || after[0].ID != before[0].ID {
		t.Fatalf("the history must be kept and nothing recorded while exempt: before %s, after %s", dump(before), dump(after))
	}

	// A device block applies to the exempt user.
	dev := deviceOf(a, c.Site)
	c.adminWant(t, http.MethodPut, userPath(realm, "bob")+"/devices/"+dev, `{"blocked": true}`, http.StatusOK, nil)
	wantReply(t, "blocked device of an exempt user", a.get(c.Site+"/account"), http.StatusForbidden, "device_blocked")
	wantReply(t, "the other device of the exempt user", b.get(c.Site+"/account"), http.StatusOK, "")

	// Not exempt any more: the limit applies again to a new IP.
	c.adminWant(t, http.MethodPut, userPath(realm, "bob")+"/exempt", `{"exempt": false}`, http.StatusOK, nil)
	wantReply(t, "a new IP after the exemption ended", b.getAt("192.0.2.99", c.Site+"/account"), http.StatusForbidden, "max_ips")
	if vs := c.Violations(t, realm, "bob"); len(vs) != 2 {
		t.Fatalf("want the old and a new violation, got %s", dump(vs))
	}
}

// Viewed status: marking a violation viewed clears the user's unviewed
// marker in the users list, and changes no restriction.
func testViewedStatus(t *testing.T, env storeEnv) {
	_, up := startShop(t, true)
	const realm = "viewed"
	c := startCaddy(t, restrictConf(up, env, realm, restrictBlock("max_ips 1 24h block"), "refresh_interval 1s"))
	a := newClient(t, uaChromeWindows, ipA)
	a.login(c.Site, "carol", "carol")
	wantReply(t, "second IP (max_ips 1)", a.getAt(ipB, c.Site+"/account"), http.StatusForbidden, "max_ips")
	refusedAt := time.Now()
	vs := c.Violations(t, realm, "carol")
	if len(vs) != 1 {
		t.Fatalf("want one violation, got %s", dump(vs))
	}
	u := findUser(c.Users(t, realm, "violations=unviewed"), "carol")
	if u == nil || u.UnviewedViolations != 1 {
		t.Fatalf("users?violations=unviewed should list carol with 1: %s", dump(c.Users(t, realm, "")))
	}

	var left struct {
		Unviewed *int `json:"unviewed_violations"`
	}
	c.adminWant(t, http.MethodPatch, userPath(realm, "carol")+"/violations/"+url.PathEscape(vs[0].ID), `{"viewed": true}`, http.StatusOK, &left)
	if left.Unviewed == nil || *left.Unviewed != 0 {
		t.Fatalf("PATCH viewed should leave 0 unviewed: %s", dump(left))
	}
	if v := c.Violations(t, realm, "carol"); len(v) != 1 || !v[0].Viewed {
		t.Fatalf("the violation should be viewed: %s", dump(v))
	}
	if u := findUser(c.Users(t, realm, "violations=unviewed"), "carol"); u != nil {
		t.Fatalf("after viewing, users?violations=unviewed must not list carol: %s", dump(u))
	}
	if u := findUser(c.Users(t, realm, ""), "carol"); u == nil || u.UnviewedViolations != 0 {
		t.Fatalf("users list: carol should have 0 unviewed: %s", dump(u))
	}

	// The restriction is unchanged: past the refusal memory, the store
	// refuses the same IP again; the first IP still works.
	time.Sleep(time.Until(refusedAt.Add(1200 * time.Millisecond)))
	wantReply(t, "the refused IP after viewing", a.getAt(ipB, c.Site+"/account"), http.StatusForbidden, "max_ips")
	wantReply(t, "the first IP after viewing", a.getAt(ipA, c.Site+"/account"), http.StatusOK, "")
	vs = c.Violations(t, realm, "carol")
	if len(vs) != 2 || vs[0].Viewed || !vs[1].Viewed {
		t.Fatalf("the new refusal is a new unviewed violation beside the viewed one: %s", dump(vs))
	}
	// Mark all viewed.
	c.adminWant(t, http.MethodPatch, userPath(realm, "carol")+"/violations", `{"viewed": true}`, http.StatusOK, &left)
	if left.Unviewed == nil || *left.Unviewed != 0 {
		t.Fatalf("PATCH all viewed should leave 0 unviewed: %s", dump(left))
	}
	if u := findUser(c.Users(t, realm, "violations=unviewed"), "carol"); u != nil {
		t.Fatalf("after viewing all, users?violations=unviewed must not list carol: %s", dump(u))
	}
	wantReply(t, "the refused IP after viewing all", a.getAt(ipB, c.Site+"/account"), http.StatusForbidden, "max_ips")
}

// TestDeviceBlockAcrossInstances: a device blocked through instance A's
// admin API is refused by instance B (403, block_reason device_blocked)
// within a second although B had the session cached; its session ends with
// reason device_blocked; unblocking through B restores access on A and B at
// once.
func TestDeviceBlockAcrossInstances(t *testing.T) {
	t.Parallel()
	for _, s := range []struct {
		name string
		mk   func(testing.TB) storeEnv
	}{{"redis", redisStore}, {"cluster", clusterStore}} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			env := s.mk(t)
			shp, up := startShop(t, true)
			const realm = "block-xinst"
			conf := restrictConf(up, env, realm)
			a := startCaddy(t, conf)
			b := startCaddy(t, conf)

			cl := newClient(t, uaChromeWindows, ipLondon)
			cl.login(a.Site, "alice", "alice")
			other := newClient(t, uaIPhone, ipMilton)
			other.login(a.Site, "alice", "alice")
			cookie := cl.cookieHeader(a.Site)
			get := func(inst *Caddy) (*reply, error) {
				return cl.send(false, http.MethodGet, inst.Site+"/account", nil, func(r *http.Request) { r.Header.Set("Cookie", cookie) })
			}
			for _, inst := range []*Caddy{b, b, a} {
				if r, err := get(inst); err != nil || r.Status != http.StatusOK {
					u, ok := shp.LoggedIn(cl.cookie(a.Site, "shop_session"))
					t.Fatalf("GET /account through %s before the block: %v %v\n(cookies sent: %q; the shop knows the token: %v %q)", inst.Site, r, err, cookie, ok, u)
				}
			}
			dev := deviceOf(cl, a.Site)
			sess := activeByIP(t, a.Sessions(t, realm, "alice", "active"), ipLondon)
			if sess.DeviceID != dev {
				t.Fatalf("session device %q, cookie device %q", sess.DeviceID, dev)
			}

			poll := func(inst *Caddy, status int, body string, since time.Time) (time.Duration, *reply) {
				var last *reply
				for time.Since(since) < 3*time.Second {
					r, err := get(inst)
					if err == nil {
						last = r
						if r.Status == status && (body == "" || strings.TrimSpace(string(r.Body)) == body) {
							return time.Since(since), r
						}
					}
					time.Sleep(5 * time.Millisecond)
				}
				t.Fatalf("%s: not %d %q within 3s; last %v", inst.Site, status, body, last)
				return 0, nil
			}

			var blk struct {
				Device        string       `json:"device"`
				Blocked       bool         `json:"blocked"`
				EndedSessions []apiSession `json:"ended_sessions"`
			}
			sent := time.Now()
			a.adminWant(t, http.MethodPut, userPath(realm, "alice")+"/devices/"+dev, `{"blocked": true}`, http.StatusOK, &blk)
			answered := time.Now()
			if blk.Device != dev || !blk.Blocked || len(blk.EndedSessions) != 1 || blk.EndedSessions[0].ID != sess.ID || blk.EndedSessions[0].EndReason != "device_blocked" {
				t.Fatalf("PUT blocked answer: %s", dump(blk))
			}
			d, _ := poll(b, http.StatusForbidden, "device_blocked", answered)
			t.Logf("block propagation A->B: %v after the PUT answered (%v after it was sent)", d, d+answered.Sub(sent))
			if d > time.Second {
				t.Errorf("instance B refused the blocked device only after %v, want within 1s", d)
			}
			poll(a, http.StatusForbidden, "device_blocked", answered)
			l := b.Sessions(t, realm, "alice", "all")
			if s := l.byID(sess.ID); s == nil || s.EndReason != "device_blocked" {
				t.Fatalf("the blocked device's session should end with device_blocked: %s", dump(l))
			}
			if s := activeByIP(t, l, ipMilton); s.EndedAt != nil {
				t.Fatalf("the other device's session must stay: %s", dump(l))
			}
			if r := other.get(b.Site + "/account"); r.Status != http.StatusOK {
				t.Fatalf("the other device of the user on B: %s", r)
			}
			blocked := false
			for _, d := range b.Devices(t, realm, "alice") {
				if d.ID == dev {
					blocked = d.Blocked
				}
			}
			if !blocked {
				t.Fatalf("devices list on B should show the device blocked: %s", dump(b.Devices(t, realm, "alice")))
			}

			// Unblock through B: A and B serve the device again at once,
			// with a new session for the same cookie.
			b.adminWant(t, http.MethodPut, userPath(realm, "alice")+"/devices/"+dev, `{"blocked": false}`, http.StatusOK, nil)
			answered = time.Now()
			da, r := poll(a, http.StatusOK, "", answered)
			if !strings.Contains(string(r.Body), "alice") {
				t.Fatalf("after unblocking: %s", r)
			}
			db, rb := poll(b, http.StatusOK, "", answered)
			if !strings.Contains(string(rb.Body), "alice") {
				t.Fatalf("after unblocking, on B: %s", rb)
			}
			t.Logf("unblock propagation B->A: %v, B itself: %v", da, db)
			if da > time.Second {
				t.Errorf("instance A served the unblocked device only after %v, want within 1s", da)
			}
			if s := activeByIP(t, a.Sessions(t, realm, "alice", "active"), ipLondon); s.ID == sess.ID || s.DeviceID != dev {
				t.Fatalf("after unblocking, the same cookie should open a new session on the same device: %s", dump(s))
			}
		})
	}
}

// TestRestrictRace: with max_ips 3 block, 30 first requests of one user
// from 30 distinct IPs, released together and spread over two instances
// sharing Redis (or a Redis Cluster), admit exactly 3. Each request is a
// first sight: the user comes from a header and no cookie is sent, so each
// IP is its own device and token. The memory store runs it on one
// instance.
func TestRestrictRace(t *testing.T) {
	t.Parallel()
	for _, s := range []struct {
		name      string
		mk        func(testing.TB) storeEnv
		instances int
	}{
		{"memory", func(testing.TB) storeEnv { return memoryStore() }, 1},
		{"redis", redisStore, 2},
		{"cluster", clusterStore, 2},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			env := s.mk(t)
			_, up := startShop(t, true)
			const realm = "race"
			conf := caddyfile("", `sessions {
	`+strings.ReplaceAll(env.fragment, "\n", "\n\t")+`
	realm `+realm+`
	user {http.request.header.X-User}
	`+strings.ReplaceAll(restrictBlock("max_ips 3 24h block"), "\n", "\n\t")+`
}
reverse_proxy `+up+`
`+blockReasonErrors)
			var insts []*Caddy
			for i := 0; i < s.instances; i++ {
				insts = append(insts, startCaddy(t, conf))
			}
			const n = 30
			for round, user := range []string{"racer-1", "racer-2"} {
				cl := newClient(t, uaChromeWindows, "")
				type res struct {
					status int
					body   string
					err    error
				}
				results := make([]res, n)
				release := make(chan struct{})
				var ready, done sync.WaitGroup
				for i := 0; i < n; i++ {
					ready.Add(1)
					done.Add(1)
					go func(i int) {
						defer done.Done()
						ip := fmt.Sprintf("10.%d.%d.%d", round+1, i/200, i%200+1)
						inst := insts[i%len(insts)]
						ready.Done()
						<-release
						r, err := cl.send(false, http.MethodGet, inst.Site+"/", nil, func(r *http.Request) {
							r.Header.Set("X-User", user)
							r.Header.Set("X-Forwarded-For", ip)
						})
						if err != nil {
							results[i] = res{err: err}
							return
						}
						results[i] = res{status: r.Status, body: strings.TrimSpace(string(r.Body))}
					}(i)
				}
				ready.Wait()
				close(release)
				done.Wait()
				ok, refused := 0, 0
				for i, r := range results {
					switch {
					case r.err != nil:
						t.Fatalf("request %d: %v", i, r.err)
					case r.status == http.StatusOK:
						ok++
					case r.status == http.StatusForbidden && r.body == "max_ips":
						refused++
					default:
						t.Fatalf("request %d: unexpected answer %d %q", i, r.status, r.body)
					}
				}
				t.Logf("%s: %d parallel first requests over %d instance(s): %d admitted, %d refused", user, n, len(insts), ok, refused)
				if ok != 3 || refused != n-3 {
					t.Errorf("%s: want exactly 3 admitted and %d refused, got %d admitted, %d refused", user, n-3, ok, refused)
				}
				l := insts[0].Sessions(t, realm, user, "all")
				ips := map[string]bool{}
				for _, s := range l.Sessions {
					ips[s.IP] = true
				}
				if l.Total != 3 || len(ips) != 3 {
					t.Errorf("%s: want 3 sessions from 3 IPs, got %s", user, dump(l))
				}
				if vs := insts[len(insts)-1].Violations(t, realm, user); len(vs) != n-3 {
					t.Errorf("%s: want %d violations (one per refused first request), got %d", user, n-3, len(vs))
				}
			}
		})
	}
}

// TestRestrictBadConfig: bad restrict input fails `caddy adapt` with a
// non-zero exit and a message naming the policy and the value; in JSON,
// `caddy run` refuses it at provisioning.
func TestRestrictBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		line string
		want []string
	}{
		{"max_ips_negative", "max_ips -1 24h block", []string{"max_ips", "-1"}},
		{"max_devices_negative", "max_devices -3 30d log", []string{"max_devices", "-3"}},
		{"max_sessions_negative", "max_sessions -2", []string{"max_sessions", "-2"}},
		{"max_ips_not_a_number", "max_ips three 24h", []string{"max_ips", "three"}},
		{"max_ips_zero_window", "max_ips 3 0s", []string{"max_ips", "0s"}},
		{"max_devices_zero_window_days", "max_devices 2 0d", []string{"max_devices", "0d"}},
		{"max_ips_negative_window", "max_ips 3 -1h", []string{"max_ips", "-1h"}},
		{"max_ips_bad_window", "max_ips 3 soon", []string{"max_ips", "soon"}},
		{"max_ips_unknown_action", "max_ips 3 24h kick", []string{"max_ips", "kick"}},
		{"max_devices_unknown_action", "max_devices 2 30d deny", []string{"max_devices", "deny"}},
		{"max_sessions_unknown_action", "max_sessions 2 evict_newest", []string{"max_sessions", "evict_newest"}},
		{"max_ips_evict_oldest", "max_ips 3 24h evict_oldest", []string{"max_ips", "evict_oldest"}},
		{"max_devices_evict_oldest", "max_devices 2 30d evict_oldest", []string{"max_devices", "evict_oldest"}},
		{"max_ips_missing_window", "max_ips 3", []string{"max_ips"}},
		{"ip_prefix_v4_too_long", "ip_prefix 33", []string{"ip_prefix", "33"}},
		{"ip_prefix_v6_too_long", "ip_prefix 24 129", []string{"ip_prefix", "129"}},
		{"ip_prefix_negative", "ip_prefix -8", []string{"ip_prefix", "-8"}},
		{"ip_prefix_not_a_number", "ip_prefix /24", []string{"ip_prefix", "/24"}},
		{"unknown_policy", "max_countries 2", []string{"max_countries"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			body := caddyfile("", `@login method POST path /login
sessions {
	session_cookie shop_session
	login @login
	restrict {
		`+tc.line+`
	}
}
reverse_proxy 127.0.0.1:9`)
			body = strings.Replace(body, markAdmin, strconv.Itoa(redistest.FreePort(t)), 1)
			body = strings.Replace(body, markSite, strconv.Itoa(redistest.FreePort(t)), 1)
			cfg := filepath.Join(dir, "Caddyfile")
			if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			out, code := runCaddyCmd(t, dir, "adapt", "--config", cfg, "--adapter", "caddyfile")
			if code == 0 {
				t.Fatalf("caddy adapt accepted %q:\n%s", tc.line, out)
			}
			checkMentions(t, "adapt", out, append(tc.want, "restrict"), nil)
			t.Logf("adapt: %s", lastLines(out, 1))
		})
	}

	// The same checks guard a JSON config (Provision).
	for _, tc := range []struct {
		name     string
		restrict string
		want     []string
	}{
		{"json_negative", `{"max_ips": {"max": -1, "window": "1h"}}`, []string{"max_ips", "-1"}},
		{"json_zero_window", `{"max_devices": {"max": 2, "window": "0s"}}`, []string{"max_devices", "window"}},
		{"json_unknown_action", `{"max_sessions": {"max": 2, "action": "kick"}}`, []string{"max_sessions", "kick"}},
		{"json_bad_prefix", `{"ip_prefix": {"v4": 40}}`, []string{"ip_prefix", "40"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := fmt.Sprintf(`{"admin": {"listen": "127.0.0.1:%d"}, "apps": {"http": {"servers": {"s": {"listen": ["127.0.0.1:%d"],
				"routes": [{"handle": [{"handler": "sessions", "session_cookie": "shop_session", "restrict": %s}]}]}}}}}`,
				redistest.FreePort(t), redistest.FreePort(t), tc.restrict)
			path := filepath.Join(dir, "caddy.json")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			out, code := runCaddyCmd(t, dir, "run", "--config", path)
			if code == 0 {
				t.Fatalf("caddy run accepted restrict %s:\n%s", tc.restrict, out)
			}
			checkMentions(t, "run", out, append(tc.want, "restrict"), nil)
			t.Logf("run: %s", lastLines(out, 1))
		})
	}
}
