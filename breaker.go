package sessions

import (
	"sync/atomic"
	"time"
)

// breakerPeriod is how long store errors stay quiet in the log after one
// is reported.
const breakerPeriod = 10 * time.Second

// breaker rate-limits store error reports.
type breaker struct{ until atomic.Int64 }

// trip reports whether this error should be logged.
func (b *breaker) trip() bool {
	now := time.Now().UnixNano()
	u := b.until.Load()
	return now >= u && b.until.CompareAndSwap(u, now+int64(breakerPeriod))
}
