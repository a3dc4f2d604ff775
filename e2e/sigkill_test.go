package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Caddy killed (SIGKILL) on the memory store: what the last snapshot (every
// 30 s when changed) holds comes back, the snapshot is intact, and the
// session the killed process was tracking is tracked again after the
// restart.
func TestMemoryStoreSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	_, up := startShop(t, true)
	const realm = "sigkill"
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(memoryStore(), "realm "+realm, "login @login"), "")))
	alice := newClient(t, uaChromeWindows, ipLondon)
	alice.login(c.Site, "alice", "alice")
	id := c.Sessions(t, realm, "alice", "active").Sessions[0].ID
	snapshot := filepath.Join(c.DataDir(), "sessions", "memory-store.json")
	// The fact to wait for: the periodic snapshot holds the session's
	// data (a session id appears in no other key).
	eventually(t, 45*time.Second, 250*time.Millisecond, func() (bool, string) {
		b, err := os.ReadFile(snapshot)
		return err == nil && bytes.Contains(b, []byte(id)), "no snapshot with the session yet"
	})
	c.kill()
	b, err := os.ReadFile(snapshot)
	if err != nil || !json.Valid(b) {
		t.Fatalf("snapshot after SIGKILL unreadable (%v) or not JSON (%d bytes)", err, len(b))
	}
	if err := c.start(); err != nil {
		t.Fatalf("restarting caddy: %v\n%s", err, c.LogTail(4000))
	}
	l := c.Sessions(t, realm, "alice", "active")
	if len(l.Sessions) != 1 || l.Sessions[0].ID != id {
		t.Fatalf("after SIGKILL and a restart: %s, want session %s", dump(l), id)
	}
	if r := alice.get(c.Site + "/account"); r.Status != http.StatusOK {
		t.Errorf("the browser after the restart: %s", r)
	}
	if _, err := os.Stat(snapshot + ".bad"); err == nil {
		t.Error("the snapshot was set aside as unreadable")
	}
}
