package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// dashboardSite is a site with the shop behind sessions (realm) and the
// dashboard under /admin/sessions behind basic_auth (admin / password),
// narrowed to the realms in dashExtra when it names some.
func dashboardSite(t testing.TB, env storeEnv, up, realm, dashExtra string) string {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret admin"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return `route /admin/sessions* {
	basic_auth {
		admin ` + string(hash) + `
	}
	sessions_admin /admin/sessions {
` + indent(dashExtra, "\t\t") + `
	}
}
` + shopSite(up, sessionsConf(env, "realm "+realm, "login @login", "logout @logout", "self_service /sessions/ {\n\ttitle \"Your sessions at the shop\"\n\tback / \"Back to the shop\"\n}"), "")
}

func asAdmin(q *http.Request) { q.SetBasicAuth("admin", "s3cret admin") }

// The dashboard handler: behind the operator's auth, pages with a strict
// CSP, the API narrowed to its realms, state changes only with the CSRF
// header, each one in the audit log with the admin's name; the same
// dashboard on Caddy's admin endpoint.
func TestDashboardHandler(t *testing.T) {
	_, up := startShop(t, true)
	const realm = "shop-dash"
	c := startCaddy(t, caddyfile("", dashboardSite(t, memoryStore(), up, realm, "realm "+realm+"\naudit_user {http.auth.user.id}")))
	alice := newClient(t, uaChromeWindows, ipLondon)
	alice.login(c.Site, "alice", "alice")
	phone := newClient(t, uaIPhone, ipMilton)
	phone.login(c.Site, "alice", "alice")
	admin := newClient(t, uaFirefoxLinux, ipOther)
	base := c.Site + "/admin/sessions"

	t.Run("auth first", func(t *testing.T) {
		for _, p := range []string{"/", "/api/", "/api/" + realm + "/users", "/assets/dashboard.js"} {
			if r := admin.get(base + p); r.Status != http.StatusUnauthorized {
				t.Errorf("GET %s without credentials: %s, want 401 from basic_auth", p, r)
			}
		}
	})
	t.Run("page", func(t *testing.T) {
		r := admin.do(http.MethodGet, base+"/", nil, asAdmin)
		csp := r.Header.Get("Content-Security-Policy")
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Fatalf("dashboard: %s (CSP %q)", r, csp)
		}
		if !strings.Contains(string(r.Body), `content="/admin/sessions/api"`) || strings.Contains(string(r.Body), "<script>") {
			t.Errorf("dashboard page does not name its API or has an inline script:\n%s", r.Body)
		}
		if r := admin.do(http.MethodGet, base, nil, asAdmin); r.Status != http.StatusFound || r.Header.Get("Location") != "/admin/sessions/" {
			t.Errorf("GET prefix without slash: %s", r)
		}
		js := admin.do(http.MethodGet, base+"/assets/dashboard.js", nil, asAdmin)
		if js.Status != http.StatusOK || !strings.HasPrefix(js.Header.Get("Content-Type"), "text/javascript") || js.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("dashboard.js: %s", js)
		}
		for _, p := range []string{"/assets/README.md", "/assets/..%2Fpages.go", "/assets/nope.js", "/nope"} {
			if r := admin.do(http.MethodGet, base+p, nil, asAdmin); r.Status != http.StatusNotFound || !jsonError(r) {
				t.Errorf("GET %s: %s, want a JSON 404", p, r)
			}
		}
	})
	t.Run("api narrowed to its realms", func(t *testing.T) {
		var idx struct{ Realms []string }
		r := admin.do(http.MethodGet, base+"/api/", nil, asAdmin)
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &idx) != nil || len(idx.Realms) != 1 || idx.Realms[0] != realm {
			t.Fatalf("index: %s", r)
		}
		if r := admin.do(http.MethodGet, base+"/api/other/users", nil, asAdmin); r.Status != http.StatusNotFound {
			t.Errorf("a realm outside the handler's: %s", r)
		}
		var doc map[string]any
		if r := admin.do(http.MethodGet, base+"/api/openapi.json", nil, asAdmin); r.Status != http.StatusOK || json.Unmarshal(r.Body, &doc) != nil || doc["openapi"] != "3.1.0" {
			t.Errorf("openapi.json: %s", r)
		}
	})
	t.Run("state changes need the CSRF header and are audited", func(t *testing.T) {
		sess := c.Sessions(t, realm, "alice", "active")
		id := activeByIP(t, sess, ipMilton).ID
		u := base + "/api/" + url.PathEscape(realm) + "/users/alice/sessions/" + id
		for _, mod := range []func(*http.Request){
			asAdmin,
			func(q *http.Request) { asAdmin(q); q.Header.Set("X-Sessions-CSRF", "0") },
			func(q *http.Request) { asAdmin(q); withCSRF(q); q.Header.Set("Origin", "https://evil.example") },
			func(q *http.Request) { asAdmin(q); withCSRF(q); q.Header.Set("Sec-Fetch-Site", "cross-site") },
		} {
			if r := admin.do(http.MethodDelete, u, nil, mod); r.Status != http.StatusForbidden || !jsonError(r) {
				t.Errorf("DELETE without a valid CSRF defence: %s, want 403", r)
			}
		}
		if s := c.Sessions(t, realm, "alice", "active").byID(id); s == nil {
			t.Fatal("a refused request ended the session")
		}
		if strings.Contains(c.Log(), `"admin action"`) {
			t.Error("a refused request was audited")
		}
		r := admin.do(http.MethodDelete, u, nil, func(q *http.Request) { asAdmin(q); withCSRF(q); q.Header.Set("Origin", c.Site) })
		if r.Status != http.StatusOK {
			t.Fatalf("DELETE with the CSRF header: %s", r)
		}
		if r := phone.get(c.Site + "/account"); r.Status != http.StatusUnauthorized {
			t.Errorf("the revoked phone was served: %s", r)
		}
		eventually(t, 5*time.Second, 20*time.Millisecond, func() (bool, string) {
			for _, line := range strings.Split(c.Log(), "\n") {
				if strings.Contains(line, `"admin action"`) && strings.Contains(line, `"admin":"admin"`) &&
					strings.Contains(line, `"method":"DELETE"`) && strings.Contains(line, `"user":"alice"`) {
					return true, ""
				}
			}
			return false, "no audit line naming the admin:\n" + c.LogTail(20)
		})
	})
	t.Run("admin endpoint", func(t *testing.T) {
		status, body := c.adminDo(t, http.MethodGet, "/sessions/ui/")
		if status != http.StatusOK || !strings.Contains(string(body), `content="/sessions"`) {
			t.Errorf("dashboard on the admin endpoint: %d %s", status, body)
		}
		if status, _ := c.adminDo(t, http.MethodGet, "/sessions/ui/assets/app.css"); status != http.StatusOK {
			t.Errorf("app.css on the admin endpoint: %d", status)
		}
		if status, _ := c.adminDo(t, http.MethodGet, "/sessions/openapi.json"); status != http.StatusOK {
			t.Errorf("openapi.json on the admin endpoint: %d", status)
		}
	})
	t.Run("your sessions page", func(t *testing.T) {
		r := alice.do(http.MethodGet, c.Site+"/sessions/", nil, func(q *http.Request) {
			q.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
		})
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(r.Body), "Your sessions at the shop") || !strings.Contains(r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("self-service page: %s", r)
		}
		for _, accept := range []string{"", "*/*", "application/json", "application/json, text/html;q=0.5"} {
			r := alice.do(http.MethodGet, c.Site+"/sessions/", nil, func(q *http.Request) { q.Header.Set("Accept", accept) })
			if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				t.Errorf("Accept %q: %s, want JSON", accept, r)
			}
		}
		if r := alice.get(c.Site + "/sessions/_/self.js"); r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") {
			t.Errorf("self.js: %s", r)
		}
		// Anonymous: the path stays the app's.
		anon := newClient(t, uaChromeWindows, ipLondon)
		if r := anon.get(c.Site + "/sessions/_/self.js"); r.Status == http.StatusOK {
			t.Errorf("an anonymous request got the page's script from the module: %s", r)
		}
	})
}
