package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// startSentinel runs a real Redis Sentinel (redis-server --sentinel) that
// monitors master under the name "sessions".
func startSentinel(t *testing.T, master *redistest.Server) string {
	t.Helper()
	port := redistest.FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor sessions %s 1\nsentinel down-after-milliseconds sessions 2000\n",
		port, dir, hostPort(master.Addr))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	log, err := os.Create(filepath.Join(dir, "sentinel.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis sentinel: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("redis-cli", "-p", fmt.Sprint(port), "SENTINEL", "get-master-addr-by-name", "sessions").CombinedOutput()
		if err == nil && strings.TrimSpace(string(out)) != "" && !strings.Contains(string(out), "ERR") {
			return addr
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
			t.Fatalf("sentinel did not come up: %s %v\n%s", out, err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hostPort turns host:port into "host port", as sentinel monitor wants it.
func hostPort(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return host + " " + port
}

// TestSentinelStore: a store block with the Sentinels' addresses and
// master_name goes through Sentinel to the master, and sessions are tracked.
func TestSentinelStore(t *testing.T) {
	master := redistest.Start(t)
	sentinel := startSentinel(t, master)
	_, up := startShop(t, true)
	env := storeEnv{name: "sentinel", fragment: "store {\n\taddrs " + sentinel + "\n\tmaster_name sessions\n}\nsecret " + e2eSecret}
	c := startCaddy(t, caddyfile("", shopSite(up, sessionsConf(env, "realm sentinel", "login @login"), "")))

	alice := newClient(t, uaChromeWindows, ipLondon)
	if r := alice.login(c.Site, "alice", "alice"); r.setCookie("shop_session") == nil {
		t.Fatalf("login through Caddy failed: %s", r)
	}
	l := c.Sessions(t, "sentinel", "alice", "active")
	if l.Total != 1 {
		t.Fatalf("want one session stored through Sentinel, got %s", dump(l))
	}
	// The data is in the master Sentinel pointed at.
	keys, err := master.ScanAll(t.Context(), "cs:*")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("the master Sentinel names holds no session keys")
	}
}
