package notify

import "time"

// State is where a delivery stands.
type State string

// The states. Pending is the only one that changes later.
const (
	// StatePending: queued, being attempted, or waiting for a retry.
	StatePending State = "pending"
	// StateDelivered: the receiver took it (webhook 2xx, SMTP accepted).
	StateDelivered State = "delivered"
	// StateFailed: a permanent error, attempts used up, not deliverable
	// (no valid recipient, channel not configured), or still pending when
	// Close gave up.
	StateFailed State = "failed"
	// StateDropped: the queue was full, or the notifier closed.
	StateDropped State = "dropped"
	// StateThrottled: the same realm, user and device had an alert within
	// the throttle window.
	StateThrottled State = "throttled"
)

// Outcome is the delivery record of one alert on one channel.
type Outcome struct {
	AlertID string  `json:"alert_id"`
	Realm   string  `json:"realm"`
	User    string  `json:"user"`
	Channel Channel `json:"channel"`
	State   State   `json:"state"`
	// Attempts counts the attempts made so far.
	Attempts int `json:"attempts"`
	// Status is the last HTTP status (webhook) or SMTP reply code
	// (e-mail), 0 when none was received.
	Status int `json:"status,omitempty"`
	// Error is the last attempt's error; it never holds a secret, nor a
	// URL's userinfo or query.
	Error string `json:"error,omitempty"`
	// Queued is when Send took the alert, Updated the last change, and
	// NextAttempt when a pending retry is due.
	Queued      time.Time `json:"queued"`
	Updated     time.Time `json:"updated"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// Stats are the notifier's counters since New. Delivered, Failed,
// Dropped, Throttled and Retries count deliveries (an alert sent to two
// channels counts twice); Pending counts alerts in the queue, being
// attempted or waiting for a retry.
type Stats struct {
	Pending   int    `json:"pending"`
	Delivered uint64 `json:"delivered"`
	Failed    uint64 `json:"failed"`
	Dropped   uint64 `json:"dropped"`
	Throttled uint64 `json:"throttled"`
	Retries   uint64 `json:"retries"`
}

// history keeps the latest outcomes in a ring, oldest overwritten first.
// Entries are pointers so that a pending delivery updates its record in
// place; the caller holds the notifier's lock.
type history struct {
	ring []*Outcome
	next int // where the next record goes
	full bool
}

func newHistory(n int) *history { return &history{ring: make([]*Outcome, n)} }

func (h *history) add(o *Outcome) {
	h.ring[h.next] = o
	h.next++
	if h.next == len(h.ring) {
		h.next, h.full = 0, true
	}
}

// find returns copies of the records of realm (and user, unless empty),
// newest first.
func (h *history) find(realm, user string) []Outcome {
	var out []Outcome
	n := h.next
	if h.full {
		n = len(h.ring)
	}
	for i := 1; i <= n; i++ {
		o := h.ring[(h.next-i+len(h.ring))%len(h.ring)]
		if o.Realm == realm && (user == "" || o.User == user) {
			out = append(out, *o)
		}
	}
	return out
}
