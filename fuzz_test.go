package sessions

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
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

// FuzzCaddyfile: whatever a Caddyfile's sessions block holds, parsing and
// checking it never panic; a block that parses and passes the checks
// marshals to JSON that reads back to the same checks' verdict, and an
// error names what it is about (never an empty message).
func FuzzCaddyfile(f *testing.F) {
	for _, s := range []string{
		"sessions {\n\tuser {http.auth.user.id}\n}",
		"sessions {\n\tsession_cookie wordpress_logged_in_* !wordpress_test_cookie\n\tlogin /wp-login.php\n\tlogin_success new_cookie\n}",
		"sessions {\n\tuser {x}\n\trestrict {\n\t\tmax_ips 3 24h block\n\t\tmax_sessions 2 evict_oldest\n\t}\n}",
		"sessions {\n\tuser {x}\n\tself_service /s/ {\n\t\ttitle \"a b\"\n\t\tback / Back\n\t}\n}",
		"sessions {\n\tsession_cookie a;b\n}",
		"sessions {\n\tuser {x}\n\tip_precision half\n\ttime_zone Mars/Olympus\n}",
		"sessions {\n\tuser {x}\n\tlogin_user header X-User ^(.+$\n}",
		"sessions {\n\tstore {\n\t\taddrs a:1 b:2\n\t\tmaster_name m\n\t}\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if len(in) > 4096 {
			return
		}
		h := httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(in)}
		m, err := parseCaddyfile(h)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("%q: an empty error", in)
			}
			return
		}
		cerr := m.(*Handler).checkConfig()
		if cerr != nil && cerr.Error() == "" {
			t.Fatalf("%q: an empty config error", in)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("%q: marshalling: %v", in, err)
		}
		var back Handler
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q: reading back %s: %v", in, b, err)
		}
		if berr := back.checkConfig(); (berr == nil) != (cerr == nil) {
			t.Fatalf("%q: checks disagree between the Caddyfile (%v) and its JSON (%v)", in, cerr, berr)
		}
	})
}
