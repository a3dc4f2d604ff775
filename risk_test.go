package sessions

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

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

func TestCaddyfileRiskErrors(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        []string
	}{
		{"unknown signal", `sessions { risk { stolen_car block } }`, []string{"risk", `"stolen_car"`}},
		{"unknown action", `sessions { risk { new_device shout } }`, []string{"new_device", `"shout"`}},
		{"challenge without url", `sessions { risk { new_device challenge } }`, []string{"new_device", "challenge <url>"}},
		{"url on another action", `sessions { risk { new_device block /x } }`, []string{"new_device", `"block /x"`}},
		{"challenge url scheme", `sessions { risk { new_device challenge javascript:alert(1) } }`, []string{"challenge url", `"javascript:alert(1)"`}},
		{"notify without channels", `sessions { risk { new_device notify } }`, []string{"new_device notify", "no notify block"}},
		{"bad speed", `sessions { risk { speed fast } }`, []string{"speed", `"fast"`}},
		{"twice", "sessions { risk { new_device log\nnew_device block } }", []string{"new_device", "more than once"}},
		{"notify empty", `sessions { risk { notify { } } }`, []string{"notify", "webhook, email"}},
		{"webhook without secret", `sessions { risk { notify { webhook https://h.example/x } } }`, []string{"webhook", "secret"}},
		{"webhook url", "sessions { risk { notify { webhook ftp://h/x { secret 0123456789abcdef01 } } } }", []string{"webhook url", `"ftp://h/x"`}},
		{"webhook url password", "sessions { risk { notify { webhook ftp://u:hunter2@h/x { secret 0123456789abcdef01 } } } }", []string{"webhook url"}},
		{"link relative", "sessions { risk { notify { webhook https://h/x { secret 0123456789abcdef01 }\nlink /not-me } } }", []string{"link", `"/not-me"`}},
		{"email smtp", "sessions { risk { notify { email { smtp mail.example.com\nfrom a@b.c } } } }", []string{"smtp", `"mail.example.com"`}},
		{"email from", "sessions { risk { notify { email { smtp m:25\nfrom nobody } } } }", []string{"from", `"nobody"`}},
		{"notify option", "sessions { risk { notify { pager on } } }", []string{"notify", `"pager"`}},
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
				t.Errorf("error %q shows the URL's password", err)
			}
		})
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
