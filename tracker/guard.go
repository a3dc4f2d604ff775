package tracker

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// ErrUnavailable is returned while a guarded store is cooling down.
var ErrUnavailable = errors.New("session store unavailable")

// guarded fails fast for a while after the store failed on the request path,
// so that during an outage requests do not each wait for a timeout.
type guarded struct {
	store.Store
	cooldown time.Duration
	until    atomic.Int64
}

// Guard wraps s so that after a failure of Seen, TokenUser, BindToken or
// Settings, those calls fail at once with ErrUnavailable for cooldown.
func Guard(s store.Store, cooldown time.Duration) store.Store {
	return &guarded{Store: s, cooldown: cooldown}
}

func (g *guarded) open() bool { return time.Now().UnixNano() < g.until.Load() }

func (g *guarded) check(err error) error {
	if err != nil && !errors.Is(err, context.Canceled) {
		g.until.Store(time.Now().Add(g.cooldown).UnixNano())
	}
	return err
}

func (g *guarded) Seen(ctx context.Context, req store.SeenRequest) (store.SeenResult, error) {
	if g.open() {
		return store.SeenResult{}, ErrUnavailable
	}
	res, err := g.Store.Seen(ctx, req)
	return res, g.check(err)
}

func (g *guarded) TokenUser(ctx context.Context, tokenHash string) (string, error) {
	if g.open() {
		return "", ErrUnavailable
	}
	u, err := g.Store.TokenUser(ctx, tokenHash)
	return u, g.check(err)
}

func (g *guarded) BindToken(ctx context.Context, tokenHash, user string, ttl time.Duration) error {
	if g.open() {
		return ErrUnavailable
	}
	return g.check(g.Store.BindToken(ctx, tokenHash, user, ttl))
}

func (g *guarded) Settings(ctx context.Context, realm string) (store.Settings, bool, error) {
	if g.open() {
		return store.Settings{}, false, ErrUnavailable
	}
	st, ok, err := g.Store.Settings(ctx, realm)
	return st, ok, g.check(err)
}
