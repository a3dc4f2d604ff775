package shop

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// req describes one request sent to the shop in a test.
type req struct {
	method      string
	path        string
	contentType string
	body        string
	cookie      string // value of the session cookie to send, if any
}

func do(t *testing.T, h http.Handler, r req) *http.Response {
	t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	hr := httptest.NewRequest(method, r.path, strings.NewReader(r.body))
	if r.contentType != "" {
		hr.Header.Set("Content-Type", r.contentType)
	}
	if r.cookie != "" {
		hr.AddCookie(&http.Cookie{Name: DefaultCookieName, Value: r.cookie})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, hr)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

// sessionCookie returns the shop's session cookie set by res, if any.
func sessionCookie(res *http.Response) (*http.Cookie, bool) {
	for _, c := range res.Cookies() {
		if c.Name == DefaultCookieName {
			return c, true
		}
	}
	return nil, false
}

func form(user, pass string) string {
	return url.Values{"username": {user}, "password": {pass}}.Encode()
}

func jsonBody(user, pass string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	return string(b)
}

const formType = "application/x-www-form-urlencoded"

func TestLogin(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		req        req
		wantStatus int
		wantCookie bool   // a new session cookie is set
		wantUser   string // user bound to the effective token ("" = none)
	}{
		{
			name:       "rotate success without cookie",
			opts:       Options{Rotate: true},
			req:        req{method: "POST", path: "/login", contentType: formType, body: form("alice", "alice")},
			wantStatus: http.StatusSeeOther, wantCookie: true, wantUser: "alice",
		},
		{
			name:       "rotate success replaces existing cookie",
			opts:       Options{Rotate: true},
			req:        req{method: "POST", path: "/login", contentType: formType, body: form("bob", "bob"), cookie: "pre-login-token"},
			wantStatus: http.StatusSeeOther, wantCookie: true, wantUser: "bob",
		},
		{
			name:       "rotate wrong password",
			opts:       Options{Rotate: true},
			req:        req{method: "POST", path: "/login", contentType: formType, body: form("alice", "nope")},
			wantStatus: http.StatusOK,
		},
		{
			name:       "rotate unknown user",
			opts:       Options{Rotate: true},
			req:        req{method: "POST", path: "/login", contentType: formType, body: form("mallory", "x")},
			wantStatus: http.StatusOK,
		},
		{
			name:       "rotate empty form",
			opts:       Options{Rotate: true},
			req:        req{method: "POST", path: "/login", contentType: formType},
			wantStatus: http.StatusOK,
		},
		{
			name:       "non-rotate wrong password keeps cookie, no Set-Cookie",
			opts:       Options{},
			req:        req{method: "POST", path: "/login", contentType: formType, body: form("alice", "nope"), cookie: "anon-token"},
			wantStatus: http.StatusOK,
		},
		{
			name:       "non-rotate wrong password without cookie sets none",
			opts:       Options{},
			req:        req{method: "POST", path: "/login", contentType: formType, body: form("alice", "nope")},
			wantStatus: http.StatusOK,
		},
		{
			name:       "non-rotate success binds existing cookie",
			opts:       Options{},
			req:        req{method: "POST", path: "/login", contentType: formType, body: form("carol", "carol"), cookie: "anon-token"},
			wantStatus: http.StatusSeeOther, wantUser: "carol",
		},
		{
			name:       "non-rotate success without cookie issues one",
			opts:       Options{},
			req:        req{method: "POST", path: "/login", contentType: formType, body: form("alice", "alice")},
			wantStatus: http.StatusSeeOther, wantCookie: true, wantUser: "alice",
		},
		{
			name:       "json login rotate",
			opts:       Options{Rotate: true, JSONLogin: true},
			req:        req{method: "POST", path: "/login", contentType: "application/json", body: jsonBody("alice", "alice")},
			wantStatus: http.StatusSeeOther, wantCookie: true, wantUser: "alice",
		},
		{
			name:       "json login with charset, non-rotate",
			opts:       Options{JSONLogin: true},
			req:        req{method: "POST", path: "/login", contentType: "application/json; charset=utf-8", body: jsonBody("bob", "bob"), cookie: "anon-token"},
			wantStatus: http.StatusSeeOther, wantUser: "bob",
		},
		{
			name:       "json login wrong password",
			opts:       Options{Rotate: true, JSONLogin: true},
			req:        req{method: "POST", path: "/login", contentType: "application/json", body: jsonBody("alice", "bad")},
			wantStatus: http.StatusOK,
		},
		{
			name:       "json login malformed body",
			opts:       Options{Rotate: true, JSONLogin: true},
			req:        req{method: "POST", path: "/login", contentType: "application/json", body: `{"username":`},
			wantStatus: http.StatusOK,
		},
		{
			name:       "json body rejected when JSONLogin disabled",
			opts:       Options{Rotate: true},
			req:        req{method: "POST", path: "/login", contentType: "application/json", body: jsonBody("alice", "alice")},
			wantStatus: http.StatusOK,
		},
		{
			name:       "custom users replace defaults",
			opts:       Options{Rotate: true, Users: map[string]string{"dave": "secret"}},
			req:        req{method: "POST", path: "/login", contentType: formType, body: form("alice", "alice")},
			wantStatus: http.StatusOK,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.opts)
			res := do(t, s, tt.req)
			b := body(t, res)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			c, gotCookie := sessionCookie(res)
			if gotCookie != tt.wantCookie {
				t.Fatalf("Set-Cookie present = %v, want %v (headers %q)", gotCookie, tt.wantCookie, res.Header.Values("Set-Cookie"))
			}
			if !tt.wantCookie && len(res.Header.Values("Set-Cookie")) != 0 {
				t.Fatalf("unexpected Set-Cookie %q", res.Header.Values("Set-Cookie"))
			}

			if tt.wantStatus == http.StatusOK {
				if !strings.Contains(b, "Invalid username or password") {
					t.Errorf("failed login body lacks error message")
				}
				if !strings.Contains(b, `action="/login"`) {
					t.Errorf("failed login body lacks the login form")
				}
				if tt.req.cookie != "" {
					if u, ok := s.LoggedIn(tt.req.cookie); ok {
						t.Errorf("token logged in as %q after failed login", u)
					}
				}
				return
			}

			if loc := res.Header.Get("Location"); loc != "/account" {
				t.Errorf("Location = %q, want /account", loc)
			}
			token := tt.req.cookie
			if tt.wantCookie {
				token = c.Value
				if token == tt.req.cookie {
					t.Errorf("cookie value was not rotated")
				}
				if !c.HttpOnly || c.Path != "/" || c.SameSite != http.SameSiteLaxMode {
					t.Errorf("cookie attributes = %q, want Path=/; HttpOnly; SameSite=Lax", c.Raw)
				}
				if raw, err := base64.RawURLEncoding.DecodeString(token); err != nil || len(raw) != 32 {
					t.Errorf("token %q is not 32 bytes of base64url (err %v)", token, err)
				}
			}
			if u, ok := s.LoggedIn(token); !ok || u != tt.wantUser {
				t.Errorf("LoggedIn(token) = %q, %v; want %q, true", u, ok, tt.wantUser)
			}
			if tt.opts.Rotate && tt.req.cookie != "" {
				if u, ok := s.LoggedIn(tt.req.cookie); ok {
					t.Errorf("old token still logged in as %q", u)
				}
			}
		})
	}
}

func TestRotateInvalidatesOldLoggedInToken(t *testing.T) {
	s := New(Options{Rotate: true})
	res := do(t, s, req{method: "POST", path: "/login", contentType: formType, body: form("alice", "alice")})
	c1, _ := sessionCookie(res)
	res = do(t, s, req{method: "POST", path: "/login", contentType: formType, body: form("bob", "bob"), cookie: c1.Value})
	c2, ok := sessionCookie(res)
	if !ok || c2.Value == c1.Value {
		t.Fatalf("second login did not rotate the cookie")
	}
	if _, ok := s.LoggedIn(c1.Value); ok {
		t.Errorf("first token still valid after re-login")
	}
	if u, _ := s.LoggedIn(c2.Value); u != "bob" {
		t.Errorf("LoggedIn(second) = %q, want bob", u)
	}
}

func TestAnonymousCookie(t *testing.T) {
	tests := []struct {
		name       string
		rotate     bool
		path       string
		cookie     string
		wantCookie bool
	}{
		{"non-rotate home", false, "/", "", true},
		{"non-rotate login form", false, "/login", "", true},
		{"non-rotate product", false, "/products/2", "", true},
		{"non-rotate account redirect", false, "/account", "", true},
		{"non-rotate keeps existing cookie", false, "/", "existing", false},
		{"non-rotate replaces garbage cookie", false, "/", "bad token!", true},
		{"non-rotate healthz issues nothing", false, "/healthz", "", false},
		{"non-rotate api issues nothing", false, "/api/me", "", false},
		{"rotate home issues nothing", true, "/", "", false},
		{"rotate login form issues nothing", true, "/login", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Rotate: tt.rotate})
			hr := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if tt.cookie != "" {
				// Set the raw header so that invalid values reach the shop.
				hr.Header.Set("Cookie", DefaultCookieName+"="+tt.cookie)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, hr)
			res := rec.Result()
			c, got := sessionCookie(res)
			if got != tt.wantCookie {
				t.Fatalf("Set-Cookie present = %v, want %v (%q)", got, tt.wantCookie, res.Header.Values("Set-Cookie"))
			}
			if got {
				if !c.HttpOnly || c.Path != "/" || c.SameSite != http.SameSiteLaxMode {
					t.Errorf("cookie attributes = %q", c.Raw)
				}
				if _, ok := s.LoggedIn(c.Value); ok {
					t.Errorf("anonymous cookie reported as logged in")
				}
			}
		})
	}
}

func TestNonRotateFlow(t *testing.T) {
	s := New(Options{})
	res := do(t, s, req{path: "/"})
	c, ok := sessionCookie(res)
	if !ok {
		t.Fatal("first visit did not issue a cookie")
	}
	token := c.Value

	res = do(t, s, req{path: "/login", cookie: token})
	if _, ok := sessionCookie(res); ok {
		t.Fatal("second visit issued another cookie")
	}

	res = do(t, s, req{method: "POST", path: "/login", contentType: formType, body: form("alice", "alice"), cookie: token})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account" {
		t.Fatalf("login: status %d location %q", res.StatusCode, res.Header.Get("Location"))
	}
	if v := res.Header.Values("Set-Cookie"); len(v) != 0 {
		t.Fatalf("non-rotate login sent Set-Cookie %q", v)
	}
	if u, ok := s.LoggedIn(token); !ok || u != "alice" {
		t.Fatalf("LoggedIn(token) = %q, %v; want alice, true", u, ok)
	}

	res = do(t, s, req{path: "/account", cookie: token})
	if b := body(t, res); res.StatusCode != http.StatusOK || !strings.Contains(b, "Hello alice") {
		t.Fatalf("account: status %d, body lacks greeting", res.StatusCode)
	}
}

func TestLogout(t *testing.T) {
	const wantHeader = "shop_session=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly"
	tests := []struct {
		name   string
		opts   Options
		method string
		want   string
	}{
		{"rotate POST", Options{Rotate: true}, http.MethodPost, wantHeader},
		{"rotate GET", Options{Rotate: true}, http.MethodGet, wantHeader},
		{"non-rotate POST", Options{}, http.MethodPost, wantHeader},
		{"non-rotate GET", Options{}, http.MethodGet, wantHeader},
		{"secure", Options{Rotate: true, Secure: true}, http.MethodPost, wantHeader + "; Secure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.opts)
			token := "pre-login-token"
			res := do(t, s, req{method: "POST", path: "/login", contentType: formType, body: form("alice", "alice"), cookie: token})
			if c, ok := sessionCookie(res); ok {
				token = c.Value
				if tt.opts.Secure && !c.Secure {
					t.Errorf("login cookie lacks Secure: %q", c.Raw)
				}
			}
			if _, ok := s.LoggedIn(token); !ok {
				t.Fatal("precondition: not logged in")
			}

			res = do(t, s, req{method: tt.method, path: "/logout", cookie: token})
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
				t.Errorf("status %d location %q, want 303 /", res.StatusCode, res.Header.Get("Location"))
			}
			sc := res.Header.Values("Set-Cookie")
			if len(sc) != 1 || sc[0] != tt.want {
				t.Errorf("Set-Cookie = %q, want [%q]", sc, tt.want)
			}
			if !strings.Contains(sc[0], "Max-Age=0") {
				t.Errorf("Set-Cookie lacks Max-Age=0")
			}
			if _, ok := s.LoggedIn(token); ok {
				t.Errorf("session still known server-side after logout")
			}
			res = do(t, s, req{path: "/api/me", cookie: token})
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("/api/me after logout = %d, want 401", res.StatusCode)
			}
		})
	}
}

func TestAccount(t *testing.T) {
	s := New(Options{Rotate: true})
	res := do(t, s, req{method: "POST", path: "/login", contentType: formType, body: form("bob", "bob")})
	c, _ := sessionCookie(res)

	tests := []struct {
		name       string
		cookie     string
		wantStatus int
		wantLoc    string
		wantBody   string
	}{
		{"anonymous redirects", "", http.StatusSeeOther, "/login", ""},
		{"unknown token redirects", "not-a-session", http.StatusSeeOther, "/login", ""},
		{"logged in", c.Value, http.StatusOK, "", "Hello bob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, s, req{path: "/account", cookie: tt.cookie})
			b := body(t, res)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if loc := res.Header.Get("Location"); loc != tt.wantLoc {
				t.Errorf("Location = %q, want %q", loc, tt.wantLoc)
			}
			if !strings.Contains(b, tt.wantBody) {
				t.Errorf("body lacks %q", tt.wantBody)
			}
			if tt.wantStatus == http.StatusOK && !strings.Contains(b, "GMT") {
				t.Errorf("account page lacks the login time")
			}
		})
	}
}

func TestEscaping(t *testing.T) {
	const evil = `<script>alert(1)</script>`
	s := New(Options{Rotate: true, Users: map[string]string{evil: "pw"}})
	res := do(t, s, req{method: "POST", path: "/login", contentType: formType, body: form(evil, "pw")})
	c, ok := sessionCookie(res)
	if !ok {
		t.Fatal("login with script user failed")
	}
	if u, _ := s.LoggedIn(c.Value); u != evil {
		t.Fatalf("LoggedIn = %q, want %q", u, evil)
	}

	tests := []struct {
		name string
		req  req
	}{
		{"home", req{path: "/", cookie: c.Value}},
		{"account", req{path: "/account", cookie: c.Value}},
		{"login form while signed in", req{path: "/login", cookie: c.Value}},
		{"product", req{path: "/products/1", cookie: c.Value}},
		{"failed login echoes username", req{method: "POST", path: "/login", contentType: formType, body: form(evil, "wrong")}},
		{"api", req{path: "/api/me", cookie: c.Value}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := body(t, do(t, s, tt.req))
			if strings.Contains(b, "<script>") {
				t.Errorf("unescaped <script> in body:\n%s", b)
			}
			if !strings.Contains(b, "&lt;script&gt;") && !strings.Contains(b, `\u003cscript\u003e`) {
				t.Errorf("escaped user name not found in body:\n%s", b)
			}
		})
	}
}

func TestAPIMe(t *testing.T) {
	s := New(Options{Rotate: true})
	res := do(t, s, req{method: "POST", path: "/login", contentType: formType, body: form("carol", "carol")})
	c, _ := sessionCookie(res)

	tests := []struct {
		name       string
		cookie     string
		wantStatus int
		wantUser   string
		wantIn     bool
	}{
		{"anonymous", "", http.StatusUnauthorized, "", false},
		{"unknown token", "nope", http.StatusUnauthorized, "", false},
		{"logged in", c.Value, http.StatusOK, "carol", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, s, req{path: "/api/me", cookie: tt.cookie})
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var got struct {
				User     string `json:"user"`
				LoggedIn bool   `json:"logged_in"`
			}
			if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got.User != tt.wantUser || got.LoggedIn != tt.wantIn {
				t.Errorf("got %+v, want user %q logged_in %v", got, tt.wantUser, tt.wantIn)
			}
		})
	}
}

func TestPagesAndRoutes(t *testing.T) {
	s := New(Options{Rotate: true})
	tests := []struct {
		method     string
		path       string
		wantStatus int
		wantBody   string
	}{
		{"GET", "/", http.StatusOK, `href="/sessions/"`},
		{"GET", "/", http.StatusOK, `href="/login"`},
		{"GET", "/", http.StatusOK, `href="/products/3"`},
		{"GET", "/login", http.StatusOK, `name="password"`},
		{"GET", "/products/1", http.StatusOK, "Espresso Cup"},
		{"GET", "/products/3", http.StatusOK, "Coffee Beans"},
		{"GET", "/products/4", http.StatusNotFound, "Not found"},
		{"GET", "/products/x", http.StatusNotFound, "Not found"},
		{"GET", "/healthz", http.StatusOK, "ok"},
		{"HEAD", "/healthz", http.StatusOK, ""},
		{"GET", "/nope", http.StatusNotFound, ""},
		{"DELETE", "/login", http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := do(t, s, req{method: tt.method, path: tt.path})
			b := body(t, res)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if !strings.Contains(b, tt.wantBody) {
				t.Errorf("body lacks %q", tt.wantBody)
			}
		})
	}

	// Signed-in home page shows the user.
	res := do(t, s, req{method: "POST", path: "/login", contentType: formType, body: form("alice", "alice")})
	c, _ := sessionCookie(res)
	if b := body(t, do(t, s, req{path: "/", cookie: c.Value})); !strings.Contains(b, "Signed in as <strong>alice</strong>") {
		t.Errorf("home page does not show the signed-in user")
	}
}

func TestConcurrentLogins(t *testing.T) {
	s := New(Options{Rotate: true})
	var wg sync.WaitGroup
	tokens := make([]string, 50)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := do(t, s, req{method: "POST", path: "/login", contentType: formType, body: form("alice", "alice")})
			if c, ok := sessionCookie(res); ok {
				tokens[i] = c.Value
			}
			_ = do(t, s, req{path: "/account", cookie: tokens[i]})
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, tok := range tokens {
		if tok == "" || seen[tok] {
			t.Fatalf("missing or duplicate token %q", tok)
		}
		seen[tok] = true
		if _, ok := s.LoggedIn(tok); !ok {
			t.Fatalf("token %q not logged in", tok)
		}
	}
}
