package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Risk signals (issue 14) through a real Caddy and a real Redis, with the
// MaxMind test database for locations.

// riskSite is a Caddyfile: the recording shop behind sessions with env's
// store, the risk block of riskLines, the signals passed upstream as
// Sessions-Risk, and handle_errors showing the block reason. The events
// app and the debug log are on (startCaddyJSON with withEvents).
func riskSite(up string, env storeEnv, realm string, riskLines ...string) string {
	lines := []string{"realm " + realm, "login @login", "logout @logout", "geoip " + geoDB,
		"risk {\n\t" + strings.Join(riskLines, "\n\t") + "\n}"}
	return caddyfile("debug", shopSite(up, sessionsConf(env, lines...), "header_up Sessions-Risk {http.sessions.risk}")+"\n"+blockReasonErrors)
}

func withEvents(t testing.TB) func(map[string]any) {
	return func(m map[string]any) {
		apps, _ := m["apps"].(map[string]any)
		if apps == nil {
			t.Fatalf("adapted config without apps: %v", m)
		}
		apps["events"] = map[string]any{}
	}
}

// riskEvents waits for n sessions.risk events and returns them.
func (c *Caddy) riskEvents(t testing.TB, n int) []loggedEvent {
	t.Helper()
	var out []loggedEvent
	eventually(t, 3*time.Second, 50*time.Millisecond, func() (bool, string) {
		out = nil
		for _, e := range c.events() {
			if e.Name == "sessions.risk" {
				out = append(out, e)
			}
		}
		return len(out) >= n, "sessions.risk events: " + dump(out)
	})
	return out
}

// TestRiskCopiedCookie: the session cookie of a browser in London, copied
// into an iPhone in Changchun without the device cookie, is cookie_moved;
// block refuses the copy and keeps the owner, revoke ends the session for
// both, challenge ends it and sends the copy to the login page. The copy
// is never given the owner's device cookie. Each finding is an event, a
// metric and a record in the admin API.
func TestRiskCopiedCookie(t *testing.T) {
	t.Parallel()
	env := redisStore(t)
	rec, up := recordingShop(t, true)
	for _, c := range []struct {
		action                   string
		thiefStatus              int
		thiefBody, thiefLocation string
		ownerStatus              int
	}{
		{"block", http.StatusForbidden, "cookie_moved", "", http.StatusOK},
		{"revoke", http.StatusUnauthorized, "revoked", "", http.StatusUnauthorized},
		{"challenge /login?next={http.request.uri}", http.StatusSeeOther, "", "/login?next=%2Faccount%3Fitem%3D7", http.StatusUnauthorized},
	} {
		action, _, _ := strings.Cut(c.action, " ")
		t.Run(action, func(t *testing.T) {
			realm := "risk-copy-" + action
			site := startCaddyJSON(t, riskSite(up, env, realm, "cookie_moved "+c.action), withEvents(t))
			alice := newClient(t, uaChromeWindows, ipLondon)
			alice.login(site.Site, "alice", "alice")
			wantReply(t, "alice", alice.get(site.Site+"/account"), http.StatusOK, "")
			if got, _ := rec.last(http.MethodGet, "/account"); got.Header.Get("Sessions-Risk") != "" {
				t.Fatalf("Sessions-Risk before anything happened: %q", got.Header.Get("Sessions-Risk"))
			}
			deviceCookie, token := alice.cookie(site.Site, "sessions_device"), alice.cookie(site.Site, "shop_session")

			thief := newClient(t, uaIPhone, "175.16.199.0") // Changchun, CN
			r, err := thief.send(false, http.MethodGet, site.Site+"/account?item=7", nil, func(q *http.Request) {
				q.Header.Set("Cookie", "shop_session="+token)
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != c.thiefStatus || (c.thiefBody != "" && strings.TrimSpace(string(r.Body)) != c.thiefBody) || r.Header.Get("Location") != c.thiefLocation {
				t.Fatalf("the copied cookie: %s; want %d %q Location %q", r, c.thiefStatus, c.thiefBody, c.thiefLocation)
			}
			if ck := r.setCookie("sessions_device"); ck != nil && ck.Value == deviceCookie {
				t.Fatal("the copy was handed the owner's device cookie")
			}
			if action != "block" && !r.expires("shop_session") {
				t.Errorf("the %s answer does not expire the app's cookie: %s", action, r)
			}
			wantReply(t, "alice after "+action, alice.get(site.Site+"/account"), c.ownerStatus, "")

			list := site.risks(t, realm, "alice")
			if len(list) != 1 || list[0].Signal != "cookie_moved" || list[0].Action != action || list[0].Location.City != "Changchun" {
				t.Fatalf("risk findings = %s", dump(list))
			}
			ev := site.riskEvents(t, 1)[0]
			if ev.str("signal") != "cookie_moved" || ev.str("action") != action || ev.str("user") != "alice" || ev.str("previous_location") == "" {
				t.Errorf("sessions.risk event = %v", ev.Data)
			}
			if v := value(site.sessionMetrics(t), "caddy_sessions_risk_total", map[string]string{"realm": realm, "signal": "cookie_moved", "action": action}); v != 1 {
				t.Errorf("caddy_sessions_risk_total = %v, want 1", v)
			}
			for _, line := range strings.Split(site.Log(), "\n") {
				if strings.Contains(line, token) {
					t.Errorf("the raw session token is in Caddy's log: %s", line)
				}
			}
		})
	}
}

// TestRiskAtLogin: a phone's first login is new_device (passed upstream
// as Sessions-Risk); a login from Linköping a moment after London is a
// new country, impossible travel and a distant concurrent session, and
// with impossible_travel revoke the login's answer never gives the
// browser its cookie.
func TestRiskAtLogin(t *testing.T) {
	t.Parallel()
	rec, up := recordingShop(t, true)
	const realm = "risk-login"
	site := startCaddyJSON(t, riskSite(up, redisStore(t), realm,
		"new_device log", "new_country log", "impossible_travel revoke", "distant_concurrent log"), withEvents(t))

	laptop := newClient(t, uaChromeWindows, ipLondon)
	laptop.login(site.Site, "alice", "alice")
	wantReply(t, "laptop", laptop.get(site.Site+"/account"), http.StatusOK, "")
	if got, _ := rec.last(http.MethodGet, "/account"); got.Header.Get("Sessions-Risk") != "" {
		t.Fatalf("the first login raised %q", got.Header.Get("Sessions-Risk"))
	}
	phone := newClient(t, uaIPhone, ipLondon)
	phone.login(site.Site, "alice", "alice")
	wantReply(t, "phone", phone.get(site.Site+"/account"), http.StatusOK, "")
	if got, _ := rec.last(http.MethodGet, "/account"); got.Header.Get("Sessions-Risk") != "new_device" {
		t.Fatalf("the phone's request went upstream with Sessions-Risk %q, want new_device", got.Header.Get("Sessions-Risk"))
	}
	wantReply(t, "laptop again", laptop.get(site.Site+"/account"), http.StatusOK, "")
	if got, _ := rec.last(http.MethodGet, "/account"); got.Header.Get("Sessions-Risk") != "" {
		t.Fatalf("the laptop's session has signals %q", got.Header.Get("Sessions-Risk"))
	}

	away := newClient(t, uaChromeWindows, ipOther) // Linköping, a moment later
	r := away.form(site.Site+"/login", map[string][]string{"username": {"alice"}, "password": {"alice"}})
	if r.Status != http.StatusUnauthorized || r.setCookie("shop_session") != nil && !r.expires("shop_session") {
		t.Fatalf("the impossible login's answer: %s; want 401 without the app's cookie", r)
	}
	if away.cookie(site.Site, "shop_session") != "" {
		t.Fatal("the browser kept a session cookie of the revoked login")
	}
	got := map[string]string{}
	for _, f := range site.risks(t, realm, "alice") {
		got[f.Signal] = f.Action
	}
	want := map[string]string{"new_device": "log", "new_country": "log", "impossible_travel": "revoke", "distant_concurrent": "log"}
	if dump(got) != dump(want) {
		t.Fatalf("findings = %v, want %v", got, want)
	}
	for _, s := range site.Sessions(t, realm, "alice", "all").Sessions {
		if s.IP == ipOther && s.EndReason != "revoked" {
			t.Errorf("the Linköping session: %+v, want revoked", s)
		}
	}
	site.riskEvents(t, 4)
}

// apiRisk is one risk finding as the admin API lists it.
type apiRisk struct {
	ID        string         `json:"id"`
	Signal    string         `json:"signal"`
	Action    string         `json:"action"`
	SessionID string         `json:"session_id"`
	DeviceID  string         `json:"device_id"`
	Location  apiLocation    `json:"location"`
	Evidence  map[string]any `json:"evidence"`
}

// risks lists a user's risk findings through the admin API.
func (c *Caddy) risks(t testing.TB, realm, user string) []apiRisk {
	t.Helper()
	var page struct {
		Risk []apiRisk `json:"risk"`
	}
	status, body := c.adminDo(t, http.MethodGet, userPath(realm, user)+"/risk")
	if status != http.StatusOK {
		t.Fatalf("admin GET risk: %d %s", status, body)
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return page.Risk
}
