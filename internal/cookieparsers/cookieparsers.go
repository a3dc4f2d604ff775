// Package cookieparsers tells what the cookie parsers of real web stacks read
// from a raw Cookie request header. It owns the parser programs beside it
// (parse.php, parse_werkzeug.py, parse_httpcookies.py, parse.js, parse.rb),
// the pinned npm package in node/, and the Go net/http reading done in
// process; scripts/install-parsers.sh installs what they need.
//
// It is a test helper: a security test feeds it adversarial Cookie headers
// and checks that every stack reads the same token the proxy enforced.
//
// Each parser reports, per header, name → value exactly as an application on
// that stack gets it from its standard API (first value per name where the
// stack's API returns one value for a name):
//
//   - php: $_COOKIE, filled by the real CGI SAPI (php-cgi runs once per
//     header, with HTTP_COOKIE set and the CGI php.ini).
//   - werkzeug: Flask's request.cookies.get(name) (werkzeug's parse_cookie).
//   - httpcookies: Python's http.cookies.SimpleCookie().load(header), as
//     {name: morsel.value}; {} if load raises CookieError.
//   - gonethttp: Go's (*http.Request).Cookie(name).
//   - node: require('cookie').parse(header), the package Express uses.
//   - rack: Rack::Request#cookies (Rack::Utils.parse_cookies_header).
//
// Values are byte-exact for the byte-string stacks (php, rack, gonethttp).
// The text stacks (werkzeug, httpcookies, node) get the header as their
// servers hand it over (each byte one latin-1 character) and their values
// are reported as that text in UTF-8. A value that is not a string (a PHP
// array from name[x]=, a Rack nil for a cookie without '=') is reported as
// its JSON text ("{\"x\":\"1\"}", "null"); strings inside it that are not
// valid UTF-8 have U+FFFD in that JSON text.
package cookieparsers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Parsers lists the parser names in a stable order.
var Parsers = []string{"php", "werkzeug", "httpcookies", "gonethttp", "node", "rack"}

// Interpreters are Debian's, by absolute path: the PATH python3 may be a
// pyenv one without python3-werkzeug. Node is whatever node is on PATH.
const (
	python = "/usr/bin/python3"
	ruby   = "/usr/bin/ruby"
	php    = "/usr/bin/php"
	phpCGI = "/usr/bin/php-cgi"
)

// timeout bounds one parser's run over all headers.
const timeout = 2 * time.Minute

type script struct {
	// argv after the script dir is known; dir is prepended to script names.
	argv func(dir string) []string
	// bytesOut: the program's output strings carry bytes as latin-1 code
	// points (php, rack); otherwise they are text.
	bytesOut bool
}

var scripts = map[string]script{
	"php": {
		argv: func(dir string) []string {
			return []string{php, filepath.Join(dir, "parse.php"), phpCGI, strconv.Itoa(max(2, 2*runtime.NumCPU()))}
		},
		bytesOut: true,
	},
	"werkzeug": {argv: func(dir string) []string {
		return []string{python, filepath.Join(dir, "parse_werkzeug.py")}
	}},
	"httpcookies": {argv: func(dir string) []string {
		return []string{python, filepath.Join(dir, "parse_httpcookies.py")}
	}},
	"node": {argv: func(dir string) []string {
		return []string{"node", filepath.Join(dir, "parse.js")}
	}},
	"rack": {
		argv: func(dir string) []string {
			return []string{ruby, filepath.Join(dir, "parse.rb")}
		},
		bytesOut: true,
	},
}

// dir is the directory of this source file, where the parser programs live.
func dir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cookieparsers: cannot locate package source (runtime.Caller)")
	}
	return filepath.Dir(file), nil
}

// ReadAll returns, for each header and each parser, the cookies as that
// parser's applications see them (name → value; a non-string value as its
// JSON text). The key of the result is the parser name, the slice index the
// header index. It fails, naming the parser and quoting its stderr, if any
// parser cannot run: none is ever skipped.
func ReadAll(headers []string) (map[string][]map[string]string, error) {
	d, err := dir()
	if err != nil {
		return nil, err
	}
	out := make(map[string][]map[string]string, len(Parsers))
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs = make([]error, len(Parsers))
	)
	for i, name := range Parsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res []map[string]string
			var err error
			if name == "gonethttp" {
				res = goNetHTTP(headers)
			} else {
				res, err = run(name, scripts[name], d, headers)
			}
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			out[name] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// goNetHTTP reads each header the way (*http.Request).Cookie(name) does.
func goNetHTTP(headers []string) []map[string]string {
	res := make([]map[string]string, len(headers))
	for i, h := range headers {
		r := &http.Request{Header: http.Header{"Cookie": {h}}}
		m := map[string]string{}
		for _, c := range r.Cookies() {
			if _, seen := m[c.Name]; seen {
				continue
			}
			first, err := r.Cookie(c.Name)
			if err != nil { // cannot happen: Cookies() just returned it
				continue
			}
			m[c.Name] = first.Value
		}
		res[i] = m
	}
	return res
}

// latin1 returns s with each byte as one code point (U+0000..U+00FF).
func latin1(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// unLatin1 is the inverse of latin1.
func unLatin1(s string) (string, error) {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return "", fmt.Errorf("code point %U above U+00FF in byte-string output", r)
		}
		b = append(b, byte(r))
	}
	return string(b), nil
}

// run feeds all headers to one long-lived parser program and reads its
// answers, one JSON line per header.
func run(name string, s script, d string, headers []string) ([]map[string]string, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("cookieparsers: parser %s: "+format, append([]any{name}, a...)...)
	}
	var in bytes.Buffer
	for _, h := range headers {
		line, err := json.Marshal(latin1(h))
		if err != nil {
			return nil, fail("encoding header: %v", err)
		}
		in.Write(line)
		in.WriteByte('\n')
	}
	argv := s.argv(d)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = d
	cmd.Stdin = &in
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	hint := " (a missing interpreter or package is installed by: bash scripts/install-parsers.sh)"
	if err := cmd.Run(); err != nil {
		return nil, fail("%s: %v%s; stderr: %s", strings.Join(argv, " "), err, hint, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if stdout.Len() == 0 {
		lines = nil
	}
	if len(lines) != len(headers) {
		return nil, fail("%d answers for %d headers; stderr: %s", len(lines), len(headers), strings.TrimSpace(stderr.String()))
	}
	res := make([]map[string]string, len(headers))
	for i, line := range lines {
		m, err := decodeLine(line, s.bytesOut)
		if err != nil {
			return nil, fail("header %d (%q): %v; answer: %s", i, headers[i], err, line)
		}
		res[i] = m
	}
	return res, nil
}

// decodeLine decodes one answer: a JSON object of name → value.
func decodeLine(line string, bytesOut bool) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &raw); err != nil {
		return nil, err
	}
	m := make(map[string]string, len(raw))
	for k, v := range raw {
		var err error
		if bytesOut {
			if k, err = unLatin1(k); err != nil {
				return nil, err
			}
		}
		var sv string
		if len(v) > 0 && v[0] == '"' {
			if err := json.Unmarshal(v, &sv); err != nil {
				return nil, err
			}
			if bytesOut {
				if sv, err = unLatin1(sv); err != nil {
					return nil, err
				}
			}
		} else {
			if sv, err = jsonText(v, bytesOut); err != nil {
				return nil, err
			}
		}
		m[k] = sv
	}
	return m, nil
}

// jsonText re-emits a non-string JSON value compactly, in its own key order,
// with latin-1 strings turned back into bytes when bytesOut.
func jsonText(v json.RawMessage, bytesOut bool) (string, error) {
	if !bytesOut {
		var b bytes.Buffer
		if err := json.Compact(&b, v); err != nil {
			return "", err
		}
		return b.String(), nil
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var b strings.Builder
	// stack of containers: true for object; count of items written.
	type level struct {
		obj bool
		n   int
	}
	var stack []level
	sep := func() {
		if len(stack) == 0 {
			return
		}
		top := &stack[len(stack)-1]
		if top.obj {
			if top.n%2 == 0 && top.n > 0 {
				b.WriteByte(',')
			} else if top.n%2 == 1 {
				b.WriteByte(':')
			}
		} else if top.n > 0 {
			b.WriteByte(',')
		}
		top.n++
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", err
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				sep()
				b.WriteRune(rune(t))
				stack = append(stack, level{obj: t == '{'})
			default:
				b.WriteRune(rune(t))
				stack = stack[:len(stack)-1]
			}
		case string:
			sep()
			s, err := unLatin1(t)
			if err != nil {
				return "", err
			}
			if !utf8.ValidString(s) {
				s = strings.ToValidUTF8(s, "\uFFFD")
			}
			q, err := marshalNoEscape(s)
			if err != nil {
				return "", err
			}
			b.WriteString(q)
		case json.Number:
			sep()
			b.WriteString(t.String())
		case bool:
			sep()
			b.WriteString(strconv.FormatBool(t))
		case nil:
			sep()
			b.WriteString("null")
		}
	}
	return b.String(), nil
}

func marshalNoEscape(s string) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
