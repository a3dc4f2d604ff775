package sessions

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadLoginName(t *testing.T) {
	form := "application/x-www-form-urlencoded"
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("username", "carol")
	fw, _ := mw.CreateFormFile("username", "evil.txt") // a file part is no field
	_, _ = fw.Write([]byte("mallory"))
	_ = mw.Close()
	for _, c := range []struct {
		name, ct, body, want, reason string
		header                       http.Header
	}{
		{"form", form, "username=alice&password=x", "alice", "", nil},
		{"form, escapes", form, "username=Al%C3%AFce+B&password=x", "Alïce B", "", nil},
		{"form, trimmed", form, "username=+alice+&password=x", "alice", "", nil},
		{"form, charset", form + "; charset=utf-8", "username=alice", "alice", "", nil},
		{"json", "application/json", `{"username":"bob","password":"x"}`, "bob", "", nil},
		{"json, escaped key", "application/vnd.api+json", `{"user\u006eame":"bob"}`, "bob", "", nil},
		{"multipart", mw.FormDataContentType(), mp.String(), "carol", "", nil},
		{"form, twice", form, "username=bob&username=carol", "", "more than once", nil},
		{"form, PHP array", form, "username[]=bob", "", "written as", nil},
		{"form, PHP mangled", form, "user.name=bob", "", "", nil}, // not the field "username": missing
		{"form, bad escape", form, "username=bob&x=%zz", "", "malformed", nil},
		{"form, semicolon", form, "username=bob;password=x", "", "';'", nil},
		{"form, missing", form, "password=x", "", "without", nil},
		{"form, empty", form, "username=&password=x", "", "empty", nil},
		{"form, control", form, "username=bo%00b", "", "not text", nil},
		{"form, long", form, "username=" + strings.Repeat("a", 257), "", "over 256", nil},
		{"json, duplicate", "application/json", `{"username":"bob","username":"carol"}`, "", "more than once", nil},
		{"json, number", "application/json", `{"username":1}`, "", "not a string", nil},
		{"json, array", "application/json", `["username"]`, "", "not a JSON object", nil},
		{"json, trailing", "application/json", `{"username":"bob"} {}`, "", "after the JSON object", nil},
		{"json as form", "application/json", "username=bob", "", "not a JSON object", nil},
		{"text", "text/plain", "username=bob", "", "not read", nil},
		{"no type", "", "username=bob", "", "Content-Type", nil},
		{"two types", "", "username=bob", "", "exactly one", http.Header{"Content-Type": {form, form}}},
		{"gzip", form, "username=bob", "", "Content-Encoding", http.Header{"Content-Encoding": {"gzip"}}},
		{"big", form, "username=bob&pad=" + strings.Repeat("x", maxLoginBody), "", "over 65536", nil},
		{"form, NUL in a key", form, "username=carol&username%00=bob", "", "written as", nil},
		{"form, case variant", form, "USERNAME=bob", "", "written as", nil},
		{"json, case variant", "application/json", `{"username":"fake","USERNAME":"victim"}`, "", "more than once", nil},
		{"json, long s", "application/json", `{"uſername":"victim"}`, "", "", nil},
		{"multipart, attachment", "multipart/form-data; boundary=B", "--B\r\nContent-Disposition: attachment; name=\"username\"\r\n\r\nbob\r\n--B--\r\n", "", "read differently", nil},
		{"multipart, two names", "multipart/form-data; boundary=B", "--B\r\nContent-Disposition: form-data; name=\"x\"; name=\"username\"\r\n\r\nbob\r\n--B--\r\n", "", "", nil},
		{"multipart, two boundaries", "multipart/form-data; xboundary=A; boundary=B", "--B\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nbob\r\n--B--\r\n", "", "several boundaries", nil},
		{"multipart, transfer encoding", "multipart/form-data; boundary=B", "--B\r\nContent-Disposition: form-data; name=\"username\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nbob\r\n--B--\r\n", "", "read differently", nil},
		{"multipart, empty filename", "multipart/form-data; boundary=B", "--B\r\nContent-Disposition: form-data; name=\"username\"; filename=\"\"\r\n\r\nbob\r\n--B--\r\n", "", "without", nil},
		{"multipart, twice", mw.FormDataContentType(), strings.Replace(mp.String(), "carol", "carol\r\n--"+mw.Boundary()+"\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nbob", 1), "", "more than once", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(c.body))
			if c.ct != "" {
				r.Header.Set("Content-Type", c.ct)
			}
			for k, v := range c.header {
				r.Header[k] = v
			}
			name, err := readLoginName(r, "username")
			switch {
			case c.want != "" && (err != nil || name != c.want):
				t.Errorf("= %q, %v; want %q", name, err, c.want)
			case c.want == "" && err == nil:
				t.Errorf("= %q, accepted", name)
			case c.reason != "" && (err == nil || !strings.Contains(err.Error(), c.reason)):
				t.Errorf("error %v does not say %q", err, c.reason)
			}
			// The app gets the body, byte for byte, whatever happened.
			if got, _ := io.ReadAll(r.Body); string(got) != c.body {
				t.Errorf("the app would get %d of %d body bytes", len(got), len(c.body))
			}
		})
	}
}

func TestNormalizeUser(t *testing.T) {
	for _, c := range []struct {
		in   string
		ops  []string
		want string
	}{
		{" alice ", nil, "alice"},
		{"Alice@Example.com", []string{NormalizeLower}, "alice@example.com"},
		{"erin", []string{NormalizeUpperFirst}, "Erin"},
		{"ärger", []string{NormalizeUpperFirst}, "Ärger"},
		{"Zoe\u0308", nil, "Zoë"}, // NFD to NFC: one user however typed
		{"ZOE\u0308", []string{NormalizeLower}, "zoë"},
	} {
		if got := normalizeUser(c.in, c.ops); got != c.want {
			t.Errorf("normalizeUser(%q, %v) = %q, want %q", c.in, c.ops, got, c.want)
		}
	}
}

func TestLoginUserFromAnswer(t *testing.T) {
	wp := &LoginUser{Cookie: "wordpress_logged_in_*", Pattern: `^([^|]+)\|`}
	hdr := &LoginUser{Header: "X-User"}
	mw := &LoginUser{Cookie: "wikiUserName"}
	for _, lu := range []*LoginUser{wp, hdr, mw} {
		if err := lu.provision(); err != nil {
			t.Fatal(err)
		}
	}
	h := http.Header{}
	h.Add("Set-Cookie", "wordpress_test_cookie=WP%20Cookie%20check; Path=/")
	h.Add("Set-Cookie", "wordpress_logged_in_abc=alice%7C1700000000%7Ctok%7Chmac; Path=/; HttpOnly")
	h.Add("Set-Cookie", "wikiUserName=Erin+Smith; Path=/")
	h.Set("X-User", "bob")
	for _, c := range []struct {
		lu   *LoginUser
		want string
	}{{wp, "alice"}, {hdr, "bob"}, {mw, "Erin Smith"}} {
		if got := c.lu.from(h); got != c.want {
			t.Errorf("%+v: %q, want %q", c.lu, got, c.want)
		}
	}
	if got := wp.from(http.Header{"Set-Cookie": {"wordpress_logged_in_abc=nobar"}}); got != "" {
		t.Errorf("a value the pattern does not match: %q", got)
	}
}

// TestCookieWatch: the watcher sees what the answer does to each session
// cookie, before the header goes out, and the last Set-Cookie of a name
// wins as in the browser.
func TestCookieWatch(t *testing.T) {
	set, err := compileCookies(CookieNames{"wp_li_*", "wp_*", "!wp_test"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	cw := newCookieWatch(rec, &set)
	defer cw.release()
	var seen [maxCookiePatterns]cookieChange
	cw.onHeader = func() { seen = cw.changes }
	cw.Header().Add("Set-Cookie", "wp_li_h=first; Path=/")
	cw.Header().Add("Set-Cookie", "wp_li_h=second; Path=/")
	cw.Header().Add("Set-Cookie", "wp_h=; Max-Age=0; Path=/wp-admin")
	cw.Header().Add("Set-Cookie", "wp_test=WP%20Cookie; Path=/")
	cw.Header().Add("Set-Cookie", "other=1")
	cw.WriteHeader(http.StatusFound)
	if seen[0] != (cookieChange{name: "wp_li_h", value: "second"}) {
		t.Errorf("pattern 0: %+v", seen[0])
	}
	if seen[1] != (cookieChange{name: "wp_h", deleted: true}) {
		t.Errorf("pattern 1: %+v", seen[1])
	}
	if cw.status != http.StatusFound || rec.Code != http.StatusFound {
		t.Errorf("status %d / %d", cw.status, rec.Code)
	}
	// A 103 Early Hints is not the answer.
	rec2 := httptest.NewRecorder()
	cw2 := newCookieWatch(rec2, &set)
	defer cw2.release()
	calls := 0
	cw2.onHeader = func() { calls++ }
	cw2.WriteHeader(http.StatusEarlyHints)
	_, _ = cw2.Write([]byte("ok"))
	if calls != 1 || cw2.status != http.StatusOK {
		t.Errorf("onHeader ran %d times, status %d", calls, cw2.status)
	}
	if cw2.Unwrap() != rec2 {
		t.Error("the watcher does not unwrap to the writer it wraps")
	}
}
