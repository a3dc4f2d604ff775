package redisstore

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

func TestStoredRecordRoundTrip(t *testing.T) {
	started := time.Date(2025, 3, 30, 1, 59, 59, 123_000_000, time.UTC)
	for _, in := range []sessionRecord{
		{Session: &store.Session{StartedAt: started, LastSeen: started.Add(time.Minute), IP: "198.51.100.7", DeviceID: "dev"},
			tokenHash: "th", ipKey: "198.51.100.7", day: "2025-03-30", agentRef: "AAAAAAAAAA", locRef: "BBBBBBBBBB"},
		{Session: &store.Session{StartedAt: started, LastSeen: started, EndedAt: ptr(started.Add(time.Hour)), EndReason: store.EndRevoked,
			IP: "2001:db8::1", DeviceID: `"quoted"`}, tokenHash: "th", ipKey: "2001:db8::/64"},
		{Session: &store.Session{StartedAt: started, LastSeen: started}},
	} {
		raw := encodeStoredSession(&in)
		if in.IP != "" && in.ipKey == in.IP && strings.Count(raw, in.IP) != 1 {
			t.Errorf("record %s repeats the IP as its IP key", raw)
		}
		got, err := decodeStoredSession(raw, "sid", "r", "u")
		if err != nil {
			t.Fatalf("decodeStoredSession(%s): %v", raw, err)
		}
		want := in
		sess := *in.Session
		want.Session = &sess
		want.ID, want.Realm, want.User = "sid", "r", "u"
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("round trip of\n%+v\ngave\n%+v\n(record %s)", want, *got, raw)
		}
	}
	d := deviceRecord{Device: &store.Device{FirstSeen: started, LastSeen: started.Add(time.Hour), Blocked: true, LastIP: "198.51.100.7"}, agentRef: "a", locRef: "l"}
	got, err := decodeStoredDevice(encodeStoredDevice(&d), "dev-1", "u")
	d.ID, d.User = "dev-1", "u"
	if err != nil || !reflect.DeepEqual(got, &d) {
		t.Errorf("device round trip = %+v, %v; want %+v", got, err, d)
	}
	// Records of the first layout are read with everything inline.
	old := `["sid",1700000000000,1700000060000,0,"","198.51.100.1","dev","th","Firefox","125.0","Linux","","Other","desktop","London","England","United Kingdom","GB","Europe/London",51.51,-0.09]`
	s, err := decodeStoredSession(old, "other", "r", "u")
	if err != nil || s.ID != "sid" || s.Agent.Browser != "Firefox" || s.Location.City != "London" {
		t.Errorf("first layout read as %+v, %v", s, err)
	}
	for _, bad := range []string{"", "{}", `["",1,2,3,4,5,6,7,8,9,10,11]`} {
		if s, err := decodeStoredSession(bad, "sid", "r", "u"); err == nil {
			t.Errorf("decodeStoredSession(%q) = %+v, want an error", bad, s)
		}
	}
}

func TestDescriptionRefs(t *testing.T) {
	if r, raw := agentDesc(store.Agent{}); r != "" || raw != "" {
		t.Errorf("empty agent described as %q %q", r, raw)
	}
	if r, raw := locationDesc(store.Location{}); r != "" || raw != "" {
		t.Errorf("empty location described as %q %q", r, raw)
	}
	a1, _ := agentDesc(testAgent)
	other := testAgent
	other.BrowserVersion = "126.0"
	a2, _ := agentDesc(other)
	l1, _ := locationDesc(testLoc)
	if len(a1) != descRefLen || a1 == a2 || a1 == l1 {
		t.Errorf("refs %q %q %q: want distinct, %d characters", a1, a2, l1, descRefLen)
	}
	_, raw := locationDesc(testLoc)
	if l, ok := decodeLocationDesc(raw); !ok || !reflect.DeepEqual(l, testLoc) {
		t.Errorf("location round trip = %+v, %v", l, ok)
	}
	_, raw = agentDesc(testAgent)
	if a, ok := decodeAgentDesc(raw); !ok || a != testAgent {
		t.Errorf("agent round trip = %+v, %v", a, ok)
	}
}

// descFixture is one user on a fresh Redis, through the store code.
func descFixture(t *testing.T) (*fx, *Store, *redistest.Server) {
	srv := redistest.Start(t)
	st := New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	t.Cleanup(func() { _ = st.Close() })
	return newStoreSuite(st, testKeyring(t)).fixture(t), st, srv
}

// Thousands of sessions share a few agents and places: each description is
// stored once, and a session record holds none of its text.
func TestRedisDescriptionsShared(t *testing.T) {
	f, _, srv := descFixture(t)
	var ids []string
	for i, u := range []string{"alice", "bob", "carol"} {
		ids = append(ids, f.open(u, time.Duration(i)*time.Second, asUser(u), withDevice("dev-"+u)))
	}
	keys, err := srv.ScanAll(f.ctx, keyPrefix+"[al]:*")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("description keys = %q, want one agent and one location", keys)
	}
	rdb := srv.Client(t)
	raw, err := rdb.HGet(f.ctx, keysFor(f.realm, "alice").sess, ids[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Firefox", "London", "Europe/London", ids[0]} {
		if strings.Contains(raw, text) {
			t.Errorf("session record %s holds %q", raw, text)
		}
	}
	draw, _ := rdb.HGet(f.ctx, keysFor(f.realm, "alice").devs, "dev-alice").Result()
	if strings.Contains(draw, "Firefox") || strings.Contains(draw, "dev-alice") {
		t.Errorf("device record %s holds its agent or id", draw)
	}
	// A fresh store (another instance, nothing cached) reads them back.
	other := New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	defer other.Close()
	list, _, err := other.Sessions(f.ctx, store.ListRequest{Realm: f.realm, User: "bob", State: "all", Limit: 10, Now: f.at(time.Minute), Policy: f.p})
	if err != nil || len(list) != 1 {
		t.Fatalf("Sessions = %v, %v", list, err)
	}
	if s := list[0]; s.ID != ids[1] || s.Agent != testAgent || !reflect.DeepEqual(s.Location, testLoc) {
		t.Errorf("listed %+v", s)
	}
	devs, err := other.Devices(f.ctx, f.realm, "carol")
	if err != nil || len(devs) != 1 || devs[0].ID != "dev-carol" || devs[0].Agent != testAgent || devs[0].Location.City != "London" {
		t.Errorf("Devices = %+v, %v", devs, err)
	}
}

// A description that is gone leaves the fields empty; nothing fails.
func TestRedisDescriptionMissing(t *testing.T) {
	f, _, srv := descFixture(t)
	id := f.open("a", 0)
	keys, _ := srv.ScanAll(f.ctx, keyPrefix+"[al]:*")
	rdb := srv.Client(t)
	if err := rdb.Del(f.ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	other := New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	defer other.Close()
	list, _, err := other.Sessions(f.ctx, store.ListRequest{Realm: f.realm, User: f.user, State: "all", Limit: 10, Now: f.at(time.Minute), Policy: f.p})
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("Sessions = %v, %v", list, err)
	}
	if s := list[0]; s.Agent != (store.Agent{}) || s.Location.Known() || s.IP != ip1 {
		t.Errorf("listed %+v, want no agent, unknown location, the IP", s)
	}
}

// A refresh that passes another day since the session's start renews its
// descriptions (and its device's); other refreshes send nothing more.
func TestRedisDescriptionRenewal(t *testing.T) {
	f, st, srv := descFixture(t)
	f.p.Idle = 48 * time.Hour
	id := f.open("a", 0)
	rdb := srv.Client(t)
	keys, _ := srv.ScanAll(f.ctx, keyPrefix+"[al]:*")
	if len(keys) != 2 {
		t.Fatalf("description keys = %q", keys)
	}
	shorten := func() {
		for _, k := range keys {
			rdb.PExpire(f.ctx, k, time.Hour)
		}
	}
	ttls := func() (out []time.Duration) {
		for _, k := range keys {
			out = append(out, rdb.PTTL(f.ctx, k).Val())
		}
		return out
	}
	touch := func(at time.Duration) {
		t.Helper()
		r := st.Touch(f.ctx, []store.Touch{{Realm: f.realm, User: f.user, SessionID: id, Now: f.at(at), Policy: f.p}})
		if r[0].Err != nil || r[0].Ended {
			t.Fatalf("Touch(+%v) = %+v", at, r[0])
		}
	}
	shorten()
	touch(23 * time.Hour)
	for _, d := range ttls() {
		if d > time.Hour {
			t.Errorf("renewed within the first day: PTTL %v", d)
		}
	}
	touch(24*time.Hour + time.Minute)
	for _, d := range ttls() {
		if d < f.p.Retention {
			t.Errorf("not renewed after a day: PTTL %v, want about %v", d, f.p.Retention+descGrace)
		}
	}
	shorten()
	touch(25 * time.Hour)
	for _, d := range ttls() {
		if d > time.Hour {
			t.Errorf("renewed twice in one day: PTTL %v", d)
		}
	}
}

// Records written before the stored layout (everything inline) keep
// working: listed, refreshed, ended; their device is rewritten in the new
// layout when a new session uses it.
func TestRedisFirstLayoutRecords(t *testing.T) {
	f, st, srv := descFixture(t)
	rdb := srv.Client(t)
	k := keysFor(f.realm, f.user)
	id := f.open("a", 0, withIP(ip1))
	// Rewrite both records as the first layout wrote them.
	s := &sessionRecord{Session: f.session(id, 0), tokenHash: f.th("a"), ipKey: ip1}
	dev := f.devices()[0]
	if err := rdb.HSet(f.ctx, k.sess, id, encodeSession(s)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(f.ctx, k.devs, dev.ID, encodeDevice(dev)).Err(); err != nil {
		t.Fatal(err)
	}
	if got := f.session(id, time.Minute); got.Agent != testAgent || got.Location.City != "London" {
		t.Errorf("first-layout session read as %+v", got)
	}
	r := st.Touch(f.ctx, []store.Touch{{Realm: f.realm, User: f.user, SessionID: id, Now: f.at(2 * time.Minute), Policy: f.p}})
	if r[0].Err != nil || r[0].Ended {
		t.Fatalf("Touch of a first-layout session = %+v", r[0])
	}
	wantTime(t, "last seen after touch", f.session(id, 3*time.Minute).LastSeen, f.at(2*time.Minute))
	// A new IP on the same token: the IP key follows.
	if res := f.seen("a", 4*time.Minute, withIP(ip2), func(r *store.SeenRequest) { r.IPKey = ip2 }); res.Status != store.StatusActive {
		t.Fatalf("Seen with a new IP = %+v", res)
	}
	if got := f.session(id, 5*time.Minute); got.IP != ip2 || got.Agent != testAgent {
		t.Errorf("first-layout session after IP change = %+v", got)
	}
	if raw, err := rdb.HGet(f.ctx, k.sess, id).Result(); err != nil {
		t.Fatal(err)
	} else if rec, err := decodeStoredSession(raw, id, f.realm, f.user); err != nil || rec.ipKey != ip2 {
		t.Errorf("first-layout record after IP change = %s (%v), want IP key %s", raw, err, ip2)
	}
	other := store.Agent{Browser: "Chrome", BrowserVersion: "125.0", OS: "Windows", DeviceType: "desktop"}
	f.open("b", 6*time.Minute, withAgent(other))
	raw, _ := rdb.HGet(f.ctx, k.devs, dev.ID).Result()
	if d, err := decodeStoredDevice(raw, dev.ID, f.user); err != nil || d.agentRef == "" || strings.Contains(raw, "Firefox") {
		t.Errorf("device after a new session = %s (%v)", raw, err)
	}
	if d := f.devices()[0]; d.Agent != other || !d.FirstSeen.Equal(dev.FirstSeen) {
		t.Errorf("device = %+v, want Chrome, first seen kept", d)
	}
	closed, err := st.EndSession(f.ctx, f.realm, f.user, id, store.EndLogout, f.at(7*time.Minute), f.p)
	if err != nil || closed == nil || closed.ID != id || closed.EndReason != store.EndLogout || closed.Agent != testAgent {
		t.Errorf("EndSession of a first-layout session = %+v, %v", closed, err)
	}
}

// Closed sessions reported by the scripts carry their id and descriptions.
func TestRedisClosedSessionsDescribed(t *testing.T) {
	f, st, _ := descFixture(t)
	a := f.open("a", 0)
	res := f.seen("a", time.Minute, withLogin())
	if len(res.Closed) != 1 || res.Closed[0].ID != a || res.Closed[0].Agent != testAgent || res.Closed[0].Location.City != "London" {
		t.Errorf("Seen closed %+v", res.Closed)
	}
	// From another instance, with nothing cached.
	srvStore := New(redis.NewClient(st.Client().(*redis.Client).Options()))
	defer srvStore.Close()
	all, err := srvStore.EndAll(context.Background(), f.realm, f.user, "", store.EndRevoked, f.at(2*time.Minute), f.p)
	if err != nil || len(all) != 1 || all[0].ID != res.SessionID || all[0].Agent != testAgent || all[0].Location.City != "London" {
		t.Errorf("EndAll = %+v, %v", all, err)
	}
}
