package tracker

// The request path: a request's device and token, answered from the local
// cache when nothing changed, else from the store (SessionStore.Seen).

import (
	"context"
	"strings"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
	"github.com/caddy-sessions/caddy-sessions/tracker/risk"
)

// negativeTTL is how long an instance trusts "this token is anonymous".
// Logins publish an invalidation, so it only bounds a lost message.
const negativeTTL = 5 * time.Second

// DeviceToken is the token of a client identified by a user placeholder
// alone: the user on this device in this realm.
func DeviceToken(realm, user, device string) string {
	return "\x00device\x00" + realm + "\x00" + user + "\x00" + device
}

// DeviceFor decides the device of a request, the one place that does: the
// device its signed cookie names; without a valid cookie, for a client
// identified by a user placeholder alone (derive), an id derived from
// user, user agent and IP, so a client that keeps no cookies stays one
// device and one session; else a new random id (minted). setCookie is the
// cookie to give the client when it sent no valid one.
func (t *Tracker) DeviceFor(cookie string, derive bool, realm, user, ua, ip string) (id, setCookie string, minted bool) {
	if id, ok := t.cfg.Keys.VerifyDevice(cookie); ok {
		return id, "", false
	}
	if derive && user != "" {
		id = t.cfg.Keys.DerivedDevice(realm, user, ua, ip)
		return id, t.cfg.Keys.DeviceCookie(id), false
	}
	id, setCookie = t.cfg.Keys.NewDevice()
	return id, setCookie, true
}

// DeviceTokenOf is the token of a user-placeholder client whose device
// cookie is valid; ok is false without one.
func (t *Tracker) DeviceTokenOf(realm, user, cookie string) (token string, ok bool) {
	id, ok := t.cfg.Keys.VerifyDevice(cookie)
	if !ok {
		return "", false
	}
	return DeviceToken(realm, user, id), true
}

// Observe accounts for one request and says whether it may pass. A
// request without a Token is a client identified by its user alone: its
// token is the user on its device.
func (t *Tracker) Observe(ctx context.Context, r Request) (Result, error) {
	var setCookie string
	if r.Token == "" {
		r.DeviceID, setCookie, _ = t.DeviceFor(r.DeviceCookie, r.DeriveDevice, r.Realm, r.User, r.UserAgent, r.IP)
		r.Token = DeviceToken(r.Realm, r.User, r.DeviceID)
	}
	res, err := t.observe(ctx, r)
	if setCookie != "" {
		res.SetDeviceCookie = setCookie
	}
	return res, err
}

func (t *Tracker) observe(ctx context.Context, r Request) (Result, error) {
	key := t.tokenKey(r.Token)
	now := t.now()
	e := t.cache.get(key)
	if e != nil && now.UnixNano() >= e.expires {
		e = nil
	}
	if e != nil && e.anonymous && r.User == "" {
		if reason := t.denied.check(key, now.UnixNano()); reason != "" {
			// Known to be refused although the store no longer knows
			// the token (it came back empty).
			return Result{Tracked: true, Realm: r.Realm, Refused: true, Reason: reason}, nil
		}
		return Result{}, nil
	}
	if r.DeviceID == "" {
		t.resolveDevice(key, e, &r)
	}
	if e != nil {
		if res, ok := t.fromCache(e, &r, now); ok {
			if r.DeviceMinted && !res.Refused && res.DeviceID == r.DeviceID {
				// The same client without its cookie (or with a forged
				// one): its device's cookie again.
				res.SetDeviceCookie = t.cfg.Keys.DeviceCookie(res.DeviceID)
			}
			return res, nil
		}
	}
	res, err := t.observeStore(ctx, key, r, now, false)
	if !res.Refused {
		// What this instance knows to be refused stays refused, whatever
		// the store says or fails to say: it may be unreachable, or have
		// come back empty (then it would open a new session).
		if reason := t.denied.check(key, now.UnixNano()); reason != "" {
			if err == nil && res.Tracked && res.SessionID != "" {
				t.cache.remove(key)
			}
			return Result{Tracked: true, Realm: r.Realm, Refused: true, Reason: reason}, nil
		}
	}
	if err != nil {
		return res, err
	}
	if r.DeviceMinted && res.DeviceID == r.DeviceID {
		// The device made for this request, never the session's own.
		res.SetDeviceCookie = t.cfg.Keys.DeviceCookie(res.DeviceID)
	}
	return res, err
}

// resolveDevice decides the device of a token's request: the one its valid
// device cookie names (the cookie this token's cached entry was last seen
// with needs no second HMAC on the request path); without one, the device
// derived from the token, user agent and IP (TokenDevice), whose cookie
// the answer sets.
func (t *Tracker) resolveDevice(key TokenKey, e *entry, r *Request) {
	if e != nil && e.hasDevCookie && r.DeviceCookie == string(e.devCookie[:]) {
		r.DeviceID = e.deviceID()
		return
	}
	if id, ok := t.cfg.Keys.VerifyDevice(r.DeviceCookie); ok {
		r.DeviceID = id
		return
	}
	r.DeviceID, r.DeviceMinted = t.cfg.Keys.TokenDevice(key, r.UserAgent, r.IP), true
}

// fromCache answers from a cached entry when nothing has changed.
func (t *Tracker) fromCache(e *entry, r *Request, now time.Time) (Result, bool) {
	if r.User != "" && r.User != e.user() && !e.anonymous {
		return Result{}, false
	}
	if e.anonymous {
		if r.User != "" {
			return Result{}, false
		}
		return Result{}, true
	}
	// Without a valid device cookie, the device is derived from the token,
	// user agent and IP: the same client is the same device, a copy
	// elsewhere is not.
	sameDevice := e.deviceID() == r.DeviceID
	if e.revoked && e.limited && (e.ip() != r.IP || !sameDevice) {
		return Result{}, false
	}
	if e.revoked {
		if h := t.cfg.Hooks.Refused; h != nil {
			h(e.realm, e.reason)
		}
		return Result{Tracked: true, Realm: e.realm, User: e.user(), SessionID: e.sessionID(), Refused: true, Reason: e.reason, DeviceID: e.deviceID(), Vars: e.vars}, true
	}
	n := now.UnixNano()
	if e.ip() != r.IP || !sameDevice || n-e.lastSeen.Load() > int64(t.cfg.Policy.Idle) {
		return Result{}, false
	}
	e.lastSeen.Store(n)
	if last := e.lastWrite.Load(); n-last >= int64(t.cfg.Policy.Refresh) && e.lastWrite.CompareAndSwap(last, n) {
		select {
		// The trail switch is read now, not when the entry was made: it
		// can change at runtime.
		case t.touches <- pendingTouch{e: e, now: now, path: t.trailPath(t.Settings(context.Background(), e.realm).ActivityTrail, *r)}:
		default:
			t.dropped.Add(1)
			e.lastWrite.Store(last) // try again on the next request
			if h := t.cfg.Hooks.Refreshed; h != nil {
				h(RefreshDropped, 1)
			}
		}
	}
	return Result{Tracked: true, Realm: e.realm, User: e.user(), SessionID: e.sessionID(), DeviceID: e.deviceID(), Vars: e.vars}, true
}

func (t *Tracker) observeStore(ctx context.Context, key TokenKey, r Request, now time.Time, login bool) (Result, error) {
	t.AddRealm(r.Realm)
	th := key.String()
	user := r.User
	if user == "" {
		b, err := t.cfg.Store.TokenUser(ctx, th)
		if err != nil {
			return Result{}, err
		}
		if b == "" {
			if !r.NoOpen {
				t.cache.put(&entry{key: key, realm: r.Realm, anonymous: true, expires: now.Add(negativeTTL).UnixNano()})
			}
			return Result{}, nil
		}
		// The session lives in the realm the token logged in to.
		r.Realm, user = parseBinding(b, r.Realm)
	}
	if user == erasedUser {
		return Result{Tracked: true, Realm: r.Realm, Refused: true, Reason: store.EndRevoked}, nil
	}
	st := t.Settings(ctx, r.Realm)
	var loc store.Location
	if st.Geolocation {
		loc = t.cfg.Geo.Lookup(r.IP) // before the IP is truncated
	}
	ip := truncateIP(r.IP, st.IPPrecision)
	newSess := &store.Session{
		ID: t.cfg.Keys.SessionID(th, now), Realm: r.Realm, User: user, StartedAt: now, LastSeen: now,
		IP: ip, DeviceID: r.DeviceID, Agent: enrich.ParseAgent(r.UserAgent), Location: loc,
	}
	dev := &store.Device{
		ID: r.DeviceID, User: user, FirstSeen: now, LastSeen: now, Agent: newSess.Agent, LastIP: ip, Location: newSess.Location,
	}
	tz := t.userZone(loc)
	res, err := t.cfg.Store.Seen(ctx, store.SeenRequest{
		Realm: r.Realm, User: user, TokenHash: th, Now: now, Policy: t.cfg.Policy, Login: login, New: newSess, Device: dev,
		Limits: t.cfg.Limits, IPKey: t.ipKey(r.IP, st.IPPrecision), DeviceMinted: r.DeviceMinted, NoOpen: r.NoOpen,
		// The user came from the request: the binding was not read yet.
		CheckToken: r.User != "",
		Activity:   store.Activity{Days: t.daysArg(now, tz), Path: t.trailPath(st.ActivityTrail, r), TrailLen: t.cfg.TrailLen},
	})
	if err != nil {
		return Result{}, err
	}
	if res.Status == store.StatusNone {
		return Result{}, nil
	}
	if res.TokenUser == erasedUser {
		// The token of an erased user stays refused even when the
		// request names the user; undo what this step opened (rare).
		if res.Status == store.StatusOpened {
			t.undoOpen(ctx, r.Realm, user, res.SessionID, th)
		}
		return Result{Tracked: true, Realm: r.Realm, Refused: true, Reason: store.EndRevoked}, nil
	}
	for i, c := range res.Closed {
		if c.EndReason == store.EndEvicted && i < len(res.ClosedTokens) {
			// Another browser's session was evicted: no instance may
			// keep serving it from its cache, nor admit it while the
			// store is unreachable.
			_ = t.announce(ctx, store.Invalidation{Realm: r.Realm, UserTag: t.cfg.Keys.UserTag(r.Realm, user), TokenHash: res.ClosedTokens[i],
				Deny: store.EndEvicted, Sessions: []string{c.ID}})
		}
		t.closed(c)
	}
	if h := t.cfg.Hooks.Violation; h != nil {
		for _, v := range res.Violations {
			h(r.Realm, v)
		}
	}
	if res.DeviceID == "" {
		res.DeviceID = r.DeviceID
	}
	if res.Status == store.StatusOpened {
		// Before the risk assessment: a session its findings end was
		// opened all the same.
		if h := t.cfg.Hooks.SessionOpened; h != nil {
			h(newSess)
		}
		if h := t.cfg.Hooks.DeviceNew; res.NewDevice && h != nil {
			h(r.Realm, dev)
		}
	}
	// The assessment's reads and writes are not the client's to cut
	// short: one that hung up mid-way must not leave unchecked.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), assessTimeout)
	defer cancel()
	verdict := riskVerdict{signals: res.Risk}
	switch {
	case res.Status == store.StatusOpened:
		ev := risk.Event{
			Kind: risk.Opened, At: now, SessionID: res.SessionID, DeviceID: res.DeviceID, NewDevice: res.NewDevice, Login: login,
			Location: loc, Agent: newSess.Agent,
		}
		if res.Prior != nil && !login {
			prior := sighting(res.Prior) // the token's ended session
			ev.Session = &prior
		}
		verdict = t.assess(actx, r.Realm, user, ip, ev, res.Risk)
	case res.Status == store.StatusActive && res.Prior != nil:
		prior := sighting(res.Prior)
		verdict = t.assess(actx, r.Realm, user, ip, risk.Event{
			Kind: risk.Moved, At: now, SessionID: res.SessionID, DeviceID: res.DeviceID, Location: loc, Agent: newSess.Agent, Session: &prior,
		}, res.Risk)
	}
	if refused, ok := riskRefusal(verdict, r.Realm, user, res); ok {
		if h := t.cfg.Hooks.Refused; h != nil {
			h(r.Realm, refused.Reason)
		}
		return refused, nil
	}
	e := &entry{key: key, realm: r.Realm, tz: tz, expires: now.Add(t.cfg.Policy.Idle).UnixNano()}
	e.setIDs(user, res.SessionID, res.DeviceID, r.IP)
	e.vars = NewVars(e.user(), e.sessionID(), e.deviceID(), strings.Join(verdict.signals, ","))
	if c := t.cfg.Keys.DeviceCookie(res.DeviceID); len(c) == deviceCookieLen {
		e.hasDevCookie = copy(e.devCookie[:], c) == deviceCookieLen
	}
	e.lastSeen.Store(now.UnixNano())
	e.lastWrite.Store(res.LastSeen.UnixNano())
	out := Result{Tracked: true, Realm: r.Realm, User: user, SessionID: res.SessionID, DeviceID: res.DeviceID, Vars: e.vars}
	switch res.Status {
	case store.StatusRefused:
		out.Refused, out.Reason = true, res.Reason
		t.deny(key, res.Reason, now) // a held token, learned from the store
		if h := t.cfg.Hooks.Refused; h != nil {
			h(r.Realm, res.Reason)
		}
		e.revoked, e.reason = true, res.Reason
		e.expires = now.Add(min(t.cfg.Policy.Refresh, t.cfg.Policy.RevokeHold)).UnixNano()
		// A limit refuses this IP or device, not the token (see
		// fromCache); remembering it for a refresh interval keeps a
		// refused client from recording a violation per request.
		e.limited = !store.HoldsToken(res.Reason) && res.Reason != store.EndDeviceBlocked
	case store.StatusOpened:
		out.New = true
	}
	if !verdict.failed {
		// An assessment the store failed is tried again at the next
		// request, not skipped from the cache.
		t.cache.put(e)
	}
	return out, nil
}

// ipKey is what max_ips counts. Unless IPs are kept in full, it is keyed
// by the secret, so the store holds no address the settings forbid.
func (t *Tracker) ipKey(ip, precision string) string {
	// Kept even without a realm max_ips: a per-user override may set one.
	if ip == "" {
		return ""
	}
	k := t.cfg.Prefix.Key(ip)
	if precision != store.IPFull {
		return "h:" + t.cfg.Keys.TokenHash("ip", k)
	}
	return k
}

// userZone is the time zone days are counted in for a session at loc.
func (t *Tracker) userZone(loc store.Location) *time.Location {
	if z := zone(loc.TimeZone); z != nil {
		return z
	}
	return t.cfg.TimeZone
}

// daysArg covers the longest gap a refresh can close: a session idle
// longer has ended.
func (t *Tracker) daysArg(now time.Time, tz *time.Location) string {
	return makeDaysArg(now.Add(-t.cfg.Policy.Idle-t.cfg.Policy.Refresh), now, tz, t.cfg.Policy.Retention)
}

// maxTrailPath bounds one trail entry.
const maxTrailPath = 200

func (t *Tracker) trailPath(on bool, r Request) string {
	if !on || !r.Consent || r.Path == "" {
		return ""
	}
	if len(r.Path) > maxTrailPath {
		return r.Path[:maxTrailPath]
	}
	return r.Path
}
