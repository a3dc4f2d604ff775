package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"sync"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/redis/go-redis/v9"
)

// A description is a parsed user agent or a location. The same few hundred
// agents and cities describe the sessions and devices of every user, so the
// Redis store keeps each description once, under a key named by a hash of
// its content (cs:a:REF, cs:l:REF), and records hold the 10-character
// reference: a session record is about 100 bytes smaller. A description is
// immutable (new content, new reference) and carries nothing about a user.
// Its TTL is retention plus descGrace from the last write or renewal: every
// session open writes its descriptions again, and a refresh renews them
// when the session passes a day since its start, so a description outlives
// the records that name it.

const (
	descRefLen = 10 // 60 bits: collisions are negligible for millions of descriptions
	descGrace  = 3 * 24 * time.Hour
	// descCacheMax bounds the decoded descriptions an instance keeps.
	descCacheMax = 8192
)

func descRef(kind, content string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + content))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:descRefLen]
}

// agentDesc returns the reference and stored form of a; "" for no agent.
func agentDesc(a store.Agent) (ref, raw string) {
	if a == (store.Agent{}) {
		return "", ""
	}
	b, _ := json.Marshal([]string{a.Browser, a.BrowserVersion, a.OS, a.OSVersion, a.DeviceFamily, a.DeviceType})
	return descRef("a", string(b)), string(b)
}

// locationDesc returns the reference and stored form of l; "" for none.
func locationDesc(l store.Location) (ref, raw string) {
	if l.City == "" && l.Region == "" && l.Country == "" && l.CountryCode == "" && l.TimeZone == "" &&
		l.Latitude == nil && l.Longitude == nil {
		return "", ""
	}
	b, _ := json.Marshal([]any{l.City, l.Region, l.Country, l.CountryCode, l.TimeZone, l.Latitude, l.Longitude})
	return descRef("l", string(b)), string(b)
}

func decodeAgentDesc(raw string) (store.Agent, bool) {
	var f []string
	if json.Unmarshal([]byte(raw), &f) != nil || len(f) < 6 {
		return store.Agent{}, false
	}
	return store.Agent{Browser: f[0], BrowserVersion: f[1], OS: f[2], OSVersion: f[3], DeviceFamily: f[4], DeviceType: f[5]}, true
}

func decodeLocationDesc(raw string) (store.Location, bool) {
	var f []json.RawMessage
	if json.Unmarshal([]byte(raw), &f) != nil || len(f) < 7 {
		return store.Location{}, false
	}
	var l store.Location
	for i, dst := range []any{&l.City, &l.Region, &l.Country, &l.CountryCode, &l.TimeZone, &l.Latitude, &l.Longitude} {
		if json.Unmarshal(f[i], dst) != nil {
			return store.Location{}, false
		}
	}
	return l, true
}

// descCache keeps decoded descriptions by reference: they never change, so
// an entry is never stale. Bounded by dropping everything when full.
type descCache struct {
	mu     sync.Mutex
	agents map[string]store.Agent
	locs   map[string]store.Location
}

func (c *descCache) putAgent(ref string, a store.Agent) {
	c.mu.Lock()
	if c.agents == nil || len(c.agents) >= descCacheMax {
		c.agents = map[string]store.Agent{}
	}
	c.agents[ref] = a
	c.mu.Unlock()
}

func (c *descCache) putLocation(ref string, l store.Location) {
	c.mu.Lock()
	if c.locs == nil || len(c.locs) >= descCacheMax {
		c.locs = map[string]store.Location{}
	}
	c.locs[ref] = l
	c.mu.Unlock()
}

func (c *descCache) agent(ref string) (store.Agent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.agents[ref]
	return a, ok
}

func (c *descCache) location(ref string) (store.Location, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.locs[ref]
	return l, ok
}

// describe sets the references of a session and its device and queues the
// writes of their descriptions on pipe.
func (s *Store) describe(ctx context.Context, pipe redis.Pipeliner, sess *sessionRecord, dev *deviceRecord, ttl time.Duration) {
	var araw, lraw string
	sess.agentRef, araw = agentDesc(sess.Agent)
	sess.locRef, lraw = locationDesc(sess.Location)
	if sess.agentRef != "" {
		pipe.Set(ctx, agentKey(sess.agentRef), araw, ttl+descGrace)
		s.desc.putAgent(sess.agentRef, sess.Agent)
	}
	if sess.locRef != "" {
		pipe.Set(ctx, locationKey(sess.locRef), lraw, ttl+descGrace)
		s.desc.putLocation(sess.locRef, sess.Location)
	}
	if dev != nil {
		// A device is described as its newest session.
		dev.agentRef, dev.locRef = sess.agentRef, sess.locRef
		if dev.Agent != sess.Agent {
			dev.agentRef, araw = agentDesc(dev.Agent)
			if dev.agentRef != "" {
				pipe.Set(ctx, agentKey(dev.agentRef), araw, ttl+descGrace)
			}
		}
		if locationDiffers(dev.Location, sess.Location) {
			dev.locRef, lraw = locationDesc(dev.Location)
			if dev.locRef != "" {
				pipe.Set(ctx, locationKey(dev.locRef), lraw, ttl+descGrace)
			}
		}
	}
}

func locationDiffers(a, b store.Location) bool {
	ra, _ := locationDesc(a)
	rb, _ := locationDesc(b)
	return ra != rb
}

// renewDescriptions extends the TTL of the descriptions named by refs
// ("a:REF" or "l:REF").
func (s *Store) renewDescriptions(ctx context.Context, refs map[string]struct{}, ttl time.Duration) {
	if len(refs) == 0 {
		return
	}
	pipe := s.rdb.Pipeline()
	for r := range refs {
		pipe.PExpire(ctx, keyPrefix+r, ttl+descGrace)
	}
	_, _ = pipe.Exec(ctx)
}

// resolve fills Agent and Location of sessions and devices read from Redis
// from their references: from the local cache, else in one pipeline. A
// description that is gone (it expired, or Redis lost it) leaves the
// fields empty: "Unknown location", no browser.
func (s *Store) resolve(ctx context.Context, sessions []*sessionRecord, devices []*deviceRecord) {
	agents, locs := map[string]struct{}{}, map[string]struct{}{}
	want := func(aref, lref string) {
		if aref != "" {
			if _, ok := s.desc.agent(aref); !ok {
				agents[aref] = struct{}{}
			}
		}
		if lref != "" {
			if _, ok := s.desc.location(lref); !ok {
				locs[lref] = struct{}{}
			}
		}
	}
	for _, x := range sessions {
		want(x.agentRef, x.locRef)
		want("", x.loginLocRef)
	}
	for _, d := range devices {
		want(d.agentRef, d.locRef)
	}
	if len(agents)+len(locs) > 0 {
		// GETs, not MGET: the keys are on different slots of a cluster.
		pipe := s.rdb.Pipeline()
		acmds, lcmds := map[string]*redis.StringCmd{}, map[string]*redis.StringCmd{}
		for r := range agents {
			acmds[r] = pipe.Get(ctx, agentKey(r))
		}
		for r := range locs {
			lcmds[r] = pipe.Get(ctx, locationKey(r))
		}
		_, _ = pipe.Exec(ctx)
		for r, c := range acmds {
			if a, ok := decodeAgentDesc(c.Val()); ok {
				s.desc.putAgent(r, a)
			}
		}
		for r, c := range lcmds {
			if l, ok := decodeLocationDesc(c.Val()); ok {
				s.desc.putLocation(r, l)
			}
		}
	}
	fill := func(aref, lref string, a *store.Agent, l *store.Location) {
		if aref != "" {
			*a, _ = s.desc.agent(aref)
		}
		if lref != "" {
			*l, _ = s.desc.location(lref)
		}
	}
	for _, x := range sessions {
		fill(x.agentRef, x.locRef, &x.Agent, &x.Location)
		var none store.Agent
		fill("", x.loginLocRef, &none, &x.LoginLocation)
		if x.LoginIP == "" {
			// It has not moved: it started where it is.
			x.LoginIP, x.LoginLocation = x.IP, x.Location
		}
	}
	for _, d := range devices {
		fill(d.agentRef, d.locRef, &d.Agent, &d.Location)
	}
}
