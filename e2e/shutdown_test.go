package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestGracefulShutdown: SIGINT (and SIGTERM, same path) must stop Caddy
// promptly, running every module's Cleanup, for every store. The memory
// store saves its snapshot there (TestMemoryStoreSurvives relies on it).
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	for _, s := range []struct {
		name string
		mk   func(testing.TB) storeEnv
	}{
		{"memory", func(testing.TB) storeEnv { return memoryStore() }},
		{"redis", redisStore},
		{"cluster", clusterStore},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			env := s.mk(t)
			_, up := startShop(t, true)
			c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "login @login"), "")))
			cl := newClient(t, uaChromeWindows, ipLondon)
			cl.login(c.Site, "alice", "alice")
			start := time.Now()
			if !c.stopWithin(8*time.Second, true) {
				t.Fatalf("BUG: caddy did not exit within 8s of SIGINT with the %s store (killed). Goroutines of this module:\n%s",
					s.name, c.hangDump())
			}
			t.Logf("stopped in %v, exit code %d", time.Since(start), c.ExitCode())
			if c.ExitCode() != 0 {
				t.Fatalf("exit code %d after SIGINT", c.ExitCode())
			}
		})
	}
}

// TestReloadDroppingRedisStore: a config reload that stops using a Redis
// store destroys it (last user of the pool). /load must still answer.
func TestReloadDroppingRedisStore(t *testing.T) {
	t.Parallel()
	env := redisStore(t)
	_, up := startShop(t, true)
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "login @login"), "")))
	newClient(t, uaChromeWindows, ipLondon).login(c.Site, "alice", "alice")

	req, _ := http.NewRequest(http.MethodPost, c.Admin+"/load",
		strings.NewReader(c.fill(caddyfile("", shopSite(up, sessionsConf(memoryStore(), "login @login"), "")))))
	req.Header.Set("Content-Type", "text/caddyfile")
	start := time.Now()
	resp, err := (&http.Client{Timeout: 8 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("BUG: POST /load switching from the redis store to memory did not answer within 8s (%v): the old store's Close hangs", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /load: %d", resp.StatusCode)
	}
	t.Logf("reload took %v", time.Since(start))
}
