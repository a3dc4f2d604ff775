package tracker

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// Contradictory admin updates racing through two instances end in a state
// one of them would have produced, and every instance acts on that state:
// a device blocked and unblocked at once is, in the end, blocked or not,
// and a new session on it is refused on both instances exactly when it is
// blocked; exemption and limits racing end with one writer's value each.
func TestContradictoryAdminUpdatesRacing(t *testing.T) {
	srv := redistest.Start(t)
	newStore := func() *redisstore.Store {
		st := redisstore.New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	a, b := newTestTracker(t, newStore()), newTestTracker(t, newStore())
	ctx := context.Background()
	alice := userReq("tok-0", "alice")
	alice.DeviceID = "dev-raced"
	observe(t, a, alice)

	limitsA := restrict.Limits{Sessions: &restrict.Limit{Max: 2}}
	limitsB := restrict.Limits{Sessions: &restrict.Limit{Max: 5}}
	var wg sync.WaitGroup
	for i := range 40 {
		tr := []*Tracker{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := tr.BlockDevice(ctx, "shop", "alice", "dev-raced", i%4 < 2); err != nil {
				t.Errorf("BlockDevice: %v", err)
			}
			if err := tr.SetExempt(ctx, "shop", "alice", i%3 == 0); err != nil {
				t.Errorf("SetExempt: %v", err)
			}
			l := limitsA
			if i%2 == 1 {
				l = limitsB
			}
			if err := tr.SetLimits(ctx, "shop", "alice", l); err != nil {
				t.Errorf("SetLimits: %v", err)
			}
		}()
	}
	wg.Wait()

	devs, err := a.Devices(ctx, "shop", "alice")
	if err != nil || len(devs) != 1 {
		t.Fatalf("devices %v, %v", devs, err)
	}
	blocked := devs[0].Blocked
	for i, tr := range []*Tracker{a, b} {
		r := userReq(fmt.Sprintf("tok-new-%d", i), "alice")
		r.DeviceID = "dev-raced"
		res := observe(t, tr, r)
		if res.Refused != blocked || (blocked && res.Reason != store.EndDeviceBlocked) {
			t.Errorf("instance %d: a new session on the device = %+v; the store says blocked=%v", i, res, blocked)
		}
	}
	sum, err := b.User(ctx, "shop", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Limits == nil || sum.Limits.Sessions == nil || (sum.Limits.Sessions.Max != 2 && sum.Limits.Sessions.Max != 5) {
		t.Errorf("limits after the race: %+v, want one writer's", sum.Limits)
	}
	t.Logf("after the race: blocked=%v exempt=%v max_sessions=%d", blocked, sum.Exempt, sum.Limits.Sessions.Max)
}
