package main

import (
	"fmt"
	"io"
	"math"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/caddy-sessions/caddy-sessions/bench/internal/benchkit"
)

// report prints the results: per-round lines, the median tables, the
// targets of issue 5 and what Redis saw.
func (b *bench) report(w io.Writer, ms []measurement) {
	o := b.o
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	kind := "standalone"
	if o.cluster {
		kind = "3-master cluster"
	}
	procs := "Go default (all cores)"
	if o.caddyProcs > 0 {
		procs = fmt.Sprint(o.caddyProcs)
	}
	p("")
	p("== caddy-sessions benchmark (issue 5) ==")
	p("machine:  %d cores (%s), %s/%s, %s", runtime.NumCPU(), benchkit.CPUModel(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	p("software: %s; redis %s (%s); %s", caddyVersion(b), b.rs.Version, kind, wrkVersion())
	p("load:     wrk -t%d -c%d, closed loop, keep-alive; GET / with sid + sessions_device cookies and X-Bench-User,", o.threads, o.connections)
	p("          cycling %s sessions of %s users; the same requests for A, B and C", benchkit.Commas(int64(o.sessions)), benchkit.Commas(int64(o.users)))
	p("runs:     %d round(s) x %v per scenario, order rotating each round; %v unmeasured warm-up each", o.rounds, o.duration, o.warmup)
	if o.latConns > 0 {
		p("          after each, a latency run: wrk -t1 -c%d for %v (not saturating: no queueing in the numbers)", o.latConns, o.latDuration)
	}
	p("          B: refresh_interval %v, sessions opened through the module before the runs (user header + sid cookie)", o.refresh)
	p("cpu:      Caddy GOMAXPROCS %s; Caddy, upstream, session service, Redis and wrk all share the %d cores", procs, runtime.NumCPU())
	p("")

	p("Per round (saturating runs, -c%d):", o.connections)
	p("  round scen    req/s       p50       p90       p99     p99.9  errors  Caddy CPU/req  all CPU/req  steal  other load  Redis scripts")
	var errRuns int
	for _, m := range ms {
		if m.w.errors()+m.latErrors() > 0 {
			errRuns++
		}
		p("  %5d %-4s %8.0f %9s %9s %9s %9s %7d %14s %12s %5.0f%% %6.2f cores %14s", m.round+1, m.scenario, m.w.rps,
			benchkit.Ms(m.w.p50), benchkit.Ms(m.w.p90), benchkit.Ms(m.w.p99), benchkit.Ms(m.w.p999), m.w.errors()+m.latErrors(),
			fmtMicros(m.cpu["caddy"], m.w.requests), fmtMicros(m.cpuServers(), m.w.requests), m.steal*100, m.foreign, benchkit.Commas(m.satScripts))
	}
	p("  (CPU/req: CPU time per request; \"all\" is Caddy + upstream + session service + Redis, without wrk;")
	p("   steal: CPU time the hypervisor took from this VM; other load: cores busy with processes outside the bench;")
	p("   Redis scripts: EVALSHA/EVAL during the run, for B the session refreshes)")
	if errRuns > 0 {
		p("  WARNING: %d run(s) had failed requests (non-2xx or socket errors); their numbers are suspect", errRuns)
	}
	p("")

	type agg struct{ rps, p50, p99, caddyCPU, lp50, lp99, lp999 float64 }
	med := map[string]agg{}
	spread := map[string]float64{}
	for _, sc := range []string{"A", "B", "C"} {
		var rps, p50, p99, cc, lp50, lp99, lp999 []float64
		for _, m := range ms {
			if m.scenario != sc {
				continue
			}
			rps = append(rps, m.w.rps)
			p50 = append(p50, float64(m.w.p50))
			p99 = append(p99, float64(m.w.p99))
			cc = append(cc, perReq(m.cpu["caddy"], m.w.requests))
			if m.lat != nil {
				lp50 = append(lp50, float64(m.lat.p50))
				lp99 = append(lp99, float64(m.lat.p99))
				lp999 = append(lp999, float64(m.lat.p999))
			}
		}
		if len(rps) == 0 {
			continue
		}
		a := agg{median(rps), median(p50), median(p99), median(cc), median(lp50), median(lp99), median(lp999)}
		med[sc] = a
		lo, hi := minMax(rps)
		spread[sc] = (hi - lo) / a.rps * 100
	}

	if o.latConns > 0 {
		p("Latency runs (-c%d), per round:", o.latConns)
		p("  round scen    req/s       p50       p99     p99.9       max  Redis scripts")
		for _, m := range ms {
			if m.lat != nil {
				p("  %5d %-4s %8.0f %9s %9s %9s %9s %14s", m.round+1, m.scenario, m.lat.rps, benchkit.Ms(m.lat.p50), benchkit.Ms(m.lat.p99),
					benchkit.Ms(m.lat.p999), benchkit.Ms(m.lat.max), benchkit.Commas(m.latScripts))
			}
		}
		p("")
	}

	p("Results (median of %d round(s)):", o.rounds)
	p("")
	if o.latConns > 0 {
		p("| Scenario | req/s (-c%d) | p50 | p99 | p50 (-c%d) | p99 (-c%d) | Caddy CPU/req | Caddy peak RSS |", o.connections, o.latConns, o.latConns)
		p("|---|---:|---:|---:|---:|---:|---:|---:|")
	} else {
		p("| Scenario | req/s (-c%d) | p50 | p99 | Caddy CPU/req | Caddy peak RSS |", o.connections)
		p("|---|---:|---:|---:|---:|---:|")
	}
	for _, sc := range []string{"A", "B", "C"} {
		a, ok := med[sc]
		if !ok {
			continue
		}
		rss := "n/a"
		if hwm, _, err := benchkit.MemStatus(b.caddies[sc].PID()); err == nil {
			rss = benchkit.MiB(hwm)
		}
		lat := ""
		if o.latConns > 0 {
			lat = fmt.Sprintf(" %s | %s |", benchkit.Ms(time.Duration(a.lp50)), benchkit.Ms(time.Duration(a.lp99)))
		}
		p("| %s: %s | %s ±%.0f%% | %s | %s |%s %.0f µs | %s |", sc, title(sc), benchkit.Commas(int64(math.Round(a.rps))), spread[sc]/2,
			benchkit.Ms(time.Duration(a.p50)), benchkit.Ms(time.Duration(a.p99)), lat, a.caddyCPU, rss)
	}
	p("")
	p("(±: half the spread of req/s between rounds. p50/p99 at -c%d are under saturation, so mostly queueing;", o.connections)
	if o.latConns > 0 {
		p(" the -c%d columns are one request at a time per connection, the module's added latency without queueing.", o.latConns)
	}
	p(" Caddy CPU/req: Caddy's CPU time per request in the saturating runs. Peak RSS: VmHWM of that")
	p(" scenario's Caddy process over the whole run, warm-up and session opening included.)")
	p("")

	// Targets.
	p("Targets of issue 5:")
	p("")
	p("| Target | Measured | Verdict |")
	p("|---|---:|---|")
	a, okA := med["A"]
	bb, okB := med["B"]
	c, okC := med["C"]
	if okA && okB {
		r := bb.rps / a.rps
		p("| B/A throughput ≥ 0.95 | %.3f | %s |", r, benchkit.Verdict(r >= 0.95))
		if o.latConns > 0 {
			d := time.Duration(bb.lp99 - a.lp99)
			p("| p99 added by the module ≤ 1 ms (-c%d) | %s | %s |", o.latConns, fmtSigned(d), benchkit.Verdict(d <= time.Millisecond))
		}
		d := time.Duration(bb.p99 - a.p99)
		p("| p99(B) − p99(A) ≤ 1 ms (-c%d, saturated) | %s | %s |", o.connections, fmtSigned(d), benchkit.Verdict(d <= time.Millisecond))
	} else {
		p("| B/A throughput ≥ 0.95 | n/a (needs A and B) | |")
	}
	if okB && okC {
		r := bb.rps / c.rps
		ceiling := ""
		if okA {
			ceiling = fmt.Sprintf(" (A/C = %.2f: the most a free module could reach here)", a.rps/c.rps)
		}
		p("| B/C throughput ≥ 2 | %.2f%s | %s |", r, ceiling, benchkit.Verdict(r >= 2))
	} else {
		p("| B/C throughput ≥ 2 | n/a (needs B and C) | |")
	}
	rb := b.redisB(ms)
	if okB && rb.d != nil {
		p("| no Redis reads on the request path in steady state | %s (%.4f/req) | %s |", benchkit.Commas(rb.lookups), rb.perDiagReq(rb.lookups), benchkit.Verdict(rb.lookups == 0))
		switch {
		case rb.tooSoon > 0:
			p("| ≤ 1 write per session per refresh_interval | %d sessions written twice within %v | MISSED |", rb.tooSoon, o.refresh)
		case rb.touches == 0:
			p("| ≤ 1 write per session per refresh_interval | no refresh seen | n/a |")
		default:
			p("| ≤ 1 write per session per refresh_interval | %.2f, shortest gap %s | %s |", rb.writesPerInterval, fmtSecs(rb.minGap), benchkit.Verdict(rb.writesPerInterval <= 1.05))
		}
	}
	if oc := b.open; oc != nil && oc.monitored {
		work, _ := splitSetup(oc.top)
		work -= oc.errs["NOSCRIPT"] // the failed EVALSHA before the one-off EVAL
		n := float64(work) / float64(oc.sessionsCount)
		// MONITOR shows commands, not round trips: RedisStore.Seen sends
		// these as one pipeline (tracker/redis.go), which this cannot see.
		p("| opening a session ≤ 2 round trips | %.3f top-level commands, sent by the store as one pipeline | n/a (MONITOR cannot count round trips) |", n)
	}
	p("")
	p("Local cache size (B): %s", b.cacheLine())
	if len(b.rssB) > 0 {
		var parts []string
		for _, r := range b.rssB {
			parts = append(parts, fmt.Sprintf("%s %s", r.label, benchkit.MiB(r.rss)))
		}
		p("Caddy B RSS: %s", strings.Join(parts, ", "))
	}
	p("")

	if okB {
		b.printRedisB(p, rb)
	}
	if okC {
		calls := map[string]int64{}
		var reqs int64
		for _, m := range ms {
			if m.scenario == "C" {
				addCounts(calls, m.calls)
				reqs += m.redisReqs
			}
		}
		p("Redis during C (%s requests): %.3f commands per request (%s)", benchkit.Commas(reqs), float64(sum(calls))/float64(max(reqs, 1)), perReqList(calls, reqs, 6))
		p("")
	}
	if oc := b.open; oc != nil {
		b.printOpen(p, oc)
	}
}

// isReadCmd tells a top-level read ("get cs:t:*") in MONITOR counts.
func isReadCmd(k string) bool {
	cmd, _, _ := strings.Cut(k, " ")
	switch cmd {
	case "get", "mget", "hget", "hmget", "hgetall", "exists", "zrange", "zrevrange", "zrangebyscore", "zscore", "hkeys":
		return true
	}
	return false
}

// splitSetup sums MONITOR counts into module work and connection setup.
func splitSetup(top map[string]int64) (work, setup int64) {
	for k, v := range top {
		if strings.HasPrefix(k, "(connection setup") {
			setup += v
		} else {
			work += v
		}
	}
	return work, setup
}

// cpuServers is the CPU of everything but the load generator.
func (m measurement) cpuServers() time.Duration {
	return m.cpu["caddy"] + m.cpu["upstream"] + m.cpu["auth"] + m.cpu["redis"]
}

// redisBSummary is what Redis saw during B: the measured runs
// (commandstats) and the diagnostic run (commandstats and MONITOR).
type redisBSummary struct {
	runs        int
	reqs        int64
	secs        float64 // measured seconds of load (saturating + latency runs)
	calls, errs map[string]int64
	usec        map[string]int64
	runGap      time.Duration // mean time between the starts of two B runs

	d                 *diagRun
	lookups           int64 // request-path store reads in the diagnostic run: seen script, GETs
	touches           int64
	writesPerInterval float64
	minGap            time.Duration
	tooSoon           int // sessions written twice within refresh_interval
	refresh           time.Duration
	sessions          int
}

func (r redisBSummary) perReq(n int64) float64 { return float64(n) / float64(max(r.reqs, 1)) }

func (r redisBSummary) perDiagReq(n int64) float64 {
	return float64(n) / float64(max(r.d.w.requests, 1))
}

func (b *bench) redisB(ms []measurement) redisBSummary {
	r := redisBSummary{calls: map[string]int64{}, errs: map[string]int64{}, usec: map[string]int64{},
		refresh: b.o.refresh, sessions: len(b.sess), d: b.diag, minGap: -1}
	var starts []time.Time
	for _, m := range ms {
		if m.scenario != "B" {
			continue
		}
		r.runs++
		r.reqs += m.redisReqs
		r.secs += m.end.Sub(m.start).Seconds()
		addCounts(r.calls, m.calls)
		addCounts(r.errs, m.errs)
		addCounts(r.usec, m.usec)
		starts = append(starts, m.start)
	}
	if len(starts) > 1 {
		r.runGap = starts[len(starts)-1].Sub(starts[0]) / time.Duration(len(starts)-1)
	}
	if r.d == nil {
		return r
	}
	for k, v := range r.d.top {
		switch {
		case strings.HasSuffix(k, " seen"), isReadCmd(k):
			r.lookups += v
		case strings.HasSuffix(k, " touch"):
			r.touches += v
		}
	}
	r.writesPerInterval = float64(r.touches) / float64(max(r.sessions, 1)) / (r.d.dur.Seconds() / b.o.refresh.Seconds())
	for _, ts := range b.writesAt {
		sort.Float64s(ts)
		for i := 1; i < len(ts); i++ {
			g := time.Duration((ts[i] - ts[i-1]) * float64(time.Millisecond))
			if r.minGap < 0 || g < r.minGap {
				r.minGap = g
			}
			if g < b.o.refresh {
				r.tooSoon++
			}
		}
	}
	return r
}

func scriptCalls(m map[string]int64) int64 {
	var n int64
	for k, v := range m {
		if isScriptCmd(k) {
			n += v
		}
	}
	return n
}

func (b *bench) printRedisB(p func(string, ...any), r redisBSummary) {
	p("Redis during B, measured runs (INFO commandstats; %d run(s), %s requests):", r.runs, benchkit.Commas(r.reqs))
	total := sum(r.calls)
	p("  commands: %s = %.4f per request", benchkit.Commas(total), r.perReq(total))
	if total > 0 {
		byClass := map[string]int64{}
		for k, v := range r.calls {
			byClass[b.classes.of(k)] += v
		}
		p("    by class (Redis's own command flags; commands run inside scripts count too): %s", list(byClass, 0))
		p("    by command: %s", list(r.calls, 12))
		sc := scriptCalls(r.calls)
		var scUsec int64
		for k, v := range r.usec {
			if isScriptCmd(k) {
				scUsec += v
			}
		}
		p("    scripts (EVALSHA/EVAL): %s = %.0f/s of load; Redis time %.0f µs per script; all commands %.1f µs of Redis time per request",
			benchkit.Commas(sc), float64(sc)/max(r.secs, 1), float64(scUsec)/float64(max(sc, 1)), float64(sum(r.usec))/float64(max(r.reqs, 1)))
		if r.runGap > r.refresh {
			p("    B idles between its runs (a B run starts every %.0f s, refresh_interval %v), so each run starts with every", r.runGap.Seconds(), r.refresh)
			p("    session due: up to %s refreshes per run, %.0f/s over %.0f s runs, where constant load gives %s/%v = %.0f/s",
				benchkit.Commas(int64(r.sessions)), float64(r.sessions)/(r.secs/float64(max(r.runs, 1))), r.secs/float64(max(r.runs, 1)),
				benchkit.Commas(int64(r.sessions)), r.refresh, float64(r.sessions)/r.refresh.Seconds())
		}
	}
	if len(r.errs) == 0 {
		p("  Redis errors: none")
	} else {
		p("  Redis errors (errorstats): %s%s", list(r.errs, 0), errHint(r.errs, b.rs.Version))
	}
	p("")
	d := r.d
	if d == nil {
		p("(no diagnostic MONITOR run: -monitor=false)")
		p("")
		return
	}
	top, _ := splitSetup(d.top)
	p("Redis during B, diagnostic run with MONITOR (%.0f s, -c%d, %s requests; not in the tables, MONITOR costs CPU):",
		d.dur.Seconds(), b.o.connections, benchkit.Commas(d.w.requests))
	p("  top-level commands the module sent: %s = %.4f per request", benchkit.Commas(top), r.perDiagReq(top))
	if len(d.top) > 0 {
		p("    %s", list(d.top, 12))
	}
	if in := sum(d.inner); in > 0 {
		p("    run inside those scripts: %s", list(d.inner, 12))
	}
	p("  request-path store lookups (seen script = cache miss, GET): %s = %.4f per request", benchkit.Commas(r.lookups), r.perDiagReq(r.lookups))
	p("  refreshes (touch script, batched off the request path): %s = %.0f/s (constant load: %s sessions / %v = %.0f/s)",
		benchkit.Commas(r.touches), float64(r.touches)/d.dur.Seconds(), benchkit.Commas(int64(r.sessions)), r.refresh, float64(r.sessions)/r.refresh.Seconds())
	iv := d.dur.Seconds() / r.refresh.Seconds()
	p("  per session per refresh_interval: refresh writes %.2f; top-level commands %.2f; commandstats commands %.2f",
		r.writesPerInterval, float64(top)/float64(r.sessions)/iv, float64(sum(d.calls))/float64(r.sessions)/iv)
	if r.touches > 0 {
		p("    -> at one refresh per session per interval: %.0f top-level commands/s and %.0f commands/s counted by Redis",
			float64(r.sessions)/r.refresh.Seconds()*float64(top)/float64(r.touches),
			float64(r.sessions)/r.refresh.Seconds()*float64(sum(d.calls))/float64(r.touches))
	}
	if r.minGap >= 0 {
		p("  shortest time between two writes (open or refresh) of one session: %s; sessions written twice within %v: %d",
			fmtSecs(r.minGap), r.refresh, r.tooSoon)
	} else {
		p("  no session was written twice while MONITOR was on (opening and diagnostic run)")
	}
	if len(d.errs) > 0 {
		p("  Redis errors (errorstats): %s%s", list(d.errs, 0), errHint(d.errs, b.rs.Version))
	}
	p("")
}

func (b *bench) printOpen(p func(string, ...any), oc *openCost) {
	n := float64(oc.sessionsCount)
	p("Opening %s sessions through B (not measured above): %v, %.0f sessions/s", benchkit.Commas(int64(oc.sessionsCount)), oc.took.Round(10*time.Millisecond), n/oc.took.Seconds())
	if oc.monitored {
		work, _ := splitSetup(oc.top)
		p("  top-level commands per session: %.2f (%s)", float64(work)/n, perReqList(oc.top, int64(oc.sessionsCount), 8))
	}
	p("  commandstats commands per session: %.2f (%s)", float64(sum(oc.calls))/n, perReqList(oc.calls, int64(oc.sessionsCount), 10))
	if len(oc.errs) > 0 {
		p("  Redis errors (errorstats): %s%s", list(oc.errs, 0), errHint(oc.errs, b.rs.Version))
	}
	p("")
}

func (b *bench) cacheLine() string {
	c := b.caddies["B"]
	if c == nil {
		return "n/a (B not run)"
	}
	if n, field, ok := c.cacheSize(); ok {
		return fmt.Sprintf("%s entries (admin API GET /sessions/, field %s)", benchkit.Commas(n), field)
	}
	return "n/a (the module does not expose it: Tracker.CacheLen has no admin API or metrics field)"
}

func list(m map[string]int64, limit int) string {
	var parts []string
	for i, k := range sortedKeys(m) {
		if limit > 0 && i == limit {
			parts = append(parts, fmt.Sprintf("... (%d more)", len(m)-limit))
			break
		}
		parts = append(parts, k+" "+benchkit.Commas(m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// errHint explains the errors every run has.
func errHint(errs map[string]int64, version string) string {
	var h []string
	if errs["NOSCRIPT"] > 0 {
		h = append(h, "NOSCRIPT: EVALSHA of a script not loaded yet, retried as EVAL")
	}
	if errs["ERR"] > 0 && version < "7.2" {
		h = append(h, "ERR: go-redis sends CLIENT SETINFO on each new connection, unknown to Redis < 7.2")
	}
	if len(h) == 0 {
		return ""
	}
	return " (" + strings.Join(h, "; ") + ")"
}

func perReqList(m map[string]int64, n int64, limit int) string {
	var parts []string
	for i, k := range sortedKeys(m) {
		if limit > 0 && i == limit {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(m[k])/float64(max(n, 1))))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func perReq(d time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}

func fmtMicros(d time.Duration, n int64) string {
	return fmt.Sprintf("%.1f µs", perReq(d, n))
}

func fmtSigned(d time.Duration) string {
	return fmt.Sprintf("%+.2f ms", float64(d)/float64(time.Millisecond))
}

func fmtSecs(d time.Duration) string {
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func minMax(xs []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range xs {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

func caddyVersion(b *bench) string {
	for _, c := range b.caddies {
		out, err := exec.Command(c.Cmd.Path, "version").Output()
		if err == nil {
			return "caddy " + strings.Fields(string(out) + " ?")[0]
		}
	}
	return "caddy ?"
}

func wrkVersion() string {
	out, _ := exec.Command("wrk", "-v").CombinedOutput()
	f := strings.Fields(string(out))
	if len(f) >= 2 {
		return "wrk " + f[1]
	}
	return "wrk ?"
}
