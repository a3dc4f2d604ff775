package admin

import (
	"net/http"
	"sort"
	"sync"
)

// Admin modules are created before apps are provisioned and carry no
// config, so handlers register their trackers here (Provision) and remove
// them (Cleanup), each with the store it uses. A realm served by several
// handlers on one store is one realm: any of them answers (the newest, so
// during a reload the new config's). A realm served on two different
// stores is ambiguous, and the API says so instead of answering from one.
var registry = struct {
	sync.RWMutex
	realms map[string][]registered
}{realms: map[string][]registered{}}

type registered struct {
	store string
	t     Realm
}

// Wildcard registers a tracker for every realm not registered by name
// (handlers whose realm is a placeholder).
const Wildcard = "*"

// Register makes t, which keeps its data in store (any string that is the
// same for handlers sharing a store), answer admin requests for realm
// until the returned function is called.
func Register(realm, store string, t Realm) (unregister func()) {
	registry.Lock()
	registry.realms[realm] = append(registry.realms[realm], registered{store: store, t: t})
	registry.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			registry.Lock()
			defer registry.Unlock()
			list := registry.realms[realm]
			for i, x := range list {
				if x.t == t {
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

// lookup is the tracker that answers for realm.
func lookup(realm string) (Realm, error) {
	registry.RLock()
	defer registry.RUnlock()
	list := registry.realms[realm]
	if len(list) == 0 {
		list = registry.realms[Wildcard]
	}
	if len(list) == 0 {
		return nil, apiErr(http.StatusNotFound, "unknown realm %q", realm)
	}
	stores := map[string]bool{}
	for _, x := range list {
		stores[x.store] = true
	}
	if len(stores) > 1 {
		return nil, apiErr(http.StatusConflict, "realm %q is served by handlers on %d different stores: give them different realms", realm, len(stores))
	}
	return list[len(list)-1].t, nil
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

// cacheEntries and deniedTokens count the tokens the registered trackers
// cache and refuse from memory.
func cacheEntries() int { return sumTrackers(Realm.CacheLen) }
func deniedTokens() int { return sumTrackers(Realm.DeniedTokens) }

func sumTrackers(f func(Realm) int) int {
	registry.RLock()
	seen := map[Realm]bool{}
	for _, list := range registry.realms {
		for _, x := range list {
			seen[x.t] = true
		}
	}
	registry.RUnlock()
	n := 0
	for t := range seen {
		n += f(t)
	}
	return n
}
