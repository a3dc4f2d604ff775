package tracker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// fakeClock is the tracker's injected clock. It starts at the wall clock so
// that stores which also consult real time (TTLs) agree with it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// countingStore counts the calls the tracker makes. With gate set, Touch
// blocks until gate is closed (a slow store).
type countingStore struct {
	store.Store
	seen, touchCalls, touched, tokenUser atomic.Int64
	gate                                 chan struct{}

	mu      sync.Mutex
	touches map[string][]time.Time // session id -> touch times, in order
}

func (c *countingStore) Seen(ctx context.Context, req store.SeenRequest) (store.SeenResult, error) {
	c.seen.Add(1)
	return c.Store.Seen(ctx, req)
}

func (c *countingStore) Touch(ctx context.Context, ts []store.Touch) []store.TouchResult {
	c.touchCalls.Add(1)
	c.touched.Add(int64(len(ts)))
	c.mu.Lock()
	if c.touches == nil {
		c.touches = map[string][]time.Time{}
	}
	for _, t := range ts {
		c.touches[t.SessionID] = append(c.touches[t.SessionID], t.Now)
	}
	c.mu.Unlock()
	if c.gate != nil {
		<-c.gate
	}
	return c.Store.Touch(ctx, ts)
}

func (c *countingStore) TokenUser(ctx context.Context, th string) (string, error) {
	c.tokenUser.Add(1)
	return c.Store.TokenUser(ctx, th)
}

func (c *countingStore) touchTimes(id string) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.touches[id]...)
}

// hookLog records the SessionClosed hook.
type hookLog struct {
	mu     sync.Mutex
	closed []*store.Session
	opened []*store.Session
}

func (h *hookLog) hooks() Hooks {
	return Hooks{
		SessionClosed: func(s *store.Session) { h.mu.Lock(); h.closed = append(h.closed, s); h.mu.Unlock() },
		SessionOpened: func(s *store.Session) { h.mu.Lock(); h.opened = append(h.opened, s); h.mu.Unlock() },
	}
}

func (h *hookLog) closedReasons() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := map[string]string{}
	for _, s := range h.closed {
		m[s.ID] = s.EndReason
	}
	return m
}

type trackerOpt func(*Config)

func withClock(c *fakeClock) trackerOpt { return func(cfg *Config) { cfg.Now = c.Now } }
func withHooks(h *hookLog) trackerOpt   { return func(cfg *Config) { cfg.Hooks = h.hooks() } }

func newTestTracker(t testing.TB, st store.Store, opts ...trackerOpt) *Tracker {
	t.Helper()
	cfg := Config{Policy: suitePolicy, Store: st, Keys: testKeyring(t)}
	for _, o := range opts {
		o(&cfg)
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tr.Start()
	t.Cleanup(tr.Stop)
	return tr
}

const testUA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"

func userReq(token, user string) Request {
	return Request{Realm: "shop", Token: token, User: user, IP: ip1, UserAgent: testUA, DeviceID: "dev-1"}
}

func observe(t testing.TB, tr *Tracker, r Request) Result {
	t.Helper()
	res, err := tr.Observe(context.Background(), r)
	if err != nil {
		t.Fatalf("Observe(%s): %v", r.Token, err)
	}
	return res
}

func TestNewTrackerNeedsStoreAndKeys(t *testing.T) {
	if _, err := New(Config{Keys: testKeyring(t)}); err == nil {
		t.Error("New without a store succeeded")
	}
	if _, err := New(Config{Store: redisstore.NewMemory()}); err == nil {
		t.Error("New without a keyring succeeded")
	}
}

func TestTrackerObserveHitsCache(t *testing.T) {
	cs := &countingStore{Store: redisstore.NewMemory()}
	clk := newFakeClock()
	tr := newTestTracker(t, cs, withClock(clk))
	first := observe(t, tr, userReq("tok", "alice"))
	if !first.Tracked || !first.New || first.Refused || first.User != "alice" || first.SessionID == "" {
		t.Fatalf("first Observe = %+v, want a new tracked session", first)
	}
	for i := range 200 {
		clk.Add(100 * time.Millisecond) // 20 s in all: no refresh due
		res := observe(t, tr, userReq("tok", "alice"))
		if !res.Tracked || res.New || res.Refused || res.SessionID != first.SessionID || res.User != "alice" {
			t.Fatalf("Observe %d = %+v, want the cached session %s", i, res, first.SessionID)
		}
	}
	if n := cs.seen.Load(); n != 1 {
		t.Errorf("store Seen called %d times, want 1", n)
	}
	tr.Stop()
	if n := cs.touched.Load(); n != 0 {
		t.Errorf("%d refreshes sent before Refresh elapsed", n)
	}
	list, _, err := cs.Sessions(context.Background(), store.ListRequest{Realm: "shop", User: "alice", State: "active", Now: clk.Now(), Policy: suitePolicy})
	if err != nil || len(list) != 1 || list[0].ID != first.SessionID {
		t.Errorf("store sessions = %v, %v; want [%s]", ids(list), err, first.SessionID)
	}
}

func TestTrackerRefreshAtMostOncePerInterval(t *testing.T) {
	mem := redisstore.NewMemory()
	cs := &countingStore{Store: mem}
	clk := newFakeClock()
	t0 := clk.Now()
	tr := newTestTracker(t, cs, withClock(clk))
	id := observe(t, tr, userReq("tok", "alice")).SessionID
	const steps = 600 // one request a second for ten minutes
	for range steps {
		clk.Add(time.Second)
		if res := observe(t, tr, userReq("tok", "alice")); res.SessionID != id || res.Refused {
			t.Fatalf("Observe = %+v", res)
		}
	}
	tr.Stop() // flushes what is pending
	times := cs.touchTimes(id)
	if want := int(steps * time.Second / suitePolicy.Refresh); len(times) != want {
		t.Errorf("%d refreshes sent in %v, want %d (one per %v)", len(times), steps*time.Second, want, suitePolicy.Refresh)
	}
	for i := 1; i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d < suitePolicy.Refresh {
			t.Errorf("refreshes %d and %d only %v apart", i-1, i, d)
		}
	}
	if n := cs.seen.Load(); n != 1 {
		t.Errorf("store Seen called %d times, want 1", n)
	}
	last := t0.Add(steps * time.Second)
	list, _, _ := mem.Sessions(context.Background(), store.ListRequest{Realm: "shop", User: "alice", State: "all", Now: last, Policy: suitePolicy})
	if len(list) != 1 || !list[0].LastSeen.Equal(last) || !list[0].Active() {
		t.Errorf("stored session = %+v, want active, last seen %v", *list[0], last)
	}
}

func TestTrackerAnonymousToken(t *testing.T) {
	cs := &countingStore{Store: redisstore.NewMemory()}
	clk := newFakeClock()
	tr := newTestTracker(t, cs, withClock(clk))
	anon := userReq("cookie", "")
	if res := observe(t, tr, anon); res.Tracked || res.Refused || res.SessionID != "" {
		t.Fatalf("Observe of an unbound token = %+v, want untracked", res)
	}
	clk.Add(4 * time.Second)
	if res := observe(t, tr, anon); res.Tracked {
		t.Fatalf("second Observe = %+v", res)
	}
	if tu, s := cs.tokenUser.Load(), cs.seen.Load(); tu != 1 || s != 0 {
		t.Errorf("store calls within %v: TokenUser %d, Seen %d; want 1, 0", negativeTTL, tu, s)
	}
	clk.Add(2 * time.Second) // past negativeTTL
	observe(t, tr, anon)
	if n := cs.tokenUser.Load(); n != 2 {
		t.Errorf("TokenUser calls after %v = %d, want 2", negativeTTL, n)
	}
	// The same token with a user is tracked at once.
	if res := observe(t, tr, userReq("cookie", "bob")); !res.Tracked || !res.New || res.User != "bob" {
		t.Errorf("Observe with a user = %+v, want a new session", res)
	}
}

func TestTrackerLoginBindsAndOpens(t *testing.T) {
	mem := redisstore.NewMemory()
	clk := newFakeClock()
	var hooks hookLog
	tr := newTestTracker(t, mem, withClock(clk), withHooks(&hooks))
	ctx := context.Background()
	login, err := tr.Login(ctx, userReq("cookie", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if !login.Tracked || !login.New || login.User != "alice" || login.SessionID == "" {
		t.Fatalf("Login = %+v", login)
	}
	if u, err := mem.TokenUser(ctx, tr.TokenHash("cookie")); err != nil || u != "shop\x00alice" {
		t.Errorf("token bound to %q, %v; want alice in shop", u, err)
	}
	clk.Add(time.Second)
	// Cookie-only requests now belong to alice's session.
	res := observe(t, tr, userReq("cookie", ""))
	if !res.Tracked || res.New || res.User != "alice" || res.SessionID != login.SessionID {
		t.Errorf("Observe by cookie = %+v, want alice's session %s", res, login.SessionID)
	}
	// Logging in again on the same token replaces the session.
	clk.Add(time.Minute)
	again, err := tr.Login(ctx, userReq("cookie", "alice"))
	if err != nil || !again.New || again.SessionID == login.SessionID {
		t.Fatalf("second Login = %+v, %v; want a new session", again, err)
	}
	if r := hooks.closedReasons()[login.SessionID]; r != store.EndReplaced {
		t.Errorf("SessionClosed reason for the first session = %q, want %q", r, store.EndReplaced)
	}
	hooks.mu.Lock()
	opened := len(hooks.opened)
	hooks.mu.Unlock()
	if opened != 2 {
		t.Errorf("SessionOpened called %d times, want 2", opened)
	}
}

// A token belongs to the realm it logged in to: presented under another
// realm (another host name of the site), it is the same session, and
// refused there too once revoked.
func TestTrackerTokenKeepsItsRealm(t *testing.T) {
	mem := redisstore.NewMemory()
	clk := newFakeClock()
	tr := newTestTracker(t, mem, withClock(clk))
	ctx := context.Background()
	login, err := tr.Login(ctx, userReq("cookie", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	other := userReq("cookie", "")
	other.Realm = "localhost"
	clk.Add(time.Second)
	if res := observe(t, tr, other); !res.Tracked || res.Realm != "shop" || res.SessionID != login.SessionID {
		t.Fatalf("Observe under another realm = %+v, want the shop session %s", res, login.SessionID)
	}
	if _, err := tr.RevokeAll(ctx, "shop", "alice", ""); err != nil {
		t.Fatal(err)
	}
	if res := observe(t, tr, other); !res.Refused || res.Reason != store.EndRevoked {
		t.Errorf("Observe under another realm after revocation = %+v, want refused", res)
	}
}

func TestTrackerEndLogout(t *testing.T) {
	mem := redisstore.NewMemory()
	clk := newFakeClock()
	var hooks hookLog
	tr := newTestTracker(t, mem, withClock(clk), withHooks(&hooks))
	ctx := context.Background()
	login, err := tr.Login(ctx, userReq("cookie", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	s, err := tr.End(ctx, "shop", "cookie", "", store.EndLogout, false)
	if err != nil {
		t.Fatal(err)
	}
	if s == nil || s.ID != login.SessionID || s.EndReason != store.EndLogout || s.EndedAt == nil || !s.EndedAt.Equal(clk.Now()) {
		t.Fatalf("End = %+v, want session %s ended now by logout", s, login.SessionID)
	}
	if r := hooks.closedReasons()[login.SessionID]; r != store.EndLogout {
		t.Errorf("SessionClosed reason = %q, want logout", r)
	}
	// Logout is final: the token is refused, whoever presents it, in
	// whichever realm.
	if res := observe(t, tr, userReq("cookie", "")); !res.Refused || res.Reason != store.EndLogout {
		t.Errorf("cookie-only Observe after logout = %+v, want refused", res)
	}
	other := userReq("cookie", "")
	other.Realm = "another-realm"
	if res := observe(t, tr, other); !res.Refused || res.Realm != "shop" {
		t.Errorf("Observe in another realm after logout = %+v, want refused in shop", res)
	}
	if res := observe(t, tr, userReq("cookie", "alice")); !res.Refused {
		t.Errorf("Observe as alice after logout = %+v, want refused", res)
	}
	// A login on the same token (an app that keeps its cookie) opens anew.
	if res, err := tr.Login(ctx, userReq("cookie", "alice")); err != nil || !res.New || res.SessionID == login.SessionID {
		t.Errorf("Login after logout = %+v, %v; want a new session", res, err)
	}
	// Ending an unknown token is no error.
	if s, err := tr.End(ctx, "shop", "never-seen", "", store.EndLogout, false); s != nil || err != nil {
		t.Errorf("End of an unknown token = %+v, %v", s, err)
	}
}

func TestTrackerRevokeReachesOtherTracker(t *testing.T) {
	mem := redisstore.NewMemory()
	clk := newFakeClock()
	var hooks hookLog
	tr1 := newTestTracker(t, mem, withClock(clk), withHooks(&hooks))
	cs2 := &countingStore{Store: mem}
	tr2 := newTestTracker(t, cs2, withClock(clk))
	ctx := context.Background()

	opened := observe(t, tr1, userReq("tok", "alice"))
	other := observe(t, tr1, userReq("tok-2", "alice"))
	for range 3 {
		clk.Add(time.Second)
		if res := observe(t, tr2, userReq("tok", "alice")); res.SessionID != opened.SessionID || res.New || res.Refused {
			t.Fatalf("Observe on the second tracker = %+v", res)
		}
	}
	if n := cs2.seen.Load(); n != 1 {
		t.Fatalf("second tracker asked the store %d times, want 1 (then its cache)", n)
	}
	s, err := tr1.Revoke(ctx, "shop", "alice", opened.SessionID)
	if err != nil || s == nil || s.EndReason != store.EndRevoked {
		t.Fatalf("Revoke = %+v, %v", s, err)
	}
	if r := hooks.closedReasons()[opened.SessionID]; r != store.EndRevoked {
		t.Errorf("SessionClosed reason = %q, want revoked", r)
	}
	// The revoking tracker knows at once; the other hears it through the
	// store's channel.
	if res := observe(t, tr1, userReq("tok", "alice")); !res.Refused || res.Reason != store.EndRevoked || res.SessionID != opened.SessionID {
		t.Errorf("revoking tracker after revoke = %+v, want refused (revoked)", res)
	}
	waitFor(t, "the other tracker refusing the revoked token", func() bool {
		res := observe(t, tr2, userReq("tok", "alice"))
		return res.Refused && res.Reason == store.EndRevoked && res.SessionID == opened.SessionID
	})
	// The user's other session is untouched.
	if res := observe(t, tr2, userReq("tok-2", "alice")); res.Refused || res.SessionID != other.SessionID {
		t.Errorf("other session after revoke = %+v", res)
	}
	if _, err := tr1.Revoke(ctx, "shop", "alice", "nosuchsession"); err == nil {
		t.Error("Revoke of an unknown session succeeded")
	}
}

func TestTrackerRevokeAcrossRedis(t *testing.T) {
	for _, c := range []struct {
		name   string
		shared bool // one RedisStore for both trackers, or one each
	}{
		{"two instances", false},
		{"shared store", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := redistest.Start(t)
			st1 := redisstore.New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
			st2 := st1
			subs := int64(1)
			if !c.shared {
				st2 = redisstore.New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
				subs = 2
			}
			t.Cleanup(func() {
				_ = st1.Close()
				if st2 != st1 {
					_ = st2.Close()
				}
			})
			tr1 := newTestTracker(t, st1)
			tr2 := newTestTracker(t, st2)
			// The instances must be listening before the revoke is
			// published.
			redistest.WaitBlocked(t, srv.Client(t), "xread", int(subs))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			opened := observe(t, tr1, userReq("tok", "alice"))
			if res := observe(t, tr2, userReq("tok", "alice")); res.SessionID != opened.SessionID || res.Refused || res.New {
				t.Fatalf("second tracker = %+v, want session %s", res, opened.SessionID)
			}
			if _, err := tr1.Revoke(ctx, "shop", "alice", opened.SessionID); err != nil {
				t.Fatal(err)
			}
			revoked := time.Now()
			deadline := revoked.Add(time.Second)
			for {
				res := observe(t, tr2, userReq("tok", "alice"))
				if res.Refused && res.Reason == store.EndRevoked {
					t.Logf("refused %v after the revoke", time.Since(revoked))
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("second tracker still lets the revoked token pass after 1 s: %+v", res)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestTrackerIPAndDeviceChangeConsultStore(t *testing.T) {
	mem := redisstore.NewMemory()
	cs := &countingStore{Store: mem}
	clk := newFakeClock()
	tr := newTestTracker(t, cs, withClock(clk))
	r := userReq("tok", "alice")
	id := observe(t, tr, r).SessionID
	observe(t, tr, r)
	if n := cs.seen.Load(); n != 1 {
		t.Fatalf("Seen = %d, want 1", n)
	}
	clk.Add(time.Second)
	r.IP = ip2
	if res := observe(t, tr, r); res.SessionID != id || res.New || res.Refused {
		t.Fatalf("Observe from a new IP = %+v, want the same session", res)
	}
	if n := cs.seen.Load(); n != 2 {
		t.Errorf("Seen after an IP change = %d, want 2", n)
	}
	observe(t, tr, r)
	if n := cs.seen.Load(); n != 2 {
		t.Errorf("Seen for the new IP again = %d, want 2 (cached)", n)
	}
	list, _, _ := mem.Sessions(context.Background(), store.ListRequest{Realm: "shop", User: "alice", State: "active", Now: clk.Now(), Policy: suitePolicy})
	if len(list) != 1 || list[0].IP != ip2 {
		t.Errorf("stored session = %+v, want IP %s", list, ip2)
	}
	r.DeviceID = "dev-2"
	observe(t, tr, r)
	if n := cs.seen.Load(); n != 3 {
		t.Errorf("Seen after a device change = %d, want 3", n)
	}
}

func TestTrackerIdleSessionReopens(t *testing.T) {
	clk := newFakeClock()
	var hooks hookLog
	tr := newTestTracker(t, redisstore.NewMemory(), withClock(clk), withHooks(&hooks))
	first := observe(t, tr, userReq("tok", "alice"))
	clk.Add(suitePolicy.Idle + time.Second)
	res := observe(t, tr, userReq("tok", "alice"))
	if !res.New || res.SessionID == first.SessionID {
		t.Fatalf("Observe after Idle = %+v, want a new session", res)
	}
	if r := hooks.closedReasons()[first.SessionID]; r != store.EndIdle {
		t.Errorf("SessionClosed reason = %q, want idle", r)
	}
}

func TestTrackerTouchOfEndedSessionDropsCache(t *testing.T) {
	mem := redisstore.NewMemory()
	clk := newFakeClock()
	tr := newTestTracker(t, mem, withClock(clk))
	id := observe(t, tr, userReq("tok", "alice")).SessionID
	// Revoked behind the tracker's back: no invalidation.
	if _, err := mem.EndSession(context.Background(), "shop", "alice", id, store.EndRevoked, clk.Now(), suitePolicy); err != nil {
		t.Fatal(err)
	}
	clk.Add(suitePolicy.Refresh) // the next request sends a refresh
	observe(t, tr, userReq("tok", "alice"))
	deadline := time.Now().Add(2 * time.Second)
	for tr.CacheLen() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the refresh reporting an ended session did not drop the cache entry")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if res := observe(t, tr, userReq("tok", "alice")); !res.Refused || res.Reason != store.EndRevoked {
		t.Errorf("Observe after the refresh = %+v, want refused (revoked)", res)
	}
}

func TestTrackerInvalidation(t *testing.T) {
	mem := redisstore.NewMemory()
	cs := &countingStore{Store: mem}
	clk := newFakeClock()
	tr := newTestTracker(t, cs, withClock(clk))
	ctx := context.Background()
	observe(t, tr, userReq("tok", "alice"))
	observe(t, tr, userReq("tok-b", "bob"))
	// Invalidations come from the network: malformed ones must be
	// ignored, not crash the process.
	for _, inv := range []store.Invalidation{
		{Realm: "shop", TokenHash: strings.Repeat("x", 40)},
		{Realm: "shop", TokenHash: tr.TokenHash("tok") + "A"},
		{Realm: "shop", TokenHash: "!!"},
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("invalidation %+v panicked: %v", inv, r)
				}
			}()
			_ = mem.Publish(ctx, inv)
		}()
	}
	// Invalidations arrive through the store's channel, in order: the
	// test waits for the cache to show each one.
	waitCache := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for tr.CacheLen() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the cache holds %d entries, want %d", what, tr.CacheLen(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitCache(2, "after malformed invalidations")
	_ = mem.Publish(ctx, store.Invalidation{Realm: "shop", TokenHash: tr.TokenHash("tok")})
	waitCache(1, "after a token invalidation")
	before := cs.seen.Load()
	observe(t, tr, userReq("tok", "alice"))
	if cs.seen.Load() != before+1 {
		t.Error("an invalidated token was answered from the cache")
	}
	// Another realm's bob: nothing goes. Then this realm's: his entry
	// goes, and since delivery is ordered, the first was applied before.
	_ = mem.Publish(ctx, store.Invalidation{Realm: "other", UserTag: tr.cfg.Keys.UserTag("other", "bob")})
	_ = mem.Publish(ctx, store.Invalidation{Realm: "shop", UserTag: tr.cfg.Keys.UserTag("shop", "bob")})
	waitCache(1, "after bob's invalidation")
	if _, err := tr.Observe(ctx, userReq("tok", "")); err != nil {
		t.Fatal(err)
	}
	if n := cs.seen.Load(); n != before+1 {
		t.Errorf("alice's entry went with another realm's invalidation: %d store calls", n-before)
	}
}

func TestTrackerTouchQueueOverflowDoesNotBlock(t *testing.T) {
	gate := make(chan struct{})
	cs := &countingStore{Store: redisstore.NewMemory(), gate: gate}
	clk := newFakeClock()
	tr := newTestTracker(t, cs, withClock(clk))
	released := false
	release := func() {
		if !released {
			released = true
			close(gate)
		}
	}
	defer release() // never leave the flusher stuck

	const n = touchQueue + 2048
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = userReq(fmt.Sprint("tok-", i), fmt.Sprint("user-", i))
		observe(t, tr, reqs[i])
	}
	clk.Add(suitePolicy.Refresh) // every session's refresh is now due
	start := time.Now()
	var slowest time.Duration
	for _, r := range reqs {
		t0 := time.Now()
		if res := observe(t, tr, r); !res.Tracked || res.Refused {
			t.Fatalf("Observe = %+v", res)
		}
		slowest = max(slowest, time.Since(t0))
	}
	total := time.Since(start)
	if slowest > 500*time.Millisecond {
		t.Errorf("slowest Observe took %v with the store blocked", slowest)
	}
	if total > 10*time.Second {
		t.Errorf("%d Observes took %v with the store blocked", n, total)
	}
	dropped := tr.DroppedRefreshes()
	if dropped <= 0 {
		t.Fatalf("DroppedRefreshes = %d, want > 0 after %d due refreshes with the store blocked", dropped, n)
	}
	release()
	tr.Stop()
	// Each due refresh was either queued (and flushed by Stop) or dropped.
	if sent := cs.touched.Load(); sent+dropped != n {
		t.Errorf("refreshes sent %d + dropped %d = %d, want %d", sent, dropped, sent+dropped, n)
	}
}

// TestDeviceFor: the one place that decides a request's device.
func TestDeviceFor(t *testing.T) {
	tr := newTestTracker(t, redisstore.NewMemory())
	keys := tr.cfg.Keys
	id, cookie := keys.NewDevice()
	if got, set, minted := tr.DeviceFor(cookie, true, "r", "alice", "UA", ip1); got != id || set != "" || minted {
		t.Errorf("a valid cookie: %q %q %v; want %q, nothing to set", got, set, minted, id)
	}
	d1, set1, m1 := tr.DeviceFor("forged.cookie", true, "r", "alice", "UA", ip1)
	d2, _, _ := tr.DeviceFor("", true, "r", "alice", "UA", ip1)
	if d1 != d2 || m1 || set1 != keys.DeviceCookie(d1) {
		t.Errorf("derived: %q and %q (minted %v, cookie %q); want one stable id and its cookie", d1, d2, m1, set1)
	}
	if d3, _, _ := tr.DeviceFor("", true, "r", "alice", "UA", ip2); d3 == d1 {
		t.Error("another IP derives the same device")
	}
	r1, s1, mr1 := tr.DeviceFor("", false, "r", "alice", "UA", ip1)
	r2, _, _ := tr.DeviceFor("", false, "r", "alice", "UA", ip1)
	if r1 == r2 || !mr1 || s1 != keys.DeviceCookie(r1) {
		t.Errorf("random: %q and %q (minted %v)", r1, r2, mr1)
	}
	if tok, ok := tr.DeviceTokenOf("r", "alice", cookie); !ok || tok != DeviceToken("r", "alice", id) {
		t.Errorf("DeviceTokenOf = %q, %v", tok, ok)
	}
	if _, ok := tr.DeviceTokenOf("r", "alice", "forged"); ok {
		t.Error("DeviceTokenOf accepted a forged cookie")
	}
}

// A session's cookie presented without its device cookie, from another
// browser or place (copied), is another device: never answered from the
// cache as the session's device, never handed the session's device cookie.
// The same cookie-less client stays one device.
func TestTrackerCopiedCookieIsAnotherDevice(t *testing.T) {
	mem := redisstore.NewMemory()
	cs := &countingStore{Store: mem}
	tr := newTestTracker(t, cs)
	first := Request{Realm: "shop", Token: "tok", User: "alice", IP: ip1, UserAgent: testUA}
	res := observe(t, tr, first)
	if res.SetDeviceCookie == "" || res.DeviceID == "" {
		t.Fatalf("first sight without a device cookie: %+v, want a device cookie set", res)
	}
	own, ownCookie := res.DeviceID, res.SetDeviceCookie
	first.DeviceCookie = ownCookie
	if r := observe(t, tr, first); r.DeviceID != own || r.SetDeviceCookie != "" {
		t.Fatalf("the first browser with its cookie: %+v", r)
	}
	seen := cs.seen.Load()
	var copies []string
	for i, copied := range []Request{
		{Realm: "shop", Token: "tok", User: "alice", IP: ip2, UserAgent: testUA},                                 // elsewhere, no device cookie
		{Realm: "shop", Token: "tok", User: "alice", IP: ip1, UserAgent: "curl/8.0", DeviceCookie: "forged.sig"}, // another client, a forged one
	} {
		r := observe(t, tr, copied)
		if r.Refused || r.SessionID != res.SessionID {
			t.Fatalf("copy %d: %+v, want the same session (max_devices off)", i, r)
		}
		if r.DeviceID == own || r.SetDeviceCookie == ownCookie || r.SetDeviceCookie == "" {
			t.Errorf("copy %d got device %q cookie %q; the session's are %q %q", i, r.DeviceID, r.SetDeviceCookie, own, ownCookie)
		}
		if n := cs.seen.Load(); n != seen+int64(i)+1 {
			t.Errorf("copy %d answered without the store (Seen %d, want %d)", i, n, seen+int64(i)+1)
		}
		copies = append(copies, r.DeviceID)
		// The same cookie-less client again: the same device.
		if again := observe(t, tr, copied); again.DeviceID != r.DeviceID {
			t.Errorf("copy %d again: device %q, then %q", i, r.DeviceID, again.DeviceID)
		}
	}
	devs, err := mem.Devices(context.Background(), "shop", "alice")
	if err != nil || len(devs) != 3 {
		t.Errorf("devices = %d (%v), want 3: the session's and one per copy (%v)", len(devs), err, copies)
	}
}
