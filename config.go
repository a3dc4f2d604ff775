package sessions

// What the configuration means: defaults, and checkConfig, the one place
// that checks every value for JSON and Caddyfile alike.

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// setDefaults fills in what the configuration left out.
func (h *Handler) setDefaults() {
	if h.RefreshInterval == 0 {
		h.RefreshInterval = caddy.Duration(defaultRefresh)
	}
	if h.IdleTimeout == 0 {
		h.IdleTimeout = caddy.Duration(defaultIdle)
	}
	if h.Retention == 0 {
		h.Retention = caddy.Duration(defaultRetention)
	}
	if h.DeviceCookie == "" {
		h.DeviceCookie = defaultDeviceCookie
	}
	if h.UserField == "" {
		h.UserField = defaultUserField
	}
	if h.Store == nil {
		h.Store = &StoreConfig{URL: "memory"}
	}
}

// checkConfig checks what the configuration means, the one place that
// does, for JSON and Caddyfile alike: Provision calls it before acquiring
// anything, and the Caddyfile adapter calls it on what it parsed (on a
// copy with defaults), so both get the same error naming the field and
// the value. What needs the outside world (the GeoIP file, the secret's
// placeholders, the store) is checked by Provision alone.
func (h *Handler) checkConfig() error {
	if d := h.DeviceCookieDomain; d != "" && !validCookieDomain(d) {
		return fmt.Errorf("device_cookie_domain: %q is not a domain name (such as example.com)", d)
	}
	if err := h.Risk.provision(); err != nil {
		return err
	}
	if h.SelfService != "" && !strings.HasPrefix(h.SelfService, "/") {
		return fmt.Errorf("self_service: %q must be a path starting with /", h.SelfService)
	}
	if p := h.SelfServicePage; p != nil && p.BackURL != "" {
		u, err := url.Parse(p.BackURL)
		if err != nil || (u.Scheme != "" && u.Scheme != "https" && u.Scheme != "http") || (u.Scheme == "" && !strings.HasPrefix(p.BackURL, "/")) {
			return fmt.Errorf("self_service_page: back_url %q must be an http(s) URL or a path starting with /", p.BackURL)
		}
	}
	if err := h.provisionIdentity(); err != nil {
		return err
	}
	if err := h.parseOnRevoked(); err != nil {
		return err
	}
	if err := h.checkDurations(); err != nil {
		return err
	}
	if err := h.Restrict.validate(); err != nil {
		return fmt.Errorf("restrict: %w", err)
	}
	if h.Store != nil && !h.Store.isMemory() {
		if _, err := redisOptions(h.Store); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	if h.TimeZone != "" {
		if _, err := time.LoadLocation(h.TimeZone); err != nil || h.TimeZone == "Local" {
			return fmt.Errorf("time_zone: %q is not an IANA time zone", h.TimeZone)
		}
	}
	switch h.IPPrecision {
	case "", store.IPFull, store.IPTruncated, store.IPNone:
	default:
		return fmt.Errorf("ip_precision: %q is not full, truncated or none", h.IPPrecision)
	}
	if h.User == "" && len(h.SessionCookie) == 0 {
		return errors.New("sessions: set user, session_cookie or both, or nothing can be tracked")
	}
	if h.Login != nil && len(h.SessionCookie) == 0 && h.User == "" {
		return errors.New("login: needs session_cookie to bind the session to")
	}
	return nil
}

// defaultRealm is the realm of a handler without one.
const defaultRealm = "default"

// provisionIdentity checks and compiles how requests are identified: the
// realm, the session cookies, the login rules.
func (h *Handler) provisionIdentity() error {
	var err error
	if h.cookies, err = compileCookies(h.SessionCookie); err != nil {
		return err
	}
	h.cookies.issued = h.DeviceCookie + "_issued"
	h.realm, h.realmDynamic = h.Realm, strings.Contains(h.Realm, "{")
	if h.realm == "" {
		h.realm = defaultRealm
	}
	switch h.UnreadableLogin {
	case "", unreadableRefuse, unreadablePass:
	default:
		return fmt.Errorf("unreadable_login: %q is not refuse or pass", h.UnreadableLogin)
	}
	for _, op := range h.UserNormalize {
		if op != NormalizeLower && op != NormalizeUpperFirst {
			return fmt.Errorf("user_normalize: %q is not lower or upper_first", op)
		}
	}
	if h.LoginUser != nil {
		if err := h.LoginUser.provision(); err != nil {
			return err
		}
	}
	switch {
	case h.LoginSuccess != nil && h.LoginSuccessNewCookie:
		return errors.New("login_success: a response matcher or new_cookie, not both")
	case h.LoginSuccess != nil:
		h.successRule = successMatcher
	case h.LoginSuccessNewCookie:
		h.successRule = successNewCookie
	default:
		h.successRule = successReplaced
	}
	return nil
}

// unreadable_login values.
const (
	unreadableRefuse = "refuse"
	unreadablePass   = "pass"
)

// revokeHold is how long a revoked token stays refused. An app cookie is
// expired in the refusal, so a client that keeps sending it is not the
// app's browser: refuse it for the whole retention. A token derived from
// the device (user placeholder, no app cookie) would otherwise lock the
// browser out for good, so it is refused for one idle timeout.
func (h *Handler) revokeHold() time.Duration {
	if len(h.SessionCookie) > 0 {
		return time.Duration(h.Retention)
	}
	return time.Duration(h.IdleTimeout)
}

func (h *Handler) checkDurations() error {
	for _, d := range []struct {
		name string
		v    caddy.Duration
	}{{"refresh_interval", h.RefreshInterval}, {"idle_timeout", h.IdleTimeout}, {"retention", h.Retention}} {
		if d.v <= 0 {
			return fmt.Errorf("%s: must be positive, got %s", d.name, time.Duration(d.v))
		}
	}
	if h.IdleTimeout < h.RefreshInterval {
		return fmt.Errorf("idle_timeout: %s is shorter than refresh_interval %s", time.Duration(h.IdleTimeout), time.Duration(h.RefreshInterval))
	}
	if h.Retention < h.IdleTimeout {
		return fmt.Errorf("retention: %s is shorter than idle_timeout %s", time.Duration(h.Retention), time.Duration(h.IdleTimeout))
	}
	if h.CacheSize < 0 {
		return fmt.Errorf("cache_size: must not be negative, got %d", h.CacheSize)
	}
	return nil
}

func (h *Handler) parseOnRevoked() error {
	switch v := h.OnRevoked; {
	case v == "":
		h.revokeStatus = http.StatusUnauthorized
	case strings.HasPrefix(v, "/") || strings.HasPrefix(v, "https://") || strings.HasPrefix(v, "http://"):
		h.revokeStatus, h.revokeTo = http.StatusFound, v
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 400 || n > 599 {
			return fmt.Errorf("on_revoked: %q is neither a 4xx/5xx status nor a path or URL to redirect to", v)
		}
		h.revokeStatus = n
	}
	return nil
}

// configCopy is the handler's configuration without its provisioned state.
func (h *Handler) configCopy() *Handler {
	return &Handler{
		Store: h.Store, Realm: h.Realm, User: h.User, SessionCookie: h.SessionCookie, Login: h.Login,
		UserField: h.UserField, UnreadableLogin: h.UnreadableLogin, UserNormalize: h.UserNormalize,
		LoginUser: h.LoginUser, LoginSuccess: h.LoginSuccess, LoginSuccessNewCookie: h.LoginSuccessNewCookie,
		Logout: h.Logout, RefreshInterval: h.RefreshInterval, IdleTimeout: h.IdleTimeout, Retention: h.Retention,
		GeoIP: h.GeoIP, DeviceCookie: h.DeviceCookie, DeviceCookieDomain: h.DeviceCookieDomain, Secret: h.Secret, OnRevoked: h.OnRevoked,
		SelfService: h.SelfService, SelfServicePage: h.SelfServicePage, FailClosed: h.FailClosed, CacheSize: h.CacheSize, Restrict: h.Restrict,
		Risk: h.Risk, Tracking: h.Tracking, Geolocation: h.Geolocation, IPPrecision: h.IPPrecision,
		ActivityTrail: h.ActivityTrail, Impersonation: h.Impersonation, TimeZone: h.TimeZone,
	}
}

// validCookieDomain: a domain name a Domain cookie attribute may hold,
// with at least two labels (never a bare TLD), no port, no IP.
func validCookieDomain(d string) bool {
	d = strings.TrimPrefix(d, ".")
	labels := strings.Split(d, ".")
	if len(labels) < 2 || len(d) > 253 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return !(last[0] >= '0' && last[0] <= '9') // not an IPv4 address
}
