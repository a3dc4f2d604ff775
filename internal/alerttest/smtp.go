package alerttest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPOptions choose how an SMTP server started by StartSMTP speaks.
type SMTPOptions struct {
	// ImplicitTLS makes the server speak TLS from the first byte (port 465
	// style). By default it offers STARTTLS.
	ImplicitTLS bool
	// NoTLS makes a plain SMTP server: no STARTTLS offered, and AUTH taken
	// in clear, as a careless server would. It excludes ImplicitTLS.
	NoTLS bool
	// Username and Password are the credentials AUTH PLAIN requires before
	// MAIL FROM. Empty: no authentication is required, and AUTH PLAIN
	// accepts any credentials.
	Username, Password string
}

// SMTPServer is a real SMTP server (go-smtp) on a loopback port that keeps
// every message it accepts. AUTH PLAIN is offered only over TLS unless
// NoTLS is set.
type SMTPServer struct {
	// Addr is host:port, e.g. "127.0.0.1:41234".
	Addr string
	// Host is "127.0.0.1".
	Host string
	// Port is the port the server listens on.
	Port int
	// CAFile is the path of a PEM file, in tb.TempDir(), holding the
	// server's self-signed certificate, valid for 127.0.0.1 and localhost.
	CAFile string
	// Roots is a pool trusting the same certificate.
	Roots *x509.CertPool

	opts SMTPOptions

	mu           sync.Mutex
	messages     []Message
	authAttempts int
	authFailures int
}

// StartSMTP starts an SMTP server closed by tb.Cleanup. A server always has
// a certificate (CAFile, Roots), even with NoTLS, when it never uses it.
func StartSMTP(tb testing.TB, o SMTPOptions) *SMTPServer {
	tb.Helper()
	if o.ImplicitTLS && o.NoTLS {
		tb.Fatal("alerttest: SMTPOptions: ImplicitTLS and NoTLS exclude each other")
	}
	cert, caFile, roots := selfSigned(tb)
	ss := &SMTPServer{Host: "127.0.0.1", CAFile: caFile, Roots: roots, opts: o}
	s := smtp.NewServer(ss)
	s.Domain = "localhost"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.ErrorLog = discardLogger{}
	if o.NoTLS {
		s.AllowInsecureAuth = true
	} else {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("alerttest: listening for SMTP: %v", err)
	}
	if o.ImplicitTLS {
		l = tls.NewListener(l, s.TLSConfig)
	}
	ss.Port = l.Addr().(*net.TCPAddr).Port
	ss.Addr = net.JoinHostPort(ss.Host, strconv.Itoa(ss.Port))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	tb.Cleanup(func() {
		_ = s.Close() // closes the listener and every connection
		<-done
	})
	return ss
}

// Messages returns the messages accepted so far, in order.
func (s *SMTPServer) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// WaitMessages waits until at least n messages have been accepted and
// returns all of them; it fails the test if they do not arrive within
// timeout. It reports (without stopping the test) every returned message
// whose MIME structure could not be parsed (Message.Err).
func (s *SMTPServer) WaitMessages(tb testing.TB, n int, timeout time.Duration) []Message {
	tb.Helper()
	if !waitFor(timeout, func() bool { return len(s.Messages()) >= n }) {
		tb.Fatalf("alerttest: %d messages within %s, want %d", len(s.Messages()), timeout, n)
	}
	msgs := s.Messages()
	for i, m := range msgs {
		if m.Err != nil {
			tb.Errorf("alerttest: message %d (from %q): %v", i+1, m.From, m.Err)
		}
	}
	return msgs
}

// AuthAttempts counts the AUTH PLAIN exchanges that reached a username and
// password, right or wrong.
func (s *SMTPServer) AuthAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authAttempts
}

// AuthFailures counts the AUTH PLAIN exchanges refused for wrong
// credentials.
func (s *SMTPServer) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFailures
}

// NewSession implements smtp.Backend.
func (s *SMTPServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{server: s, conn: c}, nil
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

// errAuthRequired answers MAIL and RCPT before AUTH as RFC 4954 says real
// servers do (go-smtp's own ErrAuthRequired is a 502).
var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

// smtpSession is one client's conversation.
type smtpSession struct {
	server *SMTPServer
	conn   *smtp.Conn
	user   string // authenticated as
	authed bool
	from   string
	rcpts  []string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		o := s.server.opts
		ok := (o.Username == "" && o.Password == "") || (user == o.Username && pass == o.Password)
		s.server.mu.Lock()
		s.server.authAttempts++
		if !ok {
			s.server.authFailures++
		}
		s.server.mu.Unlock()
		if !ok {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		s.user, s.authed = user, true
		return nil
	}), nil
}

func (s *smtpSession) authRequired() bool {
	o := s.server.opts
	return (o.Username != "" || o.Password != "") && !s.authed
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.authRequired() {
		return errAuthRequired
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.authRequired() {
		return errAuthRequired
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	m := Message{From: s.from, To: append([]string(nil), s.rcpts...), Raw: raw, TLS: isTLS, User: s.user}
	m.Err = m.parse()
	s.server.mu.Lock()
	s.server.messages = append(s.server.messages, m)
	s.server.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.from, s.rcpts = "", nil }
func (s *smtpSession) Logout() error { return nil }
