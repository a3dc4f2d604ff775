package tracker

// A user's "this wasn't me": the finding an alert was about, and what the
// report does to it.

import (
	"context"
	"errors"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// Finding is one of the user's recorded risk findings, by id; ErrNotFound
// when the store no longer holds it.
func (t *Tracker) Finding(ctx context.Context, realm, user, id string) (*store.RiskRecord, error) {
	list, _, err := t.cfg.Store.Risks(ctx, realm, user, 0, store.RiskCap)
	if err != nil {
		return nil, err
	}
	for _, r := range list {
		if r.ID == id {
			return r, nil
		}
	}
	return nil, store.ErrNotFound
}

// ReportOutcome is what a report did.
type ReportOutcome struct {
	// SessionEnded: the finding's session was active and is now revoked.
	SessionEnded bool
	// DeviceBlocked: the finding's device is blocked.
	DeviceBlocked bool
	Violation     *restrict.Violation
}

// Report acts on the user's word that finding f was not them: its session
// is revoked on every instance, its device blocked, and a violation
// (policy "reported") recorded for the admins.
func (t *Tracker) Report(ctx context.Context, realm, user string, f *store.RiskRecord) (ReportOutcome, error) {
	var out ReportOutcome
	if f.SessionID != "" {
		s, err := t.Revoke(ctx, realm, user, f.SessionID)
		switch {
		case err == nil:
			out.SessionEnded = s != nil && s.EndReason == store.EndRevoked
		case !errors.Is(err, store.ErrNotFound):
			return out, err
		}
	}
	if f.DeviceID != "" {
		_, err := t.BlockDevice(ctx, realm, user, f.DeviceID, true)
		switch {
		case err == nil:
			out.DeviceBlocked = true
		case !errors.Is(err, store.ErrNotFound):
			return out, err
		}
	}
	v, err := t.cfg.Store.Report(ctx, realm, user, restrict.Violation{
		Time: t.now(), IP: f.IP, Location: f.Location.String(), Device: f.DeviceID, Session: f.SessionID, Action: store.EndRevoked,
	}, t.cfg.Policy)
	if err != nil {
		return out, err
	}
	out.Violation = v
	if h := t.cfg.Hooks.Violation; h != nil {
		h(realm, v)
	}
	return out, nil
}

// Claim marks a single-use id used; false if it was already.
func (t *Tracker) Claim(ctx context.Context, id string) (bool, error) {
	return t.cfg.Store.Claim(ctx, id, t.cfg.Policy.Retention)
}

// Claimed reports whether a single-use id was used.
func (t *Tracker) Claimed(ctx context.Context, id string) (bool, error) {
	return t.cfg.Store.Claimed(ctx, id)
}
