package tracker

// Risk assessment: when a session opens, or a known session shows up on
// another IP or device (never on a cached, unchanged request), the signals
// of package risk are evaluated on the user's recent history, recorded,
// reported (Hooks.Risk) and acted on.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/risk"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// Risk actions, weakest first.
const (
	RiskLog       = "log"       // recorded, counted, reported as an event
	RiskNotify    = "notify"    // and an alert is sent (Hooks.Risk's caller)
	RiskBlock     = "block"     // and the request's device is blocked: 403
	RiskRevoke    = "revoke"    // and the session is ended on every instance
	RiskChallenge = "challenge" // and the session ended, the browser sent to log in again
)

// RiskPolicy says which signals are evaluated and what is done on each.
type RiskPolicy struct {
	// Actions maps each signal on to its action; signals absent are off.
	Actions    map[risk.Signal]string
	Thresholds risk.Thresholds
}

func (p *RiskPolicy) on(s risk.Signal) bool {
	_, ok := p.Actions[s]
	return ok
}

// historyLen is how many of the user's sessions, newest first, an
// assessment reads.
const historyLen = 50

// RiskEvent is one risk finding recorded, as Hooks.Risk reports it.
type RiskEvent struct {
	Realm, User string
	Record      store.RiskRecord
	Finding     risk.Finding
	// Agent and Location are the request's.
	Agent    store.Agent
	Location store.Location
	// UserZone is the time zone of the user's latest other session with
	// one (where the user lives, as far as the module knows), else the
	// request's.
	UserZone string
}

// riskVerdict is what the findings of one request call for.
type riskVerdict struct {
	// Signals are the session's signals after this request.
	signals []string
	// action is the strongest action of a finding raised now; signal is
	// that finding's.
	action, signal string
	// failed: the store failed during the assessment (no history, a
	// finding or an enforcement not written); the request's answer
	// stands, and the next request is assessed again.
	failed bool
}

// assessTimeout bounds an assessment's store calls.
const assessTimeout = 5 * time.Second

// assess evaluates ev for user's session, records what it finds, reports
// what it recorded, and carries out the actions but the answer to the
// request itself, which the caller gives (riskRefusal). A finding raised
// again (the session and device have its signal already) is not recorded
// nor reported again, but acted on again: a refusal does not depend on
// which request, or which instance, recorded it first.
func (t *Tracker) assess(ctx context.Context, realm, user, ip string, ev risk.Event, known []string) riskVerdict {
	v := riskVerdict{signals: known}
	p := t.cfg.Risk
	if p == nil || len(p.Actions) == 0 {
		return v
	}
	hist, err := t.history(ctx, realm, user, ev.SessionID)
	if err != nil {
		v.failed = true
		return v // no verdict rather than a wrong one, and not cached
	}
	var blocked, revoked bool
	for _, f := range risk.Evaluate(ev, hist, p.Thresholds, p.on) {
		action := p.Actions[f.Signal]
		if action == RiskBlock && ev.Session != nil && ev.DeviceID == ev.Session.DeviceID {
			// The session's own device id in another browser: its
			// device cookie was taken along, so blocking the device
			// would lock the owner out with the thief. The session is
			// revoked instead.
			action = RiskRevoke
		}
		evidence, _ := json.Marshal(f.Evidence)
		rec := store.RiskRecord{
			ID: newRiskID(), At: ev.At, Signal: string(f.Signal), Action: action, SessionID: ev.SessionID, DeviceID: ev.DeviceID,
			IP: ip, Agent: ev.Agent, Location: ev.Location, Evidence: evidence,
		}
		recorded, err := t.cfg.Store.RecordRisk(ctx, realm, user, rec, t.cfg.Policy)
		switch {
		case err != nil:
			v.failed = true
		case recorded:
			if h := t.cfg.Hooks.Risk; h != nil {
				h(ctx, RiskEvent{Realm: realm, User: user, Record: rec, Finding: f, Agent: ev.Agent, Location: ev.Location, UserZone: homeZone(hist, ev)})
			}
		}
		v.signals = addSignal(v.signals, rec.Signal)
		if riskRank(action) > riskRank(v.action) {
			v.action, v.signal = action, rec.Signal
		}
		blocked = blocked || action == RiskBlock
		revoked = revoked || action == RiskRevoke || action == RiskChallenge
	}
	// Every enforcing action found is carried out: a block stops the
	// request's device (never the session's own: see above), a
	// revocation the session. Both are idempotent.
	if blocked {
		if _, err := t.BlockDevice(ctx, realm, user, ev.DeviceID, true); err != nil {
			v.failed = true
		}
	}
	if revoked {
		if _, err := t.Revoke(ctx, realm, user, ev.SessionID); err != nil {
			v.failed = true
		}
	}
	return v
}

// history is the user's recent sessions but sessionID, and the devices
// they were on.
func (t *Tracker) history(ctx context.Context, realm, user, sessionID string) (risk.History, error) {
	list, _, err := t.cfg.Store.Sessions(ctx, store.ListRequest{
		Realm: realm, User: user, State: "all", Limit: historyLen, Now: t.now(), Policy: t.cfg.Policy,
	})
	if err != nil {
		return risk.History{}, err
	}
	var h risk.History
	devices := map[string]bool{}
	for _, s := range list {
		if s.ID == sessionID {
			continue
		}
		h.Sessions = append(h.Sessions, sighting(s))
		devices[s.DeviceID] = true
	}
	h.Devices = len(devices)
	return h, nil
}

// homeZone is the time zone of the newest session in h that has one, else
// the event's.
func homeZone(h risk.History, ev risk.Event) string {
	for _, s := range h.Sessions {
		if s.Location.TimeZone != "" {
			return s.Location.TimeZone
		}
	}
	return ev.Location.TimeZone
}

func sighting(s *store.Session) risk.Sighting {
	login := s.LoginLocation
	if !login.Known() {
		login = s.Location
	}
	return risk.Sighting{
		SessionID: s.ID, DeviceID: s.DeviceID, Start: s.StartedAt, Last: s.LastSeen, Active: s.Active(),
		Login: login, Location: s.Location, Agent: s.Agent,
	}
}

// riskRank orders actions by what the request's answer becomes: a
// challenge's redirect over a block's 403 over a revocation's refusal.
func riskRank(action string) int {
	switch action {
	case RiskLog:
		return 1
	case RiskNotify:
		return 2
	case RiskRevoke:
		return 3
	case RiskBlock:
		return 4
	case RiskChallenge:
		return 5
	}
	return 0
}

func addSignal(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(append([]string(nil), list...), s)
}

func newRiskID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// riskRefusal is the answer to a request whose findings call for one:
// a challenge (the session ended, the client sent to log in again), a
// block (403, the reason the signal) or a revocation.
func riskRefusal(v riskVerdict, realm, user string, res store.SeenResult) (Result, bool) {
	out := Result{Tracked: true, Realm: realm, User: user, SessionID: res.SessionID, DeviceID: res.DeviceID, Refused: true, RiskSignal: v.signal}
	out.Vars = NewVars(user, res.SessionID, res.DeviceID, strings.Join(v.signals, ","))
	switch v.action {
	case RiskChallenge:
		out.Reason, out.Challenge = store.EndRevoked, true
	case RiskBlock:
		out.Reason = v.signal
	case RiskRevoke:
		out.Reason = store.EndRevoked
	default:
		return Result{}, false
	}
	return out, true
}
