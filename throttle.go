package sessions

import (
	"sync"
	"sync/atomic"
	"time"
)

// errLogPeriod is how long store errors stay quiet in the log after one
// is reported.
const errLogPeriod = 10 * time.Second

// logThrottle rate-limits store error reports in the log.
type logThrottle struct{ until atomic.Int64 }

// trip reports whether this error should be logged.
func (b *logThrottle) trip() bool {
	now := time.Now().UnixNano()
	u := b.until.Load()
	return now >= u && b.until.CompareAndSwap(u, now+int64(errLogPeriod))
}

// auditLimiter remembers when an audit event was last emitted per key,
// bounded: past maxAuditKeys it starts over (an event may then repeat).
type auditLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const maxAuditKeys = 10000

// due reports whether key's event is due, and records it as emitted.
func (a *auditLimiter) due(key string, every time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if t, ok := a.last[key]; ok && now.Sub(t) < every {
		return false
	}
	if a.last == nil || len(a.last) >= maxAuditKeys {
		a.last = map[string]time.Time{}
	}
	a.last[key] = now
	return true
}

// budget allows n events per key per window (alerts per user).
type budget struct {
	n      int
	window time.Duration

	mu   sync.Mutex
	keys map[string]*budgetUse
}

type budgetUse struct {
	start time.Time
	used  int
}

// maxBudgetKeys bounds the keys a budget holds; past it, windows that
// ended are dropped, and if none has, the oldest-started one.
const maxBudgetKeys = 10000

func newBudget(n int, window time.Duration) *budget {
	return &budget{n: n, window: window, keys: map[string]*budgetUse{}}
}

// take reports whether key may have one more event now, and counts it.
func (b *budget) take(key string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.keys[key]
	if u == nil || now.Sub(u.start) >= b.window {
		if u == nil && len(b.keys) >= maxBudgetKeys {
			b.evict(now)
		}
		u = &budgetUse{start: now}
		b.keys[key] = u
	}
	if u.used >= b.n {
		return false
	}
	u.used++
	return true
}

func (b *budget) evict(now time.Time) {
	var oldest string
	for k, u := range b.keys {
		if now.Sub(u.start) >= b.window {
			delete(b.keys, k)
		} else if oldest == "" || u.start.Before(b.keys[oldest].start) {
			oldest = k
		}
	}
	if len(b.keys) >= maxBudgetKeys {
		delete(b.keys, oldest)
	}
}
