package tracker

// The local deny list: every token this instance knows to be refused
// (revoked, evicted, logged out, of an erased user, or of a session on a
// blocked device), kept in memory and checked before the cache and the
// store, so a refused token stays refused while the store is unreachable.
// Bounded; each entry expires when the store's own hold would.

import (
	"context"
	"sync"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// maxDenied bounds the deny list.
const maxDenied = 100000

type denial struct {
	reason string
	until  int64 // unix nanoseconds
	// realm, user (its UserTag) and device, for a device block:
	// unblocking lifts it.
	realm, userTag, device string
}

type denyList struct {
	mu sync.RWMutex
	m  map[TokenKey]denial
}

func newDenyList() *denyList { return &denyList{m: map[TokenKey]denial{}} }

// check is the reason key is refused, "" if it is not.
func (d *denyList) check(key TokenKey, now int64) string {
	d.mu.RLock()
	x, ok := d.m[key]
	d.mu.RUnlock()
	if !ok || now >= x.until {
		return ""
	}
	return x.reason
}

// add refuses key until until; past the bound, expired entries go first,
// then arbitrary ones (the store still refuses them while it answers).
func (d *denyList) add(key TokenKey, x denial, now int64) {
	if x.until <= now {
		return // a replayed denial whose hold is over
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.m[key]; !ok && len(d.m) >= maxDenied {
		for k, v := range d.m {
			if now >= v.until {
				delete(d.m, k)
			}
		}
		for k := range d.m {
			if len(d.m) < maxDenied {
				break
			}
			delete(d.m, k)
		}
	}
	d.m[key] = x
}

// lift removes key (a new login on it).
func (d *denyList) lift(key TokenKey) {
	d.mu.Lock()
	delete(d.m, key)
	d.mu.Unlock()
}

// unblock lifts the denials of a device block.
func (d *denyList) unblock(realm, userTag, device string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, v := range d.m {
		if v.device == device && v.userTag == userTag && v.realm == realm {
			delete(d.m, k)
		}
	}
}

func (d *denyList) len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.m)
}

// deny refuses key for reason, for the store's hold.
func (t *Tracker) deny(key TokenKey, reason string, at time.Time) {
	if !store.HoldsToken(reason) && reason != store.EndErased {
		return
	}
	t.denied.add(key, denial{reason: reason, until: at.Add(t.cfg.Policy.RevokeHold).UnixNano()}, t.now().UnixNano())
}

// denyCached refuses the cached tokens of user's sessions ids (nil: all)
// or of the user's sessions on device, for reason: what an instance learns
// of a revocation or a device block it holds sessions of.
func (t *Tracker) denyCached(realm, user string, ids []string, device, reason string) {
	now := t.now()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var keys []TokenKey
	var devs []string
	t.cache.eachOfUser(realm, user, func(e *entry) {
		switch {
		case device != "" && e.deviceID() == device:
		case device == "" && (ids == nil || want[e.sessionID()]):
		default:
			return
		}
		keys = append(keys, e.key)
		devs = append(devs, e.deviceID())
	})
	until := now.Add(t.cfg.Policy.RevokeHold).UnixNano()
	for i, k := range keys {
		x := denial{reason: reason, until: until}
		if device != "" {
			x.realm, x.userTag, x.device = realm, t.cfg.Keys.UserTag(realm, user), devs[i]
		}
		t.denied.add(k, x, now.UnixNano())
	}
}

// DeniedTokens is how many tokens this instance refuses from memory.
func (t *Tracker) DeniedTokens() int { return t.denied.len() }

// maxReseed bounds the deny entries one instance writes back to a log that
// lost entries: about what the log keeps.
const maxReseed = 10000

// reseed writes the deny list back to the invalidation log after the log
// lost entries (Redis came back empty, or the log was trimmed past what
// this instance had read): the instances that start from now on replay
// them, so a revocation is not forgotten while one instance still holds
// it. Entries are grouped by what they deny and the minute their hold
// ends (a replayed entry may end up to a minute early), so a deny list is
// a few log entries, not one per token; an instance reseeds at most once a
// minute.
func (t *Tracker) reseed(ctx context.Context) {
	type group struct {
		reason, realm, userTag, device string
		until                          int64 // minutes
	}
	now := t.now().UnixNano()
	if last := t.lastReseed.Load(); now-last < int64(time.Minute) || !t.lastReseed.CompareAndSwap(last, now) {
		return
	}
	groups := map[group][]string{}
	n := 0
	t.denied.mu.RLock()
	for k, x := range t.denied.m {
		if x.until <= now || n >= maxReseed {
			continue
		}
		g := group{x.reason, x.realm, x.userTag, x.device, x.until / int64(time.Minute)}
		groups[g] = append(groups[g], k.String())
		n++
	}
	t.denied.mu.RUnlock()
	hold := t.cfg.Policy.RevokeHold.Milliseconds()
	for g, toks := range groups {
		inv := store.Invalidation{Realm: g.realm, Tokens: toks, At: g.until*time.Minute.Milliseconds() - hold, Origin: t.id}
		if g.device != "" {
			inv.UserTag, inv.Device, inv.Blocked = g.userTag, g.device, true
		} else {
			inv.Deny = g.reason
		}
		if err := t.cfg.Store.Publish(ctx, inv); err != nil {
			return // the store is gone again: the next loss retries
		}
	}
}
