package tracker

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// BenchmarkObserveKnownSession is the hot path: a request of a known
// session on an unchanged IP and device, answered from the cache.
func BenchmarkObserveKnownSession(b *testing.B) {
	tr := newTestTracker(b, NewMemoryStore())
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

func BenchmarkParseAgent(b *testing.B) {
	uas := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
		testUA,
	}
	ParseAgent(uas[0]) // build the parser outside the timing
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ParseAgent(uas[i%len(uas)])
	}
}

// BenchmarkSeenRedis opens one session per op on a real redis-server: the
// cost of a login or of a cache miss.
func BenchmarkSeenRedis(b *testing.B) {
	srv := redistest.Start(b)
	st := NewRedisStore(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	b.Cleanup(func() { _ = st.Close() })
	keys := testKeyring(b)
	ctx := context.Background()
	base := time.Now().UTC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now := base.Add(time.Duration(i) * time.Millisecond)
		th := keys.TokenHash("shop", fmt.Sprint("bench-token-", i))
		user := fmt.Sprint("user-", i%1000)
		res, err := st.Seen(ctx, SeenRequest{
			Realm: "shop", User: user, TokenHash: th, Now: now, Policy: suitePolicy,
			New: &Session{ID: keys.SessionID(th, now), StartedAt: now, LastSeen: now, IP: ip1, DeviceID: "dev-1",
				Agent: testAgent, Location: testLoc},
			Device: &Device{ID: "dev-1", FirstSeen: now, LastSeen: now, Agent: testAgent, LastIP: ip1},
		})
		if err != nil || res.Status != StatusOpened {
			b.Fatalf("Seen = %+v, %v", res, err)
		}
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
					e.vars = Vars{User: e.user(), Session: e.sessionID(), Device: e.deviceID(), Memo: &e.memo}
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
