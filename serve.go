package sessions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sessions/caddy-sessions/admin"
	"github.com/caddy-sessions/caddy-sessions/tracker"
)

// maxLoginBody is how much of a login request body is read to find the
// login name; larger bodies pass unobserved.
const maxLoginBody = 64 << 10

// ident is who a request says it is.
type ident struct {
	realm      string
	user       string // from the user placeholder, "" if none
	cookieName string // the app's session cookie as found
	token      string // its value, "" if none
	ip, ua     string
	// devCookie is the device cookie's value, when devRead.
	devCookie string
	devRead   bool
}

func (h *Handler) identify(r *http.Request, repl *caddy.Replacer) ident {
	id := ident{realm: h.realmFor(r)}
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		id.ua = ua[0]
	}
	if h.User != "" {
		id.user = repl.ReplaceAll(h.User, "")
	}
	if h.SessionCookie != "" {
		// One pass over the header: a token asks for the device cookie.
		id.cookieName, id.token, id.devCookie = cookieValues(r, h.cookiePrefix, h.cookieWild, h.DeviceCookie)
		id.devRead = true
	}
	id.ip, _ = caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return id
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	id := h.identify(r, repl)
	if id.user == "" && id.token == "" && len(h.loginM) == 0 {
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
			if name, ok := loginName(r, h.UserField); ok {
				clearPlaceholders(repl)
				return h.serveLogin(w, r, next, repl, id, name)
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
			return h.serveLogout(w, r, next, id)
		}
	}
	if id.user == "" && id.token == "" {
		clearPlaceholders(repl)
		return next.ServeHTTP(w, r)
	}
	return h.serveTracked(w, r, next, repl, id)
}

// deviceFor reads the device cookie. Without a valid one, a new id is made:
// random when an app cookie identifies the session; derived from user, user
// agent and IP otherwise, so that a client that keeps no cookies (an API
// client with basic auth) stays one device and one session.
func (h *Handler) deviceFor(r *http.Request, id ident, user string) (dev string, valid bool) {
	if v := h.rawDeviceCookie(r, id); v != "" {
		if dev, ok := h.keys.VerifyDevice(v); ok {
			return dev, true
		}
	}
	if id.token != "" || h.SessionCookie != "" || user == "" {
		dev, _ = h.keys.NewDevice()
		return dev, false
	}
	return h.keys.DerivedDevice(id.realm, user, id.ua, id.ip), false
}

// rawDeviceCookie is the device cookie's value, "" if none.
func (h *Handler) rawDeviceCookie(r *http.Request, id ident) string {
	if id.devRead {
		return id.devCookie
	}
	_, v, _ := cookieValue(r, h.DeviceCookie, false)
	return v
}

// material is the token the tracker hashes: the app's cookie, or for
// placeholder-only identity the user on this device.
func material(id ident, user, dev string) string {
	if id.token != "" {
		return id.token
	}
	return "\x00device\x00" + user + "\x00" + dev
}

func (h *Handler) serveTracked(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, id ident) error {
	req := tracker.Request{
		Realm: id.realm, User: id.user, IP: id.ip, UserAgent: id.ua, Path: r.URL.Path, Consent: h.consent(repl),
	}
	devValid := true
	if id.token != "" {
		// The tracker checks the device cookie, against its cache first.
		req.Token = id.token
		req.DeviceCookie = h.rawDeviceCookie(r, id)
	} else {
		// The device is part of the token: it must be known first.
		req.DeviceID, devValid = h.deviceFor(r, id, id.user)
		req.Token = material(id, id.user, req.DeviceID)
	}
	res, err := h.tracker.Observe(r.Context(), req)
	devValid = devValid && !res.DeviceMinted
	if err != nil {
		clearPlaceholders(repl)
		if h.FailClosed {
			return caddyhttp.Error(http.StatusServiceUnavailable, errors.New("session store unavailable"))
		}
		h.storeError(err)
		return next.ServeHTTP(w, r)
	}
	if !res.Tracked {
		clearPlaceholders(repl)
		return next.ServeHTTP(w, r)
	}
	if !devValid {
		h.setDeviceCookie(w, r, res.DeviceID)
	}
	if lookup := sessionLookup(res.Vars); lookup != nil && !res.New {
		publishPlaceholders(repl, lookup, res.Vars.User, res.Vars.Session, res.Vars.Device, false)
	} else {
		h.setPlaceholders(repl, res)
	}
	if res.Refused {
		return h.refuse(w, r, repl, id, res.Reason)
	}
	if h.SelfService != "" && strings.HasPrefix(r.URL.Path, h.SelfService) {
		admin.Self{Prefix: h.SelfService, Realm: id.realm, Tracker: h.tracker}.Serve(w, r, res.User, res.SessionID)
		return nil
	}
	if id.token == "" {
		return next.ServeHTTP(w, r)
	}
	cw := newCookieWatch(w, h.cookiePrefix, h.cookieWild)
	defer cw.release()
	err = next.ServeHTTP(cw, r)
	switch {
	case cw.deleted:
		h.end(id, res.User, id.token, tracker.EndLogout)
	case cw.newValue != "" && cw.newValue != id.token:
		// The app rotated its session id mid-session (privilege change):
		// the new token carries on for the same user.
		h.login(r, repl, id, res.User, cw.newValue, res.DeviceID)
		h.end(id, res.User, id.token, tracker.EndReplaced)
	}
	return err
}

// refuse answers a refused request as a Caddy error, so handle_errors can
// style it. A revoked (or evicted) session gets on_revoked and its app
// cookie expired; a blocked device or a limit gets 403.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, id ident, reason string) error {
	repl.Set("http.sessions.block_reason", reason)
	if reason != tracker.EndRevoked && reason != tracker.EndEvicted {
		return caddyhttp.Error(http.StatusForbidden, fmt.Errorf("request refused: %s", reason))
	}
	if id.cookieName != "" {
		expireCookie(w, r, id.cookieName)
	}
	if h.revokeTo != "" {
		w.Header().Set("Location", h.revokeTo)
	}
	return caddyhttp.Error(h.revokeStatus, fmt.Errorf("session refused: %s", reason))
}

func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, id ident, name string) error {
	user := id.user
	if user == "" {
		user = name
	}
	dev, devValid := h.deviceFor(r, id, user)
	if !devValid {
		// Set before the app answers: headers are gone once it has.
		h.setDeviceCookie(w, r, dev)
	}
	cw := newCookieWatch(w, h.cookiePrefix, h.cookieWild)
	defer cw.release()
	// Judged as the app's answer is about to go out, so the session
	// exists before the browser follows the answer (a redirect to the
	// account page must find it).
	cw.onHeader = func() {
		var ok bool
		if h.LoginSuccess != nil {
			ok = h.LoginSuccess.Match(cw.status, cw.Header())
		} else {
			ok = cw.newValue != "" && cw.newValue != id.token
		}
		if !ok {
			return
		}
		tok := cw.newValue
		if tok == "" {
			tok = id.token
		}
		if tok == "" && h.SessionCookie != "" {
			return // nothing to bind the session to
		}
		if id.token != "" && tok != id.token {
			h.end(id, user, id.token, tracker.EndReplaced)
		}
		if tok == "" {
			tok = material(id, user, dev)
		}
		h.login(r, repl, id, user, tok, dev)
	}
	return next.ServeHTTP(cw, r)
}

func (h *Handler) login(r *http.Request, repl *caddy.Replacer, id ident, user, token, dev string) {
	res, err := h.tracker.Login(r.Context(), tracker.Request{
		Realm: id.realm, Token: token, User: user, IP: id.ip, UserAgent: id.ua, DeviceID: dev,
		Path: r.URL.Path, Consent: h.consent(repl),
	})
	if err != nil {
		h.storeError(err)
		return
	}
	h.setPlaceholders(repl, res)
}

func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, id ident) error {
	err := next.ServeHTTP(w, r)
	if id.user == "" && id.token == "" {
		return err
	}
	user := id.user
	tok := id.token
	if tok == "" {
		dev, valid := h.deviceFor(r, id, user)
		if !valid {
			return err
		}
		tok = material(id, user, dev)
	}
	h.end(id, user, tok, tracker.EndLogout)
	return err
}

func (h *Handler) end(id ident, user, token, reason string) {
	// Detached from the request: a client hanging up must not leave the
	// session open.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.tracker.End(ctx, id.realm, token, user, reason); err != nil {
		h.storeError(err)
	}
}

func (h *Handler) setDeviceCookie(w http.ResponseWriter, r *http.Request, dev string) {
	http.SetCookie(w, &http.Cookie{
		Name: h.DeviceCookie, Value: h.keys.DeviceCookie(dev), Path: "/",
		// Browsers cap cookie lifetime at 400 days.
		MaxAge: int((400 * 24 * time.Hour).Seconds()), HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
	})
}

const (
	phUser   = "http.sessions.user"
	phID     = "http.sessions.id"
	phDevice = "http.sessions.device"
	phNew    = "http.sessions.new"
)

// clearPlaceholders makes {http.sessions.*} known and empty on requests
// the handler does not track, so header_up or logs never send the
// placeholder's literal text to the app.
func clearPlaceholders(repl *caddy.Replacer) {
	publishPlaceholders(repl, noSession, "", "", "", false)
}

func noSession(key string) (any, bool) {
	switch key {
	case phUser, phID, phDevice:
		return "", true
	case phNew:
		return false, true
	}
	return nil, false
}

// sessionLookup answers the placeholders of a known session on a request
// that did not open it. It is made once per cached session (Vars.Memo),
// not per request; nil without a Memo.
func sessionLookup(v tracker.Vars) caddy.ReplacerFunc {
	if v.Memo == nil {
		return nil
	}
	if f, ok := v.Memo.Load().(caddy.ReplacerFunc); ok {
		return f
	}
	f := caddy.ReplacerFunc(func(key string) (any, bool) {
		switch key {
		case phUser:
			return v.User, true
		case phID:
			return v.Session, true
		case phDevice:
			return v.Device, true
		case phNew:
			return false, true
		}
		return nil, false
	})
	v.Memo.Store(f)
	return f
}

// publishPlaceholders maps lookup into the replacer rather than setting
// the four values: Caddy makes a fresh replacer per request, and Set would
// cost four locked map writes plus the map's first allocation. A mapped
// lookup is asked after the Set values and after lookups mapped before
// it, so if something answers already (the handler ran earlier in this
// request), the values are Set: the last one wins, as with Set alone.
func publishPlaceholders(repl *caddy.Replacer, lookup caddy.ReplacerFunc, user, id, dev any, isNew bool) {
	if _, known := repl.Get(phUser); !known {
		repl.Map(lookup)
		return
	}
	repl.Set(phUser, user)
	repl.Set(phID, id)
	repl.Set(phDevice, dev)
	repl.Set(phNew, isNew)
}

func (h *Handler) setPlaceholders(repl *caddy.Replacer, res tracker.Result) {
	repl.Set(phUser, res.Vars.User)
	repl.Set(phID, res.Vars.Session)
	repl.Set(phDevice, res.Vars.Device)
	repl.Set(phNew, res.New)
}

// storeError logs store failures at most once per breaker period: an outage
// must not flood the log with one line per request.
func (h *Handler) storeError(err error) {
	if h.breaker.trip() {
		h.logger.Error("session store unavailable; requests pass untracked", zap.Error(err))
	}
}

// loginName reads the login name from a login request's body (urlencoded,
// multipart or JSON) and puts the body back for the app. Bodies over
// maxLoginBody are not read past the limit and pass unobserved.
func loginName(r *http.Request, field string) (string, bool) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength > maxLoginBody {
		return "", false
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, maxLoginBody+1))
	if len(buf) > maxLoginBody {
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return "", false
	}
	r.Body = readCloser{bytes.NewReader(buf), r.Body}
	if err != nil {
		return "", false
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var name string
	switch {
	case mt == "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(buf))
		if err != nil {
			return "", false
		}
		name = vals.Get(field)
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var body map[string]any
		if json.Unmarshal(buf, &body) != nil {
			return "", false
		}
		name, _ = body[field].(string)
	case mt == "multipart/form-data":
		form, err := multipart.NewReader(bytes.NewReader(buf), params["boundary"]).ReadForm(maxLoginBody)
		if err != nil {
			return "", false
		}
		defer form.RemoveAll()
		if v := form.Value[field]; len(v) > 0 {
			name = v[0]
		}
	}
	name = strings.TrimSpace(name)
	// A user id longer than this is not a login name but an attack.
	if name == "" || len(name) > 256 {
		return "", false
	}
	return name, true
}

type readCloser struct {
	io.Reader
	io.Closer
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
	key := id.realm + "\x00" + id.user + "\x00" + id.token
	if !h.audits.due(h.keys.TokenHash(id.realm, key), time.Duration(h.RefreshInterval)) {
		return
	}
	user := id.user
	if user == "" && id.token != "" {
		// Cookie identity: the customer is whom the token was bound to.
		user, _ = h.tracker.TokenUser(r.Context(), id.realm, id.token)
	}
	h.emit(EventImpersonation, map[string]any{
		"realm": id.realm, "user": user, "by": repl.ReplaceAll(h.Impersonation, ""),
		"ip": id.ip, "method": r.Method, "path": r.URL.Path,
	})
	if c := h.logger.Check(zapcore.InfoLevel, "impersonated request not recorded"); c != nil {
		c.Write(zap.String("realm", id.realm), zap.String("user", user))
	}
}
