package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// The realm's users: summaries, the users list and its paging.

// User implements Store.
func (s *Store) User(ctx context.Context, realm, user string, now time.Time, p store.Policy) (*store.UserSummary, error) {
	list, err := s.summaries(ctx, realm, []string{user}, now, p)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, store.ErrNotFound
	}
	return list[0], nil
}

// summaries reads the summary of each user in one pipeline; users the
// store holds nothing of are left out.
func (s *Store) summaries(ctx context.Context, realm string, users []string, now time.Time, p store.Policy) ([]*store.UserSummary, error) {
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
	var out []*store.UserSummary
	for i, c := range cs {
		m := c.meta.Val()
		if len(m) < 5 || m[0] == nil {
			continue
		}
		sum := &store.UserSummary{
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
func (s *Store) Users(ctx context.Context, req store.UsersRequest) ([]*store.UserSummary, int, error) {
	if req.Prefix == "" && !req.Unviewed && !req.Active && req.Limit > 0 {
		return s.usersPage(ctx, req)
	}
	index := realmUsersKey(req.Realm)
	if req.Unviewed {
		index = realmFlaggedKey(req.Realm)
	}
	var matched []*store.UserSummary
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

// usersPage answers an unfiltered users list from the realm's index alone:
// O(page), whatever the number of users.
func (s *Store) usersPage(ctx context.Context, req store.UsersRequest) ([]*store.UserSummary, int, error) {
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

// filterUsers keeps the summaries that pass req's filters.
func filterUsers(sums []*store.UserSummary, req store.UsersRequest) []*store.UserSummary {
	var out []*store.UserSummary
	for _, s := range sums {
		if req.Unviewed && s.UnviewedViolations == 0 {
			continue
		}
		if req.Active && s.ActiveSessions == 0 {
			continue
		}
		out = append(out, s)
	}
	return out
}

// pageUsers sorts by last activity, newest first, and pages.
func pageUsers(all []*store.UserSummary, req store.UsersRequest) ([]*store.UserSummary, int, error) {
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].LastActivity.Equal(all[j].LastActivity) {
			return all[i].LastActivity.After(all[j].LastActivity)
		}
		return all[i].User < all[j].User
	})
	total := len(all)
	if req.Offset >= total {
		return nil, total, nil
	}
	all = all[req.Offset:]
	if req.Limit > 0 && len(all) > req.Limit {
		all = all[:req.Limit]
	}
	return all, total, nil
}
