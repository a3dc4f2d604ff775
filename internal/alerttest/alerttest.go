// Package alerttest runs real servers that receive the alerts a test sends:
// an SMTP server (smtp.go; github.com/emersion/go-smtp, with STARTTLS or
// implicit TLS under a self-signed certificate and AUTH PLAIN) that keeps
// every message taken apart (message.go), and a webhook receiver
// (receiver.go; net/http/httptest) that checks each request with a verify
// function and answers as scripted.
//
// Every server listens on 127.0.0.1 on a free port and is closed by
// tb.Cleanup. The package does not import package notify, whose own tests
// use it: a receiver is given the signature check as a function.
package alerttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pollInterval is how often the Wait methods look again.
const pollInterval = 5 * time.Millisecond

// waitFor polls cond until it holds or timeout passes, and reports whether
// it held.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
	return true
}

// selfSigned makes a certificate valid for 127.0.0.1 and localhost for a
// day, writes it as PEM into a file in tb.TempDir(), and returns it with
// the file's path and a pool trusting it.
func selfSigned(tb testing.TB) (cert tls.Certificate, caFile string, roots *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("alerttest: generating a key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "alerttest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("alerttest: creating a certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("alerttest: parsing the certificate: %v", err)
	}
	caFile = filepath.Join(tb.TempDir(), "alerttest-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		tb.Fatalf("alerttest: writing the certificate: %v", err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, caFile, roots
}
