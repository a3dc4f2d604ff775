package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sessions/caddy-sessions/admin"
	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// ident is who a request says it is.
type ident struct {
	realm   string
	user    string // from the user placeholder, "" if none
	cookies cookieRead
	ip, ua  string
}

// token is the token of the first session cookie the request carries.
func (id *ident) token() string {
	c, _ := id.cookies.first()
	return c.token
}

func (h *Handler) identify(r *http.Request, repl *caddy.Replacer) ident {
	id := ident{realm: h.realmFor(repl)}
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		id.ua = ua[0]
	}
	if h.User != "" {
		id.user = repl.ReplaceAll(h.User, "")
	}
	if len(h.cookies.patterns) > 0 || id.user != "" {
		// One pass over the header: session cookies and the device cookie.
		id.cookies = h.cookies.readCookies(r.Header, h.DeviceCookie)
		if alt := id.cookies.deviceAlt; alt != "" {
			// Two device cookies (a host-only one from before
			// device_cookie_domain, or from before a secret change):
			// the valid one, rather than minting a device per request.
			if _, ok := h.keys.VerifyDevice(id.cookies.device); !ok {
				if _, ok := h.keys.VerifyDevice(alt); ok {
					id.cookies.device = alt
				}
			}
		}
		// The app gets the session cookies the module enforces, and no
		// look-alike or duplicate it could read instead.
		h.cookies.applyCookies(r.Header, &id.cookies)
	}
	id.ip, _ = caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return id
}

// realmFor is the configured realm; a placeholder realm is expanded per
// request (an explicit choice: see the README).
func (h *Handler) realmFor(repl *caddy.Replacer) string {
	if !h.realmDynamic {
		return h.realm
	}
	return strings.ToLower(repl.ReplaceAll(h.realm, ""))
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if h.notMePath != "" && r.URL.Path == h.notMePath {
		clearPlaceholders(repl)
		return h.serveNotMe(w, r)
	}
	id := h.identify(r, repl)
	if id.user == "" && id.cookies.n == 0 && len(h.loginM) == 0 {
		clearPlaceholders(repl)
		return next.ServeHTTP(w, r) // anonymous: nothing to do
	}
	if h.Impersonation != "" && truthy(repl.ReplaceAll(h.Impersonation, "")) {
		clearPlaceholders(repl)
		h.impersonated(r, id, repl)
		return next.ServeHTTP(w, r)
	}
	if !h.tracker.Settings(r.Context(), id.realm).Tracking {
		clearPlaceholders(repl)
		return next.ServeHTTP(w, r)
	}
	if len(h.loginM) > 0 {
		match, err := h.loginM.AnyMatchWithError(r)
		if err != nil {
			return caddyhttp.Error(http.StatusBadRequest, err)
		}
		if match {
			clearPlaceholders(repl)
			// A refused token is refused on a login too: an app may
			// take it as proof of a login (WordPress signs in from its
			// cookie when the name is empty or "0").
			if res, name, refused := h.refusedToken(r, id); refused {
				return h.refuse(w, r, repl, id, name, res.Reason)
			}
			name, err := readLoginNameWithin(w, r, h.UserField)
			switch {
			case err == nil && h.successRule == successReplaced && id.user == "" && id.cookies.n == 0:
				// The answer's new cookie could come from an anonymous
				// session start as well as from a login.
				return h.badRequest(w, errors.New("login request without the app's session cookie: load the login page first"))
			case err == nil && h.successRule == successReplaced && id.user == "" && !h.keys.VerifyIssued(id.token(), id.cookies.issued, time.Now(), issuedMaxAge):
				// The app may replace an id it does not know on any
				// answer: that would prove nothing. The browser gets
				// a fresh one from the login page.
				for _, c := range id.cookies.found {
					if c.value != "" {
						expireCookie(w, r, c.name)
					}
				}
				return h.badRequest(w, errors.New("login request with a session cookie the app did not issue through this proxy: load the login page again"))
			case err == nil:
				return h.serveLogin(w, r, next, repl, id, name)
			case h.UnreadableLogin != unreadablePass:
				return h.badRequest(w, err)
			}
		}
	}
	if len(h.logoutM) > 0 {
		match, err := h.logoutM.AnyMatchWithError(r)
		if err != nil {
			return caddyhttp.Error(http.StatusBadRequest, err)
		}
		if match {
			clearPlaceholders(repl)
			if res, name, refused := h.refusedToken(r, id); refused {
				return h.refuse(w, r, repl, id, name, res.Reason)
			}
			return h.serveLogout(w, r, next, id)
		}
	}
	if id.user == "" && id.cookies.n == 0 {
		clearPlaceholders(repl)
		if h.watchesIssued() {
			return h.serveAnonymous(w, r, next, id)
		}
		return next.ServeHTTP(w, r)
	}
	return h.serveTracked(w, r, next, repl, id)
}

// badRequest answers a request the module cannot read unambiguously; it
// never reaches the app.
func (h *Handler) badRequest(w http.ResponseWriter, err error) error {
	status := http.StatusBadRequest
	var le errLogin
	if errors.As(err, &le) && le.status != 0 {
		status = le.status
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusRequestTimeout {
		w.Header().Set("Connection", "close")
	}
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	_, _ = w.Write(append(b, '\n'))
	return nil
}

func (h *Handler) serveTracked(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, id ident) error {
	res, cur, refusedName, err := h.observe(r, repl, id)
	if err != nil {
		clearPlaceholders(repl)
		if errors.Is(err, errTwoSessions) {
			return h.badRequest(w, err)
		}
		if h.FailClosed {
			return caddyhttp.Error(http.StatusServiceUnavailable, errors.New("session store unavailable"))
		}
		h.storeError(err)
		return next.ServeHTTP(w, r)
	}
	if !res.Tracked {
		clearPlaceholders(repl)
		if h.watchesIssued() {
			return h.serveAnonymous(w, r, next, id)
		}
		return next.ServeHTTP(w, r)
	}
	if res.SetDeviceCookie != "" {
		h.setDeviceCookie(w, r, res.SetDeviceCookie)
	}
	if !res.New {
		publishPlaceholders(repl, sessionLookup(res.Vars), res.Vars, false)
	} else {
		h.setPlaceholders(repl, res)
	}
	if res.Challenge {
		return h.challenge(w, r, repl, id, res.RiskSignal)
	}
	if res.Refused {
		return h.refuse(w, r, repl, id, refusedName, res.Reason)
	}
	if h.SelfService != "" && strings.HasPrefix(r.URL.Path, h.SelfService) {
		self := admin.Self{Prefix: h.SelfService, Realm: res.Realm, Tracker: h.tracker}
		if h.SelfServicePage != nil {
			self.Page = *h.SelfServicePage
		}
		self.Serve(w, r, res.User, res.SessionID)
		return nil
	}
	if id.cookies.n == 0 {
		return next.ServeHTTP(w, r)
	}
	cw := newCookieWatch(w, &h.cookies)
	defer cw.release()
	cw.tracked, cw.req, cw.res, cw.had, cw.token = h, r, res, id.cookies.found, cur.token
	return cw.serve(next, r)
}

// judgeTracked judges the answer to a tracked request as it is about to go
// out, so the proxy knows a rotated cookie, and refuses a logged-out one,
// before the browser can send it.
func (h *Handler) judgeTracked(cw *cookieWatch) {
	if !cw.changed {
		return
	}
	ended := false
	for i, ch := range cw.changes {
		had := cw.had[i]
		switch {
		case ch.deleted && had.value != "":
			ended = true
		case ch.value != "" && cookieToken(ch.value) != had.token:
			// The app rotated a session cookie (privilege change) or
			// set another one of the login: the session goes on.
			if _, err := h.tracker.Alias(detached(cw.req), cw.res.Realm, cw.res.User, cw.res.SessionID, cookieToken(ch.value)); err != nil {
				h.storeError(err)
			}
		}
	}
	if ended {
		h.end(cw.res.Realm, cw.res.User, cw.token, store.EndLogout, false)
	}
}

// refusedToken reports whether a session cookie of the request is refused
// (revoked, evicted, logged out, a blocked device's), without opening or
// counting anything: for requests that are not ordinary page views (a
// login, a logout). A store error is not a refusal here; the deny list is
// consulted by the tracker.
func (h *Handler) refusedToken(r *http.Request, id ident) (tracker.Result, string, bool) {
	for _, c := range id.cookies.found {
		if c.value == "" {
			continue
		}
		res, err := h.tracker.Observe(r.Context(), tracker.Request{
			Realm: id.realm, Token: c.token, User: id.user, IP: id.ip, UserAgent: id.ua,
			DeviceCookie: id.cookies.device, NoOpen: true,
		})
		if err == nil && res.Refused {
			return res, c.name, true
		}
	}
	return tracker.Result{}, "", false
}

// errTwoSessions: a request's session cookies belong to different sessions.
var errTwoSessions = errors.New("the request's session cookies belong to different sessions")

// observe accounts for a request: with placeholder identity, the user on
// this device; with session cookies, each cookie the request carries. Any
// refused cookie refuses the request; the first tracked one is the
// request's session, and the others may not open one.
func (h *Handler) observe(r *http.Request, repl *caddy.Replacer, id ident) (res tracker.Result, cur sessionCookie, refusedName string, err error) {
	base := tracker.Request{
		Realm: id.realm, User: id.user, IP: id.ip, UserAgent: id.ua, Path: r.URL.Path, Consent: h.consent(repl),
	}
	if id.cookies.n == 0 {
		// The user on this device: the tracker decides the device.
		req := base
		req.DeviceCookie, req.DeriveDevice = id.cookies.device, h.derivesDevice()
		res, err = h.tracker.Observe(r.Context(), req)
		return res, cur, "", err
	}
	for i := range id.cookies.found {
		c := id.cookies.found[i]
		if c.value == "" {
			continue
		}
		req := base
		req.Token, req.DeviceCookie, req.NoOpen = c.token, id.cookies.device, res.Tracked
		one, err := h.tracker.Observe(r.Context(), req)
		if err != nil {
			return res, cur, "", err
		}
		switch {
		case one.Refused:
			return one, c, c.name, nil
		case !one.Tracked:
		case !res.Tracked:
			res, cur = one, c
		case one.SessionID != res.SessionID:
			return res, cur, "", errTwoSessions
		}
	}
	if cur.value == "" {
		cur, _ = id.cookies.first()
	}
	return res, cur, "", nil
}

// watchesIssued: logins are judged by the replaced cookie, so the module
// must know which cookies the app issued to anonymous visitors.
func (h *Handler) watchesIssued() bool {
	if len(h.loginM) == 0 || len(h.cookies.patterns) == 0 {
		return false
	}
	// With new_cookie, anonymous answers are watched until one proves
	// the rule wrong for this app.
	return h.successRule == successReplaced || (h.successRule == successNewCookie && !h.warnedRotation.Load())
}

// serveAnonymous passes a request without a known session. When the app
// issues a session cookie on its answer, the browser also gets the
// module's signature of it (<device_cookie>_issued): a login that then
// replaces that cookie proves a successful login, with nothing stored. If
// the app replaces a cookie it issued itself on such an ordinary answer, a
// new cookie in a login answer proves nothing, and the operator is told
// once to configure login_success.
func (h *Handler) serveAnonymous(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, id ident) error {
	cw := newCookieWatch(w, &h.cookies)
	defer cw.release()
	cw.onHeader = func() {
		if first, ok := id.cookies.first(); ok && !cw.changed && cw.status < 400 {
			// The app still takes the anonymous cookie: its signature
			// slides, so a visitor who browses before logging in is
			// never asked to reload. A cookie the app forgot is replaced
			// on the answer instead (or, in a lax app, kept: then a
			// failed login keeps it too).
			now := time.Now()
			if h.keys.VerifyIssued(first.token, id.cookies.issued, now, issuedMaxAge) &&
				!h.keys.VerifyIssued(first.token, id.cookies.issued, now, time.Minute) {
				h.setIssuedCookie(cw, r, first.token)
			}
		}
		for i, ch := range cw.changes {
			if ch.value == "" {
				continue
			}
			had := id.cookies.found[i]
			if h.successRule == successNewCookie {
				if h.warnedRotation.CompareAndSwap(false, true) {
					h.logger.Warn("login_success new_cookie does not fit this app: it sets its session cookie for anonymous visitors, so a failed login's answer can set one too; use the default rule or a login_success matcher",
						zap.String("cookie", ch.name), zap.String("path", r.URL.Path))
				}
				return
			}
			if had.value != "" && cookieToken(ch.value) != had.token && h.keys.VerifyIssued(had.token, id.cookies.issued, time.Now(), issuedMaxAge) &&
				h.warnedRotation.CompareAndSwap(false, true) {
				h.logger.Warn("the app sets its session cookie anew on ordinary answers: a new cookie does not prove a login, so set login_success (a status, header or redirect of its successful login answer)",
					zap.String("cookie", ch.name), zap.String("path", r.URL.Path))
			}
			h.setIssuedCookie(cw, r, cookieToken(ch.value))
			return // the first session cookie is the one a login replaces
		}
	}
	return cw.serve(next, r)
}

// issuedMaxAge is how long the signature of an issued anonymous cookie
// proves its issue: a login form is filled in well within it, and an app
// is unlikely to have forgotten the anonymous id by then.
const issuedMaxAge = 10 * time.Minute

// setIssuedCookie signs an anonymous session cookie the app issued.
func (h *Handler) setIssuedCookie(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: h.cookies.issued, Value: h.keys.IssuedMAC(token, time.Now()), Path: "/",
		MaxAge: int(issuedMaxAge.Seconds()), HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
	})
}

// refuse answers a refused request as a Caddy error, so handle_errors can
// style it. A revoked, evicted or logged-out session gets on_revoked and
// its app cookies expired; a blocked device or a limit gets 403.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, id ident, name, reason string) error {
	repl.Set("http.sessions.block_reason", reason)
	if reason != store.EndRevoked && reason != store.EndEvicted && reason != store.EndLogout {
		return caddyhttp.Error(http.StatusForbidden, fmt.Errorf("request refused: %s", reason))
	}
	for _, c := range id.cookies.found {
		if c.value != "" {
			expireCookie(w, r, c.name)
		}
	}
	if name != "" {
		expireCookie(w, r, name)
	}
	if h.revokeTo != "" {
		w.Header().Set("Location", h.revokeTo)
	}
	return caddyhttp.Error(h.revokeStatus, fmt.Errorf("session refused: %s", reason))
}

func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, id ident) error {
	if id.user == "" && id.cookies.n == 0 {
		return next.ServeHTTP(w, r)
	}
	cw := newCookieWatch(w, &h.cookies)
	defer cw.release()
	// Ended before the answer goes out: the old token is refused from
	// the browser's very next request on. An answer the app refused
	// (WordPress asks to confirm a logout without its nonce) ends
	// nothing: a cross-site link cannot log anyone out.
	cw.onHeader = func() {
		// Ended when the app did log out: an answer below 400 that
		// deletes or replaces a session cookie. An app that asks to
		// confirm (WordPress without its nonce, Moodle without its
		// sesskey) ends nothing: a cross-site link logs nobody out.
		if cw.status >= 400 || (id.cookies.n > 0 && !cw.changed) {
			return
		}
		if tok := id.token(); tok != "" {
			h.end(id.realm, id.user, tok, store.EndLogout, false)
			return
		}
		if tok, ok := h.tracker.DeviceTokenOf(id.realm, id.user, id.cookies.device); ok {
			h.end(id.realm, id.user, tok, store.EndLogout, true)
		}
	}
	return cw.serve(next, r)
}

// end ends a token's session. forget: a token made from the device, which
// must not stay refused.
func (h *Handler) end(realm, user, token, reason string, forget bool) {
	// Detached from the request: a client hanging up must not leave the
	// session open.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.tracker.End(ctx, realm, token, user, reason, forget); err != nil {
		h.storeError(err)
	}
}

// storeError logs store failures at most once per errLogPeriod: an outage
// must not flood the log with one line per request.
func (h *Handler) storeError(err error) {
	if h.errLog.trip() {
		h.logger.Error("session store unavailable; requests pass untracked", zap.Error(err))
	}
}

// truthy reads a consent or impersonation value.
func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no", "off":
		return false
	}
	return true
}

func (h *Handler) consent(repl *caddy.Replacer) bool {
	return h.ActivityTrail != nil && h.ActivityTrail.Consent != "" && truthy(repl.ReplaceAll(h.ActivityTrail.Consent, ""))
}

// impersonated emits one audit event per impersonated token and refresh
// interval; the request itself leaves no trace in the customer's data.
func (h *Handler) impersonated(r *http.Request, id ident, repl *caddy.Replacer) {
	key := id.realm + "\x00" + id.user + "\x00" + id.token()
	if !h.audits.due(h.keys.TokenHash(id.realm, key), time.Duration(h.RefreshInterval)) {
		return
	}
	user := id.user
	if user == "" && id.cookies.n > 0 {
		// Cookie identity: the customer is whom the token was bound to.
		user, _ = h.tracker.TokenUser(r.Context(), id.token())
	}
	h.emit(EventImpersonation, map[string]any{
		"realm": id.realm, "user": user, "by": repl.ReplaceAll(h.Impersonation, ""),
		"ip": id.ip, "method": r.Method, "path": r.URL.Path,
	})
	if c := h.logger.Check(zapcore.InfoLevel, "impersonated request not recorded"); c != nil {
		c.Write(zap.String("realm", id.realm), zap.String("user", user))
	}
}
