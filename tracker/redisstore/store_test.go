package redisstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
	"github.com/caddy-sessions/caddy-sessions/restrict"
)

// suitePolicy is the policy of the conformance suite. Retention is long
// compared to the wall-clock runtime, so Redis TTLs (which count real time)
// never expire anything the suite still needs.
var suitePolicy = store.Policy{
	Idle:       30 * time.Minute,
	Retention:  24 * time.Hour,
	Refresh:    time.Minute,
	RevokeHold: 10 * time.Minute,
}

const testSecret = "test secret: 0123456789abcdef"

func testKeyring(tb testing.TB) *tracker.Keyring {
	tb.Helper()
	k, err := tracker.NewKeyring([]byte(testSecret))
	if err != nil {
		tb.Fatalf("NewKeyring: %v", err)
	}
	return k
}

// redisTestStore is a Store plus what the suite needs to inspect the
// server behind it: a SCAN over every master.
type redisTestStore struct {
	*Store
	scan    func(ctx context.Context, pattern string) ([]string, error)
	cluster bool
}

func TestMemoryStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) store.Store { return NewMemory() })
}

func TestRedisStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) store.Store {
		srv := redistest.Start(t)
		st := New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
		t.Cleanup(func() { _ = st.Close() })
		return &redisTestStore{Store: st, scan: srv.ScanAll}
	})
}

func TestRedisClusterStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) store.Store {
		c := redistest.StartCluster(t)
		st := New(redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs}))
		t.Cleanup(func() { _ = st.Close() })
		return &redisTestStore{Store: st, scan: c.ScanAll, cluster: true}
	})
}

// storeSuite is shared by the subtests of one run: one store, one base
// time. Every subtest uses its own realm and user, so they do not interfere.
type storeSuite struct {
	s    store.Store
	keys *tracker.Keyring
	base time.Time
	p    store.Policy

	mu     sync.Mutex
	tokens []string // every raw token handed to the store (hashed)
	users  []string // every user id used
}

func newStoreSuite(s store.Store, keys *tracker.Keyring) *storeSuite {
	return &storeSuite{s: s, keys: keys, base: time.Now().UTC().Truncate(time.Millisecond), p: suitePolicy}
}

func (ss *storeSuite) addToken(raw string) {
	ss.mu.Lock()
	ss.tokens = append(ss.tokens, raw)
	ss.mu.Unlock()
}

func (ss *storeSuite) addUser(u string) {
	ss.mu.Lock()
	ss.users = append(ss.users, u)
	ss.mu.Unlock()
}

// fx is one subtest's view: its realm, its (default) user, helpers.
type fx struct {
	*storeSuite
	t     *testing.T
	ctx   context.Context
	realm string
	user  string
}

func (ss *storeSuite) fixture(t *testing.T) *fx {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	f := &fx{storeSuite: ss, t: t, ctx: ctx, realm: "realm@" + t.Name(), user: "user@" + t.Name() + " ü"}
	ss.addUser(f.user)
	return f
}

func (f *fx) at(d time.Duration) time.Time { return f.base.Add(d) }

// raw is the raw token named name in this subtest: it holds characters that
// never occur in hashes or key names, so a leak is unmistakable.
func (f *fx) raw(name string) string { return "tok@" + f.t.Name() + "#" + name }

// th is the token hash of the token named name.
func (f *fx) th(name string) string {
	raw := f.raw(name)
	f.addToken(raw)
	return f.keys.TokenHash(f.realm, raw)
}

type seenOpt func(*store.SeenRequest)

func withIP(ip string) seenOpt {
	return func(r *store.SeenRequest) { r.New.IP, r.Device.LastIP = ip, ip }
}

func withDevice(id string) seenOpt {
	return func(r *store.SeenRequest) { r.New.DeviceID, r.Device.ID = id, id }
}

func withAgent(a store.Agent) seenOpt {
	return func(r *store.SeenRequest) { r.New.Agent, r.Device.Agent = a, a }
}

func withLocation(l store.Location) seenOpt {
	return func(r *store.SeenRequest) { r.New.Location, r.Device.Location = l, l }
}

func asUser(u string) seenOpt {
	return func(r *store.SeenRequest) { r.User, r.New.User, r.Device.User = u, u, u }
}

func withLogin() seenOpt { return func(r *store.SeenRequest) { r.Login = true } }

var (
	testAgent = store.Agent{Browser: "Firefox", BrowserVersion: "125.0", OS: "Linux", DeviceFamily: "Other", DeviceType: "desktop"}
	testLat   = 51.51
	testLon   = -0.09
	testLoc   = store.Location{City: "London", Region: "England", Country: "United Kingdom", CountryCode: "GB",
		TimeZone: "Europe/London", Latitude: &testLat, Longitude: &testLon}
)

const (
	ip1 = "198.51.100.1"
	ip2 = "203.0.113.9"
)

// req builds the SeenRequest the tracker would send for token name at base+at.
func (f *fx) req(name string, at time.Duration, opts ...seenOpt) store.SeenRequest {
	now := f.at(at)
	th := f.th(name)
	r := store.SeenRequest{
		Realm: f.realm, User: f.user, TokenHash: th, Now: now, Policy: f.p,
		New: &store.Session{
			ID: f.keys.SessionID(th, now), Realm: f.realm, User: f.user, StartedAt: now, LastSeen: now,
			IP: ip1, DeviceID: "dev-1", Agent: testAgent, Location: testLoc,
		},
		Device: &store.Device{ID: "dev-1", User: f.user, FirstSeen: now, LastSeen: now, Agent: testAgent, LastIP: ip1, Location: testLoc},
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func (f *fx) seen(name string, at time.Duration, opts ...seenOpt) store.SeenResult {
	f.t.Helper()
	res, err := f.s.Seen(f.ctx, f.req(name, at, opts...))
	if err != nil {
		f.t.Fatalf("Seen(%s, +%v): %v", name, at, err)
	}
	return res
}

// open sees a token that must open a new session and returns its id.
func (f *fx) open(name string, at time.Duration, opts ...seenOpt) string {
	f.t.Helper()
	res := f.seen(name, at, opts...)
	if res.Status != store.StatusOpened {
		f.t.Fatalf("Seen(%s, +%v) status = %q, want %q", name, at, res.Status, store.StatusOpened)
	}
	return res.SessionID
}

func (f *fx) listAs(user, state string, at time.Duration, offset, limit int) ([]*store.Session, int) {
	f.t.Helper()
	got, total, err := f.s.Sessions(f.ctx, store.ListRequest{
		Realm: f.realm, User: user, State: state, Offset: offset, Limit: limit, Now: f.at(at), Policy: f.p,
	})
	if err != nil {
		f.t.Fatalf("Sessions(%s): %v", state, err)
	}
	return got, total
}

func (f *fx) list(state string, at time.Duration) []*store.Session {
	f.t.Helper()
	got, total := f.listAs(f.user, state, at, 0, 0)
	if total != len(got) {
		f.t.Fatalf("Sessions(%s) total = %d, but %d sessions returned without a limit", state, total, len(got))
	}
	return got
}

// session finds one session by id in the "all" list.
func (f *fx) session(id string, at time.Duration) *store.Session {
	f.t.Helper()
	for _, s := range f.list("all", at) {
		if s.ID == id {
			return s
		}
	}
	f.t.Fatalf("session %s not listed", id)
	return nil
}

func (f *fx) devices() []*store.Device {
	f.t.Helper()
	d, err := f.s.Devices(f.ctx, f.realm, f.user)
	if err != nil {
		f.t.Fatalf("Devices: %v", err)
	}
	return d
}

func ids(ss []*store.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func sameIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// wantEnded checks that s ended at at for reason.
func wantEnded(t *testing.T, s *store.Session, reason string, at time.Time) {
	t.Helper()
	if s == nil {
		t.Fatalf("session is nil, want one ended (%s)", reason)
	}
	if s.EndedAt == nil {
		t.Fatalf("session %s is active, want ended (%s)", s.ID, reason)
	}
	if s.EndReason != reason {
		t.Errorf("session %s end reason = %q, want %q", s.ID, s.EndReason, reason)
	}
	wantTime(t, "session "+s.ID+" EndedAt", *s.EndedAt, at)
}

func runStoreSuite(t *testing.T, newStore func(t *testing.T) store.Store) {
	ss := newStoreSuite(newStore(t), testKeyring(t))
	p := ss.p

	t.Run("Ping", func(t *testing.T) {
		f := ss.fixture(t)
		if err := f.s.Ping(f.ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})

	t.Run("SeenReportsPriorWhenMoved", func(t *testing.T) {
		f := ss.fixture(t)
		id := f.open("a", 0)
		if res := f.seen("a", time.Minute); res.Prior != nil {
			t.Fatalf("same IP and device: Prior = %+v, want nil", res.Prior)
		}
		res := f.seen("a", 2*time.Minute, withIP(ip2))
		if res.Prior == nil || res.Prior.ID != id || res.Prior.IP != ip1 || res.Prior.DeviceID != "dev-1" ||
			res.Prior.Location.City != "London" || res.Prior.Agent.Browser != "Firefox" {
			t.Fatalf("moved to another IP: Prior = %+v, want the session as it was (ip1, dev-1, London, Firefox)", res.Prior)
		}
		res = f.seen("a", 3*time.Minute, withIP(ip2), withDevice("dev-thief"))
		if res.Prior == nil || res.Prior.DeviceID != "dev-1" || res.Prior.IP != ip2 || res.DeviceID != "dev-thief" {
			t.Fatalf("on another device: Prior = %+v, device %q; want the session on dev-1 at ip2, the request on dev-thief", res.Prior, res.DeviceID)
		}
		// After the session idled out, the token again: a new session,
		// the old one its prior; at a login, none.
		res = f.seen("a", 3*time.Minute+p.Idle+time.Second, withIP(ip1), withDevice("dev-thief"))
		if res.Status != store.StatusOpened || res.SessionID == id || res.Prior == nil || res.Prior.ID != id || res.Prior.DeviceID != "dev-1" {
			t.Fatalf("the token after its session idled out: %s %s, Prior = %+v; want a new session with %s as its prior", res.Status, res.SessionID, res.Prior, id)
		}
		f.open("b", 0)
		f.seen("b", p.Idle+time.Minute, withLogin())
		if res := f.seen("b", p.Idle+2*time.Minute, withLogin()); res.Prior != nil {
			t.Fatalf("a login: Prior = %+v, want none", res.Prior)
		}
	})

	t.Run("RiskRecordedListedAndJoined", func(t *testing.T) {
		f := ss.fixture(t)
		id := f.open("a", 0)
		rec := func(n int, sig, sid, dev string) store.RiskRecord {
			return store.RiskRecord{ID: fmt.Sprintf("r%03d", n), At: f.at(time.Duration(n) * time.Second), Signal: sig, Action: "log",
				SessionID: sid, DeviceID: dev, IP: ip2, Location: testLoc, Evidence: []byte(`{"distance_km":8900}`)}
		}
		for i, c := range []struct {
			r    store.RiskRecord
			want bool
		}{
			{rec(1, "cookie_moved", id, "dev-thief"), true},
			{rec(2, "cookie_moved", id, "dev-thief"), false}, // the session and the device have it
			{rec(5, "cookie_moved", id, "dev-other"), true},  // the session on yet another device
			{rec(3, "impossible_travel", id, "dev-thief"), true},
			{rec(4, "new_device", "", "dev-2"), true},
		} {
			ok, err := f.s.RecordRisk(f.ctx, f.realm, f.user, c.r, p)
			if err != nil || ok != c.want {
				t.Fatalf("RecordRisk #%d = %v, %v; want %v", i, ok, err, c.want)
			}
		}
		list, total, err := f.s.Risks(f.ctx, f.realm, f.user, 0, 10)
		if err != nil || total != 4 || len(list) != 4 || list[0].ID != "r005" || list[3].ID != "r001" {
			t.Fatalf("Risks = %d of %d (%v), want r005, r004, r003, r001", len(list), total, err)
		}
		if one, err := f.s.Risk(f.ctx, f.realm, f.user, "r003"); err != nil || one.Signal != "impossible_travel" {
			t.Errorf("Risk(r003) = %+v, %v", one, err)
		}
		if _, err := f.s.Risk(f.ctx, f.realm, f.user, "r999"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Risk(unknown) error = %v, want ErrNotFound", err)
		}
		list = list[1:]
		if list[2].Signal != "cookie_moved" || list[2].Location.City != "London" || string(list[2].Evidence) != `{"distance_km":8900}` || !list[2].At.Equal(f.at(time.Second)) {
			t.Errorf("Risks kept %+v, not what was recorded", list[2])
		}
		if page, total, _ := f.s.Risks(f.ctx, f.realm, f.user, 2, 1); total != 4 || len(page) != 1 || page[0].ID != "r003" {
			t.Errorf("Risks page 3 of size 1 = %+v (total %d), want r003", page, total)
		}
		if res := f.seen("a", 30*time.Second); strings.Join(res.Risk, ",") != "cookie_moved,impossible_travel" {
			t.Errorf("Seen on the session: Risk = %q, want cookie_moved,impossible_travel", res.Risk)
		}
		if got := f.session(id, time.Minute).Risk; strings.Join(got, ",") != "cookie_moved,impossible_travel" {
			t.Errorf("session risk = %q, want cookie_moved,impossible_travel", got)
		}
		// The request's device carries what was raised on it; the
		// session's own device nothing.
		f.seen("b", time.Minute, withDevice("dev-thief"))
		f.open("c", time.Minute, withDevice("dev-2"))
		byID := map[string][]string{}
		for _, d := range f.devices() {
			byID[d.ID] = d.Risk
		}
		if strings.Join(byID["dev-thief"], ",") != "cookie_moved,impossible_travel" || strings.Join(byID["dev-2"], ",") != "new_device" || len(byID["dev-1"]) != 0 {
			t.Errorf("device risk = %v", byID)
		}
		// Only the newest RiskCap are kept.
		for n := 10; n < 10+store.RiskCap; n++ {
			if _, err := f.s.RecordRisk(f.ctx, f.realm, f.user, rec(n, "new_device", "", "dev-2"), p); err != nil {
				t.Fatal(err)
			}
		}
		list, total, _ = f.s.Risks(f.ctx, f.realm, f.user, 0, 2*store.RiskCap)
		if total != store.RiskCap || len(list) != store.RiskCap || list[len(list)-1].ID != "r010" {
			t.Errorf("after %d more: %d kept (total %d), oldest %s; want the newest %d", store.RiskCap, len(list), total, list[len(list)-1].ID, store.RiskCap)
		}
		// Erase takes them too.
		if _, err := f.s.Erase(f.ctx, f.realm, f.user); err != nil {
			t.Fatal(err)
		}
		if list, total, _ := f.s.Risks(f.ctx, f.realm, f.user, 0, 10); total != 0 || len(list) != 0 {
			t.Errorf("after Erase: %d risk findings left", total)
		}
	})

	t.Run("ReportAndClaim", func(t *testing.T) {
		f := ss.fixture(t)
		id := f.open("a", 0)
		v, err := f.s.Report(f.ctx, f.realm, f.user, restrict.Violation{Time: f.at(time.Minute), IP: ip2, Location: "Changchun, China", Device: "dev-thief", Session: id, Action: "revoke"}, p)
		if err != nil || v.ID == "" || v.Policy != "reported" || v.Session != id || v.Device != "dev-thief" || v.Viewed {
			t.Fatalf("Report = %+v, %v", v, err)
		}
		list, total, err := f.s.Violations(f.ctx, f.realm, f.user, 0, 10)
		if err != nil || total != 1 || list[0].ID != v.ID || list[0].Location != "Changchun, China" || !list[0].Time.Equal(f.at(time.Minute)) {
			t.Fatalf("Violations = %+v (%d, %v)", list, total, err)
		}
		if u, _ := f.s.User(f.ctx, f.realm, f.user, f.at(time.Minute), p); u == nil || u.UnviewedViolations != 1 {
			t.Errorf("user summary after a report: %+v, want 1 unviewed violation", u)
		}
		once := "once@" + t.Name()
		if used, err := f.s.Claimed(f.ctx, once); used || err != nil {
			t.Fatalf("Claimed before any claim = %v, %v", used, err)
		}
		if ok, err := f.s.Claim(f.ctx, once, time.Hour); !ok || err != nil {
			t.Fatalf("first Claim = %v, %v", ok, err)
		}
		if ok, err := f.s.Claim(f.ctx, once, time.Hour); ok || err != nil {
			t.Fatalf("second Claim = %v, %v; want false", ok, err)
		}
		if used, _ := f.s.Claimed(f.ctx, once); !used {
			t.Error("Claimed after a claim = false")
		}
		if err := f.s.Release(f.ctx, once); err != nil {
			t.Fatal(err)
		}
		if ok, err := f.s.Claim(f.ctx, once, time.Hour); !ok || err != nil {
			t.Errorf("Claim after Release = %v, %v; want true", ok, err)
		}
	})

	t.Run("SeenOpensThenFindsSession", func(t *testing.T) {
		f := ss.fixture(t)
		req := f.req("a", 0)
		res, err := f.s.Seen(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != store.StatusOpened || !res.NewDevice || res.SessionID != req.New.ID || len(res.Closed) != 0 {
			t.Fatalf("first Seen = %+v, want opened with new device and id %s", res, req.New.ID)
		}
		wantTime(t, "StartedAt", res.StartedAt, f.base)
		wantTime(t, "LastSeen", res.LastSeen, f.base)

		again := f.seen("a", 10*time.Second)
		if again.Status != store.StatusActive || again.SessionID != res.SessionID || again.NewDevice || len(again.Closed) != 0 {
			t.Fatalf("second Seen = %+v, want active %s", again, res.SessionID)
		}
		wantTime(t, "StartedAt", again.StartedAt, f.base)

		all := f.list("all", 20*time.Second)
		if len(all) != 1 {
			t.Fatalf("listed %d sessions, want 1", len(all))
		}
		s := all[0]
		if s.ID != res.SessionID || s.Realm != f.realm || s.User != f.user || !s.Active() || s.EndReason != "" ||
			s.IP != ip1 || s.DeviceID != "dev-1" || s.Agent != testAgent {
			t.Errorf("listed session = %+v", s)
		}
		wantTime(t, "listed StartedAt", s.StartedAt, f.base)
		if s.Location.City != "London" || s.Location.CountryCode != "GB" || s.Location.TimeZone != "Europe/London" ||
			s.Location.Latitude == nil || *s.Location.Latitude != testLat || s.Location.Longitude == nil || *s.Location.Longitude != testLon {
			t.Errorf("listed location = %+v", s.Location)
		}
	})

	t.Run("SeenTakesTimesFromNow", func(t *testing.T) {
		// The contract (store.go) has the caller fill in ID, IP, device,
		// agent and location of New, not its times: the store opens the
		// session at req.Now.
		f := ss.fixture(t)
		req := f.req("a", 0)
		req.New.StartedAt, req.New.LastSeen = time.Time{}, time.Time{}
		req.Device.FirstSeen, req.Device.LastSeen = time.Time{}, time.Time{}
		res, err := f.s.Seen(f.ctx, req)
		if err != nil || res.Status != store.StatusOpened {
			t.Fatalf("Seen = %+v, %v; want opened", res, err)
		}
		s := f.session(res.SessionID, time.Second)
		wantTime(t, "StartedAt", s.StartedAt, f.base)
		wantTime(t, "LastSeen", s.LastSeen, f.base)
		if d := f.devices(); len(d) != 1 {
			t.Errorf("%d devices, want 1", len(d))
		} else {
			wantTime(t, "device FirstSeen", d[0].FirstSeen, f.base)
			wantTime(t, "device LastSeen", d[0].LastSeen, f.base)
		}
		if again := f.seen("a", time.Second); again.Status != store.StatusActive || again.SessionID != res.SessionID {
			t.Errorf("Seen one second later = %+v, want active %s", again, res.SessionID)
		}
	})

	t.Run("LastSeenAdvancesOnlyAfterRefresh", func(t *testing.T) {
		f := ss.fixture(t)
		id := f.open("a", 0)
		for _, c := range []struct {
			at, want time.Duration
		}{
			{30 * time.Second, 0},
			{p.Refresh - time.Millisecond, 0},
			{p.Refresh, p.Refresh},
			{p.Refresh + 30*time.Second, p.Refresh},
			{2*p.Refresh + 5*time.Second, 2*p.Refresh + 5*time.Second},
		} {
			res := f.seen("a", c.at)
			if res.Status != store.StatusActive || res.SessionID != id {
				t.Fatalf("Seen(+%v) = %+v, want active %s", c.at, res, id)
			}
			wantTime(t, fmt.Sprintf("result LastSeen at +%v", c.at), res.LastSeen, f.at(c.want))
			wantTime(t, fmt.Sprintf("listed LastSeen at +%v", c.at), f.session(id, c.at).LastSeen, f.at(c.want))
		}
		if d := f.devices(); len(d) != 1 || !d[0].LastSeen.Equal(f.at(2*p.Refresh+5*time.Second)) {
			t.Errorf("device not refreshed with the session: %+v", d)
		}
	})

	t.Run("IPChangeUpdatesSession", func(t *testing.T) {
		f := ss.fixture(t)
		id := f.open("a", 0, withIP(ip1))
		res := f.seen("a", 10*time.Second, withIP(ip2))
		if res.Status != store.StatusActive || res.SessionID != id {
			t.Fatalf("Seen from new IP = %+v, want active %s", res, id)
		}
		s := f.session(id, 11*time.Second)
		if s.IP != ip2 {
			t.Errorf("session IP = %q, want %q", s.IP, ip2)
		}
		// The IP change is written, but it is no refresh.
		wantTime(t, "LastSeen", s.LastSeen, f.base)
		if d := f.devices(); len(d) != 1 || d[0].LastIP != ip2 {
			t.Errorf("device last IP not updated: %+v", d)
		}
	})

	t.Run("IdleOpensNewSession", func(t *testing.T) {
		f := ss.fixture(t)
		old := f.open("a", 0)
		// exactly Idle is not past Idle
		edge := f.open("b", 0)
		if res := f.seen("b", p.Idle); res.Status != store.StatusActive || res.SessionID != edge {
			t.Errorf("Seen exactly Idle later = %+v, want active %s", res, edge)
		}

		res := f.seen("a", p.Idle+time.Second)
		if res.Status != store.StatusOpened || res.SessionID == old {
			t.Fatalf("Seen after idle = %+v, want a new session", res)
		}
		if len(res.Closed) != 1 || res.Closed[0].ID != old {
			t.Fatalf("Closed = %v, want [%s]", res.Closed, old)
		}
		c := res.Closed[0]
		wantEnded(t, c, store.EndIdle, f.base)
		wantTime(t, "closed LastSeen", c.LastSeen, f.base)
		if c.User != f.user || c.Realm != f.realm || c.Agent != testAgent || c.IP != ip1 {
			t.Errorf("closed session lost fields: %+v", c)
		}
		wantEnded(t, f.session(old, p.Idle+2*time.Second), store.EndIdle, f.base)
		if act := f.list("active", p.Idle+2*time.Second); !sameIDs(ids(act), []string{res.SessionID, edge}) {
			t.Errorf("active = %v, want [%s %s]", ids(act), res.SessionID, edge)
		}
	})

	t.Run("LoginReplacesActiveSession", func(t *testing.T) {
		f := ss.fixture(t)
		old := f.open("a", 0)
		res := f.seen("a", 5*time.Minute, withLogin())
		if res.Status != store.StatusOpened || res.SessionID == old || res.NewDevice {
			t.Fatalf("login Seen = %+v, want a new session on a known device", res)
		}
		if len(res.Closed) != 1 || res.Closed[0].ID != old {
			t.Fatalf("Closed = %v, want [%s]", res.Closed, old)
		}
		c := res.Closed[0]
		wantEnded(t, c, store.EndReplaced, f.at(5*time.Minute))
		// The closed record went through the store's own encoding (cjson
		// on Redis): every field must survive.
		if c.Agent != testAgent || c.Location.City != "London" || c.Location.Latitude == nil ||
			*c.Location.Latitude != testLat || c.Location.Longitude == nil || *c.Location.Longitude != testLon {
			t.Errorf("replaced session lost fields: %+v", c)
		}
		if next := f.seen("a", 6*time.Minute); next.Status != store.StatusActive || next.SessionID != res.SessionID {
			t.Errorf("Seen after login = %+v, want active %s", next, res.SessionID)
		}
		if act := f.list("active", 6*time.Minute); !sameIDs(ids(act), []string{res.SessionID}) {
			t.Errorf("active = %v, want [%s]", ids(act), res.SessionID)
		}
	})

	t.Run("LogoutEndsTokenSession", func(t *testing.T) {
		f := ss.fixture(t)
		old := f.open("a", 0)
		s, err := f.s.EndToken(f.ctx, f.realm, f.user, f.th("a"), store.EndLogout, false, f.at(2*time.Minute), p)
		if err != nil {
			t.Fatal(err)
		}
		if s == nil || s.ID != old {
			t.Fatalf("EndToken = %+v, want session %s", s, old)
		}
		wantEnded(t, s, store.EndLogout, f.at(2*time.Minute))
		wantEnded(t, f.session(old, 2*time.Minute), store.EndLogout, f.at(2*time.Minute))

		// Logout is final at the proxy: the token stays refused...
		if res := f.seen("a", 3*time.Minute); res.Status != store.StatusRefused || res.Reason != store.EndLogout {
			t.Fatalf("Seen after logout = %+v, want refused as logged out", res)
		}
		// ...until a login on it (an app that keeps its cookie at login).
		res := f.seen("a", 3*time.Minute, withLogin())
		if res.Status != store.StatusOpened || res.SessionID == old || len(res.Closed) != 0 {
			t.Fatalf("login after logout = %+v, want a new session and nothing closed", res)
		}
		if s, err := f.s.EndToken(f.ctx, f.realm, f.user, f.th("never"), store.EndLogout, false, f.at(4*time.Minute), p); err != nil || s != nil {
			t.Errorf("EndToken of an unknown token = %+v, %v; want nil, nil", s, err)
		}
		if s, err := f.s.EndToken(f.ctx, f.realm, "nobody@"+t.Name(), f.th("a"), store.EndLogout, false, f.at(4*time.Minute), p); err != nil || s != nil {
			t.Errorf("EndToken of an unknown user = %+v, %v; want nil, nil", s, err)
		}
	})

	t.Run("LogoutOfIdleSessionEndsAtLastActivity", func(t *testing.T) {
		f := ss.fixture(t)
		id := f.open("a", 0)
		s, err := f.s.EndToken(f.ctx, f.realm, f.user, f.th("a"), store.EndLogout, false, f.at(p.Idle+time.Minute), p)
		if err != nil || s == nil || s.ID != id {
			t.Fatalf("EndToken = %+v, %v; want session %s", s, err, id)
		}
		// Ended when it was last used (its time is not activity), and as
		// logged out, so its token is held like any logged-out token
		// (the hold counts from the end).
		wantEnded(t, s, store.EndLogout, f.base)
	})

	t.Run("LogoutForgetReleasesToken", func(t *testing.T) {
		f := ss.fixture(t)
		id := f.open("a", 0)
		if _, err := f.s.EndToken(f.ctx, f.realm, f.user, f.th("a"), store.EndLogout, true, f.at(time.Minute), p); err != nil {
			t.Fatal(err)
		}
		wantEnded(t, f.session(id, time.Minute), store.EndLogout, f.at(time.Minute))
		if res := f.seen("a", 2*time.Minute); res.Status != store.StatusOpened || res.SessionID == id {
			t.Errorf("Seen after a forgetting logout = %+v, want a new session", res)
		}
	})

	t.Run("AliasTokenJoinsSession", func(t *testing.T) {
		f := ss.fixture(t)
		id := f.open("a", 0)
		ok, err := f.s.AliasToken(f.ctx, f.realm, f.user, f.th("rotated"), id)
		if err != nil || !ok {
			t.Fatalf("AliasToken = %v, %v; want bound", ok, err)
		}
		if res := f.seen("rotated", time.Minute); res.Status != store.StatusActive || res.SessionID != id {
			t.Fatalf("Seen(rotated) = %+v, want active %s", res, id)
		}
		if act := f.list("active", time.Minute); len(act) != 1 {
			t.Errorf("active sessions = %v, want one: a rotation counts nothing twice", ids(act))
		}
		if _, err := f.s.EndSession(f.ctx, f.realm, f.user, id, store.EndRevoked, f.at(2*time.Minute), p); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{"a", "rotated"} {
			if res := f.seen(tok, 3*time.Minute); res.Status != store.StatusRefused || res.Reason != store.EndRevoked {
				t.Errorf("Seen(%s) after revocation = %+v, want refused", tok, res)
			}
		}
		if ok, err := f.s.AliasToken(f.ctx, f.realm, f.user, f.th("late"), id); err != nil || ok {
			t.Errorf("AliasToken to an ended session = %v, %v; want false", ok, err)
		}
		// A rotation that lost the race with the revocation: refused too.
		if res := f.seen("late", 4*time.Minute); res.Status != store.StatusRefused || res.Reason != store.EndRevoked {
			t.Errorf("Seen(late alias of a revoked session) = %+v, want refused", res)
		}
		if ok, err := f.s.AliasToken(f.ctx, f.realm, f.user, f.th("x"), "no-such-session"); err != nil || ok {
			t.Errorf("AliasToken to an unknown session = %v, %v; want false", ok, err)
		}
	})

	t.Run("NoOpenOpensNothing", func(t *testing.T) {
		f := ss.fixture(t)
		res := f.seen("a", 0, func(r *store.SeenRequest) { r.NoOpen = true })
		if res.Status != store.StatusNone || res.SessionID != "" {
			t.Fatalf("Seen(NoOpen) of an unknown token = %+v, want none", res)
		}
		if act := f.list("all", time.Minute); len(act) != 0 {
			t.Errorf("sessions = %v, want none", ids(act))
		}
		id := f.open("a", time.Minute)
		if res := f.seen("a", 2*time.Minute, func(r *store.SeenRequest) { r.NoOpen = true }); res.Status != store.StatusActive || res.SessionID != id {
			t.Errorf("Seen(NoOpen) of an active token = %+v, want active %s", res, id)
		}
		if res := f.seen("a", 2*time.Minute+p.Idle+time.Second, func(r *store.SeenRequest) { r.NoOpen = true }); res.Status != store.StatusNone {
			t.Errorf("Seen(NoOpen) of an idle token = %+v, want none", res)
		}
	})

	t.Run("RevokeRefusesTokenForRevokeHold", func(t *testing.T) {
		f := ss.fixture(t)
		old := f.open("a", 0)
		revokedAt := time.Minute
		s, err := f.s.EndSession(f.ctx, f.realm, f.user, old, store.EndRevoked, f.at(revokedAt), p)
		if err != nil {
			t.Fatal(err)
		}
		if s == nil || s.ID != old {
			t.Fatalf("EndSession = %+v, want %s", s, old)
		}
		wantEnded(t, s, store.EndRevoked, f.at(revokedAt))

		for _, at := range []time.Duration{revokedAt + time.Second, revokedAt + p.RevokeHold - time.Millisecond} {
			res := f.seen("a", at)
			if res.Status != store.StatusRefused || res.Reason != store.EndRevoked || res.SessionID != old {
				t.Errorf("Seen at +%v = %+v, want revoked %s", at, res, old)
			}
		}
		// Ending it again changes nothing.
		again, err := f.s.EndSession(f.ctx, f.realm, f.user, old, store.EndLogout, f.at(revokedAt+2*time.Minute), p)
		if err != nil {
			t.Fatalf("EndSession of an ended session: %v", err)
		}
		wantEnded(t, again, store.EndRevoked, f.at(revokedAt))

		res := f.seen("a", revokedAt+p.RevokeHold+time.Second)
		if res.Status != store.StatusOpened || res.SessionID == old {
			t.Errorf("Seen after RevokeHold = %+v, want a new session", res)
		}

		// A login on a revoked token opens a new session at once.
		other := f.open("b", 0)
		if _, err := f.s.EndSession(f.ctx, f.realm, f.user, other, store.EndRevoked, f.at(time.Minute), p); err != nil {
			t.Fatal(err)
		}
		if res := f.seen("b", 2*time.Minute); res.Status != store.StatusRefused || res.Reason != store.EndRevoked {
			t.Fatalf("Seen after revoke = %+v, want revoked", res)
		}
		login := f.seen("b", 3*time.Minute, withLogin())
		if login.Status != store.StatusOpened || login.SessionID == other {
			t.Errorf("login after revoke = %+v, want a new session", login)
		}
		if res := f.seen("b", 4*time.Minute); res.Status != store.StatusActive || res.SessionID != login.SessionID {
			t.Errorf("Seen after the new login = %+v, want active %s", res, login.SessionID)
		}
	})

	t.Run("RevokeOfIdleSessionIsRevoked", func(t *testing.T) {
		// Revocation must keep refusing the token even when the session
		// had already gone idle.
		f := ss.fixture(t)
		id := f.open("a", 0)
		at := p.Idle + time.Minute
		s, err := f.s.EndSession(f.ctx, f.realm, f.user, id, store.EndRevoked, f.at(at), p)
		if err != nil {
			t.Fatal(err)
		}
		wantEnded(t, s, store.EndRevoked, f.at(at))
		if res := f.seen("a", at+time.Second); res.Status != store.StatusRefused || res.Reason != store.EndRevoked {
			t.Errorf("Seen = %+v, want revoked", res)
		}
	})

	t.Run("EndSessionOfIdleSessionRecordsIdle", func(t *testing.T) {
		f := ss.fixture(t)
		id := f.open("a", 0)
		s, err := f.s.EndSession(f.ctx, f.realm, f.user, id, store.EndReplaced, f.at(p.Idle+time.Minute), p)
		if err != nil {
			t.Fatal(err)
		}
		wantEnded(t, s, store.EndIdle, f.base)
	})

	t.Run("EndSessionUnknown", func(t *testing.T) {
		f := ss.fixture(t)
		f.open("a", 0)
		if s, err := f.s.EndSession(f.ctx, f.realm, f.user, "nosuchsession", store.EndRevoked, f.at(time.Minute), p); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("EndSession(unknown id) = %+v, %v; want ErrNotFound", s, err)
		}
		if s, err := f.s.EndSession(f.ctx, f.realm, "nobody@"+t.Name(), "nosuchsession", store.EndRevoked, f.at(time.Minute), p); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("EndSession(unknown user) = %+v, %v; want ErrNotFound", s, err)
		}
		if act := f.list("active", time.Minute); len(act) != 1 {
			t.Errorf("the user's session was affected: active = %v", ids(act))
		}
	})

	t.Run("EndAllExcept", func(t *testing.T) {
		f := ss.fixture(t)
		a := f.open("a", 0)
		b := f.open("b", time.Second)
		c := f.open("c", 2*time.Second)
		d := f.open("d", 3*time.Second)
		if _, err := f.s.EndToken(f.ctx, f.realm, f.user, f.th("d"), store.EndLogout, false, f.at(4*time.Second), p); err != nil {
			t.Fatal(err)
		}
		closed, err := f.s.EndAll(f.ctx, f.realm, f.user, b, store.EndRevoked, f.at(5*time.Second), p)
		if err != nil {
			t.Fatal(err)
		}
		got := ids(closed)
		sort.Strings(got)
		want := []string{a, c}
		sort.Strings(want)
		if !sameIDs(got, want) {
			t.Fatalf("EndAll closed %v, want %v", got, want)
		}
		for _, s := range closed {
			wantEnded(t, s, store.EndRevoked, f.at(5*time.Second))
		}
		if act := f.list("active", 6*time.Second); !sameIDs(ids(act), []string{b}) {
			t.Errorf("active = %v, want [%s]", ids(act), b)
		}
		wantEnded(t, f.session(d, 6*time.Second), store.EndLogout, f.at(4*time.Second))
		if res := f.seen("a", 7*time.Second); res.Status != store.StatusRefused || res.Reason != store.EndRevoked {
			t.Errorf("Seen of a revoked token = %+v, want revoked", res)
		}
		if res := f.seen("b", 7*time.Second); res.Status != store.StatusActive || res.SessionID != b {
			t.Errorf("Seen of the spared token = %+v, want active %s", res, b)
		}
		rest, err := f.s.EndAll(f.ctx, f.realm, f.user, "", store.EndRevoked, f.at(8*time.Second), p)
		if err != nil || !sameIDs(ids(rest), []string{b}) {
			t.Errorf("EndAll without except = %v, %v; want [%s]", ids(rest), err, b)
		}
		if none, err := f.s.EndAll(f.ctx, f.realm, "nobody@"+t.Name(), "", store.EndRevoked, f.at(8*time.Second), p); err != nil || len(none) != 0 {
			t.Errorf("EndAll of an unknown user = %v, %v", ids(none), err)
		}
	})

	t.Run("SessionsFilterSortAndPage", func(t *testing.T) {
		f := ss.fixture(t)
		var sid []string
		for i := range 5 {
			sid = append(sid, f.open(fmt.Sprint("s", i), time.Duration(i)*time.Minute))
		}
		for _, i := range []int{1, 3} {
			if _, err := f.s.EndToken(f.ctx, f.realm, f.user, f.th(fmt.Sprint("s", i)), store.EndLogout, false, f.at(10*time.Minute), p); err != nil {
				t.Fatal(err)
			}
		}
		at := 11 * time.Minute
		for _, c := range []struct {
			name          string
			state         string
			offset, limit int
			want          []string
			total         int
		}{
			{"active", "active", 0, 0, []string{sid[4], sid[2], sid[0]}, 3},
			{"closed", "closed", 0, 0, []string{sid[3], sid[1]}, 2},
			{"all", "all", 0, 0, []string{sid[4], sid[3], sid[2], sid[1], sid[0]}, 5},
			{"page 2 of 2", "all", 1, 2, []string{sid[3], sid[2]}, 5},
			{"last page", "all", 4, 2, []string{sid[0]}, 5},
			{"past the end", "all", 5, 2, nil, 5},
			{"active page", "active", 1, 1, []string{sid[2]}, 3},
		} {
			got, total := f.listAs(f.user, c.state, at, c.offset, c.limit)
			if !sameIDs(ids(got), c.want) || total != c.total {
				t.Errorf("%s: got %v total %d, want %v total %d", c.name, ids(got), total, c.want, c.total)
			}
		}
		for _, s := range f.list("closed", at) {
			wantEnded(t, s, store.EndLogout, f.at(10*time.Minute))
		}
		if got, total := f.listAs("nobody@"+t.Name(), "all", at, 0, 0); len(got) != 0 || total != 0 {
			t.Errorf("unknown user lists %v total %d", ids(got), total)
		}
	})

	t.Run("IdleSessionListedClosedBeforeSweep", func(t *testing.T) {
		f := ss.fixture(t)
		id := f.open("a", 0)
		at := p.Idle + time.Minute
		if act := f.list("active", at); len(act) != 0 {
			t.Errorf("active = %v, want none: the session is idle", ids(act))
		}
		closed := f.list("closed", at)
		if len(closed) != 1 || closed[0].ID != id {
			t.Fatalf("closed = %v, want [%s]", ids(closed), id)
		}
		wantEnded(t, closed[0], store.EndIdle, f.base)
		if all := f.list("all", at); len(all) != 1 || all[0].Active() {
			t.Errorf("all = %+v, want the one session, closed", all)
		}
		// Read before Idle, the same session is active.
		if act := f.list("active", p.Idle-time.Minute); !sameIDs(ids(act), []string{id}) {
			t.Errorf("active before Idle = %v, want [%s]", ids(act), id)
		}
	})

	t.Run("SweepIdleClosesIdleSessions", func(t *testing.T) {
		f := ss.fixture(t)
		idle := f.open("a", 0)
		busyUser := "busy@" + t.Name()
		ss.addUser(busyUser)
		busy := f.open("b", 0, asUser(busyUser))
		// busy stays active: refreshed shortly before the sweep.
		if r := f.s.Touch(f.ctx, []store.Touch{{Realm: f.realm, User: busyUser, SessionID: busy, DeviceID: "dev-1", Now: f.at(p.Idle - time.Minute), Policy: p}}); r[0].Ended || r[0].Err != nil {
			t.Fatalf("Touch = %+v", r)
		}
		now := f.at(p.Idle + time.Minute)
		closed, err := f.s.SweepIdle(f.ctx, f.realm, f.base.Add(-time.Hour), now, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(closed) != 1 || closed[0].ID != idle || closed[0].User != f.user {
			t.Fatalf("SweepIdle closed %+v, want [%s] of %s", closed, idle, f.user)
		}
		wantEnded(t, closed[0], store.EndIdle, f.base)
		wantEnded(t, f.session(idle, p.Idle+time.Minute), store.EndIdle, f.base)
		if act, _ := f.listAs(busyUser, "active", p.Idle+time.Minute, 0, 0); !sameIDs(ids(act), []string{busy}) {
			t.Errorf("busy user's active sessions = %v, want [%s]", ids(act), busy)
		}
		again, err := f.s.SweepIdle(f.ctx, f.realm, f.base.Add(-time.Hour), now.Add(time.Second), p)
		if err != nil || len(again) != 0 {
			t.Errorf("second sweep = %v, %v; want nothing", ids(again), err)
		}
		other, err := f.s.SweepIdle(f.ctx, "other@"+t.Name(), f.base.Add(-time.Hour), now, p)
		if err != nil || len(other) != 0 {
			t.Errorf("sweep of an unknown realm = %v, %v", ids(other), err)
		}
	})

	t.Run("SweepIdleFindsSessionsRefreshedBySeen", func(t *testing.T) {
		// Activity recorded by Seen (not only by Touch) must count for
		// the sweep's user window (since, now-Idle].
		f := ss.fixture(t)
		id := f.open("a", 0)
		last := 20 * time.Minute
		if res := f.seen("a", last); res.Status != store.StatusActive || !res.LastSeen.Equal(f.at(last)) {
			t.Fatalf("refreshing Seen = %+v", res)
		}
		closed, err := f.s.SweepIdle(f.ctx, f.realm, f.at(10*time.Minute), f.at(last+p.Idle+time.Minute), p)
		if err != nil {
			t.Fatal(err)
		}
		if len(closed) != 1 || closed[0].ID != id {
			t.Fatalf("SweepIdle closed %v, want [%s] (last active at +%v)", ids(closed), id, last)
		}
		wantEnded(t, closed[0], store.EndIdle, f.at(last))
	})

	t.Run("TouchBatch", func(t *testing.T) {
		f := ss.fixture(t)
		a := f.open("a", 0)
		b := f.open("b", time.Second, withDevice("dev-2"))
		d := f.open("d", 2*time.Second, withDevice("dev-3"))
		if _, err := f.s.EndSession(f.ctx, f.realm, f.user, b, store.EndRevoked, f.at(3*time.Second), p); err != nil {
			t.Fatal(err)
		}
		tch := func(user, id string, at time.Duration) store.Touch {
			return store.Touch{Realm: f.realm, User: user, SessionID: id, DeviceID: "dev-1", Now: f.at(at), Policy: p}
		}
		at := 5 * time.Minute
		res := f.s.Touch(f.ctx, []store.Touch{
			tch(f.user, a, at),
			tch(f.user, b, at),
			tch(f.user, "nosuchsession", at),
			tch("nobody@"+t.Name(), a, at),
		})
		want := []store.TouchResult{{}, {Ended: true, Reason: store.EndRevoked}, {Ended: true, Reason: "gone"}, {Ended: true, Reason: "gone"}}
		if len(res) != len(want) {
			t.Fatalf("Touch returned %d results for %d touches", len(res), len(want))
		}
		for i := range want {
			if res[i].Err != nil || res[i].Ended != want[i].Ended || res[i].Reason != want[i].Reason {
				t.Errorf("touch %d = %+v, want %+v", i, res[i], want[i])
			}
		}
		wantTime(t, "touched LastSeen", f.session(a, at).LastSeen, f.at(at))
		if s := f.session(a, at); !s.Active() {
			t.Errorf("touched session ended: %+v", s)
		}
		devs := f.devices()
		if len(devs) != 3 || devs[0].ID != "dev-1" {
			t.Fatalf("devices = %+v, want dev-1 first (touched last)", devs)
		}
		wantTime(t, "touched device LastSeen", devs[0].LastSeen, f.at(at))

		// An older touch never moves last_seen back.
		if r := f.s.Touch(f.ctx, []store.Touch{tch(f.user, a, at-time.Minute)}); r[0].Ended || r[0].Err != nil {
			t.Errorf("older touch = %+v", r[0])
		}
		wantTime(t, "LastSeen after an older touch", f.session(a, at).LastSeen, f.at(at))

		// d has been idle since +2s: a touch closes it as idle.
		late := 2*time.Second + p.Idle + time.Minute
		if r := f.s.Touch(f.ctx, []store.Touch{tch(f.user, d, late)}); !r[0].Ended || r[0].Reason != store.EndIdle || r[0].Err != nil {
			t.Errorf("touch of an idle session = %+v, want ended idle", r[0])
		}
		wantEnded(t, f.session(d, late), store.EndIdle, f.at(2*time.Second))
		if r := f.s.Touch(f.ctx, nil); len(r) != 0 {
			t.Errorf("empty Touch = %v", r)
		}
	})

	t.Run("Devices", func(t *testing.T) {
		f := ss.fixture(t)
		chrome := store.Agent{Browser: "Chrome", BrowserVersion: "124.0", OS: "Windows", OSVersion: "10", DeviceFamily: "Other", DeviceType: "desktop"}
		safari := store.Agent{Browser: "Mobile Safari", BrowserVersion: "17.4", OS: "iOS", OSVersion: "17.4", DeviceFamily: "iPhone", DeviceType: "mobile"}
		if res := f.seen("a", 0, withDevice("dev-1"), withAgent(chrome), withIP(ip1)); res.Status != store.StatusOpened || !res.NewDevice {
			t.Fatalf("first session on dev-1 = %+v, want opened, new device", res)
		}
		if res := f.seen("b", 10*time.Second, withDevice("dev-1"), withAgent(chrome), withIP(ip1)); res.Status != store.StatusOpened || res.NewDevice {
			t.Fatalf("second session on dev-1 = %+v, want opened, known device", res)
		}
		if res := f.seen("a", 2*time.Minute, withDevice("dev-1"), withAgent(chrome), withIP(ip2)); res.Status != store.StatusActive {
			t.Fatalf("refresh = %+v", res)
		}
		if res := f.seen("c", 5*time.Minute, withDevice("dev-2"), withAgent(safari), withIP(ip1)); res.Status != store.StatusOpened || !res.NewDevice {
			t.Fatalf("first session on dev-2 = %+v, want opened, new device", res)
		}
		devs := f.devices()
		if len(devs) != 2 || devs[0].ID != "dev-2" || devs[1].ID != "dev-1" {
			t.Fatalf("devices = %+v, want dev-2 then dev-1", devs)
		}
		d2, d1 := devs[0], devs[1]
		wantTime(t, "dev-2 FirstSeen", d2.FirstSeen, f.at(5*time.Minute))
		wantTime(t, "dev-2 LastSeen", d2.LastSeen, f.at(5*time.Minute))
		wantTime(t, "dev-1 FirstSeen", d1.FirstSeen, f.base)
		wantTime(t, "dev-1 LastSeen", d1.LastSeen, f.at(2*time.Minute))
		if d1.Agent != chrome || d2.Agent != safari {
			t.Errorf("agents = %+v, %+v", d1.Agent, d2.Agent)
		}
		if d1.LastIP != ip2 || d2.LastIP != ip1 {
			t.Errorf("last IPs = %q, %q; want %q, %q", d1.LastIP, d2.LastIP, ip2, ip1)
		}
		if d1.User != f.user || d2.User != f.user || d1.Blocked || d2.Blocked {
			t.Errorf("devices = %+v, %+v", d1, d2)
		}
		if d1.Location.City != "London" || d1.Location.CountryCode != "GB" {
			t.Errorf("device location = %+v", d1.Location)
		}
		if none, err := f.s.Devices(f.ctx, f.realm, "nobody@"+t.Name()); err != nil || len(none) != 0 {
			t.Errorf("Devices of an unknown user = %v, %v", none, err)
		}
	})

	t.Run("DeviceDescribedAsNewestSession", func(t *testing.T) {
		f := ss.fixture(t)
		older := store.Agent{Browser: "Chrome", BrowserVersion: "124.0", OS: "Windows", OSVersion: "10", DeviceFamily: "Other", DeviceType: "desktop"}
		newer := older
		newer.BrowserVersion = "125.0"
		paris := store.Location{City: "Paris", Country: "France", CountryCode: "FR", TimeZone: "Europe/Paris"}
		a := f.open("a", 0, withAgent(older), withIP(ip1))
		f.seen("a", time.Minute, withAgent(older), withIP(ip1), withLogin()) // replaced: a new session, same device
		b := f.open("b", 2*time.Minute, withAgent(newer), withIP(ip2), withLocation(paris))
		devs := f.devices()
		if len(devs) != 1 {
			t.Fatalf("devices = %+v, want one", devs)
		}
		if d := devs[0]; d.Agent != newer || d.Location.City != "Paris" || d.LastIP != ip2 {
			t.Errorf("device = %+v, want described as its newest session (Chrome 125.0, Paris, %s)", d, ip2)
		}
		// Sessions keep what they were opened with.
		if s := f.session(a, 3*time.Minute); s.Agent != older || s.Location.City != "London" {
			t.Errorf("older session = %+v %+v, want Chrome 124.0 in London", s.Agent, s.Location)
		}
		if s := f.session(b, 3*time.Minute); s.Agent != newer || s.Location.City != "Paris" || s.Location.Latitude != nil {
			t.Errorf("newer session = %+v %+v, want Chrome 125.0 in Paris without coordinates", s.Agent, s.Location)
		}
	})

	t.Run("DeviceBlocked", func(t *testing.T) {
		f := ss.fixture(t)
		a := f.open("a", 0, withDevice("dev-1"))
		b := f.open("b", time.Second, withDevice("dev-2"))
		closed, err := f.s.SetDeviceBlocked(f.ctx, f.realm, f.user, "dev-1", true, f.at(time.Minute), p)
		if err != nil {
			t.Fatal(err)
		}
		if !sameIDs(ids(closed), []string{a}) {
			t.Fatalf("blocking dev-1 closed %v, want [%s]", ids(closed), a)
		}
		wantEnded(t, closed[0], store.EndDeviceBlocked, f.at(time.Minute))
		for _, name := range []string{"a", "fresh"} {
			// the old token, and a new one on the blocked device
			if res := f.seen(name, 2*time.Minute, withDevice("dev-1")); res.Status != store.StatusRefused || res.Reason != store.EndDeviceBlocked {
				t.Errorf("Seen(%s) on the blocked device = %+v, want refused %s", name, res, store.EndDeviceBlocked)
			}
		}
		if res := f.seen("b", 2*time.Minute, withDevice("dev-2")); res.Status != store.StatusActive || res.SessionID != b {
			t.Errorf("Seen on another device = %+v, want active %s", res, b)
		}
		blocked := map[string]bool{}
		for _, d := range f.devices() {
			blocked[d.ID] = d.Blocked
		}
		if !blocked["dev-1"] || blocked["dev-2"] {
			t.Errorf("blocked flags = %v, want only dev-1", blocked)
		}
		if _, err := f.s.SetDeviceBlocked(f.ctx, f.realm, f.user, "nosuchdevice", true, f.at(3*time.Minute), p); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("blocking an unknown device: %v, want ErrNotFound", err)
		}
		if _, err := f.s.SetDeviceBlocked(f.ctx, f.realm, f.user, "dev-1", false, f.at(3*time.Minute), p); err != nil {
			t.Fatal(err)
		}
		if res := f.seen("a", 4*time.Minute, withDevice("dev-1")); res.Status != store.StatusOpened || res.SessionID == a {
			t.Errorf("Seen after unblocking = %+v, want a new session", res)
		}
	})

	t.Run("TokenBinding", func(t *testing.T) {
		f := ss.fixture(t)
		th, other := f.th("a"), f.th("b")
		if u, err := f.s.TokenUser(f.ctx, th); err != nil || u != "" {
			t.Fatalf("TokenUser before binding = %q, %v", u, err)
		}
		if err := f.s.BindToken(f.ctx, th, f.user, time.Hour); err != nil {
			t.Fatal(err)
		}
		if u, err := f.s.TokenUser(f.ctx, th); err != nil || u != f.user {
			t.Errorf("TokenUser = %q, %v; want %q", u, err, f.user)
		}
		if u, err := f.s.TokenUser(f.ctx, other); err != nil || u != "" {
			t.Errorf("TokenUser of another token = %q, %v", u, err)
		}
		if err := f.s.BindToken(f.ctx, th, "second@"+t.Name(), time.Hour); err != nil {
			t.Fatal(err)
		}
		if u, _ := f.s.TokenUser(f.ctx, th); u != "second@"+t.Name() {
			t.Errorf("TokenUser after rebinding = %q", u)
		}
		if err := f.s.UnbindToken(f.ctx, th); err != nil {
			t.Fatal(err)
		}
		if u, err := f.s.TokenUser(f.ctx, th); err != nil || u != "" {
			t.Errorf("TokenUser after unbinding = %q, %v", u, err)
		}
		if err := f.s.UnbindToken(f.ctx, other); err != nil {
			t.Errorf("UnbindToken of an unbound token: %v", err)
		}

		// Bindings expire: the only real-time wait of the suite.
		const ttl = 300 * time.Millisecond
		if err := f.s.BindToken(f.ctx, other, f.user, ttl); err != nil {
			t.Fatal(err)
		}
		if u, _ := f.s.TokenUser(f.ctx, other); u != f.user {
			t.Fatalf("TokenUser right after binding = %q", u)
		}
		if rs, ok := f.s.(*redisTestStore); ok {
			pttl, err := rs.Client().PTTL(f.ctx, tokenKey(other)).Result()
			if err != nil || pttl <= 0 || pttl > ttl {
				t.Errorf("binding PTTL = %v, %v; want in (0, %v]", pttl, err, ttl)
			}
		}
		time.Sleep(ttl + 150*time.Millisecond)
		if m, ok := f.s.(*Memory); ok {
			m.advance() // its maintenance tick (Maintain) does this
		}
		if u, err := f.s.TokenUser(f.ctx, other); err != nil || u != "" {
			t.Errorf("TokenUser after the TTL = %q, %v; want none", u, err)
		}
	})

	t.Run("PublishSubscribe", func(t *testing.T) {
		f := ss.fixture(t)
		ch1, ch2 := make(chan store.Invalidation, 100), make(chan store.Invalidation, 100)
		cancel1 := f.s.Subscribe(func(inv store.Invalidation) { ch1 <- inv }, nil)
		cancel2 := f.s.Subscribe(func(inv store.Invalidation) { ch2 <- inv }, nil)
		defer cancel2()

		want := store.Invalidation{Realm: f.realm, UserTag: "tag-" + f.user, TokenHash: f.th("a")}
		// A Redis subscription starts asynchronously: publish until it is
		// heard, for up to 2 s.
		deliver := func(inv store.Invalidation, chs ...chan store.Invalidation) {
			t.Helper()
			got := make([]bool, len(chs))
			all := func() bool {
				for _, g := range got {
					if !g {
						return false
					}
				}
				return true
			}
			deadline := time.Now().Add(2 * time.Second)
			for !all() {
				if time.Now().After(deadline) {
					t.Fatalf("invalidation %+v not delivered to every subscriber within 2 s: %v", inv, got)
				}
				if err := f.s.Publish(f.ctx, inv); err != nil {
					t.Fatalf("Publish: %v", err)
				}
				republish := time.After(100 * time.Millisecond)
			wait:
				for !all() {
					for i, ch := range chs {
						select {
						case m := <-ch:
							got[i] = got[i] || reflect.DeepEqual(m, inv)
						default:
						}
					}
					select {
					case <-republish:
						break wait
					case <-time.After(2 * time.Millisecond):
					}
				}
			}
		}
		deliver(want, ch1, ch2)

		cancel1()
		drain := func(ch chan store.Invalidation) {
			for {
				select {
				case <-ch:
				default:
					return
				}
			}
		}
		drain(ch1)
		second := store.Invalidation{Realm: f.realm, UserTag: "second@" + t.Name()}
		deliver(second, ch2)
		time.Sleep(50 * time.Millisecond)
		select {
		case m := <-ch1:
			if reflect.DeepEqual(m, second) {
				t.Errorf("cancelled subscriber still got %+v", m)
			}
		default:
		}
	})

	t.Run("RetentionTrimsOldSessions", func(t *testing.T) {
		f := ss.fixture(t)
		old := f.open("a", 0, withDevice("dev-old"))
		if _, err := f.s.EndToken(f.ctx, f.realm, f.user, f.th("a"), store.EndLogout, false, f.at(time.Minute), p); err != nil {
			t.Fatal(err)
		}
		mid := f.open("b", p.Retention/2, withDevice("dev-new"))
		// Not trimmed yet: it ended less than Retention ago.
		if all := f.list("all", p.Retention/2); len(all) != 2 {
			t.Fatalf("before retention: %v, want 2 sessions", ids(all))
		}
		at := p.Retention + 2*time.Minute // old ended at +1m < at-Retention
		res := f.seen("b", at, withDevice("dev-new"))
		if res.Status != store.StatusOpened {
			t.Fatalf("Seen = %+v, want opened (mid went idle)", res)
		}
		all := f.list("all", at)
		got := map[string]bool{}
		for _, s := range all {
			got[s.ID] = true
		}
		if got[old] {
			t.Errorf("session %s ended before now-Retention is still listed: %v", old, ids(all))
		}
		if !got[mid] || !got[res.SessionID] || len(all) != 2 {
			t.Errorf("listed %v, want %s and %s", ids(all), mid, res.SessionID)
		}
		for _, d := range f.devices() {
			if d.ID == "dev-old" {
				t.Errorf("device last seen before now-Retention is still listed: %+v", d)
			}
		}
	})

	t.Run("OddUserIDs", func(t *testing.T) {
		f := ss.fixture(t)
		rs, isRedis := f.s.(*redisTestStore)
		// The realm exists already, so new keys below are the user's.
		f.open("warmup", 0)
		scan := func() map[string]bool {
			t.Helper()
			keys, err := rs.scan(f.ctx, "*")
			if err != nil {
				t.Fatalf("SCAN: %v", err)
			}
			m := map[string]bool{}
			for _, k := range keys {
				m[k] = true
			}
			return m
		}
		for _, c := range []struct{ name, user string }{
			{"braces", "{alice}"},
			{"reversed braces", "}bob{"},
			{"colons", "cs:{x}:s:act"},
			{"spaces", "  carol  dee  "},
			{"unicode", "ünïcødé 日本語 🎉"},
			{"newline and nul", "eve\n\x00mallory"},
			{"300 chars", strings.Repeat("u{}: ", 60)},
		} {
			t.Run(c.name, func(t *testing.T) {
				f := &fx{storeSuite: ss, t: t, ctx: f.ctx, realm: f.realm, user: f.user}
				u := c.user
				ss.addUser(u)
				var before map[string]bool
				if isRedis {
					before = scan()
				}
				res := f.seen("odd-"+c.name, time.Second, asUser(u))
				if res.Status != store.StatusOpened {
					t.Fatalf("Seen = %+v", res)
				}
				if again := f.seen("odd-"+c.name, 2*time.Second, asUser(u)); again.Status != store.StatusActive || again.SessionID != res.SessionID {
					t.Errorf("second Seen = %+v", again)
				}
				list, total := f.listAs(u, "all", 3*time.Second, 0, 0)
				if total != 1 || len(list) != 1 || list[0].User != u || list[0].Realm != f.realm {
					t.Fatalf("Sessions = %+v (total %d)", list, total)
				}
				devs, err := f.s.Devices(f.ctx, f.realm, u)
				if err != nil || len(devs) != 1 || devs[0].User != u {
					t.Errorf("Devices = %+v, %v", devs, err)
				}
				s, err := f.s.EndSession(f.ctx, f.realm, u, res.SessionID, store.EndRevoked, f.at(4*time.Second), p)
				if err != nil || s.User != u {
					t.Fatalf("EndSession = %+v, %v", s, err)
				}
				if r := f.seen("odd-"+c.name, 5*time.Second, asUser(u)); r.Status != store.StatusRefused || r.Reason != store.EndRevoked {
					t.Errorf("Seen after revoke = %+v", r)
				}
				// The same user name in the default user's realm and
				// another user are unaffected.
				if other, _ := f.listAs(f.user, "active", 5*time.Second, 0, 0); len(other) != 1 {
					t.Errorf("warmup user's sessions = %v", ids(other))
				}
				if !isRedis {
					return
				}
				after := scan()
				var fresh []string
				for k := range after {
					if !before[k] {
						fresh = append(fresh, k)
					}
					if strings.Contains(k, u) {
						t.Errorf("key %q contains the raw user id", k)
					}
				}
				if len(fresh) < 2 {
					t.Fatalf("the user's operations created keys %q, want several", fresh)
				}
				tag := hashTag(fresh[0])
				if tag == "" {
					t.Errorf("key %q has no hash tag", fresh[0])
				}
				for _, k := range fresh {
					if hashTag(k) != tag {
						t.Errorf("keys %q and %q of one user have different hash tags", fresh[0], k)
					}
				}
				if rs.cluster {
					slot0, err := rs.Client().ClusterKeySlot(f.ctx, fresh[0]).Result()
					if err != nil {
						t.Fatal(err)
					}
					for _, k := range fresh[1:] {
						if slot, err := rs.Client().ClusterKeySlot(f.ctx, k).Result(); err != nil || slot != slot0 {
							t.Errorf("CLUSTER KEYSLOT %q = %d, %v; want %d", k, slot, err, slot0)
						}
					}
				}
			})
		}
	})

	// Runs last: inspects everything the subtests above wrote.
	t.Run("RedisHoldsNoRawTokensOrUserIDsInKeys", func(t *testing.T) {
		rs, ok := ss.s.(*redisTestStore)
		if !ok {
			return // nothing to inspect for an in-process store
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		keys, err := rs.scan(ctx, "*")
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) < 10 {
			t.Fatalf("only %d keys after the suite: %q", len(keys), keys)
		}
		ss.mu.Lock()
		tokens, users := append([]string(nil), ss.tokens...), append([]string(nil), ss.users...)
		ss.mu.Unlock()
		if len(tokens) == 0 || len(users) == 0 {
			t.Fatal("the suite recorded no tokens or users")
		}
		for _, k := range keys {
			if !strings.HasPrefix(k, keyPrefix) {
				t.Errorf("key %q lacks the prefix %q", k, keyPrefix)
			}
			for _, u := range users {
				if strings.Contains(k, u) {
					t.Errorf("key %q contains raw user id %q", k, u)
				}
			}
			val, err := redistest.ValueText(ctx, rs.Client(), k)
			if err != nil {
				t.Fatalf("reading %q: %v", k, err)
			}
			for _, tok := range tokens {
				if strings.Contains(k, tok) || strings.Contains(val, tok) {
					t.Errorf("key %q holds raw token %q", k, tok)
				}
			}
		}
	})
}

// hashTag is the part of key Redis Cluster hashes: the text between the
// first '{' and the first '}' after it, if not empty; "" when the whole key
// is hashed.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return ""
	}
	return key[i+1 : i+1+j]
}

// TestRedisTTLs checks that every key the store writes expires, within
// Retention, whatever operations wrote it.
func TestRedisTTLs(t *testing.T) {
	srv := redistest.Start(t)
	st := New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	t.Cleanup(func() { _ = st.Close() })
	ss := newStoreSuite(st, testKeyring(t))
	f := ss.fixture(t)
	p := ss.p

	a := f.open("a", 0)
	f.seen("a", 2*time.Minute, withIP(ip2))                  // refresh + IP change
	f.seen("a", 3*time.Minute, withLogin())                  // replace
	f.open("b", time.Minute, withDevice("dev-2"))            // second device
	c := f.open("c", time.Minute, asUser("other@"+t.Name())) // second user
	if _, err := st.EndToken(f.ctx, f.realm, f.user, f.th("b"), store.EndLogout, false, f.at(4*time.Minute), p); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EndSession(f.ctx, f.realm, f.user, a, store.EndRevoked, f.at(5*time.Minute), p); err != nil {
		t.Fatal(err)
	}
	st.Touch(f.ctx, []store.Touch{{Realm: f.realm, User: "other@" + t.Name(), SessionID: c, Now: f.at(6 * time.Minute), Policy: p}})
	if _, err := st.EndAll(f.ctx, f.realm, "other@"+t.Name(), "", store.EndRevoked, f.at(7*time.Minute), p); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SweepIdle(f.ctx, f.realm, f.base.Add(-time.Hour), f.at(p.Idle+10*time.Minute), p); err != nil {
		t.Fatal(err)
	}
	if err := st.BindToken(f.ctx, f.th("a"), f.user, p.Retention); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordRisk(f.ctx, f.realm, f.user, store.RiskRecord{ID: "r1", At: f.at(8 * time.Minute), Signal: "new_device", SessionID: a, DeviceID: "dev-2"}, p); err != nil {
		t.Fatal(err)
	}

	keys, err := srv.ScanAll(f.ctx, "*")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 8 {
		t.Fatalf("only %d keys written: %q", len(keys), keys)
	}
	rdb := srv.Client(t)
	for _, k := range keys {
		pttl, err := rdb.PTTL(f.ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		max := p.Retention
		if strings.HasPrefix(k, agentKey("")) || strings.HasPrefix(k, locationKey("")) {
			max += descGrace // shared descriptions outlive the records naming them
		}
		if pttl <= 0 || pttl > max {
			t.Errorf("key %q has PTTL %v, want in (0, %v]", k, pttl, max)
		}
	}
}

// TestRedisStoreCloseAfterSubscribe: Close must return even though the
// invalidation subscription is idle (no message will ever arrive).
func TestRedisStoreCloseAfterSubscribe(t *testing.T) {
	srv := redistest.Start(t)
	st := New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	got := make(chan store.Invalidation, 10)
	cancel := st.Subscribe(func(inv store.Invalidation) { got <- inv }, nil)
	defer cancel()
	// Wait until the reader blocks in Redis, so Close has one to end.
	redistest.WaitBlocked(t, srv.Client(t), "xread", 1)
	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(3 * time.Second):
		// Unblock the stuck listener so the test binary can go on.
		srv.Stop()
		<-closed
		t.Fatal("Store.Close did not return within 3 s after Subscribe: the listener is stuck in a blocking Receive")
	}
}
