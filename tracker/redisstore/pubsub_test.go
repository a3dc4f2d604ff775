package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// heard collects what one subscriber is told.
type heard struct {
	mu      sync.Mutex
	realms  []string
	resyncs int
}

func (h *heard) fn(inv store.Invalidation) {
	h.mu.Lock()
	h.realms = append(h.realms, inv.Realm)
	h.mu.Unlock()
}
func (h *heard) resync() { h.mu.Lock(); h.resyncs++; h.mu.Unlock() }

func (h *heard) snapshot() ([]string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.realms...), h.resyncs
}

func (h *heard) wait(t *testing.T, what string, cond func(realms []string, resyncs int) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, n := h.snapshot()
		if cond(r, n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s (heard %v, %d resyncs)", what, r, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func count(realms []string, realm string) int {
	n := 0
	for _, r := range realms {
		if r == realm {
			n++
		}
	}
	return n
}

// killReaders cuts the connections of the store's blocked log readers.
func killReaders(t *testing.T, admin *redis.Client) {
	t.Helper()
	list, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " cmd=xread ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				if err := admin.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err(); err == nil {
					killed++
				}
			}
		}
	}
	if killed == 0 {
		t.Fatalf("no log reader to cut:\n%s", list)
	}
}

// The invalidation log: a subscriber replays it, reads on after its
// connection was cut without losing or repeating anything and without a
// resync, and resyncs only when the log lost entries it had not read (the
// cap trimmed them, or Redis came back empty).
func TestInvalidationLog(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	ctx := context.Background()
	st := New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	t.Cleanup(func() { _ = st.Close() })
	pub := func(realm string) {
		t.Helper()
		if err := st.Publish(ctx, store.Invalidation{Realm: realm}); err != nil {
			t.Fatal(err)
		}
	}
	pub("before")

	var h heard
	stop := st.Subscribe(h.fn, h.resync)
	defer stop()
	h.wait(t, "the replay", func(r []string, _ int) bool { return count(r, "before") == 1 })
	redistest.WaitBlocked(t, admin, "xread", 1)

	t.Run("catch up after a cut", func(t *testing.T) {
		killReaders(t, admin)
		for i := range 5 {
			pub(fmt.Sprint("during-", i))
		}
		h.wait(t, "everything published during the cut", func(r []string, _ int) bool { return count(r, "during-4") == 1 })
		r, n := h.snapshot()
		for i := range 5 {
			if c := count(r, fmt.Sprint("during-", i)); c != 1 {
				t.Errorf("during-%d heard %d times, want once", i, c)
			}
		}
		if n != 0 || count(r, "before") != 1 {
			t.Errorf("after a cut the log had not lost: %d resyncs (want 0), before heard %d times", n, count(r, "before"))
		}
	})

	t.Run("resync when the log was trimmed", func(t *testing.T) {
		redistest.WaitBlocked(t, admin, "xread", 1)
		st.capForTest = 3
		defer func() { st.capForTest = 0 }()
		killReaders(t, admin)
		for i := range 20 {
			pub(fmt.Sprint("trimmed-", i))
		}
		h.wait(t, "a resync", func(_ []string, n int) bool { return n == 1 })
		h.wait(t, "the newest entry", func(r []string, _ int) bool { return count(r, "trimmed-19") == 1 })
	})

	t.Run("resync when Redis came back empty", func(t *testing.T) {
		redistest.WaitBlocked(t, admin, "xread", 1)
		_, before := h.snapshot()
		killReaders(t, admin)
		if err := admin.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		h.wait(t, "a resync", func(_ []string, n int) bool { return n == before+1 })
		pub("after-flush")
		h.wait(t, "news after the flush", func(r []string, _ int) bool { return count(r, "after-flush") == 1 })
	})

	t.Run("log bounded and expiring", func(t *testing.T) {
		n, err := admin.XLen(ctx, InvalidationChannel).Result()
		if err != nil || n > logCap+200 {
			t.Errorf("XLEN = %d, %v", n, err)
		}
		if ttl, err := admin.PTTL(ctx, InvalidationChannel).Result(); err != nil || ttl <= 0 || ttl > logTTL {
			t.Errorf("PTTL = %v, %v; want in (0, %v]", ttl, err, logTTL)
		}
	})

	t.Run("unsubscribed hears nothing more", func(t *testing.T) {
		stop()
		r0, _ := h.snapshot()
		var other heard
		stop2 := st.Subscribe(other.fn, nil)
		defer stop2()
		pub("late")
		other.wait(t, "another subscriber hearing it", func(r []string, _ int) bool { return count(r, "late") == 1 })
		if r, _ := h.snapshot(); len(r) != len(r0) {
			t.Errorf("an unsubscribed reader heard %v", r[len(r0):])
		}
	})
}
