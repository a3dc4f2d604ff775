package admin

import (
	"sort"
	"sync"

	"github.com/caddy-sessions/caddy-sessions/tracker"
)

// Admin modules are created before apps are provisioned and carry no
// config, so handlers register their trackers here (Provision) and remove
// them (Cleanup). During a reload old and new handlers overlap: the newest
// registration of a realm answers.
var registry = struct {
	sync.RWMutex
	realms map[string][]*tracker.Tracker
}{realms: map[string][]*tracker.Tracker{}}

// Wildcard registers a tracker for every realm not registered by name
// (handlers whose realm is the request's host).
const Wildcard = "*"

// Register makes t answer admin requests for realm until the returned
// function is called.
func Register(realm string, t *tracker.Tracker) (unregister func()) {
	registry.Lock()
	registry.realms[realm] = append(registry.realms[realm], t)
	registry.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			registry.Lock()
			defer registry.Unlock()
			list := registry.realms[realm]
			for i, x := range list {
				if x == t {
					list = append(list[:i:i], list[i+1:]...)
					break
				}
			}
			if len(list) == 0 {
				delete(registry.realms, realm)
			} else {
				registry.realms[realm] = list
			}
		})
	}
}

func lookup(realm string) *tracker.Tracker {
	registry.RLock()
	defer registry.RUnlock()
	list := registry.realms[realm]
	if len(list) == 0 {
		list = registry.realms[Wildcard]
	}
	if len(list) == 0 {
		return nil
	}
	return list[len(list)-1]
}

func realmNames() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.realms))
	for r := range registry.realms {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// cacheEntries counts the tokens cached by the registered trackers.
func cacheEntries() int {
	registry.RLock()
	seen := map[*tracker.Tracker]bool{}
	for _, list := range registry.realms {
		for _, t := range list {
			seen[t] = true
		}
	}
	registry.RUnlock()
	n := 0
	for t := range seen {
		n += t.CacheLen()
	}
	return n
}
