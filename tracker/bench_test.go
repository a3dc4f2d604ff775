package tracker

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// BenchmarkObserveKnownSession is the hot path: a request of a known
// session on an unchanged IP and device, answered from the cache.
func BenchmarkObserveKnownSession(b *testing.B) {
	tr := newTestTracker(b, redisstore.NewMemory())
	const sessions = 10000
	reqs := make([]Request, sessions)
	ctx := context.Background()
	for i := range reqs {
		reqs[i] = Request{Realm: "shop", Token: fmt.Sprintf("session-token-%08d", i), User: fmt.Sprint("user-", i%2000),
			IP: ip1, UserAgent: testUA, DeviceID: fmt.Sprint("dev-", i)}
		if res, err := tr.Observe(ctx, reqs[i]); err != nil || !res.New {
			b.Fatalf("opening session %d: %+v, %v", i, res, err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := tr.Observe(ctx, reqs[i%sessions])
		if err != nil || res.New || res.Refused {
			b.Fatalf("Observe = %+v, %v", res, err)
		}
	}
}

func BenchmarkTokenHash(b *testing.B) {
	k := testKeyring(b)
	token := "0123456789abcdef0123456789abcdef"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = k.TokenHash("shop", token)
	}
}

// benchStores are the two stores, each running the same Lua scripts.
func benchStores(b *testing.B) map[string]store.Store {
	srv := redistest.Start(b)
	rs := redisstore.New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	ms := redisstore.NewMemory()
	b.Cleanup(func() { _ = rs.Close(); _ = ms.Close() })
	return map[string]store.Store{"redis": rs, "memory": ms}
}

func benchSeen(keys *Keyring, i int, now time.Time) store.SeenRequest {
	th := keys.TokenHash(TokenScope, fmt.Sprint("bench-token-", i))
	return store.SeenRequest{
		Realm: "shop", User: fmt.Sprint("user-", i%1000), TokenHash: th, Now: now, Policy: suitePolicy,
		New: &store.Session{ID: keys.SessionID(th, now), StartedAt: now, LastSeen: now, IP: ip1, DeviceID: "dev-1",
			Agent: testAgent, Location: testLoc},
		Device: &store.Device{ID: "dev-1", FirstSeen: now, LastSeen: now, Agent: testAgent, LastIP: ip1},
	}
}

// BenchmarkStoreOpen opens one session per op: the cost of a login or of a
// cache miss, on Redis (a real redis-server on loopback) and on the
// embedded store.
func BenchmarkStoreOpen(b *testing.B) {
	for name, st := range benchStores(b) {
		b.Run("store="+name, func(b *testing.B) {
			keys := testKeyring(b)
			ctx := context.Background()
			base := time.Now().UTC()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				res, err := st.Seen(ctx, benchSeen(keys, i, base.Add(time.Duration(i)*time.Millisecond)))
				if err != nil || res.Status != store.StatusOpened {
					b.Fatalf("Seen = %+v, %v", res, err)
				}
				i++
			}
		})
	}
}

// BenchmarkStoreRefresh refreshes last activity of open sessions, in
// batches of 64 as the tracker flushes them: ns/op is per session.
func BenchmarkStoreRefresh(b *testing.B) {
	for name, st := range benchStores(b) {
		b.Run("store="+name, func(b *testing.B) {
			keys := testKeyring(b)
			ctx := context.Background()
			base := time.Now().UTC()
			const n = 1024
			ids := make([]string, n)
			for i := range ids {
				res, err := st.Seen(ctx, benchSeen(keys, i, base))
				if err != nil || res.Status != store.StatusOpened {
					b.Fatalf("Seen = %+v, %v", res, err)
				}
				ids[i] = res.SessionID
			}
			b.ReportAllocs()
			i := 0
			batch := make([]store.Touch, 0, 64)
			for b.Loop() {
				now := base.Add(time.Duration(i/n+1) * suitePolicy.Refresh)
				batch = append(batch, store.Touch{Realm: "shop", User: fmt.Sprint("user-", i%n%1000), SessionID: ids[i%n], DeviceID: "dev-1", Now: now, Policy: suitePolicy})
				if len(batch) == cap(batch) {
					for _, r := range st.Touch(ctx, batch) {
						if r.Err != nil || r.Ended {
							b.Fatalf("Touch = %+v", r)
						}
					}
					batch = batch[:0]
				}
				i++
			}
		})
	}
}

// BenchmarkMemoryStoreHeap: Go heap bytes per active session in the
// embedded store (10,000 sessions of 1,000 users).
func BenchmarkMemoryStoreHeap(b *testing.B) {
	keys := testKeyring(b)
	ctx := context.Background()
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ms := redisstore.NewMemory()
		base := time.Now().UTC()
		const n = 10000
		for i := range n {
			if _, err := ms.Seen(ctx, benchSeen(keys, i, base)); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/session")
		_ = ms.Close()
	}
}

// BenchmarkCacheHeap measures what the local cache costs the garbage
// collector: Go heap bytes and heap objects per cached session (mark work
// grows with the objects and pointers), and the time of one full
// collection with the cache filled (gc-ms, the baseline heap included).
// Two sessions per user, as on a shop where some log in twice.
func BenchmarkCacheHeap(b *testing.B) {
	k := testKeyring(b)
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			var perEntry, objects, gcMS float64
			for b.Loop() {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				c := newCache(n)
				for i := range n {
					key := k.TokenKey("shop", fmt.Sprintf("session-token-%08d", i))
					user, sid, dev := fmt.Sprint("user-", i/2), fmt.Sprintf("s%015d", i), fmt.Sprintf("d%019d", i)
					e := &entry{key: key, realm: "shop", tz: time.UTC, expires: time.Now().Add(time.Hour).UnixNano()}
					e.setIDs(user, sid, dev, fmt.Sprint("203.0.113.", i%250)) // an IP string per request, as parsed
					e.vars = NewVars(e.user(), e.sessionID(), e.deviceID(), "")
					c.put(e)
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				start := time.Now()
				const rounds = 5
				for range rounds {
					runtime.GC()
				}
				gcMS = float64(time.Since(start).Microseconds()) / 1000 / rounds
				perEntry = float64(m1.HeapAlloc-m0.HeapAlloc) / float64(n)
				objects = float64(m1.HeapObjects-m0.HeapObjects) / float64(n)
				runtime.KeepAlive(c)
			}
			b.ReportMetric(perEntry, "heap-B/entry")
			b.ReportMetric(objects, "objects/entry")
			b.ReportMetric(gcMS, "gc-ms")
		})
	}
}
