package tracker

import (
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/ua-parser/uap-go/uaparser"
	"gopkg.in/yaml.v3"
)

// uapMatcher applies uap-core's patterns (uap-go's embedded regexes.yaml) in
// uap-go's order with uap-go's replacement rules, so it returns what
// uaparser.Parser.Parse returns, at about a quarter of the memory.
//
// Why: uap-go keeps all 1,200 patterns compiled, about 12 MB of Go heap
// whose pointers every GC cycle scans, in a process whose requests never
// parse a user agent (only a session opening does). Three quarters of those
// compiled instructions come from bounded repetitions such as [^;]{0,200},
// which Go's regexp unrolls. So each pattern is matched in two steps: a
// filter, the same pattern with every x{n,m} made x{n,} (it matches a
// superset of the strings, with a fraction of the instructions), and only
// when the filter matches, the exact pattern, compiled the first time that
// happens and kept. A user agent passes the filters of a few patterns, so
// few exact patterns are ever compiled.
type uapMatcher struct {
	agent, os, device []uapPattern
}

type uapPattern struct {
	expr   string         // as uap-go compiles it, flags included
	repl   []string       // replacements, uap-go's defaults applied; repl[0] is the family
	filter *regexp.Regexp // expr with its bounded repetitions unbounded
	exact  atomic.Pointer[regexp.Regexp]
}

func newUAPMatcher(definitions []byte) (*uapMatcher, error) {
	var defs uaparser.RegexDefinitions
	if err := yaml.Unmarshal(definitions, &defs); err != nil {
		return nil, err
	}
	m := &uapMatcher{
		agent:  make([]uapPattern, len(defs.UA)),
		os:     make([]uapPattern, len(defs.OS)),
		device: make([]uapPattern, len(defs.Device)),
	}
	// The defaults are uap-go's setDefaults; only the fields Agent uses.
	for i, d := range defs.UA {
		if err := m.agent[i].init(d.Flags, d.Expr, or(d.FamilyReplacement, "$1"), or(d.V1Replacement, "$2"), or(d.V2Replacement, "$3")); err != nil {
			return nil, err
		}
	}
	for i, d := range defs.OS {
		if err := m.os[i].init(d.Flags, d.Expr, or(d.OSReplacement, "$1"), or(d.V1Replacement, "$2"), or(d.V2Replacement, "$3")); err != nil {
			return nil, err
		}
	}
	for i, d := range defs.Device {
		if err := m.device[i].init(d.Flags, d.Expr, or(d.DeviceReplacement, "$1")); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (p *uapPattern) init(flags, expr string, repl ...string) error {
	if flags != "" {
		expr = "(?" + flags + ")" + expr
	}
	p.expr, p.repl = expr, repl
	if _, err := syntax.Parse(expr, syntax.Perl); err != nil {
		return err
	}
	filter, ok := unboundRepeats(expr)
	if !ok {
		exact, err := regexp.Compile(expr)
		if err != nil {
			return err
		}
		p.exact.Store(exact)
		return nil
	}
	var err error
	p.filter, err = regexp.Compile(filter)
	return err
}

// unboundRepeats rewrites every x{n,m} (m > n) in expr as x{n,} and
// reports whether there was one. It works on the text: printing a parsed
// syntax tree back (syntax.Regexp.String) takes a second and a half over
// uap-core's patterns, most of it case-folding character classes.
func unboundRepeats(expr string) (string, bool) {
	var b strings.Builder
	changed, inClass := false, false
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case strings.HasPrefix(expr[i:], `\Q`): // quoted literal text up to \E
			end := strings.Index(expr[i+2:], `\E`)
			if end < 0 {
				b.WriteString(expr[i:])
				return b.String(), changed
			}
			b.WriteString(expr[i : i+2+end+2])
			i += 2 + end + 1
			continue
		case c == '\\' && i+1 < len(expr):
			b.WriteString(expr[i : i+2])
			i++
			continue
		case inClass:
			if c == ']' {
				inClass = false
			} else if end := strings.Index(expr[i:], ":]"); c == '[' && end > 1 && expr[i+1] == ':' {
				b.WriteString(expr[i : i+end+2]) // [:alpha:]
				i += end + 1
				continue
			}
		case c == '[':
			inClass = true
			n := 1
			if strings.HasPrefix(expr[i+n:], "^") {
				n++
			}
			if strings.HasPrefix(expr[i+n:], "]") { // a ] first in a class is literal
				n++
			}
			b.WriteString(expr[i : i+n])
			i += n - 1
			continue
		case c == '{':
			if head, n, ok := boundedRepeat(expr[i:]); ok {
				b.WriteString(head)
				b.WriteByte('}')
				i += n - 1
				changed = true
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String(), changed
}

// boundedRepeat reports whether s starts with {n,m}, m > n; head is its
// "{n," and size its length.
func boundedRepeat(s string) (head string, size int, ok bool) {
	comma := strings.IndexByte(s, ',')
	end := strings.IndexByte(s, '}')
	if comma < 2 || end < comma+2 {
		return "", 0, false
	}
	lo, ok1 := repeatCount(s[1:comma])
	hi, ok2 := repeatCount(s[comma+1 : end])
	if !ok1 || !ok2 || hi <= lo {
		return "", 0, false
	}
	return s[:comma+1], end + 1, true
}

// repeatCount parses a count as regexp/syntax does: digits, no leading
// zero (otherwise the braces are literal text).
func repeatCount(s string) (int, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// match fills out with the pattern's replacements expanded, as uap-go's
// Match does, and reports whether the pattern matched.
func (p *uapPattern) match(line string, out []string, trim bool) bool {
	re := p.exact.Load()
	if re == nil {
		if !p.filter.MatchString(line) {
			return false
		}
		var err error
		if re, err = regexp.Compile(p.expr); err != nil {
			return false // not for uap-core's patterns: TestUAPPatternsCompile
		}
		p.exact.Store(re) // a racing compile stores an equal regexp
	}
	m := re.FindStringSubmatchIndex(line)
	if m == nil {
		return false
	}
	for i, r := range p.repl {
		out[i] = string(re.ExpandString(nil, r, line, m))
		if trim {
			out[i] = strings.TrimSpace(out[i])
		}
	}
	return true
}

// first is uap-go's lookup loop: the first pattern that matches with a
// non-empty family wins; none gives "Other" (with the versions of the last
// pattern that matched, as uap-go leaves them).
func first(ps []uapPattern, line string, out []string, trim bool) {
	for i := range ps {
		if ps[i].match(line, out, trim) && out[0] != "" {
			return
		}
	}
	out[0] = "Other"
}

// parse returns browser family, major and minor; OS family, major and
// minor; device family.
func (m *uapMatcher) parse(line string) (browser, os [3]string, device string) {
	first(m.agent, line, browser[:], false)
	first(m.os, line, os[:], false)
	var d [1]string
	first(m.device, line, d[:], true)
	return browser, os, d[0]
}
