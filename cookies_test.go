package sessions

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-sessions/caddy-sessions/internal/cookieparsers"
)

// The token a request presents with the session cookie spelled in ways some
// parser reads like the plain spelling.
const revoked = "r3v0ked4Tok-en,x"

// adversarialCookies are Cookie headers that try to make the module read one
// session cookie and the app another: prefix siblings, duplicates, case and
// whitespace variants, percent-encoded names and values, quotes, PHP's name
// mangling and arrays, separators.
var adversarialCookies = []string{
	"LMSSESSX=junk; LMSSESSID=" + revoked,
	"LMSSESSID=" + revoked,
	"LMSSESSID=junk; LMSSESSID=" + revoked,
	"LMSSESSID=" + revoked + "; LMSSESSID=junk",
	"LMSSESSID=junk; lmssessid=" + revoked,
	"LMSSESSID =" + revoked,
	"LMSSESSID=\t" + revoked,
	"LMSSESSID= " + revoked,
	"\tLMSSESSID=" + revoked,
	"LMSSESSID=junk;\tLMSSESSID=" + revoked,
	"LMSSESS%49D=" + revoked,
	"LMSSESSID=r3v0ked%34Tok-en,x",
	"LMSSESSID=r3v0ked4Tok%2Den%2Cx",
	`LMSSESSID="` + revoked + `"`,
	`x="a; LMSSESSID=` + revoked + `; b"`,
	`LMSSESSID=a"; LMSSESSID=` + revoked,
	"LMSSESSID[x]=" + revoked,
	"LMSSESS.ID=" + revoked,
	"LMSSESS ID=" + revoked,
	"LMSSESSID",
	"LMSSESSID=; LMSSESSID=" + revoked,
	"LMSSESSID=%zz; LMSSESSID=" + revoked,
	"LMSSESSID=%ff; LMSSESSID=" + revoked,
	"LMSSESSID=a+b; LMSSESSID=" + revoked,
	"a=1, LMSSESSID=" + revoked,
	"$Version=1; LMSSESSID=" + revoked,
	"sessions_device=x; LMSSESSID=" + revoked + "; other=1",
	";;; LMSSESSID=" + revoked + ";;",
	"LMSSESSID=" + revoked + "\x00; LMSSESSID=junk",
	"LMSSESSID=\u00e9" + revoked,
}

// TestParsersReadWhatTheModuleEnforces runs every adversarial header
// through the module and then through the cookie parsers of PHP, werkzeug,
// http.cookies, Go, Node's cookie and Rack: in the header the app gets, each
// parser reads as the session cookie exactly what it reads from the cookie
// the module enforced alone, or nothing when the module enforced nothing.
func TestParsersReadWhatTheModuleEnforces(t *testing.T) {
	for _, cfg := range []struct {
		names  CookieNames
		prefix string // the family an app reads its cookie from
		exact  bool
	}{
		{CookieNames{"LMSSESS*"}, "LMSSESS", false},
		{CookieNames{"LMSSESSID"}, "LMSSESSID", true},
	} {
		set, err := compileCookies(cfg.names)
		if err != nil {
			t.Fatal(err)
		}
		var headers []string
		type row struct {
			in, forwarded, name, value string
			alone                      int // index of "name=value" in headers, -1 if nothing enforced
			fwd                        int
		}
		var rows []row
		for _, in := range adversarialCookies {
			h := http.Header{"Cookie": {in}}
			read := set.readCookies(h, "sessions_device")
			set.applyCookies(h, &read)
			r := row{in: in, forwarded: strings.Join(h["Cookie"], "; "), alone: -1}
			if c, ok := read.first(); ok {
				r.name, r.value = c.name, c.value
				r.alone = len(headers)
				headers = append(headers, c.name+"="+c.value)
			}
			r.fwd = len(headers)
			headers = append(headers, r.forwarded)
			rows = append(rows, r)
		}
		got, err := cookieparsers.ReadAll(headers)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range cookieparsers.Parsers {
			for _, r := range rows {
				fwd := got[p][r.fwd]
				var family []string
				for k := range fwd {
					if k == cfg.prefix || (!cfg.exact && strings.HasPrefix(k, cfg.prefix)) {
						family = append(family, k)
					}
				}
				if r.alone < 0 {
					if len(family) > 0 {
						t.Errorf("%v %s: module enforced nothing in %q, but the app reads %v from %q", cfg.names, p, r.in, family, r.forwarded)
					}
					continue
				}
				want, wantOK := got[p][r.alone][r.name]
				switch {
				case len(family) > 1:
					t.Errorf("%v %s: %q forwarded as %q: the app sees %v, more than the enforced %s", cfg.names, p, r.in, r.forwarded, family, r.name)
				case len(family) == 1 && (family[0] != r.name || fwd[r.name] != want):
					t.Errorf("%v %s: %q forwarded as %q: the app reads %s=%q, the module enforced %s=%q (read %q)", cfg.names, p, r.in, r.forwarded, family[0], fwd[family[0]], r.name, r.value, want)
				case len(family) == 0 && wantOK:
					t.Errorf("%v %s: %q forwarded as %q: the app reads no session cookie, though it reads %s=%q alone", cfg.names, p, r.in, r.forwarded, r.name, want)
				}
			}
		}
	}
}

// TestSpellingsOfOneTokenAreOneToken: every spelling of a session cookie
// value that some parser reads as the plain value is either dropped by the
// module (the app never sees it) or enforced as the same token.
func TestSpellingsOfOneTokenAreOneToken(t *testing.T) {
	set, err := compileCookies(CookieNames{"sid"})
	if err != nil {
		t.Fatal(err)
	}
	tokens := []string{"abc4def", "a+b/c=", "x y", "a%2Bb"}
	var spellings [][]string
	for _, tok := range tokens {
		var vs []string
		for i := 0; i < len(tok); i++ {
			pre, c, post := tok[:i], tok[i], tok[i+1:]
			vs = append(vs,
				pre+"%"+strings.ToUpper(hex2(c))+post,
				pre+"%"+hex2(c)+post,
				`"`+tok+`"`,
			)
			if c == ' ' {
				vs = append(vs, pre+"+"+post, pre+"%20"+post)
			}
			if c == '+' {
				vs = append(vs, pre+" "+post, pre+"%20"+post, pre+"%2B"+post)
			}
		}
		spellings = append(spellings, vs)
	}
	var headers []string
	for i, tok := range tokens {
		headers = append(headers, "sid="+tok)
		for _, v := range spellings[i] {
			headers = append(headers, "sid="+v)
		}
	}
	got, err := cookieparsers.ReadAll(headers)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, tok := range tokens {
		base := n
		n++
		for _, v := range spellings[i] {
			idx := n
			n++
			for _, p := range cookieparsers.Parsers {
				plain, ok1 := got[p][base]["sid"]
				other, ok2 := got[p][idx]["sid"]
				if !ok1 || !ok2 || plain != other {
					continue
				}
				// p reads v as the plain token.
				read := set.readCookies(http.Header{"Cookie": {"sid=" + v}}, "")
				c, ok := read.first()
				if !ok {
					continue // dropped: the app never sees it
				}
				if want := cookieToken(tok); c.token != want && plainValue(tok) {
					t.Errorf("%s reads sid=%q as sid=%q, but the module enforces token %q, not %q", p, v, tok, c.token, want)
				}
			}
		}
	}
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

func TestReadCookies(t *testing.T) {
	set, err := compileCookies(CookieNames{"wordpress_logged_in_*", "wordpress_sec_*", "wordpress_*", "!wordpress_test_cookie"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in, want, forwarded string
	}{
		{"wordpress_logged_in_h=a%7Cb; wordpress_test_cookie=WP%20Cookie%20check", "wordpress_logged_in_h=a|b", ""},
		{"wordpress_h=x; wordpress_logged_in_h=y; other=1", "wordpress_logged_in_h=y wordpress_h=x", ""},
		{"wordpress_logged_in_h=y; wordpress_logged_in_h=z", "wordpress_logged_in_h=y", "wordpress_logged_in_h=y"},
		{"Wordpress_logged_in_h=z; wordpress_logged_in_h=y", "wordpress_logged_in_h=y", "wordpress_logged_in_h=y"},
		{"wordpress_logged_in_h =z; a=1", "", "a=1"},
		{"wordpress_logged_in_h=\"z\"", "", "-"},
		{"", "", ""},
		{"a=1; b=2", "", ""},
	} {
		h := http.Header{}
		if c.in != "" {
			h["Cookie"] = []string{c.in}
		}
		read := set.readCookies(h, "dev")
		var got []string
		for _, f := range read.found {
			if f.value != "" {
				got = append(got, f.name+"="+f.token)
			}
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("%q: enforced %q, want %q", c.in, g, c.want)
		}
		set.applyCookies(h, &read)
		fwd := strings.Join(h["Cookie"], "|")
		switch {
		case c.forwarded == "" && fwd != c.in:
			t.Errorf("%q: forwarded %q, want it unchanged", c.in, fwd)
		case c.forwarded == "-" && fwd != "":
			t.Errorf("%q: forwarded %q, want no Cookie header", c.in, fwd)
		case c.forwarded != "" && c.forwarded != "-" && fwd != c.forwarded:
			t.Errorf("%q: forwarded %q, want %q", c.in, fwd, c.forwarded)
		}
	}
	// Several header lines (HTTP/2) become one.
	h := http.Header{"Cookie": {"a=1", "wordpress_logged_in_h=y"}}
	read := set.readCookies(h, "")
	set.applyCookies(h, &read)
	if got := h["Cookie"]; len(got) != 1 || got[0] != "wordpress_logged_in_h=y; a=1" {
		t.Errorf("two lines forwarded as %q", got)
	}
}

func TestCookieToken(t *testing.T) {
	for in, want := range map[string]string{
		"abc": "abc", "a%34": "a4", "a+b": "a b", "a%2Bb": "a b", "a%20b": "a b", "%7C": "|",
	} {
		if got := cookieToken(in); got != want {
			t.Errorf("cookieToken(%q) = %q, want %q", in, got, want)
		}
	}
	for v, want := range map[string]bool{
		"abc": true, "a%34": true, "a%zz": false, "a%3": false, `"a"`: false, "a b": false, "a\\b": false,
		"%ff": false, "%c3%a9": true, "é": false, "": false, "a,b-c.d_e~f!#$&'()*/:<=>?@[]^`{|}": true,
	} {
		if got := plainValue(v); got != want {
			t.Errorf("plainValue(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestCookieNamesJSON(t *testing.T) {
	for in, want := range map[string]string{
		`"sid"`: "sid", `["a*","!a_test"]`: "a* !a_test", `""`: "", `[]`: "",
	} {
		var c CookieNames
		if err := c.UnmarshalJSON([]byte(in)); err != nil || strings.Join(c, " ") != want {
			t.Errorf("%s: %q, %v; want %q", in, c, err, want)
		}
	}
	var c CookieNames
	if err := c.UnmarshalJSON([]byte(`{"a":1}`)); err == nil || !strings.Contains(err.Error(), "session_cookie") {
		t.Errorf("an object: %v", err)
	}
}

// Names behind white space some stack strips (Unicode, or Latin-1 bytes a
// server reads the header as) are candidates: dropped, never passed by.
func TestCookieNamesBehindAnySpace(t *testing.T) {
	set, err := compileCookies(CookieNames{"sid"})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		"\xa0sid=R", "\xc2\xa0sid=R", "sid\u3000=R", "\u2003sid=R", "sid\x85=R", "sid=good; \xc2\xa0sid=R", "\vsid=R",
	} {
		h := http.Header{"Cookie": {in}}
		read := set.readCookies(h, "")
		set.applyCookies(h, &read)
		if fwd := strings.Join(h["Cookie"], "|"); strings.Contains(fwd, "=R") {
			t.Errorf("%q forwarded as %q: a look-alike of sid reaches the app", in, fwd)
		}
	}
}
