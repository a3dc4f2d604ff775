package tracker

import (
	"sync"
	"sync/atomic"
	"time"
)

// entry is what an instance remembers about one token. Its identity fields
// never change; a change of IP, device or state replaces the entry.
type entry struct {
	key       TokenKey
	tokenHash string
	realm     string
	sessionID string
	user      string
	ip        string
	deviceID  string
	// revoked entries answer "refused" without asking the store.
	revoked bool
	reason  string
	// limited: refused by a limit for this IP and device only.
	limited bool
	// tz is the time zone the session's days are counted in.
	tz *time.Location
	// anonymous entries remember a token bound to no user.
	anonymous bool
	vars      Vars
	// expires (unix ns) bounds how long the entry is trusted at all.
	expires int64

	lastSeen  atomic.Int64 // unix ns, local view
	lastWrite atomic.Int64 // unix ns of the last write sent to the store

	prev, next *entry
}

// cache is a bounded LRU of entries keyed by token hash, sharded so that
// concurrent requests rarely wait on one lock.
type cache struct {
	shards []cacheShard
	n      byte
}

type cacheShard struct {
	mu    sync.Mutex
	m     map[TokenKey]*entry
	head  entry // sentinel: head.next is most recent
	limit int
}

const cacheShards = 32

func newCache(size int) *cache {
	n := min(max(size, 1), cacheShards) // a tiny cache gets fewer shards
	c := &cache{shards: make([]cacheShard, n), n: byte(n)}
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[TokenKey]*entry)
		s.head.next, s.head.prev = &s.head, &s.head
		// spread size so the total is exactly size
		s.limit = size / n
		if i < size%n {
			s.limit++
		}
	}
	return c
}

func (c *cache) shard(key TokenKey) *cacheShard {
	// The key is already an HMAC: its bytes are uniformly spread.
	return &c.shards[key[0]%c.n]
}

func (s *cacheShard) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (s *cacheShard) pushFront(e *entry) {
	e.prev, e.next = &s.head, s.head.next
	s.head.next.prev = e
	s.head.next = e
}

func (c *cache) get(key TokenKey) *entry {
	s := c.shard(key)
	s.mu.Lock()
	e := s.m[key]
	if e != nil && s.head.next != e {
		s.unlink(e)
		s.pushFront(e)
	}
	s.mu.Unlock()
	return e
}

func (c *cache) put(e *entry) {
	s := c.shard(e.key)
	s.mu.Lock()
	if old := s.m[e.key]; old != nil {
		s.unlink(old)
	}
	s.m[e.key] = e
	s.pushFront(e)
	for len(s.m) > s.limit {
		last := s.head.prev
		s.unlink(last)
		delete(s.m, last.key)
	}
	s.mu.Unlock()
}

func (c *cache) remove(key TokenKey) {
	s := c.shard(key)
	s.mu.Lock()
	if e := s.m[key]; e != nil {
		s.unlink(e)
		delete(s.m, key)
	}
	s.mu.Unlock()
}

// removeIf drops every entry matching f; O(size), for rare events such as
// a revocation of all of a user's sessions.
func (c *cache) removeIf(f func(*entry) bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if f(e) {
				s.unlink(e)
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
}

func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
