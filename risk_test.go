package sessions

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/risk"
)

func TestCaddyfileRiskBlock(t *testing.T) {
	m, err := parse(t, `sessions {
		user {x}
		risk {
			cookie_moved revoke
			new_device notify
			new_country log
			impossible_travel challenge /login?next={http.request.uri}
			distant_concurrent off
			speed 1000km/h
			distance_floor 150
			concurrent_distance 800km
			notify {
				webhook https://hooks.example.com/s {
					secret {env.HOOK_SECRET}
					timeout 5s
				}
				email {
					smtp smtp.example.com:587
					tls starttls
					username mailer
					password {env.SMTP_PASSWORD}
					from "Shop <security@shop.example.com>"
					to {http.request.header.X-Email}
					subject "New sign-in at the shop"
				}
				link https://shop.example.com/account/not-me
				link_ttl 3d
				throttle 30m
				queue_size 50
			}
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	rc := m.Risk
	b, _ := json.Marshal(rc.Signals)
	if string(b) != `{"cookie_moved":{"action":"revoke"},"distant_concurrent":{"action":"off"},"impossible_travel":{"action":"challenge","url":"/login?next={http.request.uri}"},"new_country":{"action":"log"},"new_device":{"action":"notify"}}` {
		t.Errorf("signals = %s", b)
	}
	if rc.SpeedKmh != 1000 || rc.FloorKm != 150 || rc.ConcurrentKm != 800 {
		t.Errorf("thresholds = %v %v %v", rc.SpeedKmh, rc.FloorKm, rc.ConcurrentKm)
	}
	n := rc.Notify
	if n == nil || n.Webhook == nil || n.Webhook.Secret != "{env.HOOK_SECRET}" || time.Duration(n.Webhook.Timeout) != 5*time.Second ||
		n.Email == nil || n.Email.SMTP != "smtp.example.com:587" || n.Email.From != "Shop <security@shop.example.com>" || n.Email.Subject != "New sign-in at the shop" ||
		n.Link != "https://shop.example.com/account/not-me" || time.Duration(n.LinkTTL) != 72*time.Hour || time.Duration(n.Throttle) != 30*time.Minute || n.QueueSize != 50 {
		t.Errorf("notify = %+v, webhook %+v, email %+v", n, n.Webhook, n.Email)
	}
	p := rc.policy()
	if len(p.Actions) != 4 || p.Actions[risk.DistantConcurrent] != "" || p.Actions[risk.ImpossibleTravel] != tracker.RiskChallenge || p.Thresholds.SpeedKmh != 1000 {
		t.Errorf("tracker policy = %+v", p)
	}
	if n.linkPath() != "/account/not-me" {
		t.Errorf("link path = %q", n.linkPath())
	}
}

// TestNotMeLinkTokens: a link verifies; a changed payload, signature,
// another secret or an expired link does not.
func TestNotMeLinkTokens(t *testing.T) {
	keys, err := tracker.NewKeyring([]byte("0123456789abcdef-links"))
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{keys: keys, Risk: &RiskConfig{Notify: &NotifyConfig{Link: "https://shop.example/not-me"}}}
	exp := time.Now().Add(time.Hour)
	link := h.notMeLink("shop", "alice", "f1", "Europe/London", exp)
	token := strings.TrimPrefix(link, "https://shop.example/not-me?t=")
	c, err := h.readNotMe(token, time.Now())
	if err != nil || c.R != "shop" || c.U != "alice" || c.F != "f1" || c.Z != "Europe/London" || c.X != exp.Unix() {
		t.Fatalf("readNotMe = %+v, %v", c, err)
	}
	payload, sig, _ := strings.Cut(token, ".")
	other, _ := tracker.NewKeyring([]byte("another secret, 16+ bytes"))
	for name, tok := range map[string]string{
		"payload changed":   strings.Replace(payload, payload[5:6], string(rune(payload[5]^1)), 1) + "." + sig,
		"signature changed": payload + "." + strings.Repeat("A", len(sig)),
		"no signature":      payload,
		"another secret":    payload + "." + other.SignLink(payload),
		"empty":             "",
		"huge":              strings.Repeat("a", maxLinkToken) + "." + sig,
	} {
		if _, err := h.readNotMe(tok, time.Now()); err != errLinkInvalid {
			t.Errorf("%s: readNotMe = %v, want errLinkInvalid", name, err)
		}
	}
	if _, err := h.readNotMe(token, exp.Add(2*time.Second)); err != errLinkExpired {
		t.Errorf("after expiry: %v, want errLinkExpired", err)
	}
}

// TestDeviceCookieDomain: the Domain is set for hosts within it only.
func TestDeviceCookieDomain(t *testing.T) {
	h := &Handler{DeviceCookieDomain: ".Example.com"}
	for host, want := range map[string]string{
		"example.com": "example.com", "shop.example.com:8443": "example.com", "WWW.EXAMPLE.COM.": "example.com",
		"example.org": "", "badexample.com": "", "127.0.0.1:2015": "",
	} {
		if got := h.deviceCookieDomain(host); got != want {
			t.Errorf("deviceCookieDomain(%q) = %q, want %q", host, got, want)
		}
	}
	if got := (&Handler{}).deviceCookieDomain("shop.example.com"); got != "" {
		t.Errorf("without device_cookie_domain: %q", got)
	}
}

// TestRecipientIsNotExpandedTwice: the user id goes into the recipient
// after the template's placeholders are expanded, as text: a login name
// holding a placeholder never reaches the replacer.
func TestRecipientIsNotExpandedTwice(t *testing.T) {
	t.Setenv("CADDY_SESSIONS_TEST_SECRET", "s3cr3t")
	repl := caddy.NewReplacer()
	repl.Set("http.request.header.X-Email", "bob@shop.example")
	ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl)
	for _, c := range []struct{ to, user, want string }{
		{"{http.sessions.user}", "{env.CADDY_SESSIONS_TEST_SECRET}@evil.example", "{env.CADDY_SESSIONS_TEST_SECRET}@evil.example"},
		{"{http.sessions.user}@shop.example", "alice", "alice@shop.example"},
		{"{http.request.header.X-Email}", "alice", "bob@shop.example"},
		{"", "alice@shop.example", "alice@shop.example"},
		{"", "alice", ""},
		{"", "Alice <alice@shop.example>", ""},
	} {
		if got := recipient(ctx, c.to, c.user); got != c.want {
			t.Errorf("recipient(%q, %q) = %q, want %q", c.to, c.user, got, c.want)
		}
	}
}

// TestAlertBudget: n per key per window, keys apart, a new window anew.
func TestAlertBudget(t *testing.T) {
	b := newBudget(2, time.Hour)
	t0 := time.Now()
	for i, want := range []bool{true, true, false, false} {
		if got := b.take("alice", t0.Add(time.Duration(i)*time.Minute)); got != want {
			t.Errorf("take #%d = %v, want %v", i, got, want)
		}
	}
	if !b.take("bob", t0) {
		t.Error("another user shares alice's budget")
	}
	if !b.take("alice", t0.Add(time.Hour)) {
		t.Error("a new window did not start a new budget")
	}
	for i := range maxBudgetKeys + 10 {
		b.take(fmt.Sprint("user", i), t0)
	}
	if n := len(b.keys); n > maxBudgetKeys {
		t.Errorf("%d keys held, bound %d", n, maxBudgetKeys)
	}
}

// TestReplaceAnswerKeepsOnlyTheModulesCookies: a login answer a risk
// action replaces reaches the browser without the app's cookies (session
// or remember-me) and body, with the module's device cookie.
func TestReplaceAnswerKeepsOnlyTheModulesCookies(t *testing.T) {
	rec := httptest.NewRecorder()
	set := &cookieSet{}
	cw := newCookieWatch(rec, set)
	defer cw.release()
	cw.Header().Add("Set-Cookie", "sessions_device=dev.sig; Path=/; HttpOnly")
	cw.onHeader = func() { cw.replaceAnswer(http.StatusForbidden, "", "sessions_device") }
	cw.Header().Add("Set-Cookie", "shop_session=abc; Path=/")
	cw.Header().Add("Set-Cookie", "remember_me=long-lived; Path=/; Max-Age=2592000")
	cw.Header().Set("Content-Length", "12")
	cw.WriteHeader(http.StatusOK)
	_, _ = cw.Write([]byte("hello alice!"))
	if rec.Code != http.StatusForbidden || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "" {
		t.Fatalf("answer %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	if got := rec.Header().Values("Set-Cookie"); len(got) != 1 || !strings.HasPrefix(got[0], "sessions_device=") {
		t.Errorf("Set-Cookie = %q, want the device cookie only", got)
	}
}

// TestSecondDeviceCookie: with two device cookies, a stale host-only one
// first and a valid one on device_cookie_domain, the valid one is the
// request's device.
func TestSecondDeviceCookie(t *testing.T) {
	keys, err := tracker.NewKeyring([]byte("0123456789abcdef-devices"))
	if err != nil {
		t.Fatal(err)
	}
	old, _ := tracker.NewKeyring([]byte("the secret before, 16+ bytes"))
	_, stale := old.NewDevice()
	id, valid := keys.NewDevice()
	h := &Handler{keys: keys, DeviceCookie: "sessions_device", User: "{x}"}
	for _, c := range []struct{ header, want string }{
		{"sessions_device=" + stale + "; sessions_device=" + valid, id},
		{"sessions_device=" + valid + "; sessions_device=" + stale, id},
		{"sessions_device=" + stale, ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://shop.example/", nil)
		r.Header.Set("Cookie", c.header)
		repl := caddy.NewReplacer()
		repl.Set("x", "alice")
		got := h.identify(r, repl)
		gotID, _ := keys.VerifyDevice(got.cookies.device)
		if gotID != c.want {
			t.Errorf("Cookie %q: device %q, want %q", c.header, gotID, c.want)
		}
	}
}
