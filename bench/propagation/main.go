// Command propagation measures how fast a revocation or a device block made
// on one Caddy instance reaches the other instances sharing the same Redis
// (issue 5: target p99 ≤ 200 ms).
//
// Run from the repository root:
//
//	go run ./bench/propagation [-instances 3] [-trials 200] [-cluster]
//
// It builds Caddy with the module, starts its own Redis (or a 3-master
// cluster), a tiny upstream and the Caddy instances on free loopback ports,
// and cleans everything up on exit. See bench/README.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/caddy-sessions/caddy-sessions/bench/internal/benchkit"
)

const realm = "prop"

var logf = benchkit.Logf

type options struct {
	instances, trials, cached int
	cluster, keep             bool
	period, timeout           time.Duration
	seed                      uint64
}

func main() {
	var o options
	flag.IntVar(&o.instances, "instances", 3, "Caddy instances sharing one Redis (at least 2)")
	flag.IntVar(&o.trials, "trials", 200, "trials per kind: this many revocations and this many device blocks, each on a fresh session")
	flag.IntVar(&o.cached, "cached", 0, "extra sessions warmed into every instance's cache before the trials (a revocation scans the whole cache)")
	flag.DurationVar(&o.period, "poll", time.Millisecond, "poll period per instance (a request, then a sleep until this long after it started)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Second, "a trial fails if an instance still answers 200 this long after the admin call")
	flag.BoolVar(&o.cluster, "cluster", false, "use a local 3-master Redis Cluster")
	flag.Uint64Var(&o.seed, "seed", 0, "seed of the random choice of admin instance (0: random)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (Caddyfiles, logs)")
	flag.Parse()
	if o.instances < 2 || o.trials < 1 || o.cached < 0 || o.period <= 0 {
		fmt.Fprintln(os.Stderr, "propagation: need -instances >= 2, -trials >= 1, -cached >= 0, -poll > 0")
		os.Exit(2)
	}
	if o.seed == 0 {
		o.seed = mrand.Uint64()
	}
	benchkit.Main("propagation", o.keep, func(e *benchkit.Env) (int, error) { return 0, run(e, o) })
}

// session is one logged-in session as a browser holds it.
type session struct {
	user, token  string
	deviceCookie string
	device, id   string
	revoke       bool // trial kind: revoke (else device block)
	cookieHeader string
}

type bench struct {
	o       options
	rs      *benchkit.Redis
	caddies []*benchkit.Caddy
	clients []*http.Client // one keep-alive client per instance, for the pollers
	admins  []*http.Client
	started time.Time
}

func run(e *benchkit.Env, o options) error {
	ctx := context.Background()
	b := &bench{o: o, started: time.Now()}
	logf("machine: %s", benchkit.Machine())
	bin, err := benchkit.BuildCaddy(e)
	if err != nil {
		return err
	}
	if b.rs, err = benchkit.StartRedis(e, o.cluster); err != nil {
		return err
	}
	st0, err := b.rs.Stats(ctx)
	if err != nil {
		return err
	}
	// The app: 200, echoing the session id the module sent upstream, so
	// the program learns it the way an app would.
	up, err := benchkit.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Session-Id", r.Header.Get("X-Session-Id"))
		_, _ = io.WriteString(w, "ok\n")
	}))
	if err != nil {
		return err
	}
	// The same for every instance but the ports.
	site := []string{b.rs.Sessions(realm, "X-User"), benchkit.Block("reverse_proxy "+up, "header_up X-Session-Id {http.sessions.id}")}
	for i := range o.instances {
		c, err := benchkit.StartCaddy(e, bin, benchkit.CaddySpec{Name: fmt.Sprintf("caddy%d", i+1), Site: site})
		if err != nil {
			return err
		}
		b.caddies = append(b.caddies, c)
		b.clients = append(b.clients, benchkit.KeepAliveClient(4))
		b.admins = append(b.admins, benchkit.KeepAliveClient(2))
		logf("  caddy %d at %s, admin %s, pid %d", i+1, c.Site, c.Admin, c.PID())
	}

	if o.cached > 0 {
		logf("filling every instance's cache with %d extra sessions (opened on instance 1, warmed on the others)...", o.cached)
		t := time.Now()
		if _, err := b.openSessions(o.cached, "bg-user-", false, 1); err != nil {
			return err
		}
		logf("  done in %v", time.Since(t).Round(100*time.Millisecond))
	}

	n := 2 * o.trials
	logf("opening %d sessions on instance 1 and warming them on the %d others...", n, o.instances-1)
	sess, err := b.openSessions(n, "prop-user-", true, 2)
	if err != nil {
		return err
	}
	cacheEntries := make([]int, o.instances)
	for i, c := range b.caddies {
		cacheEntries[i], err = c.CacheEntries()
		if err != nil {
			return fmt.Errorf("caddy %d: GET /sessions/: %w", i+1, err)
		}
	}
	logf("  cache entries per instance: %v", cacheEntries)

	logf("running %d trials (%d revocations, %d device blocks, interleaved), polling every %v...", n, o.trials, o.trials, o.period)
	rnd := mrand.New(mrand.NewPCG(o.seed, 1))
	var res []trial
	var failures []string
	for j, s := range sess {
		a := rnd.IntN(o.instances)
		tr, err := b.trial(s, a)
		if err != nil {
			failures = append(failures, fmt.Sprintf("trial %d (%s of %s via instance %d): %v", j+1, kindName(s.revoke), s.user, a+1, err))
			if len(failures) >= 10 {
				break
			}
			continue
		}
		res = append(res, tr)
		if (j+1)%100 == 0 {
			logf("  %d of %d trials", j+1, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, c := range b.caddies {
		if !c.Running() {
			failures = append(failures, fmt.Sprintf("caddy %d exited; log:\n%s", i+1, c.LogTail(3000)))
		}
	}
	st1, err := b.rs.Stats(ctx)
	if err != nil {
		return err
	}
	redisErrs := benchkit.Diff(st1.Errors, st0.Errors)
	b.report(os.Stdout, res, failures, cacheEntries, redisErrs)
	if len(failures) > 0 {
		return fmt.Errorf("%d trial(s) failed; first: %s", len(failures), failures[0])
	}
	if redisErrs["CROSSSLOT"] > 0 {
		return fmt.Errorf("redis counted %d CROSSSLOT errors", redisErrs["CROSSSLOT"])
	}
	return nil
}

func kindName(revoke bool) string {
	if revoke {
		return "revocation"
	}
	return "device block"
}

// get sends one request of s to instance i and returns the status and the
// response headers.
func (b *bench) get(client *http.Client, i int, s *session) (int, http.Header, error) {
	req, _ := http.NewRequest(http.MethodGet, b.caddies[i].Site+"/", nil)
	req.Header.Set("Cookie", s.cookieHeader)
	req.Header.Set("X-User", s.user)
	req.Header.Set("User-Agent", benchkit.UserAgents[0])
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// openSessions opens n sessions on instance 1 (the first request with a
// new sid cookie and the user header opens one) and sends warm requests of
// each to every other instance, so that all instances have it cached (the
// first one there asks Redis and caches it; a second one is answered from
// the cache and checks that it is the same session).
func (b *bench) openSessions(n int, userPrefix string, alternate bool, warm int) ([]*session, error) {
	out := make([]*session, n)
	client := benchkit.KeepAliveClient(8 * len(b.caddies))
	defer client.CloseIdleConnections()
	err := benchkit.Each(n, 8, func(j int) error {
		s, err := b.openOne(client, fmt.Sprintf("%s%05d", userPrefix, j), warm)
		if err == nil {
			s.revoke = alternate && j%2 == 0
			out[j] = s
		}
		return err
	})
	return out, err
}

func (b *bench) openOne(client *http.Client, user string, warm int) (*session, error) {
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	s := &session{user: user, token: base64.RawURLEncoding.EncodeToString(tok)}
	s.cookieHeader = "sid=" + s.token
	st, h, err := b.get(client, 0, s)
	if err != nil {
		return nil, err
	}
	if st != http.StatusOK {
		return nil, fmt.Errorf("opening a session of %s on instance 1: %d; log:\n%s", user, st, b.caddies[0].LogTail(2000))
	}
	s.id = h.Get("X-Session-Id")
	for _, line := range h.Values("Set-Cookie") {
		if v, ok := strings.CutPrefix(line, "sessions_device="); ok {
			v, _, _ = strings.Cut(v, ";")
			s.deviceCookie = v
			s.device, _, _ = strings.Cut(v, ".")
		}
	}
	if s.id == "" || s.device == "" {
		return nil, fmt.Errorf("opening a session of %s: no session id (%q) or device cookie (%q) in the answer", user, s.id, h.Values("Set-Cookie"))
	}
	s.cookieHeader = "sid=" + s.token + "; sessions_device=" + s.deviceCookie
	for i := 1; i < len(b.caddies); i++ {
		for range warm {
			st, h, err := b.get(client, i, s)
			if err != nil {
				return nil, err
			}
			if st != http.StatusOK || h.Get("X-Session-Id") != s.id {
				return nil, fmt.Errorf("warming %s on instance %d: %d, session %q (want 200, %q)", user, i+1, st, h.Get("X-Session-Id"), s.id)
			}
		}
	}
	return s, nil
}

// trial is one revocation or device block.
type trial struct {
	revoke   bool
	admin    int           // instance the admin call went to
	adminDur time.Duration // the admin call itself
	delays   []delay       // one per other instance
}

type delay struct {
	instance int
	// fromReturn: first refusal received - admin call returned; may be
	// negative (the refusal came back before the admin answer did).
	fromReturn, fromStart time.Duration
	polls                 int
	okRTT                 []time.Duration // round trips of the 200 polls
}

// pollResult is what one poller saw.
type pollResult struct {
	at    time.Time
	polls int
	rtt   []time.Duration
	err   error
}

// poll requests s from instance i every period until it is refused with
// want. ready is closed once it saw a 200 (the session is live there).
func (b *bench) poll(i int, s *session, want int, ready chan<- struct{}, stop <-chan struct{}, out chan<- pollResult) {
	var r pollResult
	sawOK := false
	for {
		t := time.Now()
		st, _, err := b.get(b.clients[i], i, s)
		recv := time.Now()
		r.polls++
		switch {
		case err != nil:
			r.err = fmt.Errorf("instance %d: %w", i+1, err)
		case st == want && sawOK:
			r.at = recv
		case st == http.StatusOK:
			r.rtt = append(r.rtt, recv.Sub(t))
			if !sawOK {
				sawOK = true
				close(ready)
			}
		default:
			r.err = fmt.Errorf("instance %d answered %d (want 200, then %d)", i+1, st, want)
		}
		if r.err != nil || !r.at.IsZero() {
			out <- r
			return
		}
		select {
		case <-stop:
			r.err = fmt.Errorf("instance %d still answered 200 after %d polls (timeout)", i+1, r.polls)
			out <- r
			return
		default:
		}
		if d := time.Until(t.Add(b.o.period)); d > 0 {
			time.Sleep(d)
		}
	}
}

func (b *bench) trial(s *session, a int) (trial, error) {
	tr := trial{revoke: s.revoke, admin: a}
	want := http.StatusForbidden
	if s.revoke {
		want = http.StatusUnauthorized
	}
	stop := make(chan struct{})
	type poller struct {
		i     int
		ready chan struct{}
		out   chan pollResult
	}
	var ps []poller
	for i := range b.caddies {
		if i == a {
			continue
		}
		p := poller{i: i, ready: make(chan struct{}), out: make(chan pollResult, 1)}
		ps = append(ps, p)
		go b.poll(i, s, want, p.ready, stop, p.out)
	}
	// Every poller must see the live session first.
	for _, p := range ps {
		select {
		case <-p.ready:
		case r := <-p.out:
			close(stop)
			return tr, fmt.Errorf("before the admin call: %v", r.err)
		case <-time.After(5 * time.Second):
			close(stop)
			return tr, fmt.Errorf("instance %d did not answer 200 within 5s before the admin call", p.i+1)
		}
	}
	time.Sleep(3 * b.o.period) // a few polls in flight, so the next one is at most a period away

	start := time.Now()
	err := b.adminCall(a, s)
	ret := time.Now()
	tr.adminDur = ret.Sub(start)
	timer := time.AfterFunc(b.o.timeout, func() { close(stop) })
	var firstErr error
	for _, p := range ps {
		r := <-p.out
		if r.err != nil {
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		tr.delays = append(tr.delays, delay{instance: p.i, fromReturn: r.at.Sub(ret), fromStart: r.at.Sub(start), polls: r.polls, okRTT: r.rtt})
	}
	if timer.Stop() { // else the timer closed stop
		close(stop)
	}
	if err != nil {
		return tr, err
	}
	return tr, firstErr
}

// adminCall revokes s (DELETE .../sessions/{id}) or blocks its device
// (PUT .../devices/{id} {"blocked": true}) through instance a's admin API.
func (b *bench) adminCall(a int, s *session) error {
	base := b.caddies[a].Admin + "/sessions/" + url.PathEscape(realm) + "/users/" + url.PathEscape(s.user)
	var req *http.Request
	if s.revoke {
		req, _ = http.NewRequest(http.MethodDelete, base+"/sessions/"+url.PathEscape(s.id), nil)
	} else {
		req, _ = http.NewRequest(http.MethodPut, base+"/devices/"+url.PathEscape(s.device), strings.NewReader(`{"blocked":true}`))
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.admins[a].Do(req)
	if err != nil {
		return fmt.Errorf("admin %s on instance %d: %w", req.Method, a+1, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin %s %s on instance %d: %s: %s", req.Method, req.URL.Path, a+1, resp.Status, strings.TrimSpace(string(body)))
	}
	if !s.revoke {
		var out struct {
			Blocked bool `json:"blocked"`
		}
		if json.Unmarshal(body, &out) != nil || !out.Blocked {
			return fmt.Errorf("admin PUT devices on instance %d: answer %s", a+1, strings.TrimSpace(string(body)))
		}
	}
	return nil
}

// ---------------------------------------------------------------------------

func (b *bench) report(w io.Writer, res []trial, failures []string, cacheEntries []int, redisErrs map[string]int64) {
	o := b.o
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("")
	p("== caddy-sessions: propagation of revocations and device blocks between instances (issue 5) ==")
	p("machine:  %s", benchkit.Machine())
	p("setup:    %d Caddy processes (same Caddyfile: store redis, secret, realm %q, user {http.request.header.X-User}, session_cookie sid),", o.instances, realm)
	p("          one Redis %s %s, one upstream; everything on loopback, sharing the cores", b.rs.Version, b.rs.Kind())
	p("sessions: %d, each opened on instance 1 and warmed (2 requests) on every other instance, so all instances had it cached", 2*o.trials)
	if o.cached > 0 {
		p("          plus %d extra sessions in every instance's cache", o.cached)
	}
	p("          cache entries per instance before the trials: %v", cacheEntries)
	p("trials:   %d revocations (admin DELETE .../sessions/{id}) and %d device blocks (admin PUT .../devices/{id} {\"blocked\":true}),", o.trials, o.trials)
	p("          interleaved, each on a fresh session, through the admin API of a random instance (seed %d)", o.seed)
	p("polling:  each OTHER instance is polled with the session's cookies by its own goroutine and keep-alive connection: a GET, then")
	p("          a sleep until %v after it started (so a new poll starts every %v or right after a slower answer); the delay is", o.period, o.period)
	p("          the time from the admin call's return to the receipt of that instance's first refusal (401 revoked / 403 device_blocked)")
	p("")

	for _, revoke := range []bool{true, false} {
		var d, ds []time.Duration
		var adm, rtt []time.Duration
		early := 0
		for _, t := range res {
			if t.revoke != revoke {
				continue
			}
			adm = append(adm, t.adminDur)
			for _, x := range t.delays {
				d = append(d, max(0, x.fromReturn))
				ds = append(ds, x.fromStart)
				rtt = append(rtt, x.okRTT...)
				if x.fromReturn <= 0 {
					early++
				}
			}
		}
		if len(d) == 0 {
			continue
		}
		d, ds, adm, rtt = benchkit.SortDurations(d), benchkit.SortDurations(ds), benchkit.SortDurations(adm), benchkit.SortDurations(rtt)
		p("%s (%d delays = %d trials x %d other instances):", capital(kindName(revoke)), len(d), len(adm), o.instances-1)
		p("| measured | n | p50 | p90 | p99 | max |")
		p("|---|---:|---:|---:|---:|---:|")
		p("| delay from the admin call's return | %d | %s | %s | %s | %s |", len(d), benchkit.Ms(benchkit.Quantile(d, .5)), benchkit.Ms(benchkit.Quantile(d, .9)), benchkit.Ms(benchkit.Quantile(d, .99)), benchkit.Ms(benchkit.Quantile(d, 1)))
		p("| delay from the admin call's start | %d | %s | %s | %s | %s |", len(ds), benchkit.Ms(benchkit.Quantile(ds, .5)), benchkit.Ms(benchkit.Quantile(ds, .9)), benchkit.Ms(benchkit.Quantile(ds, .99)), benchkit.Ms(benchkit.Quantile(ds, 1)))
		p("| the admin call itself | %d | %s | %s | %s | %s |", len(adm), benchkit.Ms(benchkit.Quantile(adm, .5)), benchkit.Ms(benchkit.Quantile(adm, .9)), benchkit.Ms(benchkit.Quantile(adm, .99)), benchkit.Ms(benchkit.Quantile(adm, 1)))
		p("| one poll answered 200 (round trip, for scale) | %d | %s | %s | %s | %s |", len(rtt), benchkit.Ms(benchkit.Quantile(rtt, .5)), benchkit.Ms(benchkit.Quantile(rtt, .9)), benchkit.Ms(benchkit.Quantile(rtt, .99)), benchkit.Ms(benchkit.Quantile(rtt, 1)))
		p("(%d of %d refusals were received before the admin call had returned; counted as 0 ms from the return)", early, len(d))
		p("")
	}

	p("| Target | Measured | Verdict |")
	p("|---|---:|---|")
	for _, revoke := range []bool{true, false} {
		var d []time.Duration
		for _, t := range res {
			if t.revoke == revoke {
				for _, x := range t.delays {
					d = append(d, max(0, x.fromReturn))
				}
			}
		}
		d = benchkit.SortDurations(d)
		got := benchkit.Quantile(d, .99)
		ok := len(d) > 0 && got <= 200*time.Millisecond && len(failures) == 0
		p("| %s reaches the other instances, p99 ≤ 200 ms | %s | %s |", kindName(revoke), benchkit.Ms(got), benchkit.Verdict(ok))
	}
	p("")
	p("Redis errorstats during the run: %s (ERR: go-redis sends CLIENT SETINFO on each new connection, which Redis %s refuses; harmless)", benchkit.FormatCounts(redisErrs), b.rs.Version)
	if o.cluster {
		p("CROSSSLOT: %d", redisErrs["CROSSSLOT"])
	}
	if len(failures) > 0 {
		p("")
		p("FAILED trials (%d):", len(failures))
		for _, f := range failures {
			p("  %s", f)
		}
	}
	p("total run time %v", time.Since(b.started).Round(time.Second))
}

func capital(s string) string { return strings.ToUpper(s[:1]) + s[1:] }
