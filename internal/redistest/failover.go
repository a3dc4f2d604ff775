package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster failover: a cluster with one replica per master, and a master
// killed so that its replica takes over.

// StartClusterWithReplicas starts a cluster as StartCluster does, with one
// replica per master, and waits until every replica is in sync.
func StartClusterWithReplicas(tb testing.TB) *Cluster {
	tb.Helper()
	return startCluster(tb, true, true)
}

// MasterOf is the node serving key's slot now.
func (c *Cluster) MasterOf(ctx context.Context, key string) (*Server, error) {
	slot, err := c.admin.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER KEYSLOT: %w", err)
	}
	addr, err := c.slotOwner(ctx, nil, int(slot))
	if err != nil {
		return nil, err
	}
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n, nil
		}
	}
	return nil, fmt.Errorf("slot %d is served by %s, not a node of this cluster", slot, addr)
}

// slotOwner asks a live node other than skip who serves slot.
func (c *Cluster) slotOwner(ctx context.Context, skip *Server, slot int) (string, error) {
	var lastErr error
	for _, n := range c.Nodes {
		if n == skip {
			continue
		}
		shards, err := n.admin.ClusterShards(ctx).Result()
		if err != nil {
			lastErr = err
			continue
		}
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if int(r.Start) > slot || slot > int(r.End) {
					continue
				}
				for _, node := range sh.Nodes {
					if node.Role == "master" && node.Health == "online" {
						return net.JoinHostPort(node.IP, strconv.FormatInt(node.Port, 10)), nil
					}
				}
			}
		}
		return "", fmt.Errorf("%s: no node serves slot %d", n.Addr, slot)
	}
	return "", fmt.Errorf("no node answered CLUSTER SHARDS: %v", lastErr)
}

// KillMasterOf kills (SIGKILL) the master serving key's slot, once its
// replicas have caught up with what it held at the call (losing
// unreplicated writes is another fault), and waits until a replica has
// taken the slot over and every surviving node reports cluster_state:ok. It
// returns the killed node and how long the takeover took after the kill
// (node timeout, election and promotion).
func (c *Cluster) KillMasterOf(tb testing.TB, key string) (*Server, time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	master, err := c.MasterOf(ctx, key)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	slot, err := c.admin.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		tb.Fatalf("redistest: CLUSTER KEYSLOT: %v", err)
	}
	if err := c.waitReplicated(ctx, master); err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	killed := time.Now()
	master.Stop()
	for {
		owner, err := c.slotOwner(ctx, master, int(slot))
		ok := err == nil && owner != master.Addr
		for _, n := range c.Nodes {
			if !ok || n == master {
				continue
			}
			info, err := n.admin.ClusterInfo(ctx).Result()
			ok = err == nil && parseInfo(info)["cluster_state"] == "ok"
		}
		if ok {
			return master, time.Since(killed)
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("redistest: slot %d not taken over within 60 s after killing %s (owner %q, %v)%s",
				slot, master.Addr, owner, err, c.logTails())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitReplicated waits until every replica of master has acknowledged the
// replication offset master reports now.
func (c *Cluster) waitReplicated(ctx context.Context, master *Server) error {
	info, err := master.admin.Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("INFO replication on %s: %w", master.Addr, err)
	}
	m := parseInfo(info)
	want, _ := strconv.ParseInt(m["master_repl_offset"], 10, 64)
	n, _ := strconv.Atoi(m["connected_slaves"])
	if n == 0 {
		return fmt.Errorf("%s has no connected replica to fail over to", master.Addr)
	}
	for {
		behind := 0
		for i := 0; i < n; i++ {
			// slaveN:ip=...,port=...,state=online,offset=N,lag=0
			for _, kv := range strings.Split(m["slave"+strconv.Itoa(i)], ",") {
				if v, ok := strings.CutPrefix(kv, "offset="); ok {
					if off, _ := strconv.ParseInt(v, 10, 64); off < want {
						behind++
					}
				}
			}
		}
		if behind == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replicas of %s did not reach offset %d: %s", master.Addr, want, info)
		case <-time.After(20 * time.Millisecond):
		}
		if info, err = master.admin.Info(ctx, "replication").Result(); err != nil {
			return fmt.Errorf("INFO replication on %s: %w", master.Addr, err)
		}
		m = parseInfo(info)
	}
}

// String names the node by its port, for test logs.
func (s *Server) String() string { return "redis:" + strconv.Itoa(s.port) }
