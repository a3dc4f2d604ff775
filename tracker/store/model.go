// Package store is the contract between the tracker and the stores that
// keep the session model: the model's types (sessions, devices, settings,
// invalidations), what the request path asks of a store (SessionStore) and
// what the admin surface asks (AdminStore). It holds no rule of the model:
// those are the store's (package redisstore, in its Lua scripts).
package store

import (
	"encoding/json"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
)

// End reasons recorded on a closed session.
const (
	EndLogout        = "logout"
	EndIdle          = "idle"
	EndRevoked       = "revoked"
	EndReplaced      = "replaced"
	EndDeviceBlocked = "device_blocked"
	EndEvicted       = "evicted" // by max_sessions evict_oldest
	EndErased        = "erased"
)

// HoldsToken reports whether the token stays refused for the revoke hold.
// A logged-out token is final at the proxy: an app that keeps accepting
// it (logout that only clears the browser's cookie) cannot be used with it.
func HoldsToken(reason string) bool {
	return reason == EndRevoked || reason == EndEvicted || reason == EndLogout
}

// Session is one login session of a user, as recorded by the proxy.
type Session struct {
	ID        string    `json:"id"`
	Realm     string    `json:"realm"`
	User      string    `json:"user"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"`
	// EndedAt is nil while the session is active.
	EndedAt   *time.Time `json:"ended_at"`
	EndReason string     `json:"end_reason,omitempty"`
	// IP and Location are where the session was last seen; LoginIP and
	// LoginLocation where it started (the same until it moves).
	IP            string   `json:"ip"`
	LoginIP       string   `json:"login_ip"`
	DeviceID      string   `json:"device_id"`
	Agent         Agent    `json:"agent"`
	Location      Location `json:"location"`
	LoginLocation Location `json:"login_location"`
	// Current is set only in self-service answers.
	Current bool `json:"current,omitempty"`
	// Risk lists the risk signals raised on the session.
	Risk []string `json:"risk,omitempty"`
}

// Active reports whether the session has not ended.
func (s *Session) Active() bool { return s.EndedAt == nil }

// Agent and Location are what enrichment (package enrich) makes of a
// request's user agent and IP.
type (
	Agent    = enrich.Agent
	Location = enrich.Location
)

// UnknownLocation is how a location without data is shown.
const UnknownLocation = enrich.UnknownLocation

// Device is one browser of a user, identified by the module's device cookie.
type Device struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Agent     Agent     `json:"agent"`
	LastIP    string    `json:"last_ip"`
	Location  Location  `json:"location"`
	Blocked   bool      `json:"blocked"`
	// Risk lists the risk signals raised on the device.
	Risk []string `json:"risk,omitempty"`
}

// RiskRecord is one risk finding as recorded: a signal raised on a
// session and device, what was done about it and the evidence.
type RiskRecord struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	Signal    string    `json:"signal"`
	Action    string    `json:"action"`
	SessionID string    `json:"session_id,omitempty"`
	DeviceID  string    `json:"device_id,omitempty"`
	IP        string    `json:"ip,omitempty"`
	Agent     Agent     `json:"agent"`
	Location  Location  `json:"location"`
	// Evidence is the signal's evidence (package risk), as JSON.
	Evidence json.RawMessage `json:"evidence,omitempty"`
}
