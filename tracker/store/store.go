package store

import (
	"context"
	"errors"
	"time"

	"github.com/caddy-sessions/caddy-sessions/restrict"
)

// ErrNotFound is returned for an unknown session, device or user.
var ErrNotFound = errors.New("not found")

// Policy is the realm configuration every store operation needs.
type Policy struct {
	Idle      time.Duration // a session idle this long is closed
	Retention time.Duration // closed sessions and all history are kept this long
	Refresh   time.Duration // last_seen is written at most this often
	// RevokeHold is how long a revoked token keeps being refused.
	RevokeHold time.Duration
}

// SeenRequest asks the store to find the active session of a token or open
// one, in one atomic step for the user.
type SeenRequest struct {
	Realm, User string
	TokenHash   string
	Now         time.Time
	Policy      Policy
	// Login forces a new session even if the token has an active one
	// (the old one ends as replaced).
	Login bool
	// New is the session to open when there is none: ID, IP, device,
	// agent and location filled in by the caller.
	New *Session
	// Device is the device record to create or refresh.
	Device *Device
	// DeviceMinted says Device.ID was made for this request (no valid
	// device cookie; derived from the token, user agent and IP). It is
	// used as it is, also on a known session's token: a session cookie
	// without its device cookie is another browser until proven otherwise.
	DeviceMinted bool
	// Limits are the realm's limits; the user's overrides and exemption,
	// kept in the store, apply on top.
	Limits restrict.Limits
	// IPKey is the IP as max_ips counts it (see restrict.Prefix).
	IPKey string
	// Activity carries what per-day totals and the trail need.
	Activity Activity
	// CheckToken asks for the token's login binding too (SeenResult.
	// TokenUser), in the same round trip.
	CheckToken bool
	// NoOpen: when the token has no active session, open none and answer
	// StatusNone (a second cookie of a login is checked, never counted).
	NoOpen bool
}

// Activity is what a write needs to keep per-day totals and the trail.
type Activity struct {
	// Days is a script argument from makeDaysArg.
	Days string
	// Path, when set, is added to the session's trail of TrailLen.
	Path     string
	TrailLen int
}

// Seen outcomes.
const (
	StatusActive  = "active"  // an active session exists
	StatusOpened  = "opened"  // a new session was opened
	StatusRefused = "refused" // the request may not pass; Reason says why
	StatusNone    = "none"    // no active session, and NoOpen asked for none
)

// Refusal reasons besides the end reasons revoked, evicted and
// device_blocked are the policy names of package restrict.

// SeenResult is the answer to a SeenRequest.
type SeenResult struct {
	Status    string
	SessionID string
	StartedAt time.Time
	LastSeen  time.Time
	// Reason is why, with StatusRefused.
	Reason string
	// Closed lists sessions this step ended (idle, replaced).
	Closed []*Session
	// ClosedTokens[i] is the token hash of Closed[i], so the caller can
	// deny an evicted session's token.
	ClosedTokens []string
	// NewDevice is set when the device was first seen for this user.
	NewDevice bool
	// DeviceID is the device the request was counted on.
	DeviceID string
	// TokenUser is the token's login binding, with CheckToken.
	TokenUser string
	// Violations lists limits this step went past.
	Violations []*restrict.Violation
	// Prior, with StatusActive, is the session as it was before this
	// request when the request moved it: from another IP, or on another
	// device than the session's (its cookie in another browser). With
	// StatusOpened without a login: the token's latest session among the
	// user's 20 newest, if it had one (a cookie seen again after its
	// session ended).
	Prior *Session
	// Risk lists the risk signals raised on the session so far.
	Risk []string
}

// Touch refreshes last activity of one active session.
type Touch struct {
	Realm, User string
	SessionID   string
	DeviceID    string
	Now         time.Time
	Policy      Policy
	Activity    Activity
}

// TouchResult reports the session's state after a touch. Ended is set when
// the session had ended (revoked elsewhere, logged out, idle).
type TouchResult struct {
	Ended  bool
	Reason string
	Err    error
}

// ListRequest selects sessions of one user, newest first.
type ListRequest struct {
	Realm, User string
	State       string // "active", "closed" or "all"
	Offset      int
	Limit       int
	Now         time.Time
	Policy      Policy
}

// Invalidation tells every instance to forget cached state.
type Invalidation struct {
	Realm string `json:"r"`
	// UserTag (a keyed hash of realm and user, never the user id: the
	// store keeps a log of these), when set, drops every cached session
	// of that user.
	UserTag string `json:"u,omitempty"`
	// TokenHash, when set, drops one cached token.
	TokenHash string `json:"t,omitempty"`
	// Settings drops the cached switches of the realm.
	Settings bool `json:"s,omitempty"`
	// Deny, when set, is why TokenHash and the cached tokens of User's
	// Sessions (all of them when Sessions is empty) are refused from now
	// on: instances keep them on their deny list (deny.go).
	Deny     string   `json:"d,omitempty"`
	Sessions []string `json:"ss,omitempty"`
	// Device, with UserTag, is a device blocked (Blocked) or unblocked.
	Device  string `json:"dv,omitempty"`
	Blocked bool   `json:"b,omitempty"`
	// Tokens are token hashes refused for Deny (with Device and Blocked:
	// as sessions on that device): every token of the sessions ended, so
	// an instance that never cached them, or starts later and replays the
	// log, refuses them while the store is unreachable.
	Tokens []string `json:"ts,omitempty"`
	// At is when it happened (Unix milliseconds): a deny entry lasts the
	// revoke hold from then, also when replayed later.
	At int64 `json:"at,omitempty"`
	// Origin is the publishing tracker, which applied it already.
	Origin string `json:"o,omitempty"`
}

// Store keeps sessions and devices. Every method that changes a user's data
// is atomic for that user. Implementations: redisstore.Store, and
// redisstore.Memory, which is that store over an in-process Redis; one
// conformance suite (redisstore/store_test.go) runs against both. It is two interfaces by who uses
// them: the request path and the idle sweep (SessionStore), and the
// queries and actions of admins and of users on their own sessions
// (AdminStore).
type Store interface {
	SessionStore
	AdminStore
}

// SessionStore is what the request path needs: a token's session found
// or opened, refreshed, ended, and the invalidations between instances.
type SessionStore interface {
	// Seen finds or opens the session of req.TokenHash.
	Seen(ctx context.Context, req SeenRequest) (SeenResult, error)
	// Touch refreshes sessions in one batch; results line up with touches.
	Touch(ctx context.Context, touches []Touch) []TouchResult
	// EndToken ends the active session bound to tokenHash, if any. With
	// forget the token's mapping goes too, whatever the reason (a token
	// made from the device, which must not stay refused).
	EndToken(ctx context.Context, realm, user, tokenHash, reason string, forget bool, now time.Time, p Policy) (*Session, error)
	// AliasToken maps another token to a session of the user (a rotated
	// cookie, or a second cookie of the same login); false if the session
	// has ended (the token then shares its end) or is unknown (nothing
	// mapped).
	AliasToken(ctx context.Context, realm, user, tokenHash, sessionID string) (bool, error)
	// SweepIdle closes sessions idle past p.Idle of users active in
	// (since, now-p.Idle], returning what it closed.
	SweepIdle(ctx context.Context, realm string, since, now time.Time, p Policy) ([]*Session, error)
	// BindToken remembers that tokenHash belongs to user, for apps whose
	// requests carry only their session cookie.
	BindToken(ctx context.Context, tokenHash, user string, ttl time.Duration) error
	// TokenUser is the user a token was bound to, or "".
	TokenUser(ctx context.Context, tokenHash string) (string, error)
	// UnbindToken forgets a binding (logout).
	UnbindToken(ctx context.Context, tokenHash string) error
	// Publish sends an invalidation to every subscriber on every instance.
	Publish(ctx context.Context, inv Invalidation) error
	// Subscribe calls fn for every invalidation. Resync is called after
	// the subscription was interrupted: cached state may be stale.
	Subscribe(fn func(Invalidation), resync func()) (cancel func())
	// Settings returns a realm's runtime switches; ok is false when none
	// were set at runtime.
	Settings(ctx context.Context, realm string) (s Settings, ok bool, err error)
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// AdminStore is what admins and users' own pages read and change.
type AdminStore interface {
	// EndSession ends one session by id; ErrNotFound if there is none.
	EndSession(ctx context.Context, realm, user, id, reason string, now time.Time, p Policy) (*Session, error)
	// EndAll ends every active session of a user but except (may be empty).
	EndAll(ctx context.Context, realm, user, except, reason string, now time.Time, p Policy) ([]*Session, error)
	// Sessions lists a user's sessions newest first and the total matched.
	Sessions(ctx context.Context, req ListRequest) ([]*Session, int, error)
	// Devices lists a user's devices, most recently seen first.
	Devices(ctx context.Context, realm, user string) ([]*Device, error)
	// SetDeviceBlocked blocks or unblocks a device (ErrNotFound if the
	// user has no such device); blocking ends its active sessions.
	SetDeviceBlocked(ctx context.Context, realm, user, device string, blocked bool, now time.Time, p Policy) ([]*Session, error)
	// Violations lists a user's violations, newest first, and the total.
	Violations(ctx context.Context, realm, user string, offset, limit int) ([]*restrict.Violation, int, error)
	// MarkViewed marks one violation (id) or all (id "") viewed and
	// returns how many unviewed are left. ErrNotFound for an unknown id.
	MarkViewed(ctx context.Context, realm, user, id string) (int, error)
	// User returns a user's summary; ErrNotFound if the store holds
	// nothing of the user.
	User(ctx context.Context, realm, user string, now time.Time, p Policy) (*UserSummary, error)
	// Users lists a realm's users by last activity, newest first.
	Users(ctx context.Context, req UsersRequest) ([]*UserSummary, int, error)
	// SetExempt turns all limit checks off or on for a user.
	SetExempt(ctx context.Context, realm, user string, exempt bool, p Policy) error
	// SetLimits stores a user's limit overrides (zero Limits: none).
	SetLimits(ctx context.Context, realm, user string, l restrict.Limits, p Policy) error
	// Days returns per-day totals of a user for the given local dates
	// (nil: all dates held).
	Days(ctx context.Context, realm, user string, dates []string) (map[string]DayTotal, error)
	// Trail returns the recent paths of a session (oldest first).
	Trail(ctx context.Context, realm, user, id string) ([]TrailEntry, error)
	// Erase deletes everything held about a user and returns the token
	// hashes the user had, so callers can keep refusing them.
	Erase(ctx context.Context, realm, user string) ([]string, error)
	// SessionTokens returns the token hashes (rotated ones included) that
	// name the given sessions of a user.
	SessionTokens(ctx context.Context, realm, user string, ids []string) ([]string, error)
	// SetSettings stores a realm's runtime switches.
	SetSettings(ctx context.Context, realm string, s Settings) error
	// RecordRisk records a risk finding on the user, its session and its
	// device; false (nothing recorded) when the session and the device
	// already have that signal. The newest RiskCap findings are kept, for the retention.
	RecordRisk(ctx context.Context, realm, user string, rec RiskRecord, p Policy) (bool, error)
	// Risks lists a user's risk findings, newest first, and the total.
	Risks(ctx context.Context, realm, user string, offset, limit int) ([]*RiskRecord, int, error)
	// Report records a violation the user reported (policy "reported"):
	// v's time, IP, location, device, session and action; the store
	// gives it its id.
	Report(ctx context.Context, realm, user string, v restrict.Violation, p Policy) (*restrict.Violation, error)
	// Risk is one risk finding by id; ErrNotFound if the store no
	// longer holds it.
	Risk(ctx context.Context, realm, user, id string) (*RiskRecord, error)
	// Claim marks id used for ttl; false if it was already.
	Claim(ctx context.Context, id string, ttl time.Duration) (bool, error)
	// Release takes a claim back.
	Release(ctx context.Context, id string) error
	// Claimed reports whether id was claimed.
	Claimed(ctx context.Context, id string) (bool, error)
}

// RiskCap is how many risk findings a store keeps per user.
const RiskCap = 200

// UserSummary is one row of the admin users list.
type UserSummary struct {
	User               string           `json:"user"`
	LastActivity       time.Time        `json:"last_activity"`
	ActiveSessions     int              `json:"active_sessions"`
	Devices            int              `json:"devices"`
	UnviewedViolations int              `json:"unviewed_violations"`
	Exempt             bool             `json:"exempt"`
	Limits             *restrict.Limits `json:"limits,omitempty"`
}

// UsersRequest selects users of a realm.
type UsersRequest struct {
	Realm string
	// Prefix keeps users whose id starts with it.
	Prefix string
	// Unviewed keeps users with unviewed violations.
	Unviewed bool
	// Active keeps users with an active session.
	Active        bool
	Offset, Limit int
	Now           time.Time
	Policy        Policy
}

// DayTotal is one local date of a user's activity.
type DayTotal struct {
	Active   time.Duration
	Sessions int
}

// TrailEntry is one visited path of the extended activity trail.
type TrailEntry struct {
	Time time.Time `json:"time"`
	Path string    `json:"path"`
}

// IP precisions.
const (
	IPFull      = "full"
	IPTruncated = "truncated"
	IPNone      = "none"
)

// Settings are a realm's privacy switches. Their zero value is not the
// default: see DefaultSettings.
type Settings struct {
	// Tracking off: nothing new is recorded or enforced.
	Tracking bool `json:"tracking"`
	// Geolocation off: new entries get no location.
	Geolocation bool `json:"geolocation"`
	// IPPrecision: full, truncated (/24, /48) or none.
	IPPrecision string `json:"ip_precision"`
	// ActivityTrail on: sessions keep recent paths, with consent.
	ActivityTrail bool `json:"activity_trail"`
}

// DefaultSettings are on, on, full, off.
func DefaultSettings() Settings {
	return Settings{Tracking: true, Geolocation: true, IPPrecision: IPFull}
}
