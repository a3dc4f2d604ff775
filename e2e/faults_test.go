package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// The fault suite: mixed traffic through two Caddy instances sharing one
// Redis while faults are injected for real, then invariants checked. A
// short form runs in CI (TestFaultSuite); for a soak, lengthen the phases:
//
//	go test ./e2e -run TestFaultSuite -v -timeout 2h -args -faults.phase=10m
var faultPhase = flag.Duration("faults.phase", 2500*time.Millisecond, "how long each fault phase of TestFaultSuite lasts")

// revokeBound is how long after a revocation (answered by one instance's
// admin API) any instance may still admit the token: the time the other
// instance takes to read the invalidation log.
const revokeBound = time.Second

// keepBrowsers is how many browsers the traffic keeps before it retires
// refused ones.
const keepBrowsers = 60

// faultBrowser is one logged-in browser of the traffic.
type faultBrowser struct {
	user   string
	cl     *client
	cookie string // the Cookie header it sends: app cookie and device cookie
	device string // the device id its device cookie names
	// refusedAt is when a revocation or a device block of its session was
	// answered (Unix nanoseconds), 0 while it may be served.
	refusedAt atomic.Int64
}

// faultStats counts what one phase's traffic saw.
type faultStats struct {
	requests, retried, transportErrors, serverErrors, revokedAdmitted, revocations atomic.Int64
	examples                                                                       sync.Map // first example per kind
}

func (s *faultStats) example(kind, what string) { s.examples.LoadOrStore(kind, what) }

func TestFaultSuite(t *testing.T) {
	srv := redistest.Start(t)
	_, up := startShop(t, true)
	const realm = "faults"
	site := func(extra string) string {
		return caddyfile("", shopSite(up, "store "+srv.URL()+"\nsecret "+e2eSecret+"\nrealm "+realm+
			"\nlogin @login\nlogout @logout\nrefresh_interval 1s\nrestrict {\n\tmax_devices 1000 30d log\n}", extra))
	}
	a := startCaddy(t, site(""))
	b := startCaddy(t, site(""))
	instances := []*Caddy{a, b}
	admin := srv.Client(t)

	// Browsers: three users, two browsers each, logged in through either
	// instance.
	var mu sync.Mutex
	var browsers []*faultBrowser
	login := func(user string, i int) *faultBrowser {
		cl := newClient(t, []string{uaChromeWindows, uaIPhone, uaFirefoxLinux}[i%3], []string{ipLondon, ipMilton, ipOther}[i%3])
		inst := instances[i%2]
		cl.login(inst.Site, user, user)
		u, _ := url.Parse(inst.Site)
		var parts []string
		device := ""
		for _, ck := range cl.jar.Cookies(u) {
			parts = append(parts, ck.Name+"="+ck.Value)
			if ck.Name == "sessions_device" {
				device, _, _ = strings.Cut(ck.Value, ".")
			}
		}
		if device == "" {
			t.Fatalf("%s logged in without a device cookie", user)
		}
		fb := &faultBrowser{user: user, cl: cl, cookie: strings.Join(parts, "; "), device: device}
		mu.Lock()
		browsers = append(browsers, fb)
		// A soak logs thousands of browsers in: retire one refused
		// long enough ago (its refusal has been checked on both
		// instances many times), so the traffic's own connections do
		// not grow without bound and hide the instances' own growth.
		if len(browsers) > keepBrowsers {
			for i, old := range browsers {
				if at := old.refusedAt.Load(); at != 0 && time.Since(time.Unix(0, at)) > 10*revokeBound {
					browsers = append(browsers[:i], browsers[i+1:]...)
					old.cl.raw.Transport.(*http.Transport).CloseIdleConnections()
					break
				}
			}
		}
		mu.Unlock()
		return fb
	}
	users := []string{"alice", "bob", "carol"}
	for i, u := range users {
		login(u, i)
		login(u, i+1)
	}
	baseGoroutines := goroutines(t, b)

	// Traffic: workers send page views with each browser's cookies to a
	// random instance and judge each answer against the browser's state.
	// stats is the current phase's; until the first phase starts, a
	// warm-up's, not reported.
	stats := &faultStats{}
	var statsMu sync.RWMutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				fb := browsers[rng.IntN(len(browsers))]
				mu.Unlock()
				inst := instances[rng.IntN(2)]
				statsMu.RLock()
				st := stats
				statsMu.RUnlock()
				sent := time.Now()
				get := func() (*reply, error) {
					return fb.cl.send(false, http.MethodGet, inst.Site+"/account", nil, func(q *http.Request) { q.Header.Set("Cookie", fb.cookie) })
				}
				r, err := get()
				for try := 0; err != nil && try < 3; try++ {
					// As a browser does when a kept-alive connection is
					// reset under it (a reload's old server closing it),
					// or a new one is reset while Caddy swaps servers:
					// send the GET again. Counted apart.
					st.retried.Add(1)
					time.Sleep(time.Duration(try) * 20 * time.Millisecond)
					r, err = get()
				}
				st.requests.Add(1)
				switch {
				case err != nil:
					st.transportErrors.Add(1)
					st.example("transport", err.Error())
				case r.Status >= 500:
					st.serverErrors.Add(1)
					st.example("5xx", r.String())
				case r.Status == http.StatusOK:
					if at := fb.refusedAt.Load(); at != 0 && sent.UnixNano() > at+int64(revokeBound) {
						st.revokedAdmitted.Add(1)
						st.example("admitted", fmt.Sprintf("%s on %s, %v after its revocation", fb.user, inst.Site, sent.Sub(time.Unix(0, at))))
					}
				}
			}
		}()
	}

	// The controller: during every phase, revoke a random browser's
	// session or block its device through a random instance's admin API,
	// and log a replacement in.
	act := func(st *faultStats, rng *rand.Rand) {
		mu.Lock()
		fb := browsers[rng.IntN(len(browsers))]
		mu.Unlock()
		if fb.refusedAt.Load() != 0 {
			return
		}
		inst := instances[rng.IntN(2)]
		list := inst.SessionsMaybe(t, realm, fb.user)
		var target *apiSession
		for i := range list {
			if list[i].DeviceID == fb.device && list[i].EndedAt == nil {
				target = &list[i]
			}
		}
		if target == nil {
			// The store does not know it (Redis restarted empty, its
			// login binding gone: it passes untracked from now on): a
			// fresh login gives the next phases sessions to revoke, and
			// the old browser is retired, so that the traffic's
			// browsers do not grow with every act on it.
			login(fb.user, rng.IntN(6))
			mu.Lock()
			if i := slices.Index(browsers, fb); i >= 0 {
				browsers = slices.Delete(browsers, i, i+1)
				fb.cl.raw.Transport.(*http.Transport).CloseIdleConnections()
			}
			mu.Unlock()
			return
		}
		var status int
		if rng.IntN(3) == 0 {
			status, _ = inst.adminSend(t, http.MethodPut, userPath(realm, fb.user)+"/devices/"+url.PathEscape(target.DeviceID), `{"blocked":true}`)
		} else {
			status, _ = inst.adminDo(t, http.MethodDelete, userPath(realm, fb.user)+"/sessions/"+url.PathEscape(target.ID))
		}
		if status == http.StatusOK {
			fb.refusedAt.Store(time.Now().UnixNano())
			st.revocations.Add(1)
			login(fb.user, rng.IntN(6))
		}
	}

	type phase struct {
		name   string
		inject func()
	}
	reloadN := 0
	phases := []phase{
		{"none", func() {}},
		{"Redis paused (SIGSTOP) 1.5 s", func() {
			srv.Pause(t)
			time.Sleep(1500 * time.Millisecond) // the fault's length
			srv.Resume(t)
		}},
		{"every Redis connection cut", func() {
			if err := admin.Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal").Err(); err != nil {
				t.Errorf("CLIENT KILL: %v", err)
			}
		}},
		{"Redis restarted empty", func() { srv.Restart(t) }},
		{"caddy reload (changed config) x3", func() {
			for range 3 {
				reloadN++
				b.Reload(t, site(fmt.Sprintf("header_up X-Reload %d", reloadN)))
			}
		}},
	}
	var rows []string
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ph := range phases {
		st := &faultStats{}
		statsMu.Lock()
		stats = st
		statsMu.Unlock()
		end := time.Now().Add(*faultPhase)
		injected := false
		for time.Now().Before(end) || !injected {
			if !injected && time.Until(end) < *faultPhase/2 {
				ph.inject()
				injected = true
				continue
			}
			act(st, rng)
			time.Sleep(100 * time.Millisecond) // pacing of the controller, not a wait for a fact
		}
		// Resources at the phase's end, for a soak's view over time.
		mem, _ := srv.Info(context.Background(), "memory")
		rows = append(rows, fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d | %s / %s | %d / %d | %s |", ph.name, st.requests.Load(), st.revocations.Load(),
			st.retried.Load(), st.transportErrors.Load(), st.serverErrors.Load(), st.revokedAdmitted.Load(),
			rss(t, a), rss(t, b), goroutines(t, a), goroutines(t, b), mem["used_memory_human"]))
		st.examples.Range(func(k, v any) bool {
			t.Errorf("%s: %s, e.g. %v", ph.name, k, v)
			return true
		})
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	for _, fb := range browsers {
		fb.cl.raw.Transport.(*http.Transport).CloseIdleConnections()
	}
	mu.Unlock()
	t.Logf("fault suite, %v per phase:\n| fault | requests | revocations and blocks | GETs sent again | unanswered | 5xx | revoked admitted after %v | RSS A / B | goroutines A / B | Redis memory |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n%s",
		*faultPhase, revokeBound, strings.Join(rows, "\n"))

	// After the faults: no session both active and ended; per-day totals
	// equal the sessions' time; every key of a user expires; instance B,
	// reloaded, back to its goroutines.
	for _, u := range users {
		var ex struct {
			Sessions []apiSession `json:"sessions"`
			Days     map[string]struct {
				Active int64 `json:"active_seconds"`
			} `json:"days"`
		}
		a.adminJSON(t, http.MethodGet, userPath(realm, u)+"/export", http.StatusOK, &ex)
		var days, sessions time.Duration
		for _, d := range ex.Days {
			days += time.Duration(d.Active) * time.Second
		}
		for _, s := range ex.Sessions {
			sessions += s.LastSeen.Sub(s.StartedAt)
		}
		// Each day's total is truncated to the second.
		if diff := sessions - days; diff < 0 || diff > time.Duration(len(ex.Days)+1)*time.Second {
			t.Errorf("%s: per-day totals %v, the sessions' time %v", u, days, sessions)
		}
		t.Logf("%s: per-day totals %v, the sessions' time %v, %d sessions", u, days, sessions, len(ex.Sessions))
		active := a.Sessions(t, realm, u, "active")
		closed := a.Sessions(t, realm, u, "closed")
		ids := map[string]bool{}
		for _, s := range active.Sessions {
			if s.EndedAt != nil {
				t.Errorf("%s: an active session with an end: %s", u, dump(s))
			}
			ids[s.ID] = true
		}
		for _, s := range closed.Sessions {
			if s.EndedAt == nil || ids[s.ID] {
				t.Errorf("%s: a closed session listed as active, or without an end: %s", u, dump(s))
			}
		}
	}
	keys, err := srv.ScanAll(context.Background(), "cs:*")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.HasSuffix(k, ":settings") {
			continue // the realm's switches: no TTL by design
		}
		if ttl, err := admin.PTTL(context.Background(), k).Result(); err != nil || ttl <= 0 {
			t.Errorf("key %s without a TTL (%v, %v)", k, ttl, err)
		}
	}
	eventually(t, 15*time.Second, 100*time.Millisecond, func() (bool, string) {
		n := goroutines(t, b)
		return n <= baseGoroutines+15, fmt.Sprintf("instance B runs %d goroutines after 3 reloads, %d before", n, baseGoroutines)
	})
}

// rss is the resident memory of a Caddy process, as /proc says.
func rss(t testing.TB, c *Caddy) string {
	c.mu.Lock()
	cmd := c.cmd
	c.mu.Unlock()
	if cmd == nil {
		return "-"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return "-"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "-"
}

var goroutineGroup = regexp.MustCompile(`(?m)^(\d+) @`)

// goroutines is the number of goroutines of a Caddy process, not counting
// the reverse proxy's connections to its upstream (Caddy's, kept alive
// across reloads by its transport).
func goroutines(t testing.TB, c *Caddy) int {
	t.Helper()
	_, body := c.adminDo(t, http.MethodGet, "/debug/pprof/goroutine?debug=1")
	if !strings.HasPrefix(string(body), "goroutine profile: total ") {
		t.Fatalf("no goroutine profile: %.200s", body)
	}
	n := 0
	for _, group := range strings.Split(string(body), "\n\n") {
		m := goroutineGroup.FindStringSubmatch(group)
		if m == nil || strings.Contains(group, "net/http.(*persistConn)") {
			continue
		}
		k, _ := strconv.Atoi(m[1])
		n += k
	}
	return n
}

// SessionsMaybe lists user's sessions of any state, or none when the
// admin API cannot answer (the store is down).
func (c *Caddy) SessionsMaybe(t testing.TB, realm, user string) []apiSession {
	status, body := c.adminDo(t, http.MethodGet, userPath(realm, user)+"/sessions?state=all&limit=500")
	if status != http.StatusOK {
		return nil
	}
	var l apiList
	if err := json.Unmarshal(body, &l); err != nil {
		return nil
	}
	return l.Sessions
}
