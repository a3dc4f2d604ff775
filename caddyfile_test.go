package sessions

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func parse(t *testing.T, input string) (*Handler, error) {
	t.Helper()
	// One-line blocks in the table below read better; the Caddyfile
	// wants braces on their own lines.
	input = strings.ReplaceAll(strings.ReplaceAll(input, "{ ", "{\n"), " }", "\n}")
	h := httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(input)}
	m, err := parseCaddyfile(h)
	if err != nil {
		return nil, err
	}
	return m.(*Handler), nil
}

func TestCaddyfileParses(t *testing.T) {
	m, err := parse(t, `sessions {
		store redis://127.0.0.1:6379/2
		realm shop
		user {http.auth.user.id}
		session_cookie wordpress_logged_in_* wordpress_sec_* !wordpress_test_cookie
		login /wp-login.php
		user_field log
		unreadable_login pass
		user_normalize lower upper_first
		login_user cookie wordpress_logged_in_* ^([^|]+)\|
		login_success {
			status 302 303
			header Location /wp-admin*
		}
		logout /logout
		refresh_interval 10s
		idle_timeout 1h
		retention 30d
		geoip /x.mmdb
		device_cookie dev
		secret {env.SECRET}
		on_revoked /login
		self_service /me/sessions/
		fail_closed
		cache_size 5000
	}`)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"store", m.Store.URL, "redis://127.0.0.1:6379/2"},
		{"realm", m.Realm, "shop"},
		{"user", m.User, "{http.auth.user.id}"},
		{"session_cookie", strings.Join(m.SessionCookie, " "), "wordpress_logged_in_* wordpress_sec_* !wordpress_test_cookie"},
		{"unreadable_login", m.UnreadableLogin, "pass"},
		{"user_normalize", strings.Join(m.UserNormalize, " "), "lower upper_first"},
		{"login_user cookie", m.LoginUser.Cookie, "wordpress_logged_in_*"},
		{"login_user pattern", m.LoginUser.Pattern, `^([^|]+)\|`},
		{"user_field", m.UserField, "log"},
		{"login_success status", len(m.LoginSuccess.StatusCode), 2},
		{"login_success header", m.LoginSuccess.Headers.Get("Location"), "/wp-admin*"},
		{"login", len(m.Login), 1},
		{"logout", len(m.Logout), 1},
		{"refresh_interval", time.Duration(m.RefreshInterval), 10 * time.Second},
		{"idle_timeout", time.Duration(m.IdleTimeout), time.Hour},
		{"retention", time.Duration(m.Retention), 30 * 24 * time.Hour},
		{"geoip", m.GeoIP, "/x.mmdb"},
		{"device_cookie", m.DeviceCookie, "dev"},
		{"secret", m.Secret, "{env.SECRET}"},
		{"on_revoked", m.OnRevoked, "/login"},
		{"self_service", m.SelfService, "/me/sessions/"},
		{"fail_closed", m.FailClosed, true},
		{"cache_size", m.CacheSize, 5000},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestCaddyfileStoreBlock(t *testing.T) {
	m, err := parse(t, `sessions {
		user {http.auth.user.id}
		store {
			addrs 10.0.0.1:26379 10.0.0.2:26379
			master_name mymaster
			username u
			password {env.P}
			sentinel_password {env.SP}
			db 3
			tls
			timeout 250ms
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Store
	if len(s.Addrs) != 2 || s.MasterName != "mymaster" || s.Username != "u" || s.Password != "{env.P}" ||
		s.SentinelPassword != "{env.SP}" || s.DB != 3 || !s.TLS || time.Duration(s.Timeout) != 250*time.Millisecond {
		t.Errorf("store block parsed as %+v", s)
	}
}

// TestCaddyfileErrors checks that bad input fails at adapt time with a
// message naming the subdirective and the value.
func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        []string
	}{
		{"bad duration", `sessions { idle_timeout nope }`, []string{"idle_timeout", `"nope"`}},
		{"negative duration", `sessions { refresh_interval -5s }`, []string{"refresh_interval", `"-5s"`}},
		{"zero duration", `sessions { retention 0s }`, []string{"retention", `"0s"`}},
		{"unknown subdirective", `sessions { frobnicate yes }`, []string{"unrecognized subdirective", `"frobnicate"`}},
		{"duplicate", `sessions { realm a
realm b }`, []string{"realm", "more than once"}},
		{"missing value", `sessions { realm }`, []string{"realm", "missing value"}},
		{"extra value", `sessions { realm a b }`, []string{"realm", `"b"`}},
		{"on_revoked status", `sessions { on_revoked 200 }`, []string{"on_revoked", `"200"`}},
		{"on_revoked word", `sessions { on_revoked nope }`, []string{"on_revoked", `"nope"`}},
		{"store scheme", `sessions { store ftp://x }`, []string{"store", `ftp://x`}},
		{"store block option", `sessions { store { bogus 1 } }`, []string{"store", `"bogus"`}},
		{"store db", `sessions { store { addrs a:1
db x } }`, []string{"db", `"x"`}},
		{"cache_size", `sessions { cache_size -1 }`, []string{"cache_size", `"-1"`}},
		{"login without matcher", `sessions { login }`, []string{"login", "matcher"}},
		{"login_success empty", `sessions { login_success { } }`, []string{"login_success"}},
		{"login_success word", `sessions { login_success maybe }`, []string{"login_success", `"maybe"`}},
		{"session_cookie bad name", `sessions { session_cookie "a;b" }`, []string{"session_cookie", `"a;b"`}},
		{"session_cookie star inside", `sessions { session_cookie a*b }`, []string{"session_cookie", `"a*b"`}},
		{"session_cookie empty", `sessions { session_cookie }`, []string{"session_cookie", "missing"}},
		{"login_user kind", `sessions { login_user body x }`, []string{"login_user", `"body"`}},
		{"directive args", `sessions foo`, []string{"wrong argument count"}},
		{"risk: unknown signal", `sessions { risk { stolen_car block } }`, []string{"risk", `"stolen_car"`}},
		{"risk: unknown action", `sessions { risk { new_device shout } }`, []string{"new_device", `"shout"`}},
		{"risk: challenge without url", `sessions { risk { new_device challenge } }`, []string{"new_device", "challenge <url>"}},
		{"risk: url on another action", `sessions { risk { new_device block /x } }`, []string{"new_device", `"block /x"`}},
		{"risk: challenge url scheme", `sessions { risk { new_device challenge javascript:alert(1) } }`, []string{"challenge url", `"javascript:alert(1)"`}},
		{"risk: notify without channels", `sessions { risk { new_device notify } }`, []string{"new_device notify", "no notify block"}},
		{"risk: bad speed", `sessions { risk { speed fast } }`, []string{"speed", `"fast"`}},
		{"risk: twice", "sessions { risk { new_device log\nnew_device block } }", []string{"new_device", "more than once"}},
		{"risk: notify empty", `sessions { risk { notify { } } }`, []string{"notify", "webhook, email"}},
		{"risk: webhook without secret", `sessions { risk { notify { webhook https://h.example/x } } }`, []string{"webhook", "secret"}},
		{"risk: webhook url", "sessions { risk { notify { webhook ftp://h/x { secret 0123456789abcdef01 } } } }", []string{"webhook url", `"ftp://h/x"`}},
		{"risk: webhook url password", "sessions { risk { notify { webhook ftp://u:hunter2@h/x { secret 0123456789abcdef01 } } } }", []string{"webhook url"}},
		{"risk: link relative", "sessions { risk { notify { webhook https://h/x { secret 0123456789abcdef01 }\nlink /not-me } } }", []string{"link", `"/not-me"`}},
		{"risk: email smtp", "sessions { risk { notify { email { smtp mail.example.com\nfrom a@b.c } } } }", []string{"smtp", `"mail.example.com"`}},
		{"risk: email from", "sessions { risk { notify { email { smtp m:25\nfrom nobody } } } }", []string{"from", `"nobody"`}},
		{"risk: notify option", "sessions { risk { notify { pager on } } }", []string{"notify", `"pager"`}},
		{"device_cookie_domain", `sessions { user {x}
device_cookie_domain 10.0.0.1 }`, []string{"device_cookie_domain", `"10.0.0.1"`}},
		{"device_cookie_domain TLD", `sessions { user {x}
device_cookie_domain com }`, []string{"device_cookie_domain", `"com"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.input)
			if err == nil {
				t.Fatalf("no error for %s", tc.input)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows a URL's password", err)
			}
		})
	}
}

// TestProvisionErrors checks what only Provision can know.
func TestProvisionErrors(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	for _, tc := range []struct {
		name string
		h    Handler
		want []string
	}{
		{"geoip missing", Handler{User: "{x}", GeoIP: "/nonexistent/City.mmdb"}, []string{"geoip", "/nonexistent/City.mmdb"}},
		{"geoip corrupt", Handler{User: "{x}", GeoIP: "tracker/testdata/geoip/GeoIP2-City-Test-Invalid-Node-Count.mmdb"}, []string{"geoip", "Invalid-Node-Count"}},
		{"secret short", Handler{User: "{x}", Secret: "short"}, []string{"secret", "16"}},
		{"secret empty env", Handler{User: "{x}", Secret: "{env.CADDY_SESSIONS_UNSET_TEST_VAR}"}, []string{"secret", "expands to nothing"}},
		{"redis needs secret", Handler{User: "{x}", Store: &StoreConfig{URL: "redis://127.0.0.1:1/0"}}, []string{"secret", "required"}},
		{"idle shorter than refresh", Handler{User: "{x}", IdleTimeout: caddy.Duration(time.Second), RefreshInterval: caddy.Duration(time.Minute)}, []string{"idle_timeout", "1s"}},
		{"store not memory", Handler{User: "{x}", Store: &StoreConfig{URL: "mem"}}, []string{"store", `"mem"`}},
		{"unreadable_login", Handler{User: "{x}", UnreadableLogin: "ignore"}, []string{"unreadable_login", `"ignore"`}},
		{"user_normalize", Handler{User: "{x}", UserNormalize: []string{"upper"}}, []string{"user_normalize", `"upper"`}},
		{"login_user pattern", Handler{User: "{x}", LoginUser: &LoginUser{Header: "X-User", Pattern: "("}}, []string{"login_user", `"("`}},
		{"login_user both", Handler{User: "{x}", LoginUser: &LoginUser{Header: "X-User", Cookie: "u"}}, []string{"login_user", "one of them"}},
		{"session_cookie JSON", Handler{SessionCookie: CookieNames{"a b"}}, []string{"session_cookie", `"a b"`}},
		{"risk: JSON unknown signal", Handler{User: "{x}", Risk: &RiskConfig{Signals: map[string]*RiskAction{"x": {Action: "log"}}}}, []string{"risk", `"x"`}},
		{"risk: JSON no action", Handler{User: "{x}", Risk: &RiskConfig{Signals: map[string]*RiskAction{"new_device": nil}}}, []string{"new_device", "no action"}},
		{"risk: negative speed", Handler{User: "{x}", Risk: &RiskConfig{SpeedKmh: -1}}, []string{"speed_kmh"}},
		{"risk: short webhook secret", Handler{User: "{x}", Risk: &RiskConfig{Notify: &NotifyConfig{Webhook: &WebhookConfig{URL: "https://h.example/x", Secret: "{env.CADDY_SESSIONS_UNSET_TEST_VAR}"}}}}, []string{"webhook secret", "16 bytes"}},
		{"risk: bad template", Handler{User: "{x}", Risk: &RiskConfig{Notify: &NotifyConfig{Email: &EmailConfig{SMTP: "127.0.0.1:25", TLS: "none", From: "a@b.example", Subject: "{{.Nope"}}}}, []string{"notify", "subject"}},
		{"risk: missing template file", Handler{User: "{x}", Risk: &RiskConfig{Notify: &NotifyConfig{Email: &EmailConfig{SMTP: "127.0.0.1:25", TLS: "none", From: "a@b.example", TextFile: "/nonexistent/alert.txt"}}}}, []string{"text_file", "/nonexistent/alert.txt"}},
		{"two success rules", Handler{SessionCookie: CookieNames{"sid"}, LoginSuccessNewCookie: true, LoginSuccess: &caddyhttp.ResponseMatcher{StatusCode: []int{302}}}, []string{"login_success", "not both"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
			defer cancel()
			h := tc.h
			err := h.Provision(ctx)
			_ = h.Cleanup()
			if err == nil {
				t.Fatal("Provision succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	if err := (&Handler{}).Validate(); err == nil || !strings.Contains(err.Error(), "user, session_cookie") {
		t.Errorf("Validate without identity: %v", err)
	}
	if err := (&Handler{User: "{x}", SelfService: "me"}).Validate(); err == nil || !strings.Contains(err.Error(), `"me"`) {
		t.Errorf("Validate self_service: %v", err)
	}
	if err := (&Handler{User: "{x}"}).Validate(); err != nil {
		t.Errorf("Validate minimal: %v", err)
	}
}

// TestSameErrorForJSONAndCaddyfile: the meaning of a value is checked in
// one place, so a Caddyfile and a JSON config with the same bad value get
// the same message.
func TestSameErrorForJSONAndCaddyfile(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	for _, c := range []struct {
		caddyfile string
		h         Handler
	}{
		{`sessions { user {x}
ip_precision half }`, Handler{User: "{x}", IPPrecision: "half"}},
		{`sessions { user {x}
time_zone Mars/Olympus }`, Handler{User: "{x}", TimeZone: "Mars/Olympus"}},
		{`sessions { user {x}
on_revoked 200 }`, Handler{User: "{x}", OnRevoked: "200"}},
		{`sessions { session_cookie a;b }`, Handler{SessionCookie: CookieNames{"a;b"}}},
		{`sessions { user {x}
store ftp://x }`, Handler{User: "{x}", Store: &StoreConfig{URL: "ftp://x"}}},
		{`sessions { user {x}
idle_timeout 1s
refresh_interval 1m }`, Handler{User: "{x}", IdleTimeout: caddy.Duration(time.Second), RefreshInterval: caddy.Duration(time.Minute)}},
		{`sessions { user {x}
unreadable_login maybe }`, Handler{User: "{x}", UnreadableLogin: "maybe"}},
		{`sessions { idle_timeout 1h }`, Handler{IdleTimeout: caddy.Duration(time.Hour)}},
	} {
		_, ferr := parse(t, c.caddyfile)
		ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
		h := c.h
		perr := h.Provision(ctx)
		_ = h.Cleanup()
		cancel()
		if ferr == nil || perr == nil {
			t.Errorf("%q: Caddyfile error %v, JSON error %v; want both", c.caddyfile, ferr, perr)
			continue
		}
		if !strings.HasSuffix(ferr.Error(), perr.Error()) && !strings.Contains(ferr.Error(), perr.Error()+",") {
			t.Errorf("%q:\n Caddyfile: %v\n JSON:      %v", c.caddyfile, ferr, perr)
		}
	}
}

// TestConfigCopyHasEveryField: the copy checkConfig runs on (for the
// Caddyfile and Validate) holds every configuration field, so no field's
// check is skipped there.
func TestConfigCopyHasEveryField(t *testing.T) {
	var h Handler
	v := reflect.ValueOf(&h).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		before := reflect.ValueOf(*h.configCopy()).Field(i).IsZero()
		fv := v.Field(i)
		switch fv.Kind() {
		case reflect.String:
			fv.SetString("x")
		case reflect.Bool:
			fv.SetBool(true)
		case reflect.Int, reflect.Int64:
			fv.SetInt(1)
		case reflect.Pointer:
			fv.Set(reflect.New(fv.Type().Elem()))
		case reflect.Slice:
			fv.Set(reflect.MakeSlice(fv.Type(), 1, 1))
		case reflect.Map:
			fv.Set(reflect.MakeMap(fv.Type()))
		default:
			t.Fatalf("field %s: kind %s not handled by this test", f.Name, fv.Kind())
		}
		if !before || reflect.ValueOf(*h.configCopy()).Field(i).IsZero() {
			t.Errorf("configCopy does not copy %s", f.Name)
		}
	}
}
