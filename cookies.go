package sessions

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file owns the one reading of the app's session cookies: which
// cookie of a request the module enforces, what token it stands for, and
// the Cookie header the app receives, which holds that cookie and no other
// that an app could read as a session cookie.
//
// Apps parse cookies differently: PHP percent-decodes names and values
// (and '+' in values), turns '.' and ' ' in names into '_'; Python's
// werkzeug trims spaces around names; some keep the first of two cookies
// of one name, some the last. A client that can make the module read one
// cookie and the app another can present a revoked token unseen. So:
//
//   - A candidate is every cookie whose name an app could read as a
//     configured session cookie: compared after trimming, percent-decoding,
//     PHP's name mangling and case folding.
//   - Per configured name (or prefix), the module enforces the first
//     candidate written plainly: the exact name, no space around it, a
//     value of cookie characters with well-formed percent escapes and no
//     quotes or backslashes. Every parser reads such a cookie alike.
//   - The app receives that cookie first, then every cookie that is no
//     candidate, as sent. Duplicates and look-alikes are removed (browsers
//     send duplicates legitimately, for cookies of one name on several
//     paths or domains, so refusing them would lock honest users out).
//   - The token is the value percent-decoded with '+' read as a space, so
//     every spelling that some parser reads as the same value is the same
//     token to the module.

// maxCookiePatterns bounds the session_cookie list.
const maxCookiePatterns = 8

// CookieNames is the session_cookie list: names, prefixes ending in *, and
// exclusions starting with ! (never session cookies, even when a prefix
// matches them). In JSON a single name may be a string.
type CookieNames []string

// UnmarshalJSON takes a string or an array of strings.
func (c *CookieNames) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		if one == "" {
			*c = nil
		} else {
			*c = CookieNames{one}
		}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("session_cookie: must be a string or an array of strings")
	}
	*c = many
	return nil
}

// cookiePattern is one configured session cookie name or prefix.
type cookiePattern struct {
	name   string // without the trailing * of a prefix
	prefix bool
	folded string // name as candidates are compared
}

// cookieSet is the compiled session_cookie list.
type cookieSet struct {
	patterns []cookiePattern
	exclude  []cookiePattern
	// issued names the module's cookie that signs an anonymous session
	// cookie the app issued (see Handler.serveAnonymous).
	issued string
}

// compileCookies checks and compiles the session_cookie list.
func compileCookies(names CookieNames) (cookieSet, error) {
	var s cookieSet
	for _, raw := range names {
		n := raw
		exclude := strings.HasPrefix(n, "!")
		if exclude {
			n = n[1:]
		}
		name, prefix := strings.CutSuffix(n, "*")
		if name == "" || !validCookieName(name) {
			return s, fmt.Errorf("session_cookie: %q is not a cookie name (letters, digits and !#$&'*+-.^_`|~ only, * only at the end)", raw)
		}
		p := cookiePattern{name: name, prefix: prefix, folded: foldName(name)}
		if exclude {
			s.exclude = append(s.exclude, p)
		} else {
			s.patterns = append(s.patterns, p)
		}
	}
	if len(s.patterns) > maxCookiePatterns {
		return s, fmt.Errorf("session_cookie: %d names, at most %d", len(s.patterns), maxCookiePatterns)
	}
	if len(s.exclude) > 0 && len(s.patterns) == 0 {
		return s, errors.New("session_cookie: only exclusions given")
	}
	return s, nil
}

func validCookieName(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$&'+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// foldName is how a cookie name compares when looking for candidates:
// trimmed, percent-decoded, with PHP's mangling ('.' and ' ' become '_',
// a '[' starts an array index) and case folded.
func foldName(n string) string {
	n = trimAnySpace(n)
	n = pctDecodeLenient(n)
	if i := strings.IndexByte(n, '['); i > 0 {
		n = n[:i]
	}
	n = strings.TrimLeft(n, " ")
	n = strings.Map(func(r rune) rune {
		if r == '.' || r == ' ' {
			return '_'
		}
		return r
	}, n)
	return strings.ToLower(n)
}

// trimAnySpace trims what any stack may trim around a cookie name: ASCII
// and Unicode white space (Django and werkzeug 3 strip str, older npm
// cookie uses JavaScript's trim), and the Latin-1 bytes 0x85 and 0xA0 a
// server that reads the header as Latin-1 turns into white space.
func trimAnySpace(s string) string {
	isSpace := func(s string, last bool) int {
		var r rune
		var size int
		if last {
			r, size = utf8.DecodeLastRuneInString(s)
		} else {
			r, size = utf8.DecodeRuneInString(s)
		}
		if r == utf8.RuneError && size == 1 {
			b := s[0]
			if last {
				b = s[len(s)-1]
			}
			if b == 0x85 || b == 0xa0 {
				return 1
			}
			return 0
		}
		if unicode.IsSpace(r) {
			return size
		}
		return 0
	}
	for s != "" {
		n := isSpace(s, false)
		if n == 0 {
			break
		}
		s = s[n:]
	}
	for s != "" {
		n := isSpace(s, true)
		if n == 0 {
			break
		}
		s = s[:len(s)-n]
	}
	return s
}

// match tells which pattern (index) a cookie name belongs to, -1 for none,
// and whether the name is written plainly. plainName is the name exactly
// as sent between the separator's spaces and '='.
func (s *cookieSet) match(rawName string) (idx int, plain bool) {
	name := strings.TrimLeft(rawName, " \t")
	for _, p := range s.exclude {
		if name == p.name || (p.prefix && strings.HasPrefix(name, p.name)) {
			return -1, false
		}
	}
	var folded string
	for i, p := range s.patterns {
		if name == p.name || (p.prefix && strings.HasPrefix(name, p.name) && plainSuffix(name[len(p.name):])) {
			return i, true
		}
		if folded == "" {
			folded = foldName(name)
		}
		if folded == p.folded || (p.prefix && strings.HasPrefix(folded, p.folded)) {
			return i, false
		}
	}
	return -1, false
}

// plainSuffix: what follows a prefix is plain when no parser would change
// it (no '%', '.', '[', space).
func plainSuffix(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// plainValue: a value every parser reads alike, up to percent-decoding: a
// non-empty run of cookie characters without quotes, backslashes or
// spaces, whose percent escapes are well formed and decode to UTF-8.
func plainValue(v string) bool {
	if v == "" {
		return false
	}
	pct := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == ';' {
			return false
		}
		if c == '%' {
			if i+2 >= len(v) || !ishex(v[i+1]) || !ishex(v[i+2]) {
				return false
			}
			pct = true
		}
	}
	return !pct || utf8.ValidString(pctDecodeLenient(v))
}

func ishex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// pctDecodeLenient decodes well-formed %XX escapes and leaves the rest.
func pctDecodeLenient(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

// cookieToken is the token a plain cookie value stands for: every spelling
// that some app's parser reads as the same value is the same token. It
// allocates only for values with '%' or '+'.
func cookieToken(v string) string {
	if strings.IndexByte(v, '%') < 0 && strings.IndexByte(v, '+') < 0 {
		return v
	}
	return strings.ReplaceAll(pctDecodeLenient(v), "+", " ")
}

// sessionCookie is the cookie enforced for one pattern.
type sessionCookie struct {
	name  string // as sent
	value string // as sent (plain)
	token string // cookieToken(value)
}

// cookieRead is what one pass over a request's Cookie headers found.
type cookieRead struct {
	found [maxCookiePatterns]sessionCookie
	// n counts the patterns with an enforced cookie.
	n int
	// device is the first value of the device cookie; issued, of the
	// module's signature of an issued session cookie. deviceAlt is a
	// second device cookie (a host-only one beside one set on
	// device_cookie_domain), tried when the first does not verify.
	device, issued, deviceAlt string
	// rewrite: the app must get a rebuilt header (candidates were
	// dropped, or the cookies came in several header lines).
	rewrite bool
}

// first is the enforced cookie of the first pattern that has one.
func (c *cookieRead) first() (sessionCookie, bool) {
	for i := range c.found {
		if c.found[i].value != "" {
			return c.found[i], true
		}
	}
	return sessionCookie{}, false
}

// cookiePart is one ';'-separated part of a Cookie header, classified.
type cookiePart struct {
	text        string // the part without leading spaces
	name, value string
	hasEq       bool
	// idx is the pattern the part is a candidate of, -1 for none.
	idx int
	// plain: the part can be enforced (exact name, plain value).
	plain bool
	// regular: the part is written as browsers write it, so forwarding
	// it unchanged reads the same everywhere.
	regular bool
}

// classify reads one part. A part hiding a candidate behind a space or a
// comma (legacy cookie syntax, which Python's http.cookies still reads:
// "a=1, sid=x") is a candidate that cannot be enforced.
func (s *cookieSet) classify(raw string, first bool) cookiePart {
	text := strings.TrimLeft(raw, " \t")
	lead := len(raw) - len(text)
	p := cookiePart{text: text, idx: -1}
	p.regular = text != "" && ((first && lead == 0) || (!first && lead == 1 && raw[0] == ' '))
	p.name, p.value, p.hasEq = strings.Cut(text, "=")
	if len(s.patterns) == 0 {
		return p
	}
	p.idx, p.plain = s.match(p.name)
	if p.idx >= 0 {
		p.plain = p.plain && p.hasEq && plainValue(p.value)
		return p
	}
	if strings.ContainsAny(p.value, " \t,\"") {
		p.regular = false
		for _, piece := range strings.FieldsFunc(p.value, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' || r == '"' }) {
			if n, _, ok := strings.Cut(piece, "="); ok {
				if idx, _ := s.match(n); idx >= 0 {
					p.idx, p.plain = idx, false
					break
				}
			}
		}
	}
	return p
}

// eachPart calls fn for every part of the Cookie header lines.
func eachPart(lines []string, fn func(raw string, first bool)) {
	first := true
	for _, line := range lines {
		for line != "" {
			var part string
			if i := strings.IndexByte(line, ';'); i >= 0 {
				part, line = line[:i], line[i+1:]
			} else {
				part, line = line, ""
			}
			fn(part, first)
			first = false
		}
	}
}

// readCookies scans the Cookie header lines once, allocation-free unless a
// token needs decoding.
func (s *cookieSet) readCookies(h http.Header, device string) (out cookieRead) {
	lines := h["Cookie"]
	if len(lines) > 1 {
		out.rewrite = len(s.patterns) > 0
	}
	eachPart(lines, func(raw string, first bool) {
		p := s.classify(raw, first)
		if !p.regular {
			out.rewrite = true
		}
		if device != "" && p.hasEq && p.name == device {
			if out.device == "" {
				out.device = p.value
			} else if out.deviceAlt == "" {
				out.deviceAlt = p.value
			}
			return
		}
		if s.issued != "" && out.issued == "" && p.hasEq && p.name == s.issued {
			out.issued = p.value
			return
		}
		if p.idx < 0 {
			return
		}
		if p.plain && out.found[p.idx].value == "" {
			out.found[p.idx] = sessionCookie{name: p.name, value: p.value, token: cookieToken(p.value)}
			out.n++
			return
		}
		out.rewrite = true // a duplicate or a look-alike: dropped
	})
	if len(s.patterns) == 0 {
		out.rewrite = false
	}
	return out
}

// forwardedCookie is the Cookie header the app gets: the enforced session
// cookies first (so no quoted cookie before them can swallow them), then
// every cookie that is no candidate, as sent, separated as browsers do.
func (s *cookieSet) forwardedCookie(h http.Header, read *cookieRead) string {
	var b strings.Builder
	for i := range read.found {
		if f := read.found[i]; f.value != "" {
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(f.name)
			b.WriteByte('=')
			b.WriteString(f.value)
		}
	}
	eachPart(h["Cookie"], func(raw string, first bool) {
		p := s.classify(raw, first)
		if p.idx >= 0 || strings.TrimSpace(p.text) == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.text)
	})
	return b.String()
}

// applyCookies gives the app the header the module read: rebuilt when
// candidates were dropped, several lines came in, or the header was not
// written as browsers write it.
func (s *cookieSet) applyCookies(h http.Header, read *cookieRead) {
	if !read.rewrite {
		return
	}
	if v := s.forwardedCookie(h, read); v != "" {
		h["Cookie"] = []string{v}
	} else {
		delete(h, "Cookie")
	}
}

// expireCookie tells the browser to drop the app's session cookie.
func expireCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
	})
}
