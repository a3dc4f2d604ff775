// Command bench runs the side-by-side benchmark of caddy-sessions (issue 5)
// on loopback and prints a results table:
//
//	A  plain reverse_proxy
//	B  sessions (Redis store) + reverse_proxy, N logged-in sessions cycling
//	C  forward_auth to a session service that reads Redis per request
//	   + reverse_proxy (the peer approach)
//
// Run from the repository root:
//
//	go run ./bench [-duration 10s] [-rounds 3] [-connections 32] [-sessions 10000] [-cluster]
//
// See bench/README.md for what it measures and how.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/caddy-sessions/caddy-sessions/bench/internal/benchkit"
)

type options struct {
	duration, warmup, refresh time.Duration
	connections, threads      int
	sessions, users, rounds   int
	cluster, monitor, keep    bool
	keeper                    bool
	caddyProcs                int
	latConns                  int
	latDuration               time.Duration
	profileDir                string
	diagDuration              time.Duration
	scenarios                 string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "measured load per scenario per round (whole seconds)")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured load per scenario before the first round")
	flag.IntVar(&o.connections, "connections", 32, "concurrent keep-alive connections of the load generator")
	flag.IntVar(&o.threads, "threads", 1, "wrk threads (each one takes up to a core from Caddy)")
	flag.IntVar(&o.sessions, "sessions", 10000, "distinct logged-in sessions cycled through")
	flag.IntVar(&o.users, "users", 0, "distinct users owning the sessions (0: one user per session)")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds; each runs every scenario once, in rotating order")
	flag.BoolVar(&o.cluster, "cluster", false, "run B and C against a local 3-master Redis Cluster")
	flag.DurationVar(&o.refresh, "refresh", 30*time.Second, "refresh_interval of scenario B")
	flag.BoolVar(&o.monitor, "monitor", true, "after the rounds, a diagnostic B run with Redis MONITOR (not in the tables): what the module sends, and the write gaps per session")
	flag.DurationVar(&o.diagDuration, "monitor-duration", 0, "length of the diagnostic run (0: 2 x refresh_interval + 5s, at most 3m, at least -duration)")
	flag.IntVar(&o.caddyProcs, "caddy-procs", 0, "GOMAXPROCS of the Caddy processes (0: Go default, all cores)")
	flag.StringVar(&o.scenarios, "scenarios", "ABC", "scenarios to run (subset of ABC, for development)")
	flag.IntVar(&o.latConns, "latency-connections", 1, "connections of the extra unsaturated latency run per scenario and round (0: skip it)")
	flag.DurationVar(&o.latDuration, "latency-duration", 4*time.Second, "duration of the latency run")
	flag.StringVar(&o.profileDir, "profile", "", "save a CPU profile of each scenario's Caddy in every saturating run, and its live heap after it (Caddy's admin /debug/pprof), into this dir, with the requests each CPU profile covers in profiles.txt")
	flag.BoolVar(&o.keeper, "keeper", true, "hold B's sessions in steady state: open them staggered over refresh_interval and touch each once per refresh_interval (+0.5s) for the whole run, during every scenario; false: open them at once and let B idle between its runs (a refresh burst at the start of each B run)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (Caddyfiles, logs) after the run")
	role := flag.String("role", "", "internal: run as a child role (upstream, auth)")
	roleRedis := flag.String("role-redis", "", "internal: Redis addresses of the auth role")
	flag.Parse()

	if *role != "" {
		err := runRole(*role, *roleRedis, o.cluster)
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", *role, err)
		os.Exit(1)
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}
	benchkit.Main("bench", o.keep, func(e *benchkit.Env) (int, error) { return 0, run(e, o) })
}

func (o *options) check() error {
	o.scenarios = strings.ToUpper(o.scenarios)
	for _, c := range o.scenarios {
		if !strings.ContainsRune("ABC", c) {
			return fmt.Errorf("-scenarios: %q is not a subset of ABC", o.scenarios)
		}
	}
	switch {
	case o.scenarios == "":
		return errors.New("-scenarios: empty")
	case o.duration < time.Second:
		return errors.New("-duration: at least 1s")
	case o.rounds < 1:
		return errors.New("-rounds: at least 1")
	case o.connections < 1 || o.threads < 1 || o.connections < o.threads:
		return errors.New("-connections and -threads: at least 1, and connections >= threads")
	case o.latConns < 0 || (o.latConns > 0 && o.latDuration < time.Second):
		return errors.New("-latency-connections: >= 0; -latency-duration: at least 1s")
	case o.sessions < 1:
		return errors.New("-sessions: at least 1")
	case o.refresh <= 0 || o.refresh > 30*time.Minute:
		return errors.New("-refresh: must be in (0, 30m] (the idle timeout is the default 30m)")
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return fmt.Errorf("-profile: %w", err)
		}
		if o.duration < 3*time.Second {
			return errors.New("-profile: needs -duration of at least 3s")
		}
	}
	if o.diagDuration <= 0 {
		o.diagDuration = max(min(2*o.refresh+5*time.Second, 3*time.Minute), o.duration)
	}
	if o.users <= 0 || o.users > o.sessions {
		o.users = o.sessions
	}
	return nil
}

func (o options) has(s string) bool { return strings.Contains(o.scenarios, s) }

// session is one logged-in session as the load generator sends it.
type session struct {
	token, user, device string
}

// bench is the state of one run.
type bench struct {
	o        options
	e        *benchkit.Env
	rs       *benchkit.Redis
	classes  cmdClass
	scripts  map[string]string
	upstream *benchkit.Proc
	auth     *benchkit.Proc
	caddies  map[string]*benchkit.Caddy
	sess     []session
	script   string
	data     string

	// B's session writes seen through MONITOR, by session id: times (ms)
	// of the open and of each refresh.
	writesAt map[string][]float64
	open     *openCost
	rssB     []rssPoint // B's Caddy RSS at stages of the run
	diag     *diagRun
	keeper   *keeper // nil with -keeper=false or without B
	profiles []profileNote
}

// profileNote is one saved CPU profile and the requests it covers.
type profileNote struct {
	file                string
	scenario            string
	round               int
	secs                float64
	wrkReqs, keeperReqs float64 // estimated, in the profile's window
}

// keeperPeriod is the keeper's cycle: refresh_interval plus its slack.
func (o options) keeperPeriod() time.Duration { return o.refresh + keeperSlack(o.refresh) }

// diagRun is the diagnostic B run with MONITOR, after the measured rounds.
type diagRun struct {
	w    wrkResult
	kept keeperCounts // the keeper's requests meanwhile
	dur  time.Duration
	redisDelta
	top, inner map[string]int64
}

type rssPoint struct {
	label string
	rss   int64
}

func (b *bench) noteRSS(label string) {
	if c := b.caddies["B"]; c != nil {
		if _, rss, err := benchkit.MemStatus(c.PID()); err == nil {
			b.rssB = append(b.rssB, rssPoint{label, rss})
		}
	}
}

type openCost struct {
	took  time.Duration
	paced bool
	lat   []time.Duration // each opening request, sorted
	redisDelta
	top, inner    map[string]int64
	monitored     bool
	sessionsCount int
}

// measurement is one measured scenario run: the saturating run, then the
// latency run (if any). CPU covers the saturating run; Redis counts cover
// both, over redisReqs requests.
type measurement struct {
	scenario string
	round    int
	w        wrkResult // saturating run
	lat      *wrkResult
	cpu      map[string]time.Duration
	steal    float64 // share of the machine's CPU time stolen by the hypervisor
	foreign  float64 // cores busy with processes outside the bench
	redisDelta
	satScripts int64             // Redis scripts run during the saturating run
	latScripts int64             // ... and during the latency run
	redisReqs  int64             // wrk's requests (saturating + latency run)
	io         procIO            // the scenario's Caddy: syscalls and context switches in the saturating run
	mem0, mem1 *runtime.MemStats // the scenario's Caddy: Go memory statistics before and after it
	kept       keeperCounts      // the keeper's requests to B's Caddy during the saturating run
	keptAll    keeperCounts      // ... during the saturating and the latency run
	start, end time.Time
}

// caddyReqs is the requests the scenario's Caddy served in the saturating
// run: wrk's, and for B the keeper's too.
func (m measurement) caddyReqs() int64 {
	if m.scenario == "B" {
		return m.w.requests + m.kept.served
	}
	return m.w.requests
}

// servedReqs is every request the bench's servers answered in the
// saturating run: wrk's and the keeper's.
func (m measurement) servedReqs() int64 { return m.w.requests + m.kept.served }

func run(e *benchkit.Env, o options) error {
	b := &bench{o: o, e: e, caddies: map[string]*benchkit.Caddy{}, writesAt: map[string][]float64{}}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found on PATH: apt-get install -y wrk (Debian package wrk; the hook in scripts/install-deps.sh)")
	}
	logf("machine: %s", benchkit.Machine())
	bin, err := benchkit.BuildCaddy(e)
	if err != nil {
		return err
	}
	if b.rs, err = benchkit.StartRedis(e, o.cluster); err != nil {
		return err
	}
	ctx := context.Background()
	b.classes = commandClasses(ctx, b.rs)
	b.scripts = scriptNames(e.Repo)

	var upAddr, authAddr string
	if b.upstream, upAddr, err = startRole(e, "upstream"); err != nil {
		return err
	}
	if o.has("C") {
		args := []string{"-role-redis", strings.Join(b.rs.Addrs, ",")}
		if o.cluster {
			args = append(args, "-cluster")
		}
		if b.auth, authAddr, err = startRole(e, "auth", args...); err != nil {
			return err
		}
	}
	logf("  upstream at %s, session service at %s", upAddr, orNA(authAddr))

	b.makeSessions()
	if o.has("C") {
		if err := b.seedAuth(ctx); err != nil {
			return err
		}
	}

	if err := b.startCaddies(bin, upAddr, authAddr); err != nil {
		return err
	}

	if o.has("B") {
		b.noteRSS("started")
		start, err := b.openSessions(ctx)
		if err != nil {
			return err
		}
		b.noteRSS(fmt.Sprintf("%s sessions opened", benchkit.Commas(int64(len(b.sess)))))
		if o.keeper {
			b.keeper = startKeeper(b.caddies["B"].Site, b.sess, start, o.keeperPeriod())
			defer b.keeper.stop()
			logf("keeper: one request per session every %v at staggered times, %.0f/s to caddy B, until the end of the run", o.keeperPeriod(), b.keeper.rate())
		}
	}
	if b.script, b.data, err = writeWrkFiles(e.Dir(), b.sess); err != nil {
		return err
	}

	if o.warmup > 0 {
		for _, sc := range b.order(0) {
			logf("warm-up %s for %v (not measured)...", sc, o.warmup)
			w, err := runWrk(e, b.caddies[sc].Site+"/", b.script, b.data, o.threads, o.connections, o.warmup)
			if err != nil {
				return fmt.Errorf("warm-up %s: %w", sc, err)
			}
			if w.errors() > 0 {
				return fmt.Errorf("warm-up %s: %d of %d requests failed (non-2xx %d, socket errors %d); caddy log:\n%s",
					sc, w.errors(), w.requests, w.non2xx, w.errors()-w.non2xx, b.caddies[sc].LogTail(3000))
			}
		}
	}

	var ms []measurement
	for r := range o.rounds {
		for _, sc := range b.order(r) {
			time.Sleep(500 * time.Millisecond) // let the previous run's tail settle
			m, err := b.measure(ctx, sc, r)
			if err != nil {
				return fmt.Errorf("round %d, scenario %s: %w", r+1, sc, err)
			}
			lat := ""
			if m.lat != nil {
				lat = fmt.Sprintf("; c=%d: %.0f req/s p50 %s p99 %s max %s", o.latConns, m.lat.rps, benchkit.Ms(m.lat.p50), benchkit.Ms(m.lat.p99), benchkit.Ms(m.lat.max))
			}
			if m.satScripts+m.latScripts > 0 {
				lat += fmt.Sprintf("; Redis scripts %d + %d (%.0f/s)", m.satScripts, m.latScripts, m.scriptRate())
			}
			logf("round %d %s: %6.0f req/s p50 %s p99 %s errors %d%s", r+1, sc, m.w.rps, benchkit.Ms(m.w.p50), benchkit.Ms(m.w.p99), m.w.errors()+m.latErrors(), lat)
			ms = append(ms, m)
		}
	}
	if o.has("B") && o.monitor {
		time.Sleep(500 * time.Millisecond)
		logf("diagnostic run of B with Redis MONITOR for %v (not in the tables)...", o.diagDuration)
		if err := b.diagnose(ctx); err != nil {
			return fmt.Errorf("diagnostic run: %w", err)
		}
	}
	b.noteRSS("end")
	b.keeper.stop()
	if b.keeper != nil {
		kc := b.keeper.counts()
		if kc.failed > 0 {
			logf("keeper: %d of %d requests failed, first: %s", kc.failed, kc.served, b.keeper.firstError())
		}
	}
	if err := b.writeProfileNotes(); err != nil {
		logf("profiles.txt: %v", err)
	}
	b.report(os.Stdout, ms)
	return nil
}

// order rotates the scenarios each round (ABC, BCA, CAB, ...) so that
// drift and warm caches hit each scenario in each position.
func (b *bench) order(round int) []string {
	s := []byte(b.o.scenarios)
	var out []string
	for i := range s {
		out = append(out, string(s[(i+round)%len(s)]))
	}
	return out
}

func (b *bench) makeSessions() {
	b.sess = make([]session, b.o.sessions)
	for i := range b.sess {
		tok := make([]byte, 24)
		_, _ = rand.Read(tok)
		b.sess[i] = session{token: base64.RawURLEncoding.EncodeToString(tok), user: fmt.Sprintf("user%06d", i%b.o.users)}
	}
}

// seedAuth stores the sessions for C's session service.
func (b *bench) seedAuth(ctx context.Context) error {
	rdb := b.rs.Client(8)
	defer rdb.Close()
	for start := 0; start < len(b.sess); start += 1000 {
		pipe := rdb.Pipeline()
		for _, s := range b.sess[start:min(start+1000, len(b.sess))] {
			pipe.Set(ctx, authKeyPrefix+s.token, s.user, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("seeding the session service's sessions: %w", err)
		}
	}
	return nil
}

// openSessions logs every session in through B's Caddy: the first request
// with a user header and a new sid cookie is the session's first
// authenticated sight, which opens it. The answer sets the module's device
// cookie, which the load generator sends from then on, as a browser would.
//
// With the keeper, session i is opened at start + i*period/n, so the
// sessions' refresh deadlines are spread evenly over the keeper's period
// (cycle 0 of its schedule); without, as fast as 8 clients can. It returns
// start.
func (b *bench) openSessions(ctx context.Context) (time.Time, error) {
	c := b.caddies["B"]
	period := b.o.keeperPeriod()
	oc := &openCost{sessionsCount: len(b.sess), paced: b.o.keeper}
	if oc.paced {
		logf("opening %d sessions (%d users) through caddy B, staggered over %v (%.0f/s)...", len(b.sess), b.o.users, period, float64(len(b.sess))/period.Seconds())
	} else {
		logf("opening %d sessions (%d users) through caddy B...", len(b.sess), b.o.users)
	}
	before, err := b.rs.Stats(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var mon *monitor
	if b.o.monitor {
		if mon, err = startMonitor(b.rs.Addrs, b.scripts, b.writesAt); err != nil {
			return time.Time{}, fmt.Errorf("redis MONITOR: %w", err)
		}
		defer func() {
			if mon != nil {
				mon.stop()
			}
		}()
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	oc.lat = make([]time.Duration, len(b.sess))
	t0 := time.Now().Add(50 * time.Millisecond)
	err = benchkit.Each(len(b.sess), 8, func(i int) error {
		if oc.paced {
			time.Sleep(time.Until(slotAt(t0, period, 0, i, len(b.sess))))
		}
		r0 := time.Now()
		dev, err := b.openOne(client, c.Site, b.sess[i])
		oc.lat[i] = time.Since(r0)
		b.sess[i].device = dev
		return err
	})
	oc.took = time.Since(t0)
	if err != nil {
		return t0, fmt.Errorf("opening sessions: %w; caddy log:\n%s", err, c.LogTail(3000))
	}
	oc.lat = benchkit.SortDurations(oc.lat)
	if mon != nil {
		mc := mon.stop()
		mon = nil
		oc.top, oc.inner, oc.monitored = mc.top, mc.inner, true
	}
	after, err := b.rs.Stats(ctx)
	if err != nil {
		return t0, err
	}
	oc.redisDelta = delta(after, before)
	b.open = oc
	logf("  opened in %v (%.0f/s); opening request p50 %s p99 %s", oc.took.Round(10*time.Millisecond), float64(len(b.sess))/oc.took.Seconds(),
		benchkit.Ms(benchkit.Quantile(oc.lat, 0.5)), benchkit.Ms(benchkit.Quantile(oc.lat, 0.99)))

	// Check through the admin API that the module really holds them.
	var page struct {
		Total int `json:"total"`
	}
	u := b.sess[0].user
	if err := c.AdminJSON("/sessions/bench/users/"+u+"/sessions?state=active", &page); err != nil {
		return t0, fmt.Errorf("admin API check: %w", err)
	}
	want := (len(b.sess) + b.o.users - 1) / b.o.users
	if page.Total < 1 || page.Total > want {
		return t0, fmt.Errorf("admin API: user %s has %d active sessions, want 1..%d", u, page.Total, want)
	}
	return t0, nil
}

func (b *bench) openOne(client *http.Client, site string, s session) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, site+"/", nil)
	s.device = ""
	setSessionHeaders(req, s)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("first request of session of %s: %s", s.user, resp.Status)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "sessions_device" {
			return ck.Value, nil
		}
	}
	return "", fmt.Errorf("first request of session of %s set no sessions_device cookie (Set-Cookie: %q)", s.user, resp.Header.Values("Set-Cookie"))
}

// cpuPIDs are the processes whose CPU time is measured, by role: the
// scenario's Caddy, the other Caddies (B's serves the keeper during every
// run), upstream, session service, Redis.
func (b *bench) cpuPIDs(sc string) map[string][]int {
	m := map[string][]int{"caddy": {b.caddies[sc].PID()}, "upstream": {b.upstream.PID()}, "redis": b.rs.PIDs()}
	for other, c := range b.caddies {
		if other != sc {
			m["caddy-other"] = append(m["caddy-other"], c.PID())
		}
	}
	if b.auth != nil {
		m["auth"] = []int{b.auth.PID()}
	}
	return m
}

func (b *bench) cpuSnapshot(sc string) map[string]time.Duration {
	out := map[string]time.Duration{}
	if t, err := cpuTime(os.Getpid()); err == nil {
		out["bench"] = t
	}
	for k, pids := range b.cpuPIDs(sc) {
		for _, pid := range pids {
			t, err := cpuTime(pid)
			if err == nil {
				out[k] += t
			}
		}
	}
	return out
}

func (b *bench) measure(ctx context.Context, sc string, round int) (measurement, error) {
	c := b.caddies[sc]
	m := measurement{scenario: sc, round: round}
	before, err := b.rs.Stats(ctx)
	if err != nil {
		return m, err
	}
	var prof chan error
	profSecs := max(1, int((b.o.duration - time.Second).Seconds()))
	profFile := fmt.Sprintf("caddy-%s-r%d.pprof", sc, round+1)
	if b.o.profileDir != "" {
		prof = make(chan error, 1)
		go func() {
			prof <- c.Profile(filepath.Join(b.o.profileDir, profFile), fmt.Sprintf("profile?seconds=%d", profSecs), time.Duration(profSecs+30)*time.Second)
		}()
	}
	k0 := b.keeper.counts()
	io0, ioErr := readProcIO(c.PID())
	if gm, err := c.MemStats(); err == nil {
		m.mem0 = &gm
	}
	cpu0, sys0 := b.cpuSnapshot(sc), readSysCPUOrZero()
	m.start = time.Now()
	m.w, err = runWrk(b.e, c.Site+"/", b.script, b.data, b.o.threads, b.o.connections, b.o.duration)
	cpu1, sys1 := b.cpuSnapshot(sc), readSysCPUOrZero()
	if io1, err := readProcIO(c.PID()); err == nil && ioErr == nil {
		m.io = io1.sub(io0)
	}
	if gm, err := c.MemStats(); err == nil && m.mem0 != nil {
		m.mem1 = &gm
	}
	m.kept = b.keeper.counts().sub(k0)
	if b.o.profileDir != "" {
		heapFile := filepath.Join(b.o.profileDir, fmt.Sprintf("caddy-%s-r%d.heap.pprof", sc, round+1))
		if herr := c.Profile(heapFile, "heap?gc=1", 30*time.Second); herr != nil {
			logf("  heap profile of caddy %s: %v", sc, herr)
		}
	}
	if prof != nil {
		if perr := <-prof; perr != nil {
			logf("  CPU profile of caddy %s: %v", sc, perr)
		} else if err == nil {
			// The profile covers profSecs of the run (from its start);
			// the requests in it are estimated at the run's mean rate.
			f := float64(profSecs) / m.w.duration.Seconds()
			n := profileNote{file: profFile, scenario: sc, round: round + 1, secs: float64(profSecs), wrkReqs: float64(m.w.requests) * f}
			if sc == "B" {
				n.keeperReqs = float64(m.kept.served) * f
			}
			b.profiles = append(b.profiles, n)
		}
	}
	m.redisReqs = m.w.requests
	mid, merr := b.rs.Stats(ctx)
	if merr == nil {
		m.satScripts = scriptCalls(diffCounts(mid.Calls, before.Calls))
	}
	if err == nil && b.o.latConns > 0 {
		var lat wrkResult
		lat, err = runWrk(b.e, c.Site+"/", b.script, b.data, 1, b.o.latConns, b.o.latDuration)
		m.lat = &lat
		m.redisReqs += lat.requests
	}
	m.end = time.Now()
	m.keptAll = b.keeper.counts().sub(k0)
	if err != nil {
		return m, err
	}
	if !c.Running() {
		return m, fmt.Errorf("caddy %s exited; log:\n%s", sc, c.LogTail(3000))
	}
	after, err := b.rs.Stats(ctx)
	if err != nil {
		return m, err
	}
	m.redisDelta = delta(after, before)
	if merr == nil {
		m.latScripts = scriptCalls(diffCounts(after.Calls, mid.Calls))
	}
	m.cpu = map[string]time.Duration{"wrk": m.w.cpu}
	for k, v := range cpu1 {
		m.cpu[k] = v - cpu0[k]
	}
	if b.keeper != nil && b.keeper.late.Load() > k0.late {
		logf("  keeper: %d requests started over 1 s late (the machine is overloaded)", b.keeper.late.Load()-k0.late)
	}
	if dt := sys1.total - sys0.total; dt > 0 {
		m.steal = float64(sys1.steal-sys0.steal) / float64(dt)
		var ours time.Duration
		for _, v := range m.cpu {
			ours += v
		}
		busy := time.Duration(sys1.busy-sys0.busy) * time.Second / clockTicks
		m.foreign = max(0, (busy-ours).Seconds()/m.w.duration.Seconds())
	}
	return m, nil
}

// diagnose loads B as in the measured runs for o.diagDuration while
// following MONITOR. MONITOR makes Redis copy every command (those run
// inside scripts too) to the bench, which costs Redis and the bench CPU
// during refresh bursts; hence a run of its own, not in the tables. Run for
// over twice refresh_interval, it sees every session refreshed twice, so
// the shortest gap between two refreshes of one session is measured.
func (b *bench) diagnose(ctx context.Context) error {
	c := b.caddies["B"]
	before, err := b.rs.Stats(ctx)
	if err != nil {
		return err
	}
	mon, err := startMonitor(b.rs.Addrs, b.scripts, b.writesAt)
	if err != nil {
		return fmt.Errorf("redis MONITOR: %w", err)
	}
	k0 := b.keeper.counts()
	t0 := time.Now()
	w, err := runWrk(b.e, c.Site+"/", b.script, b.data, b.o.threads, b.o.connections, b.o.diagDuration)
	d := time.Since(t0)
	mc := mon.stop()
	kept := b.keeper.counts().sub(k0)
	if err != nil {
		return err
	}
	after, err := b.rs.Stats(ctx)
	if err != nil {
		return err
	}
	b.diag = &diagRun{w: w, kept: kept, dur: d, top: mc.top, inner: mc.inner, redisDelta: delta(after, before)}
	return nil
}

// scriptRate is Redis scripts per second in the saturating run: for B the
// refreshes (and any store lookup on a cache miss), for A and C the
// keeper's refreshes of B's sessions in the background.
func (m measurement) scriptRate() float64 {
	if m.w.duration <= 0 {
		return 0
	}
	return float64(m.satScripts) / m.w.duration.Seconds()
}

// writeProfileNotes lists the saved CPU profiles with the requests each
// covers, so that profiles of runs with different throughput can be
// compared per request.
func (b *bench) writeProfileNotes() error {
	if b.o.profileDir == "" || len(b.profiles) == 0 {
		return nil
	}
	var sb strings.Builder
	sb.WriteString("# CPU profiles of each scenario's Caddy, one per saturating run (go run ./bench -profile).\n")
	sb.WriteString("# requests: in the profile's window, estimated at the run's mean rate; for B the keeper's included.\n")
	sb.WriteString("# CPU per request of a function = its cum seconds / requests, e.g. over all rounds of a scenario:\n")
	sb.WriteString("#   go tool pprof -top -cum caddy-B-r*.pprof   (pprof merges the files; divide by the sum below)\n")
	sb.WriteString("# file\tscenario\tround\tseconds\trequests\t(wrk\tkeeper)\n")
	tot := map[string]float64{}
	for _, n := range b.profiles {
		fmt.Fprintf(&sb, "%s\t%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\n", n.file, n.scenario, n.round, n.secs, n.wrkReqs+n.keeperReqs, n.wrkReqs, n.keeperReqs)
		tot[n.scenario] += n.wrkReqs + n.keeperReqs
	}
	for _, sc := range []string{"A", "B", "C"} {
		if t, ok := tot[sc]; ok {
			fmt.Fprintf(&sb, "# all rounds of %s (caddy-%s-r*.pprof): %.0f requests\n", sc, sc, t)
		}
	}
	path := filepath.Join(b.o.profileDir, "profiles.txt")
	logf("CPU profiles: %s (requests per profile in %s)", b.o.profileDir, path)
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

func (m measurement) latErrors() int64 {
	if m.lat == nil {
		return 0
	}
	return m.lat.errors()
}

func readSysCPUOrZero() sysCPU {
	s, _ := readSysCPU()
	return s
}

var logf = benchkit.Logf

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

func title(sc string) string {
	switch sc {
	case "A":
		return "plain reverse_proxy"
	case "B":
		return "sessions (Redis) + reverse_proxy"
	case "C":
		return "forward_auth + reverse_proxy"
	}
	return sc
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
