package redistest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ValueText is everything key holds, as text, whatever its type: what a
// test searches for data that must not be there (a raw token, a user id).
func ValueText(ctx context.Context, rdb redis.UniversalClient, key string) (string, error) {
	typ, err := rdb.Type(ctx, key).Result()
	if err != nil {
		return "", err
	}
	var parts []string
	switch typ {
	case "none":
	case "string":
		v, err := rdb.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return "", err
		}
		parts = append(parts, v)
	case "hash":
		m, err := rdb.HGetAll(ctx, key).Result()
		if err != nil {
			return "", err
		}
		for f, v := range m {
			parts = append(parts, f, v)
		}
	case "zset":
		m, err := rdb.ZRange(ctx, key, 0, -1).Result()
		if err != nil {
			return "", err
		}
		parts = append(parts, m...)
	case "set":
		m, err := rdb.SMembers(ctx, key).Result()
		if err != nil {
			return "", err
		}
		parts = append(parts, m...)
	case "list":
		m, err := rdb.LRange(ctx, key, 0, -1).Result()
		if err != nil {
			return "", err
		}
		parts = append(parts, m...)
	case "stream":
		msgs, err := rdb.XRange(ctx, key, "-", "+").Result()
		if err != nil {
			return "", err
		}
		for _, m := range msgs {
			fields := make([]string, 0, len(m.Values))
			for f, v := range m.Values {
				fields = append(fields, f+"="+fmt.Sprint(v))
			}
			sort.Strings(fields)
			parts = append(parts, m.ID+" "+strings.Join(fields, " "))
		}
	default:
		return "", fmt.Errorf("key %q: unexpected type %q", key, typ)
	}
	return strings.Join(parts, "\n"), nil
}

// WaitBlocked waits until at least n clients of the server rdb talks to
// are blocked in command (lower case, such as "xread"): a reader that is
// listening for news. It fails the test after 10 s.
func WaitBlocked(tb testing.TB, rdb *redis.Client, command string, n int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := rdb.ClientList(context.Background()).Result()
		if err != nil {
			tb.Fatalf("CLIENT LIST: %v", err)
		}
		got := 0
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(" "+line+" ", " cmd="+command+" ") && strings.Contains(line, " flags=b") {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d clients blocked in %s after 10 s, want %d:\n%s", got, command, n, list)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
