package e2e

import (
	"net/http"
	"testing"
)

// A session cookie copied into another browser (another user agent and
// country, no device cookie) is another device: the answer gives it a
// device cookie of its own, never the first browser's, and the user's
// devices list both.
func TestCopiedSessionCookieIsAnotherDevice(t *testing.T) {
	t.Parallel()
	_, up := startShop(t, true)
	const realm = "copied"
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(memoryStore(), "realm "+realm, "login @login", "geoip "+geoDB), "")))
	victim := newClient(t, uaChromeWindows, ipLondon)
	victim.login(c.Site, "alice", "alice")
	if r := victim.get(c.Site + "/account"); r.Status != http.StatusOK {
		t.Fatalf("the victim's browser: %s", r)
	}
	victimDevice := victim.cookie(c.Site, "sessions_device")
	tok := victim.cookie(c.Site, "shop_session")
	if victimDevice == "" || tok == "" {
		t.Fatalf("cookies after login: device %q, session %q", victimDevice, tok)
	}

	thief := newClient(t, uaIPhone, ipMilton)
	for i := range 3 {
		r, err := thief.send(false, http.MethodGet, c.Site+"/account", nil, func(q *http.Request) { q.Header.Set("Cookie", "shop_session="+tok) })
		if err != nil || r.Status != http.StatusOK {
			t.Fatalf("request %d with the copied cookie: %v %v", i, r, err)
		}
		dc := r.setCookie("sessions_device")
		if dc == nil || dc.Value == victimDevice {
			t.Fatalf("request %d with the copied cookie: device cookie %v, the victim's is %q", i, dc, victimDevice)
		}
		if _, ok := validDeviceCookie(dc.Value); !ok {
			t.Fatalf("request %d: device cookie %q is not valid", i, dc.Value)
		}
	}
	if devs := c.Devices(t, realm, "alice"); len(devs) != 2 {
		t.Errorf("devices = %s, want the victim's and the copy's", dump(devs))
	}
	// The session shows where it was last seen, IP and location alike,
	// and keeps where it started.
	l := c.Sessions(t, realm, "alice", "active")
	if len(l.Sessions) != 1 {
		t.Fatalf("sessions = %s, want the one", dump(l))
	}
	s := l.Sessions[0]
	if s.IP != ipMilton || s.Location.City != "Milton" || s.LoginIP != ipLondon || s.LoginLocation.City != "London" {
		t.Errorf("session after the copy's requests: ip %s in %q, started at %s in %q; want %s in Milton, started at %s in London",
			s.IP, s.Location.City, s.LoginIP, s.LoginLocation.City, ipMilton, ipLondon)
	}
	// The victim's browser is untouched: its cookie stays its device's.
	if r := victim.get(c.Site + "/account"); r.Status != http.StatusOK || r.setCookie("sessions_device") != nil {
		t.Errorf("the victim's browser after the copy: %s", r)
	}
}
