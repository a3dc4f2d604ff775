package notify

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"strings"
	texttemplate "text/template"
	"time"
	_ "time/tzdata" // users' zones must load on hosts without a zoneinfo database
	"unicode"
	"unicode/utf8"
)

// MailData is what the e-mail templates are executed on. Every string is
// one line of valid UTF-8 (control characters turned into spaces) and at
// most 200 characters, whatever the alert held.
type MailData struct {
	AlertID string
	Realm   string
	User    string
	// Signals are the alert's signals with a sentence for each.
	Signals []SignalText
	Agent   string // "Firefox on Linux"; "" when unknown
	IP      string
	// Location is approximate; "" when unknown.
	Location string
	// At is the sign-in time in the user's zone, When the same as text
	// ("Tuesday, 2 December 2025 at 08:01 GMT (Europe/London)") and
	// TimeZone the zone's name ("UTC" when the alert's was empty or
	// unknown).
	At       time.Time
	When     string
	TimeZone string
	// Link is the "this wasn't me" page; "" when the alert had none, or
	// not an http or https URL.
	Link string
}

// SignalText is a signal's name and its explanation for the user.
type SignalText struct {
	Name string // "new_country"
	Text string // "This sign-in came from a country ..."
}

// signalTexts explain the signals of package tracker/risk in plain words.
var signalTexts = map[string]string{
	"new_device":         "This sign-in came from a device or browser that has not been used with your account before.",
	"new_country":        "This sign-in came from a country your account has not been used from before.",
	"impossible_travel":  "This sign-in came from a place too far from where you last signed in for anyone to have travelled there in the time since.",
	"cookie_moved":       "An existing sign-in of yours was used from another device or place, which can mean it was copied from your device.",
	"distant_concurrent": "Your account is signed in at the same time from places far apart.",
}

// The default templates. Operators replace them whole through Mailer.
const (
	defaultSubject = `New sign-in to your account`

	defaultText = `New sign-in to your account

We noticed a sign-in that does not look like your usual ones.
{{range .Signals}}
  * {{.Text}}
{{- end}}

Account:  {{.User}}
Device:   {{or .Agent "unknown"}}
Location: {{if .Location}}{{.Location}} (approximate){{else}}unknown{{end}}
{{- if .IP}}
IP:       {{.IP}}{{end}}
Time:     {{.When}}

If this was you, you can ignore this message.
{{if .Link}}
If this wasn't you, open this page and press its "This wasn't me" button:
{{.Link}}

Opening the page changes nothing by itself; only the button on the page acts.
{{- else}}
If this wasn't you, change your password now.
{{- end}}
`

	defaultHTML = `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>New sign-in to your account</title></head>
<body style="margin:0;padding:24px;background:#f4f4f5;font-family:Arial,Helvetica,sans-serif;color:#18181b">
<div style="max-width:560px;margin:0 auto;background:#ffffff;border-radius:8px;padding:24px">
<h1 style="font-size:20px;margin:0 0 16px">New sign-in to your account</h1>
<p>We noticed a sign-in that does not look like your usual ones.</p>
<ul>
{{- range .Signals}}
<li>{{.Text}}</li>
{{- end}}
</ul>
<table style="border-collapse:collapse;margin:16px 0">
<tr><td style="padding:2px 16px 2px 0;color:#52525b">Account</td><td>{{.User}}</td></tr>
<tr><td style="padding:2px 16px 2px 0;color:#52525b">Device</td><td>{{or .Agent "unknown"}}</td></tr>
<tr><td style="padding:2px 16px 2px 0;color:#52525b">Location</td><td>{{if .Location}}{{.Location}} (approximate){{else}}unknown{{end}}</td></tr>
{{- if .IP}}
<tr><td style="padding:2px 16px 2px 0;color:#52525b">IP</td><td>{{.IP}}</td></tr>
{{- end}}
<tr><td style="padding:2px 16px 2px 0;color:#52525b">Time</td><td>{{.When}}</td></tr>
</table>
<p>If this was you, you can ignore this message.</p>
{{- if .Link}}
<p>If this wasn't you:</p>
<p><a href="{{.Link}}" style="display:inline-block;padding:10px 18px;background:#b91c1c;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:bold">This wasn't me</a></p>
<p style="font-size:13px;color:#52525b">The button opens a page; opening it changes nothing by itself. Only the button on that page acts.<br>Or copy this link: {{.Link}}</p>
{{- else}}
<p>If this wasn't you, change your password now.</p>
{{- end}}
</div>
</body>
</html>
`
)

// templates are a mailer's parsed templates.
type templates struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
}

// parseTemplates parses the operator's templates (or the defaults where
// empty) and executes each on sample data, so that a template naming a
// field MailData lacks fails here rather than at the first alert.
func parseTemplates(subject, text, html string) (*templates, error) {
	var t templates
	var err error
	if t.subject, err = texttemplate.New("subject").Parse(or(subject, defaultSubject)); err != nil {
		return nil, templateError("subject", err)
	}
	if t.text, err = texttemplate.New("text").Parse(or(text, defaultText)); err != nil {
		return nil, templateError("text", err)
	}
	if t.html, err = htmltemplate.New("html").Parse(or(html, defaultHTML)); err != nil {
		return nil, templateError("html", err)
	}
	sample := mailData(Alert{
		ID: "sample", Realm: "example", User: "alice", Signals: []string{"new_country", "other"},
		At: time.Unix(0, 0), IP: "192.0.2.1", Location: "London, England, United Kingdom",
		Agent: "Firefox on Linux", TimeZone: "Europe/London", Link: "https://example.com/not-me?t=1",
	})
	if _, _, _, err := t.render(sample); err != nil {
		return nil, err
	}
	return &t, nil
}

// templateError names the template (subject, text or html) that failed.
func templateError(name string, err error) error {
	return fmt.Errorf("mail %s template: %w", name, err)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// render executes the templates on d. The subject is folded to one line.
func (t *templates) render(d MailData) (subject, text, html string, err error) {
	var b bytes.Buffer
	if err := t.subject.Execute(&b, d); err != nil {
		return "", "", "", templateError("subject", err)
	}
	subject = oneLine(b.String(), 200)
	if subject == "" {
		subject = defaultSubject
	}
	b.Reset()
	if err := t.text.Execute(&b, d); err != nil {
		return "", "", "", templateError("text", err)
	}
	text = b.String()
	b.Reset()
	if err := t.html.Execute(&b, d); err != nil {
		return "", "", "", templateError("html", err)
	}
	return subject, text, b.String(), nil
}

// mailData is a's view for the templates.
func mailData(a Alert) MailData {
	loc, zone := time.UTC, "UTC"
	if a.TimeZone != "" {
		if l, err := time.LoadLocation(a.TimeZone); err == nil {
			loc, zone = l, l.String()
		}
	}
	at := a.At.In(loc)
	when := at.Format("Monday, 2 January 2006 at 15:04 MST")
	if abbr, _ := at.Zone(); abbr != zone {
		when += " (" + zone + ")"
	}
	d := MailData{
		AlertID:  oneLine(a.ID, 200),
		Realm:    oneLine(a.Realm, 200),
		User:     oneLine(a.User, 200),
		Agent:    oneLine(a.Agent, 200),
		IP:       oneLine(a.IP, 200),
		Location: oneLine(a.Location, 200),
		At:       at,
		When:     when,
		TimeZone: zone,
		Link:     safeLink(a.Link),
	}
	for _, s := range a.Signals {
		s = oneLine(s, 200)
		text, ok := signalTexts[s]
		if !ok {
			text = "Something else about this sign-in looked unusual (" + s + ")."
		}
		d.Signals = append(d.Signals, SignalText{Name: s, Text: text})
	}
	return d
}

// oneLine makes s valid UTF-8 with every control or line-breaking
// character a space, runs of spaces folded, trimmed, and at most n runes.
func oneLine(s string, n int) string {
	var b strings.Builder
	space := false
	count := 0
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029' {
			space = b.Len() > 0
			continue
		}
		if count == n {
			break
		}
		if space {
			b.WriteByte(' ')
			count++
			space = false
			if count == n {
				break
			}
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}

// safeLink is link when it is a plain absolute http(s) URL of one line,
// else "".
func safeLink(link string) string {
	if link == "" || len(link) > 2048 || !utf8.ValidString(link) {
		return ""
	}
	for _, r := range link {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return ""
		}
	}
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return link
}
