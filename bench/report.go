package main

import (
	"fmt"
	"io"
	"math"
	"os/exec"
	"runtime"
	"slices"
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
	procs := "Go default (all cores)"
	if o.caddyProcs > 0 {
		procs = fmt.Sprint(o.caddyProcs)
	}
	p("")
	p("== caddy-sessions benchmark (issue 5) ==")
	p("machine:  %s", benchkit.Machine())
	p("software: %s; redis %s (%s); %s", caddyVersion(b), b.rs.Version, b.rs.Kind(), wrkVersion())
	p("load:     wrk -t%d -c%d, closed loop, keep-alive; GET / with sid + sessions_device cookies and X-Bench-User,", o.threads, o.connections)
	p("          cycling %s sessions of %s users; the same requests for A, B and C", benchkit.Commas(int64(o.sessions)), benchkit.Commas(int64(o.users)))
	p("runs:     %d round(s) x %v per scenario, order rotating each round; %v unmeasured warm-up each", o.rounds, o.duration, o.warmup)
	if o.latConns > 0 {
		p("          after each, a latency run: wrk -t1 -c%d for %v (not saturating: no queueing in the numbers)", o.latConns, o.latDuration)
	}
	p("          B: refresh_interval %v, sessions opened through the module before the runs (user header + sid cookie)", o.refresh)
	if k := b.keeper; k != nil {
		kc := k.counts()
		p("keeper:   B in steady state: sessions opened staggered over %v, then one request per session every %v at its", k.period, k.period)
		p("          own phase, %.0f/s to caddy B during every scenario's runs (%s requests, %d failed, %d over 1 s late),", k.rate(), benchkit.Commas(kc.served), kc.failed, kc.late)
		p("          so refreshes run at about %s/%v = %.0f/s all the time, never in a burst", benchkit.Commas(int64(len(b.sess))), o.refresh, float64(len(b.sess))/o.refresh.Seconds())
	} else if o.has("B") {
		p("keeper:   off (-keeper=false): sessions opened at once, B idles between its runs, so each B run starts with a refresh burst")
	}
	p("cpu:      Caddy GOMAXPROCS %s; Caddy, upstream, session service, Redis and wrk all share the %d cores", procs, runtime.NumCPU())
	p("")

	p("Per round (saturating runs, -c%d):", o.connections)
	p("  round scen    req/s       p50       p90       p99     p99.9  errors  Caddy CPU/req  all CPU/req  steal  other load  Redis scripts/s")
	var errRuns int
	for _, m := range ms {
		if m.w.errors()+m.latErrors() > 0 {
			errRuns++
		}
		p("  %5d %-4s %8.0f %9s %9s %9s %9s %7d %14s %12s %5.0f%% %6.2f cores %16.0f", m.round+1, m.scenario, m.w.rps,
			benchkit.Ms(m.w.p50), benchkit.Ms(m.w.p90), benchkit.Ms(m.w.p99), benchkit.Ms(m.w.p999), m.w.errors()+m.latErrors(),
			fmtMicros(m.cpu["caddy"], m.caddyReqs()), fmtMicros(m.cpuServers(), m.servedReqs()), m.steal*100, m.foreign, m.scriptRate())
	}
	if b.keeper != nil {
		p("  (CPU/req: CPU time per request served; B's Caddy also serves the keeper's requests, counted with wrk's;")
		p("   \"all\" is every Caddy + upstream + session service + Redis, without wrk and the bench, per request of wrk and keeper;")
	} else {
		p("  (CPU/req: CPU time per request; \"all\" is every Caddy + upstream + session service + Redis, without wrk;")
	}
	p("   steal: CPU time the hypervisor took from this VM; other load: cores busy with processes outside the bench;")
	if b.keeper != nil {
		p("   Redis scripts/s: EVALSHA/EVAL per second: for B its refreshes, for A and C those the keeper causes in the background)")
	} else {
		p("   Redis scripts/s: EVALSHA/EVAL per second, for B the session refreshes)")
	}
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
			cc = append(cc, perReq(m.cpu["caddy"], m.caddyReqs()))
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
		p("  round scen    req/s       p50       p99     p99.9       max  Redis scripts/s")
		for _, m := range ms {
			if m.lat != nil {
				rate := 0.0
				if m.lat.duration > 0 {
					rate = float64(m.latScripts) / m.lat.duration.Seconds()
				}
				p("  %5d %-4s %8.0f %9s %9s %9s %9s %16.0f", m.round+1, m.scenario, m.lat.rps, benchkit.Ms(m.lat.p50), benchkit.Ms(m.lat.p99),
					benchkit.Ms(m.lat.p999), benchkit.Ms(m.lat.max), rate)
			}
		}
		p("")
	}
	b.printRatios(p, ms)

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
	b.printIO(p, ms)

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
		paired := ""
		if pr := roundRatios(ms, "B", "A"); len(pr) > 1 {
			paired = fmt.Sprintf(" (per round: median %.3f, %s)", median(pr), fmtList(pr, "%.2f"))
		}
		p("| B/A throughput ≥ 0.95 | %.3f%s | %s |", r, paired, benchkit.Verdict(r >= 0.95))
		// The verdict is the median of the per-round differences: B and
		// A of one round run a few seconds apart, so drift of the host
		// between rounds cancels out.
		if o.latConns > 0 {
			d := time.Duration(bb.lp99 - a.lp99)
			pd := roundP99Diffs(ms, true)
			if len(pd) > 0 {
				d = time.Duration(median(pd))
			}
			p("| p99 added by the module ≤ 1 ms (-c%d) | %s (per round: %s; difference of the medians %s) | %s |", o.latConns,
				fmtSigned(d), fmtDiffs(pd), fmtSigned(time.Duration(bb.lp99-a.lp99)), benchkit.Verdict(d <= time.Millisecond))
		}
		d := time.Duration(bb.p99 - a.p99)
		pd := roundP99Diffs(ms, false)
		if len(pd) > 0 {
			d = time.Duration(median(pd))
		}
		p("| p99(B) − p99(A) ≤ 1 ms (-c%d, saturated) | %s (per round: %s; difference of the medians %s) | %s |", o.connections,
			fmtSigned(d), fmtDiffs(pd), fmtSigned(time.Duration(bb.p99-a.p99)), benchkit.Verdict(d <= time.Millisecond))
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
	for _, sc := range []string{"A", "C"} {
		if _, ok := med[sc]; ok {
			b.printRedisOther(p, ms, sc)
		}
	}
	if oc := b.open; oc != nil {
		b.printOpen(p, oc)
	}
}

// printIO prints each Caddy's syscalls and context switches, allocations
// and GC cycles per request served in the saturating runs (medians over
// rounds): the same work per request should cost the same number of each.
func (b *bench) printIO(p func(string, ...any), ms []measurement) {
	var parts []string
	for _, sc := range []string{"A", "B", "C"} {
		var r, w, cs []float64
		for _, m := range ms {
			if n := float64(m.caddyReqs()); m.scenario == sc && n > 0 && m.io != (procIO{}) {
				r = append(r, float64(m.io.syscr)/n)
				w = append(w, float64(m.io.syscw)/n)
				cs = append(cs, float64(m.io.ctxsw)/n)
			}
		}
		if len(r) > 0 {
			parts = append(parts, fmt.Sprintf("%s read %.2f, write %.2f, context switches %.2f", sc, median(r), median(w), median(cs)))
		}
	}
	printed := len(parts) > 0
	if printed {
		p("Caddy syscalls and context switches per request served (saturating runs, medians; /proc/<pid>/io syscr/syscw, task status):")
		p("  %s", strings.Join(parts, "; "))
	}
	parts = parts[:0]
	for _, sc := range []string{"A", "B", "C"} {
		var allocs, bytes, gcs, heap []float64
		for _, m := range ms {
			if n := float64(m.caddyReqs()); m.scenario == sc && n > 0 && m.mem0 != nil && m.mem1 != nil {
				allocs = append(allocs, float64(m.mem1.Mallocs-m.mem0.Mallocs)/n)
				bytes = append(bytes, float64(m.mem1.TotalAlloc-m.mem0.TotalAlloc)/n)
				gcs = append(gcs, float64(m.mem1.NumGC-m.mem0.NumGC)/n*1e4)
				heap = append(heap, float64(m.mem1.NextGC))
			}
		}
		if len(allocs) > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f allocations, %.1f KiB, %.2f GC cycles per 10,000 requests, GC goal %s",
				sc, median(allocs), median(bytes)/1024, median(gcs), benchkit.MiB(int64(median(heap)))))
		}
	}
	if len(parts) > 0 {
		p("Caddy Go heap per request served (saturating runs, medians; admin /debug/vars):")
		p("  %s", strings.Join(parts, "; "))
	}
	if printed || len(parts) > 0 {
		p("")
	}
}

// roundRatios is req/s of scenario x over y in each round where both ran:
// the two runs of a pair are minutes apart at most, so slow drift of the
// machine cancels out of each ratio.
func roundRatios(ms []measurement, x, y string) []float64 {
	rx, ry := map[int]float64{}, map[int]float64{}
	for _, m := range ms {
		switch m.scenario {
		case x:
			rx[m.round] = m.w.rps
		case y:
			ry[m.round] = m.w.rps
		}
	}
	var out []float64
	for r := 0; r < len(ms); r++ {
		if vx, ok := rx[r]; ok {
			if vy, ok := ry[r]; ok && vy > 0 {
				out = append(out, vx/vy)
			}
		}
	}
	return out
}

// roundP99Diffs returns p99(B) − p99(A) of each round that ran both, in
// nanoseconds: of the latency runs if lat, else of the saturating runs.
func roundP99Diffs(ms []measurement, lat bool) []float64 {
	pb, pa := map[int]float64{}, map[int]float64{}
	for _, m := range ms {
		v := float64(m.w.p99)
		if lat {
			if m.lat == nil {
				continue
			}
			v = float64(m.lat.p99)
		}
		switch m.scenario {
		case "B":
			pb[m.round] = v
		case "A":
			pa[m.round] = v
		}
	}
	var out []float64
	for r := 0; r < len(ms); r++ {
		if b, ok := pb[r]; ok {
			if a, ok := pa[r]; ok {
				out = append(out, b-a)
			}
		}
	}
	return out
}

func fmtDiffs(ns []float64) string {
	parts := make([]string, len(ns))
	for i, d := range ns {
		parts[i] = fmt.Sprintf("%+.2f", d/float64(time.Millisecond))
	}
	return strings.Join(parts, " ")
}

// printRatios prints the throughput ratios per round.
func (b *bench) printRatios(p func(string, ...any), ms []measurement) {
	var lines []string
	for _, pair := range [][2]string{{"B", "A"}, {"B", "C"}, {"A", "C"}} {
		if r := roundRatios(ms, pair[0], pair[1]); len(r) > 0 {
			lo, hi := minMax(r)
			lines = append(lines, fmt.Sprintf("  %s/%s: %s; median %.3f (min %.2f, max %.2f)", pair[0], pair[1], fmtList(r, "%.3f"), median(r), lo, hi))
		}
	}
	if len(lines) == 0 {
		return
	}
	p("Throughput ratios per round (saturating runs):")
	for _, l := range lines {
		p("%s", l)
	}
	p("")
}

func fmtList(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, " ")
}

// isBackgroundRead tells a top-level read the module makes off the request
// path: the realm settings' refresh (Tracker.Settings reloads them in a
// goroutine once they are older than their TTL, answering from the copy it
// has) and the idle sweep (sweepLoop, which reads the realm's users index).
func isBackgroundRead(k string) bool {
	cmd, key, _ := strings.Cut(k, " ")
	return (cmd == "get" && strings.HasSuffix(key, ":settings")) || cmd == "zrangebyscore"
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
	reqs        int64     // requests B served in its measured runs: wrk's and the keeper's
	keptReqs    int64     // ... of which the keeper's
	secs        float64   // measured seconds of load (saturating + latency runs)
	rates       []float64 // Redis scripts per second in each saturating run
	calls, errs map[string]int64
	usec        map[string]int64
	runGap      time.Duration // mean time between the starts of two B runs

	d                 *diagRun
	lookups           int64 // request-path store reads in the diagnostic run: seen script, GETs
	background        int64 // reads off the request path: settings poll, idle sweep
	touches           int64
	writesPerInterval float64
	minGap            time.Duration
	tooSoon           int // sessions written twice within refresh_interval
	refresh           time.Duration
	sessions          int
}

func (r redisBSummary) perReq(n int64) float64 { return float64(n) / float64(max(r.reqs, 1)) }

func (r redisBSummary) perDiagReq(n int64) float64 {
	return float64(n) / float64(max(r.d.w.requests+r.d.kept.served, 1))
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
		r.reqs += m.redisReqs + m.keptAll.served
		r.keptReqs += m.keptAll.served
		r.secs += m.end.Sub(m.start).Seconds()
		r.rates = append(r.rates, m.scriptRate())
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
		case isBackgroundRead(k):
			r.background += v
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
	kept := ""
	if r.keptReqs > 0 {
		kept = fmt.Sprintf(", the keeper's %s included", benchkit.Commas(r.keptReqs))
	}
	p("Redis during B, measured runs (INFO commandstats; %d run(s), %.0f s, %s requests%s):", r.runs, r.secs, benchkit.Commas(r.reqs), kept)
	total := sum(r.calls)
	p("  commands: %s = %.4f per request = %.2f per session per refresh_interval (%.0f/s)", benchkit.Commas(total), r.perReq(total),
		float64(total)/max(r.secs, 1)*r.refresh.Seconds()/float64(max(r.sessions, 1)), float64(total)/max(r.secs, 1))
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
		p("    scripts (EVALSHA/EVAL): %s = %.0f/s of load = %.2f per session per refresh_interval; Redis time %.0f µs per script; all commands %.1f µs of Redis time per request",
			benchkit.Commas(sc), float64(sc)/max(r.secs, 1), float64(sc)/max(r.secs, 1)*r.refresh.Seconds()/float64(max(r.sessions, 1)),
			float64(scUsec)/float64(max(sc, 1)), float64(sum(r.usec))/float64(max(r.reqs, 1)))
	}
	steady := float64(r.sessions) / r.refresh.Seconds()
	if len(r.rates) > 0 {
		p("  refreshes per second in each saturating run (Redis scripts/s): %s; median %.0f/s; constant load: %s/%v = %.0f/s",
			fmtList(r.rates, "%.0f"), median(r.rates), benchkit.Commas(int64(r.sessions)), r.refresh, steady)
	}
	if b.keeper == nil && r.runGap > r.refresh {
		p("    B idles between its runs (a B run starts every %.0f s, refresh_interval %v) and -keeper=false, so each run starts with", r.runGap.Seconds(), r.refresh)
		p("    every session due: up to %s refreshes per run, %.0f/s over %.0f s runs: a burst, not steady state",
			benchkit.Commas(int64(r.sessions)), float64(r.sessions)/(r.secs/float64(max(r.runs, 1))), r.secs/float64(max(r.runs, 1)))
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
	p("Redis during B, diagnostic run with MONITOR (%.0f s, -c%d, %s requests incl. %s of the keeper; not in the tables, MONITOR costs CPU):",
		d.dur.Seconds(), b.o.connections, benchkit.Commas(d.w.requests+d.kept.served), benchkit.Commas(d.kept.served))
	p("  top-level commands the module sent: %s = %.4f per request", benchkit.Commas(top), r.perDiagReq(top))
	if len(d.top) > 0 {
		p("    %s", list(d.top, 12))
	}
	if in := sum(d.inner); in > 0 {
		p("    run inside those scripts: %s", list(d.inner, 12))
	}
	p("  request-path store lookups (seen script = cache miss, GET): %s = %.4f per request; reads off the request path (settings refresh, idle sweep): %s",
		benchkit.Commas(r.lookups), r.perDiagReq(r.lookups), benchkit.Commas(r.background))
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

// printRedisOther prints what Redis saw during A's or C's runs. C's
// session service sends one GET per request; the keeper's refreshes of
// B's sessions run in the background (scripts and what they call, and the
// module's ZADD/PEXPIRE after each batch), the same during every scenario.
func (b *bench) printRedisOther(p func(string, ...any), ms []measurement, sc string) {
	calls := map[string]int64{}
	var reqs int64
	var secs float64
	for _, m := range ms {
		if m.scenario == sc {
			addCounts(calls, m.calls)
			reqs += m.redisReqs
			secs += m.end.Sub(m.start).Seconds()
		}
	}
	own, bg := map[string]int64{}, map[string]int64{}
	for k, v := range calls {
		if sc == "C" && k == "get" {
			own[k] += v
		} else {
			bg[k] += v
		}
	}
	switch {
	case sc == "C" && b.keeper == nil:
		p("Redis during C (%s requests): %.3f commands per request (%s)", benchkit.Commas(reqs), float64(sum(calls))/float64(max(reqs, 1)), perReqList(calls, reqs, 6))
	case sc == "C":
		p("Redis during C (%s requests): the session service's GET %.3f per request; in the background, the keeper's refreshes of B: %.0f commands/s (%s)",
			benchkit.Commas(reqs), float64(own["get"])/float64(max(reqs, 1)), float64(sum(bg))/max(secs, 1), perSecList(bg, secs, 6))
	case b.keeper != nil:
		p("Redis during A (no Redis of its own): the keeper's refreshes of B in the background: %.0f commands/s (%s)", float64(sum(bg))/max(secs, 1), perSecList(bg, secs, 6))
	default:
		return
	}
	p("")
}

func (b *bench) printOpen(p func(string, ...any), oc *openCost) {
	n := float64(oc.sessionsCount)
	how := "as fast as 8 clients can"
	if oc.paced {
		how = "staggered evenly (the keeper's cycle 0), so the rate is the pacing"
	}
	p("Opening %s sessions through B (not measured above): %v, %.0f sessions/s, %s; opening request p50 %s, p99 %s",
		benchkit.Commas(int64(oc.sessionsCount)), oc.took.Round(10*time.Millisecond), n/oc.took.Seconds(), how,
		benchkit.Ms(benchkit.Quantile(oc.lat, 0.5)), benchkit.Ms(benchkit.Quantile(oc.lat, 0.99)))
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
	n, err := c.CacheEntries()
	if err != nil {
		return fmt.Sprintf("n/a (%v)", err)
	}
	return fmt.Sprintf("%s entries (admin API GET /sessions/, field cache_entries)", benchkit.Commas(int64(n)))
}

// list lists the counts of m, largest first, as "key count", at most
// limit (0: all).
func list(m map[string]int64, limit int) string {
	return countList(m, limit, fmt.Sprintf("... (%d more)", len(m)-limit), benchkit.Commas)
}

// perReqList lists the counts of m per n, largest first.
func perReqList(m map[string]int64, n int64, limit int) string {
	return countList(m, limit, "...", func(v int64) string { return fmt.Sprintf("%.2f", float64(v)/float64(max(n, 1))) })
}

// perSecList lists the counts of m per second of secs, largest first.
func perSecList(m map[string]int64, secs float64, limit int) string {
	return countList(m, limit, "...", func(v int64) string { return fmt.Sprintf("%.0f/s", float64(v)/max(secs, 1)) })
}

// countList lists the keys of m, largest count first, each followed by
// its count as f formats it; after limit (0: all) keys it ends with more.
func countList(m map[string]int64, limit int, more string, f func(int64) string) string {
	var parts []string
	for i, k := range sortedKeys(m) {
		if limit > 0 && i == limit {
			parts = append(parts, more)
			break
		}
		parts = append(parts, k+" "+f(m[k]))
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

func minMax(xs []float64) (lo, hi float64) { return slices.Min(xs), slices.Max(xs) }

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
