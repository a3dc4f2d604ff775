package redisstore

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
	"github.com/redis/go-redis/v9"
)

// Memory is the embedded store of a single instance. It is the Redis
// store itself, its code and its Lua scripts (lua/*.lua, where every rule
// of the session model is written once), run against a Redis held in this
// process (miniredis, which runs the scripts on gopher-lua) and reached
// through in-memory pipes: no port is opened, nothing else to install. It
// survives reloads in Caddy's usage pool and restarts through snapshots
// (snapshot.go).
type Memory struct {
	*Store
	mr *miniredis.Miniredis

	// clock: miniredis counts TTLs down only when told (advance).
	clockMu sync.Mutex
	last    time.Time
	now     func() time.Time

	// writes counts write commands, so unchanged data is not saved again.
	writes   atomic.Int64
	saved    int64
	savedSum [32]byte
}

// NewMemory returns an empty store.
func NewMemory() *Memory {
	mr := miniredis.NewMiniRedis()
	m := &Memory{mr: mr, now: time.Now}
	m.last = m.now()
	// The first Dial starts miniredis' server without a listener.
	if c, err := mr.Dial(); err == nil {
		_ = c.Close()
	}
	srv := mr.Server()
	srv.SetPreHook(m.countWrite)
	rdb := redis.NewClient(&redis.Options{
		Dialer: func(context.Context, string, string) (net.Conn, error) {
			c, s := memPipe()
			srv.ServeConn(s)
			return c, nil
		},
		// One process: no network to wait for, and no server identity.
		DisableIdentity: true,
		Protocol:        2,
		MaxRetries:      -1,
		PoolSize:        64,
	})
	m.Store = New(rdb)
	return m
}

// countWrite notes a command that may change data.
func (m *Memory) countWrite(_ *server.Peer, cmd string, _ ...string) bool {
	if !m.mr.IsReadOnlyCommand(cmd) {
		m.writes.Add(1)
	}
	return false
}

// advance moves the store's clock to now: keys whose TTL ran out expire.
// It returns the clock's time, to which the TTLs are now relative.
func (m *Memory) advance() time.Time {
	m.clockMu.Lock()
	defer m.clockMu.Unlock()
	now := m.now()
	if d := now.Sub(m.last); d > 0 {
		m.mr.FastForward(d)
		m.last = now
	}
	return m.last
}

// Close releases the store.
func (m *Memory) Close() error {
	err := m.Store.Close()
	m.mr.Close()
	return err
}
