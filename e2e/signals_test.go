package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Signals out (issue 3, with impersonation from issue 4): Caddy events
// through the events app, and Prometheus metrics on the admin endpoint.

// loggedEvent is one event as caddyevents logs it at debug level.
type loggedEvent struct {
	Logger string         `json:"logger"`
	Msg    string         `json:"msg"`
	Name   string         `json:"name"`
	Origin string         `json:"origin"`
	ID     string         `json:"id"`
	Data   map[string]any `json:"data"`
}

// events are the events in Caddy's log so far.
func (c *Caddy) events() []loggedEvent {
	var out []loggedEvent
	sc := bufio.NewScanner(strings.NewReader(c.Log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e loggedEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Logger == "events" && e.Msg == "event" {
			out = append(out, e)
		}
	}
	return out
}

// str is a field of event data as text ("" if missing).
func (e loggedEvent) str(k string) string {
	switch v := e.Data[k].(type) {
	case string:
		return v
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// TestEvents: with an events app in the config (JSON: the adapted
// Caddyfile plus "events": {}) and the debug log on, caddyevents logs
// every event the module emits: session_opened, device_new, violation,
// impersonation, device_blocked, session_closed (device_blocked, logout),
// with plausible data. No raw session token shows up in the log.
func TestEvents(t *testing.T) {
	t.Parallel()
	_, up := startShop(t, true)
	const realm = "signals"
	cfg := caddyfile("debug", shopSite(up, sessionsConf(memoryStore(), "realm "+realm, "login @login", "logout @logout", "geoip "+geoDB,
		"impersonation {http.request.header.X-Impersonator}", restrictBlock("max_ips 2 24h block")), "")+"\n"+blockReasonErrors)
	c := startCaddyJSON(t, cfg, func(m map[string]any) {
		apps, _ := m["apps"].(map[string]any)
		if apps == nil {
			t.Fatalf("adapted config without apps: %v", m)
		}
		apps["events"] = map[string]any{}
		if _, ok := m["logging"]; !ok {
			t.Fatalf("the global debug option should adapt to a logging config: %v", m)
		}
	})

	desk := newClient(t, uaChromeWindows, ipLondon)
	desk.login(c.Site, "alice", "alice")
	phone := newClient(t, uaIPhone, ipMilton)
	phone.login(c.Site, "alice", "alice")
	tokens := []string{desk.cookie(c.Site, "shop_session"), phone.cookie(c.Site, "shop_session")}
	wantReply(t, "a third IP", desk.getAt(ipOther, c.Site+"/account"), http.StatusForbidden, "max_ips")
	desk.IP = ipLondon
	if r, err := desk.send(false, http.MethodGet, c.Site+"/account", nil, func(r *http.Request) {
		r.Header.Set("X-Impersonator", "staff-jo")
		r.Header.Set("Cookie", desk.cookieHeader(c.Site))
	}); err != nil || r.Status != http.StatusOK {
		t.Fatalf("impersonated request: %v %v", r, err)
	}
	l := c.Sessions(t, realm, "alice", "active")
	deskS, phoneS := activeByIP(t, l, ipLondon), activeByIP(t, l, ipMilton)
	c.adminWant(t, http.MethodPut, userPath(realm, "alice")+"/devices/"+phoneS.DeviceID, `{"blocked": true}`, http.StatusOK, nil)
	wantReply(t, "the blocked phone", phone.get(c.Site+"/account"), http.StatusForbidden, "device_blocked")
	if r := desk.get(c.Site + "/logout"); r.Status != http.StatusSeeOther {
		t.Fatalf("logout: %s", r)
	}

	byName := map[string][]loggedEvent{}
	want := []string{"sessions.session_opened", "sessions.device_new", "sessions.violation", "sessions.impersonation",
		"sessions.device_blocked", "sessions.session_closed"}
	eventually(t, 3*time.Second, 50*time.Millisecond, func() (bool, string) {
		byName = map[string][]loggedEvent{}
		for _, e := range c.events() {
			byName[e.Name] = append(byName[e.Name], e)
		}
		for _, n := range want {
			if len(byName[n]) == 0 {
				return false, "no " + n + " event in the log; events seen: " + dump(byName)
			}
		}
		return len(byName["sessions.session_closed"]) >= 2, "want two session_closed events: " + dump(byName["sessions.session_closed"])
	})
	for n, es := range byName {
		t.Logf("%s x%d, e.g. %v", n, len(es), es[0].Data)
		for _, e := range es {
			if strings.HasPrefix(n, "sessions.") && (e.Origin != "http.handlers.sessions" || e.ID == "") {
				t.Errorf("event %s: origin %q id %q, want origin http.handlers.sessions and an id", n, e.Origin, e.ID)
			}
		}
	}

	// session_opened: one per login, with who, where and what.
	opened := byName["sessions.session_opened"]
	if len(opened) != 2 {
		t.Errorf("want 2 session_opened events, got %s", dump(opened))
	}
	for _, e := range opened {
		s := deskS
		if e.str("session") == phoneS.ID {
			s = phoneS
		}
		if e.str("session") != s.ID || e.str("realm") != realm || e.str("user") != "alice" || e.str("device") != s.DeviceID ||
			e.str("ip") != s.IP || e.str("browser") != s.Agent.Browser || e.str("os") != s.Agent.OS || !strings.Contains(e.str("location"), s.Location.City) {
			t.Errorf("session_opened data %v does not match the session %s", e.Data, dump(s))
		}
	}
	// device_new: the two browsers.
	devs := map[string]bool{}
	for _, e := range byName["sessions.device_new"] {
		devs[e.str("device")] = true
		if e.str("user") != "alice" || e.str("ip") == "" {
			t.Errorf("device_new data: %v", e.Data)
		}
	}
	if len(devs) != 2 || !devs[deskS.DeviceID] || !devs[phoneS.DeviceID] {
		t.Errorf("device_new events for %v, want the devices %s and %s", devs, deskS.DeviceID, phoneS.DeviceID)
	}
	if e := byName["sessions.device_new"][0]; e.str("realm") != realm {
		t.Errorf("BUG: device_new event data has no realm (README: event data holds the realm; a webhook cannot tell which realm's user got a new device): %v", e.Data)
	}
	// violation: max_ips 2, observed 3, blocked, from the third IP.
	if vs := byName["sessions.violation"]; len(vs) != 1 || vs[0].str("policy") != "max_ips" || vs[0].str("limit") != "2" || vs[0].str("observed") != "3" ||
		vs[0].str("action") != "block" || vs[0].str("ip") != ipOther || vs[0].str("user") != "alice" || vs[0].str("realm") != realm || vs[0].str("violation") == "" {
		t.Errorf("violation events: %s", dump(vs))
	}
	// impersonation: by whom, on which request; the customer is named.
	if es := byName["sessions.impersonation"]; len(es) != 1 || es[0].str("by") != "staff-jo" || es[0].str("path") != "/account" ||
		es[0].str("method") != http.MethodGet || es[0].str("ip") != ipLondon || es[0].str("realm") != realm {
		t.Errorf("impersonation events: %s", dump(es))
	} else if es[0].str("user") != "alice" {
		t.Errorf("BUG: the impersonation audit event does not name the impersonated customer (data.user = %q, want alice): with session_cookie identity serve.go impersonated() reports id.user, which only the user placeholder sets: %v",
			es[0].str("user"), es[0].Data)
	}
	// device_blocked: the phone, blocked.
	if es := byName["sessions.device_blocked"]; len(es) != 1 || es[0].str("device") != phoneS.DeviceID || es[0].str("blocked") != "true" || es[0].str("user") != "alice" {
		t.Errorf("device_blocked events: %s", dump(es))
	}
	// session_closed: the phone (device_blocked) and the desk (logout).
	reasons := map[string]string{}
	for _, e := range byName["sessions.session_closed"] {
		reasons[e.str("session")] = e.str("reason")
	}
	if reasons[phoneS.ID] != "device_blocked" || reasons[deskS.ID] != "logout" {
		t.Errorf("session_closed reasons %v, want %s device_blocked and %s logout", reasons, phoneS.ID, deskS.ID)
	}

	log := c.Log()
	for _, tok := range tokens {
		if len(tok) < 16 {
			t.Fatalf("unexpected app token %q", tok)
		}
		if strings.Contains(log, tok) {
			t.Errorf("the raw session token %q appears in Caddy's log", tok)
		}
	}
}

// metricLine is one sample of the Prometheus text format.
var metricLine = regexp.MustCompile(`^(caddy_sessions_[a-z_]+)\{([^}]*)\} ([0-9.e+]+)$`)

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func (c *Caddy) sessionMetrics(t testing.TB) []sample {
	t.Helper()
	resp, err := http.Get(c.Admin + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	var out []sample
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "caddy_sessions_") {
			continue
		}
		m := metricLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unparsable metric line %q", line)
		}
		s := sample{name: m[1], labels: map[string]string{}}
		s.value, _ = strconv.ParseFloat(m[3], 64)
		for _, kv := range strings.Split(m[2], ",") {
			k, v, _ := strings.Cut(kv, "=")
			s.labels[k] = strings.Trim(v, `"`)
		}
		out = append(out, s)
	}
	return out
}

// value is the sample of name with exactly labels, or -1.
func value(samples []sample, name string, labels map[string]string) float64 {
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(labels) {
			continue
		}
		ok := true
		for k, v := range labels {
			ok = ok && s.labels[k] == v
		}
		if ok {
			return s.value
		}
	}
	return -1
}

// TestMetrics: the admin endpoint's /metrics has the module's counters by
// realm, reason, policy and action with the counts of what happened, and
// no label holds a user, an IP or a device.
func TestMetrics(t *testing.T) {
	t.Parallel()
	_, up := startShop(t, true)
	const realm = "metrics"
	c := startCaddy(t, restrictConf(up, memoryStore(), realm, restrictBlock("max_ips 2 24h block")))
	desk := newClient(t, uaChromeWindows, ipLondon)
	desk.login(c.Site, "alice", "alice")
	phone := newClient(t, uaIPhone, ipMilton)
	phone.login(c.Site, "alice", "alice")
	bob := newClient(t, uaFirefoxLinux, ipOther)
	bob.login(c.Site, "bob", "bob")
	wantReply(t, "alice from a third IP", desk.getAt(ipOther, c.Site+"/account"), http.StatusForbidden, "max_ips")
	if r := phone.get(c.Site + "/logout"); r.Status != http.StatusSeeOther {
		t.Fatalf("logout: %s", r)
	}
	bobID := activeByIP(t, c.Sessions(t, realm, "bob", "active"), ipOther).ID
	c.Revoke(t, realm, "bob", bobID)
	wantReply(t, "bob's revoked session", bob.get(c.Site+"/account"), http.StatusUnauthorized, "revoked")

	var ms []sample
	type want struct {
		name   string
		labels map[string]string
		v      float64
	}
	wants := []want{
		{"caddy_sessions_opened_total", map[string]string{"realm": realm}, 3},
		{"caddy_sessions_closed_total", map[string]string{"realm": realm, "reason": "logout"}, 1},
		{"caddy_sessions_closed_total", map[string]string{"realm": realm, "reason": "revoked"}, 1},
		{"caddy_sessions_refused_total", map[string]string{"realm": realm, "reason": "max_ips"}, 1},
		{"caddy_sessions_refused_total", map[string]string{"realm": realm, "reason": "revoked"}, 1},
		{"caddy_sessions_violations_total", map[string]string{"realm": realm, "policy": "max_ips", "action": "block"}, 1},
	}
	eventually(t, 3*time.Second, 50*time.Millisecond, func() (bool, string) {
		ms = c.sessionMetrics(t)
		for _, w := range wants {
			if got := value(ms, w.name, w.labels); got != w.v {
				return false, fmt.Sprintf("%s%v = %v, want %v; all: %v", w.name, w.labels, got, w.v, ms)
			}
		}
		return true, ""
	})
	t.Logf("metrics: %v", ms)

	// Labels: only realm, reason, policy and action, never personal data.
	allowed := map[string]bool{"realm": true, "reason": true, "policy": true, "action": true}
	personal := []string{"alice", "bob", ipLondon, ipMilton, ipOther, deviceOf(desk, c.Site), deviceOf(phone, c.Site), bobID}
	for _, s := range ms {
		for k, v := range s.labels {
			if !allowed[k] {
				t.Errorf("%s has label %s=%q: only realm, reason, policy, action are allowed", s.name, k, v)
			}
			for _, p := range personal {
				if p != "" && strings.Contains(v, p) {
					t.Errorf("%s label %s=%q holds personal data %q", s.name, k, v, p)
				}
			}
		}
	}

	// refused_total counts requests refused: a refused client retrying is
	// refused (and counted) each time, also when the answer comes from the
	// instance's memory of the refusal.
	t.Run("RefusedCountsEveryRequest", func(t *testing.T) {
		before := value(c.sessionMetrics(t), "caddy_sessions_refused_total", map[string]string{"realm": realm, "reason": "max_ips"})
		for i := 0; i < 3; i++ {
			wantReply(t, "retry from the third IP", desk.get(c.Site+"/account"), http.StatusForbidden, "max_ips")
		}
		after := value(c.sessionMetrics(t), "caddy_sessions_refused_total", map[string]string{"realm": realm, "reason": "max_ips"})
		if after-before != 3 {
			t.Errorf("BUG: 3 refused requests moved caddy_sessions_refused_total{reason=\"max_ips\"} by %v (from %v to %v), want 3: refusals answered from the local cache (tracker.fromCache) do not call Hooks.Refused, documented as \"called for every refused request\"",
				after-before, before, after)
		}
	})
}

// refreshes counts the refreshes of realm's sessions that went through the
// store (written, or found ended or failing): the fact a test waits for
// instead of sleeping while a batch might be written.
func (c *Caddy) refreshes(t testing.TB, realm string) float64 {
	t.Helper()
	samples := c.sessionMetrics(t)
	var n float64
	for _, outcome := range []string{"written", "ended", "failed"} {
		if v := value(samples, "caddy_sessions_refreshes_total", map[string]string{"realm": realm, "outcome": outcome}); v > 0 {
			n += v
		}
	}
	return n
}

// waitRefreshes waits until more than n refreshes of realm went through
// the store. Refreshes are queued in order and written in batches, so once
// a refresh queued after another has gone through, so has the other.
func (c *Caddy) waitRefreshes(t testing.TB, realm string, n float64) {
	t.Helper()
	eventually(t, 5*time.Second, 10*time.Millisecond, func() (bool, string) {
		got := c.refreshes(t, realm)
		return got > n, fmt.Sprintf("refreshes of %s: %v, waiting for more than %v", realm, got, n)
	})
}
