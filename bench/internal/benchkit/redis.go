package benchkit

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// Redis is the Redis a program started: one standalone server or a
// 3-master cluster, without persistence, on free loopback ports. Only
// servers the program started are ever contacted.
type Redis struct {
	Cluster bool
	Addrs   []string
	Servers []*redistest.Server
	Version string // redis_version of the first server
}

// StartRedis starts redis-server, a 3-master cluster if cluster, with the
// extra arguments args, as children of e (redistest.Launch), and waits
// until it serves.
func StartRedis(e *Env, cluster bool, args ...string) (*Redis, error) {
	r := &Redis{Cluster: cluster}
	o := redistest.Options{Dir: e.dir, Args: args, Spawn: e.spawn}
	if cluster {
		Logf("starting 3-master Redis Cluster...")
		c, err := redistest.LaunchCluster(o)
		if err != nil {
			return nil, err
		}
		e.onCleanup(c.Close)
		r.Addrs, r.Servers = c.Addrs, c.Nodes
	} else {
		Logf("starting standalone redis-server...")
		s, err := redistest.Launch(o)
		if err != nil {
			return nil, err
		}
		e.onCleanup(s.Close)
		r.Addrs, r.Servers = []string{s.Addr}, []*redistest.Server{s}
	}
	if info, err := r.Servers[0].Info(context.Background(), "server"); err == nil {
		r.Version = info["redis_version"]
	}
	Logf("  redis %s at %s", r.Version, strings.Join(r.Addrs, " "))
	return r, nil
}

// Kind is "standalone" or "3-master cluster".
func (r *Redis) Kind() string {
	if r.Cluster {
		return "3-master cluster"
	}
	return "standalone"
}

// Client is a new client of the whole setup (cluster-aware when needed),
// without go-redis's CLIENT SETINFO: Redis before 7.2 answers it with an
// error, which would count in errorstats and hide real errors there.
func (r *Redis) Client(poolSize int) redis.UniversalClient {
	return redis.NewUniversalClient(&redis.UniversalOptions{Addrs: r.Addrs, IsClusterMode: r.Cluster, PoolSize: poolSize, DisableIdentity: true})
}

// Stats are INFO commandstats and errorstats, summed over the servers.
func (r *Redis) Stats(ctx context.Context) (redistest.Stats, error) {
	return redistest.ReadStats(ctx, r.Servers...)
}

// Memory is INFO memory and DBSIZE, summed over the servers.
func (r *Redis) Memory(ctx context.Context) (redistest.Memory, error) {
	return redistest.ReadMemory(ctx, r.Servers...)
}

// PIDs are the servers' process ids.
func (r *Redis) PIDs() []int {
	var pids []int
	for _, s := range r.Servers {
		pids = append(pids, s.PID())
	}
	return pids
}
