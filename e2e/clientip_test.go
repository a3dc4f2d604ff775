package e2e

import (
	"strings"
	"testing"
)

// The client IP a session records (and max_ips counts) is Caddy's: an
// X-Forwarded-For header is honoured only from trusted_proxies. Without
// them, a client cannot pick the IP it is recorded under.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	t.Parallel()
	_, up := startShop(t, true)
	for _, c := range []struct {
		name    string
		trusted bool
		want    string
	}{
		{"trusted", true, ipLondon},
		{"not trusted", false, "127.0.0.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			realm := "xff-" + strings.ReplaceAll(c.name, " ", "-")
			cfg := caddyfile("", shopSite(up, sessionsConf(memoryStore(), "realm "+realm, "login @login"), ""))
			if !c.trusted {
				cfg = strings.Replace(cfg, "\tservers {\n\t\ttrusted_proxies static 127.0.0.0/8\n\t}\n", "", 1)
				if strings.Contains(cfg, "trusted_proxies") {
					t.Fatalf("could not drop trusted_proxies from:\n%s", cfg)
				}
			}
			caddy := startCaddy(t, cfg)
			cl := newClient(t, uaChromeWindows, ipLondon) // sends X-Forwarded-For: ipLondon
			cl.login(caddy.Site, "alice", "alice")
			l := caddy.Sessions(t, realm, "alice", "active")
			if len(l.Sessions) != 1 || l.Sessions[0].IP != c.want {
				t.Errorf("session IP = %s, want %s", dump(l), c.want)
			}
		})
	}
}
