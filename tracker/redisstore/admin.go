package redisstore

// The Redis store's reads and changes for admins and users' own pages
// (AdminStore).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/restrict"
)

// EndSession implements Store.
func (s *Store) EndSession(ctx context.Context, realm, user, id, reason string, now time.Time, p store.Policy) (*store.Session, error) {
	closed, err := s.end(ctx, realm, user, "sid", id, reason, now, p)
	if err != nil {
		return nil, err
	}
	if len(closed) > 0 {
		return closed[0], nil
	}
	return s.session(ctx, realm, user, id, now, p)
}

func (s *Store) session(ctx context.Context, realm, user, id string, now time.Time, p store.Policy) (*store.Session, error) {
	raw, err := s.rdb.HGet(ctx, keysFor(realm, user).sess, id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis get session: %w", err)
	}
	rec, err := decodeStoredSession(raw, id, realm, user)
	if err != nil {
		return nil, err
	}
	s.resolve(ctx, []*sessionRecord{rec}, nil)
	normalizeIdle(rec.Session, now, p.Idle)
	return rec.Session, nil
}

// EndAll implements Store.
func (s *Store) EndAll(ctx context.Context, realm, user, except, reason string, now time.Time, p store.Policy) ([]*store.Session, error) {
	return s.end(ctx, realm, user, "all", except, reason, now, p)
}

// Sessions implements Store.
func (s *Store) Sessions(ctx context.Context, req store.ListRequest) ([]*store.Session, int, error) {
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
	var all []*sessionRecord
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
	out := sessionsOf(page)
	if err := s.withSessionRisk(ctx, k, out); err != nil {
		return nil, 0, fmt.Errorf("redis list sessions: %w", err)
	}
	return out, total, nil
}

// Devices implements Store.
func (s *Store) Devices(ctx context.Context, realm, user string) ([]*store.Device, error) {
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
	var recs []*deviceRecord
	out := make([]*store.Device, 0, len(raws))
	for i, raw := range raws {
		if raw == nil {
			continue
		}
		if d, err := decodeStoredDevice(str(raw), ids[i], user); err == nil {
			recs = append(recs, d)
			out = append(out, d.Device)
		}
	}
	s.resolve(ctx, nil, recs)
	if err := s.withDeviceRisk(ctx, k, out); err != nil {
		return nil, fmt.Errorf("redis list devices: %w", err)
	}
	return out, nil
}

// selectSessions normalizes idle sessions, filters by state and pages,
// newest first, returning the page and the number matched. Shared by both
// stores so they answer alike.
func selectSessions(all []*sessionRecord, req store.ListRequest) ([]*sessionRecord, int) {
	var out []*sessionRecord
	for _, sess := range all {
		normalizeIdle(sess.Session, req.Now, req.Policy.Idle)
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

// SetDeviceBlocked implements Store.
func (s *Store) SetDeviceBlocked(ctx context.Context, realm, user, device string, blocked bool, now time.Time, p store.Policy) ([]*store.Session, error) {
	flag := 0
	if blocked {
		flag = 1
	}
	vals, err := scriptDevice.Run(ctx, s.rdb, keysFor(realm, user).all(), ms(now), device, flag, msArg(p.Retention)).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis block device: %w", err)
	}
	if len(vals) == 0 || str(vals[0]) == "missing" {
		return nil, store.ErrNotFound
	}
	var recs []*sessionRecord
	for _, v := range vals[1:] {
		if rec, err := decodeStoredSession(str(v), "", realm, user); err == nil {
			recs = append(recs, rec)
		}
	}
	s.resolve(ctx, recs, nil)
	return sessionsOf(recs), nil
}

// Violations implements Store.
func (s *Store) Violations(ctx context.Context, realm, user string, offset, limit int) ([]*restrict.Violation, int, error) {
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
func (s *Store) MarkViewed(ctx context.Context, realm, user, id string) (int, error) {
	vals, err := scriptViewed.Run(ctx, s.rdb, keysFor(realm, user).all(), id).Slice()
	if err != nil {
		return 0, fmt.Errorf("redis mark viewed: %w", err)
	}
	if len(vals) < 3 {
		return 0, store.ErrNotFound
	}
	left := int(num(vals[2]))
	if left == 0 {
		s.rdb.ZRem(ctx, realmFlaggedKey(realm), user)
	}
	return left, nil
}

// SetExempt implements Store.
func (s *Store) SetExempt(ctx context.Context, realm, user string, exempt bool, p store.Policy) error {
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
func (s *Store) SetLimits(ctx context.Context, realm, user string, l restrict.Limits, p store.Policy) error {
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

// Days implements Store.
func (s *Store) Days(ctx context.Context, realm, user string, dates []string) (map[string]store.DayTotal, error) {
	if dates == nil {
		all, err := s.rdb.HGetAll(ctx, keysFor(realm, user).days).Result()
		if err != nil {
			return nil, fmt.Errorf("redis days: %w", err)
		}
		out := map[string]store.DayTotal{}
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
		return map[string]store.DayTotal{}, nil
	}
	fields := make([]string, 0, 2*len(dates))
	for _, d := range dates {
		fields = append(fields, d, d+"#n")
	}
	vals, err := s.rdb.HMGet(ctx, keysFor(realm, user).days, fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis days: %w", err)
	}
	out := map[string]store.DayTotal{}
	for i, d := range dates {
		active, n := num(vals[2*i]), num(vals[2*i+1])
		if active > 0 || n > 0 {
			out[d] = store.DayTotal{Active: time.Duration(active) * time.Millisecond, Sessions: int(n)}
		}
	}
	return out, nil
}

// Trail implements Store.
func (s *Store) Trail(ctx context.Context, realm, user, id string) ([]store.TrailEntry, error) {
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
func (s *Store) Erase(ctx context.Context, realm, user string) ([]string, error) {
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
	if err := s.rdb.Del(ctx, append(k.all(), k.riskKeys()...)...).Err(); err != nil {
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

// SetSettings implements Store.
func (s *Store) SetSettings(ctx context.Context, realm string, st store.Settings) error {
	b, _ := json.Marshal(st)
	if err := s.rdb.Set(ctx, realmSettingsKey(realm), b, 0).Err(); err != nil {
		return fmt.Errorf("redis settings: %w", err)
	}
	return nil
}

func (s *Store) sessionsPage(ctx context.Context, k userKeys, req store.ListRequest) ([]*store.Session, int, error) {
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
	recs := make([]*sessionRecord, 0, len(raws))
	for i, raw := range raws {
		if raw == nil {
			continue
		}
		if rec, err := decodeStoredSession(str(raw), ids[i], req.Realm, req.User); err == nil {
			normalizeIdle(rec.Session, req.Now, req.Policy.Idle)
			recs = append(recs, rec)
		}
	}
	s.resolve(ctx, recs, nil)
	out := sessionsOf(recs)
	if err := s.withSessionRisk(ctx, k, out); err != nil {
		return nil, 0, fmt.Errorf("redis list sessions: %w", err)
	}
	return out, int(card.Val()), nil
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

// SessionTokens implements Store: the user's token index, filtered.
func (s *Store) SessionTokens(ctx context.Context, realm, user string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	all, err := s.rdb.HGetAll(ctx, keysFor(realm, user).tok).Result()
	if err != nil {
		return nil, fmt.Errorf("redis session tokens: %w", err)
	}
	var out []string
	for th, id := range all {
		if want[id] {
			out = append(out, th)
		}
	}
	sort.Strings(out)
	return out, nil
}
