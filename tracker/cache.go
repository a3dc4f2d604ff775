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
	// deviceCookie is the device's signed cookie value, so a request
	// carrying it needs no verification.
	deviceCookie string
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

	// byUser indexes keys by realm and user, so dropping a user's
	// entries (revocation, device block) costs their number, not the
	// cache's size. Lock order: a shard's lock, then umu.
	umu    sync.Mutex
	byUser map[string]map[TokenKey]struct{}
}

func userIndexKey(realm, user string) string { return realm + "\x00" + user }

func (c *cache) index(e *entry, add bool) {
	if e.user == "" {
		return
	}
	k := userIndexKey(e.realm, e.user)
	c.umu.Lock()
	defer c.umu.Unlock()
	set := c.byUser[k]
	if add {
		if set == nil {
			set = map[TokenKey]struct{}{}
			c.byUser[k] = set
		}
		set[e.key] = struct{}{}
		return
	}
	delete(set, e.key)
	if len(set) == 0 {
		delete(c.byUser, k)
	}
}

// removeUser drops every entry of user in realm.
func (c *cache) removeUser(realm, user string) {
	c.umu.Lock()
	var keys []TokenKey
	for k := range c.byUser[userIndexKey(realm, user)] {
		keys = append(keys, k)
	}
	c.umu.Unlock()
	for _, k := range keys {
		c.remove(k)
	}
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
	c := &cache{shards: make([]cacheShard, n), n: byte(n), byUser: map[string]map[TokenKey]struct{}{}}
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
		c.index(old, false)
	}
	s.m[e.key] = e
	s.pushFront(e)
	c.index(e, true)
	for len(s.m) > s.limit {
		last := s.head.prev
		s.unlink(last)
		delete(s.m, last.key)
		c.index(last, false)
	}
	s.mu.Unlock()
}

func (c *cache) remove(key TokenKey) {
	s := c.shard(key)
	s.mu.Lock()
	if e := s.m[key]; e != nil {
		s.unlink(e)
		delete(s.m, key)
		c.index(e, false)
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
				c.index(e, false)
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
