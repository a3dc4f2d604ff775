package enrich

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/ua-parser/uap-go/uaparser"
)

// uapOracle is uap-go's own parser: what uapMatcher must agree with.
var uapOracle = sync.OnceValue(uaparser.NewFromSaved)

// uapCorpus is uap-go's own sample of 100,000 real user agents (the file
// "uas" in its module), every step-th of them, plus agents chosen here.
func uapCorpus(t testing.TB, step int) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ua-parser/uap-go").Output()
	if err != nil {
		t.Fatalf("locating uap-go's module: %v", err)
	}
	f, err := os.Open(filepath.Join(strings.TrimSpace(string(out)), "uas"))
	if err != nil {
		t.Fatalf("uap-go's sample of user agents: %v", err)
	}
	defer f.Close()
	corpus := append([]string(nil), extraAgents...)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan(); i++ {
		if i%step == 0 {
			corpus = append(corpus, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(corpus) < 100000/step {
		t.Fatalf("uap-go's sample has %d agents, want 100,000", len(corpus)-len(extraAgents))
	}
	return corpus
}

var extraAgents = []string{
	"",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	// Bounded repetitions at their bounds: the filter passes, the exact
	// pattern must decide.
	"Mozilla/5.0 (Linux; Android 14; " + strings.Repeat("A", 300) + " Build/XYZ) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36",
	strings.Repeat("x", 101) + "bot",
	strings.Repeat("x", 99) + "bot",
	"InettvBrowser/1.0 (" + strings.Repeat("a", 201) + ";Sony" + strings.Repeat("b", 10) + ";c;d)",
	"InettvBrowser/1.0 (a;Sony" + strings.Repeat("b", 10) + ";c;d)",
	"curl/8.5.0",
	"Mozilla/5.0 (Mobile; ALCATEL 4044W; rv:" + strings.Repeat("9", 201) + ") Gecko/48.0 Firefox/48.0 KaiOS/2.5",
	// Not ASCII: case folding reaches beyond ASCII (the Kelvin sign folds
	// to k, the long s to s).
	"Mozilla/5.0 (Linux; U; Android 4.0.3; en-us; \u212aFTT Build/IML74K) AppleWebKit/534.30 (\u212aHTML, like Gecko) Silk/3.68 Safari/534.30",
	"Mozilla/5.0 (Linux; Android 9; \u212aindle Fire) AppleWebKit/537.36 Chrome/124.0 Safari/537.36 \u017fafari",
	"Mozilla/5.0 (Windows NT 10.0) Chrome/124.0 Safari/537.36 \xff\xfe",
}

// requiredLiterals finds literals only where every match has them.
func TestRequiredLiterals(t *testing.T) {
	for _, c := range []struct {
		expr, want string
	}{
		{`(Firefox)/(\d+)`, "[[{Firefox false}] [{/ false}]]"},
		{`(?i)(kindle)/(\d+)`, "[[{kindle true}] [{/ true}]]"},
		{`(?:Silk|Kindle)/(\d+)`, "[[{Silk false} {Kindle false}] [{/ false}]]"},
		{`(Opera)?Mini`, "[[{Mini false}]]"},
		{`(Opera)*x`, "[[{x false}]]"},
		{`(Opera){1,3}x`, "[[{Opera false}] [{x false}]]"},
		{`(Opera){0,3}x`, "[[{x false}]]"},
		{`a|b*`, "[]"},
		{`caf\x{e9}`, "[]"},
		{`[Ff]oo`, "[[{oo false}] [{f true}]]"}, // the parser makes [Ff] a case-folded f
		{`MSIE (\d+)|(?i)trident`, "[[{MSIE  false} {trident true}]]"},
		{`; (Acer |ACER )([^;/]+?)(?: Build|\) AppleWebKit)`, "[[{ Build false} {) AppleWebKit false}] [{cer  false} {CER  false}] [{;  false}]]"}, // A factored out
		{`a.b.c.d.e`, "[[{a false}] [{b false}] [{c false}]]"},
	} {
		re, err := syntax.Parse(c.expr, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(requiredLiterals(re)); got != c.want {
			t.Errorf("requiredLiterals(%q) = %v, want %v", c.expr, got, c.want)
		}
	}
}

// Only the Kelvin sign and the long s fold to ASCII letters, which is what
// newUAPLine's lower-casing relies on.
func TestFoldsToASCII(t *testing.T) {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f >= utf8.RuneSelf && f != '\u212a' && f != '\u017f' {
				t.Errorf("%q folds to %q: newUAPLine must map it to %q", f, r, unicode.ToLower(r))
			}
			if f >= utf8.RuneSelf && newUAPLine(string(f)).lower != string(unicode.ToLower(r)) {
				t.Errorf("newUAPLine(%q).lower = %q, want %q", f, newUAPLine(string(f)).lower, unicode.ToLower(r))
			}
		}
	}
}

// No string a pattern matches lacks the pattern's literal: the gate never
// turns a match away.
func FuzzRequiredLiteral(f *testing.F) {
	f.Add(`(?i)(kindle)/(\d+)`, "KINDLE/3")
	f.Add(`(Opera){1,3}x`, "OperaOperax")
	f.Add(`(?i)k`, "\u212a")
	f.Fuzz(func(t *testing.T, expr, s string) {
		re, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			return
		}
		p := uapPattern{lits: requiredLiterals(re)}
		line := newUAPLine(s)
		if p.lits == nil {
			return
		}
		exact, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		p.exact.Store(exact)
		p.repl = []string{"x"}
		var out [1]string
		if exact.MatchString(s) != p.match(line, out[:], false) {
			t.Errorf("%q on %q: regexp says %v, the gated pattern (literals %v) differs", expr, s, exact.MatchString(s), p.lits)
		}
	})
}

func sameAsUAPGo(t *testing.T, m *uapMatcher, ua string) bool {
	t.Helper()
	want := uapOracle().Parse(ua)
	browser, os, device := m.parse(ua)
	got := [7]string{browser[0], browser[1], browser[2], os[0], os[1], os[2], device}
	exp := [7]string{want.UserAgent.Family, want.UserAgent.Major, want.UserAgent.Minor,
		want.Os.Family, want.Os.Major, want.Os.Minor, want.Device.Family}
	if got != exp {
		t.Errorf("parse(%q)\n = %q\nuap-go: %q", ua, got, exp)
		return false
	}
	return true
}

var uapAll = flag.Bool("uap.all", false, "compare the uap matcher with uap-go on all 100,000 sample agents")

// The two-step matcher answers what uap-go answers, on real user agents
// and on ones made to sit at the bounds the filters remove.
func TestUAPMatcherAgreesWithUAPGo(t *testing.T) {
	m := uap()
	step := 100 // uap-go takes about 2 ms per distinct agent; -uap.all runs every one
	switch {
	case *uapAll:
		step = 1
	case raceEnabled:
		step = 1000 // the race detector makes each parse about ten times slower
	}
	bad := 0
	for _, ua := range uapCorpus(t, step) {
		if !sameAsUAPGo(t, m, ua) {
			if bad++; bad > 10 {
				t.Fatal("too many differences")
			}
		}
	}
}

// Every pattern loads (init parses each exact expression with
// regexp.Compile's syntax flags, so the lazy compile cannot fail), and the
// bounded repetitions are where uap-core has them.
func TestUAPPatternsLoad(t *testing.T) {
	m := uap()
	filters, lits := 0, 0
	for _, list := range [][]uapPattern{m.agent, m.os, m.device} {
		for i := range list {
			if list[i].filterExpr != "" {
				filters++
			}
			if list[i].lits != nil {
				lits++
			}
		}
	}
	if n := len(m.agent) + len(m.os) + len(m.device); n < 1000 || filters < n/4 || lits < n/2 {
		t.Errorf("%d patterns, %d with a filter, %d with a literal: uap-core's regexes did not load as expected", n, filters, lits)
	}
}

// The text rewrite equals the same rewrite done on the parsed syntax tree,
// on every uap-core pattern and on the places a brace is not a repetition.
func TestUnboundRepeatsText(t *testing.T) {
	var exprs []string
	m := uap()
	for _, list := range [][]uapPattern{m.agent, m.os, m.device} {
		for i := range list {
			exprs = append(exprs, list[i].expr)
		}
	}
	exprs = append(exprs, `[{1,2}]x{1,2}`, `\{1,2\}a{3,4}`, `\Q{1,2}\Ex{0,9}`, `\Q{1,2}`,
		`[]{1,2}]{1,2}`, `[^]{1,2}]b{0,1}?`, `[[:alpha:]{1,2}]{0,3}`, `a{2,2}`, `a{,3}`,
		`a{1,1000}`, `(?i)[a-z]{1,20}\[x{2,3}]`, `a{3}b{ 1,2}c{1, 2}`, `(a{0,5}|b{1,2}){0,2}`)
	for _, expr := range exprs {
		tree, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		treeChanged := unboundTree(tree)
		text, textChanged := unboundRepeats(expr)
		got, err := syntax.Parse(text, syntax.Perl)
		if err != nil {
			t.Errorf("%q rewritten %q: %v", expr, text, err)
			continue
		}
		if !got.Equal(tree) || textChanged != treeChanged {
			t.Errorf("%q rewritten %q (changed %v), want the tree %v (changed %v)", expr, text, textChanged, tree, treeChanged)
		}
	}
}

func FuzzUnboundRepeats(f *testing.F) {
	for _, s := range []string{`[{1,2}]x{1,2}`, `\Q{1,2}\Ex{0,9}`, `[^]{1,2}]b{0,1}?`, `[[:alpha:]{1,2}]{0,3}`, `(a{0,5}|b{1,2}){0,2}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		tree, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			return
		}
		treeChanged := unboundTree(tree)
		text, textChanged := unboundRepeats(expr)
		got, err := syntax.Parse(text, syntax.Perl)
		if err != nil || !got.Equal(tree) || textChanged != treeChanged {
			t.Errorf("%q rewritten %q (changed %v, %v), want the tree %v (changed %v)", expr, text, textChanged, err, tree, treeChanged)
		}
	})
}

// unboundTree is the rewrite on the syntax tree: every x{n,m} with m > n
// becomes x{n,}.
func unboundTree(re *syntax.Regexp) bool {
	changed := false
	if re.Op == syntax.OpRepeat && re.Max > re.Min {
		re.Max = -1
		changed = true
	}
	for _, sub := range re.Sub {
		if unboundTree(sub) {
			changed = true
		}
	}
	return changed
}

func TestUnboundRepeats(t *testing.T) {
	m := &uapMatcher{device: make([]uapPattern, 1)}
	if err := m.device[0].init("i", `^.{0,5}(bot)[^;]{1,3}x{2}`, "$1"); err != nil {
		t.Fatal(err)
	}
	p := &m.device[0]
	for _, c := range []struct {
		line           string
		filter, family bool
	}{
		{"abBOTzxx", true, true},
		{"abcdefgBOTzxx", true, false},    // the filter passes, the exact pattern does not
		{"BOTzzzzxx", true, false},        // more than 3
		{"BOTzx", false, false},           // x{2} stays exact
		{"nothing here", false, false},    //
		{"botzxx;abBotzzzxx", true, true}, //
	} {
		if got := regexp.MustCompile(p.filterExpr).MatchString(c.line); got != c.filter {
			t.Errorf("filter(%q) = %v, want %v", c.line, got, c.filter)
		}
		var out [1]string
		if got := p.match(newUAPLine(c.line), out[:], true); got != c.family || (got && !strings.EqualFold(out[0], "bot")) {
			t.Errorf("match(%q) = %v %q, want %v", c.line, got, out[0], c.family)
		}
	}
}

func FuzzUAPMatcher(f *testing.F) {
	for _, ua := range extraAgents {
		f.Add(ua)
	}
	m := uap()
	f.Fuzz(func(t *testing.T, ua string) {
		if len(ua) > maxUALength {
			ua = ua[:maxUALength]
		}
		sameAsUAPGo(t, m, ua)
	})
}

// The matcher's share of the Go heap, next to uap-go's parser (benchstat:
// the heap-MB metric), after parsing the corpus's first 2,000 agents.
func BenchmarkUAPHeap(b *testing.B) {
	all := uapCorpus(b, 50)
	for _, n := range []int{20, 2000} {
		corpus := all[:n]
		for _, impl := range []string{"matcher", "uap-go"} {
			b.Run(fmt.Sprintf("impl=%s/agents=%d", impl, n), func(b *testing.B) {
				var heap float64
				for b.Loop() {
					before := liveHeap()
					var keep any
					if impl == "matcher" {
						m, _ := newUAPMatcher(uaparser.DefinitionYaml)
						for _, ua := range corpus {
							m.parse(ua)
						}
						keep = m
					} else {
						p, _ := uaparser.New(uaparser.WithCacheSize(1))
						for _, ua := range corpus {
							p.Parse(ua)
						}
						keep = p
					}
					heap = float64(liveHeap()-before) / (1 << 20)
					runtime.KeepAlive(keep)
				}
				b.ReportMetric(heap, "heap-MB")
			})
		}
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Parsing a user agent from uap-go's sample, with the exact patterns
// compiled as traffic compiles them.
func BenchmarkParseAgentCorpus(b *testing.B) {
	corpus := uapCorpus(b, 10)
	for _, ua := range corpus {
		ParseAgent(ua)
	}
	i := 0
	for b.Loop() {
		ParseAgent(corpus[i%len(corpus)])
		i++
	}
}

func BenchmarkUAPParse(b *testing.B) {
	corpus := uapCorpus(b, 10)
	m, _ := newUAPMatcher(uaparser.DefinitionYaml)
	p, _ := uaparser.New(uaparser.WithCacheSize(1))
	for _, ua := range corpus {
		m.parse(ua)
	}
	b.Run("impl=matcher", func(b *testing.B) {
		i := 0
		for b.Loop() {
			m.parse(corpus[i%len(corpus)])
			i++
		}
	})
	b.Run("impl=uap-go", func(b *testing.B) {
		i := 0
		for b.Loop() {
			p.Parse(corpus[i%len(corpus)])
			i++
		}
	})
}
