package admin

import (
	"context"
	"time"

	"github.com/caddy-sessions/caddy-sessions/notify"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// Realm is what the admin API and self-service ask of the sessions of a
// realm, and the changes they make: the queries and actions of an admin
// and of users on their own sessions. A *tracker.Tracker is one.
type Realm interface {
	User(ctx context.Context, realm, user string) (*store.UserSummary, error)
	Users(ctx context.Context, req store.UsersRequest) ([]*store.UserSummary, int, error)
	Sessions(ctx context.Context, realm, user, state string, offset, limit int) ([]*store.Session, int, error)
	Devices(ctx context.Context, realm, user string) ([]*store.Device, error)
	Violations(ctx context.Context, realm, user string, offset, limit int) ([]*restrict.Violation, int, error)
	Risks(ctx context.Context, realm, user string, offset, limit int) ([]*store.RiskRecord, int, error)
	Activity(ctx context.Context, realm, user string, days int, admin *time.Location) (*tracker.ActivityReport, error)
	ActivityDay(ctx context.Context, realm, user, date string, admin *time.Location) (*tracker.DayReport, error)
	Export(ctx context.Context, realm, user string) (*tracker.Export, error)
	Settings(ctx context.Context, realm string) store.Settings

	Revoke(ctx context.Context, realm, user, id string) (*store.Session, error)
	RevokeAll(ctx context.Context, realm, user, except string) ([]*store.Session, error)
	BlockDevice(ctx context.Context, realm, user, device string, blocked bool) ([]*store.Session, error)
	MarkViewed(ctx context.Context, realm, user, id string) (int, error)
	SetExempt(ctx context.Context, realm, user string, exempt bool) error
	SetLimits(ctx context.Context, realm, user string, l restrict.Limits) error
	SetSettings(ctx context.Context, realm string, s store.Settings) error
	Erase(ctx context.Context, realm, user string) (int, error)

	// Now is the realm's clock; CacheLen the tokens cached on this
	// instance, DeniedTokens those it refuses from memory.
	Now() time.Time
	CacheLen() int
	DeniedTokens() int
}

var _ Realm = (*tracker.Tracker)(nil)

// Alerter is a Realm that sends risk alerts: it tells their delivery
// outcomes (this instance's, newest first).
type Alerter interface {
	AlertOutcomes(realm, user string) []notify.Outcome
}
