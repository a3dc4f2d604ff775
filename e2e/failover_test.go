package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
)

// TestSentinelSwitchOverUnderLoad: a master with a replica behind a real
// Sentinel; under page-view load, Sentinel switches over to the replica.
// No request gets a 5xx or goes unanswered, a cookie revoked before the
// switch stays refused through it, and after it logins are tracked and a
// revocation works on the new master.
func TestSentinelSwitchOverUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	master := redistest.Start(t)
	replica := redistest.Start(t)
	mhost, mport, _ := net.SplitHostPort(master.Addr)
	if err := replica.Client(t).Do(ctx, "REPLICAOF", mhost, mport).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, 50*time.Millisecond, func() (bool, string) {
		info, _ := replica.Client(t).Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up"), "replica not in sync: " + info
	})
	sentinel := startSentinel(t, master)
	_, sport, _ := net.SplitHostPort(sentinel)
	sentinelCLI := func(args ...string) string {
		out, _ := exec.Command("redis-cli", append([]string{"-p", sport}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	// Sentinel learns of the replica from the master's INFO (every 10 s).
	eventually(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
		out := sentinelCLI("SENTINEL", "replicas", "sessions")
		_, rport, _ := net.SplitHostPort(replica.Addr)
		return strings.Contains(out, rport), "sentinel does not know the replica yet: " + out
	})

	_, up := startShop(t, true)
	const realm = "switchover"
	c := startCaddy(t, caddyfile("", shopSite(up, "store {\n\taddrs "+sentinel+"\n\tmaster_name sessions\n}\nsecret "+e2eSecret+
		"\nrealm "+realm+"\nlogin @login\nlogout @logout", "")))

	load := startLoad(t, c, realm)
	load.mark()
	if out := sentinelCLI("SENTINEL", "FAILOVER", "sessions"); out != "OK" {
		t.Fatalf("SENTINEL FAILOVER: %s", out)
	}
	eventually(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		out := sentinelCLI("SENTINEL", "get-master-addr-by-name", "sessions")
		_, rport, _ := net.SplitHostPort(replica.Addr)
		return strings.HasSuffix(out, rport), "not switched over yet: " + out
	})
	// Tracking works on the new master.
	trackedAgain(t, c, realm)
	load.finish("switch-over")
	if info, _ := replica.Client(t).Info(ctx, "replication").Result(); !strings.Contains(info, "role:master") {
		t.Errorf("the replica was not promoted: %s", info)
	}
}

// TestClusterMasterFailoverUnderLoad: a Redis Cluster with a replica per
// master; under page-view load, the master holding the user's keys is
// killed and its replica takes over. No request gets a 5xx or goes
// unanswered, a cookie revoked before the kill stays refused, and within a
// bound after the takeover the admin API reads the user again, logins are
// tracked and a revocation works.
func TestClusterMasterFailoverUnderLoad(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartClusterWithReplicas(t)
	_, up := startShop(t, true)
	const realm = "clusterfail"
	c := startCaddy(t, caddyfile("", shopSite(up, "store {\n\taddrs "+strings.Join(cluster.Addrs, " ")+"\n\tcluster\n}\nsecret "+e2eSecret+
		"\nrealm "+realm+"\nlogin @login\nlogout @logout", "")))

	load := startLoad(t, c, realm)
	load.mark()
	killed, takeover := cluster.KillMasterOf(t, redisstore.Keys(realm, "alice").User[0].Key)
	t.Logf("killed %s; its replica took over after %v", killed, takeover.Round(time.Millisecond))
	tookOver := time.Now()

	// The admin API reads the user from the promoted replica.
	readable := eventually(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		status, body := c.adminDo(t, http.MethodGet, userPath(realm, "alice")+"/sessions?state=active")
		return status == http.StatusOK, fmt.Sprintf("admin read after the takeover: %d %s", status, body)
	})
	// Tracking works on the new master.
	trackedAgain(t, c, realm)
	tracked := time.Since(tookOver)
	load.finish("cluster failover")
	t.Logf("after the takeover: admin reads answered within %v, a new login tracked within %v",
		readable.Round(time.Millisecond), tracked.Round(time.Millisecond))
	// The bound the README states: the client's slot map is refreshed at
	// the first failed dial, not at go-redis's next periodic reload (60 s).
	if bound := 2 * time.Second; readable > bound {
		t.Errorf("admin reads failed for %v after the takeover, more than %v", readable, bound)
	}
}

// loadRun sends page views on two cookies, one of them revoked, until
// finish, and counts what must never happen.
type loadRun struct {
	t                                            *testing.T
	requests, unanswered, serverErrors, admitted atomic.Int64
	before                                       int64
	example                                      sync.Map
	stop                                         chan struct{}
	wg                                           sync.WaitGroup
}

// alice logs in from London and a thief from Milton; the thief's session
// is revoked before the load starts.
func startLoad(t *testing.T, c *Caddy, realm string) *loadRun {
	alice := newClient(t, uaChromeWindows, ipLondon)
	alice.login(c.Site, "alice", "alice")
	thief := newClient(t, uaIPhone, ipMilton)
	thief.login(c.Site, "alice", "alice")
	revokedCookie := thief.cookieHeader(c.Site)
	c.Revoke(t, realm, "alice", activeByIP(t, c.Sessions(t, realm, "alice", "active"), ipMilton).ID)
	liveCookie, via := alice.cookieHeader(c.Site), alice

	l := &loadRun{t: t, stop: make(chan struct{})}
	for _, w := range []struct {
		cookie  string
		revoked bool
	}{{liveCookie, false}, {revokedCookie, true}} {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				r, err := via.send(false, http.MethodGet, c.Site+"/account", nil, func(q *http.Request) { q.Header.Set("Cookie", w.cookie) })
				l.requests.Add(1)
				switch {
				case err != nil:
					l.unanswered.Add(1)
					l.example.LoadOrStore("unanswered", err.Error())
				case r.Status >= 500:
					l.serverErrors.Add(1)
					l.example.LoadOrStore("5xx", r.String())
				case w.revoked && r.Status == http.StatusOK:
					l.admitted.Add(1)
					l.example.LoadOrStore("admitted", r.String())
				}
			}
		}()
	}
	return l
}

// mark notes where the fault starts.
func (l *loadRun) mark() { l.before = l.requests.Load() }

// finish stops the load and fails the test on anything counted.
func (l *loadRun) finish(fault string) {
	close(l.stop)
	l.wg.Wait()
	l.example.Range(func(k, v any) bool { l.t.Errorf("%s, e.g. %v", k, v); return true })
	l.t.Logf("%s under load: %d requests (%d during the fault and after), %d unanswered, %d 5xx, %d revoked admitted",
		fault, l.requests.Load(), l.requests.Load()-l.before, l.unanswered.Load(), l.serverErrors.Load(), l.admitted.Load())
}

// trackedAgain waits until a new login of alice is recorded and then
// revokes it: the store takes writes again after a fault.
func trackedAgain(t *testing.T, c *Caddy, realm string) {
	t.Helper()
	var newID string
	eventually(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
		nc := newClient(t, uaFirefoxLinux, ipOther)
		nc.login(c.Site, "alice", "alice")
		status, body := c.adminDo(t, http.MethodGet, userPath(realm, "alice")+"/sessions?state=active")
		if status != http.StatusOK || !strings.Contains(string(body), ipOther) {
			return false, fmt.Sprintf("login after the fault not tracked yet: %d %s", status, body)
		}
		newID = activeByIP(t, c.Sessions(t, realm, "alice", "active"), ipOther).ID
		return true, ""
	})
	c.Revoke(t, realm, "alice", newID)
}
