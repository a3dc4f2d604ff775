package sessions

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
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
		name, ok := loginName(r, "username")
		if ok && (name == "" || len(name) > 256) {
			t.Fatalf("accepted login name %q", name)
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

// FuzzCookieValue: any Cookie header is scanned without panicking, and a
// value found is one the header holds.
func FuzzCookieValue(f *testing.F) {
	f.Add("a=1; sid=tok; b=2", "sid", false)
	f.Add("wordpress_logged_in_abc=v", "wordpress_logged_in_", true)
	f.Add(`sid=""; sid=x`, "sid", false)
	f.Add(";;;=;=;sid", "sid", false)
	f.Fuzz(func(t *testing.T, header, name string, wild bool) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Cookie"] = []string{header}
		_, v, ok := cookieValue(r, name, wild)
		if ok && (v == "" || !bytes.Contains([]byte(header), []byte(v))) {
			t.Fatalf("value %q not in header %q", v, header)
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
