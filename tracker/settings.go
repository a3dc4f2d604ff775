package tracker

import (
	"context"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// settingsTTL is how long cached switches are used before they are read
// again (in the background); changes are also published, so this only
// bounds a lost invalidation.
const settingsTTL = 30 * time.Second

type cachedSettings struct {
	s          store.Settings
	until      int64
	refreshing atomic.Bool
}

// Settings returns the realm's switches: the runtime ones from the store,
// else the configured defaults. Only the first call for a realm waits for
// the store; later ones get the cached value while it is refreshed in the
// background. If the store fails, the last known (or default) switches
// apply.
func (t *Tracker) Settings(ctx context.Context, realm string) store.Settings {
	now := t.now().UnixNano()
	if v, ok := t.settings.Load(realm); ok {
		c := v.(*cachedSettings)
		if now >= c.until && c.refreshing.CompareAndSwap(false, true) {
			go func() {
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				t.loadSettings(rctx, realm, c)
			}()
		}
		return c.s
	}
	return t.loadSettings(ctx, realm, nil)
}

func (t *Tracker) loadSettings(ctx context.Context, realm string, last *cachedSettings) store.Settings {
	// A read that a change overtook must not be cached over it.
	gen := t.settingsGen.Load()
	st, ok, err := t.cfg.Store.Settings(ctx, realm)
	switch {
	case err != nil && last != nil:
		st = last.s
	case err != nil || !ok:
		st = t.cfg.Settings
	}
	if t.settingsGen.Load() == gen {
		t.settings.Store(realm, &cachedSettings{s: st, until: t.now().UnixNano() + int64(settingsTTL)})
	} else if last != nil {
		last.refreshing.Store(false)
	}
	return st
}

// SetSettings changes the realm's switches on every instance. Nothing
// recorded before is changed: the switches are not retroactive.
func (t *Tracker) SetSettings(ctx context.Context, realm string, s store.Settings) error {
	if err := t.cfg.Store.SetSettings(ctx, realm, s); err != nil {
		return err
	}
	return t.announce(ctx, store.Invalidation{Realm: realm, Settings: true})
}

// truncateIP applies the IP precision: full, truncated to /24 (IPv4) or
// /48 (IPv6), or none.
func truncateIP(ip, precision string) string {
	switch precision {
	case store.IPNone:
		return ""
	case store.IPTruncated:
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			return ""
		}
		addr = addr.Unmap()
		bits := 48
		if addr.Is4() {
			bits = 24
		}
		p, err := addr.Prefix(bits)
		if err != nil {
			return ""
		}
		return p.Masked().Addr().String()
	}
	return ip
}
