package tracker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
)

// Hooks are called as sessions and devices change; all optional. They run
// on request or background goroutines and must not block.
type Hooks struct {
	SessionOpened func(*store.Session)
	SessionClosed func(*store.Session)
	DeviceNew     func(realm string, d *store.Device)
	Violation     func(realm string, v *restrict.Violation)
	// Refused is called for every refused request, with the reason.
	Refused func(realm, reason string)
	// DeviceBlocked is called when an admin blocks or unblocks a device.
	DeviceBlocked func(realm, user, device string, blocked bool)
	// Risk is called for every risk finding recorded (assess.go), with
	// the request's context.
	Risk func(context.Context, RiskEvent)
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
	Policy store.Policy
	// Limits are the realm defaults of the account-sharing limits.
	Limits restrict.Limits
	// Prefix says how IPs are counted for max_ips.
	Prefix restrict.Prefix
	// Settings are the realm defaults of the privacy switches; runtime
	// changes (SetSettings) are kept in the store and win.
	Settings store.Settings
	// TimeZone is the user time zone when a session's location has none.
	// Default UTC.
	TimeZone *time.Location
	// TrailLen is how many paths the extended activity trail keeps per
	// session. Default 20.
	TrailLen int
	Store    store.Store
	Keys     *Keyring
	// Geo may be nil: every location is then unknown.
	Geo *enrich.Geo
	// CacheSize bounds the local cache (entries); default 100000.
	CacheSize int
	// Risk, when set, turns risk signals on (assess.go).
	Risk *RiskPolicy
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
	// denied refuses tokens while the store is unreachable (deny.go).
	denied *denyList
	// settingsGen counts settings invalidations (settings.go).
	settingsGen atomic.Uint64
	now         func() time.Time

	touches chan pendingTouch
	dropped atomic.Int64
	// lastReseed is when the deny list was last written back to the
	// invalidation log (reseed).
	lastReseed atomic.Int64

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
	// carried no valid device cookie: it is a device of its own, never a
	// known session's (whose cookie its browser holds), and the answer
	// sets its cookie.
	DeviceMinted bool
	// DeviceCookie, with DeviceID empty, is the raw device cookie for the
	// tracker to resolve (resolveDevice, or DeviceFor for a client
	// identified by its user alone); Result.SetDeviceCookie then says what
	// to issue.
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
	// Vars are User, SessionID, DeviceID and the risk signals boxed once
	// per session, so that setting them as placeholders allocates nothing
	// per request.
	Vars Vars
	// Challenge: a risk signal's action ended the session and the client
	// is to be sent to log in again (with Refused).
	Challenge bool
	// RiskSignal is the signal whose action refused the request.
	RiskSignal string
}

// Vars holds a session's values boxed for placeholders, once per
// session: copying it copies one pointer, so the placeholder closure made
// per request stays small. The zero Vars answers "" for each.
type Vars struct{ b *boxedVars }

type boxedVars struct{ user, session, device, risk any }

// NewVars boxes a session's values; risk is its signals, comma-separated.
func NewVars(user, session, device, risk string) Vars {
	return Vars{&boxedVars{user, session, device, risk}}
}

// User is the user id.
func (v Vars) User() any {
	if v.b == nil {
		return ""
	}
	return v.b.user
}

// Session is the session id.
func (v Vars) Session() any {
	if v.b == nil {
		return ""
	}
	return v.b.session
}

// Device is the device id.
func (v Vars) Device() any {
	if v.b == nil {
		return ""
	}
	return v.b.device
}

// Risk is the session's risk signals, comma-separated.
func (v Vars) Risk() any {
	if v.b == nil {
		return ""
	}
	return v.b.risk
}

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
	if cfg.Settings == (store.Settings{}) {
		cfg.Settings = store.DefaultSettings()
	}
	id, _ := cfg.Keys.NewDevice() // any random id will do
	t := &Tracker{cfg: cfg, cache: newCache(cfg.CacheSize), denied: newDenyList(), now: cfg.Now, touches: make(chan pendingTouch, touchQueue), id: id}
	t.cache.tagOf = cfg.Keys.UserTag
	return t, nil
}

// Policy is the tracker's policy.
func (t *Tracker) Policy() store.Policy { return t.cfg.Policy }

// Store is the tracker's store.
func (t *Tracker) Store() store.Store { return t.cfg.Store }

// Start begins the background work: batched refreshes, the idle sweep and
// the invalidation subscription.
func (t *Tracker) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.unsub = t.cfg.Store.Subscribe(func(inv store.Invalidation) {
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

// announce applies inv here and publishes it to every instance, stamped
// with this tracker and the time. Publishing is best effort: an instance
// that misses it catches up from the store's log, or forgets its cache.
func (t *Tracker) announce(ctx context.Context, inv store.Invalidation) error {
	inv.Origin, inv.At = t.id, t.now().UnixMilli()
	t.invalidate(inv)
	return t.cfg.Store.Publish(ctx, inv)
}

// tellOthers publishes inv to the other instances only.
func (t *Tracker) tellOthers(ctx context.Context, inv store.Invalidation) error {
	inv.Origin, inv.At = t.id, t.now().UnixMilli()
	return t.cfg.Store.Publish(ctx, inv)
}

func (t *Tracker) invalidate(inv store.Invalidation) {
	at := t.now()
	if inv.At != 0 {
		at = time.UnixMilli(inv.At)
	}
	// The tokens of ended sessions, by hash: refused even by an instance
	// that never cached them.
	for _, th := range inv.Tokens {
		key, ok := parseTokenKey(th)
		if !ok {
			continue
		}
		if inv.Device != "" && inv.Blocked {
			t.denied.add(key, denial{reason: store.EndDeviceBlocked, until: at.Add(t.cfg.Policy.RevokeHold).UnixNano(),
				realm: inv.Realm, userTag: inv.UserTag, device: inv.Device}, t.now().UnixNano())
		} else if inv.Deny != "" {
			t.deny(key, inv.Deny, at)
		}
		t.cache.remove(key)
	}
	if inv.Settings {
		t.settingsGen.Add(1)
		t.settings.Delete(inv.Realm)
	}
	if inv.UserTag != "" && inv.Device != "" && !inv.Blocked {
		t.denied.unblock(inv.Realm, inv.UserTag, inv.Device)
	}
	// The user, if this instance caches any of their sessions.
	realm, user, cached := t.cache.userByTag(inv.UserTag)
	cached = cached && inv.UserTag != "" && realm == inv.Realm
	// What is refused goes on the deny list before the cache forgets it.
	switch {
	case !cached:
	case inv.Device != "" && inv.Blocked:
		t.denyCached(realm, user, nil, inv.Device, store.EndDeviceBlocked)
	case inv.Deny == store.EndErased:
		t.denyCached(realm, user, nil, "", inv.Deny) // all of them
	case inv.Deny != "" && len(inv.Sessions) > 0:
		t.denyCached(realm, user, inv.Sessions, "", inv.Deny)
	}
	if key, ok := parseTokenKey(inv.TokenHash); ok {
		if inv.Deny != "" {
			t.deny(key, inv.Deny, at)
		}
		t.cache.remove(key)
	}
	if cached {
		t.cache.removeUser(realm, user)
	}
}

// resync forgets everything cached, since invalidations may have been
// missed, and writes this instance's deny list back to the log, which lost
// entries (reseed).
func (t *Tracker) resync() {
	t.cache.removeIf(func(*entry) bool { return true })
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		t.reseed(ctx)
	}()
}

// AddRealm makes the idle sweep cover realm from now on.
func (t *Tracker) AddRealm(realm string) {
	if _, ok := t.realms.Load(realm); !ok && t.nRealms.Load() < maxRealms {
		if _, loaded := t.realms.LoadOrStore(realm, struct{}{}); !loaded {
			t.nRealms.Add(1)
		}
	}
}

func (t *Tracker) closed(s *store.Session) {
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
		ts := make([]store.Touch, len(batch))
		for i, p := range batch {
			ts[i] = store.Touch{Realm: p.e.realm, User: p.e.user(), SessionID: p.e.sessionID(), DeviceID: p.e.deviceID(), Now: p.now, Policy: t.cfg.Policy,
				Activity: store.Activity{Days: t.daysArg(p.now, p.e.tz), Path: p.path, TrailLen: t.cfg.TrailLen}}
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
