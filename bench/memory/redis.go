package main

// Redis helpers, copied (trimmed) from bench/redis.go and extended with
// memory readings. Only servers this program started are ever contacted.

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

// redisSetup is the Redis this program started: one standalone server or a
// 3-master cluster.
type redisSetup struct {
	cluster bool
	addrs   []string
	procs   []*proc
	nodes   []*redis.Client // one per server, for INFO, MEMORY, DBSIZE
	version string
}

func (r *redisSetup) close() {
	for _, c := range r.nodes {
		_ = c.Close()
	}
}

// client is a client for the whole setup (cluster-aware when needed).
// DisableIdentity: go-redis sends CLIENT SETINFO on every new connection,
// which Redis before 7.2 answers with an error (harmless, but it counts in
// errorstats as ERR and would hide real errors there).
func (r *redisSetup) client(poolSize int) redis.UniversalClient {
	if r.cluster {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: r.addrs, PoolSize: poolSize, DisableIdentity: true})
	}
	return redis.NewClient(&redis.Options{Addr: r.addrs[0], PoolSize: poolSize, DisableIdentity: true})
}

func startRedis(e *env, cluster bool, extra []string) (*redisSetup, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH (%v); run scripts/install-deps.sh", err)
	}
	rs := &redisSetup{cluster: cluster}
	n := 1
	if cluster {
		n = 3
		if _, err := exec.LookPath("redis-cli"); err != nil {
			return nil, fmt.Errorf("redis-cli not found on PATH (needed for -cluster); run scripts/install-deps.sh")
		}
	}
	for i := range n {
		p, addr, err := startRedisServer(e, bin, fmt.Sprintf("redis%d", i), cluster, extra)
		if err != nil {
			return nil, err
		}
		rs.procs = append(rs.procs, p)
		rs.addrs = append(rs.addrs, addr)
		rs.nodes = append(rs.nodes, redis.NewClient(&redis.Options{Addr: addr, PoolSize: 2, DisableIdentity: true}))
	}
	if cluster {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		args := append([]string{"--cluster", "create"}, rs.addrs...)
		args = append(args, "--cluster-replicas", "0", "--cluster-yes")
		out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
		}
		if err := rs.waitClusterReady(ctx); err != nil {
			return nil, err
		}
	}
	info, err := rs.nodes[0].Info(context.Background(), "server").Result()
	if err == nil {
		rs.version = parseInfo(info)["redis_version"]
	}
	return rs, nil
}

// startRedisServer starts one redis-server on a free loopback port without
// persistence, in its own dir under the run's temp dir.
func startRedisServer(e *env, bin, name string, cluster bool, extra []string) (*proc, string, error) {
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
			port, err = freePort()
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
		p, err := e.start(name, exec.Command(bin, args...), logPath)
		if err != nil {
			return nil, "", err
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if !p.running() {
				lastErr = fmt.Errorf("redis-server %s exited during startup; log %s:\n%s", addr, logPath, p.logTail(3000))
				break
			}
			if pingRaw(addr) == nil {
				return p, addr, nil
			}
			if time.Now().After(deadline) {
				p.kill()
				return nil, "", fmt.Errorf("redis-server %s did not answer PING within 10s; log:\n%s", addr, p.logTail(3000))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(lastErr.Error(), "Address already in use") {
			return nil, "", lastErr
		}
	}
	return nil, "", lastErr
}

// clusterPort is a port p with p and its bus port p+10000 free.
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

func (r *redisSetup) waitClusterReady(ctx context.Context) error {
	want := map[string]string{
		"cluster_state": "ok", "cluster_slots_assigned": "16384", "cluster_slots_ok": "16384",
		"cluster_known_nodes": "3", "cluster_size": "3",
	}
	for {
		var problem error
	nodes:
		for i, n := range r.nodes {
			info, err := n.ClusterInfo(ctx).Result()
			if err != nil {
				problem = fmt.Errorf("CLUSTER INFO on %s: %w", r.addrs[i], err)
				break
			}
			got := parseInfo(info)
			for k, v := range want {
				if got[k] != v {
					problem = fmt.Errorf("%s: %s=%q, want %q", r.addrs[i], k, got[k], v)
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

func parseInfo(info string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

func infoField(v, name string) int64 {
	for _, kv := range strings.Split(v, ",") {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			n, _ := strconv.ParseInt(val, 10, 64)
			return n
		}
	}
	return 0
}

// memReading is INFO memory summed over the servers, taken after MEMORY
// PURGE (jemalloc returns dirty pages; used_memory itself counts what Redis
// allocated, so PURGE mostly steadies used_memory_rss).
type memReading struct {
	used, dataset, rss, overhead int64
	clients                      int64 // mem_clients_normal: connections' buffers
	keys                         int64
}

// data is used_memory without the connections' buffers, which come and go
// with the load (64 connections per server) and are no data.
func (m memReading) data() int64 { return m.used - m.clients }

func (r *redisSetup) memory(ctx context.Context) (memReading, error) {
	var m memReading
	for i, n := range r.nodes {
		_ = n.Do(ctx, "MEMORY", "PURGE").Err() // best effort (jemalloc only)
		info, err := n.Info(ctx, "memory").Result()
		if err != nil {
			return m, fmt.Errorf("INFO memory on %s: %w", r.addrs[i], err)
		}
		p := parseInfo(info)
		atoi := func(k string) int64 { v, _ := strconv.ParseInt(p[k], 10, 64); return v }
		m.used += atoi("used_memory")
		m.dataset += atoi("used_memory_dataset")
		m.rss += atoi("used_memory_rss")
		m.overhead += atoi("used_memory_overhead")
		m.clients += atoi("mem_clients_normal")
		k, err := n.DBSize(ctx).Result()
		if err != nil {
			return m, fmt.Errorf("DBSIZE on %s: %w", r.addrs[i], err)
		}
		m.keys += k
	}
	return m, nil
}

// errorStats is INFO errorstats summed over the servers: error prefix ->
// count (CROSSSLOT, NOSCRIPT, ERR, ...).
func (r *redisSetup) errorStats(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for i, n := range r.nodes {
		info, err := n.Info(ctx, "errorstats").Result()
		if err != nil {
			return nil, fmt.Errorf("INFO errorstats on %s: %w", r.addrs[i], err)
		}
		for k, v := range parseInfo(info) {
			if name, ok := strings.CutPrefix(k, "errorstat_"); ok {
				out[name] += infoField(v, "count")
			}
		}
	}
	return out, nil
}

// failedCalls is INFO commandstats failed_calls + rejected_calls per
// command, summed over the servers: which command the errors came from.
func (r *redisSetup) failedCalls(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for i, n := range r.nodes {
		info, err := n.Info(ctx, "commandstats").Result()
		if err != nil {
			return nil, fmt.Errorf("INFO commandstats on %s: %w", r.addrs[i], err)
		}
		for k, v := range parseInfo(info) {
			if name, ok := strings.CutPrefix(k, "cmdstat_"); ok {
				if f := infoField(v, "failed_calls") + infoField(v, "rejected_calls"); f > 0 {
					out[name] += f
				}
			}
		}
	}
	return out, nil
}
