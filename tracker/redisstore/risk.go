package redisstore

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// Risk findings: recorded by risk.lua, listed newest first, and joined
// onto the sessions and devices they were raised on.

var (
	//go:embed lua/risk.lua
	luaRisk    string
	scriptRisk = redis.NewScript(luaRisk)
	//go:embed lua/report.lua
	luaReport    string
	scriptReport = redis.NewScript(luaPrelude + luaReport)
)

// Report implements Store.
func (s *Store) Report(ctx context.Context, realm, user string, v restrict.Violation, p store.Policy) (*restrict.Violation, error) {
	raw, err := scriptReport.Run(ctx, s.rdb, keysFor(realm, user).all(), ms(v.Time), msArg(p.Retention), v.IP, v.Location, v.Device, v.Session, v.Action).Text()
	if err != nil {
		return nil, fmt.Errorf("redis report: %w", err)
	}
	out, err := decodeViolation(raw, user)
	if err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	pipe.ZAdd(ctx, realmFlaggedKey(realm), redis.Z{Score: float64(ms(v.Time)), Member: user})
	pipe.PExpire(ctx, realmFlaggedKey(realm), p.Retention)
	_, _ = pipe.Exec(ctx)
	return out, nil
}

// Claim implements Store.
func (s *Store) Claim(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, onceKey(id), 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis claim: %w", err)
	}
	return ok, nil
}

// Release implements Store.
func (s *Store) Release(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, onceKey(id)).Err(); err != nil {
		return fmt.Errorf("redis release: %w", err)
	}
	return nil
}

// Risk implements Store.
func (s *Store) Risk(ctx context.Context, realm, user, id string) (*store.RiskRecord, error) {
	raw, err := s.rdb.HGet(ctx, keysFor(realm, user).risk, id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis risk: %w", err)
	}
	var rec store.RiskRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("redis risk: %w", err)
	}
	return &rec, nil
}

// Claimed implements Store.
func (s *Store) Claimed(ctx context.Context, id string) (bool, error) {
	n, err := s.rdb.Exists(ctx, onceKey(id)).Result()
	if err != nil {
		return false, fmt.Errorf("redis claimed: %w", err)
	}
	return n == 1, nil
}

// RecordRisk implements Store.
func (s *Store) RecordRisk(ctx context.Context, realm, user string, rec store.RiskRecord, p store.Policy) (bool, error) {
	k := keysFor(realm, user)
	b, err := json.Marshal(rec)
	if err != nil {
		return false, fmt.Errorf("redis record risk: %w", err)
	}
	n, err := scriptRisk.Run(ctx, s.rdb, k.riskKeys(), ms(rec.At), msArg(p.Retention), rec.ID, b,
		rec.SessionID, rec.DeviceID, rec.Signal, store.RiskCap).Int()
	if err != nil {
		return false, fmt.Errorf("redis record risk: %w", err)
	}
	return n == 1, nil
}

// Risks implements Store.
func (s *Store) Risks(ctx context.Context, realm, user string, offset, limit int) ([]*store.RiskRecord, int, error) {
	k := keysFor(realm, user)
	pipe := s.rdb.Pipeline()
	card := pipe.ZCard(ctx, k.riskz)
	page := pipe.ZRevRange(ctx, k.riskz, int64(offset), int64(offset+limit-1))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, fmt.Errorf("redis risks: %w", err)
	}
	ids := page.Val()
	if len(ids) == 0 {
		return nil, int(card.Val()), nil
	}
	raws, err := s.rdb.HMGet(ctx, k.risk, ids...).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("redis risks: %w", err)
	}
	out := make([]*store.RiskRecord, 0, len(raws))
	for _, raw := range raws {
		var rec store.RiskRecord
		if raw != nil && json.Unmarshal([]byte(str(raw)), &rec) == nil {
			out = append(out, &rec)
		}
	}
	return out, int(card.Val()), nil
}

// riskSignals reads the signals raised on sessions and devices (fields
// "s:"+id and "d:"+id), keyed by field.
func (s *Store) riskSignals(ctx context.Context, k userKeys, fields []string) (map[string][]string, error) {
	if len(fields) == 0 {
		return nil, nil
	}
	vals, err := s.rdb.HMGet(ctx, k.rsig, fields...).Result()
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for i, v := range vals {
		if v != nil && str(v) != "" {
			out[fields[i]] = strings.Split(str(v), ",")
		}
	}
	return out, nil
}

// withSessionRisk sets each session's Risk.
func (s *Store) withSessionRisk(ctx context.Context, k userKeys, list []*store.Session) error {
	fields := make([]string, len(list))
	for i, x := range list {
		fields[i] = "s:" + x.ID
	}
	sig, err := s.riskSignals(ctx, k, fields)
	for _, x := range list {
		x.Risk = sig["s:"+x.ID]
	}
	return err
}

// withDeviceRisk sets each device's Risk.
func (s *Store) withDeviceRisk(ctx context.Context, k userKeys, list []*store.Device) error {
	fields := make([]string, len(list))
	for i, x := range list {
		fields[i] = "d:" + x.ID
	}
	sig, err := s.riskSignals(ctx, k, fields)
	for _, x := range list {
		x.Risk = sig["d:"+x.ID]
	}
	return err
}
