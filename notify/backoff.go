package notify

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backoff is the retry policy shared by the channels.
type backoff struct {
	initial, max time.Duration
}

// delay is the wait after the attempt-th failed attempt (1-based): a
// random time between half and all of initial·2^(attempt-1), at least
// retryAfter (the receiver's Retry-After, 0 if none), and never more than
// max.
func (b backoff) delay(attempt int, retryAfter time.Duration) time.Duration {
	d := b.max
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 62 && b.initial <= b.max>>(attempt-1) {
		d = b.initial << (attempt - 1)
	}
	if half := d / 2; half > 0 {
		d = half + rand.N(d-half+1)
	}
	d = max(d, retryAfter)
	return min(d, b.max)
}

// retryAfter parses a Retry-After header (seconds or an HTTP date) into a
// wait from now; 0 when absent or unparsable.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.ParseInt(h, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		if s > int64(365*24*time.Hour/time.Second) {
			s = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
