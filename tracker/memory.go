package tracker

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddy-sessions/caddy-sessions/restrict"
)

// MemoryStore keeps everything in this process: the embedded default for a
// single instance and the demo. It mirrors the Redis scripts step for step
// (the conformance suite holds them to the same answers) and can snapshot
// itself to a file so history survives restarts (see snapshot.go).
type MemoryStore struct {
	mu       sync.Mutex
	users    map[string]*memUser             // keysFor(realm,user).tag -> data
	tokens   map[string]memBinding           // token hash -> user
	realms   map[string]map[string]time.Time // realm -> user -> last activity
	settings map[string]Settings
	flags    map[string]map[string]time.Time // realm -> user -> last violation
	dirty    bool

	subMu  sync.Mutex
	subs   map[int]func(Invalidation)
	nextID int

	// now is used only to expire data; operations take their time as input.
	now func() time.Time
}

type memUser struct {
	Realm    string
	User     string
	Last     time.Time
	ExpireAt time.Time
	Tok      map[string]string   // token hash -> session id
	Sess     map[string]*Session // session id -> session
	Devs     map[string]*Device
	IPs      map[string]time.Time // counted IP -> last seen
	Viol     map[string]*restrict.Violation
	VSeq     int
	Unviewed int
	Exempt   bool
	Limits   restrict.Limits  // overrides
	Days     map[string]int64 // local date -> active ms
	DayN     map[string]int   // local date -> sessions
	Trail    map[string][]TrailEntry
}

type memBinding struct {
	User     string    `json:"user"`
	ExpireAt time.Time `json:"expire_at"`
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		users:    map[string]*memUser{},
		tokens:   map[string]memBinding{},
		realms:   map[string]map[string]time.Time{},
		flags:    map[string]map[string]time.Time{},
		settings: map[string]Settings{},
		subs:     map[int]func(Invalidation){},
		now:      time.Now,
	}
}

// user returns the live data of a user, or nil; expired data is dropped as
// Redis would drop the keys.
func (m *MemoryStore) user(realm, user string, create bool, now time.Time) *memUser {
	tag := keysFor(realm, user).tag
	u := m.users[tag]
	if u != nil && !u.ExpireAt.IsZero() && !now.Before(u.ExpireAt) {
		delete(m.users, tag)
		u = nil
	}
	if u == nil && create {
		u = newMemUser(realm, user)
		m.users[tag] = u
	}
	return u
}

func (m *MemoryStore) touched(u *memUser, now time.Time, p Policy) {
	u.ExpireAt = now.Add(p.Retention)
	m.dirty = true
}

// closeSession mirrors close() in prelude.lua.
func (u *memUser) closeSession(s *Session, at time.Time, reason string) *Session {
	s.EndedAt, s.EndReason = &at, reason
	if !blocksToken(reason) && u.Tok[s.tokenHash] == s.ID {
		delete(u.Tok, s.tokenHash)
	}
	return clone(s)
}

func newMemUser(realm, user string) *memUser {
	return &memUser{Realm: realm, User: user, Tok: map[string]string{}, Sess: map[string]*Session{}, Devs: map[string]*Device{},
		IPs: map[string]time.Time{}, Viol: map[string]*restrict.Violation{},
		Days: map[string]int64{}, DayN: map[string]int{}, Trail: map[string][]TrailEntry{}}
}

// trim mirrors trim() in prelude.lua.
func (u *memUser) trim(now time.Time, p Policy, cutDay string) {
	cut := now.Add(-p.Retention)
	for k, t := range u.IPs {
		if t.Before(cut) {
			delete(u.IPs, k)
		}
	}
	if cutDay != "" {
		for d := range u.Days {
			if d < cutDay {
				delete(u.Days, d)
			}
		}
		for d := range u.DayN {
			if d < cutDay {
				delete(u.DayN, d)
			}
		}
	}
	for id, v := range u.Viol {
		if v.Time.Before(cut) {
			if !v.Viewed {
				u.Unviewed--
			}
			delete(u.Viol, id)
		}
	}
	var dropped map[string]bool
	for id, s := range u.Sess {
		if s.EndedAt != nil && s.EndedAt.Before(cut) {
			if dropped == nil {
				dropped = map[string]bool{}
			}
			dropped[id] = true
			delete(u.Sess, id)
			delete(u.Trail, id)
		}
	}
	for th, sid := range u.Tok {
		if dropped[sid] {
			delete(u.Tok, th) // the session's tokens, rotated ones too
		}
	}
	for id, d := range u.Devs {
		if !d.Blocked && d.LastSeen.Before(cut) {
			delete(u.Devs, id)
		}
	}
}

// touchDevice mirrors touch_device: given nd (the device as this request
// describes it), the device takes its agent and location.
func (u *memUser) touchDevice(id string, now time.Time, ip string, nd *Device) bool {
	d := u.Devs[id]
	if d == nil {
		return false
	}
	d.LastSeen = now
	if ip != "" {
		d.LastIP = ip
	}
	if nd != nil {
		if nd.Agent != (Agent{}) {
			d.Agent = nd.Agent
		}
		if ref, _ := locationDesc(nd.Location); ref != "" {
			d.Location = nd.Location
		}
	}
	return true
}

func clone(s *Session) *Session {
	c := *s
	if s.EndedAt != nil {
		t := *s.EndedAt
		c.EndedAt = &t
	}
	return &c
}

// Seen implements Store, mirroring seen.lua.
func (m *MemoryStore) Seen(_ context.Context, req SeenRequest) (SeenResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now, p := req.Now.Truncate(time.Millisecond), req.Policy
	u := m.user(req.Realm, req.User, true, now)
	days := parseDaysArg(req.Activity.Days)
	var res SeenResult
	if b, ok := m.tokens[req.TokenHash]; req.CheckToken && ok && now.Before(b.ExpireAt) {
		res.TokenUser = b.User
	}
	refuse := func(sid string, s *Session, reason string) (SeenResult, error) {
		res.Status, res.SessionID, res.Reason = StatusRefused, sid, reason
		if s != nil {
			res.StartedAt, res.LastSeen = s.StartedAt, s.LastSeen
		}
		if len(res.Violations) > 0 {
			m.touched(u, now, p)
			m.flag(req.Realm, req.User, now)
		}
		return res, nil
	}
	devID := req.Device.ID
	dev := u.Devs[devID]
	if dev != nil && dev.Blocked {
		return refuse("", nil, EndDeviceBlocked)
	}
	if req.DeviceMinted {
		// mirrors the device-cookie-lost branch of seen.lua
		if sid, ok := u.Tok[req.TokenHash]; ok {
			if s := u.Sess[sid]; s != nil && s.EndedAt == nil {
				devID = s.DeviceID
				dev = u.Devs[devID]
				if dev != nil && dev.Blocked {
					return refuse("", nil, EndDeviceBlocked)
				}
			}
		}
	}
	res.DeviceID = devID
	lim := u.limits(req.Limits)
	loc := req.New.Location.String()
	violation := func(policy string, l *restrict.Limit, observed int, sid string) bool {
		action := l.Action
		if action == "" {
			action = restrict.ActionBlock
		}
		u.VSeq++
		v := &restrict.Violation{
			ID: fmt.Sprintf("%d-%d", ms(now), u.VSeq), Time: now, User: req.User, Policy: policy, Limit: l.Max,
			Observed: observed, IP: req.New.IP, Location: loc, Device: devID, Session: sid, Action: action,
		}
		u.Viol[v.ID] = v
		u.Unviewed++
		c := *v
		res.Violations = append(res.Violations, &c)
		return action != restrict.ActionBlock
	}
	ipOK := func(sid string) bool {
		l := lim.IPs
		if req.IPKey == "" || l == nil || l.Max == 0 {
			return true
		}
		for k, t := range u.IPs {
			if t.Before(now.Add(-time.Duration(l.Window))) {
				delete(u.IPs, k)
			}
		}
		if _, ok := u.IPs[req.IPKey]; ok || len(u.IPs) < l.Max {
			return true
		}
		return violation(restrict.PolicyIPs, l, len(u.IPs)+1, sid)
	}
	deviceOK := func(sid string) bool {
		l := lim.Devices
		if dev != nil || l == nil || l.Max == 0 {
			return true
		}
		n := 0
		for _, d := range u.Devs {
			if d.LastSeen.After(now.Add(-time.Duration(l.Window))) {
				n++
			}
		}
		if n < l.Max {
			return true
		}
		return violation(restrict.PolicyDevices, l, n+1, sid)
	}
	useDevice := func() {
		if !u.touchDevice(devID, now, req.New.IP, req.Device) {
			d := *req.Device
			d.ID, d.User, d.FirstSeen, d.LastSeen = devID, req.User, now, now
			u.Devs[d.ID] = &d
			res.NewDevice = true
		}
	}
	if sid, ok := u.Tok[req.TokenHash]; ok {
		if s := u.Sess[sid]; s != nil {
			switch {
			case s.EndedAt == nil && now.Sub(s.LastSeen) > p.Idle:
				res.Closed = append(res.Closed, u.closeSession(s, s.LastSeen, EndIdle))
			case s.EndedAt == nil && req.Login:
				res.Closed = append(res.Closed, u.closeSession(s, now, EndReplaced))
			case s.EndedAt == nil:
				changed := false
				if req.New.IP != "" && s.IP != req.New.IP {
					if !ipOK(sid) {
						return refuse(sid, s, restrict.PolicyIPs)
					}
					s.IP, s.ipKey, changed = req.New.IP, req.IPKey, true
				}
				if devID != s.DeviceID {
					if !deviceOK(sid) {
						return refuse(sid, s, restrict.PolicyDevices)
					}
					useDevice()
				}
				if now.Sub(s.LastSeen) >= p.Refresh {
					u.addActivity(s, s.LastSeen, now, days)
					u.addTrail(sid, now, req.Activity)
					s.LastSeen, changed = now, true
				}
				if changed {
					u.Last = s.LastSeen
					if s.ipKey != "" {
						u.IPs[s.ipKey] = now
					}
					var nd *Device
					if devID == s.DeviceID {
						nd = req.Device
					}
					u.touchDevice(s.DeviceID, s.LastSeen, req.New.IP, nd)
					m.touched(u, now, p)
					m.realmUser(req.Realm, req.User, now)
				}
				if len(res.Violations) > 0 {
					m.flag(req.Realm, req.User, now)
				}
				res.Status, res.SessionID, res.StartedAt, res.LastSeen = StatusActive, sid, s.StartedAt, s.LastSeen
				return res, nil
			case holdsToken(s.EndReason) && !req.Login && now.Sub(*s.EndedAt) < p.RevokeHold:
				return refuse(sid, s, s.EndReason)
			}
		}
	}
	if req.NoOpen {
		res.Status = StatusNone
		return res, nil
	}
	if !ipOK("") {
		return refuse("", nil, restrict.PolicyIPs)
	}
	if !deviceOK("") {
		return refuse("", nil, restrict.PolicyDevices)
	}
	var active []*Session
	for _, s := range u.Sess {
		if s.EndedAt != nil {
			continue
		}
		if now.Sub(s.LastSeen) > p.Idle {
			res.Closed = append(res.Closed, u.closeSession(s, s.LastSeen, EndIdle))
			continue
		}
		active = append(active, s)
	}
	if l := lim.Sessions; l != nil && l.Max > 0 && len(active) >= l.Max {
		if !violation(restrict.PolicySessions, l, len(active)+1, "") {
			return refuse("", nil, restrict.PolicySessions)
		}
		if l.Action == restrict.ActionEvictOldest {
			sort.Slice(active, func(i, j int) bool {
				if !active[i].LastSeen.Equal(active[j].LastSeen) {
					return active[i].LastSeen.Before(active[j].LastSeen)
				}
				return active[i].ID < active[j].ID
			})
			for _, s := range active[:len(active)-l.Max+1] {
				res.Closed = append(res.Closed, u.closeSession(s, now, EndEvicted))
			}
		}
	}
	s := clone(req.New)
	s.Realm, s.User, s.tokenHash, s.ipKey = req.Realm, req.User, req.TokenHash, req.IPKey
	s.StartedAt, s.LastSeen, s.EndedAt, s.EndReason = now, now, nil, ""
	u.addActivity(s, now, now, days)
	u.addTrail(s.ID, now, req.Activity)
	u.Sess[s.ID] = s
	u.Tok[req.TokenHash] = s.ID
	u.Last = now
	if req.IPKey != "" {
		u.IPs[req.IPKey] = now
	}
	useDevice()
	u.trim(now, p, days.Cut)
	m.touched(u, now, p)
	m.realmUser(req.Realm, req.User, now)
	if len(res.Violations) > 0 {
		m.flag(req.Realm, req.User, now)
	}
	res.Status, res.SessionID, res.StartedAt, res.LastSeen = StatusOpened, s.ID, now, now
	return res, nil
}

// limits mirrors limits() in prelude.lua.
func (u *memUser) limits(realm restrict.Limits) restrict.Limits {
	if u.Exempt {
		return restrict.Limits{}
	}
	return realm.Merge(u.Limits)
}

func (m *MemoryStore) realmUser(realm, user string, now time.Time) {
	r := m.realms[realm]
	if r == nil {
		r = map[string]time.Time{}
		m.realms[realm] = r
	}
	r[user] = now
}

// Touch implements Store, mirroring touch.lua.
func (m *MemoryStore) Touch(_ context.Context, touches []Touch) []TouchResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]TouchResult, len(touches))
	for i, t := range touches {
		now := t.Now.Truncate(time.Millisecond)
		u := m.user(t.Realm, t.User, false, now)
		var s *Session
		if u != nil {
			s = u.Sess[t.SessionID]
		}
		switch {
		case s == nil:
			out[i] = TouchResult{Ended: true, Reason: "gone"}
		case s.EndedAt != nil:
			out[i] = TouchResult{Ended: true, Reason: s.EndReason}
		case now.Sub(s.LastSeen) > t.Policy.Idle:
			u.closeSession(s, s.LastSeen, EndIdle)
			m.dirty = true
			out[i] = TouchResult{Ended: true, Reason: EndIdle}
		case now.After(s.LastSeen):
			u.addActivity(s, s.LastSeen, now, parseDaysArg(t.Activity.Days))
			u.addTrail(s.ID, now, t.Activity)
			s.LastSeen, u.Last = now, now
			if s.ipKey != "" {
				u.IPs[s.ipKey] = now
			}
			u.touchDevice(s.DeviceID, now, "", nil)
			m.touched(u, now, t.Policy)
			m.realmUser(t.Realm, t.User, now)
		}
	}
	return out
}

// end mirrors end.lua.
func (m *MemoryStore) end(realm, user, mode, value, reason string, now time.Time, p Policy) []*Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	now = now.Truncate(time.Millisecond)
	u := m.user(realm, user, false, now)
	if u == nil {
		return nil
	}
	var out []*Session
	endOne := func(s *Session) {
		if s == nil || s.EndedAt != nil {
			return
		}
		switch {
		case now.Sub(s.LastSeen) > p.Idle && reason == EndLogout:
			out = append(out, u.closeSession(s, s.LastSeen, reason))
		case now.Sub(s.LastSeen) > p.Idle && !blocksToken(reason):
			out = append(out, u.closeSession(s, s.LastSeen, EndIdle))
		default:
			out = append(out, u.closeSession(s, now, reason))
		}
		m.dirty = true
	}
	switch mode {
	case "tok", "tokfree":
		if sid, ok := u.Tok[value]; ok {
			endOne(u.Sess[sid])
			if mode == "tokfree" {
				delete(u.Tok, value)
			}
		}
	case "sid":
		endOne(u.Sess[value])
	case "all":
		for id, s := range u.Sess {
			if id != value {
				endOne(s)
			}
		}
	case "idle":
		for _, s := range u.Sess {
			if s.EndedAt == nil && now.Sub(s.LastSeen) > p.Idle {
				endOne(s)
			}
		}
	}
	return out
}

// EndToken implements Store.
func (m *MemoryStore) EndToken(_ context.Context, realm, user, tokenHash, reason string, forget bool, now time.Time, p Policy) (*Session, error) {
	mode := "tok"
	if forget {
		mode = "tokfree"
	}
	if closed := m.end(realm, user, mode, tokenHash, reason, now, p); len(closed) > 0 {
		return closed[0], nil
	}
	return nil, nil
}

// AliasToken implements Store (alias.lua).
func (m *MemoryStore) AliasToken(_ context.Context, realm, user, tokenHash, sessionID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.user(realm, user, false, m.now())
	if u == nil {
		return false, nil
	}
	s := u.Sess[sessionID]
	if s == nil || s.EndedAt != nil {
		return false, nil
	}
	u.Tok[tokenHash] = sessionID
	m.dirty = true
	return true, nil
}

// EndSession implements Store.
func (m *MemoryStore) EndSession(_ context.Context, realm, user, id, reason string, now time.Time, p Policy) (*Session, error) {
	if closed := m.end(realm, user, "sid", id, reason, now, p); len(closed) > 0 {
		return closed[0], nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.user(realm, user, false, now)
	if u == nil || u.Sess[id] == nil {
		return nil, ErrNotFound
	}
	s := clone(u.Sess[id])
	normalizeIdle(s, now, p.Idle)
	return s, nil
}

// EndAll implements Store.
func (m *MemoryStore) EndAll(_ context.Context, realm, user, except, reason string, now time.Time, p Policy) ([]*Session, error) {
	return m.end(realm, user, "all", except, reason, now, p), nil
}

// Sessions implements Store.
func (m *MemoryStore) Sessions(_ context.Context, req ListRequest) ([]*Session, int, error) {
	m.mu.Lock()
	u := m.user(req.Realm, req.User, false, req.Now)
	var all []*Session
	if u != nil {
		for _, s := range u.Sess {
			all = append(all, clone(s))
		}
	}
	m.mu.Unlock()
	page, total := selectSessions(all, req)
	return page, total, nil
}

// Devices implements Store.
func (m *MemoryStore) Devices(_ context.Context, realm, user string) ([]*Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.user(realm, user, false, m.now())
	if u == nil {
		return nil, nil
	}
	out := make([]*Device, 0, len(u.Devs))
	for _, d := range u.Devs {
		c := *d
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastSeen.After(out[j].LastSeen) })
	return out, nil
}

// SweepIdle implements Store.
func (m *MemoryStore) SweepIdle(_ context.Context, realm string, since, now time.Time, p Policy) ([]*Session, error) {
	m.mu.Lock()
	var users []string
	for u, last := range m.realms[realm] {
		if !last.Before(since) && !last.After(now.Add(-p.Idle)) {
			users = append(users, u)
		}
	}
	m.mu.Unlock()
	var out []*Session
	for _, u := range users {
		out = append(out, m.end(realm, u, "idle", "", EndIdle, now, p)...)
	}
	return out, nil
}

// BindToken implements Store.
func (m *MemoryStore) BindToken(_ context.Context, tokenHash, user string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[tokenHash] = memBinding{User: user, ExpireAt: m.now().Add(ttl)}
	m.dirty = true
	return nil
}

// TokenUser implements Store.
func (m *MemoryStore) TokenUser(_ context.Context, tokenHash string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.tokens[tokenHash]
	if !ok {
		return "", nil
	}
	if !m.now().Before(b.ExpireAt) {
		delete(m.tokens, tokenHash)
		return "", nil
	}
	return b.User, nil
}

// UnbindToken implements Store.
func (m *MemoryStore) UnbindToken(_ context.Context, tokenHash string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tokens, tokenHash)
	m.dirty = true
	return nil
}

// Publish implements Store: in one process, subscribers hear it at once.
func (m *MemoryStore) Publish(_ context.Context, inv Invalidation) error {
	m.subMu.Lock()
	fns := make([]func(Invalidation), 0, len(m.subs))
	for _, fn := range m.subs {
		fns = append(fns, fn)
	}
	m.subMu.Unlock()
	for _, fn := range fns {
		fn(inv)
	}
	return nil
}

// Subscribe implements Store. A memory store never loses a message, so
// resync is never called.
func (m *MemoryStore) Subscribe(fn func(Invalidation), _ func()) func() {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	id := m.nextID
	m.nextID++
	m.subs[id] = fn
	return func() {
		m.subMu.Lock()
		delete(m.subs, id)
		m.subMu.Unlock()
	}
}

// Ping implements Store.
func (m *MemoryStore) Ping(context.Context) error { return nil }

// Close implements Store.
func (m *MemoryStore) Close() error { return nil }

// expire drops expired users and bindings; run periodically so memory does
// not grow with users who never come back.
func (m *MemoryStore) expire(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for tag, u := range m.users {
		if !u.ExpireAt.IsZero() && !now.Before(u.ExpireAt) {
			delete(m.users, tag)
			if r := m.realms[u.Realm]; r != nil {
				delete(r, u.User)
			}
			m.dirty = true
		}
	}
	for h, b := range m.tokens {
		if !now.Before(b.ExpireAt) {
			delete(m.tokens, h)
			m.dirty = true
		}
	}
}

func (m *MemoryStore) flag(realm, user string, now time.Time) {
	f := m.flags[realm]
	if f == nil {
		f = map[string]time.Time{}
		m.flags[realm] = f
	}
	f[user] = now
}

// SetDeviceBlocked implements Store, mirroring device.lua.
func (m *MemoryStore) SetDeviceBlocked(_ context.Context, realm, user, device string, blocked bool, now time.Time, p Policy) ([]*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now = now.Truncate(time.Millisecond)
	u := m.user(realm, user, false, now)
	if u == nil || u.Devs[device] == nil {
		return nil, ErrNotFound
	}
	u.Devs[device].Blocked = blocked
	var out []*Session
	if blocked {
		for _, s := range u.Sess {
			if s.EndedAt == nil && s.DeviceID == device {
				out = append(out, u.closeSession(s, now, EndDeviceBlocked))
			}
		}
	}
	m.touched(u, now, p)
	return out, nil
}

// Violations implements Store.
func (m *MemoryStore) Violations(_ context.Context, realm, user string, offset, limit int) ([]*restrict.Violation, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.user(realm, user, false, m.now())
	if u == nil {
		return nil, 0, nil
	}
	all := make([]*restrict.Violation, 0, len(u.Viol))
	for _, v := range u.Viol {
		c := *v
		all = append(all, &c)
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].Time.Equal(all[j].Time) {
			return all[i].Time.After(all[j].Time)
		}
		return all[i].ID > all[j].ID
	})
	total := len(all)
	if offset >= total {
		return nil, total, nil
	}
	all = all[offset:]
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, total, nil
}

// MarkViewed implements Store, mirroring viewed.lua.
func (m *MemoryStore) MarkViewed(_ context.Context, realm, user, id string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.user(realm, user, false, m.now())
	if u == nil || (id != "" && u.Viol[id] == nil) {
		return 0, ErrNotFound
	}
	for vid, v := range u.Viol {
		if (id == "" || vid == id) && !v.Viewed {
			v.Viewed = true
			u.Unviewed--
		}
	}
	u.Unviewed = max(u.Unviewed, 0)
	if u.Unviewed == 0 {
		delete(m.flags[realm], user)
	}
	m.dirty = true
	return u.Unviewed, nil
}

// SetExempt implements Store.
func (m *MemoryStore) SetExempt(_ context.Context, realm, user string, exempt bool, p Policy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	u := m.user(realm, user, true, now)
	u.Exempt = exempt
	m.touched(u, now, p)
	return nil
}

// SetLimits implements Store.
func (m *MemoryStore) SetLimits(_ context.Context, realm, user string, l restrict.Limits, p Policy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	u := m.user(realm, user, true, now)
	u.Limits = l
	m.touched(u, now, p)
	return nil
}

func (m *MemoryStore) summary(u *memUser, now time.Time, p Policy) *UserSummary {
	s := &UserSummary{User: u.User, LastActivity: u.Last, Devices: len(u.Devs), UnviewedViolations: u.Unviewed, Exempt: u.Exempt}
	for _, sess := range u.Sess {
		if sess.EndedAt == nil && now.Sub(sess.LastSeen) <= p.Idle {
			s.ActiveSessions++
		}
	}
	if !u.Limits.IsZero() {
		l := u.Limits
		s.Limits = &l
	}
	return s
}

// User implements Store.
func (m *MemoryStore) User(_ context.Context, realm, user string, now time.Time, p Policy) (*UserSummary, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.user(realm, user, false, now)
	if u == nil || (len(u.Sess) == 0 && len(u.Devs) == 0 && len(u.Viol) == 0 && !u.Exempt && u.Limits.IsZero()) {
		return nil, ErrNotFound
	}
	return m.summary(u, now, p), nil
}

// Users implements Store.
func (m *MemoryStore) Users(_ context.Context, req UsersRequest) ([]*UserSummary, int, error) {
	m.mu.Lock()
	var sums []*UserSummary
	for name := range m.realms[req.Realm] {
		if !strings.HasPrefix(name, req.Prefix) {
			continue
		}
		if u := m.user(req.Realm, name, false, req.Now); u != nil {
			sums = append(sums, m.summary(u, req.Now, req.Policy))
		}
	}
	m.mu.Unlock()
	return pageUsers(filterUsers(sums, req), req)
}

func parseDaysArg(raw string) daysArg {
	var a daysArg
	if raw != "" {
		_ = json.Unmarshal([]byte(raw), &a)
	}
	return a
}

// addDay mirrors add_day() in prelude.lua.
func (u *memUser) addDay(s *Session, date string, dur time.Duration) {
	if dur > 0 {
		u.Days[date] += dur.Milliseconds()
	}
	if s.day != date {
		u.DayN[date]++
		s.day = date
	}
}

// addActivity mirrors add_activity() in prelude.lua.
func (u *memUser) addActivity(s *Session, from, to time.Time, days daysArg) {
	if days.Base == "" {
		return
	}
	date, cur := days.Base, ms(from)
	end := ms(to)
	for _, b := range days.Bound {
		if len(b) < 2 {
			continue
		}
		atF, _ := b[0].(float64)
		d, _ := b[1].(string)
		at := int64(atF)
		if at <= cur {
			date = d
		} else if at < end {
			u.addDay(s, date, time.Duration(at-cur)*time.Millisecond)
			cur, date = at, d
		}
	}
	u.addDay(s, date, time.Duration(end-cur)*time.Millisecond)
}

// addTrail mirrors add_trail() in prelude.lua.
func (u *memUser) addTrail(id string, now time.Time, a Activity) {
	if a.Path == "" || a.TrailLen <= 0 {
		return
	}
	t := append(u.Trail[id], TrailEntry{Time: now, Path: a.Path})
	if len(t) > a.TrailLen {
		t = append([]TrailEntry(nil), t[len(t)-a.TrailLen:]...)
	}
	u.Trail[id] = t
}

// Days implements Store.
func (m *MemoryStore) Days(_ context.Context, realm, user string, dates []string) (map[string]DayTotal, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]DayTotal{}
	u := m.user(realm, user, false, m.now())
	if u == nil {
		return out, nil
	}
	if dates == nil {
		for d := range u.DayN {
			dates = append(dates, d)
		}
		for d := range u.Days {
			if _, ok := u.DayN[d]; !ok {
				dates = append(dates, d)
			}
		}
	}
	for _, d := range dates {
		if a, n := u.Days[d], u.DayN[d]; a > 0 || n > 0 {
			out[d] = DayTotal{Active: time.Duration(a) * time.Millisecond, Sessions: n}
		}
	}
	return out, nil
}

// Trail implements Store.
func (m *MemoryStore) Trail(_ context.Context, realm, user, id string) ([]TrailEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.user(realm, user, false, m.now())
	if u == nil {
		return nil, nil
	}
	return append([]TrailEntry(nil), u.Trail[id]...), nil
}

// Erase implements Store.
func (m *MemoryStore) Erase(_ context.Context, realm, user string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tag := keysFor(realm, user).tag
	u := m.users[tag]
	var toks []string
	if u != nil {
		for h := range u.Tok {
			toks = append(toks, h)
		}
		for _, s := range u.Sess {
			if s.tokenHash != "" {
				toks = append(toks, s.tokenHash)
			}
		}
		for _, h := range toks {
			delete(m.tokens, h)
		}
	}
	delete(m.users, tag)
	delete(m.realms[realm], user)
	delete(m.flags[realm], user)
	m.dirty = true
	return toks, nil
}

// Settings implements Store.
func (m *MemoryStore) Settings(_ context.Context, realm string) (Settings, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.settings[realm]
	return s, ok, nil
}

// SetSettings implements Store.
func (m *MemoryStore) SetSettings(_ context.Context, realm string, s Settings) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.settings[realm] = s
	m.dirty = true
	return nil
}

// Interface guards
var (
	_ Store = (*MemoryStore)(nil)
	_ Store = (*RedisStore)(nil)
)
