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

	alice := newClient(t, uaChromeWindows, ipLondon)
	alice.login(c.Site, "alice", "alice")
	thief := newClient(t, uaIPhone, ipMilton)
	thief.login(c.Site, "alice", "alice")
	thiefCookie := thief.cookieHeader(c.Site)
	revoked := activeByIP(t, c.Sessions(t, realm, "alice", "active"), ipMilton)
	c.Revoke(t, realm, "alice", revoked.ID)
	aliceCookie := alice.cookieHeader(c.Site)

	var requests, unanswered, serverErrors, admitted atomic.Int64
	var example sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range []struct {
		cookie  string
		revoked bool
	}{{aliceCookie, false}, {thiefCookie, true}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := alice.send(false, http.MethodGet, c.Site+"/account", nil, func(q *http.Request) { q.Header.Set("Cookie", w.cookie) })
				requests.Add(1)
				switch {
				case err != nil:
					unanswered.Add(1)
					example.LoadOrStore("unanswered", err.Error())
				case r.Status >= 500:
					serverErrors.Add(1)
					example.LoadOrStore("5xx", r.String())
				case w.revoked && r.Status == http.StatusOK:
					admitted.Add(1)
					example.LoadOrStore("admitted", r.String())
				}
			}
		}()
	}

	before := requests.Load()
	if out := sentinelCLI("SENTINEL", "FAILOVER", "sessions"); out != "OK" {
		t.Fatalf("SENTINEL FAILOVER: %s", out)
	}
	eventually(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		out := sentinelCLI("SENTINEL", "get-master-addr-by-name", "sessions")
		_, rport, _ := net.SplitHostPort(replica.Addr)
		return strings.HasSuffix(out, rport), "not switched over yet: " + out
	})
	// Tracking works on the new master: a new login is recorded there
	// and its revocation refuses it.
	var newID string
	eventually(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
		nc := newClient(t, uaFirefoxLinux, ipOther)
		nc.login(c.Site, "alice", "alice")
		status, body := c.adminDo(t, http.MethodGet, userPath(realm, "alice")+"/sessions?state=active")
		if status != http.StatusOK || !strings.Contains(string(body), ipOther) {
			return false, fmt.Sprintf("login after the switch not tracked yet: %d %s", status, body)
		}
		newID = activeByIP(t, c.Sessions(t, realm, "alice", "active"), ipOther).ID
		return true, ""
	})
	c.Revoke(t, realm, "alice", newID)
	close(stop)
	wg.Wait()
	example.Range(func(k, v any) bool { t.Errorf("%s, e.g. %v", k, v); return true })
	t.Logf("switch-over under load: %d requests (%d during the switch and after), %d unanswered, %d 5xx, %d revoked admitted",
		requests.Load(), requests.Load()-before, unanswered.Load(), serverErrors.Load(), admitted.Load())
	if info, _ := replica.Client(t).Info(ctx, "replication").Result(); !strings.Contains(info, "role:master") {
		t.Errorf("the replica was not promoted: %s", info)
	}
}
