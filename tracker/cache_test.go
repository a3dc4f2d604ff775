package tracker

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// cacheKey makes a key in shard shard (the cache shards by the first byte).
func cacheKey(shard byte, n uint32) TokenKey {
	var k TokenKey
	k[0] = shard
	binary.BigEndian.PutUint32(k[1:], n)
	return k
}

func cacheEntry(k TokenKey, user string) *entry {
	e := &entry{key: k, realm: "r"}
	e.setIDs(user, "", "", "")
	return e
}

func TestCacheBound(t *testing.T) {
	keys := testKeyring(t)
	for _, size := range []int{1, 10, 31, 32, 64, 100, 1000} {
		t.Run(fmt.Sprint("size ", size), func(t *testing.T) {
			c := newCache(size)
			hot := keys.TokenKey("r", "hot")
			c.put(cacheEntry(hot, "hot"))
			peak := 0
			for i := range 20 * max(size, cacheShards) {
				c.put(cacheEntry(keys.TokenKey("r", fmt.Sprint("tok", i)), "u"))
				// The hot entry is used between every two puts.
				if c.get(hot) == nil && size >= 2*cacheShards {
					t.Fatalf("recently used entry evicted after %d puts", i+1)
				}
				if n := c.len(); n > peak {
					peak = n
				}
			}
			if peak > size {
				t.Errorf("cache of size %d held %d entries", size, peak)
			}
			if peak == 0 {
				t.Errorf("cache of size %d held nothing", size)
			}
		})
	}
}

func TestCacheLRUWithinShard(t *testing.T) {
	c := newCache(2 * cacheShards) // two entries per shard
	a, b, d := cacheKey(7, 1), cacheKey(7, 2), cacheKey(7, 3)
	c.put(cacheEntry(a, "a"))
	c.put(cacheEntry(b, "b"))
	if c.get(a) == nil { // a is now the most recent
		t.Fatal("a missing")
	}
	c.put(cacheEntry(d, "d")) // evicts the least recent: b
	if c.get(b) != nil {
		t.Error("least recently used entry b survived")
	}
	if c.get(a) == nil || c.get(d) == nil {
		t.Error("recently used entries a and d must survive")
	}
	// Other shards are unaffected.
	other := cacheKey(8, 1)
	c.put(cacheEntry(other, "o"))
	if c.get(a) == nil || c.get(d) == nil || c.get(other) == nil {
		t.Error("a put in another shard evicted entries")
	}
	if n := c.len(); n != 3 {
		t.Errorf("len = %d, want 3", n)
	}
}

func TestCachePutReplaces(t *testing.T) {
	c := newCache(100)
	k := cacheKey(1, 1)
	c.put(cacheEntry(k, "first"))
	c.put(cacheEntry(k, "second"))
	if e := c.get(k); e == nil || e.user() != "second" {
		t.Errorf("get after replace = %+v, want the second entry", e)
	}
	if n := c.len(); n != 1 {
		t.Errorf("len = %d, want 1", n)
	}
}

func TestCacheRemove(t *testing.T) {
	c := newCache(2 * cacheShards)
	a, b := cacheKey(3, 1), cacheKey(3, 2)
	c.put(cacheEntry(a, "a"))
	c.put(cacheEntry(b, "b"))
	c.remove(a)
	if c.get(a) != nil {
		t.Error("removed entry still there")
	}
	if c.get(b) == nil {
		t.Error("remove dropped another entry")
	}
	c.remove(a)              // again: no-op
	c.remove(cacheKey(9, 9)) // unknown: no-op
	if n := c.len(); n != 1 {
		t.Errorf("len = %d, want 1", n)
	}
	// The LRU list is intact: two more puts in the shard evict b, then keep
	// the bound.
	c.put(cacheEntry(cacheKey(3, 3), "c"))
	c.put(cacheEntry(cacheKey(3, 4), "d"))
	if c.get(b) != nil || c.len() != 2 {
		t.Errorf("after remove the shard misbehaves: b=%v len=%d", c.get(b), c.len())
	}
}

func TestCacheRemoveIf(t *testing.T) {
	c := newCache(10 * cacheShards)
	for i := range 200 {
		user := "alice"
		if i%2 == 1 {
			user = "bob"
		}
		c.put(cacheEntry(cacheKey(byte(i%cacheShards), uint32(i)), user))
	}
	if n := c.len(); n != 200 {
		t.Fatalf("len = %d, want 200", n)
	}
	c.removeIf(func(e *entry) bool { return e.user() == "bob" })
	if n := c.len(); n != 100 {
		t.Errorf("len after removeIf = %d, want 100", n)
	}
	for i := range 200 {
		e := c.get(cacheKey(byte(i%cacheShards), uint32(i)))
		if (i%2 == 1) != (e == nil) {
			t.Fatalf("entry %d: got %+v after removing bob's", i, e)
		}
	}
	// The lists survived: filling a shard evicts in order and respects the
	// bound.
	for i := range 50 {
		c.put(cacheEntry(cacheKey(5, uint32(1000+i)), "carol"))
	}
	if n := c.len(); n > 10*cacheShards {
		t.Errorf("len = %d, over the bound", n)
	}
	c.removeIf(func(*entry) bool { return true })
	if n := c.len(); n != 0 {
		t.Errorf("len after removing all = %d", n)
	}
}

// shardOrder lists a shard's users, most recent first.
func shardOrder(c *cache, shard byte) []string {
	s := &c.shards[shard]
	var out []string
	for e := s.head.next; e != &s.head; e = e.next {
		out = append(out, e.user())
	}
	return out
}

// A hit relinks its entry only once it may have left the front window
// (limit/8 moves); the list and the bound stay as they were otherwise.
func TestCacheHitWindow(t *testing.T) {
	const limit = 64 // per shard: window 8
	c := newCache(limit * cacheShards)
	if w := c.shards[0].window; w != 8 {
		t.Fatalf("window = %d, want 8", w)
	}
	for i := range limit {
		c.put(cacheEntry(cacheKey(4, uint32(i)), fmt.Sprint(i)))
	}
	// 60 went in 4 moves ago: it stays where it is.
	before := shardOrder(c, 4)
	if c.get(cacheKey(4, 60)) == nil {
		t.Fatal("60 missing")
	}
	if got := shardOrder(c, 4); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("a hit inside the window relinked: %v", got[:8])
	}
	// 0 is 64 moves old: the hit moves it to the front, and the next put
	// evicts 1, the least recent.
	c.get(cacheKey(4, 0))
	if got := shardOrder(c, 4); got[0] != "0" {
		t.Errorf("a hit outside the window stayed at %v", got[:3])
	}
	c.put(cacheEntry(cacheKey(4, 1000), "new"))
	if c.get(cacheKey(4, 1)) != nil || c.get(cacheKey(4, 0)) == nil {
		t.Error("eviction did not take the least recently used entry")
	}
	if n := c.len(); n != limit {
		t.Errorf("len = %d, want %d", n, limit)
	}
}

// A hit that did not relink its entry still protects it from all but a
// window's worth of puts: only entries that were not hit go before it.
func TestCacheHitWindowProtects(t *testing.T) {
	const limit = 64
	c := newCache(limit * cacheShards)
	s := &c.shards[9]
	for i := range limit {
		c.put(cacheEntry(cacheKey(9, uint32(i)), fmt.Sprint(i)))
	}
	hot := cacheKey(9, uint32(limit-1-s.window)) // at the window's edge
	if c.get(hot) == nil || shardOrder(c, 9)[s.window] != fmt.Sprint(limit-1-s.window) {
		t.Fatal("hot missing, or moved")
	}
	for i := range limit - int(s.window) - 1 {
		c.put(cacheEntry(cacheKey(9, uint32(1000+i)), "filler"))
		if s.m[hot] == nil { // not c.get: that would count as a use
			t.Fatalf("hit entry evicted after %d puts", i+1)
		}
		if s.m[cacheKey(9, uint32(i))] != nil {
			t.Fatalf("after %d puts, entry %d (older, never hit) is still there", i+1, i)
		}
	}
}

// removeUser drops exactly the user's entries, whether the user has one
// cached session (held inline in the index) or several, and the index
// forgets users with no entry left.
func TestCacheRemoveUser(t *testing.T) {
	c := newCache(1000)
	var ann, bob []TokenKey
	for i := range 3 {
		k := cacheKey(byte(i), 1)
		ann = append(ann, k)
		c.put(cacheEntry(k, "ann"))
	}
	bob = append(bob, cacheKey(7, 7))
	c.put(cacheEntry(bob[0], "bob"))
	c.put(cacheEntry(cacheKey(8, 8), "cy"))
	c.put(cacheEntry(bob[0], "bob")) // again: still one key for bob

	c.remove(ann[1]) // ann down to two
	c.removeUser("r", "ann")
	for _, k := range ann {
		if c.get(k) != nil {
			t.Errorf("ann's entry %x survived removeUser", k[:2])
		}
	}
	if c.get(bob[0]) == nil || c.get(cacheKey(8, 8)) == nil || c.len() != 2 {
		t.Fatalf("removeUser(ann) touched others: len %d", c.len())
	}
	c.removeUser("r", "bob")
	c.removeUser("other-realm", "cy")
	if c.get(bob[0]) != nil || c.get(cacheKey(8, 8)) == nil {
		t.Error("removeUser(bob) missed bob's one entry, or removeUser in another realm dropped cy's")
	}
	c.remove(cacheKey(8, 8))
	c.umu.Lock()
	left := len(c.byUser)
	c.umu.Unlock()
	if left != 0 || c.len() != 0 {
		t.Errorf("after removing everything: %d users indexed, %d entries", left, c.len())
	}
}

// An entry's packed identifiers come back as they went in, empty ones too.
func TestEntryIDs(t *testing.T) {
	for _, c := range [][4]string{
		{"ann", "s1", "d1", "203.0.113.7"},
		{"", "", "", ""},
		{"bob", "", "dev", ""},
		{"", "sid", "", "2001:db8::1"},
		{"ünï", "ş", "∂", "::1"},
	} {
		var e entry
		e.setIDs(c[0], c[1], c[2], c[3])
		if got := [4]string{e.user(), e.sessionID(), e.deviceID(), e.ip()}; got != c {
			t.Errorf("setIDs%q: got back %q", c, got)
		}
	}
}
