package sessions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Reading a login request's body: the login name exactly as every app
// parser reads it, or a reason to refuse it; the body kept for the app.

// maxLoginBody is how much of a login request body the module reads; a
// larger login body is refused (or, with unreadable_login pass, passes
// unobserved).
const maxLoginBody = 64 << 10

// maxLoginName bounds a login name, in bytes.
const maxLoginName = 256

// loginBodyTimeout bounds the reading of a login body: a client that
// trickles it (slowloris) is answered 408 instead of holding the request.
const loginBodyTimeout = 10 * time.Second

// errLogin is a login request the module cannot read unambiguously.
type errLogin struct {
	reason string
	status int // 400 unless set
}

func (e errLogin) Error() string { return e.reason }

// readLoginNameWithin is readLoginName with the body's reading bounded by
// loginBodyTimeout (a read deadline on the connection, lifted after).
func readLoginNameWithin(w http.ResponseWriter, r *http.Request, field string) (string, error) {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(loginBodyTimeout)) == nil {
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	return readLoginName(r, field)
}

func loginErrorf(format string, a ...any) error { return errLogin{reason: fmt.Sprintf(format, a...)} }

// readLoginName reads the login name from a login request's body and puts
// the body back for the app, byte for byte. The content type decides the
// parser, as it does in apps. It fails, with a reason for the client, when
// the body is too large, encoded, of a type it does not parse, malformed,
// or holds the field other than exactly once as a string.
func readLoginName(r *http.Request, field string) (string, error) {
	for _, ce := range r.Header.Values("Content-Encoding") {
		if ce != "" && !strings.EqualFold(ce, "identity") {
			return "", loginErrorf("login body with Content-Encoding %q cannot be read", ce)
		}
	}
	if r.ContentLength > maxLoginBody {
		return "", loginErrorf("login body over %d bytes", maxLoginBody)
	}
	if r.Body == nil || r.Body == http.NoBody {
		return "", loginErrorf("login request without a body")
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, maxLoginBody+1))
	if len(buf) > maxLoginBody {
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return "", loginErrorf("login body over %d bytes", maxLoginBody)
	}
	r.Body = readCloser{bytes.NewReader(buf), r.Body}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return "", errLogin{reason: fmt.Sprintf("login body not received within %v", loginBodyTimeout), status: http.StatusRequestTimeout}
	}
	if err != nil {
		return "", loginErrorf("login body could not be read")
	}
	ct := r.Header.Values("Content-Type")
	if len(ct) != 1 {
		return "", loginErrorf("login request needs exactly one Content-Type")
	}
	mt, params, err := mime.ParseMediaType(ct[0])
	if err != nil {
		return "", loginErrorf("login request with a malformed Content-Type")
	}
	var name string
	switch {
	case mt == "application/x-www-form-urlencoded":
		name, err = formField(string(buf), field)
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		name, err = jsonField(buf, field)
	case mt == "multipart/form-data":
		name, err = multipartField(buf, ct[0], params["boundary"], field)
	default:
		return "", loginErrorf("login body of type %q is not read (form, multipart or JSON)", mt)
	}
	if err != nil {
		return "", err
	}
	if !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return "", loginErrorf("login name is not text")
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return "", loginErrorf("login request with an empty %q", field)
	}
	if len(name) > maxLoginName {
		return "", loginErrorf("login name over %d bytes", maxLoginName)
	}
	return name, nil
}

// formKey is how a form field name compares across apps: decoded, cut at
// a NUL (PHP's C strings), with PHP's mangling ('.' and ' ' become '_', a
// '[' with a ']' after it starts an array, one without becomes '_'), case
// folded (apps that bind fields case-insensitively).
func formKey(k string) string {
	if i := strings.IndexByte(k, 0); i >= 0 {
		k = k[:i]
	}
	if i := strings.IndexByte(k, '['); i > 0 {
		if strings.IndexByte(k[i:], ']') > 0 {
			k = k[:i]
		} else {
			k = k[:i] + "_" + k[i+1:]
		}
	}
	k = strings.TrimLeft(k, " ")
	return strings.ToLower(strings.Map(func(r rune) rune {
		if r == '.' || r == ' ' {
			return '_'
		}
		return r
	}, k))
}

// formField reads a urlencoded body strictly: '&' separates, every escape
// is well formed, and the field (in any spelling an app reads as it) is
// there exactly once.
func formField(body, field string) (string, error) {
	if strings.IndexByte(body, ';') >= 0 {
		return "", loginErrorf("login form with ';' (apps split it differently)")
	}
	var value string
	n := 0
	for _, pair := range strings.Split(body, "&") {
		if pair == "" {
			continue
		}
		rk, rv, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(rk)
		if err != nil {
			return "", loginErrorf("login form with a malformed escape")
		}
		v, err := url.QueryUnescape(rv)
		if err != nil {
			return "", loginErrorf("login form with a malformed escape")
		}
		if formKey(k) != formKey(field) {
			continue
		}
		n++
		if k != field {
			return "", loginErrorf("login form field %q written as %q", field, k)
		}
		value = v
	}
	return oneValue(value, n, field)
}

func oneValue(v string, n int, field string) (string, error) {
	switch n {
	case 0:
		return "", loginErrorf("login request without %q", field)
	case 1:
		return v, nil
	}
	return "", loginErrorf("login request with %q more than once", field)
}

// jsonField reads a JSON object strictly: valid, no duplicate keys at the
// top level, the field a string.
func jsonField(body []byte, field string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return "", loginErrorf("login body is not a JSON object")
	}
	seen := map[string]bool{}
	var value string
	n := 0
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return "", loginErrorf("login body is not valid JSON")
		}
		k, _ := kt.(string)
		// Go apps bind JSON keys case-insensitively (and "ſ" as "s"),
		// the last one winning: one key in any spelling, once.
		folded := strings.ToLower(strings.ReplaceAll(k, "ſ", "s"))
		if seen[folded] {
			return "", loginErrorf("login body with key %q more than once", k)
		}
		seen[folded] = true
		if k != field && strings.EqualFold(k, field) {
			return "", loginErrorf("login field %q written as %q", field, k)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", loginErrorf("login body is not valid JSON")
		}
		if k != field {
			continue
		}
		if err := json.Unmarshal(raw, &value); err != nil {
			return "", loginErrorf("login field %q is not a string", field)
		}
		n++
	}
	if _, err := dec.Token(); err != nil {
		return "", loginErrorf("login body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", loginErrorf("login body has data after the JSON object")
	}
	return oneValue(value, n, field)
}

// multipartField reads a multipart form strictly: well formed as every
// parser reads it alike (one boundary parameter, every delimiter line a
// part Go's reader saw, each part "form-data" with one name and no
// transfer encoding), the field once among the parts that are not files.
func multipartField(body []byte, ct, boundary, field string) (string, error) {
	if boundary == "" {
		return "", loginErrorf("multipart login body without a boundary")
	}
	if strings.Count(strings.ToLower(ct), "boundary") != 1 {
		return "", loginErrorf("multipart login body with several boundaries")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var value string
	n, parts := 0, 0
	for {
		// Raw: a transfer encoding is seen, not decoded away.
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", loginErrorf("malformed multipart login body")
		}
		parts++
		if !strictPart(p) {
			return "", loginErrorf("multipart login body with a part apps read differently")
		}
		name := p.FormName()
		if formKey(name) != formKey(field) {
			continue
		}
		if _, params, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition")); params["filename"] != "" || hasParam(p.Header.Get("Content-Disposition"), "filename") {
			continue // a file: apps file it as an upload, not a field
		}
		n++
		if name != field {
			return "", loginErrorf("login form field %q written as %q", field, name)
		}
		b, err := io.ReadAll(io.LimitReader(p, maxLoginName+1))
		if err != nil {
			return "", loginErrorf("malformed multipart login body")
		}
		value = string(b)
	}
	// Every delimiter line is a part the reader saw (and the close).
	if bytes.Count(body, []byte("--"+boundary)) != parts+1 {
		return "", loginErrorf("multipart login body with a part apps read differently")
	}
	return oneValue(value, n, field)
}

// strictPart: a part every app reads as the same form field or file.
func strictPart(p *multipart.Part) bool {
	if len(p.Header.Values("Content-Disposition")) != 1 || p.Header.Get("Content-Transfer-Encoding") != "" {
		return false
	}
	cd := p.Header.Get("Content-Disposition")
	disp, params, err := mime.ParseMediaType(cd)
	if err != nil || disp != "form-data" || params["name"] == "" {
		return false
	}
	lower := strings.ToLower(cd)
	return strings.Count(lower, "name=") == 1+strings.Count(lower, "filename=") && !strings.Contains(lower, "name*")
}

// hasParam reports whether a header value names param at all.
func hasParam(v, param string) bool {
	return strings.Contains(strings.ToLower(v), param+"=")
}

type readCloser struct {
	io.Reader
	io.Closer
}
