package tracker

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

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

// RedisStore keeps sessions in Redis, standalone, Sentinel or Cluster. All
// keys of one user share a hash tag, and each change is one Lua script on
// that slot; see keys.go for the layout.
type RedisStore struct {
	rdb  redis.UniversalClient
	desc descCache

	mu     sync.Mutex
	subs   map[int]subscriber
	nextID int
	cancel context.CancelFunc
	done   chan struct{}
}

type subscriber struct {
	fn     func(Invalidation)
	resync func()
}

// NewRedisStore wraps a client; the store owns it from now on and closes it
// in Close.
func NewRedisStore(rdb redis.UniversalClient) *RedisStore {
	return &RedisStore{rdb: rdb, subs: map[int]subscriber{}}
}

// LoadScripts loads the Lua scripts into Redis (every master of a
// cluster), so the first batch of refreshes does not fail with NOSCRIPT.
// Scripts are loaded again on demand anyway (after a restart or failover).
func (s *RedisStore) LoadScripts(ctx context.Context) error {
	for _, sc := range []*redis.Script{scriptSeen, scriptTouch, scriptEnd, scriptDevice, scriptViewed, scriptAlias} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("redis script load: %w", err)
		}
	}
	return nil
}

// Client is the underlying Redis client.
func (s *RedisStore) Client() redis.UniversalClient { return s.rdb }

func msArg(d time.Duration) int64 { return d.Milliseconds() }

// Seen implements Store.
func (s *RedisStore) Seen(ctx context.Context, req SeenRequest) (SeenResult, error) {
	k := keysFor(req.Realm, req.User)
	now := ms(req.Now)
	mode := "sight"
	if req.Login {
		mode = "login"
	}
	req.New.tokenHash, req.New.ipKey = req.TokenHash, req.IPKey
	keys := k.all()
	// One round trip: the descriptions, the token's binding, the script
	// and the realm's users index go in one pipeline (to each node
	// concerned, at once).
	pipe := s.rdb.Pipeline()
	s.describe(ctx, pipe, req.New, req.Device, req.Policy.Retention)
	args := []any{
		now, msArg(req.Policy.Idle), msArg(req.Policy.Retention), msArg(req.Policy.Refresh),
		req.TokenHash, req.New.ID, encodeStoredSession(req.New), req.Device.ID, encodeStoredDevice(req.Device),
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
		return SeenResult{}, fmt.Errorf("redis seen: %w", err)
	}
	if len(vals) < 8 {
		return SeenResult{}, fmt.Errorf("redis seen: short reply %v", vals)
	}
	res := SeenResult{
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
	nclosed := int(num(vals[7]))
	for i, v := range vals[8:] {
		if i < nclosed {
			if c, err := decodeStoredSession(str(v), "", req.Realm, req.User); err == nil {
				res.Closed = append(res.Closed, c)
			}
		} else if vi, err := decodeViolation(str(v), req.User); err == nil {
			res.Violations = append(res.Violations, vi)
		}
	}
	// Closing a session here is rare (a login replacing one, idle ones,
	// evictions): describing them costs a round trip only then, and
	// none when the descriptions are cached.
	s.resolve(ctx, res.Closed, nil)
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
func (s *RedisStore) Touch(ctx context.Context, touches []Touch) []TouchResult {
	out := make([]TouchResult, len(touches))
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

func (s *RedisStore) end(ctx context.Context, realm, user, mode, value, reason string, now time.Time, p Policy) ([]*Session, error) {
	vals, err := scriptEnd.Run(ctx, s.rdb, keysFor(realm, user).all(), ms(now), mode, value, reason, msArg(p.Idle)).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis end: %w", err)
	}
	out := make([]*Session, 0, len(vals))
	for _, v := range vals {
		sess, err := decodeStoredSession(str(v), "", realm, user)
		if err != nil {
			return out, err
		}
		out = append(out, sess)
	}
	s.resolve(ctx, out, nil)
	return out, nil
}

// AliasToken implements Store.
func (s *RedisStore) AliasToken(ctx context.Context, realm, user, tokenHash, sessionID string) (bool, error) {
	n, err := scriptAlias.Run(ctx, s.rdb, keysFor(realm, user).all(), tokenHash, sessionID).Int()
	if err != nil {
		return false, fmt.Errorf("redis alias: %w", err)
	}
	return n == 1, nil
}

// EndToken implements Store.
func (s *RedisStore) EndToken(ctx context.Context, realm, user, tokenHash, reason string, forget bool, now time.Time, p Policy) (*Session, error) {
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

// EndSession implements Store.
func (s *RedisStore) EndSession(ctx context.Context, realm, user, id, reason string, now time.Time, p Policy) (*Session, error) {
	closed, err := s.end(ctx, realm, user, "sid", id, reason, now, p)
	if err != nil {
		return nil, err
	}
	if len(closed) > 0 {
		return closed[0], nil
	}
	return s.session(ctx, realm, user, id, now, p)
}

func (s *RedisStore) session(ctx context.Context, realm, user, id string, now time.Time, p Policy) (*Session, error) {
	raw, err := s.rdb.HGet(ctx, keysFor(realm, user).sess, id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis get session: %w", err)
	}
	sess, err := decodeStoredSession(raw, id, realm, user)
	if err != nil {
		return nil, err
	}
	s.resolve(ctx, []*Session{sess}, nil)
	normalizeIdle(sess, now, p.Idle)
	return sess, nil
}

// EndAll implements Store.
func (s *RedisStore) EndAll(ctx context.Context, realm, user, except, reason string, now time.Time, p Policy) ([]*Session, error) {
	return s.end(ctx, realm, user, "all", except, reason, now, p)
}

// Sessions implements Store.
func (s *RedisStore) Sessions(ctx context.Context, req ListRequest) ([]*Session, int, error) {
	k := keysFor(req.Realm, req.User)
	if req.State == "all" && req.Limit > 0 {
		// Idle normalization changes no membership: page in Redis.
		return s.sessionsPage(ctx, k, req)
	}
	var ids []string
	var err error
	if req.State == "active" {
		ids, err = s.rdb.ZRevRange(ctx, k.act, 0, -1).Result()
	} else {
		ids, err = s.rdb.ZRevRange(ctx, k.hist, 0, -1).Result()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("redis list sessions: %w", err)
	}
	var all []*Session
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		raws, err := s.rdb.HMGet(ctx, k.sess, chunk...).Result()
		if err != nil {
			return nil, 0, fmt.Errorf("redis list sessions: %w", err)
		}
		for i, raw := range raws {
			if raw == nil {
				continue
			}
			sess, err := decodeStoredSession(str(raw), chunk[i], req.Realm, req.User)
			if err != nil {
				continue
			}
			all = append(all, sess)
		}
	}
	page, total := selectSessions(all, req)
	s.resolve(ctx, page, nil)
	return page, total, nil
}

// Devices implements Store.
func (s *RedisStore) Devices(ctx context.Context, realm, user string) ([]*Device, error) {
	k := keysFor(realm, user)
	ids, err := s.rdb.ZRevRange(ctx, k.devz, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redis list devices: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	raws, err := s.rdb.HMGet(ctx, k.devs, ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis list devices: %w", err)
	}
	var out []*Device
	for i, raw := range raws {
		if raw == nil {
			continue
		}
		if d, err := decodeStoredDevice(str(raw), ids[i], user); err == nil {
			out = append(out, d)
		}
	}
	s.resolve(ctx, nil, out)
	return out, nil
}

// SweepIdle implements Store.
func (s *RedisStore) SweepIdle(ctx context.Context, realm string, since, now time.Time, p Policy) ([]*Session, error) {
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
	var out []*Session
	for _, u := range users {
		closed, err := s.end(ctx, realm, u, "idle", "", EndIdle, now, p)
		if err != nil {
			return out, err
		}
		out = append(out, closed...)
	}
	return out, nil
}

// BindToken implements Store.
func (s *RedisStore) BindToken(ctx context.Context, tokenHash, user string, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, tokenKey(tokenHash), user, ttl).Err(); err != nil {
		return fmt.Errorf("redis bind token: %w", err)
	}
	return nil
}

// TokenUser implements Store.
func (s *RedisStore) TokenUser(ctx context.Context, tokenHash string) (string, error) {
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
func (s *RedisStore) UnbindToken(ctx context.Context, tokenHash string) error {
	if err := s.rdb.Del(ctx, tokenKey(tokenHash)).Err(); err != nil {
		return fmt.Errorf("redis unbind token: %w", err)
	}
	return nil
}

// Publish implements Store.
func (s *RedisStore) Publish(ctx context.Context, inv Invalidation) error {
	b, _ := json.Marshal(inv)
	if err := s.rdb.Publish(ctx, invalidationChannel, b).Err(); err != nil {
		return fmt.Errorf("redis publish: %w", err)
	}
	return nil
}

// Subscribe implements Store. The first subscriber starts one Redis
// subscription shared by all.
func (s *RedisStore) Subscribe(fn func(Invalidation), resync func()) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextID
	s.nextID++
	s.subs[id] = subscriber{fn, resync}
	if s.cancel == nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel, s.done = cancel, make(chan struct{})
		go s.listen(ctx, s.done)
	}
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
}

func (s *RedisStore) each(f func(subscriber)) {
	s.mu.Lock()
	subs := make([]subscriber, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		f(sub)
	}
}

// listen follows the invalidation channel. go-redis reconnects a broken
// subscription by itself; every (re)subscription confirmation after the
// first means messages may have been lost, so subscribers resync.
func (s *RedisStore) listen(ctx context.Context, done chan struct{}) {
	defer close(done)
	ps := s.rdb.Subscribe(ctx, invalidationChannel)
	// Receive does not watch ctx: closing the subscription is what ends it.
	go func() {
		<-ctx.Done()
		ps.Close()
	}()
	first := true
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// The connection is gone. Caches keep serving (known
			// sessions keep working, refusals keep refusing) until the
			// subscription is back; then they resync, since messages
			// may have been lost meanwhile.
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if !first {
				s.each(func(sub subscriber) {
					if sub.resync != nil {
						sub.resync()
					}
				})
			}
			first = false
		case *redis.Message:
			var inv Invalidation
			if json.Unmarshal([]byte(m.Payload), &inv) != nil {
				continue
			}
			s.each(func(sub subscriber) { sub.fn(inv) })
		}
	}
}

// Ping implements Store.
func (s *RedisStore) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Close implements Store.
func (s *RedisStore) Close() error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return s.rdb.Close()
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

// selectSessions normalizes idle sessions, filters by state and pages,
// newest first, returning the page and the number matched. Shared by both
// stores so they answer alike.
func selectSessions(all []*Session, req ListRequest) ([]*Session, int) {
	var out []*Session
	for _, sess := range all {
		normalizeIdle(sess, req.Now, req.Policy.Idle)
		switch req.State {
		case "active":
			if !sess.Active() {
				continue
			}
		case "closed":
			if sess.Active() {
				continue
			}
		}
		out = append(out, sess)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.After(out[j].StartedAt)
		}
		return out[i].ID > out[j].ID
	})
	total := len(out)
	if req.Offset >= total {
		return nil, total
	}
	out = out[req.Offset:]
	if req.Limit > 0 && len(out) > req.Limit {
		out = out[:req.Limit]
	}
	return out, total
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

// SetDeviceBlocked implements Store.
func (s *RedisStore) SetDeviceBlocked(ctx context.Context, realm, user, device string, blocked bool, now time.Time, p Policy) ([]*Session, error) {
	flag := 0
	if blocked {
		flag = 1
	}
	vals, err := scriptDevice.Run(ctx, s.rdb, keysFor(realm, user).all(), ms(now), device, flag, msArg(p.Retention)).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis block device: %w", err)
	}
	if len(vals) == 0 || str(vals[0]) == "missing" {
		return nil, ErrNotFound
	}
	var out []*Session
	for _, v := range vals[1:] {
		if sess, err := decodeStoredSession(str(v), "", realm, user); err == nil {
			out = append(out, sess)
		}
	}
	s.resolve(ctx, out, nil)
	return out, nil
}

// Violations implements Store.
func (s *RedisStore) Violations(ctx context.Context, realm, user string, offset, limit int) ([]*restrict.Violation, int, error) {
	k := keysFor(realm, user)
	total, err := s.rdb.ZCard(ctx, k.violz).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("redis violations: %w", err)
	}
	ids, err := s.rdb.ZRevRange(ctx, k.violz, int64(offset), int64(offset+limit-1)).Result()
	if err != nil || len(ids) == 0 {
		return nil, int(total), err
	}
	raws, err := s.rdb.HMGet(ctx, k.viol, ids...).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("redis violations: %w", err)
	}
	var out []*restrict.Violation
	for _, raw := range raws {
		if raw == nil {
			continue
		}
		if v, err := decodeViolation(str(raw), user); err == nil {
			out = append(out, v)
		}
	}
	return out, int(total), nil
}

// MarkViewed implements Store.
func (s *RedisStore) MarkViewed(ctx context.Context, realm, user, id string) (int, error) {
	vals, err := scriptViewed.Run(ctx, s.rdb, keysFor(realm, user).all(), id).Slice()
	if err != nil {
		return 0, fmt.Errorf("redis mark viewed: %w", err)
	}
	if len(vals) < 3 {
		return 0, ErrNotFound
	}
	left := int(num(vals[2]))
	if left == 0 {
		s.rdb.ZRem(ctx, realmFlaggedKey(realm), user)
	}
	return left, nil
}

// SetExempt implements Store.
func (s *RedisStore) SetExempt(ctx context.Context, realm, user string, exempt bool, p Policy) error {
	k := keysFor(realm, user)
	pipe := s.rdb.TxPipeline()
	if exempt {
		pipe.HSet(ctx, k.meta, "exempt", "1")
	} else {
		pipe.HDel(ctx, k.meta, "exempt")
	}
	pipe.PExpire(ctx, k.meta, p.Retention)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis set exempt: %w", err)
	}
	return nil
}

// SetLimits implements Store.
func (s *RedisStore) SetLimits(ctx context.Context, realm, user string, l restrict.Limits, p Policy) error {
	k := keysFor(realm, user)
	pipe := s.rdb.TxPipeline()
	if l.IsZero() {
		pipe.HDel(ctx, k.meta, "limits", "limits_json")
	} else {
		b, _ := json.Marshal(l)
		pipe.HSet(ctx, k.meta, "limits", limitsArg(l), "limits_json", string(b))
	}
	pipe.PExpire(ctx, k.meta, p.Retention)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis set limits: %w", err)
	}
	return nil
}

// User implements Store.
func (s *RedisStore) User(ctx context.Context, realm, user string, now time.Time, p Policy) (*UserSummary, error) {
	list, err := s.summaries(ctx, realm, []string{user}, now, p)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, ErrNotFound
	}
	return list[0], nil
}

// summaries reads the summary of each user in one pipeline; users the
// store holds nothing of are left out.
func (s *RedisStore) summaries(ctx context.Context, realm string, users []string, now time.Time, p Policy) ([]*UserSummary, error) {
	pipe := s.rdb.Pipeline()
	type cmds struct {
		meta *redis.SliceCmd
		act  *redis.IntCmd
		devs *redis.IntCmd
	}
	cs := make([]cmds, len(users))
	idleFrom := "(" + strconv.FormatInt(ms(now.Add(-p.Idle)), 10)
	for i, u := range users {
		k := keysFor(realm, u)
		cs[i] = cmds{
			meta: pipe.HMGet(ctx, k.meta, "user", "last", "unviewed", "exempt", "limits_json"),
			act:  pipe.ZCount(ctx, k.act, idleFrom, "+inf"),
			devs: pipe.ZCard(ctx, k.devz),
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis users: %w", err)
	}
	var out []*UserSummary
	for i, c := range cs {
		m := c.meta.Val()
		if len(m) < 5 || m[0] == nil {
			continue
		}
		sum := &UserSummary{
			User: users[i], LastActivity: fromMS(num(m[1])), ActiveSessions: int(c.act.Val()), Devices: int(c.devs.Val()),
			UnviewedViolations: int(num(m[2])), Exempt: str(m[3]) == "1",
		}
		if raw := str(m[4]); raw != "" {
			var l restrict.Limits
			if json.Unmarshal([]byte(raw), &l) == nil {
				sum.Limits = &l
			}
		}
		out = append(out, sum)
	}
	return out, nil
}

// Users implements Store. It walks the realm's index newest first, in
// chunks, keeping users that pass the filters.
func (s *RedisStore) Users(ctx context.Context, req UsersRequest) ([]*UserSummary, int, error) {
	if req.Prefix == "" && !req.Unviewed && !req.Active && req.Limit > 0 {
		return s.usersPage(ctx, req)
	}
	index := realmUsersKey(req.Realm)
	if req.Unviewed {
		index = realmFlaggedKey(req.Realm)
	}
	var matched []*UserSummary
	const chunk = 500
	for start := int64(0); ; start += chunk {
		users, err := s.rdb.ZRevRange(ctx, index, start, start+chunk-1).Result()
		if err != nil {
			return nil, 0, fmt.Errorf("redis users: %w", err)
		}
		var want []string
		for _, u := range users {
			if strings.HasPrefix(u, req.Prefix) {
				want = append(want, u)
			}
		}
		sums, err := s.summaries(ctx, req.Realm, want, req.Now, req.Policy)
		if err != nil {
			return nil, 0, err
		}
		matched = append(matched, filterUsers(sums, req)...)
		if len(users) < chunk {
			break
		}
	}
	return pageUsers(matched, req)
}

func touchArgs(t Touch) []any {
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

// Days implements Store.
func (s *RedisStore) Days(ctx context.Context, realm, user string, dates []string) (map[string]DayTotal, error) {
	if dates == nil {
		all, err := s.rdb.HGetAll(ctx, keysFor(realm, user).days).Result()
		if err != nil {
			return nil, fmt.Errorf("redis days: %w", err)
		}
		out := map[string]DayTotal{}
		for f, v := range all {
			date, count := strings.CutSuffix(f, "#n")
			d := out[date]
			if count {
				d.Sessions = int(num(v))
			} else {
				d.Active = time.Duration(num(v)) * time.Millisecond
			}
			out[date] = d
		}
		return out, nil
	}
	if len(dates) == 0 {
		return map[string]DayTotal{}, nil
	}
	fields := make([]string, 0, 2*len(dates))
	for _, d := range dates {
		fields = append(fields, d, d+"#n")
	}
	vals, err := s.rdb.HMGet(ctx, keysFor(realm, user).days, fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis days: %w", err)
	}
	out := map[string]DayTotal{}
	for i, d := range dates {
		active, n := num(vals[2*i]), num(vals[2*i+1])
		if active > 0 || n > 0 {
			out[d] = DayTotal{Active: time.Duration(active) * time.Millisecond, Sessions: int(n)}
		}
	}
	return out, nil
}

// Trail implements Store.
func (s *RedisStore) Trail(ctx context.Context, realm, user, id string) ([]TrailEntry, error) {
	raw, err := s.rdb.HGet(ctx, keysFor(realm, user).trail, id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis trail: %w", err)
	}
	return decodeTrail(raw), nil
}

// Erase implements Store.
func (s *RedisStore) Erase(ctx context.Context, realm, user string) ([]string, error) {
	k := keysFor(realm, user)
	toks, err := s.rdb.HKeys(ctx, k.tok).Result()
	if err != nil {
		return nil, fmt.Errorf("redis erase: %w", err)
	}
	// Sessions that ended (idle, logout) left the token map, but their
	// token may still be bound to the user.
	recs, err := s.rdb.HVals(ctx, k.sess).Result()
	if err != nil {
		return nil, fmt.Errorf("redis erase: %w", err)
	}
	toks = append(toks, sessionTokens(recs)...)
	// One DEL for the user's keys: they share a slot, so it is atomic
	// on a cluster too.
	if err := s.rdb.Del(ctx, k.all()...).Err(); err != nil {
		return nil, fmt.Errorf("redis erase: %w", err)
	}
	pipe := s.rdb.Pipeline()
	pipe.ZRem(ctx, realmUsersKey(realm), user)
	pipe.ZRem(ctx, realmFlaggedKey(realm), user)
	for _, t := range toks {
		pipe.Del(ctx, tokenKey(t))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return toks, fmt.Errorf("redis erase: %w", err)
	}
	return toks, nil
}

// Settings implements Store.
func (s *RedisStore) Settings(ctx context.Context, realm string) (Settings, bool, error) {
	raw, err := s.rdb.Get(ctx, realmSettingsKey(realm)).Result()
	if errors.Is(err, redis.Nil) {
		return Settings{}, false, nil
	}
	if err != nil {
		return Settings{}, false, fmt.Errorf("redis settings: %w", err)
	}
	var st Settings
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return Settings{}, false, fmt.Errorf("redis settings: %w", err)
	}
	return st, true, nil
}

// SetSettings implements Store.
func (s *RedisStore) SetSettings(ctx context.Context, realm string, st Settings) error {
	b, _ := json.Marshal(st)
	if err := s.rdb.Set(ctx, realmSettingsKey(realm), b, 0).Err(); err != nil {
		return fmt.Errorf("redis settings: %w", err)
	}
	return nil
}

func (s *RedisStore) sessionsPage(ctx context.Context, k userKeys, req ListRequest) ([]*Session, int, error) {
	pipe := s.rdb.Pipeline()
	card := pipe.ZCard(ctx, k.hist)
	page := pipe.ZRevRange(ctx, k.hist, int64(req.Offset), int64(req.Offset+req.Limit-1))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, fmt.Errorf("redis list sessions: %w", err)
	}
	ids := page.Val()
	if len(ids) == 0 {
		return nil, int(card.Val()), nil
	}
	raws, err := s.rdb.HMGet(ctx, k.sess, ids...).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("redis list sessions: %w", err)
	}
	out := make([]*Session, 0, len(raws))
	for i, raw := range raws {
		if raw == nil {
			continue
		}
		if sess, err := decodeStoredSession(str(raw), ids[i], req.Realm, req.User); err == nil {
			normalizeIdle(sess, req.Now, req.Policy.Idle)
			out = append(out, sess)
		}
	}
	s.resolve(ctx, out, nil)
	return out, int(card.Val()), nil
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// sessionTokens returns the token hashes of stored session records.
func sessionTokens(recs []string) []string {
	var out []string
	for _, raw := range recs {
		if sess, err := decodeStoredSession(raw, "", "", ""); err == nil && sess.tokenHash != "" {
			out = append(out, sess.tokenHash)
		}
	}
	return out
}

// usersPage answers an unfiltered users list from the realm's index alone:
// O(page), whatever the number of users.
func (s *RedisStore) usersPage(ctx context.Context, req UsersRequest) ([]*UserSummary, int, error) {
	index := realmUsersKey(req.Realm)
	pipe := s.rdb.Pipeline()
	card := pipe.ZCard(ctx, index)
	page := pipe.ZRevRange(ctx, index, int64(req.Offset), int64(req.Offset+req.Limit-1))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, fmt.Errorf("redis users: %w", err)
	}
	sums, err := s.summaries(ctx, req.Realm, page.Val(), req.Now, req.Policy)
	if err != nil {
		return nil, 0, err
	}
	// The index orders by its own score; keep the page in that order.
	return sums, int(card.Val()), nil
}
