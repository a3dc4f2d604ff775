package sessions

// This file owns alerts: the risk block's notify block (webhook, e-mail,
// the "this wasn't me" link), the notifier made of it, and the alert sent
// for a finding. The link's page is notme.go's.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sessions/caddy-sessions/notify"
	"github.com/caddy-sessions/caddy-sessions/tracker"
)

// NotifyConfig says where alerts go: a webhook, e-mail to the user, or
// both; and where the "this wasn't me" page is.
type NotifyConfig struct {
	Webhook *WebhookConfig `json:"webhook,omitempty"`
	Email   *EmailConfig   `json:"email,omitempty"`
	// Link is the absolute URL of the "this wasn't me" page every alert
	// links to; this handler answers its path on its site. Without it,
	// alerts carry no link.
	Link string `json:"link,omitempty"`
	// LinkTTL is how long a link works. Default 7d.
	LinkTTL caddy.Duration `json:"link_ttl,omitempty"`
	// Throttle: at most one alert per user and device per window.
	// Default 1h.
	Throttle caddy.Duration `json:"throttle,omitempty"`
	// QueueSize bounds the alerts waiting for delivery. Default 1000.
	QueueSize int `json:"queue_size,omitempty"`
}

// WebhookConfig is a JSON POST of each alert, signed with HMAC-SHA256
// over "<unix time>.<body>" under Secret in the Sessions-Signature header.
type WebhookConfig struct {
	URL string `json:"url"`
	// Secret signs the requests; placeholders ({env.*}, {file.*})
	// expanded at Provision. At least 16 bytes.
	Secret  string         `json:"secret"`
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// EmailConfig is e-mail to the user over SMTP submission.
type EmailConfig struct {
	// SMTP is the server, host:port.
	SMTP string `json:"smtp"`
	// TLS is starttls (default), tls (implicit) or none (loopback only).
	TLS string `json:"tls,omitempty"`
	// CAFile, if set, is a PEM file of the CAs trusted for the server's
	// certificate instead of the system's.
	CAFile   string `json:"ca_file,omitempty"`
	Username string `json:"username,omitempty"`
	// Password: placeholders expanded at Provision.
	Password string `json:"password,omitempty"`
	From     string `json:"from"`
	// To is the recipient, placeholders expanded per request
	// ({http.sessions.user} is the user id). Default: the user id, when
	// it is an e-mail address.
	To string `json:"to,omitempty"`
	// Subject, Text and HTML replace the built-in templates (Go
	// templates; see README); *File variants read them from files.
	Subject  string `json:"subject,omitempty"`
	Text     string `json:"text,omitempty"`
	HTML     string `json:"html,omitempty"`
	TextFile string `json:"text_file,omitempty"`
	HTMLFile string `json:"html_file,omitempty"`
}

// defaultLinkTTL is how long a "this wasn't me" link works by default.
const defaultLinkTTL = 7 * 24 * time.Hour

// linkPath is the path this handler answers for the link, "" without one.
func (nc *NotifyConfig) linkPath() string {
	if nc == nil || nc.Link == "" {
		return ""
	}
	u, err := url.Parse(nc.Link)
	if err != nil {
		return ""
	}
	return u.Path
}

// perUserAlerts is how many alerts a user gets per throttle window, over
// all devices.
const perUserAlerts = 5

// throttle is the throttle window, default 1 h.
func (nc *NotifyConfig) throttle() time.Duration {
	if nc.Throttle <= 0 {
		return time.Hour
	}
	return time.Duration(nc.Throttle)
}

func (nc *NotifyConfig) linkTTL() time.Duration {
	if nc == nil || nc.LinkTTL <= 0 {
		return defaultLinkTTL
	}
	return time.Duration(nc.LinkTTL)
}

// check names the field and value at fault.
func (nc *NotifyConfig) check() error {
	if nc.Webhook == nil && nc.Email == nil {
		return errors.New("risk: notify: configure a webhook, email, or both")
	}
	if nc.Link != "" {
		u, err := url.Parse(nc.Link)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !strings.HasPrefix(u.Path, "/") || len(u.Path) < 2 || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("risk: notify: link %q must be an absolute http(s) URL with a path and no query, such as https://shop.example.com/sessions/not-me", nc.Link)
		}
	}
	for _, d := range []struct {
		name string
		v    caddy.Duration
	}{{"link_ttl", nc.LinkTTL}, {"throttle", nc.Throttle}} {
		if d.v < 0 {
			return fmt.Errorf("risk: notify: %s %v must not be negative", d.name, time.Duration(d.v))
		}
	}
	if w := nc.Webhook; w != nil {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("risk: notify: webhook url %q must be an absolute http(s) URL", redactURL(w.URL))
		}
	}
	if e := nc.Email; e != nil {
		if _, _, err := net.SplitHostPort(e.SMTP); err != nil {
			return fmt.Errorf("risk: notify: email smtp %q must be host:port", e.SMTP)
		}
		if _, err := mail.ParseAddress(e.From); err != nil {
			return fmt.Errorf("risk: notify: email from %q is not an address: %v", e.From, err)
		}
	}
	return nil
}

// newNotifier builds the notifier of the block, expanding its secrets.
func (nc *NotifyConfig) newNotifier(onOutcome func(notify.Outcome)) (*notify.Notifier, error) {
	repl := caddy.NewReplacer()
	o := notify.Options{QueueSize: nc.QueueSize, ThrottleWindow: time.Duration(nc.Throttle), OnOutcome: onOutcome}
	if w := nc.Webhook; w != nil {
		o.Webhook = &notify.Webhook{URL: w.URL, Secret: []byte(repl.ReplaceAll(w.Secret, "")), Timeout: time.Duration(w.Timeout)}
		if len(o.Webhook.Secret) < 16 {
			return nil, errors.New("risk: notify: webhook secret must be at least 16 bytes (after placeholders)")
		}
	}
	if e := nc.Email; e != nil {
		host, port, _ := net.SplitHostPort(e.SMTP)
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("risk: notify: email smtp %q: bad port", e.SMTP)
		}
		m := &notify.Mailer{
			Host: host, Port: p, TLS: e.TLS, Username: repl.ReplaceAll(e.Username, ""), Password: repl.ReplaceAll(e.Password, ""),
			From: e.From, Subject: e.Subject, Text: e.Text, HTML: e.HTML,
		}
		for _, f := range []struct {
			name, path string
			dst        *string
		}{{"text_file", e.TextFile, &m.Text}, {"html_file", e.HTMLFile, &m.HTML}} {
			if f.path == "" {
				continue
			}
			b, err := os.ReadFile(f.path)
			if err != nil {
				return nil, fmt.Errorf("risk: notify: email %s: %v", f.name, err)
			}
			*f.dst = string(b)
		}
		if e.CAFile != "" {
			pem, err := os.ReadFile(e.CAFile)
			if err != nil {
				return nil, fmt.Errorf("risk: notify: email ca_file: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("risk: notify: email ca_file %q holds no PEM certificate", e.CAFile)
			}
			m.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		o.Mailer = m
	}
	n, err := notify.New(o)
	if err != nil {
		return nil, fmt.Errorf("risk: notify: %w", err)
	}
	return n, nil
}

// alertingRealm is the admin API's view of a handler that sends alerts.
type alertingRealm struct {
	*tracker.Tracker
	n *notify.Notifier
}

// AlertOutcomes implements admin.Alerter.
func (a *alertingRealm) AlertOutcomes(realm, user string) []notify.Outcome {
	return a.n.Outcomes(realm, user)
}

// alertOutcome counts each alert's final outcome per channel.
func (h *Handler) alertOutcome(realm string) func(notify.Outcome) {
	return func(o notify.Outcome) {
		if o.State != notify.StatePending {
			h.metrics.alerts.WithLabelValues(realm, string(o.Channel), string(o.State)).Inc()
		}
	}
}

// alerts reports whether an action sends an alert: notify, and the
// actions that do more than notify.
func alerts(action string) bool {
	switch action {
	case tracker.RiskNotify, tracker.RiskBlock, tracker.RiskRevoke, tracker.RiskChallenge:
		return true
	}
	return false
}

// sendAlert queues the alert of a finding.
func (h *Handler) sendAlert(ctx context.Context, ev tracker.RiskEvent) {
	nc := h.Risk.Notify
	a := notify.Alert{
		ID: ev.Record.ID, Realm: ev.Realm, User: ev.User, Signals: []string{ev.Record.Signal}, At: ev.Record.At,
		SessionID: ev.Record.SessionID, DeviceID: ev.Record.DeviceID, IP: ev.Record.IP,
		Location: ev.Location.String(), Agent: agentText(ev.Agent.Browser, ev.Agent.OS), TimeZone: ev.UserZone,
		Evidence: ev.Record.Evidence,
	}
	if nc.Link != "" {
		a.Link = h.notMeLink(ev.Realm, ev.User, ev.Record.ID, ev.UserZone, time.Now().Add(nc.linkTTL()))
	}
	if nc.Email != nil {
		a.Recipient = recipient(ctx, nc.Email.To, ev.User)
	}
	// Per device, the notifier throttles; per user, this does: a thief
	// cycling user agents (a new device each time) gets the user
	// perUserAlerts alerts per throttle window, not one per request.
	if !h.alertBudget.take(ev.Realm+"\x00"+ev.User, time.Now()) {
		if c := h.logger.Check(zapcore.DebugLevel, "alert over the user's budget, not sent"); c != nil {
			c.Write(zap.String("realm", ev.Realm), zap.String("finding", ev.Record.ID))
		}
		return
	}
	h.notifier.Send(a)
}

// recipient is the e-mail address of the user: to, expanded, or the
// user id when it is an address.
func recipient(ctx context.Context, to, user string) string {
	if to == "" {
		if a, err := mail.ParseAddress(user); err == nil && a.Name == "" {
			return a.Address
		}
		return ""
	}
	// The template is expanded before the user id goes in: a user id
	// holding "{env.X}" must stay text, never be expanded itself.
	const mark = "\x00user\x00"
	to = strings.ReplaceAll(to, "{"+phUser+"}", mark)
	if repl, ok := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		to = repl.ReplaceAll(to, "")
	}
	return strings.TrimSpace(strings.ReplaceAll(to, mark, user))
}

func agentText(browser, os string) string {
	switch {
	case browser == "" && os == "":
		return ""
	case os == "":
		return browser
	case browser == "":
		return os
	}
	return browser + " on " + os
}

// parseNotify reads
//
//	notify {
//		webhook <url> { secret <secret>; timeout <d> }
//		email { smtp <host:port>; tls starttls|tls|none; ca_file <pem>; username <u>; password <p>; from <addr>; to <addr>; subject <tmpl>; text_file <f>; html_file <f> }
//		link <url>
//		link_ttl <d>
//		throttle <d>
//		queue_size <n>
//	}
func parseNotify(d *caddyfile.Dispenser) (*NotifyConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	nc := &NotifyConfig{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		var err error
		switch sub {
		case "webhook":
			nc.Webhook, err = parseWebhook(d)
		case "email":
			nc.Email, err = parseEmail(d)
		case "link":
			err = oneArg(d, &nc.Link)
		case "link_ttl":
			err = durationArg(d, &nc.LinkTTL)
		case "throttle":
			err = durationArg(d, &nc.Throttle)
		case "queue_size":
			var v string
			if err = oneArg(d, &v); err == nil {
				if nc.QueueSize, err = strconv.Atoi(v); err != nil || nc.QueueSize <= 0 {
					return nil, d.Errf("notify queue_size: %q is not a positive number", v)
				}
			}
		default:
			return nil, d.Errf("notify: unknown option %q (webhook, email, link, link_ttl, throttle, queue_size)", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := nc.check(); err != nil {
		return nil, d.Err(err.Error())
	}
	return nc, nil
}

func parseWebhook(d *caddyfile.Dispenser) (*WebhookConfig, error) {
	w := &WebhookConfig{}
	if !d.NextArg() {
		return nil, d.Err("notify webhook: want the URL")
	}
	w.URL = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "secret":
			err = oneArg(d, &w.Secret)
		case "timeout":
			err = durationArg(d, &w.Timeout)
		default:
			return nil, d.Errf("notify webhook: unknown option %q (secret, timeout)", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if w.Secret == "" {
		return nil, d.Err("notify webhook: a secret is required, such as secret {env.SESSIONS_WEBHOOK_SECRET}")
	}
	return w, nil
}

func parseEmail(d *caddyfile.Dispenser) (*EmailConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	e := &EmailConfig{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var dst *string
		switch d.Val() {
		case "smtp":
			dst = &e.SMTP
		case "tls":
			dst = &e.TLS
		case "ca_file":
			dst = &e.CAFile
		case "username":
			dst = &e.Username
		case "password":
			dst = &e.Password
		case "from":
			dst = &e.From
		case "to":
			dst = &e.To
		case "subject":
			dst = &e.Subject
		case "text_file":
			dst = &e.TextFile
		case "html_file":
			dst = &e.HTMLFile
		default:
			return nil, d.Errf("notify email: unknown option %q (smtp, tls, ca_file, username, password, from, to, subject, text_file, html_file)", d.Val())
		}
		if err := oneArg(d, dst); err != nil {
			return nil, err
		}
	}
	return e, nil
}
