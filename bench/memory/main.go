// Command memory measures what caddy-sessions costs in Redis (issue 5):
// bytes per active session and per closed-session history entry, written
// through the module's own store code (tracker.RedisStore.Seen and
// EndSession), and, with that data loaded, how long listing one user's
// sessions and the first page of the users list take.
//
// Run from the repository root:
//
//	go run ./bench/memory [-sessions 1000000] [-users 100000] [-cluster]
//
// It starts its own redis-server (or a 3-master cluster) on free loopback
// ports and never talks to any other Redis. See bench/README.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/bench/internal/benchkit"
	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// realm of every session written.
const realm = "shop.example.com"

// The store under measurement and its key layout: the only lines that name
// them.
type redisStore = redisstore.Store

var newStore, keysOf = redisstore.New, redisstore.Keys

// pol is the module's default policy, as the Caddyfile defaults give it
// with a session_cookie (revoke hold = retention).
var pol = store.Policy{Idle: 30 * time.Minute, Retention: 90 * 24 * time.Hour, Refresh: 30 * time.Second, RevokeHold: 90 * 24 * time.Hour}

// userAgents are real browsers', parsed with the module's own parser.
var userAgents = benchkit.UserAgents

var logf = benchkit.Logf

// place is a location as a GeoLite2 City lookup gives it, with the first
// octets of addresses the users there come from.
type place struct {
	loc    store.Location
	octets []int
}

func fp(f float64) *float64 { return &f }

var places = []place{
	{store.Location{City: "London", Region: "England", Country: "United Kingdom", CountryCode: "GB", TimeZone: "Europe/London", Latitude: fp(51.51), Longitude: fp(-0.09)}, []int{81, 86, 92}},
	{store.Location{City: "Berlin", Region: "Land Berlin", Country: "Germany", CountryCode: "DE", TimeZone: "Europe/Berlin", Latitude: fp(52.52), Longitude: fp(13.4)}, []int{84, 91, 217}},
	{store.Location{City: "Paris", Region: "Île-de-France", Country: "France", CountryCode: "FR", TimeZone: "Europe/Paris", Latitude: fp(48.86), Longitude: fp(2.35)}, []int{82, 90, 176}},
	{store.Location{City: "Madrid", Region: "Madrid", Country: "Spain", CountryCode: "ES", TimeZone: "Europe/Madrid", Latitude: fp(40.42), Longitude: fp(-3.7)}, []int{83, 88, 95}},
	{store.Location{City: "New York", Region: "New York", Country: "United States", CountryCode: "US", TimeZone: "America/New_York", Latitude: fp(40.71), Longitude: fp(-74.01)}, []int{24, 68, 72}},
	{store.Location{City: "Amsterdam", Region: "North Holland", Country: "Netherlands", CountryCode: "NL", TimeZone: "Europe/Amsterdam", Latitude: fp(52.37), Longitude: fp(4.89)}, []int{77, 145, 213}},
	{store.Location{City: "Milan", Region: "Lombardy", Country: "Italy", CountryCode: "IT", TimeZone: "Europe/Rome", Latitude: fp(45.46), Longitude: fp(9.19)}, []int{79, 93, 151}},
	{store.Location{City: "Warsaw", Region: "Mazovia", Country: "Poland", CountryCode: "PL", TimeZone: "Europe/Warsaw", Latitude: fp(52.23), Longitude: fp(21.01)}, []int{31, 46, 89}},
}

type options struct {
	sessions, users, devices, workers int
	closeFrac                         float64
	history                           int
	lists, userPages                  int
	listBudget                        time.Duration
	cluster, keep, strict             bool
	redisArgs                         string
}

func main() {
	var o options
	flag.IntVar(&o.sessions, "sessions", 1000000, "active sessions opened in phase 1")
	flag.IntVar(&o.users, "users", 100000, "users owning them (sessions are spread evenly)")
	flag.IntVar(&o.devices, "devices-per-user", 3, "devices (browsers) per user; each session is on one of them")
	flag.IntVar(&o.workers, "workers", 64, "concurrent goroutines calling the store")
	flag.Float64Var(&o.closeFrac, "close-fraction", 0.5, "share of the phase-1 sessions ended (logout) in phase 2")
	flag.IntVar(&o.history, "history", 50000, "phase 3: sessions opened and then closed for existing users, to measure the marginal cost of a closed-session history entry (0: skip)")
	flag.IntVar(&o.lists, "lists", 1000, "timed listings of one random user's sessions (state=all, limit 50)")
	flag.IntVar(&o.userPages, "user-pages", 200, "timed first pages of the users list (limit 50)")
	flag.DurationVar(&o.listBudget, "list-budget", 15*time.Second, "time budget of each timed listing kind; fewer calls are made if it runs out")
	flag.BoolVar(&o.cluster, "cluster", false, "use a local 3-master Redis Cluster")
	flag.StringVar(&o.redisArgs, "redis-args", "", "extra redis-server arguments, e.g. \"--hash-max-listpack-value 512\" (to see what an encoding threshold changes)")
	flag.BoolVar(&o.strict, "strict", false, "exit 3 when a target is missed (default: exit non-zero only when the measurement fails)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (Redis logs)")
	flag.Parse()
	if o.sessions < 1 || o.users < 1 || o.users > o.sessions || o.devices < 1 || o.workers < 1 || o.closeFrac < 0 || o.closeFrac > 1 || o.history < 0 {
		fmt.Fprintln(os.Stderr, "memory: need -sessions >= -users >= 1, -devices-per-user >= 1, -workers >= 1, 0 <= -close-fraction <= 1, -history >= 0")
		os.Exit(2)
	}
	benchkit.Main("memory", o.keep, func(e *benchkit.Env) (int, error) { return run(e, o) })
}

// bench is the state of one run.
type bench struct {
	o       options
	rs      *benchkit.Redis
	st      *redisStore
	keys    *tracker.Keyring
	agents  []store.Agent
	devIDs  []string // user*devices + d
	users   []string
	started time.Time
}

// ipOf is the address of device d of user u: stable, so the user's ips
// zset holds one member per device, as for a real user at home, at work
// and on the phone.
func (b *bench) ipOf(u, d int) string {
	p := places[u%len(places)]
	h := uint32(u*2654435761) ^ uint32(d*40503)
	return fmt.Sprintf("%d.%d.%d.%d", p.octets[(u+d)%len(p.octets)], 1+h%254, 1+(h>>8)%254, 1+(h>>16)%254)
}

// open opens one session of user u on device d through RedisStore.Seen,
// filled as Tracker.observeStore fills it (see tracker/tracker.go).
func (b *bench) open(ctx context.Context, rnd *mrand.ChaCha8, u, d int) (string, error) {
	var tok [24]byte
	_, _ = rnd.Read(tok[:])
	th := b.keys.TokenHash(tracker.TokenScope, base64.RawURLEncoding.EncodeToString(tok[:]))
	now := time.Now()
	user, dev, ip := b.users[u], b.devIDs[u*b.o.devices+d], b.ipOf(u, d)
	ag := b.agents[(u+d)%len(b.agents)]
	loc := places[u%len(places)].loc
	s := &store.Session{
		ID: b.keys.SessionID(th, now), Realm: realm, User: user, StartedAt: now, LastSeen: now,
		IP: ip, DeviceID: dev, Agent: ag, Location: loc,
	}
	dv := &store.Device{ID: dev, User: user, FirstSeen: now, LastSeen: now, Agent: ag, LastIP: ip, Location: loc}
	res, err := b.st.Seen(ctx, store.SeenRequest{
		Realm: realm, User: user, TokenHash: th, Now: now, Policy: pol, New: s, Device: dv,
		IPKey: restrict.Prefix{}.Key(ip),
		// As the tracker does when the user comes from the request.
		CheckToken: true,
		// Days stays empty: the day-argument builder (makeDaysArg) is
		// not exported, so no per-day totals are written.
		Activity: store.Activity{TrailLen: 20},
	})
	if err != nil {
		return "", err
	}
	if res.Status != store.StatusOpened {
		return "", fmt.Errorf("seen for %s: status %q reason %q, want %q", user, res.Status, res.Reason, store.StatusOpened)
	}
	return res.SessionID, nil
}

func (b *bench) end(ctx context.Context, u int, sid string) error {
	s, err := b.st.EndSession(ctx, realm, b.users[u], sid, store.EndLogout, time.Now(), pol)
	if err != nil {
		return err
	}
	if s.EndReason != store.EndLogout {
		return fmt.Errorf("end session %s of %s: ended as %q, want logout", sid, b.users[u], s.EndReason)
	}
	return nil
}

// phase is the outcome of one parallel phase.
type phase struct {
	name    string
	n       int
	took    time.Duration
	lat     []time.Duration // sorted
	errs    int64
	errKind map[string]int64
	first   error
}

func (p phase) rate() float64 { return float64(p.n) / p.took.Seconds() }

// parallel runs fn(worker rnd, i) for i in [0,n) on o.workers goroutines,
// timing each call and logging progress every 10 s.
func (b *bench) parallel(name string, n int, fn func(rnd *mrand.ChaCha8, i int) error) phase {
	p := phase{name: name, n: n, errKind: map[string]int64{}}
	if n == 0 {
		return p
	}
	lat := make([]time.Duration, n)
	var next, done atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	t0 := time.Now()
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		last, lastT := int64(0), t0
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				d := done.Load()
				logf("  %s: %s of %s (%.0f/s now, %.0f/s overall)", name, benchkit.Commas(d), benchkit.Commas(int64(n)),
					float64(d-last)/now.Sub(lastT).Seconds(), float64(d)/now.Sub(t0).Seconds())
				last, lastT = d, now
			}
		}
	}()
	for range b.o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seed [32]byte
			_, _ = rand.Read(seed[:])
			rnd := mrand.NewChaCha8(seed)
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				s := time.Now()
				err := fn(rnd, i)
				lat[i] = time.Since(s)
				done.Add(1)
				if err != nil {
					mu.Lock()
					p.errs++
					if p.first == nil {
						p.first = err
					}
					p.errKind[errKind(err)]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	p.took = time.Since(t0)
	p.lat = benchkit.SortDurations(lat)
	return p
}

// errKind is the error's Redis prefix (CROSSSLOT, NOSCRIPT, ...) or text.
func errKind(err error) string {
	s := err.Error()
	for _, k := range []string{"CROSSSLOT", "NOSCRIPT", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "OOM", "timeout", "i/o timeout"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

func run(e *benchkit.Env, o options) (int, error) {
	ctx := context.Background()
	b := &bench{o: o, started: time.Now()}
	logf("machine: %s", benchkit.Machine())
	var err error
	if b.rs, err = benchkit.StartRedis(e, o.cluster, strings.Fields(o.redisArgs)...); err != nil {
		return 1, err
	}

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	if b.keys, err = tracker.NewKeyring(secret); err != nil {
		return 1, err
	}
	for _, ua := range userAgents {
		b.agents = append(b.agents, enrich.ParseAgent(ua))
	}
	b.users = make([]string, o.users)
	for u := range b.users {
		b.users[u] = fmt.Sprintf("customer%06d@example.com", u)
	}
	b.devIDs = make([]string, o.users*o.devices)
	for i := range b.devIDs {
		b.devIDs[i], _ = b.keys.NewDevice()
	}

	b.st = newStore(b.rs.Client(o.workers))
	defer b.st.Close()
	if err := b.st.LoadScripts(ctx); err != nil {
		return 1, err
	}
	// Open the pool's connections before the baseline, so client buffers
	// are in it.
	var wg sync.WaitGroup
	for range o.workers {
		wg.Add(1)
		go func() { defer wg.Done(); _ = b.st.Ping(ctx) }()
	}
	wg.Wait()
	st0, err := b.rs.Stats(ctx)
	if err != nil {
		return 1, err
	}
	m0, err := b.rs.Memory(ctx)
	if err != nil {
		return 1, err
	}

	// Phase 1: open every session.
	logf("phase 1: opening %s sessions of %s users (%d devices each) through RedisStore.Seen, %d goroutines...",
		benchkit.Commas(int64(o.sessions)), benchkit.Commas(int64(o.users)), o.devices, o.workers)
	sids := make([]string, o.sessions)
	p1 := b.parallel("open", o.sessions, func(rnd *mrand.ChaCha8, i int) error {
		u := i % o.users
		sid, err := b.open(ctx, rnd, u, (i/o.users)%o.devices)
		sids[i] = sid
		return err
	})
	logf("  opened in %v (%.0f/s)", p1.took.Round(100*time.Millisecond), p1.rate())
	if p1.errs > 0 {
		return 1, fmt.Errorf("phase 1: %d of %d Seen calls failed; first: %v; by kind: %v", p1.errs, p1.n, p1.first, p1.errKind)
	}
	m1, err := b.rs.Memory(ctx)
	if err != nil {
		return 1, err
	}
	breakdown1, err := b.breakdown(ctx, 200)
	if err != nil {
		return 1, err
	}

	// Phase 2: end a share of them (logout).
	// Session i is the k-th (k = i / users) of user i % users: end the
	// first closeFrac of each user's sessions, so every user keeps the
	// same mix.
	var closeIdx []int
	for i := range sids {
		u, k := i%o.users, i/o.users
		n := (o.sessions - u + o.users - 1) / o.users // sessions of user u
		if k+1 <= int(o.closeFrac*float64(n)) {
			closeIdx = append(closeIdx, i)
		}
	}
	logf("phase 2: ending %s of them (logout) through RedisStore.EndSession...", benchkit.Commas(int64(len(closeIdx))))
	p2 := b.parallel("end", len(closeIdx), func(_ *mrand.ChaCha8, k int) error {
		i := closeIdx[k]
		return b.end(ctx, i%o.users, sids[i])
	})
	if len(closeIdx) > 0 {
		logf("  ended in %v (%.0f/s)", p2.took.Round(100*time.Millisecond), p2.rate())
	}
	if p2.errs > 0 {
		return 1, fmt.Errorf("phase 2: %d of %d EndSession calls failed; first: %v; by kind: %v", p2.errs, p2.n, p2.first, p2.errKind)
	}
	m2, err := b.rs.Memory(ctx)
	if err != nil {
		return 1, err
	}

	// Phase 3: more history for existing users: open, then close.
	var p3a, p3b phase
	m3a, m3b := m2, m2
	if o.history > 0 {
		logf("phase 3: %s more sessions for existing users on their existing devices: open, measure, end, measure...", benchkit.Commas(int64(o.history)))
		hs := make([]string, o.history)
		p3a = b.parallel("history open", o.history, func(rnd *mrand.ChaCha8, k int) error {
			sid, err := b.open(ctx, rnd, k%o.users, k%o.devices)
			hs[k] = sid
			return err
		})
		if p3a.errs > 0 {
			return 1, fmt.Errorf("phase 3: %d Seen calls failed; first: %v", p3a.errs, p3a.first)
		}
		if m3a, err = b.rs.Memory(ctx); err != nil {
			return 1, err
		}
		p3b = b.parallel("history end", o.history, func(_ *mrand.ChaCha8, k int) error {
			return b.end(ctx, k%o.users, hs[k])
		})
		if p3b.errs > 0 {
			return 1, fmt.Errorf("phase 3: %d EndSession calls failed; first: %v", p3b.errs, p3b.first)
		}
		if m3b, err = b.rs.Memory(ctx); err != nil {
			return 1, err
		}
	}
	breakdown2, err := b.breakdown(ctx, 200)
	if err != nil {
		return 1, err
	}
	sample, err := b.userKeysTable(ctx, 0)
	if err != nil {
		return 1, err
	}
	big, err := b.realmKeys(ctx)
	if err != nil {
		return 1, err
	}
	nDesc, descBytes, err := b.descStats(ctx)
	if err != nil {
		return 1, err
	}

	// Reads with the data loaded.
	logf("timing reads: %d x one user's sessions (state=all and state=active, limit 50), up to %d x users list first page (limit 50)...", o.lists, o.userPages)
	listAll, err := b.timeLists(ctx, "all")
	if err != nil {
		return 1, err
	}
	listActive, err := b.timeLists(ctx, "active")
	if err != nil {
		return 1, err
	}
	usersPage, err := b.timeUsers(ctx)
	if err != nil {
		return 1, err
	}

	st1, err := b.rs.Stats(ctx)
	if err != nil {
		return 1, err
	}
	r := results{o: o, b: b, m0: m0, m1: m1, m2: m2, m3a: m3a, m3b: m3b, nDesc: nDesc, descBytes: descBytes, p1: p1, p2: p2, p3a: p3a, p3b: p3b,
		nClosed: len(closeIdx), bd1: breakdown1, bd2: breakdown2, sample: sample, big: big,
		listAll: listAll, listActive: listActive, usersPage: usersPage, redisErrs: benchkit.Diff(st1.Errors, st0.Errors), failed: benchkit.Diff(st1.Failed, st0.Failed)}
	missed := r.print(os.Stdout)
	if len(r.redisErrs) > 0 {
		return 1, fmt.Errorf("redis counted errors during the run: %v", r.redisErrs)
	}
	if missed > 0 && o.strict {
		return 3, nil
	}
	return 0, nil
}

// ---------------------------------------------------------------------------
// Keys, as the store's exported key layout (keysOf) names them.

// keyStat is what one key costs.
type keyStat struct {
	key, typ, enc string
	length        int64
	bytes         int64
	ttl           time.Duration
}

func (b *bench) keyStat(ctx context.Context, key string) (keyStat, bool, error) {
	n := b.st.Client() // cluster-aware: routes by key
	ks := keyStat{key: key}
	typ, err := n.Type(ctx, key).Result()
	if err != nil {
		return ks, false, err
	}
	if typ == "none" {
		return ks, false, nil
	}
	ks.typ = typ
	ks.enc, _ = n.ObjectEncoding(ctx, key).Result()
	ks.bytes, _ = n.MemoryUsage(ctx, key, 0).Result()
	ks.ttl, _ = n.PTTL(ctx, key).Result()
	switch typ {
	case "hash":
		ks.length, _ = n.HLen(ctx, key).Result()
	case "zset":
		ks.length, _ = n.ZCard(ctx, key).Result()
	case "string":
		ks.length, _ = n.StrLen(ctx, key).Result()
	}
	return ks, true, nil
}

// userKeysTable describes every key of user u.
func (b *bench) userKeysTable(ctx context.Context, u int) ([]keyStat, error) {
	var out []keyStat
	layout := keysOf(realm, b.users[u])
	for _, k := range layout.User {
		ks, ok, err := b.keyStat(ctx, k.Key)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, ks)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no key of user %s found under cs:%s:*", b.users[u], layout.Tag)
	}
	return out, nil
}

// descStats counts the shared descriptions (cs:a:*, cs:l:*: parsed agents
// and locations that session and device records refer to) and their bytes.
func (b *bench) descStats(ctx context.Context) (n int, bytes int64, err error) {
	var mu sync.Mutex
	scan := func(ctx context.Context, c *redis.Client) error {
		for _, pat := range []string{"cs:a:*", "cs:l:*"} {
			it := c.Scan(ctx, 0, pat, 1000).Iterator()
			for it.Next(ctx) {
				u, _ := c.MemoryUsage(ctx, it.Val(), 0).Result()
				mu.Lock()
				n++
				bytes += u
				mu.Unlock()
			}
			if err := it.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	switch c := b.st.Client().(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	default:
		err = fmt.Errorf("unexpected client %T", c)
	}
	return n, bytes, err
}

// realmKeys are the realm-wide keys (one each).
func (b *bench) realmKeys(ctx context.Context) ([]keyStat, error) {
	var out []keyStat
	for _, ki := range keysOf(realm, "").Realm {
		k := ki.Key
		ks, ok, err := b.keyStat(ctx, k)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, ks)
		}
	}
	return out, nil
}

// breakdown is MEMORY USAGE (SAMPLES 0: exact) per key kind, averaged over
// sampled users.
type breakdown struct {
	sampled int
	kinds   []kindStat
	perUser int64 // sum of the averages
}

type kindStat struct {
	suffix   string
	holds    string
	present  int
	bytes    int64 // average over users that have it
	length   float64
	encs     map[string]int
	perUserB float64 // average over all sampled users
}

func (b *bench) breakdown(ctx context.Context, n int) (breakdown, error) {
	n = min(n, len(b.users))
	rnd := mrand.New(mrand.NewPCG(1, 2))
	idx := rnd.Perm(len(b.users))[:n]
	bd := breakdown{sampled: n}
	for i, info := range keysOf(realm, "").User {
		k := kindStat{suffix: info.Key[strings.LastIndexByte(info.Key, ':')+1:], holds: info.Holds, encs: map[string]int{}}
		var sum, lsum int64
		for _, u := range idx {
			ks, ok, err := b.keyStat(ctx, keysOf(realm, b.users[u]).User[i].Key)
			if err != nil {
				return bd, err
			}
			if !ok {
				continue
			}
			k.present++
			sum += ks.bytes
			lsum += ks.length
			k.encs[ks.enc]++
		}
		if k.present > 0 {
			k.bytes = sum / int64(k.present)
			k.length = float64(lsum) / float64(k.present)
		}
		k.perUserB = float64(sum) / float64(n)
		bd.perUser += int64(k.perUserB)
		bd.kinds = append(bd.kinds, k)
	}
	return bd, nil
}

// ---------------------------------------------------------------------------
// Timed reads

type timed struct {
	what   string
	want   int
	lat    []time.Duration // sorted
	budget bool            // stopped by the time budget
	note   string
}

func (b *bench) timeLists(ctx context.Context, state string) (timed, error) {
	t := timed{what: fmt.Sprintf("one user's sessions (state=%s, limit 50)", state), want: b.o.lists}
	rnd := mrand.New(mrand.NewPCG(3, 4))
	start := time.Now()
	var got int
	for range b.o.lists {
		if time.Since(start) > b.o.listBudget {
			t.budget = true
			break
		}
		u := rnd.IntN(len(b.users))
		s := time.Now()
		list, total, err := b.st.Sessions(ctx, store.ListRequest{Realm: realm, User: b.users[u], State: state, Limit: 50, Now: time.Now(), Policy: pol})
		t.lat = append(t.lat, time.Since(s))
		if err != nil {
			return t, fmt.Errorf("listing sessions of %s: %w", b.users[u], err)
		}
		if state == "all" && (total == 0 || len(list) == 0) {
			return t, fmt.Errorf("listing sessions of %s (state=%s): empty (total %d)", b.users[u], state, total)
		}
		got += len(list)
	}
	t.note = fmt.Sprintf("%.1f sessions per answer", float64(got)/float64(max(1, len(t.lat))))
	t.lat = benchkit.SortDurations(t.lat)
	return t, nil
}

func (b *bench) timeUsers(ctx context.Context) (timed, error) {
	t := timed{what: "users list, first page (limit 50)", want: b.o.userPages}
	start := time.Now()
	for range b.o.userPages {
		if time.Since(start) > b.o.listBudget {
			t.budget = true
			break
		}
		s := time.Now()
		list, total, err := b.st.Users(ctx, store.UsersRequest{Realm: realm, Limit: 50, Now: time.Now(), Policy: pol})
		t.lat = append(t.lat, time.Since(s))
		if err != nil {
			return t, fmt.Errorf("users list: %w", err)
		}
		if len(list) != min(50, len(b.users)) || total != len(b.users) {
			return t, fmt.Errorf("users list: %d users on the page, total %d; want %d and %d", len(list), total, min(50, len(b.users)), len(b.users))
		}
	}
	t.note = fmt.Sprintf("total %s users", benchkit.Commas(int64(len(b.users))))
	t.lat = benchkit.SortDurations(t.lat)
	return t, nil
}

// ---------------------------------------------------------------------------
// Report

type results struct {
	o                 options
	b                 *bench
	m0, m1, m2        redistest.Memory
	m3a, m3b          redistest.Memory
	p1, p2, p3a, p3b  phase
	nClosed           int
	bd1, bd2          breakdown
	sample, big       []keyStat
	nDesc             int
	descBytes         int64
	listAll           timed
	listActive        timed
	usersPage         timed
	redisErrs, failed map[string]int64
}

func per(d int64, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(d) / float64(n)
}

// print writes the results and returns how many targets were missed.
func (r results) print(w io.Writer) int {
	o := r.o
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("")
	p("== caddy-sessions: Redis memory and read latency (issue 5) ==")
	p("machine:  %s", benchkit.Machine())
	p("redis:    %s (%s), started by this program, no persistence%s", r.b.rs.Version, r.b.rs.Kind(), map[bool]string{true: "; extra args: " + o.redisArgs, false: ""}[o.redisArgs != ""])
	p("data:     %s sessions of %s users (%.1f per user), %d devices per user, realm %q, written with tracker.RedisStore.Seen",
		benchkit.Commas(int64(o.sessions)), benchkit.Commas(int64(o.users)), float64(o.sessions)/float64(o.users), o.devices, realm)
	p("          (the module's store code, one call per session as on a cache miss: EVALSHA seen + GET token binding + ZADD/PEXPIRE of the")
	p("          realm's users index in one pipeline), %d goroutines; policy idle 30m, retention 90d, refresh 30s, revoke hold 90d;", o.workers)
	p("          sessions carry IP, device id, parsed user agent (enrich.ParseAgent of %d real UAs), a city-level location;", len(userAgents))
	p("          Activity.Days empty: makeDaysArg is unexported, so no per-day totals are written (the days hash is missing below)")
	p("")

	p("Writes:")
	p("| phase | calls | took | calls/s | p50 | p99 | errors |")
	p("|---|---:|---:|---:|---:|---:|---:|")
	for _, ph := range []phase{r.p1, r.p2, r.p3a, r.p3b} {
		if ph.n == 0 {
			continue
		}
		p("| %s | %s | %.1f s | %.0f | %s | %s | %d |", ph.name, benchkit.Commas(int64(ph.n)), ph.took.Seconds(), ph.rate(),
			benchkit.Ms(benchkit.Quantile(ph.lat, .5)), benchkit.Ms(benchkit.Quantile(ph.lat, .99)), ph.errs)
	}
	p("(latency is per call with %d calls in flight: Redis queueing included)", o.workers)
	p("")

	active := per(r.m1.Data()-r.m0.Data(), o.sessions)
	closeDelta := per(r.m2.Data()-r.m1.Data(), r.nClosed)
	histActive := per(r.m3a.Data()-r.m2.Data(), o.history)
	histClosed := per(r.m3b.Data()-r.m2.Data(), o.history)
	p("Redis memory (INFO memory summed over the servers, each reading after MEMORY PURGE; \"data\" is used_memory minus")
	p("mem_clients_normal, the connections' query/output buffers, which vary with the load and are not data):")
	p("| reading | used_memory | client buffers | data | dataset | keys |")
	p("|---|---:|---:|---:|---:|---:|")
	for _, x := range []struct {
		l string
		m redistest.Memory
	}{{"0 empty (scripts loaded, connections open)", r.m0}, {fmt.Sprintf("1 after opening %s sessions", benchkit.Commas(int64(o.sessions))), r.m1},
		{fmt.Sprintf("2 after ending %s of them", benchkit.Commas(int64(r.nClosed))), r.m2}} {
		p("| %s | %s | %s | %s | %s | %s |", x.l, benchkit.MiB(x.m.Used), benchkit.MiB(x.m.Clients), benchkit.MiB(x.m.Data()), benchkit.MiB(x.m.Dataset), benchkit.Commas(x.m.Keys))
	}
	if o.history > 0 {
		p("| 3a after opening %s more (existing users and devices) | %s | %s | %s | %s | %s |", benchkit.Commas(int64(o.history)), benchkit.MiB(r.m3a.Used), benchkit.MiB(r.m3a.Clients), benchkit.MiB(r.m3a.Data()), benchkit.MiB(r.m3a.Dataset), benchkit.Commas(r.m3a.Keys))
		p("| 3b after ending those | %s | %s | %s | %s | %s |", benchkit.MiB(r.m3b.Used), benchkit.MiB(r.m3b.Clients), benchkit.MiB(r.m3b.Data()), benchkit.MiB(r.m3b.Dataset), benchkit.Commas(r.m3b.Keys))
	}
	p("")
	perD := func(a, b redistest.Memory, n int) float64 { return per(a.Dataset-b.Dataset, n) }
	p("| per ... | bytes (data) | bytes (dataset) | method |")
	p("|---|---:|---:|---|")
	p("| active session, all-in | %.0f | %.0f | (1 − 0) / %s sessions: includes each session's share of its user's keys (meta, devices, IPs, key and TTL overhead) and of the realm's users index |",
		active, perD(r.m1, r.m0, o.sessions), benchkit.Commas(int64(o.sessions)))
	if r.nClosed > 0 {
		p("| change when a session ends | %+.0f | %+.0f | (2 − 1) / %s ended: it leaves the active set and the token map; its record grows by the end time and reason |",
			closeDelta, perD(r.m2, r.m1, r.nClosed), benchkit.Commas(int64(r.nClosed)))
		p("| session after it ended, all-in | %.0f | %.0f | the two rows above added: what a closed session costs when its user has nothing else |",
			active+closeDelta, perD(r.m1, r.m0, o.sessions)+perD(r.m2, r.m1, r.nClosed))
	}
	if o.history > 0 {
		p("| extra active session of an existing user | %.0f | %.0f | (3a − 2) / %s: marginal, no new user or device |", histActive, perD(r.m3a, r.m2, o.history), benchkit.Commas(int64(o.history)))
		p("| **closed-session history entry** | %.0f | %.0f | (3b − 2) / %s: marginal cost of one more closed session in a user's history (record + history index) |",
			histClosed, perD(r.m3b, r.m2, o.history), benchkit.Commas(int64(o.history)))
	}
	p("(dataset is used_memory minus all of Redis's own overhead: main dict and expires entries, client buffers, replication and")
	p("cluster structures; the targets are judged on data, which keeps the per-key overhead in)")
	p("")

	printBreakdown := func(title string, bd breakdown, sessionsPerUser float64) {
		p("%s (MEMORY USAGE SAMPLES 0 of each key of %d random users):", title, bd.sampled)
		p("| key | content | users having it | avg length | encoding(s) | avg bytes | bytes per session |")
		p("|---|---|---:|---:|---|---:|---:|")
		for _, k := range bd.kinds {
			if k.present == 0 {
				continue
			}
			p("| cs:{u}:%s | %s | %d%% | %.1f | %s | %s | %.0f |", k.suffix, k.holds, 100*k.present/bd.sampled, k.length, encs(k.encs),
				benchkit.Commas(k.bytes), k.perUserB/sessionsPerUser)
		}
		var missing []string
		for _, k := range bd.kinds {
			if k.present == 0 {
				missing = append(missing, k.suffix)
			}
		}
		p("| sum per user | | | | | %s | %.0f |", benchkit.Commas(bd.perUser), float64(bd.perUser)/sessionsPerUser)
		if len(missing) > 0 {
			p("(no key of: %s)", strings.Join(missing, ", "))
		}
		p("")
	}
	perUser1 := float64(o.sessions) / float64(o.users)
	printBreakdown("What a user's keys cost after phase 1 (all sessions active)", r.bd1, perUser1)
	total2 := float64(o.sessions+o.history) / float64(o.users)
	printBreakdown(fmt.Sprintf("After phases 2 and 3 (%.1f sessions per user, %.1f of them active)", total2, float64(o.sessions-r.nClosed)/float64(o.users)), r.bd2, total2)
	sumKeys := float64(r.bd1.perUser)*float64(o.users) + float64(bigBytes(r.big))
	p("Phase 1: sum of MEMORY USAGE over all keys (extrapolated from the sample) %s of the %s data growth; the rest (%s) is Redis's",
		benchkit.MiB(int64(sumKeys)), benchkit.MiB(r.m1.Data()-r.m0.Data()), benchkit.MiB(r.m1.Data()-r.m0.Data()-int64(sumKeys)))
	p("per-key bookkeeping outside MEMORY USAGE (expires dict entries%s) and allocator rounding.", map[bool]string{true: ", cluster slot-to-key links", false: ""}[o.cluster])
	p("")

	p("Keys of one user (%s), final state:", r.b.users[0])
	p("| key | type | encoding | length | bytes (MEMORY USAGE) | TTL |")
	p("|---|---|---|---:|---:|---:|")
	for _, k := range r.sample {
		p("| %s | %s | %s | %d | %s | %.0f d |", k.key, k.typ, k.enc, k.length, benchkit.Commas(k.bytes), k.ttl.Hours()/24)
	}
	p("")
	p("Realm-wide keys:")
	p("| key | type | encoding | length | bytes (MEMORY USAGE) | TTL |")
	p("|---|---|---|---:|---:|---:|")
	for _, k := range r.big {
		ttl := "none"
		if k.ttl > 0 {
			ttl = fmt.Sprintf("%.0f d", k.ttl.Hours()/24)
		}
		p("| %s | %s | %s | %s | %s | %s |", k.key, k.typ, k.enc, benchkit.Commas(k.length), benchkit.Commas(k.bytes), ttl)
	}
	if r.nDesc > 0 {
		p("Shared descriptions (cs:a:*, cs:l:*: the parsed agents and locations that records refer to): %d keys, %s bytes by MEMORY USAGE",
			r.nDesc, benchkit.Commas(r.descBytes))
		p("(%.0f B each, plus about 50 B of main-dict and expires entries); in the per-session numbers above. Here %d agents and %d places",
			float64(r.descBytes)/float64(r.nDesc), len(userAgents), len(places))
		p("describe every session; with more variety each distinct agent or place adds about that much once, whatever the number of sessions.")
	}
	p("Key count: %s after phase 1 (%.2f per user), %s at the end; encoding thresholds: hash-max-listpack-value and zset-max-listpack-value",
		benchkit.Commas(r.m1.Keys), float64(r.m1.Keys)/float64(o.users), benchkit.Commas(r.m3b.Keys))
	p("are 64 bytes by default, so a hash whose session or device records are longer (about 130 and 70 bytes here) is a hashtable, not a listpack.")
	p("")

	p("Reads with the data loaded (one goroutine, no other load; RedisStore.Sessions / RedisStore.Users):")
	p("| read | calls | p50 | p90 | p99 | max | |")
	p("|---|---:|---:|---:|---:|---:|---|")
	for _, t := range []timed{r.listAll, r.listActive, r.usersPage} {
		note := t.note
		if t.budget {
			note += fmt.Sprintf("; STOPPED by the %v budget after %d of %d calls", o.listBudget, len(t.lat), t.want)
		}
		p("| %s | %d | %s | %s | %s | %s | %s |", t.what, len(t.lat), benchkit.Ms(benchkit.Quantile(t.lat, .5)), benchkit.Ms(benchkit.Quantile(t.lat, .9)),
			benchkit.Ms(benchkit.Quantile(t.lat, .99)), benchkit.Ms(benchkit.Quantile(t.lat, 1)), note)
	}
	p("")

	p("Errors: Go side %d; Redis errorstats during the run: %s; failed calls by command: %s", r.p1.errs+r.p2.errs+r.p3a.errs+r.p3b.errs, benchkit.FormatCounts(r.redisErrs), benchkit.FormatCounts(r.failed))
	if o.cluster {
		p("CROSSSLOT: %d (every call above went through the cluster client; any CROSSSLOT would also have failed the run)", r.redisErrs["CROSSSLOT"])
	}
	p("")

	missed := 0
	check := func(name string, ok bool, got string) {
		if !ok {
			missed++
		}
		p("| %s | %s | %s |", name, got, benchkit.Verdict(ok))
	}
	p("| Target | Measured | Verdict |")
	p("|---|---:|---|")
	check("≤ 600 B per active session (all-in)", active <= 600, fmt.Sprintf("%.0f B", active))
	if o.history > 0 {
		check("≤ 400 B per closed-session history entry", histClosed <= 400, fmt.Sprintf("%.0f B", histClosed))
	} else if r.nClosed > 0 {
		p("| ≤ 400 B per closed-session history entry | n/a (-history 0) | |")
	}
	check("listing one user's sessions p99 ≤ 5 ms (state=all)", benchkit.Quantile(r.listAll.lat, .99) <= 5*time.Millisecond, benchkit.Ms(benchkit.Quantile(r.listAll.lat, .99)))
	check("users list first page p99 ≤ 5 ms", benchkit.Quantile(r.usersPage.lat, .99) <= 5*time.Millisecond && !r.usersPage.budget, benchkit.Ms(benchkit.Quantile(r.usersPage.lat, .99)))
	if o.cluster {
		check("no CROSSSLOT errors (cluster)", r.redisErrs["CROSSSLOT"] == 0, fmt.Sprint(r.redisErrs["CROSSSLOT"]))
	}
	p("")
	p("total run time %v", time.Since(r.b.started).Round(time.Second))
	return missed
}

func bigBytes(ks []keyStat) int64 {
	var n int64
	for _, k := range ks {
		n += k.bytes
	}
	return n
}

func encs(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return m[ks[i]] > m[ks[j]] })
	var parts []string
	for _, k := range ks {
		if len(m) == 1 {
			parts = append(parts, k)
		} else {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}
