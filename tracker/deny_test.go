package tracker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
	"github.com/redis/go-redis/v9"
)

// downStore is a store that can be made unreachable.
type downStore struct {
	store.Store
	down atomic.Bool
}

var errDown = errors.New("store unreachable")

func (d *downStore) Seen(ctx context.Context, req store.SeenRequest) (store.SeenResult, error) {
	if d.down.Load() {
		return store.SeenResult{}, errDown
	}
	return d.Store.Seen(ctx, req)
}

func (d *downStore) TokenUser(ctx context.Context, th string) (string, error) {
	if d.down.Load() {
		return "", errDown
	}
	return d.Store.TokenUser(ctx, th)
}

// waitFor waits for a fact, failing after a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDenyListOutlivesTheStore: what an instance learns is refused
// (another instance's revocation, logout, device block, erasure) stays
// refused from memory while the store is unreachable; a token it never
// knew passes as the store's outage behaviour says (an error: untracked,
// or 503 with fail_closed); a new login on a held token lifts it.
func TestDenyListOutlivesTheStore(t *testing.T) {
	mem := redisstore.NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	ds := &downStore{Store: mem}
	clk := newFakeClock()
	admin := newTestTracker(t, mem, withClock(clk)) // another instance
	tr := newTestTracker(t, ds, withClock(clk))
	ctx := context.Background()
	refusedWhileDown := func(tok, reason string) {
		t.Helper()
		ds.down.Store(true)
		defer ds.down.Store(false)
		res, err := tr.Observe(ctx, userReq(tok, ""))
		if err != nil || !res.Refused || res.Reason != reason {
			t.Errorf("Observe(%s) with the store down = %+v, %v; want refused as %s", tok, res, err, reason)
		}
	}

	// Revocation on another instance.
	if _, err := tr.Login(ctx, userReq("t-revoked", "alice")); err != nil {
		t.Fatal(err)
	}
	observe(t, tr, userReq("t-revoked", ""))
	if _, err := admin.RevokeAll(ctx, "shop", "alice", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the revocation on the deny list", func() bool { return tr.DeniedTokens() == 1 })
	refusedWhileDown("t-revoked", store.EndRevoked)

	// Logout, and a device block, on another instance.
	if _, err := tr.Login(ctx, userReq("t-logout", "bob")); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.End(ctx, "shop", "t-logout", "", store.EndLogout, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the logout on the deny list", func() bool { return tr.DeniedTokens() == 2 })
	refusedWhileDown("t-logout", store.EndLogout)

	carol := userReq("t-carol", "carol")
	carol.DeviceID = "dev-carol"
	if _, err := tr.Login(ctx, carol); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.BlockDevice(ctx, "shop", "carol", "dev-carol", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the device block on the deny list", func() bool { return tr.DeniedTokens() == 3 })
	refusedWhileDown("t-carol", store.EndDeviceBlocked)
	if _, err := admin.BlockDevice(ctx, "shop", "carol", "dev-carol", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unblock lifting it", func() bool { return tr.DeniedTokens() == 2 })

	// A token this instance never knew: the outage behaviour.
	ds.down.Store(true)
	if _, err := tr.Observe(ctx, userReq("t-unknown", "")); err == nil {
		t.Error("an unknown token with the store down: no error")
	}
	ds.down.Store(false)

	// A new login on the revoked token (an app that keeps its cookie).
	if _, err := tr.Login(ctx, userReq("t-revoked", "alice")); err != nil {
		t.Fatal(err)
	}
	if n := tr.DeniedTokens(); n != 1 {
		t.Errorf("after a login on it, %d tokens denied, want 1", n)
	}
	ds.down.Store(true)
	if res, err := tr.Observe(ctx, userReq("t-revoked", "")); err != nil || res.Refused {
		t.Errorf("the logged-in token with the store down = %+v, %v; want served from the cache", res, err)
	}
	ds.down.Store(false)
}

// TestStartingInstanceReplaysDenials: an instance that starts after a
// revocation, and never cached the token, still refuses it while the store
// is unreachable: it replays the invalidation log, which names the
// revoked session's tokens (the rotated one too), and the denial lasts the
// revoke hold from the revocation, not from the replay.
func TestStartingInstanceReplaysDenials(t *testing.T) {
	mem := redisstore.NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	ctx := context.Background()
	clk := newFakeClock()
	first := newTestTracker(t, mem, withClock(clk))
	res, err := first.Login(ctx, userReq("t-old", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Alias(ctx, "shop", "alice", res.SessionID, "t-rotated"); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Login(ctx, userReq("t-kept", "bob")); err != nil {
		t.Fatal(err)
	}
	if _, err := first.RevokeAll(ctx, "shop", "alice", ""); err != nil {
		t.Fatal(err)
	}

	ds := &downStore{Store: mem}
	later := newTestTracker(t, ds, withClock(clk))
	waitFor(t, "the replayed revocation on the new instance's deny list", func() bool { return later.DeniedTokens() == 2 })
	ds.down.Store(true)
	for _, tok := range []string{"t-old", "t-rotated"} {
		if res, err := later.Observe(ctx, userReq(tok, "")); err != nil || !res.Refused || res.Reason != store.EndRevoked {
			t.Errorf("%s on the new instance with the store down = %+v, %v; want refused as revoked", tok, res, err)
		}
	}
	if _, err := later.Observe(ctx, userReq("t-kept", "")); err == nil {
		t.Error("bob's token (not revoked, never cached here) with the store down: no error; want the outage behaviour")
	}

	// Past the hold, counted from the revocation, a replay denies nothing.
	clk.Add(suitePolicy.RevokeHold + time.Second)
	ds.down.Store(false)
	if err := mem.Publish(ctx, store.Invalidation{Realm: "probe"}); err != nil {
		t.Fatal(err)
	}
	// A tracker replays the log before it reads news: once a subscriber
	// started after it has heard the probe, so has it, or nearly; wait
	// for the fact on the tracker's own reader through its cache drop.
	third := newTestTracker(t, mem, withClock(clk))
	var heard atomic.Bool
	stop := mem.Subscribe(func(inv store.Invalidation) { heard.Store(heard.Load() || inv.Realm == "probe") }, nil)
	defer stop()
	waitFor(t, "the log read to its end", heard.Load)
	if n := third.DeniedTokens(); n != 0 {
		t.Errorf("an instance started after the hold denies %d tokens, want 0", n)
	}
}

// TestDenyListOutlivesAnEmptyStore: Redis comes back empty (a restart
// without persistence): the store no longer knows the revocation and would
// open a new session for the token; the instance that knows refuses it.
func TestDenyListOutlivesAnEmptyStore(t *testing.T) {
	srv := redistest.Start(t)
	st := redisstore.New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	tr := newTestTracker(t, st)
	res, err := tr.Login(ctx, userReq("t-revoked", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Revoke(ctx, "shop", "alice", res.SessionID); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Request{userReq("t-revoked", ""), userReq("t-revoked", "alice")} {
		if got := observe(t, tr, r); !got.Refused || got.Reason != store.EndRevoked {
			t.Errorf("the revoked token (user %q) after Redis came back empty = %+v, want refused as revoked", r.User, got)
		}
	}
	// The instance noticed the log lost its entries and wrote its deny
	// list back: an instance that starts now learns the revocation too.
	st2 := redisstore.New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	t.Cleanup(func() { _ = st2.Close() })
	waitFor(t, "the deny list written back to the log", func() bool {
		n, err := srv.Client(t).XLen(ctx, redisstore.InvalidationChannel).Result()
		return err == nil && n > 0
	})
	later := newTestTracker(t, st2)
	waitFor(t, "a new instance replaying the written-back deny list", func() bool { return later.DeniedTokens() == 1 })
	if got := observe(t, later, userReq("t-revoked", "")); !got.Refused || got.Reason != store.EndRevoked {
		t.Errorf("the revoked token on an instance started after Redis came back empty = %+v", got)
	}
}
