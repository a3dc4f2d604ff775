package redisstore

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/restrict"
)

var (
	//go:embed lua/prelude.lua
	luaPrelude string
	//go:embed lua/seen.lua
	luaSeen string
	//go:embed lua/touch.lua
	luaTouch string
	//go:embed lua/end.lua
	luaEnd string
	//go:embed lua/device.lua
	luaDevice string
	//go:embed lua/viewed.lua
	luaViewed string
	//go:embed lua/alias.lua
	luaAlias string

	scriptSeen   = redis.NewScript(luaPrelude + luaSeen)
	scriptTouch  = redis.NewScript(luaPrelude + luaTouch)
	scriptEnd    = redis.NewScript(luaPrelude + luaEnd)
	scriptDevice = redis.NewScript(luaPrelude + luaDevice)
	scriptViewed = redis.NewScript(luaPrelude + luaViewed)
	scriptAlias  = redis.NewScript(luaPrelude + luaAlias)
)

// Store keeps sessions in Redis, standalone, Sentinel or Cluster. All
// keys of one user share a hash tag, and each change is one Lua script on
// that slot; see keys.go for the layout.
type Store struct {
	rdb  redis.UniversalClient
	desc descCache

	mu     sync.Mutex
	subs   map[int]*subscriber
	nextID int
	// readers counts the log readers still running, unsubscribed ones
	// included (they end within readBlock): Close waits for them all.
	readers sync.WaitGroup

	// capForTest overrides logCap.
	capForTest int64
}

// New wraps a client; the store owns it from now on and closes it
// in Close.
func New(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, subs: map[int]*subscriber{}}
}

// LoadScripts loads the Lua scripts into Redis (every master of a
// cluster), so the first batch of refreshes does not fail with NOSCRIPT.
// Scripts are loaded again on demand anyway (after a restart or failover).
func (s *Store) LoadScripts(ctx context.Context) error {
	for _, sc := range []*redis.Script{scriptSeen, scriptTouch, scriptEnd, scriptDevice, scriptViewed, scriptAlias} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("redis script load: %w", err)
		}
	}
	return nil
}

// Client is the underlying Redis client.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

func msArg(d time.Duration) int64 { return d.Milliseconds() }

// Seen implements Store.
func (s *Store) Seen(ctx context.Context, req store.SeenRequest) (store.SeenResult, error) {
	k := keysFor(req.Realm, req.User)
	now := ms(req.Now)
	mode := "sight"
	if req.Login {
		mode = "login"
	}
	rec := &sessionRecord{Session: req.New, tokenHash: req.TokenHash, ipKey: req.IPKey}
	dev := &deviceRecord{Device: req.Device}
	keys := append(k.all(), k.rsig)
	// One round trip: the descriptions, the token's binding, the script
	// and the realm's users index go in one pipeline (to each node
	// concerned, at once).
	pipe := s.rdb.Pipeline()
	s.describe(ctx, pipe, rec, dev, req.Policy.Retention)
	args := []any{
		now, msArg(req.Policy.Idle), msArg(req.Policy.Retention), msArg(req.Policy.Refresh),
		req.TokenHash, req.New.ID, encodeStoredSession(rec), req.Device.ID, encodeStoredDevice(dev),
		mode, req.User, req.Realm, msArg(req.Policy.RevokeHold), req.New.IP,
		limitsArg(req.Limits), req.IPKey, req.New.Location.String(),
		daysOrEmpty(req.Activity.Days), req.Activity.Path, req.Activity.TrailLen, boolArg(!req.DeviceMinted), boolArg(!req.NoOpen),
	}
	var bind *redis.StringCmd
	if req.CheckToken {
		bind = pipe.Get(ctx, tokenKey(req.TokenHash))
	}
	run := scriptSeen.EvalSha(ctx, pipe, keys, args...)
	pipe.ZAdd(ctx, realmUsersKey(req.Realm), redis.Z{Score: float64(now), Member: req.User})
	pipe.PExpire(ctx, realmUsersKey(req.Realm), req.Policy.Retention)
	_, _ = pipe.Exec(ctx)
	if err := run.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		run = scriptSeen.Run(ctx, s.rdb, keys, args...)
	}
	vals, err := run.Slice()
	if err != nil {
		return store.SeenResult{}, fmt.Errorf("redis seen: %w", err)
	}
	if len(vals) < 10 {
		return store.SeenResult{}, fmt.Errorf("redis seen: short reply %v", vals)
	}
	res := store.SeenResult{
		Status:    str(vals[0]),
		SessionID: str(vals[1]),
		StartedAt: fromMS(num(vals[2])),
		LastSeen:  fromMS(num(vals[3])),
		Reason:    str(vals[4]),
		NewDevice: num(vals[5]) == 1,
		DeviceID:  str(vals[6]),
	}
	if bind != nil {
		res.TokenUser = bind.Val()
	}
	var closed []*sessionRecord
	var prior *sessionRecord
	if raw := str(vals[7]); raw != "" {
		id := res.SessionID // a moved session's own record, stored without its id
		if res.Status == store.StatusOpened {
			id = "" // the token's previous session: the reply names it
		}
		if p, err := decodeStoredSession(raw, id, req.Realm, req.User); err == nil {
			prior, res.Prior = p, p.Session
		}
	}
	if sig := str(vals[8]); sig != "" {
		res.Risk = strings.Split(sig, ",")
	}
	nclosed := int(num(vals[9]))
	for i, v := range vals[10:] {
		if i < nclosed {
			if c, err := decodeStoredSession(str(v), "", req.Realm, req.User); err == nil {
				closed = append(closed, c)
				res.Closed = append(res.Closed, c.Session)
				res.ClosedTokens = append(res.ClosedTokens, c.tokenHash)
			}
		} else if vi, err := decodeViolation(str(v), req.User); err == nil {
			res.Violations = append(res.Violations, vi)
		}
	}
	// Closing a session here is rare (a login replacing one, idle ones,
	// evictions), as is a session moving: describing them costs a round
	// trip only then, and none when the descriptions are cached.
	if prior != nil {
		s.resolve(ctx, append(closed, prior), nil)
	} else {
		s.resolve(ctx, closed, nil)
	}
	// The realm indexes are outside the user's slot, so not in the script;
	// a lost update only delays the user in the admin users list.
	if len(res.Violations) > 0 {
		pipe := s.rdb.Pipeline()
		pipe.ZAdd(ctx, realmFlaggedKey(req.Realm), redis.Z{Score: float64(now), Member: req.User})
		pipe.PExpire(ctx, realmFlaggedKey(req.Realm), req.Policy.Retention)
		_, _ = pipe.Exec(ctx)
	}
	return res, nil
}

// Touch implements Store: one pipeline for the whole batch, so a flush costs
// one round trip per Redis node whatever its size.
func (s *Store) Touch(ctx context.Context, touches []store.Touch) []store.TouchResult {
	out := make([]store.TouchResult, len(touches))
	if len(touches) == 0 {
		return out
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(touches))
	for i, t := range touches {
		k := keysFor(t.Realm, t.User)
		cmds[i] = scriptTouch.EvalSha(ctx, pipe, k.all(), touchArgs(t)...)
	}
	_, _ = pipe.Exec(ctx)
	var retry []int
	for i, c := range cmds {
		if err := c.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		// The script cache was flushed (restart, failover): load it once
		// and redo only what failed.
		pipe := s.rdb.Pipeline()
		for _, i := range retry {
			t := touches[i]
			cmds[i] = scriptTouch.Eval(ctx, pipe, keysFor(t.Realm, t.User).all(), touchArgs(t)...)
		}
		_, _ = pipe.Exec(ctx)
	}
	users := map[string][]redis.Z{} // realm -> members: one ZADD per realm
	renew := map[string]struct{}{}
	for i, c := range cmds {
		vals, err := c.Slice()
		if err != nil {
			out[i].Err = fmt.Errorf("redis touch: %w", err)
			continue
		}
		if len(vals) > 0 && str(vals[0]) == "ended" {
			out[i].Ended = true
			if len(vals) > 1 {
				out[i].Reason = str(vals[1])
			}
			continue
		}
		t := touches[i]
		users[t.Realm] = append(users[t.Realm], redis.Z{Score: float64(ms(t.Now)), Member: t.User})
		// A session that passed another day since its start names its
		// descriptions (and its device's), to keep them alive.
		// The reply is {'active', agent, location, device agent, device location}.
		for j, v := range vals[1:] {
			if r := str(v); r != "" {
				kind := "a:"
				if j%2 == 1 {
					kind = "l:"
				}
				renew[kind+r] = struct{}{}
			}
		}
	}
	s.renewDescriptions(ctx, renew, touches[0].Policy.Retention)
	// Only users still active: an erased user must not come back.
	if len(users) > 0 {
		pipe := s.rdb.Pipeline()
		for realm, zs := range users {
			pipe.ZAdd(ctx, realmUsersKey(realm), zs...)
			pipe.PExpire(ctx, realmUsersKey(realm), touches[0].Policy.Retention)
		}
		_, _ = pipe.Exec(ctx)
	}
	return out
}

func (s *Store) end(ctx context.Context, realm, user, mode, value, reason string, now time.Time, p store.Policy) ([]*store.Session, error) {
	vals, err := scriptEnd.Run(ctx, s.rdb, keysFor(realm, user).all(), ms(now), mode, value, reason, msArg(p.Idle)).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis end: %w", err)
	}
	recs := make([]*sessionRecord, 0, len(vals))
	for _, v := range vals {
		rec, err := decodeStoredSession(str(v), "", realm, user)
		if err != nil {
			return sessionsOf(recs), err
		}
		recs = append(recs, rec)
	}
	s.resolve(ctx, recs, nil)
	return sessionsOf(recs), nil
}

// AliasToken implements Store.
func (s *Store) AliasToken(ctx context.Context, realm, user, tokenHash, sessionID string) (bool, error) {
	n, err := scriptAlias.Run(ctx, s.rdb, keysFor(realm, user).all(), tokenHash, sessionID).Int()
	if err != nil {
		return false, fmt.Errorf("redis alias: %w", err)
	}
	return n == 1, nil
}

// EndToken implements Store.
func (s *Store) EndToken(ctx context.Context, realm, user, tokenHash, reason string, forget bool, now time.Time, p store.Policy) (*store.Session, error) {
	mode := "tok"
	if forget {
		mode = "tokfree"
	}
	closed, err := s.end(ctx, realm, user, mode, tokenHash, reason, now, p)
	if err != nil || len(closed) == 0 {
		return nil, err
	}
	return closed[0], nil
}

// SweepIdle implements Store.
func (s *Store) SweepIdle(ctx context.Context, realm string, since, now time.Time, p store.Policy) ([]*store.Session, error) {
	users, err := s.rdb.ZRangeByScore(ctx, realmUsersKey(realm), &redis.ZRangeBy{
		Min: strconv.FormatInt(ms(since), 10), Max: strconv.FormatInt(ms(now.Add(-p.Idle)), 10),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis sweep: %w", err)
	}
	// Users inactive for the retention have no data left: drop them from
	// the realm's indexes so those do not grow without bound.
	old := "(" + strconv.FormatInt(ms(now.Add(-p.Retention)), 10)
	s.rdb.ZRemRangeByScore(ctx, realmUsersKey(realm), "-inf", old)
	s.rdb.ZRemRangeByScore(ctx, realmFlaggedKey(realm), "-inf", old)
	var out []*store.Session
	for _, u := range users {
		closed, err := s.end(ctx, realm, u, "idle", "", store.EndIdle, now, p)
		if err != nil {
			return out, err
		}
		out = append(out, closed...)
	}
	return out, nil
}

// BindToken implements Store.
func (s *Store) BindToken(ctx context.Context, tokenHash, user string, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, tokenKey(tokenHash), user, ttl).Err(); err != nil {
		return fmt.Errorf("redis bind token: %w", err)
	}
	return nil
}

// TokenUser implements Store.
func (s *Store) TokenUser(ctx context.Context, tokenHash string) (string, error) {
	u, err := s.rdb.Get(ctx, tokenKey(tokenHash)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redis token lookup: %w", err)
	}
	return u, nil
}

// UnbindToken implements Store.
func (s *Store) UnbindToken(ctx context.Context, tokenHash string) error {
	if err := s.rdb.Del(ctx, tokenKey(tokenHash)).Err(); err != nil {
		return fmt.Errorf("redis unbind token: %w", err)
	}
	return nil
}

// Ping implements Store.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Close implements Store.
func (s *Store) Close() error {
	s.mu.Lock()
	for _, sub := range s.subs {
		sub.cancel()
	}
	s.mu.Unlock()
	// Closing the client ends a read of the log blocked in Redis.
	err := s.rdb.Close()
	s.readers.Wait()
	return err
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

// limitsArg is the limits as the scripts read them: windows in ms.
func limitsArg(l restrict.Limits) string {
	m := map[string]any{}
	for name, p := range map[string]*restrict.Limit{restrict.PolicyIPs: l.IPs, restrict.PolicyDevices: l.Devices, restrict.PolicySessions: l.Sessions} {
		if p == nil {
			continue
		}
		action := p.Action
		if action == "" {
			action = restrict.ActionBlock
		}
		m[name] = map[string]any{"max": p.Max, "window": time.Duration(p.Window).Milliseconds(), "action": action}
	}
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func touchArgs(t store.Touch) []any {
	return []any{ms(t.Now), t.SessionID, msArg(t.Policy.Idle), msArg(t.Policy.Retention),
		daysOrEmpty(t.Activity.Days), t.Activity.Path, t.Activity.TrailLen}
}

// daysOrEmpty: without day data the scripts keep no per-day totals.
func daysOrEmpty(days string) string {
	if days == "" {
		return `{"base":"","b":[],"cut":""}`
	}
	return days
}

// Settings implements Store.
func (s *Store) Settings(ctx context.Context, realm string) (store.Settings, bool, error) {
	raw, err := s.rdb.Get(ctx, realmSettingsKey(realm)).Result()
	if errors.Is(err, redis.Nil) {
		return store.Settings{}, false, nil
	}
	if err != nil {
		return store.Settings{}, false, fmt.Errorf("redis settings: %w", err)
	}
	var st store.Settings
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return store.Settings{}, false, fmt.Errorf("redis settings: %w", err)
	}
	return st, true, nil
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
