package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestFreePort(t *testing.T) {
	a, b := FreePort(t), FreePort(t)
	if a == b {
		t.Fatalf("FreePort returned %d twice", a)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(a)))
	if err != nil {
		t.Fatalf("port %d from FreePort is not bindable: %v", a, err)
	}
	_ = l.Close()
}

func TestStandalone(t *testing.T) {
	ctx := ctxT(t)
	s := Start(t)

	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr = %q, want 127.0.0.1:<port>", s.Addr)
	}
	if want := "redis://" + s.Addr + "/0"; s.URL() != want {
		t.Fatalf("URL() = %q, want %q", s.URL(), want)
	}
	if _, err := redis.ParseURL(s.URL()); err != nil {
		t.Fatalf("URL() not parseable by go-redis: %v", err)
	}

	c := s.Client(t)
	if err := c.Set(ctx, "sess:1", "alice", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := c.Set(ctx, "other", "x", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx, "sess:1").Result(); err != nil || got != "alice" {
		t.Fatalf("GET = %q, %v; want alice", got, err)
	}
	keys, err := s.ScanAll(ctx, "sess:*")
	if err != nil || !reflect.DeepEqual(keys, []string{"sess:1"}) {
		t.Fatalf("ScanAll = %v, %v; want [sess:1]", keys, err)
	}

	// Outage: commands must fail, and Stop must be idempotent.
	s.Stop()
	s.Stop()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded after Stop")
	}
	if _, err := s.ScanAll(ctx, "*"); err == nil {
		t.Fatal("ScanAll succeeded after Stop")
	}

	// Recovery on the same address; the old client reconnects by itself.
	addr := s.Addr
	s.Restart(t)
	if s.Addr != addr {
		t.Fatalf("Restart moved server from %s to %s", addr, s.Addr)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	// --save "" means nothing survives a restart.
	if err := c.Get(ctx, "sess:1").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after Restart: err = %v, want redis.Nil", err)
	}
	if err := c.Set(ctx, "sess:2", "bob", 0).Err(); err != nil {
		t.Fatalf("SET after Restart: %v", err)
	}

	// Restart while running is allowed too (kills first).
	s.Restart(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after second Restart: %v", err)
	}
}

func TestStandaloneParallelInstancesAreIsolated(t *testing.T) {
	ctx := ctxT(t)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		servers []*Server
	)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := Start(t)
			mu.Lock()
			servers = append(servers, s)
			mu.Unlock()
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, s := range servers {
		if seen[s.Addr] {
			t.Fatalf("two servers share %s", s.Addr)
		}
		seen[s.Addr] = true
		if err := s.Client(t).Set(ctx, "k", i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range servers {
		if got, err := s.Client(t).Get(ctx, "k").Int(); err != nil || got != i {
			t.Fatalf("server %d: k = %d, %v", i, got, err)
		}
	}
}

func TestCluster(t *testing.T) {
	testCluster(t, StartCluster(t))
}

// The fallback path used when redis-cli is missing must build the same
// cluster.
func TestClusterManualCreate(t *testing.T) {
	testCluster(t, startCluster(t, false, false))
}

func testCluster(t *testing.T, c *Cluster) {
	ctx := ctxT(t)
	if len(c.Addrs) != 3 || len(c.Nodes) != 3 {
		t.Fatalf("want 3 masters, got Addrs=%v", c.Addrs)
	}
	cc := c.ClusterClient(t)

	// Keys in many slots: every master must end up holding some.
	const n = 200
	for i := 0; i < n; i++ {
		if err := cc.Set(ctx, fmt.Sprintf("k:%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET k:%d: %v", i, err)
		}
	}
	for _, node := range c.Nodes {
		size, err := node.admin.DBSize(ctx).Result()
		if err != nil || size == 0 {
			t.Fatalf("master %s holds %d keys (%v); slots not spread", node.Addr, size, err)
		}
	}
	keys, err := c.ScanAll(ctx, "k:*")
	if err != nil || len(keys) != n {
		t.Fatalf("ScanAll found %d keys (%v), want %d", len(keys), err, n)
	}
	for i := 0; i < n; i += 37 {
		if got, err := cc.Get(ctx, fmt.Sprintf("k:%d", i)).Int(); err != nil || got != i {
			t.Fatalf("GET k:%d = %d, %v", i, got, err)
		}
	}

	// Multi-key Lua is fine when the keys share a hash tag ...
	const script = `redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return redis.call('GET', KEYS[2])`
	got, err := cc.Eval(ctx, script, []string{"sess:{u1}:a", "idx:{u1}"}, "v").Text()
	if err != nil || got != "v" {
		t.Fatalf("EVAL with shared hash tag = %q, %v; want v", got, err)
	}

	// ... and rejected with CROSSSLOT when they do not.
	k1, k2 := "sess:{u1}:a", "idx:{u2}"
	s1, _ := cc.ClusterKeySlot(ctx, k1).Result()
	s2, _ := cc.ClusterKeySlot(ctx, k2).Result()
	if s1 == s2 {
		t.Fatalf("test keys unexpectedly share slot %d", s1)
	}
	err = cc.Eval(ctx, script, []string{k1, k2}, "v").Err()
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("EVAL across slots: err = %v, want CROSSSLOT", err)
	}
}

// A program's server: in a dir under Options.Dir, with its extra
// arguments, started through Options.Spawn, gone after Close.
func TestLaunch(t *testing.T) {
	ctx := ctxT(t)
	var spawned int
	s, err := Launch(Options{
		Dir:   t.TempDir(),
		Args:  []string{"--hash-max-listpack-value", "100"},
		Spawn: func(cmd *exec.Cmd) error { spawned++; return StartProcess(cmd) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if spawned != 1 || s.PID() == 0 {
		t.Fatalf("spawned %d times, PID %d; want 1 and a process", spawned, s.PID())
	}
	got, err := s.Client(t).ConfigGet(ctx, "hash-max-listpack-value").Result()
	if err != nil || got["hash-max-listpack-value"] != "100" {
		t.Fatalf("CONFIG GET = %v, %v; want the extra argument 100", got, err)
	}
	s.Close()
	if s.PID() != 0 || pingRaw(s.Addr) == nil {
		t.Fatal("server still running after Close")
	}
}

func TestStats(t *testing.T) {
	ctx := ctxT(t)
	s := Start(t)
	c := s.Client(t)
	// Connect first: go-redis's CLIENT SETINFO is an error on Redis < 7.2.
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	before, err := ReadStats(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	m0, err := ReadMemory(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Set(ctx, "k", "not a number", 0).Err()
	if err := c.Incr(ctx, "k").Err(); err == nil {
		t.Fatal("INCR of a string succeeded")
	}
	after, err := ReadStats(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if d := after.Calls["set"] - before.Calls["set"]; d != 1 {
		t.Errorf("set calls grew by %d, want 1", d)
	}
	if d := after.Failed["incr"] - before.Failed["incr"]; d != 1 {
		t.Errorf("incr failed calls grew by %d, want 1", d)
	}
	if d := after.Errors["ERR"] - before.Errors["ERR"]; d != 1 {
		t.Errorf("ERR errors grew by %d, want 1", d)
	}
	if after.Usec["set"] <= 0 {
		t.Errorf("set usec = %d, want > 0", after.Usec["set"])
	}
	m1, err := ReadMemory(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if m0.Keys != 0 || m1.Keys != 1 || m1.Used <= 0 || m1.Data() > m1.Used {
		t.Fatalf("memory before %+v, after %+v; want 0 then 1 key and used_memory > 0", m0, m1)
	}
}
