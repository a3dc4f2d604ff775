package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/alerttest"
)

// gate makes a receiver hold every request until released.
func gate(t *testing.T) (respond func(int, http.ResponseWriter, *http.Request), release func()) {
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-ch:
		case <-r.Context().Done():
		}
	}, release
}

func TestQueueBound(t *testing.T) {
	hold, release := gate(t)
	rc := newReceiver(t, hold)
	n := newNotifier(t, fastOptions(Options{
		Webhook: &Webhook{URL: rc.URL, Secret: testSecret}, QueueSize: 2, Workers: 1,
	}))
	a1 := Alert{ID: "q1", Realm: "r", User: "u1"}
	a2 := Alert{ID: "q2", Realm: "r", User: "u2"}
	a3 := Alert{ID: "q3", Realm: "r", User: "u3"}
	if !n.Send(a1) || !n.Send(a2) {
		t.Fatal("Send = false below the bound")
	}
	// The first is in flight (held), the second queued: both count.
	if n.Send(a3) {
		t.Fatal("Send = true beyond the bound")
	}
	if s := n.Stats(); s.Dropped != 1 || s.Pending != 2 {
		t.Fatalf("stats = %+v", s)
	}
	if o := outcome(t, n, a3, ChannelWebhook); o.State != StateDropped || o.Attempts != 0 || o.Error != "queue full" {
		t.Fatalf("outcome = %+v", o)
	}
	release()
	outcome(t, n, a1, ChannelWebhook)
	if o := outcome(t, n, a2, ChannelWebhook); o.State != StateDelivered {
		t.Fatalf("outcome = %+v", o)
	}
	if s := n.Stats(); s.Delivered != 2 || s.Pending != 0 {
		t.Fatalf("stats = %+v", s)
	}
	// Room again.
	if !n.Send(Alert{ID: "q4", Realm: "r", User: "u4"}) {
		t.Fatal("Send = false after the queue emptied")
	}
}

// clock is a settable clock for throttle windows.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestThrottle(t *testing.T) {
	// No time check: the notifier signs with its clock, which the test moves.
	rc := alerttest.StartReceiver(t, verifySignature(t, 0), nil)
	clk := &clock{now: time.Now()}
	n := newNotifier(t, fastOptions(Options{Webhook: &Webhook{URL: rc.URL, Secret: testSecret}, Now: clk.Now}))
	steps := []struct {
		realm, user, device string
		advance             time.Duration
		want                bool
	}{
		{"r", "alice", "d1", 0, true},
		{"r", "alice", "d1", 0, false},                // same key
		{"r", "alice", "d2", 0, true},                 // another device
		{"r", "bob", "d1", 0, true},                   // another user
		{"r2", "alice", "d1", 0, true},                // another realm
		{"r", "alice", "d1", 59 * time.Minute, false}, // still in the window
		{"r", "alice", "d1", 2 * time.Minute, true},   // window over
	}
	for i, s := range steps {
		clk.add(s.advance)
		if got := n.Send(Alert{ID: fmt.Sprint("t", i), Realm: s.realm, User: s.user, DeviceID: s.device}); got != s.want {
			t.Errorf("step %d (%s/%s/%s): Send = %v, want %v", i, s.realm, s.user, s.device, got, s.want)
		}
	}
	if st := n.Stats(); st.Throttled != 2 {
		t.Errorf("stats = %+v", st)
	}
	waitUntil(t, "5 deliveries", func() bool { return n.Stats().Delivered == 5 })
	o := n.Outcomes("r", "alice")
	if len(o) != 5 || o[0].AlertID != "t6" || o[1].AlertID != "t5" || o[1].State != StateThrottled || o[4].AlertID != "t0" {
		t.Errorf("outcomes of r/alice, newest first: %+v", o)
	}
	if all := n.Outcomes("r", ""); len(all) != 6 {
		t.Errorf("outcomes of r: %d, want 6", len(all))
	}
}

func TestThrottleDisabled(t *testing.T) {
	rc := newReceiver(t, nil)
	n := newNotifier(t, fastOptions(Options{Webhook: &Webhook{URL: rc.URL, Secret: testSecret}, ThrottleWindow: -1}))
	for i := range 3 {
		if !n.Send(Alert{ID: fmt.Sprint(i), Realm: "r", User: "u", DeviceID: "d"}) {
			t.Fatalf("Send %d = false", i)
		}
	}
}

func TestCloseDrains(t *testing.T) {
	hold, release := gate(t)
	rc := newReceiver(t, hold)
	before := runtime.NumGoroutine()
	n, err := New(fastOptions(Options{Webhook: &Webhook{URL: rc.URL, Secret: testSecret}, Workers: 2}))
	if err != nil {
		t.Fatal(err)
	}
	const alerts = 10
	for i := range alerts {
		if !n.Send(Alert{ID: fmt.Sprint("c", i), Realm: "r", User: fmt.Sprint("u", i)}) {
			t.Fatalf("Send %d = false", i)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- n.Close(context.Background()) }()
	waitUntil(t, "closed to new alerts", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.closed
	})
	if n.Send(Alert{ID: "late", Realm: "r", User: "late"}) {
		t.Error("Send after Close = true")
	}
	if s := n.Stats(); s.Delivered != 0 || s.Pending != alerts {
		t.Fatalf("before release: %+v", s)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s := n.Stats(); s.Delivered != alerts || s.Pending != 0 || s.Dropped != 1 {
		t.Fatalf("after Close: %+v", s)
	}
	if o := n.Outcomes("r", "late"); len(o) != 1 || o[0].State != StateDropped || o[0].Error != "notifier closed" {
		t.Errorf("late outcome: %+v", o)
	}
	goroutinesBack(t, before)
	if err := n.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseAbortsInFlight(t *testing.T) {
	hold, _ := gate(t) // never released: only the client's abort ends it
	rc := newReceiver(t, hold)
	before := runtime.NumGoroutine()
	n, err := New(fastOptions(Options{Webhook: &Webhook{URL: rc.URL, Secret: testSecret}, Workers: 1}))
	if err != nil {
		t.Fatal(err)
	}
	a := Alert{ID: "stuck", Realm: "r", User: "u"}
	b := Alert{ID: "queued", Realm: "r", User: "v"}
	n.Send(a)
	n.Send(b)
	waitUntil(t, "the first attempt reaches the receiver", func() bool { return len(rc.Requests()) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := n.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want deadline exceeded", err)
	}
	if o := outcome(t, n, a, ChannelWebhook); o.State != StateFailed || !strings.HasPrefix(o.Error, "notifier closed during the attempt") {
		t.Errorf("in flight: %+v", o)
	}
	if o := outcome(t, n, b, ChannelWebhook); o.State != StateFailed || o.Attempts != 0 || !strings.HasPrefix(o.Error, "notifier closed before delivery") {
		t.Errorf("queued: %+v", o)
	}
	if s := n.Stats(); s.Failed != 2 || s.Pending != 0 {
		t.Errorf("stats = %+v", s)
	}
	goroutinesBack(t, before)
}

func TestCloseAbandonsWaitingRetry(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	n := newNotifier(t, Options{
		Webhook:      &Webhook{URL: rc.URL, Secret: testSecret},
		RetryInitial: time.Hour, RetryMax: time.Hour,
	})
	a := Alert{ID: "waiting", Realm: "r", User: "u"}
	n.Send(a)
	waitUntil(t, "a retry is scheduled", func() bool { return n.Stats().Retries == 1 })
	o := n.Outcomes("r", "u")[0]
	if o.State != StatePending || o.Attempts != 1 || o.Status != 503 || o.NextAttempt.Sub(o.Updated) < 30*time.Minute {
		t.Fatalf("waiting: %+v", o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := n.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v", err)
	}
	o = n.Outcomes("r", "u")[0]
	if o.State != StateFailed || !strings.Contains(o.Error, "last error: webhook "+rc.URL+": answered 503") || !o.NextAttempt.IsZero() {
		t.Errorf("abandoned: %+v", o)
	}
}

func TestChannelChoice(t *testing.T) {
	rc := newReceiver(t, nil)
	n := newNotifier(t, fastOptions(Options{Webhook: &Webhook{URL: rc.URL, Secret: testSecret}, ThrottleWindow: -1}))
	tests := []struct {
		name     string
		channels []Channel
		sent     bool
		want     map[Channel]string // channel: error ("" = delivered)
	}{
		{"default: the webhook only, with a recipient but no mailer", nil, true, map[Channel]string{ChannelWebhook: ""}},
		{"webhook", []Channel{ChannelWebhook, ChannelWebhook}, true, map[Channel]string{ChannelWebhook: ""}},
		{"email without a mailer", []Channel{ChannelEmail}, false, map[Channel]string{ChannelEmail: "no mailer configured"}},
		{"both", []Channel{ChannelWebhook, ChannelEmail}, true, map[Channel]string{ChannelWebhook: "", ChannelEmail: "no mailer configured"}},
		{"unknown", []Channel{"sms"}, false, map[Channel]string{"sms": `unknown channel "sms"`}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Alert{ID: fmt.Sprint("ch", i), Realm: "r", User: "u", Recipient: "u@example.com", Channels: tt.channels}
			if got := n.Send(a); got != tt.sent {
				t.Errorf("Send = %v, want %v", got, tt.sent)
			}
			for ch, wantErr := range tt.want {
				o := outcome(t, n, a, ch)
				if wantErr == "" && o.State != StateDelivered || wantErr != "" && (o.State != StateFailed || o.Error != wantErr) {
					t.Errorf("%s: %+v", ch, o)
				}
			}
			var count int
			for _, o := range n.Outcomes("r", "u") {
				if o.AlertID == a.ID {
					count++
				}
			}
			if count != len(tt.want) {
				t.Errorf("%d outcomes, want %d", count, len(tt.want))
			}
		})
	}
}

func TestSendDoesNotShareCallerSlices(t *testing.T) {
	hold, release := gate(t)
	rc := newReceiver(t, hold)
	n := newNotifier(t, fastOptions(Options{Webhook: &Webhook{URL: rc.URL, Secret: testSecret}, Workers: 1}))
	signals := []string{"new_country"}
	n.Send(Alert{ID: "first", Realm: "r", User: "a"})
	n.Send(Alert{ID: "mine", Realm: "r", User: "b", Signals: signals})
	signals[0] = "changed" // while "mine" is still queued
	release()
	delivered := rc.WaitDelivered(t, 2, 10*time.Second)
	if got := decodeAlert(t, delivered[1].Body).Signals; len(got) != 1 || got[0] != "new_country" {
		t.Errorf("signals = %v", got)
	}
}

func TestNewErrors(t *testing.T) {
	w := &Webhook{URL: "https://example.com/hook", Secret: testSecret}
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no channel", Options{}, "no channel configured"},
		{"negative queue", Options{Webhook: w, QueueSize: -1}, "queue size: negative"},
		{"negative workers", Options{Webhook: w, Workers: -1}, "workers: negative"},
		{"max under initial", Options{Webhook: w, RetryInitial: time.Minute, RetryMax: time.Second}, "want 0 < initial <= max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	h := newHistory(3)
	for i, u := range []string{"a", "b", "a", "a", "c"} {
		h.add(&Outcome{AlertID: fmt.Sprint(i), Realm: "r", User: u})
	}
	h.add(&Outcome{AlertID: "x", Realm: "other", User: "a"})
	ids := func(os []Outcome) string {
		var s []string
		for _, o := range os {
			s = append(s, o.AlertID)
		}
		return strings.Join(s, ",")
	}
	if got := ids(h.find("r", "")); got != "4,3" {
		t.Errorf("realm r = %s, want 4,3 (2 overwritten)", got)
	}
	if got := ids(h.find("r", "a")); got != "3" {
		t.Errorf("r/a = %s", got)
	}
	if got := ids(h.find("other", "")); got != "x" {
		t.Errorf("other = %s", got)
	}
	if got := ids(newHistory(2).find("r", "")); got != "" {
		t.Errorf("empty = %s", got)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := backoff{initial: time.Second, max: 30 * time.Second}
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{"first", 1, 0, 500 * time.Millisecond, time.Second},
		{"second", 2, 0, time.Second, 2 * time.Second},
		{"third", 3, 0, 2 * time.Second, 4 * time.Second},
		{"capped", 10, 0, 15 * time.Second, 30 * time.Second},
		{"huge attempt", 1000, 0, 15 * time.Second, 30 * time.Second},
		{"retry-after longer", 1, 10 * time.Second, 10 * time.Second, 10 * time.Second},
		{"retry-after shorter", 3, time.Second, 2 * time.Second, 4 * time.Second},
		{"retry-after beyond the cap", 1, time.Hour, 30 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 50 {
				if d := b.delay(tt.attempt, tt.retryAfter); d < tt.lo || d > tt.hi {
					t.Fatalf("delay = %s, want in [%s, %s]", d, tt.lo, tt.hi)
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 12, 2, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{" 5 ", 5 * time.Second},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"99999999999999", 365 * 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.h, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tt.h, got, tt.want)
		}
	}
}

func TestThrottleSweep(t *testing.T) {
	th := newThrottle(time.Hour)
	t0 := time.Now()
	th.allow(throttleKey{"r", "a", ""}, t0)
	th.allow(throttleKey{"r", "b", ""}, t0.Add(30*time.Minute))
	th.allow(throttleKey{"r", "c", ""}, t0.Add(61*time.Minute)) // sweeps a
	if _, ok := th.last[throttleKey{"r", "a", ""}]; ok || len(th.last) != 2 {
		t.Errorf("after sweep: %v", th.last)
	}
}

func TestInvalidAlertID(t *testing.T) {
	rc := newReceiver(t, nil)
	n := newNotifier(t, fastOptions(Options{Webhook: &Webhook{URL: rc.URL, Secret: testSecret}}))
	for _, id := range []string{"a b", "x\r\nSessions-Event: evil", "<id@host>", strings.Repeat("a", 129)} {
		a := Alert{ID: id, Realm: "r", User: "u"}
		if n.Send(a) {
			t.Errorf("Send(id %q) = true", id)
		}
		if o := outcome(t, n, a, ChannelWebhook); o.State != StateFailed || !strings.HasPrefix(o.Error, "alert id: ") {
			t.Errorf("id %q: %+v", id, o)
		}
	}
	if hits := len(rc.Requests()); hits != 0 {
		t.Errorf("%d requests", hits)
	}
	if n.Stats().Throttled != 0 {
		t.Error("an undeliverable alert used the throttle window")
	}
}
