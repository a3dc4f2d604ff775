package tracker

// What admins and users ask of and do to a realm's sessions (the methods
// behind admin.Realm).

import (
	"context"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/caddy-sessions/caddy-sessions/restrict"
)

// Revoke ends one session of user and stops its token on every instance.
func (t *Tracker) Revoke(ctx context.Context, realm, user, id string) (*store.Session, error) {
	s, err := t.cfg.Store.EndSession(ctx, realm, user, id, store.EndRevoked, t.now(), t.cfg.Policy)
	if err != nil {
		return nil, err
	}
	t.afterRevoke(ctx, realm, user, []*store.Session{s})
	return s, nil
}

// RevokeAll ends every active session of user except one (may be "").
func (t *Tracker) RevokeAll(ctx context.Context, realm, user, except string) ([]*store.Session, error) {
	closed, err := t.cfg.Store.EndAll(ctx, realm, user, except, store.EndRevoked, t.now(), t.cfg.Policy)
	if err != nil {
		return nil, err
	}
	t.afterRevoke(ctx, realm, user, closed)
	return closed, nil
}

func (t *Tracker) afterRevoke(ctx context.Context, realm, user string, closed []*store.Session) {
	inv := store.Invalidation{Realm: realm, UserTag: t.cfg.Keys.UserTag(realm, user)}
	for _, s := range closed {
		if s.EndReason == store.EndRevoked {
			inv.Deny = store.EndRevoked
			inv.Sessions = append(inv.Sessions, s.ID)
		}
	}
	// Without the tokens (store error), the instances that cached them
	// still deny them (denyCached).
	inv.Tokens, _ = t.cfg.Store.SessionTokens(ctx, realm, user, inv.Sessions)
	_ = t.announce(ctx, inv)
	for _, s := range closed {
		if s.EndReason == store.EndRevoked && s.EndedAt != nil && t.now().Sub(*s.EndedAt) < time.Second {
			t.closed(s)
		}
	}
}

// BlockDevice blocks or unblocks a device of user on every instance at
// once; blocking ends its sessions.
func (t *Tracker) BlockDevice(ctx context.Context, realm, user, device string, blocked bool) ([]*store.Session, error) {
	closed, err := t.cfg.Store.SetDeviceBlocked(ctx, realm, user, device, blocked, t.now(), t.cfg.Policy)
	if err != nil {
		return nil, err
	}
	inv := store.Invalidation{Realm: realm, UserTag: t.cfg.Keys.UserTag(realm, user), Device: device, Blocked: blocked}
	if blocked {
		ids := make([]string, len(closed))
		for i, s := range closed {
			ids[i] = s.ID
		}
		inv.Tokens, _ = t.cfg.Store.SessionTokens(ctx, realm, user, ids)
	}
	_ = t.announce(ctx, inv)
	for _, s := range closed {
		t.closed(s)
	}
	if h := t.cfg.Hooks.DeviceBlocked; h != nil {
		h(realm, user, device, blocked)
	}
	return closed, nil
}

// Violations lists violations of user, newest first, and the total.
func (t *Tracker) Violations(ctx context.Context, realm, user string, offset, limit int) ([]*restrict.Violation, int, error) {
	return t.cfg.Store.Violations(ctx, realm, user, offset, limit)
}

// MarkViewed marks one violation (or all, id "") viewed.
func (t *Tracker) MarkViewed(ctx context.Context, realm, user, id string) (int, error) {
	return t.cfg.Store.MarkViewed(ctx, realm, user, id)
}

// SetExempt turns limit checks off (true) or on for user.
func (t *Tracker) SetExempt(ctx context.Context, realm, user string, exempt bool) error {
	if err := t.cfg.Store.SetExempt(ctx, realm, user, exempt, t.cfg.Policy); err != nil {
		return err
	}
	t.dropUser(ctx, realm, user) // remembered refusals no longer hold
	return nil
}

// dropUser makes every instance forget what it cached about user.
func (t *Tracker) dropUser(ctx context.Context, realm, user string) {
	_ = t.announce(ctx, store.Invalidation{Realm: realm, UserTag: t.cfg.Keys.UserTag(realm, user)})
}

// SetLimits stores user's limit overrides.
func (t *Tracker) SetLimits(ctx context.Context, realm, user string, l restrict.Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	if err := t.cfg.Store.SetLimits(ctx, realm, user, l, t.cfg.Policy); err != nil {
		return err
	}
	t.dropUser(ctx, realm, user)
	return nil
}

// User is user's summary, ErrNotFound if nothing is held about them.
func (t *Tracker) User(ctx context.Context, realm, user string) (*store.UserSummary, error) {
	return t.cfg.Store.User(ctx, realm, user, t.now(), t.cfg.Policy)
}

// Users lists users of a realm.
func (t *Tracker) Users(ctx context.Context, req store.UsersRequest) ([]*store.UserSummary, int, error) {
	req.Now, req.Policy = t.now(), t.cfg.Policy
	return t.cfg.Store.Users(ctx, req)
}

// Sessions lists sessions of user, newest first, and the number matched.
func (t *Tracker) Sessions(ctx context.Context, realm, user, state string, offset, limit int) ([]*store.Session, int, error) {
	return t.cfg.Store.Sessions(ctx, store.ListRequest{
		Realm: realm, User: user, State: state, Offset: offset, Limit: limit, Now: t.now(), Policy: t.cfg.Policy,
	})
}

// Devices lists devices of user, most recent first.
func (t *Tracker) Devices(ctx context.Context, realm, user string) ([]*store.Device, error) {
	return t.cfg.Store.Devices(ctx, realm, user)
}

// Risks pages through a user's risk findings, newest first.
func (t *Tracker) Risks(ctx context.Context, realm, user string, offset, limit int) ([]*store.RiskRecord, int, error) {
	return t.cfg.Store.Risks(ctx, realm, user, offset, limit)
}
