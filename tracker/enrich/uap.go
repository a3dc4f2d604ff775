package enrich

import (
	"cmp"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/ua-parser/uap-go/uaparser"
	"gopkg.in/yaml.v3"
)

// uapMatcher applies uap-core's patterns (uap-go's embedded regexes.yaml) in
// uap-go's order with uap-go's replacement rules, so it returns what
// uaparser.Parser.Parse returns, with a fraction of the memory.
//
// Why: uap-go keeps all 1,200 patterns compiled, about 13 MB of Go heap
// whose pointers every GC cycle scans, in a process whose requests never
// parse a user agent (only a session opening does). Three quarters of those
// compiled instructions come from bounded repetitions such as [^;]{0,200},
// which Go's regexp unrolls. So each pattern is tried in up to three steps,
// each compiled the first time it is needed and then kept:
//   - literals every match contains ("Firefox", "Build" or "AppleWebKit"):
//     one missing, no match;
//   - a filter, the pattern with every x{n,m} made x{n,} (a superset of the
//     strings it matches, with a fraction of the instructions);
//   - the exact pattern, for the captures.
//
// A user agent contains the literals of a few dozen patterns and passes
// the filters of a few, so few patterns are ever compiled.
type uapMatcher struct {
	agent, os, device []uapPattern
}

type uapPattern struct {
	expr       string     // as uap-go compiles it, flags included
	filterExpr string     // expr with its bounded repetitions unbounded; "" if it has none
	repl       []string   // replacements, uap-go's defaults applied; repl[0] is the family
	lits       [][]uapLit // every match contains one literal of each set; none: unknown
	filter     atomic.Pointer[regexp.Regexp]
	exact      atomic.Pointer[regexp.Regexp]
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
	re, err := syntax.Parse(expr, syntax.Perl) // regexp.Compile's flags: a lazy compile cannot fail
	if err != nil {
		return err
	}
	p.lits = requiredLiterals(re)
	if filter, ok := unboundRepeats(expr); ok {
		if _, err := syntax.Parse(filter, syntax.Perl); err != nil {
			return err // not for uap-core's patterns: FuzzUnboundRepeats
		}
		p.filterExpr = filter
	}
	if p.lits != nil {
		return nil // compiled when a user agent contains a literal
	}
	if p.filterExpr != "" {
		f, err := regexp.Compile(p.filterExpr)
		p.filter.Store(f)
		return err
	}
	exact, err := regexp.Compile(expr)
	p.exact.Store(exact)
	return err
}

// uapLit is an ASCII literal, lower-cased when matched case-insensitively.
type uapLit struct {
	s    string
	fold bool
}

// maxLitSets bounds the literal sets a pattern is checked against: the
// few most selective are enough to skip almost every pattern.
const maxLitSets = 3

// requiredLiterals returns sets of literals such that every match of re
// contains one literal of each set, the most selective first (longest
// shortest literal, then fewest literals); nil when it finds none.
func requiredLiterals(re *syntax.Regexp) [][]uapLit {
	var sets [][]uapLit
	switch re.Op {
	case syntax.OpLiteral:
		s := string(re.Rune)
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return nil
			}
		}
		if re.Flags&syntax.FoldCase != 0 {
			return [][]uapLit{{{strings.ToLower(s), true}}}
		}
		return [][]uapLit{{{s, false}}}
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiterals(re.Sub[0])
		}
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			sets = append(sets, requiredLiterals(sub)...)
		}
	case syntax.OpAlternate:
		var any []uapLit // one branch's most selective set, for each branch
		for _, sub := range re.Sub {
			l := requiredLiterals(sub)
			if l == nil {
				return nil // a branch without one
			}
			any = append(any, l[0]...)
		}
		sets = [][]uapLit{any}
	}
	slices.SortStableFunc(sets, func(a, b []uapLit) int {
		if c := cmp.Compare(shortestLit(b), shortestLit(a)); c != 0 {
			return c
		}
		return cmp.Compare(len(a), len(b))
	})
	if len(sets) > maxLitSets {
		sets = sets[:maxLitSets]
	}
	return sets
}

func shortestLit(set []uapLit) int {
	n := 0
	for i, l := range set {
		if i == 0 || len(l.s) < n {
			n = len(l.s)
		}
	}
	return n
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

// uapLine is a user agent as the patterns see it.
type uapLine struct {
	s     string
	lower string // s lower-cased so that a case-insensitive ASCII literal is found in it
}

func newUAPLine(s string) uapLine {
	lower := strings.ToLower(s) // also the Kelvin sign, which folds to k, to k
	if strings.Contains(lower, "ſ") {
		lower = strings.ReplaceAll(lower, "ſ", "s") // the long s folds to s: TestFoldsToASCII
	}
	return uapLine{s: s, lower: lower}
}

// containsAll reports whether line contains a literal of each set.
func (line uapLine) containsAll(sets [][]uapLit) bool {
	for _, set := range sets {
		found := false
		for _, l := range set {
			if l.fold && strings.Contains(line.lower, l.s) || !l.fold && strings.Contains(line.s, l.s) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// match fills out with the pattern's replacements expanded, as uap-go's
// Match does, and reports whether the pattern matched.
func (p *uapPattern) match(line uapLine, out []string, trim bool) bool {
	if !line.containsAll(p.lits) {
		return false
	}
	re := p.exact.Load()
	if re == nil {
		if p.filterExpr != "" {
			f := p.filter.Load()
			if f == nil {
				f = regexp.MustCompile(p.filterExpr) // parsed in init: cannot panic
				p.filter.Store(f)                    // a racing compile stores an equal regexp
			}
			if !f.MatchString(line.s) {
				return false
			}
		}
		re = regexp.MustCompile(p.expr) // parsed in init
		p.exact.Store(re)
	}
	m := re.FindStringSubmatchIndex(line.s)
	if m == nil {
		return false
	}
	for i, r := range p.repl {
		out[i] = string(re.ExpandString(nil, r, line.s, m))
		if trim {
			out[i] = strings.TrimSpace(out[i])
		}
	}
	return true
}

// first is uap-go's lookup loop: the first pattern that matches with a
// non-empty family wins; none gives "Other" (with the versions of the last
// pattern that matched, as uap-go leaves them).
func first(ps []uapPattern, line uapLine, out []string, trim bool) {
	for i := range ps {
		if ps[i].match(line, out, trim) && out[0] != "" {
			return
		}
	}
	out[0] = "Other"
}

// parse returns browser family, major and minor; OS family, major and
// minor; device family.
func (m *uapMatcher) parse(ua string) (browser, os [3]string, device string) {
	line := newUAPLine(ua)
	first(m.agent, line, browser[:], false)
	first(m.os, line, os[:], false)
	var d [1]string
	first(m.device, line, d[:], true)
	return browser, os, d[0]
}
