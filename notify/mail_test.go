package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/alerttest"
)

const (
	smtpUser = "notifier"
	smtpPass = "correct horse battery staple"
)

// startSMTP starts a real SMTP server that requires smtpUser's AUTH PLAIN.
func startSMTP(t *testing.T, o alerttest.SMTPOptions) *alerttest.SMTPServer {
	t.Helper()
	o.Username, o.Password = smtpUser, smtpPass
	return alerttest.StartSMTP(t, o)
}

// mailerFor is a Mailer for ss, trusting its certificate.
func mailerFor(ss *alerttest.SMTPServer, mode string) *Mailer {
	return &Mailer{
		Host: ss.Host, Port: ss.Port, TLS: mode,
		TLSConfig: &tls.Config{RootCAs: ss.Roots},
		Username:  smtpUser, Password: smtpPass,
		From:    "Sessions <no-reply@sessions.example>",
		Timeout: 5 * time.Second,
	}
}

const hostileUser = `<img src=x onerror=alert(1)>`

func hostileAlert(id string) Alert {
	return Alert{
		ID: id, Realm: "shop", User: hostileUser,
		Signals:  []string{"new_country", "impossible_travel"},
		At:       time.Date(2025, 12, 2, 8, 1, 0, 0, time.UTC),
		IP:       "192.0.2.7",
		Location: "Paris\r\nBcc: evil@example.com",
		Agent:    "Firefox on Linux", TimeZone: "America/New_York",
		Link:      "https://sessions.example/not-me?t=abc123",
		Recipient: "Alice <alice@example.com>",
		Channels:  []Channel{ChannelEmail},
	}
}

// checkParsed fails the test unless m is multipart/alternative with a
// text and an HTML part, and returns its header block as sent.
func checkParsed(t *testing.T, m alerttest.Message) (rawHeader string) {
	t.Helper()
	if m.Err != nil {
		t.Fatalf("parsing the message: %v", m.Err)
	}
	if ct, _, err := mime.ParseMediaType(m.Header.Get("Content-Type")); err != nil || ct != "multipart/alternative" {
		t.Fatalf("content type %q: %v", m.Header.Get("Content-Type"), err)
	}
	if want := []string{"text/plain", "text/html"}; !slices.Equal(m.PartTypes, want) {
		t.Errorf("parts %q, want %q", m.PartTypes, want)
	}
	h, _, _ := strings.Cut(string(m.Raw), "\r\n\r\n")
	return h + "\r\n"
}

func TestMailStartTLS(t *testing.T) {
	ss := startSMTP(t, alerttest.SMTPOptions{})
	n := newNotifier(t, fastOptions(Options{Mailer: mailerFor(ss, TLSStartTLS)}))
	a := hostileAlert("mail-1")
	if !n.Send(a) {
		t.Fatal("Send = false")
	}
	o := outcome(t, n, a, ChannelEmail)
	if o.State != StateDelivered || o.Attempts != 1 || o.Error != "" {
		t.Fatalf("outcome = %+v", o)
	}
	msgs := ss.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if !m.TLS || m.User != smtpUser || m.From != "no-reply@sessions.example" || len(m.To) != 1 || m.To[0] != "alice@example.com" {
		t.Fatalf("envelope: tls %v, user %q, from %q, rcpts %q", m.TLS, m.User, m.From, m.To)
	}
	rawHeader := checkParsed(t, m)
	for k, want := range map[string]string{
		"From":           `"Sessions" <no-reply@sessions.example>`,
		"To":             "<alice@example.com>",
		"Message-Id":     "<mail-1@sessions.example>",
		"Auto-Submitted": "auto-generated",
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if m.Subject != "New sign-in to your account" {
		t.Errorf("subject = %q", m.Subject)
	}
	if _, ok := m.Header["Bcc"]; ok || strings.Contains(strings.ToLower(rawHeader), "\nbcc:") {
		t.Errorf("a Bcc header was injected:\n%s", rawHeader)
	}
	for _, want := range []string{
		"Account:  " + hostileUser, // plain text is not HTML
		"Location: Paris Bcc: evil@example.com (approximate)",
		"Device:   Firefox on Linux",
		"Time:     Tuesday, 2 December 2025 at 03:01 EST (America/New_York)",
		"a country your account has not been used from before",
		"too far from where you last signed in",
		"\nhttps://sessions.example/not-me?t=abc123\n",
		"only the button on the page acts",
	} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, m.Text)
		}
	}
	for _, want := range []string{
		"&lt;img src=x onerror=alert(1)&gt;",
		`href="https://sessions.example/not-me?t=abc123"`,
		">This wasn't me</a>",
		"Only the button on that page acts",
		"Paris Bcc: evil@example.com (approximate)",
	} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("html part lacks %q:\n%s", want, m.HTML)
		}
	}
	if strings.Contains(m.HTML, "<img") {
		t.Errorf("html part holds the user's markup:\n%s", m.HTML)
	}
}

func TestMailSubjectTemplateCannotInjectHeaders(t *testing.T) {
	ss := startSMTP(t, alerttest.SMTPOptions{})
	m := mailerFor(ss, TLSStartTLS)
	m.Subject = `Sign-in by {{.User}} from {{.Location}}`
	n := newNotifier(t, fastOptions(Options{Mailer: m}))
	a := hostileAlert("mail-subject")
	a.User = "eve\r\nBcc: evil@example.com\r\n\r\nbody"
	n.Send(a)
	if o := outcome(t, n, a, ChannelEmail); o.State != StateDelivered {
		t.Fatalf("outcome = %+v", o)
	}
	msg := ss.Messages()[0]
	if len(msg.To) != 1 || msg.To[0] != "alice@example.com" {
		t.Errorf("rcpts = %q", msg.To)
	}
	rawHeader := checkParsed(t, msg)
	if want := "Sign-in by eve Bcc: evil@example.com body from Paris Bcc: evil@example.com"; msg.Subject != want {
		t.Errorf("subject = %q, want %q", msg.Subject, want)
	}
	if _, ok := msg.Header["Bcc"]; ok || strings.Contains(strings.ToLower(rawHeader), "\nbcc:") {
		t.Errorf("a Bcc header was injected:\n%s", rawHeader)
	}
}

func TestMailImplicitTLS(t *testing.T) {
	ss := startSMTP(t, alerttest.SMTPOptions{ImplicitTLS: true})
	n := newNotifier(t, fastOptions(Options{Mailer: mailerFor(ss, TLSImplicit)}))
	a := hostileAlert("mail-tls")
	n.Send(a)
	if o := outcome(t, n, a, ChannelEmail); o.State != StateDelivered {
		t.Fatalf("outcome = %+v", o)
	}
	if msgs := ss.Messages(); len(msgs) != 1 || !msgs[0].TLS {
		t.Fatalf("messages = %+v", msgs)
	}
}

func TestMailWrongPassword(t *testing.T) {
	ss := startSMTP(t, alerttest.SMTPOptions{})
	m := mailerFor(ss, TLSStartTLS)
	m.Password = "wrong-password-1234"
	n := newNotifier(t, fastOptions(Options{Mailer: m}))
	a := hostileAlert("mail-auth")
	n.Send(a)
	o := outcome(t, n, a, ChannelEmail)
	if o.State != StateFailed || o.Attempts != 1 || o.Status != 535 || !strings.Contains(o.Error, "Authentication credentials invalid") {
		t.Fatalf("outcome = %+v", o)
	}
	if strings.Contains(o.Error, m.Password) {
		t.Errorf("error holds the password: %q", o.Error)
	}
	if ss.AuthFailures() != 1 || len(ss.Messages()) != 0 {
		t.Errorf("%d auth failures, %d messages accepted", ss.AuthFailures(), len(ss.Messages()))
	}
}

func TestMailUntrustedCertificate(t *testing.T) {
	ss := startSMTP(t, alerttest.SMTPOptions{})
	m := mailerFor(ss, TLSStartTLS)
	m.TLSConfig = nil // system roots: the self-signed certificate is not trusted
	n := newNotifier(t, fastOptions(Options{Mailer: m}))
	a := hostileAlert("mail-cert")
	n.Send(a)
	o := outcome(t, n, a, ChannelEmail)
	if o.State != StateFailed || o.Attempts != 1 || !strings.Contains(o.Error, "certificate") {
		t.Fatalf("outcome = %+v", o)
	}
	if ss.AuthAttempts() != 0 {
		t.Error("the password was sent")
	}
}

func TestMailStartTLSRequired(t *testing.T) {
	ss := startSMTP(t, alerttest.SMTPOptions{NoTLS: true}) // offers no STARTTLS, takes AUTH in clear
	n := newNotifier(t, fastOptions(Options{Mailer: mailerFor(ss, TLSStartTLS)}))
	a := hostileAlert("mail-notls")
	n.Send(a)
	o := outcome(t, n, a, ChannelEmail)
	if o.State != StateFailed || !strings.Contains(o.Error, "STARTTLS") {
		t.Fatalf("outcome = %+v", o)
	}
	if ss.AuthAttempts() != 0 || len(ss.Messages()) != 0 {
		t.Error("the password or the message went in clear")
	}
}

func TestMailRetriesConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	n := newNotifier(t, fastOptions(Options{MaxAttempts: 3, Mailer: &Mailer{
		Host: "127.0.0.1", Port: port, From: "no-reply@sessions.example",
	}}))
	a := hostileAlert("mail-refused")
	n.Send(a)
	o := outcome(t, n, a, ChannelEmail)
	if o.State != StateFailed || o.Attempts != 3 || !strings.Contains(o.Error, "refused") {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestMailRecipientRequired(t *testing.T) {
	ss := startSMTP(t, alerttest.SMTPOptions{})
	n := newNotifier(t, fastOptions(Options{Mailer: mailerFor(ss, TLSStartTLS), ThrottleWindow: -1}))
	tests := []struct {
		name, rcpt, want string
	}{
		{"empty", "", "no recipient address"},
		{"not an address", "alice", "recipient is not an e-mail address"},
		{"two addresses", "a@example.com, b@example.com", "recipient is not an e-mail address"},
		{"injection", "a@example.com\r\nBcc: evil@example.com", "recipient is not an e-mail address"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := hostileAlert(fmt.Sprint("rcpt-", i))
			a.Recipient = tt.rcpt
			if n.Send(a) {
				t.Error("Send = true")
			}
			if o := outcome(t, n, a, ChannelEmail); o.State != StateFailed || o.Attempts != 0 || o.Error != tt.want {
				t.Errorf("outcome = %+v", o)
			}
		})
	}
	// Without Channels, an alert with no recipient goes nowhere.
	if n.Send(Alert{Realm: "shop", User: "x"}) {
		t.Error("Send without recipient or webhook = true")
	}
	if len(ss.Messages()) != 0 {
		t.Error("a message was sent")
	}
}

func TestMailerConfigErrors(t *testing.T) {
	ok := Mailer{Host: "smtp.example.com", From: "no-reply@example.com"}
	tests := []struct {
		name string
		edit func(m *Mailer)
		want string
	}{
		{"no host", func(m *Mailer) { m.Host = "" }, "mail host"},
		{"bad from", func(m *Mailer) { m.From = "nobody" }, "mail from"},
		{"from with CRLF", func(m *Mailer) { m.From = "a@example.com\r\nBcc: b@example.com" }, "mail from"},
		{"unknown tls mode", func(m *Mailer) { m.TLS = "maybe" }, `mail tls "maybe"`},
		{"no tls off loopback", func(m *Mailer) { m.TLS = TLSNone }, "only for a loopback host"},
		{"password without user", func(m *Mailer) { m.Password = "hunter2" }, "without a username"},
		{"bad subject", func(m *Mailer) { m.Subject = "{{.User" }, "mail subject template"},
		{"bad text", func(m *Mailer) { m.Text = "{{range}}" }, "mail text template"},
		{"bad html", func(m *Mailer) { m.HTML = "<a href='{{.Link}'>" }, "mail html template"},
		{"unknown field", func(m *Mailer) { m.HTML = "<p>{{.Password}}</p>" }, "mail html template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ok
			tt.edit(&m)
			_, err := New(Options{Mailer: &m})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error holds the password: %v", err)
			}
		})
	}
	m := ok
	m.Host, m.TLS = "127.0.0.1", TLSNone
	if _, err := newMailer(&m); err != nil {
		t.Errorf("tls none on loopback: %v", err)
	}
}

func TestMailData(t *testing.T) {
	a := Alert{
		ID: "x", User: "a\x00b\r\n\tc  d" + strings.Repeat("é", 300), Signals: []string{"made_up"},
		At: time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC), TimeZone: "Nowhere/Special",
		Link: "javascript:alert(1)",
	}
	d := mailData(a)
	if !strings.HasPrefix(d.User, "a b c dé") || len([]rune(d.User)) != 200 {
		t.Errorf("user = %q (%d runes)", d.User, len([]rune(d.User)))
	}
	if d.TimeZone != "UTC" || d.When != "Tuesday, 1 July 2025 at 12:00 UTC" {
		t.Errorf("zone %q, when %q", d.TimeZone, d.When)
	}
	if d.Link != "" {
		t.Errorf("link = %q", d.Link)
	}
	if len(d.Signals) != 1 || !strings.Contains(d.Signals[0].Text, "(made_up)") {
		t.Errorf("signals = %+v", d.Signals)
	}
	for _, link := range []string{"https://x.example/a?b=c", "http://127.0.0.1:8080/x"} {
		if safeLink(link) != link {
			t.Errorf("safeLink(%q) refused", link)
		}
	}
	for _, link := range []string{"//x.example/a", "data:text/html,hi", "https://x.example/a b", "https://x.example/\r\nBcc:"} {
		if safeLink(link) != "" {
			t.Errorf("safeLink(%q) accepted", link)
		}
	}
}

// silentServer accepts connections and never says a word, until the test
// ends.
func silentServer(t *testing.T) (port int, accepted func() int) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().(*net.TCPAddr).Port, func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
}

func TestMailTimeout(t *testing.T) {
	port, _ := silentServer(t)
	n := newNotifier(t, fastOptions(Options{MaxAttempts: 2, Mailer: &Mailer{
		Host: "127.0.0.1", Port: port, From: "no-reply@sessions.example", Timeout: 50 * time.Millisecond,
	}}))
	a := hostileAlert("mail-timeout")
	n.Send(a)
	if o := outcome(t, n, a, ChannelEmail); o.State != StateFailed || o.Attempts != 2 || !strings.Contains(o.Error, "timed out after 50ms") {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestCloseAbortsSMTP(t *testing.T) {
	port, accepted := silentServer(t)
	before := runtime.NumGoroutine()
	n, err := New(Options{Mailer: &Mailer{
		Host: "127.0.0.1", Port: port, From: "no-reply@sessions.example", Timeout: time.Minute,
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := hostileAlert("mail-abort")
	n.Send(a)
	waitUntil(t, "the attempt connects", func() bool { return accepted() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := n.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s", d)
	}
	if o := outcome(t, n, a, ChannelEmail); o.State != StateFailed || !strings.HasPrefix(o.Error, "notifier closed during the attempt") {
		t.Errorf("outcome = %+v", o)
	}
	goroutinesBack(t, before)
}
