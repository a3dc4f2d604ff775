package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// TestClusterFailoverRefreshesSlotMap: after the master holding a user's
// slot is killed and its replica takes over, the store built by NewClient
// reads and writes that user again within a second, instead of dialling the
// dead master until go-redis's periodic reload (60 s by default).
func TestClusterFailoverRefreshesSlotMap(t *testing.T) {
	t.Parallel()
	c := redistest.StartClusterWithReplicas(t)
	rdb := NewClient(&redis.UniversalOptions{
		Addrs: c.Addrs, IsClusterMode: true, DisableIdentity: true, MaxRetries: 1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, PoolTimeout: time.Second,
	})
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("NewClient with the cluster flag = %T, want a cluster client", rdb)
	}
	st := New(rdb)
	t.Cleanup(func() { _ = st.Close() })
	f := newStoreSuite(st, testKeyring(t)).fixture(t)
	f.open("before", 0)

	killed, takeover := c.KillMasterOf(t, keysFor(f.realm, f.user).meta)
	tookOver := time.Now()
	var failures int
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		list, _, err := st.Sessions(ctx, store.ListRequest{Realm: f.realm, User: f.user, State: "all", Now: f.at(time.Second), Policy: f.p})
		cancel()
		if err == nil {
			if len(list) != 1 {
				t.Fatalf("after the failover the replica lists %d sessions, want the 1 opened before", len(list))
			}
			break
		}
		failures, lastErr = failures+1, err
		if time.Since(tookOver) > 10*time.Second {
			t.Fatalf("reads still failing 10 s after the replica took over: %v", err)
		}
	}
	readable := time.Since(tookOver)
	f.open("after", 2*time.Second)
	t.Logf("killed %s, replica took over after %v; reads answered %v later (%d failed reads, last: %v)",
		killed, takeover.Round(time.Millisecond), readable.Round(time.Millisecond), failures, lastErr)
	if readable > time.Second {
		t.Errorf("reads answered %v after the takeover, want within 1 s", readable)
	}
}
