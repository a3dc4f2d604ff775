package e2e

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRevokePropagation (8): two (here three) Caddy instances share one
// Redis or Redis Cluster and the secret. A session revoked through A's admin
// API is refused by B (default on_revoked: 401) and C (on_revoked /login:
// 302) within a second, although both had it in their local cache, and the
// refusal expires the app's cookie.
func TestRevokePropagation(t *testing.T) {
	t.Parallel()
	for _, s := range []struct {
		name string
		mk   func(testing.TB) storeEnv
	}{{"redis", redisStore}, {"cluster", clusterStore}} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			env := s.mk(t)
			_, up := startShop(t, true)
			conf := func(extra ...string) string {
				return caddyfile("", shopSite(up, sessionsConf(env, append([]string{"login @login"}, extra...)...), ""))
			}
			a := startCaddy(t, conf())
			b := startCaddy(t, conf())
			c := startCaddy(t, conf("on_revoked /login"))
			const realm = "default"

			cl := newClient(t, uaChromeWindows, ipLondon)
			cl.login(a.Site, "alice", "alice")
			// The cookies of the browser: the app's token and the device
			// cookie (without it B would see another device and ask the
			// store anyway, which would not test the cache).
			cookie := cl.cookieHeader(a.Site)
			if !strings.Contains(cookie, "shop_session=") || !strings.Contains(cookie, "sessions_device=") {
				t.Fatalf("browser cookies after login: %q", cookie)
			}
			get := func(inst *Caddy) (*reply, error) {
				return cl.send(false, http.MethodGet, inst.Site+"/account", nil, func(r *http.Request) { r.Header.Set("Cookie", cookie) })
			}
			// B and C see the session once (and cache it).
			for _, inst := range []*Caddy{b, c, b, c} {
				r, err := get(inst)
				if err != nil || r.Status != http.StatusOK || !strings.Contains(string(r.Body), "alice") {
					t.Fatalf("GET /account through another instance before the revoke: %v %v", r, err)
				}
			}
			l := a.Sessions(t, realm, "alice", "active")
			if l.Total != 1 {
				t.Fatalf("want one session across instances, got %s", dump(l))
			}
			if lb := b.Sessions(t, realm, "alice", "active"); lb.Total != 1 || lb.Sessions[0].ID != l.Sessions[0].ID {
				t.Fatalf("instance B lists another session than A: %s vs %s", dump(lb), dump(l))
			}
			id := l.Sessions[0].ID

			type outcome struct {
				d   time.Duration
				r   *reply
				err string
			}
			poll := func(inst *Caddy, ok func(*reply) bool, since time.Time) outcome {
				deadline := since.Add(3 * time.Second)
				var last *reply
				for time.Now().Before(deadline) {
					r, err := get(inst)
					if err == nil {
						last = r
						if ok(r) {
							return outcome{d: time.Since(since), r: r}
						}
						if r.Status != http.StatusOK {
							return outcome{d: time.Since(since), r: r, err: "unexpected answer " + r.String()}
						}
					}
					time.Sleep(5 * time.Millisecond)
				}
				return outcome{d: time.Since(since), r: last, err: "still served after 3s"}
			}
			refused401 := func(r *reply) bool { return r.Status == http.StatusUnauthorized }
			redirected := func(r *reply) bool { return r.Status == http.StatusFound }

			sent := time.Now()
			rev := a.Revoke(t, realm, "alice", id)
			answered := time.Now()
			if rev.ID != id || rev.EndReason != "revoked" || rev.EndedAt == nil {
				t.Fatalf("DELETE answer: %s", dump(rev))
			}
			var wg sync.WaitGroup
			var ob, oc outcome
			wg.Add(2)
			go func() { defer wg.Done(); ob = poll(b, refused401, answered) }()
			go func() { defer wg.Done(); oc = poll(c, redirected, answered) }()
			wg.Wait()
			t.Logf("propagation A->B (401): %v after the DELETE answered (%v after it was sent)", ob.d, ob.d+answered.Sub(sent))
			t.Logf("propagation A->C (302 /login): %v after the DELETE answered (%v after it was sent)", oc.d, oc.d+answered.Sub(sent))
			for _, o := range []struct {
				name string
				o    outcome
			}{{"B", ob}, {"C", oc}} {
				if o.o.err != "" {
					t.Fatalf("instance %s: %s", o.name, o.o.err)
				}
				if o.o.d > time.Second {
					t.Errorf("instance %s refused the revoked session only after %v, want within 1s", o.name, o.o.d)
				}
				if !o.o.r.expires("shop_session") {
					t.Errorf("instance %s: the refusal should expire shop_session: %s", o.name, o.o.r)
				}
			}
			if loc := oc.r.Header.Get("Location"); loc != "/login" {
				t.Errorf("on_revoked /login: Location = %q", loc)
			}
			// A refuses too, and the session stays revoked for everyone.
			if r, err := get(a); err != nil || r.Status != http.StatusUnauthorized {
				t.Errorf("instance A after its own revoke: %v %v", r, err)
			}
			if l := b.Sessions(t, realm, "alice", "all"); l.Total != 1 || l.Sessions[0].EndReason != "revoked" {
				t.Errorf("after the revoke: %s", dump(l))
			}
		})
	}
}
