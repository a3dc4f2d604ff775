package tracker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
	"github.com/caddy-sessions/caddy-sessions/restrict"
)

// The helpers of the restriction, activity and day tests are prefixed rx so
// they never collide with the conformance suite's.

// rxPolicy: Retention is long compared to the runtime, so Redis TTLs
// (real time) expire nothing a test still needs.
var rxPolicy = store.Policy{Idle: 30 * time.Minute, Retention: 24 * time.Hour, Refresh: time.Minute, RevokeHold: 10 * time.Minute}

func rxKeyring(tb testing.TB) *Keyring {
	tb.Helper()
	k, err := NewKeyring([]byte("rx test secret: 0123456789abcdef"))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// rxEnv is one store under test and, for Redis, a way to look inside it.
type rxEnv struct {
	store.Store
	name string
	rdb  redis.UniversalClient // nil for memory
	scan func(ctx context.Context, pattern string) ([]string, error)
}

// rxForEachStore runs fn against a MemoryStore, a RedisStore on a
// standalone redis-server and a RedisStore on a 3-master cluster.
func rxForEachStore(t *testing.T, fn func(t *testing.T, env *rxEnv)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) { fn(t, &rxEnv{Store: redisstore.NewMemory(), name: "memory"}) })
	rxForEachRedis(t, fn)
}

// rxForEachRedis runs fn against Redis standalone and cluster.
func rxForEachRedis(t *testing.T, fn func(t *testing.T, env *rxEnv)) {
	t.Helper()
	t.Run("redis", func(t *testing.T) { fn(t, rxRedis(t)) })
	t.Run("cluster", func(t *testing.T) { fn(t, rxCluster(t)) })
}

func rxRedis(t *testing.T) *rxEnv {
	srv := redistest.Start(t)
	st := redisstore.New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	t.Cleanup(func() { _ = st.Close() })
	return &rxEnv{Store: st, name: "redis", rdb: st.Client(), scan: srv.ScanAll}
}

func rxCluster(t *testing.T) *rxEnv {
	c := redistest.StartCluster(t)
	st := redisstore.New(redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs}))
	t.Cleanup(func() { _ = st.Close() })
	return &rxEnv{Store: st, name: "cluster", rdb: st.Client(), scan: c.ScanAll}
}

// rxFx is one scenario: its own realm and user on a shared store.
type rxFx struct {
	t      *testing.T
	env    *rxEnv
	ctx    context.Context
	keys   *Keyring
	realm  string
	user   string
	base   time.Time
	p      store.Policy
	limits restrict.Limits
	prefix restrict.Prefix
}

func rxNew(t *testing.T, env *rxEnv) *rxFx {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return &rxFx{
		t: t, env: env, ctx: ctx, keys: rxKeyring(t),
		realm: "rx-realm/" + t.Name(), user: "rx-user/" + t.Name(),
		base: time.Now().UTC().Truncate(time.Millisecond), p: rxPolicy,
	}
}

func (f *rxFx) at(d time.Duration) time.Time { return f.base.Add(d) }

func (f *rxFx) th(tok string) string { return f.keys.TokenHash(f.realm, tok) }

const (
	rxIPA = "198.51.100.1"
	rxIPB = "198.51.100.2"
	rxIPC = "198.51.100.3"
	rxIPD = "198.51.100.4"
	rxIPE = "198.51.100.5"
	rxIPF = "198.51.100.6"
)

var (
	rxAgent = store.Agent{Browser: "Firefox", BrowserVersion: "125.0", OS: "Linux", DeviceFamily: "Other", DeviceType: "desktop"}
	rxLoc   = store.Location{City: "London", Region: "England", Country: "United Kingdom", CountryCode: "GB", TimeZone: "Europe/London"}
)

// rxHit is one request as the tracker would hand it to Store.Seen.
type rxHit struct {
	user  string // "" = the scenario's user
	tok   string
	at    time.Duration
	ip    string // "" = rxIPA
	dev   string // "" = dev-1
	login bool
	// when is an absolute time; it wins over at.
	when  time.Time
	days  string
	agent *store.Agent
	loc   *store.Location
}

func (f *rxFx) req(h rxHit) store.SeenRequest {
	user, ip, dev := h.user, h.ip, h.dev
	if user == "" {
		user = f.user
	}
	if ip == "" {
		ip = rxIPA
	}
	if dev == "" {
		dev = "dev-1"
	}
	now := f.at(h.at)
	if !h.when.IsZero() {
		now = h.when
	}
	agent, loc := rxAgent, rxLoc
	if h.agent != nil {
		agent = *h.agent
	}
	if h.loc != nil {
		loc = *h.loc
	}
	th := f.th(h.tok)
	return store.SeenRequest{
		Realm: f.realm, User: user, TokenHash: th, Now: now, Policy: f.p, Login: h.login,
		New: &store.Session{
			ID: f.keys.SessionID(th, now), Realm: f.realm, User: user, StartedAt: now, LastSeen: now,
			IP: ip, DeviceID: dev, Agent: agent, Location: loc,
		},
		Device:   &store.Device{ID: dev, User: user, FirstSeen: now, LastSeen: now, Agent: agent, LastIP: ip, Location: loc},
		Limits:   f.limits,
		IPKey:    f.prefix.Key(ip),
		Activity: store.Activity{Days: h.days},
	}
}

func (f *rxFx) seen(h rxHit) store.SeenResult {
	f.t.Helper()
	res, err := f.env.Seen(f.ctx, f.req(h))
	if err != nil {
		f.t.Fatalf("Seen(%s @%v from %s): %v", h.tok, h.at, h.ip, err)
	}
	return res
}

// open sees a request that must open a new session; it returns its id.
func (f *rxFx) open(h rxHit) string {
	f.t.Helper()
	res := f.seen(h)
	if res.Status != store.StatusOpened {
		f.t.Fatalf("Seen(%s @%v ip %q dev %q) = %s/%q, want %s", h.tok, h.at, h.ip, h.dev, res.Status, res.Reason, store.StatusOpened)
	}
	return res.SessionID
}

// active sees a request of a token whose session must be active.
func (f *rxFx) active(h rxHit, sid string) store.SeenResult {
	f.t.Helper()
	res := f.seen(h)
	if res.Status != store.StatusActive || res.SessionID != sid {
		f.t.Fatalf("Seen(%s @%v ip %q dev %q) = %s %q/%q, want %s %q", h.tok, h.at, h.ip, h.dev, res.Status, res.SessionID, res.Reason, store.StatusActive, sid)
	}
	return res
}

// refused sees a request that must be refused for reason.
func (f *rxFx) refused(h rxHit, reason string) store.SeenResult {
	f.t.Helper()
	res := f.seen(h)
	if res.Status != store.StatusRefused || res.Reason != reason {
		f.t.Fatalf("Seen(%s @%v ip %q dev %q) = %s/%q, want %s/%q", h.tok, h.at, h.ip, h.dev, res.Status, res.Reason, store.StatusRefused, reason)
	}
	return res
}

func (f *rxFx) violations(user string) ([]*restrict.Violation, int) {
	f.t.Helper()
	if user == "" {
		user = f.user
	}
	vs, total, err := f.env.Violations(f.ctx, f.realm, user, 0, 100)
	if err != nil {
		f.t.Fatalf("Violations: %v", err)
	}
	return vs, total
}

func (f *rxFx) summary(user string, at time.Duration) *store.UserSummary {
	f.t.Helper()
	if user == "" {
		user = f.user
	}
	s, err := f.env.User(f.ctx, f.realm, user, f.at(at), f.p)
	if err != nil {
		f.t.Fatalf("User(%s): %v", user, err)
	}
	return s
}

func (f *rxFx) sessions(state string, at time.Duration) []*store.Session {
	f.t.Helper()
	list, _, err := f.env.Sessions(f.ctx, store.ListRequest{Realm: f.realm, User: f.user, State: state, Now: f.at(at), Policy: f.p})
	if err != nil {
		f.t.Fatalf("Sessions: %v", err)
	}
	return list
}

func (f *rxFx) sessionByID(id string, at time.Duration) *store.Session {
	f.t.Helper()
	for _, s := range f.sessions("all", at) {
		if s.ID == id {
			return s
		}
	}
	f.t.Fatalf("session %s not listed", id)
	return nil
}

// rxWant is what a violation must say; zero Time is not checked.
type rxWant struct {
	policy   string
	limit    int
	observed int
	ip       string
	device   string
	session  string
	action   string
	viewed   bool
	time     time.Time
}

func rxCheckViolation(t *testing.T, what string, v *restrict.Violation, w rxWant) {
	t.Helper()
	if v == nil {
		t.Fatalf("%s: no violation", what)
	}
	if w.device == "" {
		w.device = "dev-1"
	}
	got := fmt.Sprintf("policy=%s limit=%d observed=%d ip=%s device=%s session=%q action=%s viewed=%v",
		v.Policy, v.Limit, v.Observed, v.IP, v.Device, v.Session, v.Action, v.Viewed)
	want := fmt.Sprintf("policy=%s limit=%d observed=%d ip=%s device=%s session=%q action=%s viewed=%v",
		w.policy, w.limit, w.observed, w.ip, w.device, w.session, w.action, w.viewed)
	if got != want {
		t.Errorf("%s:\n got  %s\n want %s", what, got, want)
	}
	if !w.time.IsZero() && !v.Time.Equal(w.time) {
		t.Errorf("%s: time %v, want %v", what, v.Time, w.time)
	}
	if v.ID == "" {
		t.Errorf("%s: empty id", what)
	}
	if v.Location != rxLoc.String() {
		t.Errorf("%s: location %q, want %q", what, v.Location, rxLoc.String())
	}
}

func rxLimit(max int, window time.Duration, action string) *restrict.Limit {
	return &restrict.Limit{Max: max, Window: restrict.Duration(window), Action: action}
}

// TestRestrictStore covers the account-sharing limits in the store, on
// memory, Redis and Redis Cluster.
func TestRestrictStore(t *testing.T) {
	rxForEachStore(t, func(t *testing.T, env *rxEnv) {
		t.Run("MaxIPsBlock", func(t *testing.T) { rxMaxIPsBlock(t, env) })
		t.Run("MaxIPsLog", func(t *testing.T) { rxMaxIPsLog(t, env) })
		t.Run("MaxIPsPrefix", func(t *testing.T) { rxMaxIPsPrefix(t, env) })
		t.Run("MaxDevicesBlock", func(t *testing.T) { rxMaxDevicesBlock(t, env) })
		t.Run("MaxDevicesLog", func(t *testing.T) { rxMaxDevicesLog(t, env) })
		t.Run("MaxSessionsBlock", func(t *testing.T) { rxMaxSessionsBlock(t, env) })
		t.Run("MaxSessionsLog", func(t *testing.T) { rxMaxSessionsLog(t, env) })
		t.Run("MaxSessionsEvictOldest", func(t *testing.T) { rxMaxSessionsEvict(t, env) })
		t.Run("UserOverrides", func(t *testing.T) { rxOverrides(t, env) })
		t.Run("Exemption", func(t *testing.T) { rxExemption(t, env) })
		t.Run("DeviceBlock", func(t *testing.T) { rxDeviceBlock(t, env) })
		t.Run("ViolationsViewed", func(t *testing.T) { rxViolationsViewed(t, env) })
		t.Run("Users", func(t *testing.T) { rxUsers(t, env) })
		t.Run("RaceMaxIPs", func(t *testing.T) { rxRace(t, env, restrict.PolicyIPs) })
		t.Run("RaceMaxSessions", func(t *testing.T) { rxRace(t, env, restrict.PolicySessions) })
		t.Run("RetentionTrimsViolations", func(t *testing.T) { rxRetention(t, env) })
	})
}

func rxMaxIPsBlock(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.limits = restrict.Limits{IPs: rxLimit(3, time.Hour, restrict.ActionBlock)}
	a := f.open(rxHit{tok: "a", at: 0, ip: rxIPA})
	f.open(rxHit{tok: "b", at: time.Minute, ip: rxIPB})
	f.open(rxHit{tok: "c", at: 2 * time.Minute, ip: rxIPC})

	res := f.refused(rxHit{tok: "d", at: 3 * time.Minute, ip: rxIPD}, restrict.PolicyIPs)
	if res.SessionID != "" {
		t.Errorf("refused new session has id %q", res.SessionID)
	}
	if len(res.Violations) != 1 {
		t.Fatalf("refusal reported %d violations, want 1", len(res.Violations))
	}
	want := rxWant{policy: restrict.PolicyIPs, limit: 3, observed: 4, ip: rxIPD, action: restrict.ActionBlock, time: f.at(3 * time.Minute)}
	rxCheckViolation(t, "reported", res.Violations[0], want)
	vs, total := f.violations("")
	if total != 1 || len(vs) != 1 {
		t.Fatalf("Violations: %d listed, total %d; want 1", len(vs), total)
	}
	rxCheckViolation(t, "stored", vs[0], want)
	if vs[0].ID != res.Violations[0].ID {
		t.Errorf("stored id %q, reported %q", vs[0].ID, res.Violations[0].ID)
	}

	// Existing IPs keep working, for the existing session and a new one.
	f.active(rxHit{tok: "a", at: 4 * time.Minute, ip: rxIPA}, a)
	f.open(rxHit{tok: "e", at: 5 * time.Minute, ip: rxIPA})
	// An existing session moving to a fourth IP is refused too, and
	// keeps working from its own IP.
	res = f.refused(rxHit{tok: "a", at: 6 * time.Minute, ip: rxIPD}, restrict.PolicyIPs)
	if res.SessionID != a || len(res.Violations) != 1 {
		t.Fatalf("moved session refusal: id %q, %d violations", res.SessionID, len(res.Violations))
	}
	rxCheckViolation(t, "moved session", res.Violations[0], rxWant{policy: restrict.PolicyIPs, limit: 3, observed: 4, ip: rxIPD, session: a, action: restrict.ActionBlock})
	f.active(rxHit{tok: "a", at: 7 * time.Minute, ip: rxIPA}, a)
	if s := f.sessionByID(a, 7*time.Minute); s.IP != rxIPA || !s.Active() {
		t.Errorf("session a after refusal: ip %q active %v", s.IP, s.Active())
	}
	vs, total = f.violations("")
	if total != 2 || vs[0].Session != a || vs[1].Session != "" {
		t.Errorf("violations newest first: total %d, sessions %q %q", total, vs[0].Session, vs[1].Session)
	}

	// Sliding window: B was last seen at 1m, so at 61m it still counts
	// and at 61m+1ms it has left the window.
	f.refused(rxHit{tok: "f", at: 61 * time.Minute, ip: rxIPF}, restrict.PolicyIPs)
	f.open(rxHit{tok: "f", at: 61*time.Minute + time.Millisecond, ip: rxIPF})
}

func rxMaxIPsLog(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.limits = restrict.Limits{IPs: rxLimit(1, time.Hour, restrict.ActionLog)}
	f.open(rxHit{tok: "a", ip: rxIPA})
	res := f.seen(rxHit{tok: "b", at: time.Minute, ip: rxIPB})
	if res.Status != store.StatusOpened || len(res.Violations) != 1 {
		t.Fatalf("log: status %s, %d violations; want opened with 1", res.Status, len(res.Violations))
	}
	rxCheckViolation(t, "log", res.Violations[0], rxWant{policy: restrict.PolicyIPs, limit: 1, observed: 2, ip: rxIPB, action: restrict.ActionLog})
	res = f.seen(rxHit{tok: "c", at: 2 * time.Minute, ip: rxIPC})
	if res.Status != store.StatusOpened || len(res.Violations) != 1 {
		t.Fatalf("log: status %s, %d violations; want opened with 1", res.Status, len(res.Violations))
	}
	rxCheckViolation(t, "log 2", res.Violations[0], rxWant{policy: restrict.PolicyIPs, limit: 1, observed: 3, ip: rxIPC, action: restrict.ActionLog})
	vs, total := f.violations("")
	if total != 2 || vs[0].Observed != 3 || vs[1].Observed != 2 {
		t.Errorf("recorded: total %d %+v", total, vs)
	}
	if got := len(f.sessions("active", 3*time.Minute)); got != 3 {
		t.Errorf("active sessions = %d, want 3", got)
	}
}

func rxMaxIPsPrefix(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.limits = restrict.Limits{IPs: rxLimit(2, time.Hour, restrict.ActionBlock)}
	f.prefix = restrict.Prefix{V4: 24, V6: 64}
	f.open(rxHit{tok: "a", at: 0, ip: "81.2.69.1"})
	f.open(rxHit{tok: "b", at: time.Minute, ip: "81.2.69.200"}) // same /24
	f.open(rxHit{tok: "c", at: 2 * time.Minute, ip: "2001:db8:1:2:a1b2:c3d4:e5f6:1"})
	f.open(rxHit{tok: "d", at: 3 * time.Minute, ip: "2001:db8:1:2:9999:8888:7777:6666"}) // privacy address, same /64
	res := f.refused(rxHit{tok: "e", at: 4 * time.Minute, ip: "81.2.70.1"}, restrict.PolicyIPs)
	rxCheckViolation(t, "other /24", res.Violations[0], rxWant{policy: restrict.PolicyIPs, limit: 2, observed: 3, ip: "81.2.70.1", action: restrict.ActionBlock})
	f.refused(rxHit{tok: "f", at: 5 * time.Minute, ip: "2001:db8:1:3::1"}, restrict.PolicyIPs)
	f.open(rxHit{tok: "g", at: 6 * time.Minute, ip: "81.2.69.77"})
	f.open(rxHit{tok: "h", at: 7 * time.Minute, ip: "2001:db8:1:2::abcd"})
}

func rxMaxDevicesBlock(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.limits = restrict.Limits{Devices: rxLimit(2, time.Hour, restrict.ActionBlock)}
	a := f.open(rxHit{tok: "a", at: 0, dev: "dev-1"})
	b := f.open(rxHit{tok: "b", at: time.Minute, dev: "dev-2"})
	res := f.refused(rxHit{tok: "c", at: 2 * time.Minute, dev: "dev-3"}, restrict.PolicyDevices)
	if res.NewDevice || len(res.Violations) != 1 {
		t.Fatalf("refused device: new device %v, %d violations", res.NewDevice, len(res.Violations))
	}
	rxCheckViolation(t, "third device", res.Violations[0], rxWant{policy: restrict.PolicyDevices, limit: 2, observed: 3, ip: rxIPA, device: "dev-3", action: restrict.ActionBlock})
	// Known devices keep working, with new tokens too.
	f.open(rxHit{tok: "d", at: 3 * time.Minute, dev: "dev-1"})
	f.active(rxHit{tok: "b", at: 3 * time.Minute, dev: "dev-2"}, b)
	// A session's token showing up in a third browser is refused.
	res = f.refused(rxHit{tok: "a", at: 4 * time.Minute, dev: "dev-3"}, restrict.PolicyDevices)
	if res.SessionID != a {
		t.Errorf("refusal of moved token names session %q, want %q", res.SessionID, a)
	}
	rxCheckViolation(t, "moved token", res.Violations[0], rxWant{policy: restrict.PolicyDevices, limit: 2, observed: 3, ip: rxIPA, device: "dev-3", session: a, action: restrict.ActionBlock})
	devs, err := env.Devices(f.ctx, f.realm, f.user)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range devs {
		ids = append(ids, d.ID)
	}
	if strings.Join(ids, ",") != "dev-1,dev-2" && strings.Join(ids, ",") != "dev-2,dev-1" {
		t.Errorf("devices = %v, want dev-1 and dev-2 only", ids)
	}
	// The window slides: dev-2 (last seen 3m) and dev-1 (3m) leave it
	// after 63m.
	f.refused(rxHit{tok: "e", at: 50 * time.Minute, dev: "dev-3"}, restrict.PolicyDevices)
	res = f.seen(rxHit{tok: "e", at: 64 * time.Minute, dev: "dev-3"})
	if res.Status != store.StatusOpened || !res.NewDevice {
		t.Errorf("after the window: %s/%q new device %v, want opened new device", res.Status, res.Reason, res.NewDevice)
	}
}

func rxMaxDevicesLog(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.limits = restrict.Limits{Devices: rxLimit(1, time.Hour, restrict.ActionLog)}
	f.open(rxHit{tok: "a", dev: "dev-1"})
	res := f.seen(rxHit{tok: "b", at: time.Minute, dev: "dev-2"})
	if res.Status != store.StatusOpened || !res.NewDevice || len(res.Violations) != 1 {
		t.Fatalf("log: %s new device %v, %d violations", res.Status, res.NewDevice, len(res.Violations))
	}
	rxCheckViolation(t, "log", res.Violations[0], rxWant{policy: restrict.PolicyDevices, limit: 1, observed: 2, ip: rxIPA, device: "dev-2", action: restrict.ActionLog})
	if _, total := f.violations(""); total != 1 {
		t.Errorf("violations total %d, want 1", total)
	}
}

func rxMaxSessionsBlock(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.limits = restrict.Limits{Sessions: rxLimit(2, 0, restrict.ActionBlock)}
	a := f.open(rxHit{tok: "a", at: 0})
	f.open(rxHit{tok: "b", at: time.Minute})
	res := f.refused(rxHit{tok: "c", at: 2 * time.Minute}, restrict.PolicySessions)
	rxCheckViolation(t, "third session", res.Violations[0], rxWant{policy: restrict.PolicySessions, limit: 2, observed: 3, ip: rxIPA, action: restrict.ActionBlock})
	f.active(rxHit{tok: "a", at: 3 * time.Minute}, a)
	if _, err := env.EndToken(f.ctx, f.realm, f.user, f.th("a"), store.EndLogout, false, f.at(4*time.Minute), f.p); err != nil {
		t.Fatal(err)
	}
	f.open(rxHit{tok: "c", at: 5 * time.Minute})
	if n := len(f.sessions("active", 5*time.Minute)); n != 2 {
		t.Errorf("active = %d, want 2", n)
	}
	// Idle sessions do not count.
	f.open(rxHit{tok: "d", at: 5*time.Minute + f.p.Idle + time.Second})
}

func rxMaxSessionsLog(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.limits = restrict.Limits{Sessions: rxLimit(2, 0, restrict.ActionLog)}
	f.open(rxHit{tok: "a", at: 0})
	f.open(rxHit{tok: "b", at: time.Minute})
	res := f.seen(rxHit{tok: "c", at: 2 * time.Minute})
	if res.Status != store.StatusOpened || len(res.Violations) != 1 || len(res.Closed) != 0 {
		t.Fatalf("log: %s, %d violations, %d closed", res.Status, len(res.Violations), len(res.Closed))
	}
	rxCheckViolation(t, "log", res.Violations[0], rxWant{policy: restrict.PolicySessions, limit: 2, observed: 3, ip: rxIPA, action: restrict.ActionLog})
	if n := len(f.sessions("active", 2*time.Minute)); n != 3 {
		t.Errorf("active = %d, want 3", n)
	}
}

func rxMaxSessionsEvict(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.limits = restrict.Limits{Sessions: rxLimit(2, 0, restrict.ActionEvictOldest)}
	a := f.open(rxHit{tok: "a", at: 0})
	b := f.open(rxHit{tok: "b", at: time.Minute})
	// a is used again: b is now the least recently used, though newer.
	f.active(rxHit{tok: "a", at: 2 * time.Minute}, a)
	res := f.seen(rxHit{tok: "c", at: 3 * time.Minute})
	if res.Status != store.StatusOpened {
		t.Fatalf("evict: status %s/%q, want opened", res.Status, res.Reason)
	}
	c := res.SessionID
	if len(res.Closed) != 1 || res.Closed[0].ID != b || res.Closed[0].EndReason != store.EndEvicted {
		t.Fatalf("evict closed %+v (violations %+v), want session b %s evicted", res.Closed, res.Violations, b)
	}
	if res.Closed[0].EndedAt == nil || !res.Closed[0].EndedAt.Equal(f.at(3*time.Minute)) {
		t.Errorf("evicted at %v, want %v", res.Closed[0].EndedAt, f.at(3*time.Minute))
	}
	if len(res.Violations) != 1 {
		t.Fatalf("%d violations, want 1", len(res.Violations))
	}
	rxCheckViolation(t, "evict", res.Violations[0], rxWant{policy: restrict.PolicySessions, limit: 2, observed: 3, ip: rxIPA, action: restrict.ActionEvictOldest})
	if s := f.sessionByID(b, 3*time.Minute); s.Active() || s.EndReason != store.EndEvicted {
		t.Errorf("session b: active %v reason %q", s.Active(), s.EndReason)
	}
	// The evicted token is refused within the revoke hold; the others work.
	res = f.refused(rxHit{tok: "b", at: 4 * time.Minute}, store.EndEvicted)
	if res.SessionID != b {
		t.Errorf("refusal names %q, want %q", res.SessionID, b)
	}
	f.refused(rxHit{tok: "b", at: 3*time.Minute + f.p.RevokeHold - time.Millisecond}, store.EndEvicted)
	f.active(rxHit{tok: "a", at: 5 * time.Minute}, a)
	f.active(rxHit{tok: "c", at: 5 * time.Minute}, c)
	if n := len(f.sessions("active", 5*time.Minute)); n != 2 {
		t.Errorf("active = %d, want 2", n)
	}
}

func rxOverrides(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.limits = restrict.Limits{IPs: rxLimit(1, time.Hour, restrict.ActionBlock)}
	other := f.user + "/other"
	override := restrict.Limits{IPs: rxLimit(3, time.Hour, restrict.ActionBlock)}
	if err := env.SetLimits(f.ctx, f.realm, f.user, override, f.p); err != nil {
		t.Fatal(err)
	}
	f.open(rxHit{tok: "a", ip: rxIPA})
	f.open(rxHit{tok: "b", at: time.Minute, ip: rxIPB})
	f.open(rxHit{tok: "c", at: 2 * time.Minute, ip: rxIPC})
	res := f.refused(rxHit{tok: "d", at: 3 * time.Minute, ip: rxIPD}, restrict.PolicyIPs)
	rxCheckViolation(t, "override", res.Violations[0], rxWant{policy: restrict.PolicyIPs, limit: 3, observed: 4, ip: rxIPD, action: restrict.ActionBlock})
	if s := f.summary("", 3*time.Minute); s.Limits == nil || s.Limits.IPs == nil || s.Limits.IPs.Max != 3 {
		t.Errorf("summary limits = %+v, want the override", s.Limits)
	}
	// Another user keeps the realm's default.
	f.open(rxHit{user: other, tok: "o1", ip: rxIPA})
	res = f.refused(rxHit{user: other, tok: "o2", at: time.Minute, ip: rxIPB}, restrict.PolicyIPs)
	if res.Violations[0].Limit != 1 {
		t.Errorf("other user's limit %d, want the realm's 1", res.Violations[0].Limit)
	}
	// An override of another policy only leaves max_ips at the default.
	if err := env.SetLimits(f.ctx, f.realm, f.user, restrict.Limits{Sessions: rxLimit(10, 0, "")}, f.p); err != nil {
		t.Fatal(err)
	}
	res = f.refused(rxHit{tok: "e", at: 4 * time.Minute, ip: rxIPE}, restrict.PolicyIPs)
	if res.Violations[0].Limit != 1 {
		t.Errorf("after sessions-only override: limit %d, want realm 1", res.Violations[0].Limit)
	}
	// Zero limits remove the overrides.
	if err := env.SetLimits(f.ctx, f.realm, f.user, restrict.Limits{}, f.p); err != nil {
		t.Fatal(err)
	}
	if s := f.summary("", 5*time.Minute); s.Limits != nil {
		t.Errorf("summary limits after removal = %+v, want nil", s.Limits)
	}
	res = f.refused(rxHit{tok: "f", at: 5 * time.Minute, ip: rxIPF}, restrict.PolicyIPs)
	if res.Violations[0].Limit != 1 {
		t.Errorf("after removal: limit %d, want 1", res.Violations[0].Limit)
	}
	// An override can also raise a limit the realm does not set.
	f2 := rxNew(t, env)
	f2.user += "/2"
	f2.limits = restrict.Limits{}
	if err := env.SetLimits(f2.ctx, f2.realm, f2.user, restrict.Limits{Sessions: rxLimit(1, 0, restrict.ActionBlock)}, f2.p); err != nil {
		t.Fatal(err)
	}
	f2.open(rxHit{tok: "a"})
	f2.refused(rxHit{tok: "b", at: time.Minute}, restrict.PolicySessions)
}

func rxExemption(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.limits = restrict.Limits{IPs: rxLimit(1, time.Hour, restrict.ActionBlock), Sessions: rxLimit(1, 0, restrict.ActionBlock)}
	f.open(rxHit{tok: "a", ip: rxIPA})
	f.refused(rxHit{tok: "b", at: time.Minute, ip: rxIPB}, restrict.PolicyIPs)
	if err := env.SetExempt(f.ctx, f.realm, f.user, true, f.p); err != nil {
		t.Fatal(err)
	}
	for i, ip := range []string{rxIPB, rxIPC, rxIPD} {
		res := f.seen(rxHit{tok: fmt.Sprint("x", i), at: time.Duration(2+i) * time.Minute, ip: ip, dev: fmt.Sprint("dev-x", i)})
		if res.Status != store.StatusOpened || len(res.Violations) != 0 {
			t.Errorf("exempt request %d: %s/%q with %d violations, want opened with none", i, res.Status, res.Reason, len(res.Violations))
		}
	}
	if _, total := f.violations(""); total != 1 {
		t.Errorf("history: %d violations, want the earlier 1 kept", total)
	}
	if s := f.summary("", 5*time.Minute); !s.Exempt || s.UnviewedViolations != 1 || s.ActiveSessions != 4 {
		t.Errorf("summary: exempt %v, unviewed %d, active %d; want true, 1, 4", s.Exempt, s.UnviewedViolations, s.ActiveSessions)
	}
	// Device blocks still apply to an exempt user.
	if _, err := env.SetDeviceBlocked(f.ctx, f.realm, f.user, "dev-1", true, f.at(6*time.Minute), f.p); err != nil {
		t.Fatal(err)
	}
	f.refused(rxHit{tok: "y", at: 7 * time.Minute, ip: rxIPA, dev: "dev-1"}, store.EndDeviceBlocked)
	// Exemption off: limits apply again.
	if err := env.SetExempt(f.ctx, f.realm, f.user, false, f.p); err != nil {
		t.Fatal(err)
	}
	f.refused(rxHit{tok: "z", at: 8 * time.Minute, ip: rxIPE, dev: "dev-z"}, restrict.PolicyIPs)
	if s := f.summary("", 8*time.Minute); s.Exempt {
		t.Error("summary still exempt")
	}
}

func rxDeviceBlock(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	if _, err := env.SetDeviceBlocked(f.ctx, f.realm, f.user, "dev-1", true, f.at(0), f.p); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("block for an unknown user: %v, want ErrNotFound", err)
	}
	a := f.open(rxHit{tok: "a", dev: "dev-1"})
	b := f.open(rxHit{tok: "b", at: time.Minute, dev: "dev-2"})
	if _, err := env.SetDeviceBlocked(f.ctx, f.realm, f.user, "dev-404", true, f.at(2*time.Minute), f.p); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("block of an unknown device: %v, want ErrNotFound", err)
	}
	closed, err := env.SetDeviceBlocked(f.ctx, f.realm, f.user, "dev-1", true, f.at(2*time.Minute), f.p)
	if err != nil {
		t.Fatal(err)
	}
	if len(closed) != 1 || closed[0].ID != a || closed[0].EndReason != store.EndDeviceBlocked {
		t.Fatalf("block closed %+v, want session a %s device_blocked", closed, a)
	}
	if s := f.sessionByID(a, 2*time.Minute); s.Active() || s.EndReason != store.EndDeviceBlocked {
		t.Errorf("session a: active %v reason %q", s.Active(), s.EndReason)
	}
	f.refused(rxHit{tok: "a", at: 3 * time.Minute, dev: "dev-1"}, store.EndDeviceBlocked)
	f.refused(rxHit{tok: "new", at: 3 * time.Minute, dev: "dev-1"}, store.EndDeviceBlocked)
	f.refused(rxHit{tok: "new", at: 3 * time.Minute, dev: "dev-1", login: true}, store.EndDeviceBlocked)
	f.active(rxHit{tok: "b", at: 3 * time.Minute, dev: "dev-2"}, b)
	devs, err := env.Devices(f.ctx, f.realm, f.user)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Blocked != (d.ID == "dev-1") {
			t.Errorf("device %s blocked = %v", d.ID, d.Blocked)
		}
	}
	// Unblocking restores access at once: the same token opens again.
	closed, err = env.SetDeviceBlocked(f.ctx, f.realm, f.user, "dev-1", false, f.at(4*time.Minute), f.p)
	if err != nil || len(closed) != 0 {
		t.Fatalf("unblock: %v, closed %d", err, len(closed))
	}
	a2 := f.open(rxHit{tok: "a", at: 5 * time.Minute, dev: "dev-1"})
	if a2 == a {
		t.Error("reopened session kept the blocked session's id")
	}
	f.open(rxHit{tok: "new", at: 5 * time.Minute, dev: "dev-1"})
	devs, _ = env.Devices(f.ctx, f.realm, f.user)
	for _, d := range devs {
		if d.Blocked {
			t.Errorf("device %s still blocked", d.ID)
		}
	}
}

func rxUsersList(t *testing.T, f *rxFx, req store.UsersRequest) ([]string, []*store.UserSummary, int) {
	t.Helper()
	req.Realm, req.Policy = f.realm, f.p
	list, total, err := f.env.Users(f.ctx, req)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.User)
	}
	return names, list, total
}

func rxViolationsViewed(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.limits = restrict.Limits{IPs: rxLimit(1, time.Hour, restrict.ActionBlock)}
	f.open(rxHit{tok: "a", ip: rxIPA})
	for i, ip := range []string{rxIPB, rxIPC, rxIPD} {
		f.refused(rxHit{tok: fmt.Sprint("x", i), at: time.Duration(1+i) * time.Minute, ip: ip}, restrict.PolicyIPs)
	}
	page, total, err := env.Violations(f.ctx, f.realm, f.user, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if total != 3 || len(page) != 2 || page[0].IP != rxIPD || page[1].IP != rxIPC {
		t.Fatalf("page 1: total %d, %d listed (%v)", total, len(page), page)
	}
	page2, total, err := env.Violations(f.ctx, f.realm, f.user, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if total != 3 || len(page2) != 1 || page2[0].IP != rxIPB {
		t.Fatalf("page 2: total %d, %+v", total, page2)
	}
	if _, err := env.MarkViewed(f.ctx, f.realm, f.user, "no-such-id"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MarkViewed(unknown id) = %v, want ErrNotFound", err)
	}
	left, err := env.MarkViewed(f.ctx, f.realm, f.user, page[1].ID)
	if err != nil || left != 2 {
		t.Fatalf("MarkViewed(one) = %d, %v; want 2 left", left, err)
	}
	// Marking the same one again changes nothing.
	if left, err := env.MarkViewed(f.ctx, f.realm, f.user, page[1].ID); err != nil || left != 2 {
		t.Errorf("MarkViewed(an already viewed one) = %d, %v; want 2 left", left, err)
	}
	all, _ := f.violations("")
	for _, v := range all {
		if v.Viewed != (v.ID == page[1].ID) {
			t.Errorf("violation %s (%s) viewed = %v", v.ID, v.IP, v.Viewed)
		}
	}
	if s := f.summary("", 4*time.Minute); s.UnviewedViolations != 2 {
		t.Errorf("unviewed = %d, want 2", s.UnviewedViolations)
	}
	names, _, _ := rxUsersList(t, f, store.UsersRequest{Unviewed: true, Now: f.at(4 * time.Minute)})
	if len(names) != 1 || names[0] != f.user {
		t.Errorf("Users(unviewed) before marking all = %q, want [%q]", names, f.user)
	}
	if left, err = env.MarkViewed(f.ctx, f.realm, f.user, ""); err != nil || left != 0 {
		t.Fatalf("MarkViewed(all) = %d, %v; want 0 left", left, err)
	}
	all, total = f.violations("")
	for _, v := range all {
		if !v.Viewed {
			t.Errorf("violation %s not viewed after marking all", v.ID)
		}
	}
	if total != 3 {
		t.Errorf("marking viewed removed violations: total %d", total)
	}
	if s := f.summary("", 4*time.Minute); s.UnviewedViolations != 0 {
		t.Errorf("unviewed = %d, want 0", s.UnviewedViolations)
	}
	// Marking all again, with none unviewed, changes nothing.
	if left, err := env.MarkViewed(f.ctx, f.realm, f.user, ""); err != nil || left != 0 {
		t.Errorf("MarkViewed(all, none unviewed) = %d, %v; want 0 left", left, err)
	}
	names, _, _ = rxUsersList(t, f, store.UsersRequest{Unviewed: true, Now: f.at(4 * time.Minute)})
	if len(names) != 0 {
		t.Errorf("Users(unviewed) after marking all = %q, want none", names)
	}
	// Viewed never changes a restriction: the IP is still refused, and
	// that is a new, unviewed violation.
	res := f.refused(rxHit{tok: "x0", at: 5 * time.Minute, ip: rxIPB}, restrict.PolicyIPs)
	if len(res.Violations) != 1 || res.Violations[0].Viewed {
		t.Errorf("new violation after marking: %+v", res.Violations)
	}
	if s := f.summary("", 5*time.Minute); s.UnviewedViolations != 1 {
		t.Errorf("unviewed after a new violation = %d, want 1", s.UnviewedViolations)
	}
	names, _, _ = rxUsersList(t, f, store.UsersRequest{Unviewed: true, Now: f.at(5 * time.Minute)})
	if len(names) != 1 {
		t.Errorf("Users(unviewed) after a new violation = %q", names)
	}
}

func rxUsers(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.limits = restrict.Limits{IPs: rxLimit(1, time.Hour, restrict.ActionBlock)}
	p := "list/"
	u1, u2, u3 := p+"one", p+"two", p+"three"
	f.open(rxHit{user: u1, tok: "1a", at: 0, ip: rxIPA})
	f.refused(rxHit{user: u1, tok: "1b", at: time.Minute, ip: rxIPB}, restrict.PolicyIPs)
	f.open(rxHit{user: u2, tok: "2a", at: 5 * time.Minute, dev: "dev-1"})
	f.open(rxHit{user: u2, tok: "2b", at: 6 * time.Minute, dev: "dev-2"})
	if err := env.SetExempt(f.ctx, f.realm, u3, true, f.p); err != nil {
		t.Fatal(err)
	}
	f.open(rxHit{user: u3, tok: "3a", at: 10 * time.Minute})
	f.open(rxHit{user: "zz-other", tok: "z", at: 20 * time.Minute})

	names, list, total := rxUsersList(t, f, store.UsersRequest{Prefix: p, Now: f.at(12 * time.Minute)})
	if total != 3 || strings.Join(names, ",") != strings.Join([]string{u3, u2, u1}, ",") {
		t.Fatalf("Users(prefix) = %q total %d, want [three two one] 3", names, total)
	}
	want := []store.UserSummary{
		{User: u3, LastActivity: f.at(10 * time.Minute), ActiveSessions: 1, Devices: 1, UnviewedViolations: 0, Exempt: true},
		{User: u2, LastActivity: f.at(6 * time.Minute), ActiveSessions: 2, Devices: 2},
		{User: u1, LastActivity: f.at(0), ActiveSessions: 1, Devices: 1, UnviewedViolations: 1},
	}
	for i, w := range want {
		g := list[i]
		if g.User != w.User || !g.LastActivity.Equal(w.LastActivity) || g.ActiveSessions != w.ActiveSessions ||
			g.Devices != w.Devices || g.UnviewedViolations != w.UnviewedViolations || g.Exempt != w.Exempt {
			t.Errorf("row %d = %+v, want %+v", i, *g, w)
		}
	}
	names, _, total = rxUsersList(t, f, store.UsersRequest{Prefix: p, Offset: 1, Limit: 1, Now: f.at(12 * time.Minute)})
	if total != 3 || len(names) != 1 || names[0] != u2 {
		t.Errorf("page 2 of 1 = %q total %d, want [%s] 3", names, total, u2)
	}
	names, _, _ = rxUsersList(t, f, store.UsersRequest{Now: f.at(21 * time.Minute)})
	if len(names) != 4 || names[0] != "zz-other" {
		t.Errorf("Users() = %q, want 4 starting with zz-other", names)
	}
	// At 36m+1s, one and two have been idle past 30m.
	names, _, total = rxUsersList(t, f, store.UsersRequest{Prefix: p, Active: true, Now: f.at(36*time.Minute + time.Second)})
	if total != 1 || len(names) != 1 || names[0] != u3 {
		t.Errorf("Users(active) = %q total %d, want [%s]", names, total, u3)
	}
	names, _, _ = rxUsersList(t, f, store.UsersRequest{Prefix: p, Unviewed: true, Now: f.at(12 * time.Minute)})
	if len(names) != 1 || names[0] != u1 {
		t.Errorf("Users(unviewed) = %q, want [%s]", names, u1)
	}
	names, _, _ = rxUsersList(t, f, store.UsersRequest{Prefix: p + "t", Now: f.at(12 * time.Minute)})
	if strings.Join(names, ",") != u3+","+u2 {
		t.Errorf("Users(prefix %q) = %q", p+"t", names)
	}
}

// rxRace: 50 first requests at once, 50 distinct IPs and tokens, limit 3:
// exactly 3 may open.
func rxRace(t *testing.T, env *rxEnv, policy string) {
	f := rxNew(t, env)
	switch policy {
	case restrict.PolicyIPs:
		f.limits = restrict.Limits{IPs: rxLimit(3, time.Hour, restrict.ActionBlock)}
	case restrict.PolicySessions:
		f.limits = restrict.Limits{Sessions: rxLimit(3, 0, restrict.ActionBlock)}
	}
	const n = 50
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		opened, refuse int
		reasons        = map[string]int{}
		start          = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := env.Seen(f.ctx, f.req(rxHit{tok: fmt.Sprint("race-", i), ip: fmt.Sprintf("203.0.113.%d", i+1), dev: fmt.Sprint("dev-", i%2)}))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("Seen %d: %v", i, err)
			case res.Status == store.StatusOpened:
				opened++
			case res.Status == store.StatusRefused:
				refuse++
				reasons[res.Reason]++
			default:
				t.Errorf("Seen %d: status %s", i, res.Status)
			}
		}()
	}
	close(start)
	wg.Wait()
	if opened != 3 || refuse != n-3 || reasons[policy] != n-3 {
		t.Errorf("opened %d, refused %d (%v); want 3 opened, %d refused for %s", opened, refuse, reasons, n-3, policy)
	}
	if got := len(f.sessions("active", 0)); got != 3 {
		t.Errorf("active sessions = %d, want 3", got)
	}
	if _, total := f.violations(""); total != n-3 {
		t.Errorf("violations = %d, want %d", total, n-3)
	}
}

func rxRetention(t *testing.T, env *rxEnv) {
	f := rxNew(t, env)
	f.p.Retention = 2 * time.Hour
	f.limits = restrict.Limits{IPs: rxLimit(1, 10*time.Minute, restrict.ActionBlock)}
	a := f.open(rxHit{tok: "a", ip: rxIPA})
	f.refused(rxHit{tok: "b", at: time.Minute, ip: rxIPB}, restrict.PolicyIPs)
	f.active(rxHit{tok: "a", at: 20 * time.Minute, ip: rxIPA}, a) // keeps the user alive
	// Still within retention: kept.
	f.open(rxHit{tok: "c", at: 2*time.Hour + 30*time.Second, ip: rxIPA})
	if _, total := f.violations(""); total != 1 {
		t.Fatalf("violation within retention: total %d, want 1", total)
	}
	// At 2h2m the violation (1m) is older than retention: trimmed at the
	// next Seen, and no longer counted as unviewed.
	f.open(rxHit{tok: "d", at: 2*time.Hour + 2*time.Minute, ip: rxIPA})
	if vs, total := f.violations(""); total != 0 || len(vs) != 0 {
		t.Errorf("violation past retention: total %d %+v, want trimmed", total, vs)
	}
	if s := f.summary("", 2*time.Hour+2*time.Minute); s.UnviewedViolations != 0 {
		t.Errorf("unviewed = %d after trim, want 0", s.UnviewedViolations)
	}
	names, _, _ := rxUsersList(t, f, store.UsersRequest{Unviewed: true, Now: f.at(2*time.Hour + 2*time.Minute)})
	if len(names) != 0 {
		t.Errorf("Users(unviewed) after trim = %q", names)
	}
}

// rxCheckTTLs fails for every key of keys with no TTL or one longer than max.
func rxCheckTTLs(t *testing.T, ctx context.Context, rdb redis.UniversalClient, keys []string, max time.Duration) {
	t.Helper()
	for _, k := range keys {
		pttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatalf("PTTL %q: %v", k, err)
		}
		if pttl <= 0 || pttl > max {
			t.Errorf("key %q has PTTL %v, want in (0, %v]", k, pttl, max)
		}
	}
}

// TestRestrictRedisTTLs: whatever the restriction code writes expires with
// retention, violations of a refused request included.
func TestRestrictRedisTTLs(t *testing.T) {
	rxForEachRedis(t, func(t *testing.T, env *rxEnv) {
		f := rxNew(t, env)
		f.limits = restrict.Limits{IPs: rxLimit(1, time.Hour, restrict.ActionBlock)}
		f.open(rxHit{tok: "a", ip: rxIPA})
		// A refused request records the user's first violation.
		f.refused(rxHit{tok: "b", at: time.Minute, ip: rxIPB}, restrict.PolicyIPs)
		tag := redisstore.Keys(f.realm, f.user).Tag
		all, err := env.scan(f.ctx, "*")
		if err != nil {
			t.Fatal(err)
		}
		var user []string
		for _, k := range all {
			if strings.Contains(k, tag) {
				user = append(user, k)
			}
		}
		if len(user) < 8 {
			t.Fatalf("only %d user keys: %q", len(user), user)
		}
		t.Run("user keys", func(t *testing.T) { rxCheckTTLs(t, f.ctx, env.rdb, user, f.p.Retention) })
		// The realm's indexes hold user ids and have no TTL of their own:
		// the sweep drops users inactive for the retention.
		t.Run("realm indexes trimmed by the sweep", func(t *testing.T) {
			realmKeys := redisstore.Keys(f.realm, f.user).Realm
			usersKey, flaggedKey := realmKeys[0].Key, realmKeys[1].Key
			for _, k := range []string{usersKey, flaggedKey} {
				if _, err := env.rdb.ZScore(f.ctx, k, f.user).Result(); err != nil {
					t.Fatalf("before the sweep, %s does not hold the user: %v", k, err)
				}
			}
			if _, err := env.SweepIdle(f.ctx, f.realm, f.at(-time.Hour), f.at(f.p.Retention+2*time.Minute), f.p); err != nil {
				t.Fatal(err)
			}
			if _, err := env.rdb.ZScore(f.ctx, usersKey, f.user).Result(); !errors.Is(err, redis.Nil) {
				t.Errorf("users index still holds the user a retention after the violation (err %v)", err)
			}
			if _, err := env.rdb.ZScore(f.ctx, flaggedKey, f.user).Result(); !errors.Is(err, redis.Nil) {
				t.Errorf("flagged index still holds the user a retention after the violation (err %v)", err)
			}
		})
	})
}

// TestRestrictTrackerUserOverride: a per-user max_ips override must apply
// even when the realm sets no max_ips default.
func TestRestrictTrackerUserOverride(t *testing.T) {
	ctx := context.Background()
	clock := rxNewClock(time.Now().UTC().Truncate(time.Millisecond))
	tr := rxTracker(t, Config{Store: redisstore.NewMemory(), Policy: rxPolicy, Now: clock.Now})
	if err := tr.SetLimits(ctx, "r", "alice", restrict.Limits{IPs: rxLimit(1, time.Hour, restrict.ActionBlock)}); err != nil {
		t.Fatal(err)
	}
	res, err := tr.Observe(ctx, Request{Realm: "r", Token: "t1", User: "alice", IP: rxIPA, DeviceID: "dev-1"})
	if err != nil || !res.New {
		t.Fatalf("first: %+v %v", res, err)
	}
	clock.Add(time.Minute)
	res, err = tr.Observe(ctx, Request{Realm: "r", Token: "t2", User: "alice", IP: rxIPB, DeviceID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Refused || res.Reason != restrict.PolicyIPs {
		t.Errorf("second IP with a user override max_ips 1 and no realm default: refused %v reason %q, want refused max_ips", res.Refused, res.Reason)
	}
	// With a realm default (any), the same override works.
	tr2 := rxTracker(t, Config{Store: redisstore.NewMemory(), Policy: rxPolicy, Now: clock.Now,
		Limits: restrict.Limits{IPs: rxLimit(50, time.Hour, restrict.ActionBlock)}})
	if err := tr2.SetLimits(ctx, "r", "alice", restrict.Limits{IPs: rxLimit(1, time.Hour, restrict.ActionBlock)}); err != nil {
		t.Fatal(err)
	}
	if res, _ := tr2.Observe(ctx, Request{Realm: "r", Token: "t1", User: "alice", IP: rxIPA, DeviceID: "dev-1"}); !res.New {
		t.Fatalf("first: %+v", res)
	}
	if res, _ := tr2.Observe(ctx, Request{Realm: "r", Token: "t2", User: "alice", IP: rxIPB, DeviceID: "dev-1"}); !res.Refused || res.Reason != restrict.PolicyIPs {
		t.Errorf("with a realm default: %+v, want refused max_ips", res)
	}
}

// rxClock is an injectable clock.
type rxClock struct {
	mu  sync.Mutex
	now time.Time
}

func rxNewClock(t time.Time) *rxClock { return &rxClock{now: t} }

func (c *rxClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *rxClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *rxClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// rxTracker makes a tracker (not started) with the rx keyring.
func rxTracker(t *testing.T, cfg Config) *Tracker {
	t.Helper()
	if cfg.Keys == nil {
		cfg.Keys = rxKeyring(t)
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
