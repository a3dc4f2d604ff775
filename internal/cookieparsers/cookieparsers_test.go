package cookieparsers

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// These tests pin what each real parser does (observed with PHP 8.2 php-cgi,
// Werkzeug 2.2.2 and http.cookies on Python 3.11, Go's net/http, npm cookie
// 0.7.2 on Node 20, Rack 2.2.22 on Ruby 3.1). None of them skips: a missing
// interpreter or package makes ReadAll fail, and so the test.

// kv builds a name → value map from pairs.
func kv(pairs ...string) map[string]string {
	if len(pairs)%2 != 0 {
		panic("kv: odd number of arguments")
	}
	m := map[string]string{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

type byParser map[string]map[string]string

// same expects m from every parser except those listed in except.
func same(m map[string]string, except byParser) byParser {
	w := byParser{}
	for _, p := range Parsers {
		if e, ok := except[p]; ok {
			w[p] = e
		} else {
			w[p] = m
		}
	}
	return w
}

var none = kv()

var cases = []struct {
	name   string
	header string
	want   byParser
}{
	{"plain", "a=1; b=2", same(kv("a", "1", "b", "2"), nil)},
	{"no space after semicolon", "a=1;b=2", same(kv("a", "1", "b", "2"), nil)},

	// Duplicate names: everyone takes the first, except SimpleCookie, a dict
	// that a later morsel of the same name overwrites: last wins.
	{"duplicate", "a=1; a=2", same(kv("a", "1"), byParser{"httpcookies": kv("a", "2")})},
	{"duplicate x3", "a=1; a=2; a=3", same(kv("a", "1"), byParser{"httpcookies": kv("a", "3")})},
	{"duplicate sid", "sid=evil; sid=good", same(kv("sid", "evil"), byParser{"httpcookies": kv("sid", "good")})},

	// Names are case-sensitive everywhere.
	{"case", "A=1; a=2", same(kv("A", "1", "a", "2"), nil)},
	{"case dup", "a=v; A=w; a=x", same(kv("a", "v", "A", "w"), byParser{"httpcookies": kv("a", "x", "A", "w")})},

	// Percent-decoding of values: PHP, node (decodeURIComponent) and Rack
	// decode; Werkzeug, SimpleCookie and Go keep the text as sent.
	{"pct value", "a=%34", same(kv("a", "%34"), byParser{"php": kv("a", "4"), "node": kv("a", "4"), "rack": kv("a", "4")})},
	{"pct plus", "a=%2B", same(kv("a", "%2B"), byParser{"php": kv("a", "+"), "node": kv("a", "+"), "rack": kv("a", "+")})},
	{"pct utf8", "a=%C3%A9", same(kv("a", "%C3%A9"), byParser{"php": kv("a", "é"), "node": kv("a", "é"), "rack": kv("a", "é")})},
	// A byte that is not UTF-8: PHP and Rack hand the application the raw
	// byte; node's decodeURIComponent throws and cookie keeps the text.
	{"pct non-utf8", "a=%ff", same(kv("a", "%ff"), byParser{"php": kv("a", "\xff"), "rack": kv("a", "\xff")})},
	{"pct invalid", "a=%ZZ", same(kv("a", "%ZZ"), nil)},

	// '+' is a space only for Rack (URI.decode_www_form_component). PHP
	// decodes cookie values with rawurldecode semantics: '+' stays '+'.
	{"plus", "a=x+y", same(kv("a", "x+y"), byParser{"rack": kv("a", "x y")})},

	// Nobody percent-decodes names. (PHP stopped doing so in 8.0.24/8.1.11,
	// the fix for CVE-2022-31629 "__Host-" spoofing via "__%48ost-".)
	{"pct name", "%61=1", same(kv("%61", "1"), nil)},
	{"pct name =", "a%3Db=1", same(kv("a%3Db", "1"), nil)},

	// Whitespace before '=': PHP turns the trailing space of the name into
	// '_' (a name "a_"), Rack keeps it (a name "a "); the rest trim it.
	{"space before =", "a =1", same(kv("a", "1"), byParser{"php": kv("a_", "1"), "rack": kv("a ", "1")})},
	// ... so with a duplicate, PHP and Rack see the second "a" as the only
	// "a", where the others see the first one (SimpleCookie: the last).
	{"space before = dup", "a =1; a=2", same(kv("a", "1"), byParser{
		"php": kv("a_", "1", "a", "2"), "rack": kv("a ", "1", "a", "2"), "httpcookies": kv("a", "2"),
	})},
	{"dup space before =", "a=1; a =2", same(kv("a", "1"), byParser{
		"php": kv("a", "1", "a_", "2"), "rack": kv("a", "1", "a ", "2"), "httpcookies": kv("a", "2"),
	})},
	// Whitespace after '=' and at the end of a value: PHP and Rack keep it
	// all. Go drops the cookie with a tab (not a valid value byte), and keeps
	// a leading space (it trims only the whole "name=value" part).
	{"tab after =", "a=\t1", same(kv("a", "1"), byParser{"php": kv("a", "\t1"), "rack": kv("a", "\t1"), "gonethttp": none})},
	{"spaces around value", "a= 1 ", same(kv("a", "1"), byParser{"php": kv("a", " 1 "), "rack": kv("a", " 1 "), "gonethttp": kv("a", " 1")})},
	{"space before ;", "a=1 ; b=2", same(kv("a", "1", "b", "2"), byParser{"php": kv("a", "1 ", "b", "2"), "rack": kv("a", "1 ", "b", "2")})},
	// A leading space of the header (servers strip it anyway) and a tab
	// after ';': Rack only skips spaces after ';'.
	{"leading space", " a=1", same(kv("a", "1"), byParser{"rack": kv(" a", "1")})},
	{"tab after ;", "a=1;\tb=2", same(kv("a", "1", "b", "2"), byParser{"rack": kv("a", "1", "\tb", "2")})},

	// Quoted values: PHP and Rack keep the quotes; the others strip them.
	{"quoted", `a="quoted"`, same(kv("a", "quoted"), byParser{"php": kv("a", `"quoted"`), "rack": kv("a", `"quoted"`)})},
	// A ';' inside quotes: Werkzeug and SimpleCookie honour the quotes; PHP,
	// node and Rack split there (PHP and Rack also make a cookie `x"`); Go
	// drops the malformed "a" and keeps b.
	{"quoted semicolon", `a="q;x"; b=2`, byParser{
		"php":         kv("a", `"q`, `x"`, "", "b", "2"),
		"werkzeug":    kv("a", "q;x", "b", "2"),
		"httpcookies": kv("a", "q;x", "b", "2"),
		"gonethttp":   kv("b", "2"),
		"node":        kv("a", `"q`, "b", "2"),
		"rack":        kv("a", `"q`, `x"`, "null", "b", "2"),
	}},
	// Backslash escapes inside quotes: Werkzeug and SimpleCookie unescape
	// (\" and octal \101), node only strips the outer quotes, Go rejects.
	{"quoted escape", `a="x\"y"`, byParser{
		"php": kv("a", `"x\"y"`), "werkzeug": kv("a", `x"y`), "httpcookies": kv("a", `x"y`),
		"gonethttp": none, "node": kv("a", `x\"y`), "rack": kv("a", `"x\"y"`),
	}},
	{"quoted octal", `a="\101"`, byParser{
		"php": kv("a", `"\101"`), "werkzeug": kv("a", "A"), "httpcookies": kv("a", "A"),
		"gonethttp": none, "node": kv("a", `\101`), "rack": kv("a", `"\101"`),
	}},
	{"unbalanced quote", `a="x`, same(kv("a", `"x`), byParser{"httpcookies": none, "gonethttp": none})},
	// An invalid cookie before a valid duplicate: Go skips the invalid one
	// and reads the second sid; SimpleCookie stops at it.
	{"invalid then dup", `x=1; sid=a"; sid=b`, same(kv("x", "1", "sid", `a"`), byParser{
		"gonethttp": kv("x", "1", "sid", "b"), "httpcookies": kv("x", "1"),
	})},

	// Name mangling: PHP turns '.' and ' ' in names into '_' (register
	// globals heritage), so "a.b" and "a_b" collide (first wins). Nobody else
	// mangles; SimpleCookie and Go reject a space in a name.
	{"dot in name", "a.b=1", same(kv("a.b", "1"), byParser{"php": kv("a_b", "1")})},
	{"space in name", "a b=1", same(kv("a b", "1"), byParser{"php": kv("a_b", "1"), "httpcookies": none, "gonethttp": none})},
	{"dot collides", "a.b=1; a_b=2", same(kv("a.b", "1", "a_b", "2"), byParser{"php": kv("a_b", "1")})},
	{"underscore collides", "a_b=1; a.b=2", same(kv("a_b", "1", "a.b", "2"), byParser{"php": kv("a_b", "1")})},
	// PHP builds arrays from name[key]; a non-string value is reported as
	// its JSON text. SimpleCookie and Go reject '[' in names.
	{"php array", "a[x]=1; a[y]=2", same(kv("a[x]", "1", "a[y]", "2"), byParser{
		"php": kv("a", `{"x":"1","y":"2"}`), "httpcookies": none, "gonethttp": none,
	})},
	{"php list", "a[]=1", same(kv("a[]", "1"), byParser{"php": kv("a", `["1"]`), "httpcookies": none, "gonethttp": none})},
	{"numeric name", "0=x", same(kv("0", "x"), nil)},

	// No '=': an empty value, except node (skipped), Rack (nil, reported as
	// JSON null) and SimpleCookie (gives up on the whole header).
	{"no =", "a", same(kv("a", ""), byParser{"node": none, "rack": kv("a", "null"), "httpcookies": none})},
	{"no = later", "a=1;b", same(kv("a", "1", "b", ""), byParser{"node": kv("a", "1"), "rack": kv("a", "1", "b", "null"), "httpcookies": none})},
	// Empty name: node and Rack report a cookie named ""; SimpleCookie gives
	// up on the whole header.
	{"empty name", "=x; a=1", same(kv("a", "1"), byParser{"node": kv("", "x", "a", "1"), "rack": kv("", "x", "a", "1"), "httpcookies": none})},
	// An empty part stops SimpleCookie; the rest skip it.
	{"empty part", "a=1;;b=2", same(kv("a", "1", "b", "2"), byParser{"httpcookies": kv("a", "1")})},
	// ',' separates nothing (Rack 2.2 no longer splits on it).
	{"comma", "a=1,b=2", same(kv("a", "1,b=2"), nil)},
	{"double =", "a==b", same(kv("a", "=b"), nil)},
	// SimpleCookie treats RFC 2109 attribute names as attributes of the
	// previous cookie, not as cookies; and stops at an invalid name.
	{"$Version", "a=1; $Version=1; b=2", same(kv("a", "1", "$Version", "1", "b", "2"), byParser{"httpcookies": kv("a", "1", "b", "2")})},
	{"attribute name", "a=1; expires=2; b=3", same(kv("a", "1", "expires", "2", "b", "3"), byParser{"httpcookies": kv("a", "1", "b", "3")})},
	{"quote in name", `a=1; bad"=2; b=3`, same(kv("a", "1", `bad"`, "2", "b", "3"), byParser{
		"httpcookies": kv("a", "1"), "gonethttp": kv("a", "1", "b", "3"),
	})},

	// Raw non-ASCII bytes. PHP and Rack: the bytes. Werkzeug decodes UTF-8
	// (invalid -> U+FFFD). Node hands cookie the header as latin-1 text, so
	// UTF-8 "é" reads as "Ã©". SimpleCookie and Go reject the cookie.
	{"raw utf8", "a=é", same(kv("a", "é"), byParser{"node": kv("a", "Ã©"), "httpcookies": none, "gonethttp": none})},
	{"raw bytes", "a=\xff\x01", byParser{
		"php": kv("a", "\xff\x01"), "werkzeug": kv("a", "\uFFFD\x01"), "httpcookies": none,
		"gonethttp": none, "node": kv("a", "ÿ\x01"), "rack": kv("a", "\xff\x01"),
	}},

	{"empty header", "", same(none, nil)},
}

func show(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: %q", k, m[k])
	}
	b.WriteString("}")
	return b.String()
}

// TestBehaviour runs every case through every parser in one batch and
// checks each parser's reading against the pinned one.
func TestBehaviour(t *testing.T) {
	headers := make([]string, len(cases))
	for i, c := range cases {
		headers[i] = c.header
		if len(c.want) != len(Parsers) {
			t.Fatalf("case %q: expectations for %d parsers, want all %d", c.name, len(c.want), len(Parsers))
		}
	}
	got, err := ReadAll(headers)
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, got, len(headers))
	for i, c := range cases {
		for _, p := range Parsers {
			if g, w := got[p][i], c.want[p]; !maps.Equal(g, w) {
				t.Errorf("%s: %s on %q:\n got  %s\n want %s", c.name, p, c.header, show(g), show(w))
			}
		}
	}
}

func checkShape(t *testing.T, got map[string][]map[string]string, n int) {
	t.Helper()
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, slices.Sorted(slices.Values(Parsers))) {
		t.Fatalf("parsers in result: %v, want %v", keys, Parsers)
	}
	for _, p := range Parsers {
		if len(got[p]) != n {
			t.Fatalf("%s: %d results for %d headers", p, len(got[p]), n)
		}
		for i, m := range got[p] {
			if m == nil {
				t.Fatalf("%s: nil map for header %d", p, i)
			}
		}
	}
}

// TestEveryParserRuns proves each parser really ran on each header: a
// distinct value per header comes back from every parser, in order.
func TestEveryParserRuns(t *testing.T) {
	const n = 100
	headers := make([]string, n)
	for i := range headers {
		headers[i] = fmt.Sprintf("sid=tok%03d; other=x", i)
	}
	got, err := ReadAll(headers)
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, got, n)
	for _, p := range Parsers {
		for i := range headers {
			want := kv("sid", fmt.Sprintf("tok%03d", i), "other", "x")
			if !maps.Equal(got[p][i], want) {
				t.Fatalf("%s, header %d: got %s, want %s", p, i, show(got[p][i]), show(want))
			}
		}
	}
}

// TestNoHeaders: an empty batch still runs nothing wrong.
func TestNoHeaders(t *testing.T) {
	got, err := ReadAll(nil)
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, got, 0)
}

// TestOtherWorkingDirectory: the programs are found from the package source,
// not from the working directory.
func TestOtherWorkingDirectory(t *testing.T) {
	t.Chdir(t.TempDir())
	got, err := ReadAll([]string{"a=1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Parsers {
		if !maps.Equal(got[p][0], kv("a", "1")) {
			t.Errorf("%s: got %s", p, show(got[p][0]))
		}
	}
}

// TestMissingParserFails: a missing interpreter or package is an error
// naming the parser and quoting its stderr, never a skip.
func TestMissingParserFails(t *testing.T) {
	d, err := dir()
	if err != nil {
		t.Fatal(err)
	}
	missingInterp := script{argv: func(string) []string { return []string{"/nonexistent/python3", "x.py"} }}
	_, err = run("werkzeug", missingInterp, d, []string{"a=1"})
	if err == nil || !strings.Contains(err.Error(), "parser werkzeug") || !strings.Contains(err.Error(), "/nonexistent/python3") {
		t.Errorf("missing interpreter: err = %v", err)
	}

	missingPkg := script{argv: func(string) []string {
		return []string{python, "-c", "import werkzeug_not_installed_here"}
	}}
	_, err = run("werkzeug", missingPkg, d, []string{"a=1"})
	if err == nil || !strings.Contains(err.Error(), "parser werkzeug") || !strings.Contains(err.Error(), "ModuleNotFoundError") {
		t.Errorf("missing package: err = %v", err)
	}

	// A program that answers too few lines is an error too.
	silent := script{argv: func(string) []string { return []string{python, "-c", "import sys; sys.stdin.read()"} }}
	_, err = run("httpcookies", silent, d, []string{"a=1"})
	if err == nil || !strings.Contains(err.Error(), "parser httpcookies") || !strings.Contains(err.Error(), "0 answers for 1 headers") {
		t.Errorf("silent parser: err = %v", err)
	}
}

// TestPHPNulByte: a NUL cannot travel in CGI's HTTP_COOKIE; that is an
// error for php, not a made-up reading.
func TestPHPNulByte(t *testing.T) {
	_, err := ReadAll([]string{"a=1\x00"})
	if err == nil || !strings.Contains(err.Error(), "parser php") || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("err = %v", err)
	}
}

// TestPHPMaxInputVars: $_COOKIE is filled by the real SAPI, with its
// max_input_vars (1000 in Debian's CGI php.ini): later cookies are dropped.
func TestPHPMaxInputVars(t *testing.T) {
	parts := make([]string, 1001)
	for i := range parts {
		parts[i] = fmt.Sprintf("c%d=%d", i, i)
	}
	parts[1000] = "sid=late"
	got, err := ReadAll([]string{strings.Join(parts, "; ")})
	if err != nil {
		t.Fatal(err)
	}
	if m := got["php"][0]; len(m) != 1000 || m["c999"] != "999" || m["sid"] != "" {
		t.Errorf("php: %d cookies, c999=%q, sid=%q; want 1000, 999, none", len(m), m["c999"], m["sid"])
	}
	for _, p := range []string{"werkzeug", "gonethttp", "node", "rack"} {
		if v := got[p][0]["sid"]; v != "late" {
			t.Errorf("%s: sid=%q, want late", p, v)
		}
	}
}

func TestJSONText(t *testing.T) {
	for _, c := range []struct {
		in       string
		bytesOut bool
		want     string
	}{
		{`{"b":"1","a":["x",{"k":null}]}`, true, `{"b":"1","a":["x",{"k":null}]}`},
		{`{"\u00ff":"\u00e9<"}`, true, "{\"\uFFFD\":\"\uFFFD<\"}"},
		{`[1, true, 2.5]`, true, `[1,true,2.5]`},
		{`{ "a" : "é" }`, false, `{"a":"é"}`},
	} {
		got, err := jsonText([]byte(c.in), c.bytesOut)
		if err != nil || got != c.want {
			t.Errorf("jsonText(%s, %v) = %q, %v; want %q", c.in, c.bytesOut, got, err, c.want)
		}
	}
}
