package tracker

import (
	"sync"
	"sync/atomic"
	"time"
)

// entry is what an instance remembers about one token. Its identity fields
// never change; a change of IP, device or state replaces the entry.
//
// The fields a cache hit reads come first, together: entries are many and
// mostly cold, so each cache line they span costs a miss.
type entry struct {
	// moved is the shard's move count when the entry last went to the
	// front of the list (guarded by the shard's lock).
	moved uint64
	// expires (unix ns) bounds how long the entry is trusted at all.
	expires   int64
	lastSeen  atomic.Int64 // unix ns, local view
	lastWrite atomic.Int64 // unix ns of the last write sent to the store
	// anonymous entries remember a token bound to no user.
	anonymous bool
	// revoked entries answer "refused" without asking the store.
	revoked bool
	// limited: refused by a limit for this IP and device only.
	limited bool
	// devCookie is the device's signed cookie value (if hasDevCookie),
	// so a request carrying it needs no verification. Kept inline: it is
	// compared on every hit, and a string's bytes would be one more cold
	// cache line.
	hasDevCookie bool
	devCookie    [deviceCookieLen]byte
	// ids holds user, session id, device id and IP in one allocation
	// (fewer objects for the collector to mark); the ends split it.
	ids                     string
	userEnd, sidEnd, devEnd uint32
	vars                    Vars

	key    TokenKey
	realm  string
	reason string
	// tz is the time zone the session's days are counted in.
	tz         *time.Location
	prev, next *entry
}

// setIDs packs the entry's identifiers; its vars then share the copy.
func (e *entry) setIDs(user, sessionID, deviceID, ip string) {
	e.ids = user + sessionID + deviceID + ip
	e.userEnd = uint32(len(user))
	e.sidEnd = e.userEnd + uint32(len(sessionID))
	e.devEnd = e.sidEnd + uint32(len(deviceID))
}

func (e *entry) user() string      { return e.ids[:e.userEnd] }
func (e *entry) sessionID() string { return e.ids[e.userEnd:e.sidEnd] }
func (e *entry) deviceID() string  { return e.ids[e.sidEnd:e.devEnd] }
func (e *entry) ip() string        { return e.ids[e.devEnd:] }

// cache is a bounded LRU of entries keyed by token hash, sharded so that
// concurrent requests rarely wait on one lock.
//
// A hit moves its entry to the front only if it may have drifted out of
// the front eighth of the shard's list, i.e. once a window of limit/8
// entries were moved to the front after it: relinking touches two other,
// usually cold, entries, and a known session is hit on every request. So
// eviction order is LRU give or take that window (exact below 8 entries
// per shard), and the size bound is untouched.
type cache struct {
	shards []cacheShard
	n      byte

	// byUser indexes keys by realm and user, so dropping a user's
	// entries (revocation, device block) costs their number, not the
	// cache's size. Lock order: a shard's lock, then umu.
	umu    sync.Mutex
	byUser map[cachedUser]userTokens
	// byTag finds a cached user by UserTag (invalidations name users by
	// tag); maintained when tagOf is set.
	byTag map[string]cachedUser
	tagOf func(realm, user string) string
}

// cachedUser names a user of a realm; its strings are the entries' own.
type cachedUser struct{ realm, user string }

// userTokens are the cached keys of one user, held inline while there is
// one (most users have one session): a map per user would be two more
// heap objects per cached session for the collector to mark.
type userTokens struct {
	one  TokenKey
	more map[TokenKey]struct{} // when there are several; holds one too
	tag  string
}

func (c *cache) index(e *entry, add bool) {
	if e.userEnd == 0 {
		return
	}
	k := cachedUser{e.realm, e.user()}
	c.umu.Lock()
	defer c.umu.Unlock()
	keys, ok := c.byUser[k]
	switch {
	case add && !ok:
		ut := userTokens{one: e.key}
		if c.tagOf != nil {
			ut.tag = c.tagOf(k.realm, k.user)
			c.byTag[ut.tag] = k
		}
		c.byUser[k] = ut
	case add && keys.more == nil && keys.one != e.key:
		c.byUser[k] = userTokens{more: map[TokenKey]struct{}{keys.one: {}, e.key: {}}, tag: keys.tag}
	case add && keys.more != nil:
		keys.more[e.key] = struct{}{}
	case !add && keys.more == nil && keys.one == e.key:
		c.dropUserIndex(k, keys)
	case !add && keys.more != nil:
		delete(keys.more, e.key)
		if len(keys.more) == 0 {
			c.dropUserIndex(k, keys)
		}
	}
}

func (c *cache) dropUserIndex(k cachedUser, keys userTokens) {
	delete(c.byUser, k)
	if keys.tag != "" {
		delete(c.byTag, keys.tag)
	}
}

// userByTag is the cached user a UserTag names.
func (c *cache) userByTag(tag string) (realm, user string, ok bool) {
	c.umu.Lock()
	defer c.umu.Unlock()
	k, ok := c.byTag[tag]
	return k.realm, k.user, ok
}

// userKeys are the cached keys of user in realm.
func (c *cache) userKeys(realm, user string) []TokenKey {
	c.umu.Lock()
	defer c.umu.Unlock()
	var keys []TokenKey
	if uk, ok := c.byUser[cachedUser{realm, user}]; ok {
		if uk.more == nil {
			keys = append(keys, uk.one)
		}
		for k := range uk.more {
			keys = append(keys, k)
		}
	}
	return keys
}

// removeUser drops every entry of user in realm.
func (c *cache) removeUser(realm, user string) {
	for _, k := range c.userKeys(realm, user) {
		c.remove(k)
	}
}

type cacheShard struct {
	mu    sync.Mutex
	m     map[TokenKey]*entry
	head  entry // sentinel: head.next is most recent
	limit int
	// moves counts pushFront calls; window is limit/8.
	moves, window uint64
}

const cacheShards = 32

func newCache(size int) *cache {
	n := min(max(size, 1), cacheShards) // a tiny cache gets fewer shards
	c := &cache{shards: make([]cacheShard, n), n: byte(n), byUser: map[cachedUser]userTokens{}, byTag: map[string]cachedUser{}}
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[TokenKey]*entry)
		s.head.next, s.head.prev = &s.head, &s.head
		// spread size so the total is exactly size
		s.limit = size / n
		if i < size%n {
			s.limit++
		}
		s.window = uint64(s.limit / 8)
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
	s.moves++
	e.moved = s.moves
}

func (c *cache) get(key TokenKey) *entry {
	s := c.shard(key)
	s.mu.Lock()
	e := s.m[key]
	// Whatever is ahead of e was moved to the front after e: e is at most
	// s.moves-e.moved places from the front.
	if e != nil && s.moves-e.moved > s.window {
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

// eachOfUser calls f for every cached entry of user in realm.
func (c *cache) eachOfUser(realm, user string, f func(*entry)) {
	for _, k := range c.userKeys(realm, user) {
		if e := c.get(k); e != nil {
			f(e)
		}
	}
}
