package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// TestMemoryStoreSurvives (13): sessions, login history and devices of the
// memory store survive a config reload (POST /load: the store is pooled)
// and a process restart with the same data directory (the snapshot written
// at shutdown, and the generated secret kept there). The browser's cookie
// carries on with the same session afterwards.
func TestMemoryStoreSurvives(t *testing.T) {
	t.Parallel()
	_, up := startShop(t, true)
	const realm = "shop"
	conf := func(extra string) string {
		return caddyfile("", shopSite(up, "store memory\nrealm "+realm+"\nlogin @login\nlogout @logout\n"+extra, ""))
	}
	c := startCaddy(t, conf(""))

	// History: one session that ended by logout, one active.
	old := newClient(t, uaFirefoxLinux, ipOther)
	old.login(c.Site, "alice", "alice")
	old.get(c.Site + "/logout")
	cl := newClient(t, uaChromeWindows, ipLondon)
	cl.login(c.Site, "alice", "alice")
	cl.get(c.Site + "/account")

	before := c.Sessions(t, realm, "alice", "all")
	if before.Total != 2 {
		t.Fatalf("want a closed and an active session, got %s", dump(before))
	}
	active := activeByIP(t, before, ipLondon)
	devsBefore := deviceIDs(c.Devices(t, realm, "alice"))

	check := func(stage string) {
		t.Helper()
		after := c.Sessions(t, realm, "alice", "all")
		if after.Total != 2 {
			t.Fatalf("after %s: want the 2 sessions of before, got %s", stage, dump(after))
		}
		for _, s := range before.Sessions {
			a := after.byID(s.ID)
			if a == nil {
				t.Fatalf("after %s: session %s is gone: %s", stage, s.ID, dump(after))
			}
			if (a.EndedAt == nil) != (s.EndedAt == nil) || a.EndReason != s.EndReason || !a.StartedAt.Equal(s.StartedAt) || a.Location.City != s.Location.City {
				t.Errorf("after %s: session changed:\nbefore %s\nafter %s", stage, dump(s), dump(a))
			}
		}
		if got := deviceIDs(c.Devices(t, realm, "alice")); !equal(got, devsBefore) {
			t.Errorf("after %s: devices %v, want %v", stage, got, devsBefore)
		}
		// The browser's cookie still belongs to the same session.
		if r := cl.get(c.Site + "/account"); r.Status != http.StatusOK {
			t.Fatalf("after %s: GET /account: %s", stage, r)
		}
		a := c.Sessions(t, realm, "alice", "active")
		if a.Total != 1 || a.Sessions[0].ID != active.ID {
			t.Fatalf("after %s: the cookie should continue session %s, got %s", stage, active.ID, dump(a))
		}
	}

	c.Reload(t, conf("refresh_interval 10s"))
	check("reload")

	c.Restart(t)
	if _, err := os.Stat(filepath.Join(c.DataDir(), "sessions", "memory-store.json")); err != nil {
		t.Errorf("no memory store snapshot in the data dir after a graceful stop: %v", err)
	}
	check("restart")
}

func deviceIDs(devs []apiDevice) []string {
	var out []string
	for _, d := range devs {
		out = append(out, d.ID)
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
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
