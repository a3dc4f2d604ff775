package redisstore

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterStateReload bounds how stale a cluster client's slot map gets
// while nothing fails: go-redis reloads it only every 60 s by default.
const clusterStateReload = 5 * time.Second

// NewClient returns the client for opts as redis.NewUniversalClient does
// (Sentinel with a master name, Cluster with the cluster flag or several
// addresses, a plain client otherwise), except that a cluster client
// refreshes its slot map as soon as a command fails on the transport, not
// at its next periodic reload: after a master fails over to its replica,
// go-redis keeps dialling the dead master until it reloads (60 s by
// default), and MOVED, which triggers a reload, never comes from a dead
// node.
func NewClient(opts *redis.UniversalOptions) redis.UniversalClient {
	if opts.MasterName != "" || (!opts.IsClusterMode && len(opts.Addrs) <= 1) {
		return redis.NewUniversalClient(opts)
	}
	co := opts.Cluster()
	co.ClusterStateReloadInterval = clusterStateReload
	if co.DialerRetries == 0 {
		// go-redis dials a refused address 5 times, 100 ms apart, per
		// command attempt: 400 ms per attempt on a dead master.
		co.DialerRetries = 1
	}
	cc := redis.NewClusterClient(co)
	cc.AddHook(topologyHook{cc})
	return cc
}

// topologyHook asks the cluster client for a fresh slot map (one
// CLUSTER SLOTS in the background, coalesced by go-redis) after a transport
// error.
type topologyHook struct{ cc *redis.ClusterClient }

func (h topologyHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			// The first sign of a dead master: reload before the
			// command's retries run out.
			h.cc.ReloadState(context.Background())
		}
		return conn, err
	}
}

func (h topologyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(err)
		return err
	}
}

func (h topologyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(err)
		return err
	}
}

func (h topologyHook) check(err error) {
	if transportError(err) {
		h.cc.ReloadState(context.Background())
	}
}

// transportError is an error that is not an answer from Redis (an error
// reply, nil) nor a cancellation. The caller's deadline counts: a command
// that spent it dialling a dead node is the case to reload for.
func transportError(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return false
	}
	var reply redis.Error
	return !errors.As(err, &reply)
}
