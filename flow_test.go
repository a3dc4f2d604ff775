package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// phpLike is the app behind the handler in TestServeHTTPFlow: it gives a
// cookie-less visitor an anonymous SID, replaces it at a successful login,
// rotates it on /rotate, expires it on /logout, and remembers the Cookie
// header it got.
type phpLike struct {
	n         int
	forwarded string
	called    bool
}

func (a *phpLike) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	a.called = true
	a.forwarded = strings.Join(r.Header["Cookie"], "|")
	set := func(v string) { http.SetCookie(w, &http.Cookie{Name: "SID", Value: v, Path: "/"}) }
	a.n++
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/login":
		_ = r.ParseForm()
		if r.PostForm.Get("password") != "right" {
			w.WriteHeader(http.StatusOK) // the form again, same cookie
			return nil
		}
		set(fmt.Sprint("auth", a.n))
		w.WriteHeader(http.StatusFound)
	case r.URL.Path == "/rotate":
		set(fmt.Sprint("rot", a.n))
	case r.URL.Path == "/logout":
		http.SetCookie(w, &http.Cookie{Name: "SID", Value: "", Path: "/", MaxAge: -1})
	case !strings.Contains(a.forwarded, "SID="):
		set(fmt.Sprint("anon", a.n))
	}
	return nil
}

// TestServeHTTPFlow walks the handler through what it decides itself: the
// anonymous cookie noted as issued, a login that replaces it (the user
// normalised), the Cookie header the app gets, a rotation that continues
// the session, a logout that is final, and a refusal that expires the
// cookie and never reaches the app.
func TestServeHTTPFlow(t *testing.T) {
	h := &Handler{
		SessionCookie: CookieNames{"SID"}, Secret: "0123456789abcdef0123456789abcdef",
		Login:         caddyhttp.RawMatcherSets{{"path": json.RawMessage(`["/login"]`), "method": json.RawMessage(`["POST"]`)}},
		Logout:        caddyhttp.RawMatcherSets{{"path": json.RawMessage(`["/logout"]`)}},
		UserNormalize: []string{NormalizeLower},
	}
	provisionTest(t, h)
	app := &phpLike{}
	do := func(method, path, cookie, body string) (*httptest.ResponseRecorder, *caddy.Replacer, error) {
		t.Helper()
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.RemoteAddr = "10.1.2.3:41234"
		r.Header.Set("User-Agent", benchUA)
		if body != "" {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		repl := caddy.NewReplacer()
		w := httptest.NewRecorder()
		r = caddyhttp.PrepareRequest(r, repl, w, &caddyhttp.Server{})
		app.called = false
		return w, repl, h.ServeHTTP(w, r, app)
	}
	cookieNamed := func(w *httptest.ResponseRecorder, name string) string {
		for _, c := range w.Result().Cookies() {
			if c.Name == name {
				return c.Value
			}
		}
		return ""
	}
	cookieOf := func(w *httptest.ResponseRecorder) string { return cookieNamed(w, "SID") }
	sessions := func() []*store.Session {
		list, _, err := h.tracker.Sessions(context.Background(), defaultRealm, "alice", "all", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		return list
	}

	w, _, _ := do(http.MethodGet, "/", "", "")
	anon := cookieOf(w)
	// Beside the app's anonymous cookie, the module's signature of it.
	issued := cookieNamed(w, h.DeviceCookie+"_issued")
	if anon == "" || issued == "" {
		t.Fatalf("anonymous answer: app cookie %q, signature %q", anon, issued)
	}
	anonCookies := "SID=" + anon + "; " + h.DeviceCookie + "_issued=" + issued
	// A failed login keeps the cookie: nothing opens.
	if _, _, err := do(http.MethodPost, "/login", anonCookies, "username=Alice&password=wrong"); err != nil || len(sessions()) != 0 {
		t.Fatalf("failed login: %v, sessions %d", err, len(sessions()))
	}
	w, _, _ = do(http.MethodPost, "/login", anonCookies, "username=%20Alice&password=right")
	auth := cookieOf(w)
	if list := sessions(); auth == "" || len(list) != 1 || !list[0].Active() {
		t.Fatalf("login: cookie %q (%d %s), sessions %+v", auth, w.Code, w.Body, list)
	}
	id := sessions()[0].ID

	// The app gets the enforced cookie and no look-alike.
	_, repl, _ := do(http.MethodGet, "/", "sid=junk; SID="+auth+"; SIDX=1; SID=other", "")
	if app.forwarded != "SID="+auth+"; SIDX=1" {
		t.Errorf("forwarded Cookie %q", app.forwarded)
	}
	if got, _ := repl.GetString("http.sessions.id"); got != id {
		t.Errorf("session placeholder %q, want %s", got, id)
	}

	// Rotation continues the session.
	w, _, _ = do(http.MethodGet, "/rotate", "SID="+auth, "")
	rotated := cookieOf(w)
	_, repl, _ = do(http.MethodGet, "/", "SID="+rotated, "")
	if got, _ := repl.GetString("http.sessions.id"); got != id || len(sessions()) != 1 {
		t.Errorf("after rotation: session %q (want %s), %d sessions", got, id, len(sessions()))
	}

	// Logout is final: the old cookies are refused, the app never sees
	// them, and the browser is told to drop them.
	if _, _, err := do(http.MethodGet, "/logout", "SID="+rotated, ""); err != nil {
		t.Fatal(err)
	}
	if s := sessions()[0]; s.Active() || s.EndReason != store.EndLogout {
		t.Fatalf("after logout: %+v", s)
	}
	for _, tok := range []string{auth, rotated} {
		w, repl, err := do(http.MethodGet, "/", "SID="+tok, "")
		var he caddyhttp.HandlerError
		if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized || app.called {
			t.Errorf("logged-out %s: %v, app called %v", tok, err, app.called)
		}
		if sc := strings.Join(w.Header().Values("Set-Cookie"), "\n"); !strings.Contains(sc, "SID=;") || !strings.Contains(sc, "Max-Age=0") {
			t.Errorf("logged-out %s: the cookie is not expired: %q", tok, sc)
		}
		if r, _ := repl.GetString("http.sessions.block_reason"); r != store.EndLogout {
			t.Errorf("block_reason %q", r)
		}
	}

	// A login without the app's cookie, or with one it never issued, is
	// refused before the app: its new cookie would prove nothing.
	for _, cookie := range []string{"", "SID=made-up", "SID=made-up; " + h.DeviceCookie + "_issued=" + issued} {
		w, _, err := do(http.MethodPost, "/login", cookie, "username=bob&password=right")
		if err != nil || w.Code != http.StatusBadRequest || app.called {
			t.Errorf("login with %q: %v %d, app called %v", cookie, err, w.Code, app.called)
		}
	}
}
