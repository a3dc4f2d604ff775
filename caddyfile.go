package sessions

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sessions/caddy-sessions/admin"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("sessions", parseCaddyfile)
	// After the auth directives, so the identity they set is available.
	httpcaddyfile.RegisterDirectiveOrder("sessions", httpcaddyfile.After, "forward_auth")
}

// parseCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	sessions [<matcher>] {
//		store memory | <redis-url> | {
//			addrs <host:port...>
//			master_name <name>
//			cluster
//			username <user>
//			password <password>
//			sentinel_password <password>
//			db <n>
//			tls
//			timeout <duration>
//		}
//		realm <name>
//		user <placeholder>
//		session_cookie <name[*]|!name[*]...>
//		login <matcher>
//		user_field <field>
//		unreadable_login refuse|pass
//		user_normalize lower|upper_first...
//		login_user cookie|header <name> [<regexp>]
//		login_success new_cookie | {
//			status <code...>
//			header <field> [<value>]
//		}
//		logout <matcher>
//		refresh_interval <duration>
//		idle_timeout <duration>
//		retention <duration>
//		geoip <path>
//		device_cookie <name>
//		secret <secret>
//		on_revoked <status|path|url>
//		self_service <path>
//		fail_closed
//		cache_size <n>
//		restrict {
//			max_ips <n> <window> [block|log]
//			ip_prefix <v4 bits> [<v6 bits>]
//			max_devices <n> <window> [block|log]
//			max_sessions <n> [block|log|evict_oldest]
//		}
//		tracking on|off
//		geolocation on|off
//		ip_precision full|truncated|none
//		activity_trail {
//			paths <n>
//			consent <placeholder>
//		}
//		impersonation <placeholder>
//		time_zone <IANA zone>
//	}
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.unmarshal(h.Dispenser, func(sub string) (caddy.ModuleMap, error) {
		set, ok, err := h.MatcherToken()
		if err != nil {
			return nil, err
		}
		if !ok || set == nil {
			return nil, h.Errf("%s: needs a matcher (@name, /path or *)", sub)
		}
		return set, nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler. Outside a site
// (no named matchers) login and logout take a path matcher only.
func (m *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return m.unmarshal(d, func(sub string) (caddy.ModuleMap, error) {
		if !d.NextArg() {
			return nil, d.ArgErr()
		}
		return caddy.ModuleMap{"path": caddyconfig.JSON(caddyhttp.MatchPath{d.Val()}, nil)}, nil
	})
}

func (m *Handler) unmarshal(d *caddyfile.Dispenser, matcher func(sub string) (caddy.ModuleMap, error)) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		sub := d.Val()
		if seen[sub] {
			return d.Errf("%s: specified more than once", sub)
		}
		seen[sub] = true
		var err error
		switch sub {
		case "store":
			m.Store, err = parseStore(d)
		case "realm":
			err = oneArg(d, &m.Realm)
		case "user":
			err = oneArg(d, &m.User)
		case "session_cookie":
			m.SessionCookie = d.RemainingArgs()
			if len(m.SessionCookie) == 0 {
				return d.Err("session_cookie: missing name")
			}
		case "unreadable_login":
			err = oneArg(d, &m.UnreadableLogin)
		case "user_normalize":
			m.UserNormalize = d.RemainingArgs()
			if len(m.UserNormalize) == 0 {
				return d.Err("user_normalize: missing value (lower, upper_first)")
			}
		case "login_user":
			m.LoginUser, err = parseLoginUser(d)
		case "user_field":
			err = oneArg(d, &m.UserField)
		case "geoip":
			err = oneArg(d, &m.GeoIP)
		case "device_cookie":
			err = oneArg(d, &m.DeviceCookie)
		case "device_cookie_domain":
			err = oneArg(d, &m.DeviceCookieDomain)
		case "secret":
			err = oneArg(d, &m.Secret)
		case "on_revoked":
			err = oneArg(d, &m.OnRevoked)
		case "self_service":
			err = parseSelfService(d, m)
		case "refresh_interval":
			err = durationArg(d, &m.RefreshInterval)
		case "idle_timeout":
			err = durationArg(d, &m.IdleTimeout)
		case "retention":
			err = durationArg(d, &m.Retention)
		case "cache_size":
			var v string
			if err = oneArg(d, &v); err == nil {
				n, convErr := strconv.Atoi(v)
				if convErr != nil || n < 0 {
					return d.Errf("cache_size: %q is not a non-negative number", v)
				}
				m.CacheSize = n
			}
		case "fail_closed":
			if d.NextArg() {
				return d.ArgErr()
			}
			m.FailClosed = true
		case "login", "logout":
			set, merr := matcher(sub)
			if merr != nil {
				return merr
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			raw := caddyhttp.RawMatcherSets{set}
			if sub == "login" {
				m.Login = raw
			} else {
				m.Logout = raw
			}
		case "tracking":
			m.Tracking, err = onOff(d)
		case "geolocation":
			m.Geolocation, err = onOff(d)
		case "ip_precision":
			err = oneArg(d, &m.IPPrecision)
		case "activity_trail":
			m.ActivityTrail, err = parseTrail(d)
		case "impersonation":
			err = oneArg(d, &m.Impersonation)
		case "time_zone":
			err = oneArg(d, &m.TimeZone)
		case "restrict":
			m.Restrict, err = parseRestrict(d)
		case "risk":
			m.Risk, err = parseRisk(d)
		case "login_success":
			if d.NextArg() {
				if d.Val() != "new_cookie" || d.NextArg() {
					return d.Errf("login_success: %q: use new_cookie, or a block with status and header", d.Val())
				}
				m.LoginSuccessNewCookie = true
				continue
			}
			matchers := map[string]caddyhttp.ResponseMatcher{}
			if err := caddyhttp.ParseNamedResponseMatcher(d.NewFromNextSegment(), matchers); err != nil {
				return d.Errf("login_success: %v", err)
			}
			rm := matchers["login_success"]
			if len(rm.StatusCode) == 0 && len(rm.Headers) == 0 {
				return d.Err("login_success: needs status or header")
			}
			m.LoginSuccess = &rm
		default:
			return d.Errf("unrecognized subdirective %q", sub)
		}
		if err != nil {
			return err
		}
	}
	// Meaning is checked where JSON configs are checked too, so both get
	// the same error.
	c := m.configCopy()
	c.setDefaults()
	if err := c.checkConfig(); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

// parseLoginUser reads: login_user cookie|header <name> [<pattern>]
func parseLoginUser(d *caddyfile.Dispenser) (*LoginUser, error) {
	args := d.RemainingArgs()
	if len(args) < 2 || len(args) > 3 {
		return nil, d.Err("login_user: cookie|header <name> [<pattern>]")
	}
	lu := &LoginUser{}
	switch args[0] {
	case "cookie":
		lu.Cookie = args[1]
	case "header":
		lu.Header = args[1]
	default:
		return nil, d.Errf("login_user: %q is not cookie or header", args[0])
	}
	if len(args) == 3 {
		lu.Pattern = args[2]
	}
	return lu, nil
}

// parseSelfService reads
//
//	self_service <path> {
//		title <text>
//		back <url> [<label>]
//	}
func parseSelfService(d *caddyfile.Dispenser, m *Handler) error {
	if err := oneArg(d, &m.SelfService); err != nil {
		return err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if m.SelfServicePage == nil {
			m.SelfServicePage = new(admin.SelfPage)
		}
		switch d.Val() {
		case "title":
			if err := oneArg(d, &m.SelfServicePage.Title); err != nil {
				return err
			}
		case "back":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Errf("back: want <url> [<label>], got %d values", len(args))
			}
			m.SelfServicePage.BackURL = args[0]
			if len(args) == 2 {
				m.SelfServicePage.BackLabel = args[1]
			}
		default:
			return d.Errf("self_service: unknown subdirective %q", d.Val())
		}
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	sub := d.Val()
	if !d.NextArg() {
		return d.Errf("%s: missing value", sub)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.Errf("%s: one value expected, got also %q", sub, d.Val())
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	sub := d.Val()
	var v string
	if err := oneArg(d, &v); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return d.Errf("%s: bad duration %q: %v", sub, v, err)
	}
	if dur <= 0 {
		return d.Errf("%s: duration %q must be positive", sub, v)
	}
	*dst = caddy.Duration(dur)
	return nil
}

func parseStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	cfg := &StoreConfig{}
	if d.NextArg() {
		cfg.URL = d.Val()
		if d.NextArg() {
			return nil, d.Errf("store: one value expected, got also %q", d.Val())
		}
		return cfg, nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		var err error
		switch sub {
		case "addrs":
			cfg.Addrs = d.RemainingArgs()
			if len(cfg.Addrs) == 0 {
				return nil, d.Errf("store addrs: missing value")
			}
		case "url":
			err = oneArg(d, &cfg.URL)
		case "master_name":
			err = oneArg(d, &cfg.MasterName)
		case "username":
			err = oneArg(d, &cfg.Username)
		case "password":
			err = oneArg(d, &cfg.Password)
		case "sentinel_password":
			err = oneArg(d, &cfg.SentinelPassword)
		case "cluster":
			cfg.Cluster = true
		case "tls":
			cfg.TLS = true
		case "db":
			var v string
			if err = oneArg(d, &v); err == nil {
				n, convErr := strconv.Atoi(v)
				if convErr != nil || n < 0 {
					return nil, d.Errf("store db: %q is not a database number", v)
				}
				cfg.DB = n
			}
		case "timeout":
			err = durationArg(d, &cfg.Timeout)
		default:
			return nil, d.Errf("store: unrecognized option %q", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(cfg.Addrs) == 0 && cfg.URL == "" {
		return nil, d.Err("store: needs memory, a redis URL, or a block with addrs")
	}
	return cfg, nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)

func onOff(d *caddyfile.Dispenser) (*bool, error) {
	sub := d.Val()
	var v string
	if err := oneArg(d, &v); err != nil {
		return nil, err
	}
	switch v {
	case "on":
		b := true
		return &b, nil
	case "off":
		b := false
		return &b, nil
	}
	return nil, d.Errf("%s: %q is not on or off", sub, v)
}

func parseTrail(d *caddyfile.Dispenser) (*TrailConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	cfg := &TrailConfig{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
		case "paths":
			var v string
			if err := oneArg(d, &v); err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return nil, d.Errf("activity_trail paths: %q is not a number from 1 to 1000", v)
			}
			cfg.Paths = n
		case "consent":
			if err := oneArg(d, &cfg.Consent); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("activity_trail: unrecognized option %q", sub)
		}
	}
	if cfg.Consent == "" {
		return nil, d.Err("activity_trail: consent <placeholder> is required: paths are kept only with the user's consent")
	}
	return cfg, nil
}
