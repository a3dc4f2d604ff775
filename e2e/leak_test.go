package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// TestNoSecretLeak (17): with the debug log on, neither the raw app token
// (shop_session) nor the configured secret shows up in Caddy's log output,
// in the admin API's JSON or in the self-service JSON.
func TestNoSecretLeak(t *testing.T) {
	t.Parallel()
	const secret = "leak-check-SECRET-7f3a9c2e1d"
	for _, s := range []struct {
		name  string
		store func(testing.TB) string
	}{
		{"memory", func(testing.TB) string { return "store memory" }},
		{"redis", func(t testing.TB) string { return "store " + redistest.Start(t).URL() }},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			_, up := startShop(t, true)
			const realm = "shop"
			c := startCaddy(t, caddyfile("debug", shopSite(up, s.store(t)+"\nsecret "+secret+"\nrealm "+realm+
				"\nlogin @login\nlogout @logout\nself_service /sessions/\ngeoip "+geoDB, "")))

			var tokens []string
			var bodies []string
			a1 := newClient(t, uaChromeWindows, ipLondon)
			a2 := newClient(t, uaIPhone, ipMilton)
			for _, cl := range []*client{a1, a2} {
				cl.login(c.Site, "alice", "alice")
				tokens = append(tokens, cl.cookie(c.Site, "shop_session"))
				cl.get(c.Site + "/account")
			}
			for _, tok := range tokens {
				if len(tok) < 20 {
					t.Fatalf("unexpected app token %q", tok)
				}
			}
			self := a1.get(c.Site + "/sessions/")
			bodies = append(bodies, string(self.Body))
			l := c.Sessions(t, realm, "alice", "all")
			id2 := activeByIP(t, l, ipMilton).ID
			r := a1.do(http.MethodDelete, c.Site+"/sessions/"+id2, nil, withCSRF)
			bodies = append(bodies, string(r.Body))
			a2.get(c.Site + "/account") // refused
			a1.get(c.Site + "/logout")
			for _, path := range []string{
				"/sessions/",
				"/sessions/" + realm + "/users/alice/sessions?state=all",
				"/sessions/" + realm + "/users/alice/devices",
			} {
				_, b := c.adminDo(t, http.MethodGet, path)
				bodies = append(bodies, string(b))
			}
			// A revoke of everything left (nothing active) also answers JSON.
			_, b := c.adminDo(t, http.MethodDelete, "/sessions/"+realm+"/users/alice/sessions")
			bodies = append(bodies, string(b))

			// The debug lines of the last requests reach the log.
			eventually(t, 5*time.Second, 10*time.Millisecond, func() (bool, string) {
				log := c.Log()
				return strings.Contains(log, `"level":"debug"`) && strings.Contains(log, "session opened"),
					"the debug log should be on and show session events; log tail:\n" + c.LogTail(3000)
			})
			log := c.Log()
			for _, what := range append([]string{secret}, tokens...) {
				if i := strings.Index(log, what); i >= 0 {
					t.Errorf("Caddy's log contains %q: ...%s...", what, log[max(0, i-300):min(len(log), i+100)])
				}
				for _, body := range bodies {
					if strings.Contains(body, what) {
						t.Errorf("API JSON contains %q: %s", what, body)
					}
				}
			}
		})
	}
}
