package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis Cluster: three masters on free ports, joined by redis-cli or by
// hand, and optionally one replica per master (failover.go).

// Cluster is a 3-master Redis Cluster owned by a test or a program, with no
// replicas (StartCluster) or one per master (StartClusterWithReplicas).
type Cluster struct {
	// Addrs are the host:port addresses of all nodes, masters first.
	Addrs []string
	// Nodes are the underlying processes, e.g. to Stop/Restart one master;
	// the first three started as masters.
	Nodes []*Server

	admin *redis.ClusterClient // backs ScanAll
}

// clusterPort returns a port p where both p and p+10000 (the cluster bus) are
// free. The kernel's ephemeral range (32768+) would often push the bus port
// past 65535, so pick from [20000,30000) ourselves. This also avoids the
// Redis-7-only cluster-port option.
func clusterPort() (int, error) {
	for i := 0; i < 200; i++ {
		p := 20000 + rand.IntN(10000)
		if !portFree(p) || !portFree(p+clusterBusOffset) {
			continue
		}
		if claimPort(p) {
			return p, nil
		}
	}
	return 0, errors.New("no free client/bus port pair after 200 attempts")
}

// StartCluster starts three cluster-enabled redis-servers, joins them into a
// Redis Cluster with all 16384 slots split across the three masters (no
// replicas), and waits until every node reports cluster_state:ok.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	return startCluster(tb, true, false)
}

func startCluster(tb testing.TB, preferCLI, replicas bool) *Cluster {
	tb.Helper()
	c, err := testLauncher(tb).cluster(preferCLI, replicas)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

func (l launcher) cluster(preferCLI, replicas bool) (_ *Cluster, err error) {
	c := &Cluster{}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	nodes, perMaster := clusterMasters, "0"
	if replicas {
		// Only redis-cli assigns replicas; the manual path does not.
		preferCLI, nodes, perMaster = true, 2*clusterMasters, "1"
	}
	for i := 0; i < nodes; i++ {
		n, err := l.server(true)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
		c.Addrs = append(c.Addrs, n.Addr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	cli, err := exec.LookPath("redis-cli")
	if replicas && err != nil {
		return nil, fmt.Errorf("redis-cli not found (%v): a cluster with replicas needs it; %s", err, installHint)
	}
	if preferCLI && err == nil {
		args := append([]string{"--cluster", "create"}, c.Addrs...)
		args = append(args, "--cluster-replicas", perMaster, "--cluster-yes")
		out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("redis-cli --cluster create failed: %v\n%s%s", err, out, c.logTails())
		}
	} else {
		// Without redis-cli, do what it does: split the slots, then MEET.
		if err := c.createManually(ctx); err != nil {
			return nil, fmt.Errorf("creating cluster: %v%s", err, c.logTails())
		}
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, fmt.Errorf("cluster not ready within %v: %v%s", clusterReadyTimeout, err, c.logTails())
	}
	c.admin = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, DisableIdentity: true})
	return c, nil
}

// Close stops the nodes and closes the admin clients.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		n.Close()
	}
	if c.admin != nil {
		_ = c.admin.Close()
	}
}

func (c *Cluster) createManually(ctx context.Context) error {
	per := clusterSlots / len(c.Nodes)
	for i, n := range c.Nodes {
		lo, hi := i*per, (i+1)*per-1
		if i == len(c.Nodes)-1 {
			hi = clusterSlots - 1
		}
		// ADDSLOTS with explicit slots works on every Redis version with
		// cluster support (ADDSLOTSRANGE needs 7.0).
		slots := make([]int, 0, hi-lo+1)
		for s := lo; s <= hi; s++ {
			slots = append(slots, s)
		}
		if err := n.admin.ClusterAddSlots(ctx, slots...).Err(); err != nil {
			return fmt.Errorf("CLUSTER ADDSLOTS on %s: %w", n.Addr, err)
		}
	}
	for _, n := range c.Nodes[1:] {
		if err := c.Nodes[0].admin.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(n.port)).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET %s: %w", n.Addr, err)
		}
	}
	return nil
}

// waitReady polls CLUSTER INFO until every node sees a healthy cluster with
// all slots assigned and all peers known, so a fresh ClusterClient gets a
// complete slot map from whichever node it asks first.
func (c *Cluster) waitReady(ctx context.Context) error {
	want := map[string]string{
		"cluster_state":          "ok",
		"cluster_slots_assigned": strconv.Itoa(clusterSlots),
		"cluster_slots_ok":       strconv.Itoa(clusterSlots),
		"cluster_known_nodes":    strconv.Itoa(len(c.Nodes)),
		"cluster_size":           strconv.Itoa(clusterMasters),
	}
	var lastErr error
	for {
		lastErr = nil
		for _, n := range c.Nodes {
			info, err := n.admin.ClusterInfo(ctx).Result()
			if err != nil {
				lastErr = fmt.Errorf("CLUSTER INFO on %s: %w", n.Addr, err)
				break
			}
			got := parseInfo(info)
			for k, v := range want {
				if got[k] != v {
					lastErr = fmt.Errorf("%s: %s=%q, want %q", n.Addr, k, got[k], v)
					break
				}
			}
			if lastErr != nil {
				break
			}
			// A replica must hold its master's data before a test may
			// fail the master over to it.
			repl, err := n.admin.Info(ctx, "replication").Result()
			if err != nil {
				lastErr = fmt.Errorf("INFO replication on %s: %w", n.Addr, err)
				break
			}
			if r := parseInfo(repl); r["role"] == "slave" && r["master_link_status"] != "up" {
				lastErr = fmt.Errorf("%s: replica link %q", n.Addr, r["master_link_status"])
				break
			}
		}
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return lastErr
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) logTails() string {
	var b bytes.Buffer
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "\n--- %s (%s) ---\n%s", n.Addr, n.logPath, n.logTail())
	}
	return b.String()
}

// ClusterClient returns a new go-redis cluster client, closed when the test
// ends.
func (c *Cluster) ClusterClient(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// ScanAll SCANs every master and returns all keys matching pattern, sorted.
// A plain SCAN through a cluster client would only see one node's keys.
func (c *Cluster) ScanAll(ctx context.Context, pattern string) ([]string, error) {
	var (
		mu   sync.Mutex
		keys []string
	)
	err := c.admin.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		k, err := scanAll(ctx, node, pattern)
		mu.Lock()
		keys = append(keys, k...)
		mu.Unlock()
		return err
	})
	sort.Strings(keys)
	return keys, err
}
