// Command soak sends requests for many distinct sessions through one Caddy
// with the module (Redis store, bounded cache) at a steady rate and samples
// Caddy's memory, to show that RSS stays flat once the local cache is full
// (issue 5: "Caddy's RSS stays flat while 1,000,000 distinct sessions pass
// through").
//
// Run from the repository root:
//
//	go run ./bench/soak [-sessions 1000000] [-cache-size 100000] [-rate 0] [-duration 3m]
//
// Every request carries a new sid cookie and a user header, so every one
// opens a session. When -sessions do not fit into -duration at the rate
// this machine sustains, the run stops at -duration and extrapolates,
// clearly labelled. See bench/README.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-sessions/caddy-sessions/bench/internal/benchkit"
)

const realm = "soak"

// userAgents of the requests: five browsers.
var userAgents = benchkit.UserAgents[:5]

var logf = benchkit.Logf

type options struct {
	sessions, users, cacheSize int
	rate                       int
	workers                    int
	duration, sample           time.Duration
	calibrate                  time.Duration
	cluster, keep, strict      bool
}

func main() {
	var o options
	flag.IntVar(&o.sessions, "sessions", 1000000, "distinct sessions to send (each request opens one); the run stops earlier at -duration")
	flag.IntVar(&o.users, "users", 0, "distinct users owning them (0: sessions/10)")
	flag.IntVar(&o.cacheSize, "cache-size", 100000, "cache_size of the module")
	flag.IntVar(&o.rate, "rate", 0, "requests per second (0: measure what this machine sustains for -calibrate, then use 80% of it)")
	flag.IntVar(&o.workers, "workers", 64, "concurrent requests at most (keep-alive connections)")
	flag.DurationVar(&o.duration, "duration", 3*time.Minute, "longest steady-rate load; sessions left are extrapolated")
	flag.DurationVar(&o.calibrate, "calibrate", 5*time.Second, "closed-loop run that measures the sustainable rate when -rate is 0 (its sessions count)")
	flag.DurationVar(&o.sample, "sample", 5*time.Second, "sampling period of Caddy's RSS")
	flag.BoolVar(&o.cluster, "cluster", false, "use a local 3-master Redis Cluster")
	flag.BoolVar(&o.strict, "strict", false, "exit 3 when the flatness target is missed")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (Caddyfile, logs)")
	flag.Parse()
	if o.users <= 0 {
		o.users = max(1, o.sessions/10)
	}
	if o.sessions < 1 || o.cacheSize < 1 || o.rate < 0 || o.workers < 1 || o.duration < 10*time.Second || o.sample < time.Second {
		fmt.Fprintln(os.Stderr, "soak: need -sessions >= 1, -cache-size >= 1, -rate >= 0, -workers >= 1, -duration >= 10s, -sample >= 1s")
		os.Exit(2)
	}
	benchkit.Main("soak", o.keep, func(e *benchkit.Env) (int, error) { return run(e, o) })
}

type bench struct {
	o       options
	rs      *benchkit.Redis
	caddy   *benchkit.Caddy
	client  *http.Client
	started time.Time

	next     atomic.Int64 // next session index
	done     atomic.Int64 // answered requests
	failed   atomic.Int64
	firstErr atomic.Value // string
	late     atomic.Int64 // ticks the workers could not take at once
}

// sample is one reading of Caddy's memory.
type sample struct {
	at                 time.Duration // since the steady load started (negative: before)
	label              string
	sent               int64
	rate               float64 // answered per second since the previous sample
	rss, hwm           int64
	heapAlloc, heapSys int64
	cache              int
	redisUsed          int64
}

func run(e *benchkit.Env, o options) (int, error) {
	ctx := context.Background()
	b := &bench{o: o, started: time.Now()}
	logf("machine: %s", benchkit.Machine())
	bin, err := benchkit.BuildCaddy(e)
	if err != nil {
		return 1, err
	}
	if b.rs, err = benchkit.StartRedis(e, o.cluster); err != nil {
		return 1, err
	}
	st0, err := b.rs.Stats(ctx)
	if err != nil {
		return 1, err
	}
	up, err := benchkit.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") }))
	if err != nil {
		return 1, err
	}
	// The module on Redis with a bounded cache, in front of the upstream.
	site := []string{b.rs.Sessions(realm, "X-User", fmt.Sprintf("cache_size %d", o.cacheSize)),
		benchkit.Block("reverse_proxy "+up, benchkit.Block("transport http", "keepalive_idle_conns_per_host 128"))}
	if b.caddy, err = benchkit.StartCaddy(e, bin, benchkit.CaddySpec{Name: "caddy-soak", Site: site}); err != nil {
		return 1, err
	}
	logf("  caddy at %s, admin %s, pid %d", b.caddy.Site, b.caddy.Admin, b.caddy.PID())
	b.client = benchkit.KeepAliveClient(o.workers)

	var series []sample
	series = append(series, b.read(ctx, -1, "started", 0))

	rate := o.rate
	if rate == 0 {
		logf("calibrating: closed loop with %d concurrent requests for %v...", o.workers, o.calibrate)
		got := b.closedLoop(o.calibrate)
		if f := b.failed.Load(); f > 0 {
			return 1, fmt.Errorf("calibration: %d requests failed; first: %v", f, b.firstErr.Load())
		}
		rate = max(100, int(0.8*got)/100*100)
		logf("  sustained %.0f requests/s (each opening a session); steady rate: %d/s (80%%)", got, rate)
		series = append(series, b.read(ctx, -1, "after calibration", 0))
	}

	remaining := o.sessions - int(b.next.Load())
	planned := time.Duration(float64(remaining) / float64(rate) * float64(time.Second))
	dur := min(planned, o.duration)
	logf("steady load: %d requests/s for %v (%s sessions; %s of them fit in -duration %v)...", rate, dur.Round(time.Second),
		benchkit.Commas(int64(remaining)), benchkit.Commas(int64(min(float64(remaining), float64(rate)*o.duration.Seconds()))), o.duration)
	steady := b.steady(ctx, rate, dur, &series)
	time.Sleep(2 * time.Second) // let the last requests' writes settle
	final := b.read(ctx, time.Since(steady), "end (2 s after the load)", 0)
	series = append(series, final)
	gc := b.afterGC(ctx, time.Since(steady))
	series = append(series, gc)
	if f := b.failed.Load(); f > 0 {
		b.report(os.Stdout, rate, series, nil)
		return 1, fmt.Errorf("%d requests failed; first: %v", f, b.firstErr.Load())
	}
	if !b.caddy.Running() {
		return 1, fmt.Errorf("caddy exited; log:\n%s", b.caddy.LogTail(3000))
	}
	st1, err := b.rs.Stats(ctx)
	if err != nil {
		return 1, err
	}
	redisErrs := benchkit.Diff(st1.Errors, st0.Errors)
	missed := b.report(os.Stdout, rate, series, redisErrs)
	if redisErrs["CROSSSLOT"] > 0 {
		return 1, fmt.Errorf("redis counted %d CROSSSLOT errors", redisErrs["CROSSSLOT"])
	}
	if missed && o.strict {
		return 3, nil
	}
	return 0, nil
}

// one sends the request of session index i: a new sid cookie and the user
// header, so the module opens a session.
func (b *bench) one(rnd *mrand.ChaCha8, i int64) {
	var tok [24]byte
	_, _ = rnd.Read(tok[:])
	req, _ := http.NewRequest(http.MethodGet, b.caddy.Site+"/", nil)
	req.Header.Set("Cookie", "sid="+base64.RawURLEncoding.EncodeToString(tok[:]))
	req.Header.Set("X-User", fmt.Sprintf("soak-user-%07d@example.com", i%int64(b.o.users)))
	req.Header.Set("User-Agent", userAgents[i%int64(len(userAgents))])
	resp, err := b.client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("session %d: %s", i, resp.Status)
		} else if !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), " "), "sessions_device=") {
			err = fmt.Errorf("session %d: no device cookie set: the module did not track the request", i)
		}
	}
	if err != nil {
		if b.failed.Add(1) == 1 {
			b.firstErr.Store(err.Error())
		}
	}
	b.done.Add(1)
}

func newRand() *mrand.ChaCha8 {
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	return mrand.NewChaCha8(seed)
}

// closedLoop sends as fast as o.workers concurrent requests allow for d
// and returns the rate.
func (b *bench) closedLoop(d time.Duration) float64 {
	start := time.Now()
	done0 := b.done.Load()
	var wg sync.WaitGroup
	for range b.o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := newRand()
			for time.Since(start) < d {
				i := b.next.Add(1) - 1
				if i >= int64(b.o.sessions) {
					return
				}
				b.one(rnd, i)
			}
		}()
	}
	wg.Wait()
	return float64(b.done.Load()-done0) / time.Since(start).Seconds()
}

// steady sends rate requests per second (open loop: a ticker hands out
// work every millisecond; o.workers goroutines do it) for d, sampling
// every o.sample. It returns when the load started.
func (b *bench) steady(ctx context.Context, rate int, d time.Duration, series *[]sample) time.Time {
	work := make(chan int64, b.o.workers)
	var wg sync.WaitGroup
	for range b.o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := newRand()
			for i := range work {
				b.one(rnd, i)
			}
		}()
	}
	start := time.Now()
	stopSampling := make(chan struct{})
	var sw sync.WaitGroup
	sw.Add(1)
	go func() {
		defer sw.Done()
		tick := time.NewTicker(b.o.sample)
		defer tick.Stop()
		lastDone, lastT := b.done.Load(), time.Now()
		for {
			select {
			case <-stopSampling:
				return
			case now := <-tick.C:
				s := b.read(ctx, now.Sub(start), "", float64(b.done.Load()-lastDone)/now.Sub(lastT).Seconds())
				lastDone, lastT = b.done.Load(), now
				*series = append(*series, s)
				logf("  %6.0fs  sent %9s  %6.0f/s  RSS %s  heap %s  cache_entries %s  redis %s", s.at.Seconds(), benchkit.Commas(s.sent), s.rate,
					benchkit.MiB(s.rss), benchkit.MiB(s.heapAlloc), benchkit.Commas(int64(s.cache)), benchkit.MiB(s.redisUsed))
			}
		}
	}()
	tick := time.NewTicker(time.Millisecond)
	credit := 0.0
	last := start
	for now := range tick.C {
		if now.Sub(start) >= d || b.next.Load() >= int64(b.o.sessions) {
			break
		}
		credit += now.Sub(last).Seconds() * float64(rate)
		last = now
		for credit >= 1 && b.next.Load() < int64(b.o.sessions) {
			taken := false
			select {
			case work <- b.next.Load():
				b.next.Add(1)
				credit--
				taken = true
			default:
			}
			if !taken {
				// Every worker is busy: the machine is not keeping up.
				// The deficit is dropped (the rate column shows it).
				b.late.Add(1)
				credit = min(credit, float64(b.o.workers))
				break
			}
		}
	}
	tick.Stop()
	close(work)
	wg.Wait()
	close(stopSampling)
	sw.Wait()
	return start
}

// read takes one sample.
func (b *bench) read(ctx context.Context, at time.Duration, label string, rate float64) sample {
	s := sample{at: at, label: label, sent: b.next.Load(), rate: rate}
	s.hwm, s.rss, _ = benchkit.MemStatus(b.caddy.PID())
	if ms, err := b.caddy.MemStats(); err == nil {
		s.heapAlloc, s.heapSys = int64(ms.HeapAlloc), int64(ms.HeapSys)
	}
	s.cache, _ = b.caddy.CacheEntries()
	if m, err := b.rs.Memory(ctx); err == nil {
		s.redisUsed = m.Used
	}
	return s
}

// afterGC makes Caddy collect garbage (GET /debug/pprof/heap?gc=1) and
// reads again: what is live, without GC lag.
func (b *bench) afterGC(ctx context.Context, at time.Duration) sample {
	_ = b.caddy.AdminGet("/debug/pprof/heap?gc=1", io.Discard, 30*time.Second)
	return b.read(ctx, at, "end, after a forced GC", 0)
}

// ---------------------------------------------------------------------------

// report prints the series and the verdict; it returns whether the
// flatness target was missed.
func (b *bench) report(w io.Writer, rate int, series []sample, redisErrs map[string]int64) bool {
	o := b.o
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	sent := b.next.Load()
	p("")
	p("== caddy-sessions: Caddy memory while distinct sessions pass through (issue 5) ==")
	p("machine:  %s", benchkit.Machine())
	p("setup:    one Caddy (sessions: store redis, user {http.request.header.X-User}, session_cookie sid, cache_size %s) + reverse_proxy", benchkit.Commas(int64(o.cacheSize)))
	p("          to an in-process upstream; Redis %s %s; load generator in this process; all on loopback, sharing the cores", b.rs.Version, b.rs.Kind())
	p("load:     every request has a new sid cookie and a user header (%s users), so every request opens a session (a Redis", benchkit.Commas(int64(o.users)))
	p("          round trip on the request path, then a cache entry); steady open-loop rate %d/s with up to %d requests in flight", rate, o.workers)
	p("sent:     %s sessions (%s answered, %d failed) of the %s asked for", benchkit.Commas(sent), benchkit.Commas(b.done.Load()), b.failed.Load(), benchkit.Commas(int64(o.sessions)))
	if l := b.late.Load(); l > 0 {
		p("          the generator found every worker busy %d times (the rate in the series shows what was achieved)", l)
	}
	p("")
	p("| t | sessions sent | req/s | Caddy VmRSS | Go heap alloc | Go heap sys | cache_entries | Redis used_memory | |")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, s := range series {
		t := fmt.Sprintf("%.0f s", s.at.Seconds())
		if s.at < 0 {
			t = "—"
		}
		r := ""
		if s.rate > 0 {
			r = fmt.Sprintf("%.0f", s.rate)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |", t, benchkit.Commas(s.sent), r, benchkit.MiB(s.rss), benchkit.MiB(s.heapAlloc), benchkit.MiB(s.heapSys),
			benchkit.Commas(int64(s.cache)), benchkit.MiB(s.redisUsed), s.label)
	}
	last := series[len(series)-1]
	p("Caddy peak RSS (VmHWM): %s", benchkit.MiB(last.hwm))
	p("")

	// Flatness: from the first sample with a full cache on.
	full := -1
	for i, s := range series {
		if s.label == "" && s.cache >= o.cacheSize*99/100 {
			full = i
			break
		}
	}
	missed := false
	if full < 0 {
		p("The cache never filled (%s entries at most; cache_size %s): the run is too short to judge flatness.", benchkit.Commas(int64(maxCache(series))), benchkit.Commas(int64(o.cacheSize)))
		p("")
	} else {
		sf := series[full]
		// the last load sample (not the after-load readings)
		var loadSamples []sample
		for _, s := range series[full:] {
			if s.label == "" {
				loadSamples = append(loadSamples, s)
			}
		}
		end := loadSamples[len(loadSamples)-1]
		maxRSS := sf.rss
		for _, s := range loadSamples {
			maxRSS = max(maxRSS, s.rss)
		}
		slope := fitSlope(loadSamples) // bytes of RSS per session sent
		p("Cache full (≥ 99%% of cache_size) at %.0f s, after %s sessions: RSS %s.", sf.at.Seconds(), benchkit.Commas(sf.sent), benchkit.MiB(sf.rss))
		p("From then to the end of the load (%s more sessions): RSS %s → %s (max %s), %+.1f%%; least-squares slope %.1f bytes of RSS per session",
			benchkit.Commas(end.sent-sf.sent), benchkit.MiB(sf.rss), benchkit.MiB(end.rss), benchkit.MiB(maxRSS), 100*float64(end.rss-sf.rss)/float64(sf.rss), slope)
		p("(%+.1f MiB per 100,000 sessions).", slope*1e5/(1<<20))
		target := int64(1000000)
		growth := float64(end.rss - sf.rss)
		label := "measured"
		if sent < target {
			extra := float64(target - sent)
			growth += max(0, slope) * extra
			label = "EXTRAPOLATED"
			secs := float64(target) / float64(rate)
			p("1,000,000 sessions at %d/s would take %.0f s (%.1f min); this run sent %s. EXTRAPOLATED to 1,000,000 with the slope above",
				rate, secs, secs/60, benchkit.Commas(sent))
			p("(a negative slope counts as 0): RSS ≈ %s at 1,000,000 sessions.", benchkit.MiB(end.rss+int64(max(0, slope)*extra)))
		}
		ok := growth <= 0.10*float64(sf.rss)
		missed = !ok
		if len(loadSamples) < 10 || end.sent-sf.sent < int64(2*o.cacheSize) {
			p("WARNING: only %d samples and %s sessions after the cache filled (want at least 10 and 2 x cache_size): the slope is",
				len(loadSamples), benchkit.Commas(end.sent-sf.sent))
			p("mostly the Go heap still growing to its steady size; the extrapolation is not reliable. Run longer (-duration).")
		}
		p("")
		p("| Target | Measured | Verdict |")
		p("|---|---:|---|")
		p("| RSS flat once the cache is full: growth from cache-full to 1,000,000 sessions ≤ 10%% of RSS at cache-full | %+.1f MiB (%+.1f%%, %s) | %s |",
			growth/(1<<20), 100*growth/float64(sf.rss), label, benchkit.Verdict(ok))
		p("| local cache bounded by cache_size | max %s entries (cache_size %s) | %s |", benchkit.Commas(int64(maxCache(series))), benchkit.Commas(int64(o.cacheSize)), benchkit.Verdict(maxCache(series) <= o.cacheSize))
		p("")
	}
	r := series[len(series)-1]
	if m, err := b.rs.Memory(context.Background()); err == nil {
		p("Redis at the end: used_memory %s, %s keys, %.0f bytes per session sent (all-in: user keys, devices, realm index)",
			benchkit.MiB(m.Used), benchkit.Commas(m.Keys), float64(m.Used)/float64(max(1, sent)))
	} else {
		p("Redis at the end: used_memory %s", benchkit.MiB(r.redisUsed))
	}
	if redisErrs != nil {
		p("Redis errorstats during the run: %s (ERR: go-redis sends CLIENT SETINFO on each new connection, which Redis %s refuses; harmless)", benchkit.FormatCounts(redisErrs), b.rs.Version)
		if o.cluster {
			p("CROSSSLOT: %d", redisErrs["CROSSSLOT"])
		}
	}
	p("total run time %v", time.Since(b.started).Round(time.Second))
	return missed
}

func maxCache(series []sample) int {
	m := 0
	for _, s := range series {
		m = max(m, s.cache)
	}
	return m
}

// fitSlope is the least-squares slope of RSS over sessions sent.
func fitSlope(s []sample) float64 {
	if len(s) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	n := float64(len(s))
	for _, x := range s {
		fx, fy := float64(x.sent), float64(x.rss)
		sx += fx
		sy += fy
		sxx += fx * fx
		sxy += fx * fy
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
