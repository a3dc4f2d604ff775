package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	netmail "net/mail"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
)

// The Mailer's TLS modes.
const (
	// TLSStartTLS: plain connection upgraded with STARTTLS, which the
	// server must offer (submission, port 587).
	TLSStartTLS = "starttls"
	// TLSImplicit: TLS from the first byte (submissions, port 465).
	TLSImplicit = "tls"
	// TLSNone: no TLS; accepted only for a loopback Host (tests, a local
	// relay).
	TLSNone = "none"
)

// Mailer configures e-mail delivery to Alert.Recipient by SMTP
// submission. Deliveries are retried on connection errors and 4xx
// replies, not on 5xx replies (such as bad credentials or a refused
// recipient) nor on certificate errors.
//
// The message is multipart/alternative, text and HTML, rendered by three
// templates executed on MailData: Subject and Text with text/template,
// HTML with html/template (escaped by context). Each has a built-in
// default; a template that does not parse, or fails on sample data, makes
// New fail with an error naming it. Whatever the alert holds, it cannot
// add a header or a recipient: the subject is folded to one line and
// encoded, and the only recipient is the parsed Recipient.
type Mailer struct {
	// Host and Port of the SMTP server. Port defaults to 587 (starttls),
	// 465 (tls) or 25 (none).
	Host string
	Port int
	// TLS is "starttls" (default), "tls" or "none" (loopback hosts only).
	TLS string
	// TLSConfig, if set, is used for the TLS handshake (to trust a private
	// CA through RootCAs, say); its ServerName defaults to Host.
	TLSConfig *tls.Config
	// Username and Password, if set, authenticate (SCRAM-SHA-256,
	// SCRAM-SHA-1, CRAM-MD5, PLAIN or LOGIN, the first the server offers).
	// The password is never logged nor part of an error.
	Username string
	Password string
	// From is the sender, as "Sessions <no-reply@example.com>".
	From string
	// Subject, Text and HTML replace the default templates when set.
	Subject string
	Text    string
	HTML    string
	// Timeout bounds one attempt: connecting, TLS, authenticating and
	// sending. Default: 30s.
	Timeout time.Duration
}

type mailer struct {
	host     string
	opts     []mail.Option
	implicit bool        // TLS from the first byte
	tls      *tls.Config // for implicit TLS
	from     string      // as configured, validated
	domain   string      // of the From address, for Message-IDs
	tmpl     *templates
	timeout  time.Duration
}

func newMailer(m *Mailer) (*mailer, error) {
	host := m.Host
	if host == "" || strings.ContainsAny(host, " \t\r\n/") {
		return nil, fmt.Errorf("mail host %q: not a host name or address", host)
	}
	if m.Port < 0 || m.Port > 65535 {
		return nil, fmt.Errorf("mail port %d: out of range", m.Port)
	}
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if timeout < 0 {
		return nil, fmt.Errorf("mail timeout: negative (%s)", timeout)
	}
	var tc *tls.Config
	if m.TLSConfig != nil {
		tc = m.TLSConfig.Clone()
	} else {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	opts := []mail.Option{mail.WithTimeout(timeout), mail.WithTLSConfig(tc)}
	port := m.Port
	switch mode := or(m.TLS, TLSStartTLS); mode {
	case TLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
		port = cmpOr(port, 587)
	case TLSImplicit:
		// The dialer (dial) does the handshake; WithSSL keeps go-mail
		// from trying STARTTLS on top.
		opts = append(opts, mail.WithSSL())
		port = cmpOr(port, 465)
	case TLSNone:
		if !loopback(host) {
			return nil, fmt.Errorf("mail tls %q: only for a loopback host, not %q", mode, host)
		}
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
		port = cmpOr(port, 25)
	default:
		return nil, fmt.Errorf("mail tls %q: want %q, %q or %q", mode, TLSStartTLS, TLSImplicit, TLSNone)
	}
	opts = append(opts, mail.WithPort(port))
	if m.Password != "" && m.Username == "" {
		return nil, errors.New("mail password: set without a username")
	}
	if m.Username != "" {
		opts = append(opts,
			mail.WithUsername(m.Username), mail.WithPassword(m.Password),
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1,
				mail.SMTPAuthCramMD5, mail.SMTPAuthPlain, mail.SMTPAuthLogin))
	}
	from, err := netmail.ParseAddress(m.From)
	if err != nil || strings.ContainsAny(m.From, "\r\n") {
		return nil, fmt.Errorf("mail from %q: not an e-mail address", m.From)
	}
	tmpl, err := parseTemplates(m.Subject, m.Text, m.HTML)
	if err != nil {
		return nil, err
	}
	return &mailer{
		host:     host,
		opts:     opts,
		implicit: or(m.TLS, TLSStartTLS) == TLSImplicit,
		tls:      tc,
		from:     from.String(),
		domain:   from.Address[strings.LastIndexByte(from.Address, '@')+1:],
		tmpl:     tmpl,
		timeout:  timeout,
	}, nil
}

func cmpOr(port, def int) int {
	if port == 0 {
		return def
	}
	return port
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// recipient returns the bare address of a.Recipient, or an error when it
// is not exactly one address.
func recipient(a Alert) (string, error) {
	if a.Recipient == "" {
		return "", errors.New("no recipient address")
	}
	addr, err := netmail.ParseAddress(a.Recipient)
	if err != nil || strings.ContainsFunc(a.Recipient, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", errors.New("recipient is not an e-mail address")
	}
	return addr.Address, nil
}

func (m *mailer) deliver(ctx context.Context, a Alert, to string, now time.Time) attemptResult {
	subject, text, html, err := m.tmpl.render(mailData(a))
	if err != nil {
		return attemptResult{err: err}
	}
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := msg.From(m.from); err != nil {
		return attemptResult{err: fmt.Errorf("mail from: %w", err)}
	}
	if err := msg.To(to); err != nil {
		return attemptResult{err: errors.New("recipient is not an e-mail address")}
	}
	msg.Subject(subject)
	msg.SetDateWithValue(now)
	msg.SetMessageIDWithValue(a.ID + "@" + m.domain) // a valid ID (Send checked)
	msg.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	msg.SetBodyString(mail.TypeTextPlain, text)
	msg.AddAlternativeString(mail.TypeTextHTML, html)

	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	fail := func(err error) attemptResult {
		retry, code := mailRetryable(err)
		var ne net.Error
		if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("timed out after %s: %w", m.timeout, err)
			retry = true
		}
		return attemptResult{status: code, err: fmt.Errorf("mail %s: %w", m.host, err), retry: retry}
	}
	client, err := mail.NewClient(m.host, append(slices.Clip(m.opts), mail.WithDialContextFunc(m.dial(ctx)))...)
	if err != nil {
		return attemptResult{err: fmt.Errorf("mail %s: %w", m.host, err)}
	}
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return fail(err)
	}
	err = client.SendWithSMTPClient(sc, msg)
	// Once the message is accepted, a failed QUIT does not undo it.
	_ = client.CloseWithSMTPClient(sc)
	if err != nil {
		return fail(err)
	}
	return attemptResult{status: 250}
}

// dial returns the attempt's dialer: a TCP connection, with the TLS
// handshake in implicit mode, closed when ctx ends (the attempt is over,
// timed out or aborted by Close) whatever state go-mail left it in.
func (m *mailer) dial(ctx context.Context) mail.DialContextFunc {
	return func(dctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { _ = conn.Close() })
		if !m.implicit {
			return conn, nil
		}
		tc := tls.Client(conn, m.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return tc, nil
	}
}

// mailRetryable classifies a send error: SMTP 4xx replies and network
// errors are worth retrying; 5xx replies, certificate and protocol errors
// are not. code is the SMTP reply code, 0 if none.
func mailRetryable(err error) (retry bool, code int) {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code >= 400 && tp.Code < 500, tp.Code
	}
	var se *mail.SendError
	if errors.As(err, &se) {
		if c := se.ErrorCode(); c != 0 {
			return c >= 400 && c < 500, c
		}
		return se.IsTemp(), 0
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) {
		return false, 0
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true, 0
	}
	return false, 0
}
