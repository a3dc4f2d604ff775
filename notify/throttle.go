package notify

import "time"

// throttleKeys bounds the throttle's memory. When that many keys are
// within their window, new keys are let through without being
// remembered: under such a flood, alerts beat silence.
const throttleKeys = 100_000

type throttleKey struct{ realm, user, device string }

// throttle lets at most one alert per key through per window. The caller
// holds the notifier's lock.
type throttle struct {
	window time.Duration // <= 0: everything passes
	last   map[throttleKey]time.Time
	swept  time.Time
}

func newThrottle(window time.Duration) *throttle {
	return &throttle{window: window, last: make(map[throttleKey]time.Time)}
}

// allow reports whether an alert for k may go at now, and if so starts
// k's window.
func (t *throttle) allow(k throttleKey, now time.Time) bool {
	if t.window <= 0 {
		return true
	}
	if at, ok := t.last[k]; ok && now.Sub(at) < t.window && !now.Before(at) {
		return false
	}
	if now.Sub(t.swept) >= t.window/4 || len(t.last) >= throttleKeys {
		t.sweep(now)
	}
	if len(t.last) < throttleKeys {
		t.last[k] = now
	}
	return true
}

// sweep forgets the keys whose window has ended.
func (t *throttle) sweep(now time.Time) {
	for k, at := range t.last {
		if now.Sub(at) >= t.window || now.Before(at) {
			delete(t.last, k)
		}
	}
	t.swept = now
}
