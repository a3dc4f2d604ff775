package tracker

// A user's "this wasn't me": the finding an alert was about, and what the
// report does to it.

import (
	"context"
	"errors"
	"time"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// Finding is one of the user's recorded risk findings, by id; ErrNotFound
// when the store no longer holds it.
func (t *Tracker) Finding(ctx context.Context, realm, user, id string) (*store.RiskRecord, error) {
	return t.cfg.Store.Risk(ctx, realm, user, id)
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
// is revoked on every instance, its device blocked (unless it is the
// session's own device, which a cookie_moved finding on a stolen cookie
// jar shares with the owner), and a violation (policy "reported")
// recorded for the admins. Every step is idempotent: a report that failed
// half-way can be made again.
func (t *Tracker) Report(ctx context.Context, realm, user string, f *store.RiskRecord) (ReportOutcome, error) {
	var out ReportOutcome
	ownDevice := ""
	if f.SessionID != "" {
		s, err := t.Revoke(ctx, realm, user, f.SessionID)
		switch {
		case err == nil:
			out.SessionEnded = s != nil && s.EndReason == store.EndRevoked
			if s != nil {
				ownDevice = s.DeviceID
			}
		case !errors.Is(err, store.ErrNotFound):
			return out, err
		}
	}
	if f.DeviceID != "" && !(f.Signal == "cookie_moved" && f.DeviceID == ownDevice) {
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

// Claim marks a single-use id used for ttl; false if it was already.
func (t *Tracker) Claim(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	return t.cfg.Store.Claim(ctx, id, ttl)
}

// Release takes a claim back (what it was claimed for failed).
func (t *Tracker) Release(ctx context.Context, id string) error {
	return t.cfg.Store.Release(ctx, id)
}

// Claimed reports whether a single-use id was used.
func (t *Tracker) Claimed(ctx context.Context, id string) (bool, error) {
	return t.cfg.Store.Claimed(ctx, id)
}
