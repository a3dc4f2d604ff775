// Package shop implements a tiny demo web shop that behaves like a typical
// PHP or Node application with respect to its session cookie. It serves as
// the upstream application in the runnable demo (behind Caddy) and in
// end-to-end tests of the session-tracking middleware.
//
// Two cookie strategies are supported:
//
//   - Rotate: a successful login issues a brand new random session id
//     (anti session-fixation, like session_regenerate_id(true) in PHP or
//     req.session.regenerate in express-session).
//   - Non-rotate: every page visit without a cookie issues an anonymous
//     session id (like PHP's session_start()); logging in marks that id as
//     authenticated without sending a new Set-Cookie.
package shop

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultCookieName is the session cookie name used when Options.CookieName
// is empty.
const DefaultCookieName = "shop_session"

// maxBodyBytes bounds the size of login request bodies.
const maxBodyBytes = 64 << 10

// maxTokenLen bounds the length of a client-supplied session id that the
// shop is willing to adopt in non-rotate mode.
const maxTokenLen = 256

// Options configures a Shop.
type Options struct {
	// CookieName is the session cookie name; default "shop_session".
	CookieName string
	// Rotate makes a successful login issue a new random session id cookie.
	// When false, the shop keeps the cookie the browser already had (issued
	// on the first page visit) and just marks it as logged in.
	Rotate bool
	// JSONLogin additionally accepts application/json login bodies of the
	// form {"username": "...", "password": "..."}.
	JSONLogin bool
	// Users maps user names to passwords; default alice/alice, bob/bob and
	// carol/carol.
	Users map[string]string
	// Secure sets the Secure attribute on the session cookie.
	Secure bool
}

// session is the server-side state of an authenticated session.
type session struct {
	user    string
	loginAt time.Time
}

// Shop is the demo shop application. It implements http.Handler and is safe
// for concurrent use.
type Shop struct {
	opts  Options
	users map[string]string
	mux   *http.ServeMux

	mu       sync.Mutex
	sessions map[string]session // token -> authenticated session
}

// New returns a Shop configured by opts.
func New(opts Options) *Shop {
	if opts.CookieName == "" {
		opts.CookieName = DefaultCookieName
	}
	users := make(map[string]string)
	if opts.Users == nil {
		users["alice"] = "alice"
		users["bob"] = "bob"
		users["carol"] = "carol"
	} else {
		for u, p := range opts.Users {
			users[u] = p
		}
	}
	s := &Shop{
		opts:     opts,
		users:    users,
		mux:      http.NewServeMux(),
		sessions: make(map[string]session),
	}
	s.routes()
	return s
}

func (s *Shop) routes() {
	s.mux.HandleFunc("GET /{$}", s.handleHome)
	s.mux.HandleFunc("GET /login", s.handleLoginForm)
	s.mux.HandleFunc("POST /login", s.handleLogin)
	s.mux.HandleFunc("GET /logout", s.handleLogout)
	s.mux.HandleFunc("POST /logout", s.handleLogout)
	s.mux.HandleFunc("GET /account", s.handleAccount)
	s.mux.HandleFunc("GET /products/{n}", s.handleProduct)
	s.mux.HandleFunc("GET /api/me", s.handleAPIMe)
	s.mux.HandleFunc("GET /healthz", s.handleHealthz)
}

// ServeHTTP implements http.Handler.
func (s *Shop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// LoggedIn reports the user bound to the session token, if the token
// belongs to a logged-in session.
func (s *Shop) LoggedIn(token string) (user string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[token]
	return sess.user, ok
}

// currentUser returns the logged-in session for token, if any.
func (s *Shop) currentUser(token string) (session, bool) {
	if token == "" {
		return session{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[token]
	return sess, ok
}

// bind marks token as logged in as user.
func (s *Shop) bind(token, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[token] = session{user: user, loginAt: time.Now()}
}

// forget deletes the server-side state of token.
func (s *Shop) forget(token string) {
	if token == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, token)
}

// requestToken returns the session id sent by the client, or "" if there is
// none or it is not something the shop would ever have issued.
func (s *Shop) requestToken(r *http.Request) string {
	c, err := r.Cookie(s.opts.CookieName)
	if err != nil || !validToken(c.Value) {
		return ""
	}
	return c.Value
}

// validToken accepts non-empty base64url-alphabet strings of bounded length.
func validToken(t string) bool {
	if t == "" || len(t) > maxTokenLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// newToken returns 32 random bytes encoded as unpadded base64url.
func newToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("shop: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// issueCookie sets a new session cookie carrying token.
func (s *Shop) issueCookie(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.opts.CookieName,
		Value:    token,
		Path:     "/",
		HttpOnly: true,
		Secure:   s.opts.Secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// expireCookie tells the browser to drop the session cookie. The header is
// written by hand so that it has the classic shape many frameworks emit.
func (s *Shop) expireCookie(w http.ResponseWriter) {
	v := s.opts.CookieName + "=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly"
	if s.opts.Secure {
		v += "; Secure"
	}
	w.Header().Add("Set-Cookie", v)
}

// startSession is called by every HTML page handler. In non-rotate mode it
// issues an anonymous session cookie when the browser has none, like PHP's
// session_start(). It returns the token in effect for this request.
func (s *Shop) startSession(w http.ResponseWriter, r *http.Request) string {
	tok := s.requestToken(r)
	if tok == "" && !s.opts.Rotate {
		tok = newToken()
		s.issueCookie(w, tok)
	}
	return tok
}

// checkPassword reports whether user/password are valid credentials.
func (s *Shop) checkPassword(user, password string) bool {
	want, ok := s.users[user]
	if !ok || user == "" {
		// Still do a comparison to keep timing roughly uniform.
		subtle.ConstantTimeCompare([]byte(password), []byte(password))
		return false
	}
	return subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
}

// credentials extracts username and password from a login request.
func (s *Shop) credentials(w http.ResponseWriter, r *http.Request) (user, password string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if s.opts.JSONLogin && isJSON(r.Header.Get("Content-Type")) {
		var body struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return "", ""
		}
		return body.Username, body.Password
	}
	if err := r.ParseForm(); err != nil {
		return "", ""
	}
	return r.PostForm.Get("username"), r.PostForm.Get("password")
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func (s *Shop) handleHome(w http.ResponseWriter, r *http.Request) {
	tok := s.startSession(w, r)
	sess, ok := s.currentUser(tok)
	s.render(w, http.StatusOK, homePage, pageData{
		Title:    "Demo Shop",
		User:     sess.user,
		LoggedIn: ok,
		Products: products,
	})
}

func (s *Shop) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	tok := s.startSession(w, r)
	sess, ok := s.currentUser(tok)
	s.render(w, http.StatusOK, loginPage, pageData{
		Title:    "Sign in",
		User:     sess.user,
		LoggedIn: ok,
	})
}

func (s *Shop) handleLogin(w http.ResponseWriter, r *http.Request) {
	user, password := s.credentials(w, r)
	old := s.requestToken(r)
	if !s.checkPassword(user, password) {
		sess, ok := s.currentUser(old)
		s.render(w, http.StatusOK, loginPage, pageData{
			Title:    "Sign in",
			User:     sess.user,
			LoggedIn: ok,
			Error:    "Invalid username or password.",
			Username: user,
		})
		return
	}

	tok := old
	if s.opts.Rotate || tok == "" {
		// Rotate: destroy the old session and issue a fresh id, like
		// session_regenerate_id(true). Non-rotate without a cookie: the
		// browser has no id yet, so one must be issued.
		s.forget(old)
		tok = newToken()
		s.issueCookie(w, tok)
	}
	s.bind(tok, user)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

func (s *Shop) handleLogout(w http.ResponseWriter, r *http.Request) {
	s.forget(s.requestToken(r))
	s.expireCookie(w)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Shop) handleAccount(w http.ResponseWriter, r *http.Request) {
	tok := s.startSession(w, r)
	sess, ok := s.currentUser(tok)
	if !ok {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, accountPage, pageData{
		Title:    "Your account",
		User:     sess.user,
		LoggedIn: true,
		LoginAt:  sess.loginAt.UTC().Format(http.TimeFormat),
	})
}

func (s *Shop) handleProduct(w http.ResponseWriter, r *http.Request) {
	tok := s.startSession(w, r)
	sess, ok := s.currentUser(tok)
	p, found := productByID(r.PathValue("n"))
	if !found {
		s.render(w, http.StatusNotFound, notFoundPage, pageData{
			Title:    "Not found",
			User:     sess.user,
			LoggedIn: ok,
		})
		return
	}
	s.render(w, http.StatusOK, productPage, pageData{
		Title:    p.Name,
		User:     sess.user,
		LoggedIn: ok,
		Product:  p,
	})
}

func (s *Shop) handleAPIMe(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.currentUser(s.requestToken(r))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"logged_in": false,
			"error":     "not logged in",
		})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"user":      sess.user,
		"logged_in": true,
	})
}

func (s *Shop) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok"))
}
