package sessions

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-sessions/caddy-sessions/tracker"
)

// FuzzLoginName: whatever a client sends as a login request body, reading
// the login name neither panics nor loses a byte of the body the app gets.
func FuzzLoginName(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", []byte("username=alice&password=x"))
	f.Add("application/json", []byte(`{"username":"bob","password":"x"}`))
	f.Add("application/json", []byte(`{"username":{"a":[1,2,{"b":null}]}}`))
	f.Add("multipart/form-data; boundary=X", []byte("--X\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\ncarol\r\n--X--\r\n"))
	f.Add("multipart/form-data", []byte("--\r\n"))
	f.Add("text/plain", bytes.Repeat([]byte("a"), maxLoginBody+10))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/login", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		name, err := readLoginName(r, "username")
		if err == nil && (name == "" || len(name) > maxLoginName) {
			t.Fatalf("accepted login name %q", name)
		}
		if err != nil && !errors.As(err, new(errLogin)) {
			t.Fatalf("error %v is no reason for the client", err)
		}
		got, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("the app would get %d bytes of a %d-byte body", len(got), len(body))
		}
	})
}

// FuzzReadCookies: any Cookie header is read without panicking; what is
// enforced is a plain cookie of the header, and the header the app gets
// holds it and no other candidate of its pattern.
func FuzzReadCookies(f *testing.F) {
	f.Add("a=1; sid=tok; b=2")
	f.Add("wordpress_logged_in_abc=v; wordpress_logged_in_x=%34")
	f.Add(`sid=""; sid=x; SID=y; sid =z`)
	f.Add(";;;=;=;sid")
	set, err := compileCookies(CookieNames{"sid", "wordpress_logged_in_*", "!wordpress_logged_in_skip"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		h := http.Header{"Cookie": {header, "sid=second"}}
		read := set.readCookies(h, "dev")
		for i, c := range read.found {
			if c.value == "" {
				continue
			}
			if !plainValue(c.value) || !strings.Contains(header+";sid=second", c.name+"="+c.value) {
				t.Fatalf("pattern %d enforces %q=%q, not a plain cookie of %q", i, c.name, c.value, header)
			}
		}
		set.applyCookies(h, &read)
		forwarded := strings.Join(h["Cookie"], "\n")
		again := set.readCookies(h, "dev")
		if again.found != read.found {
			t.Fatalf("forwarded %q reads as %+v, want %+v", forwarded, again.found, read.found)
		}
		// Forwarding is idempotent: a second proxy changes nothing.
		set.applyCookies(h, &again)
		if got := strings.Join(h["Cookie"], "\n"); got != forwarded {
			t.Fatalf("forwarded %q, then %q", forwarded, got)
		}
	})
}

// FuzzDeviceCookie: a device cookie a client made up is never accepted,
// and never panics.
func FuzzDeviceCookie(f *testing.F) {
	k, err := tracker.NewKeyring([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	_, good := k.NewDevice()
	f.Add(good)
	f.Add("AAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB")
	f.Add(".")
	f.Fuzz(func(t *testing.T, cookie string) {
		id, ok := k.VerifyDevice(cookie)
		if ok && k.DeviceCookie(id) != cookie {
			t.Fatalf("accepted %q, which is not the signed cookie of %q", cookie, id)
		}
	})
}
