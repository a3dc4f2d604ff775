package sessions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/text/unicode/norm"

	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// This file owns how a login is judged: the user a login name stands for
// (normalised as the app does, or taken from the app's answer), what
// counts as success, and the login flow that binds the session. Reading
// the name from the body is loginbody.go's.

// Login name normalisations (user_normalize).
const (
	NormalizeLower      = "lower"       // case folded: e-mail logins, WordPress, most shops
	NormalizeUpperFirst = "upper_first" // MediaWiki: the first letter upper case
)

// normalizeUser is the user id of a login name: trimmed, Unicode NFC, then
// the configured normalisations, so one app user is one user here however
// the name was typed.
func normalizeUser(name string, ops []string) string {
	name = norm.NFC.String(strings.TrimSpace(name))
	for _, op := range ops {
		switch op {
		case NormalizeLower:
			name = strings.ToLower(name)
		case NormalizeUpperFirst:
			if r, n := utf8.DecodeRuneInString(name); n > 0 {
				name = string(unicode.ToUpper(r)) + name[n:]
			}
		}
	}
	return name
}

// LoginUser takes the user of a successful login from the app's answer.
type LoginUser struct {
	// Cookie is a response cookie naming the user (a trailing * matches
	// a prefix): MediaWiki's <db>UserName, WordPress's
	// wordpress_logged_in_*.
	Cookie string `json:"cookie,omitempty"`
	// Header is a response header naming the user.
	Header string `json:"header,omitempty"`
	// Pattern, when set, is a regular expression the value must match;
	// its first group (or the whole match) is the user.
	Pattern string `json:"pattern,omitempty"`

	re *regexp.Regexp
}

func (lu *LoginUser) provision() error {
	if (lu.Cookie == "") == (lu.Header == "") {
		return errors.New("login_user: set cookie or header, one of them")
	}
	if lu.Pattern != "" {
		re, err := regexp.Compile(lu.Pattern)
		if err != nil {
			return fmt.Errorf("login_user: pattern %q: %v", lu.Pattern, err)
		}
		lu.re = re
	}
	return nil
}

// from reads the user out of an answer's header, "" if it names none.
func (lu *LoginUser) from(h http.Header) string {
	var v string
	if lu.Header != "" {
		v = h.Get(lu.Header)
	} else {
		name, wild := strings.CutSuffix(lu.Cookie, "*")
		for _, line := range h["Set-Cookie"] {
			ck, err := http.ParseSetCookie(line)
			if err != nil || ck.Value == "" || ck.MaxAge < 0 {
				continue
			}
			if ck.Name == name || (wild && strings.HasPrefix(ck.Name, name)) {
				v = pctDecodeLenient(strings.ReplaceAll(ck.Value, "+", " "))
			}
		}
	}
	if v == "" || lu.re == nil {
		return v
	}
	m := lu.re.FindStringSubmatch(v)
	switch {
	case m == nil:
		return ""
	case len(m) > 1:
		return m[1]
	}
	return m[0]
}

// Success rules for login answers.
const (
	successReplaced  = iota // the request's session cookie replaced by a new value
	successNewCookie        // any new session cookie (it exists only after login)
	successMatcher          // login_success's response matcher
)

// loginSucceeded judges a login answer.
func (h *Handler) loginSucceeded(cw *cookieWatch, id ident) bool {
	switch h.successRule {
	case successMatcher:
		return h.LoginSuccess.Match(cw.status, cw.Header())
	case successNewCookie:
		for i, ch := range cw.changes {
			if ch.value != "" && cookieToken(ch.value) != id.cookies.found[i].token {
				return true
			}
		}
		return false
	}
	// The cookie whose issue the browser's signature proves (the
	// request's first), replaced.
	for i, ch := range cw.changes {
		had := id.cookies.found[i]
		if had.value == "" {
			continue
		}
		return ch.value != "" && cookieToken(ch.value) != had.token
	}
	return false
}

func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, id ident, name string) error {
	user := id.user
	if user == "" {
		user = normalizeUser(name, h.UserNormalize)
	}
	dev, setCookie := h.deviceFor(id, user)
	if setCookie != "" {
		// Set before the app answers: headers are gone once it has.
		h.setDeviceCookie(w, r, setCookie)
	}
	cw := newCookieWatch(w, &h.cookies)
	defer cw.release()
	// Judged as the app's answer is about to go out, so the session
	// exists before the browser follows the answer (a redirect to the
	// account page must find it).
	cw.onHeader = func() {
		if !h.loginSucceeded(cw, id) {
			return
		}
		if id.user == "" && h.LoginUser != nil {
			u := h.LoginUser.from(cw.Header())
			if u == "" {
				// Opening a session in the typed name could pin
				// someone else's name on a false success.
				h.logger.Warn("successful login answer does not name the user as login_user expects; no session opened")
				if h.FailClosed {
					cw.refuseAnswer(http.StatusServiceUnavailable)
				}
				return
			}
			user = normalizeUser(u, h.UserNormalize)
		}
		// The session's token: the first session cookie the answer set,
		// else (an app that keeps its cookie at login) the request's.
		var tokens []string
		for i, ch := range cw.changes {
			if ch.value != "" && cookieToken(ch.value) != id.cookies.found[i].token {
				tokens = append(tokens, cookieToken(ch.value))
			}
		}
		old := id.token()
		switch {
		case len(tokens) > 0:
		case old != "":
			tokens = []string{old}
		case len(h.cookies.patterns) > 0:
			return // nothing to bind the session to
		default:
			tokens = []string{tracker.DeviceToken(id.realm, user, dev)}
		}
		if old != "" && old != tokens[0] {
			h.end(id.realm, user, old, store.EndReplaced, false)
		}
		res, ok := h.login(r, repl, id, user, tokens[0], dev)
		// A limit that refuses the session lets the app's answer go out
		// (the next request with its cookie is refused, as documented);
		// a login the module could not record, with fail_closed, does
		// not reach the browser.
		if !ok && h.FailClosed {
			cw.refuseAnswer(http.StatusServiceUnavailable)
			return
		}
		if ok && res.RiskSignal != "" && res.Refused {
			// A risk signal blocked, revoked or challenged the
			// login: the browser never gets its cookies.
			h.refuseLogin(cw, repl, res)
			return
		}
		for _, tok := range tokens[1:] {
			if !ok {
				break
			}
			// Another cookie of the same login (one per path, say).
			if _, err := h.tracker.Alias(detached(r), res.Realm, res.User, res.SessionID, tok); err != nil {
				h.storeError(err)
			}
		}
	}
	return cw.serve(next, r)
}

// detached is the request's context without its cancellation (and with
// a bound): what the module records of an answer must not be lost because
// the client hung up meanwhile.
func detached(r *http.Request) context.Context {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	context.AfterFunc(ctx, cancel)
	return ctx
}

func (h *Handler) login(r *http.Request, repl *caddy.Replacer, id ident, user, token, dev string) (tracker.Result, bool) {
	res, err := h.tracker.Login(detached(r), tracker.Request{
		Realm: id.realm, Token: token, User: user, IP: id.ip, UserAgent: id.ua, DeviceID: dev,
		Path: r.URL.Path, Consent: h.consent(repl),
	})
	if err != nil {
		h.storeError(err)
		return res, false
	}
	h.setPlaceholders(repl, res)
	return res, true
}
