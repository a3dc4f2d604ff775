package benchkit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions say what StartRedis starts.
type RedisOptions struct {
	Cluster bool     // a 3-master cluster instead of one standalone server
	Args    []string // extra redis-server arguments
	// Identity lets go-redis send CLIENT SETINFO on every new connection
	// of Nodes and Client. Off, as Redis before 7.2 answers it with an
	// error (harmless, but it counts in errorstats as ERR and would hide
	// real errors there).
	Identity bool
}

// Redis is the Redis a program started: one standalone server or a
// 3-master cluster. Only servers the program started are ever contacted.
type Redis struct {
	Cluster  bool
	Addrs    []string
	Procs    []*Proc
	Nodes    []*redis.Client // one per server, for INFO and the like
	Version  string          // redis_version of the first server
	identity bool
}

// Close closes the clients in Nodes.
func (r *Redis) Close() {
	for _, c := range r.Nodes {
		_ = c.Close()
	}
}

// Client is a client for the whole setup (cluster-aware when needed).
func (r *Redis) Client(poolSize int) redis.UniversalClient {
	if r.Cluster {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: r.Addrs, PoolSize: poolSize, DisableIdentity: !r.identity})
	}
	return redis.NewClient(&redis.Options{Addr: r.Addrs[0], PoolSize: poolSize, DisableIdentity: !r.identity})
}

// StartRedis starts redis-server (and for a cluster redis-cli --cluster
// create) from PATH as children of e, without persistence, on free
// loopback ports, and waits until they serve.
func StartRedis(e *Env, o RedisOptions) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH (%v); run scripts/install-deps.sh", err)
	}
	rs := &Redis{Cluster: o.Cluster, identity: o.Identity}
	n := 1
	if o.Cluster {
		n = 3
		if _, err := exec.LookPath("redis-cli"); err != nil {
			return nil, fmt.Errorf("redis-cli not found on PATH (needed for -cluster); run scripts/install-deps.sh")
		}
	}
	for i := range n {
		p, addr, err := startRedisServer(e, bin, fmt.Sprintf("redis%d", i), o.Cluster, o.Args)
		if err != nil {
			return nil, err
		}
		rs.Procs = append(rs.Procs, p)
		rs.Addrs = append(rs.Addrs, addr)
		rs.Nodes = append(rs.Nodes, redis.NewClient(&redis.Options{Addr: addr, PoolSize: 2, DisableIdentity: !o.Identity}))
	}
	if o.Cluster {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		args := append([]string{"--cluster", "create"}, rs.Addrs...)
		args = append(args, "--cluster-replicas", "0", "--cluster-yes")
		out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
		}
		if err := rs.waitClusterReady(ctx); err != nil {
			return nil, err
		}
	}
	info, err := rs.Nodes[0].Info(context.Background(), "server").Result()
	if err == nil {
		rs.Version = ParseInfo(info)["redis_version"]
	}
	return rs, nil
}

// startRedisServer starts one redis-server on a free loopback port without
// persistence, in its own dir under the run's temp dir.
func startRedisServer(e *Env, bin, name string, cluster bool, extra []string) (*Proc, string, error) {
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	var lastErr error
	for range 5 {
		var port int
		var err error
		if cluster {
			port, err = clusterPort()
		} else {
			port, err = FreePort()
		}
		if err != nil {
			return nil, "", err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no", "--logfile", "",
		}
		if cluster {
			args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-node-timeout", "2000")
		}
		args = append(args, extra...)
		logPath := filepath.Join(dir, "redis.log")
		p, err := e.Start(name, exec.Command(bin, args...), logPath)
		if err != nil {
			return nil, "", err
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if !p.Running() {
				lastErr = fmt.Errorf("redis-server %s exited during startup; log %s:\n%s", addr, logPath, p.LogTail(3000))
				break
			}
			if pingRaw(addr) == nil {
				return p, addr, nil
			}
			if time.Now().After(deadline) {
				p.Kill()
				return nil, "", fmt.Errorf("redis-server %s did not answer PING within 10s; log:\n%s", addr, p.LogTail(3000))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(lastErr.Error(), "Address already in use") {
			return nil, "", lastErr
		}
	}
	return nil, "", lastErr
}

// clusterPort is a port p with p and its bus port p+10000 free, from
// [20000,30000) so the bus port stays below 65536.
func clusterPort() (int, error) {
	for range 200 {
		p := 20000 + rand.IntN(10000)
		if portFree(p) && portFree(p+10000) && claimPort(p) {
			return p, nil
		}
	}
	return 0, errors.New("no free client/bus port pair after 200 attempts")
}

func pingRaw(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 250*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func (r *Redis) waitClusterReady(ctx context.Context) error {
	want := map[string]string{
		"cluster_state": "ok", "cluster_slots_assigned": "16384", "cluster_slots_ok": "16384",
		"cluster_known_nodes": "3", "cluster_size": "3",
	}
	for {
		var problem error
	nodes:
		for i, n := range r.Nodes {
			info, err := n.ClusterInfo(ctx).Result()
			if err != nil {
				problem = fmt.Errorf("CLUSTER INFO on %s: %w", r.Addrs[i], err)
				break
			}
			got := ParseInfo(info)
			for k, v := range want {
				if got[k] != v {
					problem = fmt.Errorf("%s: %s=%q, want %q", r.Addrs[i], k, got[k], v)
					break nodes
				}
			}
		}
		if problem == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ready: %w", problem)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ParseInfo splits an INFO reply into its "key:value" lines.
func ParseInfo(info string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// InfoField is the integer field name of an INFO value like
// "calls=3,usec=12"; 0 if missing.
func InfoField(v, name string) int64 {
	for _, kv := range strings.Split(v, ",") {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			n, _ := strconv.ParseInt(val, 10, 64)
			return n
		}
	}
	return 0
}

// MemReading is INFO memory summed over the servers, taken after MEMORY
// PURGE (jemalloc returns dirty pages; used_memory itself counts what Redis
// allocated, so PURGE mostly steadies used_memory_rss).
type MemReading struct {
	Used, Dataset, RSS, Overhead int64
	Clients                      int64 // mem_clients_normal: connections' buffers
	Keys                         int64 // DBSIZE
}

// Data is used_memory without the connections' buffers, which come and go
// with the load and are no data.
func (m MemReading) Data() int64 { return m.Used - m.Clients }

// Memory reads INFO memory and DBSIZE of every server, after MEMORY PURGE.
func (r *Redis) Memory(ctx context.Context) (MemReading, error) {
	var m MemReading
	for i, n := range r.Nodes {
		_ = n.Do(ctx, "MEMORY", "PURGE").Err() // best effort (jemalloc only)
		info, err := n.Info(ctx, "memory").Result()
		if err != nil {
			return m, fmt.Errorf("INFO memory on %s: %w", r.Addrs[i], err)
		}
		p := ParseInfo(info)
		atoi := func(k string) int64 { v, _ := strconv.ParseInt(p[k], 10, 64); return v }
		m.Used += atoi("used_memory")
		m.Dataset += atoi("used_memory_dataset")
		m.RSS += atoi("used_memory_rss")
		m.Overhead += atoi("used_memory_overhead")
		m.Clients += atoi("mem_clients_normal")
		k, err := n.DBSize(ctx).Result()
		if err != nil {
			return m, fmt.Errorf("DBSIZE on %s: %w", r.Addrs[i], err)
		}
		m.Keys += k
	}
	return m, nil
}

// ErrorStats is INFO errorstats summed over the servers: error prefix ->
// count (CROSSSLOT, NOSCRIPT, ERR, ...).
func (r *Redis) ErrorStats(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for i, n := range r.Nodes {
		info, err := n.Info(ctx, "errorstats").Result()
		if err != nil {
			return nil, fmt.Errorf("INFO errorstats on %s: %w", r.Addrs[i], err)
		}
		for k, v := range ParseInfo(info) {
			if name, ok := strings.CutPrefix(k, "errorstat_"); ok {
				out[name] += InfoField(v, "count")
			}
		}
	}
	return out, nil
}
