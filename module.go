// Package sessions is a Caddy HTTP handler that tracks login sessions and
// devices of the app behind it, in Redis or in memory, and lets users and
// admins see and end them. The app is not changed: the handler watches its
// logins, cookies and logouts.
package sessions

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sessions/caddy-sessions/admin"
	"github.com/caddy-sessions/caddy-sessions/notify"
	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler tracks sessions of authenticated requests.
//
// It sets these placeholders for the rest of the route (logs, headers sent
// upstream, matchers):
//
//	{http.sessions.user}    the user id of a tracked request
//	{http.sessions.id}      the session id (derived from an HMAC; safe to show)
//	{http.sessions.device}  the device id from the module's device cookie
//	{http.sessions.new}     true on the request that opened the session
//	{http.sessions.block_reason}  why a request was refused (revoked, device_blocked)
type Handler struct {
	// Store is where sessions live: "memory" (default; one instance) or
	// Redis (shared by every instance).
	Store *StoreConfig `json:"store,omitempty"`

	// Realm names the set of users. Default: "default", the same for
	// every request, so a client cannot choose it. A placeholder (such as
	// {http.request.host}) makes a realm per value: an explicit choice,
	// for sites whose host names really are separate user sets.
	Realm string `json:"realm,omitempty"`

	// User is a placeholder that yields the user id, such as
	// {http.auth.user.id} or {http.request.header.X-User}.
	User string `json:"user,omitempty"`

	// SessionCookie names the app's session cookies: every cookie that
	// authenticates a request, on any path. A trailing * matches a
	// prefix (wordpress_logged_in_*); a leading ! excludes a name a
	// prefix would match. The first name is the session's own; the others
	// are bound to the same session when a login answer sets them. In
	// JSON a single name may be a string.
	SessionCookie CookieNames `json:"session_cookie,omitempty"`

	// Login matches the app's login requests.
	Login caddyhttp.RawMatcherSets `json:"login,omitempty" caddy:"namespace=http.matchers"`

	// UserField is the form or JSON body field of a login request holding
	// the login name. Default: "username".
	UserField string `json:"user_field,omitempty"`

	// UnreadableLogin is what happens to a login request whose body the
	// module cannot read unambiguously (malformed, the field twice, a
	// content type it does not parse, over 64 KiB, a name over 256
	// bytes): "refuse" (default: 400, it never reaches the app) or "pass"
	// (the app gets it and the login is not observed: its session is not
	// tracked, limited or revocable).
	UnreadableLogin string `json:"unreadable_login,omitempty"`

	// UserNormalize lists how a typed login name becomes the user id,
	// after trimming and Unicode NFC: "lower" (apps that compare names
	// or e-mail addresses case-insensitively) and/or "upper_first"
	// (MediaWiki).
	UserNormalize []string `json:"user_normalize,omitempty"`

	// LoginUser takes the user of a successful login from the app's
	// answer (a cookie or header naming them) instead of the typed name.
	LoginUser *LoginUser `json:"login_user,omitempty"`

	// LoginSuccess, when set, says what the app's answer to a successful
	// login looks like; the token the request carried (or a new one the
	// answer sets) is bound. Default: the answer sets the session cookie
	// to a new value.
	LoginSuccess *caddyhttp.ResponseMatcher `json:"login_success,omitempty"`

	// LoginSuccessNewCookie: a login answer that sets a session cookie
	// to a new value succeeded. For apps whose session cookie exists only
	// after login (WordPress's wordpress_logged_in_*). Without it and
	// without login_success, success is a session cookie the request
	// carried replaced by a new value.
	LoginSuccessNewCookie bool `json:"login_success_new_cookie,omitempty"`

	// Logout matches the app's logout requests.
	Logout caddyhttp.RawMatcherSets `json:"logout,omitempty" caddy:"namespace=http.matchers"`

	// RefreshInterval is how often last activity is written, at most, per
	// session. Default: 30s.
	RefreshInterval caddy.Duration `json:"refresh_interval,omitempty"`

	// IdleTimeout closes a session without activity. Default: 30m.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// Retention is how long closed sessions and history are kept.
	// Default: 90 days.
	Retention caddy.Duration `json:"retention,omitempty"`

	// GeoIP is the path of a MaxMind City database (GeoIP2 or GeoLite2).
	// Without it every location is "Unknown location".
	GeoIP string `json:"geoip,omitempty"`

	// DeviceCookie is the name of the module's own signed device cookie.
	// Default: "sessions_device".
	DeviceCookie string `json:"device_cookie,omitempty"`

	// DeviceCookieDomain, when set, is the device cookie's Domain, so a
	// site served under several host names of one domain (shop. and
	// www.example.com) sees one browser as one device. Default: the
	// host only.
	DeviceCookieDomain string `json:"device_cookie_domain,omitempty"`

	// Secret keys the HMACs of tokens and device cookies; at least 16
	// bytes; placeholders such as {env.SESSIONS_SECRET} are expanded at
	// Provision. Required with Redis; with the memory store a random one
	// is generated and kept in Caddy's data directory.
	Secret string `json:"secret,omitempty"`

	// OnRevoked answers requests of revoked sessions: a status code
	// (default 401) or a path/URL to redirect to.
	OnRevoked string `json:"on_revoked,omitempty"`

	// SelfService is a path prefix (such as /sessions/) where a logged-in
	// user lists and ends their own sessions.
	SelfService string `json:"self_service,omitempty"`
	// SelfServicePage sets the title of the "your sessions" page that
	// browsers get on SelfService, and a link back to the app.
	SelfServicePage *admin.SelfPage `json:"self_service_page,omitempty"`

	// FailClosed refuses (503) requests that need the store while it is
	// unreachable. Default: false, they pass untracked.
	FailClosed bool `json:"fail_closed,omitempty"`

	// CacheSize bounds the local cache of known sessions. Default: 100000.
	CacheSize int `json:"cache_size,omitempty"`

	// Restrict sets the account-sharing limits of the realm.
	Restrict *RestrictConfig `json:"restrict,omitempty"`

	// Risk turns risk signals on (stolen cookies, new devices and
	// countries, impossible travel, distant concurrent sessions).
	Risk *RiskConfig `json:"risk,omitempty"`

	// Tracking off records nothing new and enforces nothing (requests
	// pass untouched). Default: on. Changeable at runtime (admin API).
	Tracking *bool `json:"tracking,omitempty"`

	// Geolocation off gives new entries "Unknown location" and stores no
	// coordinates. Not retroactive. Default: on.
	Geolocation *bool `json:"geolocation,omitempty"`

	// IPPrecision is full (default), truncated (/24, /48) or none. The
	// location is looked up before truncation.
	IPPrecision string `json:"ip_precision,omitempty"`

	// ActivityTrail keeps the last paths of each session, for requests
	// whose consent placeholder says yes. Default: off.
	ActivityTrail *TrailConfig `json:"activity_trail,omitempty"`

	// Impersonation is a placeholder that is non-empty (and not 0, false,
	// no or off) on requests of staff acting as a customer: those are not
	// recorded, counted or refreshed; one audit event is emitted instead.
	Impersonation string `json:"impersonation,omitempty"`

	// TimeZone is the realm's default user time zone (IANA), for
	// sessions whose location has none. Default: UTC.
	TimeZone string `json:"time_zone,omitempty"`

	tracker      *tracker.Tracker
	notifier     *notify.Notifier // nil without a notify block
	alertBudget  *budget          // alerts per user per throttle window
	notMePath    string           // the "this wasn't me" page's path, "" without one
	keys         *tracker.Keyring
	loginM       caddyhttp.MatcherSets
	logoutM      caddyhttp.MatcherSets
	storeKey     string
	geoKey       string
	unregister   func()
	revokeStatus int
	revokeTo     string
	cookies      cookieSet
	realm        string
	realmDynamic bool // realm is a placeholder
	successRule  int
	// warnedRotation: the operator was told the app's cookie changes on
	// ordinary answers.
	warnedRotation *atomic.Bool
	logger         *zap.Logger
	errLog         *logThrottle
	metrics        *metrics
	audits         *auditLimiter
	events         *caddyevents.App
	// ctx is kept, as Caddy's own handlers do, to emit events from
	// background work (idle sweep) as this module.
	ctx caddy.Context
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sessions",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Defaults.
const (
	defaultRefresh      = 30 * time.Second
	defaultIdle         = 30 * time.Minute
	defaultRetention    = 90 * 24 * time.Hour
	defaultDeviceCookie = "sessions_device"
	defaultUserField    = "username"
)

// Provision sets up the handler.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.ctx = ctx
	h.errLog = new(logThrottle)
	h.warnedRotation = new(atomic.Bool)
	h.audits = new(auditLimiter)
	h.metrics = newMetrics(ctx.GetMetricsRegistry())
	h.events = loadEvents(ctx)
	h.setDefaults()
	if err := h.checkConfig(); err != nil {
		return err
	}

	if h.Login != nil {
		mods, err := ctx.LoadModule(h, "Login")
		if err != nil {
			return fmt.Errorf("login: loading matchers: %w", err)
		}
		if err := h.loginM.FromInterface(mods); err != nil {
			return fmt.Errorf("login: %w", err)
		}
	}
	if h.Logout != nil {
		mods, err := ctx.LoadModule(h, "Logout")
		if err != nil {
			return fmt.Errorf("logout: loading matchers: %w", err)
		}
		if err := h.logoutM.FromInterface(mods); err != nil {
			return fmt.Errorf("logout: %w", err)
		}
	}

	secret, err := h.secret(h.Store.isMemory())
	if err != nil {
		return err
	}
	if h.keys, err = tracker.NewKeyring(secret); err != nil {
		return fmt.Errorf("secret: %w", err)
	}

	st, key, err := loadStore(ctx, h.Store, h.logger)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	h.storeKey = key

	var geo *enrich.Geo
	if h.GeoIP != "" {
		path := caddy.NewReplacer().ReplaceAll(h.GeoIP, "")
		if geo, err = loadGeo(path); err != nil {
			return fmt.Errorf("geoip: %w", err)
		}
		h.geoKey = path
	}

	var tz *time.Location
	if h.TimeZone != "" {
		tz, _ = time.LoadLocation(h.TimeZone) // checked in checkConfig
	}
	t, err := tracker.New(tracker.Config{
		Policy: store.Policy{
			Idle: time.Duration(h.IdleTimeout), Retention: time.Duration(h.Retention),
			Refresh: time.Duration(h.RefreshInterval), RevokeHold: h.revokeHold(),
		},
		Limits: h.Restrict.limits(), Prefix: h.Restrict.prefix(),
		Settings: h.defaultSettings(), TimeZone: tz, TrailLen: h.ActivityTrail.paths(),
		Store: tracker.Guard(st, time.Second), Keys: h.keys, Geo: geo, CacheSize: h.CacheSize,
		Hooks: h.hooks(), Risk: h.Risk.policy(),
	})
	if err != nil {
		return err
	}
	h.tracker = t
	if h.Risk != nil && h.Risk.Notify != nil {
		if h.notifier, err = h.Risk.Notify.newNotifier(h.alertOutcome(h.metricRealm())); err != nil {
			t.Stop()
			return err
		}
		h.notMePath = h.Risk.Notify.linkPath()
		h.alertBudget = newBudget(perUserAlerts, h.Risk.Notify.throttle())
		if e := h.Risk.Notify.Email; e != nil && e.To == "" && h.Risk.Notify.Webhook == nil {
			h.logger.Warn("risk alerts go by e-mail only, to user ids that are e-mail addresses: users whose id is not one get none (set to, or a webhook)")
		}
	}
	if h.Risk != nil {
		h.logger.Info("risk signals", zap.Strings("on", h.Risk.riskSignals()), zap.Bool("alerts", h.notifier != nil))
	}
	t.Start()
	realm := h.realm
	if h.realmDynamic {
		realm = admin.Wildcard // one realm per placeholder value
	} else {
		t.AddRealm(realm)
	}
	var r admin.Realm = t
	if h.notifier != nil {
		r = &alertingRealm{Tracker: t, n: h.notifier}
	}
	h.unregister = admin.Register(realm, h.storeKey, r)
	return nil
}

// TrailConfig is the extended activity trail.
type TrailConfig struct {
	// Paths is how many paths each session keeps. Default: 20.
	Paths int `json:"paths,omitempty"`
	// Consent is a placeholder (a cookie or header the app sets) that is
	// 1, true, yes or on when the user agreed.
	Consent string `json:"consent,omitempty"`
}

func (c *TrailConfig) paths() int {
	if c == nil || c.Paths <= 0 {
		return 20
	}
	return c.Paths
}

func (h *Handler) defaultSettings() store.Settings {
	st := store.DefaultSettings()
	if h.Tracking != nil {
		st.Tracking = *h.Tracking
	}
	if h.Geolocation != nil {
		st.Geolocation = *h.Geolocation
	}
	if h.IPPrecision != "" {
		st.IPPrecision = h.IPPrecision
	}
	st.ActivityTrail = h.ActivityTrail != nil
	return st
}

// Validate checks the configuration (checkConfig; Provision ran it
// already with the defaults in place).
func (h *Handler) Validate() error {
	c := h.configCopy()
	c.setDefaults()
	return c.checkConfig()
}

// Cleanup releases what Provision acquired.
func (h *Handler) Cleanup() error {
	if h.unregister != nil {
		h.unregister()
	}
	if h.tracker != nil {
		h.tracker.Stop()
	}
	var errs []error
	if h.notifier != nil {
		// Alerts still queued get a few seconds; retries past that are
		// given up (and logged as failed outcomes).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := h.notifier.Close(ctx); err != nil {
			h.logger.Warn("alerts not delivered at shutdown", zap.Error(err))
		}
		cancel()
	}
	if h.storeKey != "" {
		if _, err := stores.Delete(h.storeKey); err != nil {
			errs = append(errs, err)
		}
	}
	if h.geoKey != "" {
		if _, err := geos.Delete(h.geoKey); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
