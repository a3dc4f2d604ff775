package tracker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
)

// Hooks are called as sessions and devices change; all optional. They run
// on request or background goroutines and must not block.
type Hooks struct {
	SessionOpened func(*Session)
	SessionClosed func(*Session)
	DeviceNew     func(realm string, d *Device)
	Violation     func(realm string, v *restrict.Violation)
	// Refused is called for every refused request, with the reason.
	Refused func(realm, reason string)
	// DeviceBlocked is called when an admin blocks or unblocks a device.
	DeviceBlocked func(realm, user, device string, blocked bool)
	// Refreshed counts refreshes of last activity by outcome
	// (RefreshWritten, RefreshEnded, RefreshFailed, RefreshDropped), after
	// each batch is written: a fact tests and operators can wait for.
	Refreshed func(outcome string, n int)
}

// Refresh outcomes.
const (
	RefreshWritten = "written" // the session's last activity was written
	RefreshEnded   = "ended"   // the session had ended meanwhile
	RefreshFailed  = "failed"  // the store failed; retried at the next request
	RefreshDropped = "dropped" // the queue was full; retried at the next request
)

// Config sets up a Tracker.
type Config struct {
	Policy Policy
	// Limits are the realm defaults of the account-sharing limits.
	Limits restrict.Limits
	// Prefix says how IPs are counted for max_ips.
	Prefix restrict.Prefix
	// Settings are the realm defaults of the privacy switches; runtime
	// changes (SetSettings) are kept in the store and win.
	Settings Settings
	// TimeZone is the user time zone when a session's location has none.
	// Default UTC.
	TimeZone *time.Location
	// TrailLen is how many paths the extended activity trail keeps per
	// session. Default 20.
	TrailLen int
	Store    Store
	Keys     *Keyring
	// Geo may be nil: every location is then unknown.
	Geo *enrich.Geo
	// CacheSize bounds the local cache (entries); default 100000.
	CacheSize int
	// Now is the clock; default time.Now.
	Now   func() time.Time
	Hooks Hooks
}

// Tracker runs session tracking on top of a Store, for any number of realms
// (each call names its realm). A known
// session on an unchanged IP and device is answered from a local cache; the
// store sees it again only when its refresh is due (batched, off the request
// path) or when something changes.
type Tracker struct {
	cfg   Config
	cache *cache
	now   func() time.Time

	touches chan pendingTouch
	dropped atomic.Int64

	// settings caches each realm's switches (*cachedSettings).
	settings sync.Map

	// realms seen, for the idle sweep; bounded by maxRealms.
	realms  sync.Map
	nRealms atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
	unsub  func()
	// id tells this tracker's own invalidations from others'.
	id string
}

type pendingTouch struct {
	e    *entry
	now  time.Time
	path string // for the trail; "" when not kept
}

// Request is what the proxy saw of one authenticated request.
type Request struct {
	Realm string
	// Token is the raw session token (the app's cookie, or a per-device
	// stand-in); it is hashed at once and never kept.
	Token string
	// User is the user id, "" when only the token identifies the user.
	User      string
	IP        string
	UserAgent string
	DeviceID  string
	// DeviceMinted says DeviceID was made for this request because it
	// carried no valid device cookie: a known session keeps its device,
	// and Result.DeviceID says which one to issue the cookie for.
	DeviceMinted bool
	// DeviceCookie, with DeviceID empty, is the raw device cookie for the
	// tracker to resolve (DeviceFor); Result.SetDeviceCookie then says
	// what to issue.
	DeviceCookie string
	// Path and Consent feed the extended activity trail: the path is
	// kept only when the trail is on and Consent is set.
	Path    string
	Consent bool
	// NoOpen: a token without an active session is not tracked and opens
	// none (the second cookie of a login is checked, never counted).
	NoOpen bool
	// DeriveDevice: without a valid device cookie, a request without a
	// Token gets the device derived from user, agent and IP (DeviceFor).
	DeriveDevice bool
}

// Result tells the proxy what to do with a request.
type Result struct {
	// Tracked is false for anonymous requests.
	Tracked bool
	// Realm is the session's realm: the one its token logged in to.
	Realm     string
	User      string
	SessionID string
	// New is set on the request that opened the session.
	New bool
	// Refused is set when the session was revoked or its device blocked.
	Refused bool
	Reason  string
	// DeviceID is the device the request counts on.
	DeviceID string
	// SetDeviceCookie is the device cookie to give the client, which
	// sent no valid one; "" when it did.
	SetDeviceCookie string
	// Vars are User, SessionID and DeviceID boxed once per session, so
	// that setting them as placeholders allocates nothing per request.
	Vars Vars
}

// Vars holds values boxed for placeholders.
type Vars struct {
	User, Session, Device any
	// Memo, when not nil, keeps what the caller derives from these
	// values, once per cached session rather than per request (the
	// handler's placeholder lookup). It must always hold one type.
	Memo *atomic.Value
}

// negativeTTL is how long an instance trusts "this token is anonymous".
// Logins publish an invalidation, so it only bounds a lost message.
const negativeTTL = 5 * time.Second

// maxRealms bounds the realms one tracker sweeps; realms past it are still
// tracked, their idle sessions closed lazily.
const maxRealms = 1024

// touchQueue bounds the refreshes waiting for the store; when it is full
// (store slow or down) refreshes are dropped, not buffered.
const touchQueue = 8192

// New creates a tracker; call Start before use and Stop after.
func New(cfg Config) (*Tracker, error) {
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("tracker needs a store and a keyring")
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 100000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TimeZone == nil {
		cfg.TimeZone = time.UTC
	}
	if cfg.TrailLen <= 0 {
		cfg.TrailLen = 20
	}
	if cfg.Settings == (Settings{}) {
		cfg.Settings = DefaultSettings()
	}
	id, _ := cfg.Keys.NewDevice() // any random id will do
	return &Tracker{cfg: cfg, cache: newCache(cfg.CacheSize), now: cfg.Now, touches: make(chan pendingTouch, touchQueue), id: id}, nil
}

// Policy is the tracker's policy.
func (t *Tracker) Policy() Policy { return t.cfg.Policy }

// Store is the tracker's store.
func (t *Tracker) Store() Store { return t.cfg.Store }

// TokenHash is the stored form of a raw token in a realm.
//
// Tokens are hashed store-wide, not per realm: a token belongs to the realm
// it was bound in at login (its binding says which), so a client cannot
// take it to another realm, where it would be unknown, by changing the
// request's host.
func (t *Tracker) TokenHash(token string) string { return t.cfg.Keys.TokenHash(TokenScope, token) }

// TokenScope is the realm argument of every token hash: tokens are hashed
// store-wide (see TokenHash).
const TokenScope = ""

func (t *Tracker) tokenKey(token string) TokenKey { return t.cfg.Keys.TokenKey(TokenScope, token) }

// binding is the stored login binding of a token: realm and user. A
// binding starting with NUL is a marker (erasedUser).
func binding(realm, user string) string { return realm + "\x00" + user }

// parseBinding reads a binding; one without a realm (written before
// bindings carried it) belongs to fallback.
func parseBinding(b, fallback string) (realm, user string) {
	if b == "" || b[0] == 0 {
		return fallback, b
	}
	if r, u, ok := strings.Cut(b, "\x00"); ok {
		return r, u
	}
	return fallback, b
}

// Start begins the background work: batched refreshes, the idle sweep and
// the invalidation subscription.
func (t *Tracker) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.unsub = t.cfg.Store.Subscribe(func(inv Invalidation) {
		if inv.Origin != t.id {
			t.invalidate(inv)
		}
	}, t.resync)
	t.wg.Add(2)
	go t.flushLoop(ctx)
	go t.sweepLoop(ctx)
}

// Stop ends the background work, flushing pending refreshes.
func (t *Tracker) Stop() {
	if t.cancel == nil {
		return
	}
	t.unsub()
	t.cancel()
	t.wg.Wait()
	t.cancel = nil
}

// Now is the tracker's clock.
func (t *Tracker) Now() time.Time { return t.now() }

// CacheLen is the number of cached tokens.
func (t *Tracker) CacheLen() int { return t.cache.len() }

// DroppedRefreshes counts refreshes dropped because the queue was full.
func (t *Tracker) DroppedRefreshes() int64 { return t.dropped.Load() }

func (t *Tracker) invalidate(inv Invalidation) {
	if inv.Settings {
		t.settings.Delete(inv.Realm)
	}
	if key, ok := parseTokenKey(inv.TokenHash); ok {
		t.cache.remove(key)
	}
	if inv.User != "" {
		t.cache.removeUser(inv.Realm, inv.User)
	}
}

// resync forgets everything cached: invalidations may have been missed.
func (t *Tracker) resync() { t.cache.removeIf(func(*entry) bool { return true }) }

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
		return Result{}, nil
	}
	if r.DeviceID == "" {
		t.resolveDevice(e, &r)
	}
	if e != nil {
		if res, ok := t.fromCache(e, &r, now); ok {
			if r.DeviceMinted && res.DeviceID != "" {
				res.SetDeviceCookie = t.cfg.Keys.DeviceCookie(res.DeviceID)
			}
			return res, nil
		}
	}
	res, err := t.observeStore(ctx, key, r, now, false)
	if r.DeviceMinted && res.DeviceID != "" {
		// The session's own device when it had one: its cookie is
		// issued again, never another device's.
		res.SetDeviceCookie = t.cfg.Keys.DeviceCookie(res.DeviceID)
	}
	return res, err
}

// resolveDevice reads Request.DeviceCookie of a token's request: the cookie
// this token's cached entry was last seen with needs no second HMAC on the
// request path; else DeviceFor decides.
func (t *Tracker) resolveDevice(e *entry, r *Request) {
	if e != nil && e.hasDevCookie && r.DeviceCookie == string(e.devCookie[:]) {
		r.DeviceID = e.deviceID()
		return
	}
	r.DeviceID, _, r.DeviceMinted = t.DeviceFor(r.DeviceCookie, false, "", "", "", "")
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
	sameDevice := r.DeviceMinted || e.deviceID() == r.DeviceID
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

// AddRealm makes the idle sweep cover realm from now on.
func (t *Tracker) AddRealm(realm string) {
	if _, ok := t.realms.Load(realm); !ok && t.nRealms.Load() < maxRealms {
		if _, loaded := t.realms.LoadOrStore(realm, struct{}{}); !loaded {
			t.nRealms.Add(1)
		}
	}
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
		if b == "" || b == issuedMarker {
			if !r.NoOpen {
				t.cache.put(&entry{key: key, realm: r.Realm, anonymous: true, expires: now.Add(negativeTTL).UnixNano()})
			}
			return Result{}, nil
		}
		// The session lives in the realm the token logged in to.
		r.Realm, user = parseBinding(b, r.Realm)
	}
	if user == erasedUser {
		return Result{Tracked: true, Realm: r.Realm, Refused: true, Reason: EndRevoked}, nil
	}
	st := t.Settings(ctx, r.Realm)
	var loc Location
	if st.Geolocation {
		loc = t.cfg.Geo.Lookup(r.IP) // before the IP is truncated
	}
	ip := truncateIP(r.IP, st.IPPrecision)
	newSess := &Session{
		ID: t.cfg.Keys.SessionID(th, now), Realm: r.Realm, User: user, StartedAt: now, LastSeen: now,
		IP: ip, DeviceID: r.DeviceID, Agent: enrich.ParseAgent(r.UserAgent), Location: loc,
	}
	dev := &Device{
		ID: r.DeviceID, User: user, FirstSeen: now, LastSeen: now, Agent: newSess.Agent, LastIP: ip, Location: newSess.Location,
	}
	tz := t.userZone(loc)
	res, err := t.cfg.Store.Seen(ctx, SeenRequest{
		Realm: r.Realm, User: user, TokenHash: th, Now: now, Policy: t.cfg.Policy, Login: login, New: newSess, Device: dev,
		Limits: t.cfg.Limits, IPKey: t.ipKey(r.IP, st.IPPrecision), DeviceMinted: r.DeviceMinted, NoOpen: r.NoOpen,
		// The user came from the request: the binding was not read yet.
		CheckToken: r.User != "",
		Activity:   Activity{Days: t.daysArg(now, tz), Path: t.trailPath(st.ActivityTrail, r), TrailLen: t.cfg.TrailLen},
	})
	if err != nil {
		return Result{}, err
	}
	if res.Status == StatusNone {
		return Result{}, nil
	}
	if res.TokenUser == erasedUser {
		// The token of an erased user stays refused even when the
		// request names the user; undo what this step opened (rare).
		if res.Status == StatusOpened {
			t.undoOpen(ctx, r.Realm, user, res.SessionID, th)
		}
		return Result{Tracked: true, Realm: r.Realm, Refused: true, Reason: EndRevoked}, nil
	}
	for _, c := range res.Closed {
		if c.EndReason == EndEvicted {
			// Another browser's session was evicted: no instance may
			// keep serving it from its cache.
			inv := Invalidation{Realm: r.Realm, TokenHash: c.tokenHash, Origin: t.id}
			t.invalidate(inv)
			_ = t.cfg.Store.Publish(ctx, inv)
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
	e := &entry{key: key, realm: r.Realm, tz: tz, expires: now.Add(t.cfg.Policy.Idle).UnixNano()}
	e.setIDs(user, res.SessionID, res.DeviceID, r.IP)
	e.vars = Vars{User: e.user(), Session: e.sessionID(), Device: e.deviceID(), Memo: &e.memo}
	if c := t.cfg.Keys.DeviceCookie(res.DeviceID); len(c) == deviceCookieLen {
		e.hasDevCookie = copy(e.devCookie[:], c) == deviceCookieLen
	}
	e.lastSeen.Store(now.UnixNano())
	e.lastWrite.Store(res.LastSeen.UnixNano())
	out := Result{Tracked: true, Realm: r.Realm, User: user, SessionID: res.SessionID, DeviceID: res.DeviceID, Vars: e.vars}
	switch res.Status {
	case StatusRefused:
		out.Refused, out.Reason = true, res.Reason
		if h := t.cfg.Hooks.Refused; h != nil {
			h(r.Realm, res.Reason)
		}
		e.revoked, e.reason = true, res.Reason
		e.expires = now.Add(min(t.cfg.Policy.Refresh, t.cfg.Policy.RevokeHold)).UnixNano()
		// A limit refuses this IP or device, not the token (see
		// fromCache); remembering it for a refresh interval keeps a
		// refused client from recording a violation per request.
		e.limited = !holdsToken(res.Reason) && res.Reason != EndDeviceBlocked
	case StatusOpened:
		out.New = true
		if h := t.cfg.Hooks.SessionOpened; h != nil {
			h(newSess)
		}
		if h := t.cfg.Hooks.DeviceNew; res.NewDevice && h != nil {
			h(r.Realm, dev)
		}
	}
	t.cache.put(e)
	return out, nil
}

// Login records an observed successful login: token now belongs to user and
// a new session starts, replacing one the same token may have had.
func (t *Tracker) Login(ctx context.Context, r Request) (Result, error) {
	key := t.tokenKey(r.Token)
	th := key.String()
	if err := t.cfg.Store.BindToken(ctx, th, binding(r.Realm, r.User), t.cfg.Policy.Retention); err != nil {
		return Result{}, err
	}
	res, err := t.observeStore(ctx, key, r, t.now(), true)
	if err == nil {
		// Other instances may remember this token as anonymous.
		_ = t.cfg.Store.Publish(ctx, Invalidation{Realm: r.Realm, TokenHash: th, Origin: t.id})
	}
	return res, err
}

// End ends the session of token (user may be "": the binding tells) for
// reason, such as EndLogout. A token ended as logged out, revoked or
// evicted stays refused for the revoke hold; with forget (a token made from
// the device, not an app cookie) it is forgotten instead, so the device
// can sign in again.
func (t *Tracker) End(ctx context.Context, realm, token, user, reason string, forget bool) (*Session, error) {
	key := t.tokenKey(token)
	th := key.String()
	t.cache.remove(key)
	b, err := t.cfg.Store.TokenUser(ctx, th)
	if err != nil {
		return nil, err
	}
	if b != "" && b[0] != 0 {
		realm, user = parseBinding(b, realm)
	} else if user == "" {
		return nil, nil
	}
	s, err := t.cfg.Store.EndToken(ctx, realm, user, th, reason, forget, t.now(), t.cfg.Policy)
	if err != nil {
		return nil, err
	}
	if forget || !holdsToken(reason) {
		if err := t.cfg.Store.UnbindToken(ctx, th); err != nil {
			return s, err
		}
	}
	// Every cached token of the user goes: the session may have had
	// other tokens (rotated, or a second cookie of the login).
	inv := Invalidation{Realm: realm, User: user, TokenHash: th, Origin: t.id}
	t.invalidate(inv)
	_ = t.cfg.Store.Publish(ctx, inv)
	if s != nil {
		t.closed(s)
	}
	return s, nil
}

// Revoke ends one session of user and stops its token on every instance.
func (t *Tracker) Revoke(ctx context.Context, realm, user, id string) (*Session, error) {
	s, err := t.cfg.Store.EndSession(ctx, realm, user, id, EndRevoked, t.now(), t.cfg.Policy)
	if err != nil {
		return nil, err
	}
	t.afterRevoke(ctx, realm, user, []*Session{s})
	return s, nil
}

// RevokeAll ends every active session of user except one (may be "").
func (t *Tracker) RevokeAll(ctx context.Context, realm, user, except string) ([]*Session, error) {
	closed, err := t.cfg.Store.EndAll(ctx, realm, user, except, EndRevoked, t.now(), t.cfg.Policy)
	if err != nil {
		return nil, err
	}
	t.afterRevoke(ctx, realm, user, closed)
	return closed, nil
}

func (t *Tracker) afterRevoke(ctx context.Context, realm, user string, closed []*Session) {
	inv := Invalidation{Realm: realm, User: user, Origin: t.id}
	t.invalidate(inv)
	_ = t.cfg.Store.Publish(ctx, inv)
	for _, s := range closed {
		if s.EndReason == EndRevoked && s.EndedAt != nil && t.now().Sub(*s.EndedAt) < time.Second {
			t.closed(s)
		}
	}
}

// ipKey is what max_ips counts. Unless IPs are kept in full, it is keyed
// by the secret, so the store holds no address the settings forbid.
func (t *Tracker) ipKey(ip, precision string) string {
	// Kept even without a realm max_ips: a per-user override may set one.
	if ip == "" {
		return ""
	}
	k := t.cfg.Prefix.Key(ip)
	if precision != IPFull {
		return "h:" + t.cfg.Keys.TokenHash("ip", k)
	}
	return k
}

// userZone is the time zone days are counted in for a session at loc.
func (t *Tracker) userZone(loc Location) *time.Location {
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

// BlockDevice blocks or unblocks a device of user on every instance at
// once; blocking ends its sessions.
func (t *Tracker) BlockDevice(ctx context.Context, realm, user, device string, blocked bool) ([]*Session, error) {
	closed, err := t.cfg.Store.SetDeviceBlocked(ctx, realm, user, device, blocked, t.now(), t.cfg.Policy)
	if err != nil {
		return nil, err
	}
	inv := Invalidation{Realm: realm, User: user, Origin: t.id}
	t.invalidate(inv)
	_ = t.cfg.Store.Publish(ctx, inv)
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
	inv := Invalidation{Realm: realm, User: user, Origin: t.id}
	t.invalidate(inv)
	_ = t.cfg.Store.Publish(ctx, inv)
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
func (t *Tracker) User(ctx context.Context, realm, user string) (*UserSummary, error) {
	return t.cfg.Store.User(ctx, realm, user, t.now(), t.cfg.Policy)
}

// Users lists users of a realm.
func (t *Tracker) Users(ctx context.Context, req UsersRequest) ([]*UserSummary, int, error) {
	req.Now, req.Policy = t.now(), t.cfg.Policy
	return t.cfg.Store.Users(ctx, req)
}

// Sessions lists sessions of user, newest first, and the number matched.
func (t *Tracker) Sessions(ctx context.Context, realm, user, state string, offset, limit int) ([]*Session, int, error) {
	return t.cfg.Store.Sessions(ctx, ListRequest{
		Realm: realm, User: user, State: state, Offset: offset, Limit: limit, Now: t.now(), Policy: t.cfg.Policy,
	})
}

// Devices lists devices of user, most recent first.
func (t *Tracker) Devices(ctx context.Context, realm, user string) ([]*Device, error) {
	return t.cfg.Store.Devices(ctx, realm, user)
}

func (t *Tracker) closed(s *Session) {
	if h := t.cfg.Hooks.SessionClosed; h != nil {
		h(s)
	}
}

// flushLoop sends due refreshes to the store in batches: one pipeline per
// batch, so the store sees at most one write per session per refresh
// interval and requests never wait for it.
func (t *Tracker) flushLoop(ctx context.Context) {
	defer t.wg.Done()
	const maxBatch = 512
	batch := make([]pendingTouch, 0, maxBatch)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ts := make([]Touch, len(batch))
		for i, p := range batch {
			ts[i] = Touch{Realm: p.e.realm, User: p.e.user(), SessionID: p.e.sessionID(), DeviceID: p.e.deviceID(), Now: p.now, Policy: t.cfg.Policy,
				Activity: Activity{Days: t.daysArg(p.now, p.e.tz), Path: p.path, TrailLen: t.cfg.TrailLen}}
		}
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		results := t.cfg.Store.Touch(fctx, ts)
		cancel()
		var written, ended, failed int
		for i, r := range results {
			e := batch[i].e
			switch {
			case r.Err != nil:
				e.lastWrite.Store(0) // retry at the next request
				failed++
			case r.Ended:
				// Ended elsewhere (revoked, logged out, idle): the next
				// request asks the store and gets the truth.
				t.cache.remove(e.key)
				ended++
			default:
				written++
			}
		}
		if h := t.cfg.Hooks.Refreshed; h != nil {
			for _, o := range []struct {
				outcome string
				n       int
			}{{RefreshWritten, written}, {RefreshEnded, ended}, {RefreshFailed, failed}} {
				if o.n > 0 {
					h(o.outcome, o.n)
				}
			}
		}
		batch = batch[:0]
	}
	for {
		select {
		case p := <-t.touches:
			batch = append(batch, p)
			if len(batch) == maxBatch {
				flush()
			}
		case <-tick.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case p := <-t.touches:
					batch = append(batch, p)
				default:
					flush()
					return
				}
			}
		}
	}
}

// sweepLoop closes idle sessions in time for their close to be seen (events,
// lists); readers never depend on it, since stores normalize idle sessions.
func (t *Tracker) sweepLoop(ctx context.Context) {
	defer t.wg.Done()
	p := t.cfg.Policy
	every := min(max(p.Idle/4, time.Second), time.Minute)
	since := t.now().Add(-p.Retention)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			now := t.now()
			ok := true
			t.realms.Range(func(k, _ any) bool {
				sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				closed, err := t.cfg.Store.SweepIdle(sctx, k.(string), since, now, p)
				cancel()
				ok = ok && err == nil
				for _, s := range closed {
					t.closed(s)
				}
				return true
			})
			if ok {
				since = now.Add(-p.Idle - 2*every)
			}
		}
	}
}

// undoOpen removes a session just opened for an erased user's token: all
// of the user if it is all there is (nothing of the erased user comes
// back), else that session only, ended as erased.
func (t *Tracker) undoOpen(ctx context.Context, realm, user, id, tokenHash string) {
	if _, n, err := t.cfg.Store.Sessions(ctx, ListRequest{Realm: realm, User: user, State: "all", Limit: 2, Now: t.now(), Policy: t.cfg.Policy}); err == nil && n <= 1 {
		_, _ = t.cfg.Store.Erase(ctx, realm, user)
		// Erase unbound the token: bind it to "erased" again.
		_ = t.cfg.Store.BindToken(ctx, tokenHash, erasedUser, t.cfg.Policy.RevokeHold)
		return
	}
	_, _ = t.cfg.Store.EndSession(ctx, realm, user, id, EndErased, t.now(), t.cfg.Policy)
}

// TokenUser is the user a raw token was bound to at login, or "".
func (t *Tracker) TokenUser(ctx context.Context, token string) (string, error) {
	b, err := t.cfg.Store.TokenUser(ctx, t.TokenHash(token))
	_, u := parseBinding(b, "")
	if u == erasedUser {
		u = ""
	}
	return u, err
}

// issuedMarker is the binding of a token the app issued to an anonymous
// visitor (MarkIssued).
const issuedMarker = "\x00issued"

// MarkIssued records that the app set token on an anonymous answer, for
// as long as an idle session lasts. A login that replaces such a token
// proves the app logged someone in; one that replaces a token the app
// never issued proves nothing (an app may replace any unknown id).
func (t *Tracker) MarkIssued(ctx context.Context, token string) error {
	return t.cfg.Store.BindToken(ctx, t.TokenHash(token), issuedMarker, t.cfg.Policy.Idle)
}

// Issued reports whether token was issued by the app to an anonymous
// visitor (MarkIssued) or is bound to a login.
func (t *Tracker) Issued(ctx context.Context, token string) (bool, error) {
	b, err := t.cfg.Store.TokenUser(ctx, t.TokenHash(token))
	return b != "" && b != erasedUser, err
}

// Alias binds another token to an active session of user: a session
// cookie the app rotated, or a second cookie of the same login (an app
// that authenticates different paths with different cookies). The
// session goes on under either token; ending it refuses both. false if
// the session is no longer active.
func (t *Tracker) Alias(ctx context.Context, realm, user, sessionID, token string) (bool, error) {
	key := t.tokenKey(token)
	th := key.String()
	if err := t.cfg.Store.BindToken(ctx, th, binding(realm, user), t.cfg.Policy.Retention); err != nil {
		return false, err
	}
	ok, err := t.cfg.Store.AliasToken(ctx, realm, user, th, sessionID)
	if err != nil || !ok {
		if err == nil {
			_ = t.cfg.Store.UnbindToken(ctx, th)
		}
		return false, err
	}
	t.cache.remove(key)
	// Other instances may remember this token as anonymous.
	_ = t.cfg.Store.Publish(ctx, Invalidation{Realm: realm, TokenHash: th, Origin: t.id})
	return true, nil
}
