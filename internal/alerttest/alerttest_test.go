package alerttest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/smtp"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	user = "notifier"
	pass = "correct horse battery staple"
)

// dial connects a net/smtp client: over TLS from the start, after
// STARTTLS, or in clear.
func dial(t *testing.T, s *SMTPServer, implicitTLS, startTLS bool, roots *x509.CertPool) *smtp.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, ServerName: s.Host}
	var c *smtp.Client
	if implicitTLS {
		conn, err := tls.Dial("tcp", s.Addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if c, err = smtp.NewClient(conn, s.Host); err != nil {
			t.Fatal(err)
		}
	} else {
		var err error
		if c, err = smtp.Dial(s.Addr); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = c.Close() })
	if startTLS {
		if err := c.StartTLS(cfg); err != nil {
			t.Fatalf("STARTTLS: %v", err)
		}
	}
	return c
}

// send sends msg from from to to over c.
func send(c *smtp.Client, from string, to []string, msg []byte) error {
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

const (
	subject  = "Nouvelle connexion à votre compte ✓"
	textBody = "Bonjour,\nune connexion depuis Zürich, près de 8000 km d'ici: a long line that quoted-printable has to wrap with a soft line break somewhere.\n"
	htmlBody = "<p>Bonjour, <b>Zürich</b></p>\n"
)

// nestedMessage is multipart/mixed holding multipart/alternative (text
// quoted-printable, HTML base64) and a text attachment.
func nestedMessage(t *testing.T) []byte {
	t.Helper()
	var alt bytes.Buffer
	aw := multipart.NewWriter(&alt)
	p, err := aw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	if err != nil {
		t.Fatal(err)
	}
	qp := quotedprintable.NewWriter(p)
	_, _ = io.WriteString(qp, strings.ReplaceAll(textBody, "\n", "\r\n"))
	_ = qp.Close()
	if p, err = aw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/html; charset=UTF-8"},
		"Content-Transfer-Encoding": {"base64"},
	}); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte(htmlBody))
	for len(b64) > 8 { // short lines, to show line ends are skipped
		_, _ = io.WriteString(p, b64[:8]+"\r\n")
		b64 = b64[8:]
	}
	_, _ = io.WriteString(p, b64+"\r\n")
	_ = aw.Close()

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if p, err = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"multipart/alternative; boundary=" + aw.Boundary()}}); err != nil {
		t.Fatal(err)
	}
	_, _ = p.Write(alt.Bytes())
	if p, err = mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":        {"text/plain"},
		"Content-Disposition": {`attachment; filename="notes.txt"`},
	}); err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(p, "not the text part\r\n")
	_ = mw.Close()

	head := "From: Sessions <no-reply@sessions.example>\r\n" +
		"To: <alice@example.com>\r\n" +
		"Subject: " + mime.QEncoding.Encode("utf-8", subject) + "\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=" + mw.Boundary() + "\r\n\r\n"
	return append([]byte(head), body.Bytes()...)
}

func TestSMTPStartTLS(t *testing.T) {
	s := StartSMTP(t, SMTPOptions{Username: user, Password: pass})
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", s.CAFile)
	}
	c := dial(t, s, false, true, roots)
	if err := c.Auth(smtp.PlainAuth("", user, pass, s.Host)); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	msg := nestedMessage(t)
	if err := send(c, "no-reply@sessions.example", []string{"alice@example.com", "audit@example.com"}, msg); err != nil {
		t.Fatal(err)
	}
	m := s.WaitMessages(t, 1, 5*time.Second)[0]
	if m.Err != nil {
		t.Fatal(m.Err)
	}
	if m.From != "no-reply@sessions.example" || !slices.Equal(m.To, []string{"alice@example.com", "audit@example.com"}) || !m.TLS || m.User != user {
		t.Errorf("envelope: from %q, to %q, tls %v, user %q", m.From, m.To, m.TLS, m.User)
	}
	if !bytes.Equal(m.Raw, msg) {
		t.Errorf("raw differs:\n%s", m.Raw)
	}
	if got := m.Header.Get("To"); got != "<alice@example.com>" {
		t.Errorf("To header = %q", got)
	}
	if want := []string{"text/plain", "text/html", "text/plain"}; !slices.Equal(m.PartTypes, want) {
		t.Errorf("part types = %q, want %q", m.PartTypes, want)
	}
	if m.Subject != subject {
		t.Errorf("subject = %q, want %q", m.Subject, subject)
	}
	if m.Text != textBody {
		t.Errorf("text = %q, want %q", m.Text, textBody)
	}
	if m.HTML != htmlBody {
		t.Errorf("html = %q, want %q", m.HTML, htmlBody)
	}
	if s.AuthAttempts() != 1 || s.AuthFailures() != 0 {
		t.Errorf("%d auth attempts, %d failures", s.AuthAttempts(), s.AuthFailures())
	}
}

func TestSMTPAuthRequired(t *testing.T) {
	s := StartSMTP(t, SMTPOptions{Username: user, Password: pass})
	c := dial(t, s, false, true, s.Roots)
	err := c.Auth(smtp.PlainAuth("", user, "wrong", s.Host))
	var se *textproto.Error
	if !errors.As(err, &se) || se.Code != 535 {
		t.Fatalf("AUTH with a wrong password = %v, want 535", err)
	}
	c = dial(t, s, false, true, s.Roots) // net/smtp quits after a failed AUTH
	if err := c.Mail("no-reply@sessions.example"); !errors.As(err, &se) || se.Code != 530 {
		t.Fatalf("MAIL without AUTH = %v", err)
	}
	if s.AuthFailures() != 1 || s.AuthAttempts() != 1 || len(s.Messages()) != 0 {
		t.Errorf("%d failures, %d attempts, %d messages", s.AuthFailures(), s.AuthAttempts(), len(s.Messages()))
	}
}

func TestSMTPImplicitTLSWithoutAuth(t *testing.T) {
	s := StartSMTP(t, SMTPOptions{ImplicitTLS: true})
	c := dial(t, s, true, false, s.Roots)
	msg := "Subject: plain\r\n\r\nNo MIME here.\r\n"
	if err := send(c, "a@example.com", []string{"b@example.com"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	m := s.WaitMessages(t, 1, 5*time.Second)[0]
	if !m.TLS || m.User != "" || m.Subject != "plain" || m.Text != "No MIME here.\n" || m.HTML != "" || m.Err != nil {
		t.Errorf("message = %+v", m)
	}
}

func TestSMTPNoTLS(t *testing.T) {
	s := StartSMTP(t, SMTPOptions{NoTLS: true})
	c := dial(t, s, false, false, nil)
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered")
	}
	if ok, _ := c.Extension("AUTH"); !ok {
		t.Error("AUTH not offered in clear")
	}
	if err := send(c, "a@example.com", []string{"b@example.com"}, []byte("Subject: x\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	if m := s.WaitMessages(t, 1, 5*time.Second)[0]; m.TLS {
		t.Error("TLS = true")
	}
}

func TestMessageParse(t *testing.T) {
	tests := []struct {
		name, raw  string
		text, html string
		err        string // "" for none
	}{
		{
			name: "html only, quoted-printable",
			raw:  "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>caf=C3=A9</p>=\r\n",
			html: "<p>café</p>",
		},
		{
			name: "latin-1",
			raw:  "Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n",
			text: "café\n",
		},
		{
			name: "first of each kind wins",
			raw: "Content-Type: multipart/alternative; boundary=b\r\n\r\n" +
				"--b\r\nContent-Type: text/plain\r\n\r\none\r\n" +
				"--b\r\nContent-Type: text/plain\r\n\r\ntwo\r\n" +
				"--b\r\nContent-Type: image/png\r\n\r\nPNG\r\n--b--\r\n",
			text: "one",
		},
		{
			name: "no content type",
			raw:  "Subject: x\r\n\r\nplain\r\n",
			text: "plain\n",
		},
		{name: "no boundary", raw: "Content-Type: multipart/alternative\r\n\r\nx\r\n", err: "without a boundary"},
		{name: "unknown charset", raw: "Content-Type: text/plain; charset=koi8-r\r\n\r\nx\r\n", err: `unsupported charset "koi8-r"`},
		{name: "invalid UTF-8", raw: "Content-Type: text/plain; charset=utf-8\r\n\r\n\xff\r\n", err: "not valid utf-8"},
		{name: "bad base64", raw: "Content-Transfer-Encoding: base64\r\n\r\n!!!\r\n", err: "decoding base64"},
		{name: "bad encoded word", raw: "Subject: =?x-unknown?q?a?=\r\n\r\n", err: "decoding the subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Message{Raw: []byte(tt.raw)}
			err := m.parse()
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("parse = %v, want %q", err, tt.err)
			}
			if m.Text != tt.text || m.HTML != tt.html {
				t.Errorf("text %q, html %q; want %q, %q", m.Text, m.HTML, tt.text, tt.html)
			}
		})
	}
}

func TestReceiver(t *testing.T) {
	errBad := errors.New("bad signature")
	verify := func(h http.Header, body []byte) error {
		if h.Get("Signature") != "sig:"+string(body) {
			return errBad
		}
		return nil
	}
	rc := StartReceiver(t, verify, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	post := func(body, sig string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, rc.URL+"/hook", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("one", "sig:one"); got != 500 {
		t.Errorf("first = %d", got)
	}
	if got := post("forged", "sig:other"); got != 401 {
		t.Errorf("forged = %d", got)
	}
	resp, err := http.Get(rc.URL + "/hook")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET = %d", resp.StatusCode)
	}
	if got := post("two", "sig:two"); got != 200 {
		t.Errorf("retry = %d", got)
	}
	ds := rc.WaitDelivered(t, 1, 5*time.Second)
	if len(ds) != 1 || string(ds[0].Body) != "two" || ds[0].Path != "/hook" || ds[0].Header.Get("Signature") != "sig:two" {
		t.Errorf("delivered = %+v", ds)
	}
	var got []string
	for _, d := range rc.Requests() {
		got = append(got, d.Method+" "+string(d.Body)+" "+http.StatusText(d.Status))
	}
	want := []string{"POST one Internal Server Error", "POST forged Unauthorized", "GET  Method Not Allowed", "POST two OK"}
	if !slices.Equal(got, want) {
		t.Errorf("requests = %q, want %q", got, want)
	}
	if d := rc.Requests()[1]; !errors.Is(d.Err, errBad) {
		t.Errorf("forged request: err = %v", d.Err)
	}
}

func TestReceiverFunc(t *testing.T) {
	rc := StartReceiverFunc(t, nil, func(n int, w http.ResponseWriter, r *http.Request) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			<-r.Context().Done() // until the client gives up
		}
	})
	resp, err := http.Post(rc.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("first: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	client := &http.Client{Timeout: 50 * time.Millisecond}
	if _, err := client.Post(rc.URL, "application/json", strings.NewReader("{}")); err == nil {
		t.Error("second: answered")
	}
	rc.Close() // waits for the handler holding the second
	ds := rc.Requests()
	if len(ds) != 2 || ds[0].Status != 429 || ds[1].Status != 0 || len(rc.Delivered()) != 0 {
		t.Errorf("requests = %+v", ds)
	}
	if _, err := http.Post(rc.URL, "application/json", strings.NewReader("{}")); err == nil {
		t.Error("closed receiver answered")
	}
}
