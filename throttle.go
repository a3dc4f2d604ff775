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
