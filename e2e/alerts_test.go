package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sessions/caddy-sessions/internal/alerttest"
	"github.com/caddy-sessions/caddy-sessions/internal/browsertest"
	"github.com/caddy-sessions/caddy-sessions/internal/shop"
	"github.com/caddy-sessions/caddy-sessions/notify"
)

// Alerts (issue 14) end to end: a new sign-in raises new_device with
// action notify; the alert reaches a real webhook receiver (signed,
// retried after a 500) and a real SMTP server (STARTTLS, AUTH); the
// e-mail's "this wasn't me" link opens in headless Chromium; the page
// changes nothing until its button is pressed, which locks the new
// device out on both Caddy instances; the link works once.

const alertSecret = "webhook-secret-0123456789abcdef"

var notMeLink = regexp.MustCompile(`http://127\.0\.0\.1:\d+/account/not-me\?t=[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+`)

func TestRiskAlertsEndToEnd(t *testing.T) {
	t.Parallel()
	env := redisStore(t)
	const user, password, realm = "alice@shop.test", "pw-alice-7", "risk-alerts"
	up := serve(t, shop.New(shop.Options{Rotate: true, Users: map[string]string{user: password}}))
	hook := alerttest.StartReceiver(t, func(h http.Header, body []byte) error {
		return notify.Verify([]byte(alertSecret), h.Get(notify.SignatureHeader), body, time.Now(), 5*time.Minute)
	}, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError // retried
		}
		return http.StatusOK
	})
	smtp := alerttest.StartSMTP(t, alerttest.SMTPOptions{Username: "mailer", Password: "mailer-pw-1"})
	riskBlock := fmt.Sprintf(`new_device notify
notify {
	webhook %s {
		secret %s
	}
	email {
		smtp %s
		ca_file %s
		username mailer
		password mailer-pw-1
		from "Shop security <security@shop.test>"
	}
	link http://127.0.0.1:%s/account/not-me
}`, hook.URL, alertSecret, smtp.Addr, smtp.CAFile, markSite)
	// Instance A serves the link; B shares the store.
	a := startCaddyJSON(t, riskSite(up, env, realm, riskBlock), withEvents(t))
	b := startCaddy(t, riskSite(up, env, realm, strings.ReplaceAll(riskBlock, markSite, strings.TrimPrefix(a.Site, "http://127.0.0.1:"))))

	laptop := newClient(t, uaChromeWindows, ipLondon)
	laptop.login(a.Site, user, password)
	phone := newClient(t, uaIPhone, ipLondon)
	phone.login(b.Site, user, password)
	wantReply(t, "the phone on A", phone.get(a.Site+"/account"), http.StatusOK, "")

	// The webhook: answered 500, retried, delivered once, signed.
	got := hook.WaitDelivered(t, 1, 15*time.Second)
	if n := len(hook.Requests()); n != 2 {
		t.Errorf("webhook requests = %d, want 2 (a 500, then the retry)", n)
	}
	body := string(got[0].Body)
	for _, want := range []string{`"signals":["new_device"]`, `"user":"` + user + `"`, `"location":"London`, `"link":"http://127.0.0.1:`} {
		if !strings.Contains(body, want) {
			t.Errorf("webhook body lacks %s: %s", want, body)
		}
	}
	if got[0].Header.Get(notify.IdempotencyHeader) == "" || got[0].Header.Get(notify.IdempotencyHeader) != hook.Requests()[0].Header.Get(notify.IdempotencyHeader) {
		t.Error("the retry did not carry the first attempt's idempotency key")
	}

	// The e-mail.
	msg := smtp.WaitMessages(t, 1, 15*time.Second)[0]
	if len(msg.To) != 1 || msg.To[0] != user || !strings.Contains(msg.Header.Get("From"), "security@shop.test") || msg.Subject == "" {
		t.Fatalf("e-mail envelope to %v, From %q, subject %q", msg.To, msg.Header.Get("From"), msg.Subject)
	}
	link := notMeLink.FindString(msg.Text)
	if link == "" || !strings.Contains(msg.HTML, strings.ReplaceAll(link, "&", "&amp;")) {
		t.Fatalf("no \"this wasn't me\" link in both parts:\n%s\n---\n%s", msg.Text, msg.HTML)
	}
	if !strings.HasPrefix(link, a.Site+"/") {
		t.Fatalf("link %s is not on instance A (%s)", link, a.Site)
	}

	// The alerts' delivery is in the admin API of the instance that sent
	// them (B, where the phone logged in).
	eventually(t, 5*time.Second, 50*time.Millisecond, func() (bool, string) {
		status, body := b.adminDo(t, http.MethodGet, userPath(realm, user)+"/alerts")
		s := string(body)
		return status == http.StatusOK && strings.Contains(s, `"channel":"webhook","state":"delivered","attempts":2`) &&
			strings.Contains(s, `"channel":"email","state":"delivered","attempts":1`), fmt.Sprintf("alerts: %d %s", status, body)
	})

	// The link in a browser: the page shows what happened and changes
	// nothing.
	br := browsertest.Start(t)
	tab := br.NewContext(t)
	if r := open(t, tab, link); r.Status != http.StatusOK {
		t.Fatalf("GET the link: %d", r.Status)
	}
	finding := browsertest.Run(t, tab, chromedp.Text(chromedp.ID("finding")))
	for _, want := range []string{"Mobile Safari on iOS", "London", ipLondon} {
		if !strings.Contains(finding, want) {
			t.Errorf("the page's finding lacks %q: %q", want, finding)
		}
	}
	wantReply(t, "the phone after the page was opened", phone.get(b.Site+"/account"), http.StatusOK, "")
	screenshot(t, tab, "not-me.png", int(browsertest.Desktop.Width))

	// The button locks the phone out on both instances; the laptop stays.
	if r := load(t, tab, chromedp.Click(chromedp.ID("not-me"))); r.Status != http.StatusOK {
		t.Fatalf("pressing the button: %d", r.Status)
	}
	result := browsertest.Run(t, tab, chromedp.Text(chromedp.ID("result")))
	if !strings.Contains(result, "That session is signed out") || !strings.Contains(result, "That device is blocked") {
		t.Errorf("result page: %q", result)
	}
	screenshot(t, tab, "not-me-done.png", int(browsertest.Desktop.Width))
	tab.ExpectClean(t)
	t.Logf("the e-mail, %q:\n%s", msg.Subject, msg.Text)
	for _, site := range []*Caddy{a, b} {
		if r := phone.get(site.Site + "/account"); r.Status != http.StatusUnauthorized && r.Status != http.StatusForbidden {
			t.Errorf("the phone on %s after the button: %s, want refused", site.Site, r)
		}
		wantReply(t, "the laptop on "+site.Site, laptop.get(site.Site+"/account"), http.StatusOK, "")
	}
	var reported bool
	for _, v := range a.Violations(t, realm, user) {
		reported = reported || v.Policy == "reported"
	}
	if !reported {
		t.Error("no violation with policy reported")
	}

	// A second use is refused, by the page and by a POST.
	if r := open(t, tab, link); r.Status != http.StatusGone {
		t.Errorf("the link again: %d, want 410", r.Status)
	}
	u, _ := url.Parse(link)
	again := laptop.form(a.Site+u.Path, url.Values{"t": {u.Query().Get("t")}})
	if again.Status != http.StatusGone {
		t.Errorf("a second POST: %s, want 410", again)
	}
	// A forged token is not a link.
	forged := laptop.form(a.Site+u.Path, url.Values{"t": {u.Query().Get("t") + "x"}})
	if forged.Status != http.StatusNotFound {
		t.Errorf("a forged token: %s, want 404", forged)
	}
}
