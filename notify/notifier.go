package notify

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Options configure a Notifier. Zero values take the defaults given.
type Options struct {
	// Webhook and Mailer are the channels; at least one is required.
	Webhook *Webhook
	Mailer  *Mailer

	// QueueSize bounds the alerts held (queued, being attempted or waiting
	// for a retry); when full, Send drops the new alert. Default: 1000.
	QueueSize int
	// Workers is the number of deliveries attempted at once. Default: 2.
	Workers int
	// MaxAttempts per delivery, the first included. Default: 6.
	MaxAttempts int
	// RetryInitial is the backoff after the first failed attempt, doubled
	// after each further one with jitter (a random time between half and
	// all of it), never over RetryMax, which also caps how long a
	// receiver's Retry-After is honoured. Defaults: 1s and 5m.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// ThrottleWindow: at most one alert per realm, user and device is sent
	// per window; the others are counted as throttled. Default: 1h;
	// negative: no throttling.
	ThrottleWindow time.Duration
	// History is how many outcomes Outcomes keeps. Default: 200.
	History int

	// OnOutcome, if set, is called after every change of an outcome: when
	// Send records it (pending, dropped, throttled, or failed when not
	// deliverable), when a retry is scheduled (pending with Attempts > 0),
	// and when it ends (delivered or failed). It runs on the goroutine of
	// Send or of a worker, without locks held, so calls may overlap and,
	// for one delivery, arrive out of order; it must not block. It is the
	// hook for metrics.
	OnOutcome func(Outcome)
	// Now is the clock for throttle windows, outcome times, signature
	// timestamps and e-mail dates. Default: time.Now. Waits between
	// attempts use the real clock.
	Now func() time.Time
}

// Notifier queues alerts and delivers them in the background. Its methods
// are safe for concurrent use.
type Notifier struct {
	webhook     *webhook
	mailer      *mailer
	queueSize   int
	maxAttempts int
	backoff     backoff
	onOutcome   func(Outcome)
	now         func() time.Time
	cancel      context.CancelFunc // aborts attempts and stops the workers
	done        chan struct{}      // closed when every worker has returned
	closeOnce   sync.Once

	mu       sync.Mutex
	closed   bool
	changed  chan struct{} // closed and replaced when the queue changes
	queue    deliveries
	seq      uint64
	pending  int // alerts with deliveries not finished
	throttle *throttle
	history  *history
	stats    Stats
}

// job is an accepted alert; its deliveries share it.
type job struct {
	alert Alert
	body  []byte // the webhook's JSON
	left  int    // deliveries not finished
}

// delivery is one alert on one channel. Popped from the queue, it belongs
// to the worker attempting it.
type delivery struct {
	job      *job
	channel  Channel
	to       string   // e-mail recipient
	out      *Outcome // its record in history; written under mu
	attempts int
	due      time.Time
	seq      uint64
}

// New checks o and starts the workers. Call Close to stop them.
func New(o Options) (*Notifier, error) {
	n := &Notifier{
		onOutcome: o.OnOutcome,
		now:       o.Now,
		done:      make(chan struct{}),
		changed:   make(chan struct{}),
	}
	if n.now == nil {
		n.now = time.Now
	}
	if o.Webhook == nil && o.Mailer == nil {
		return nil, errors.New("notify: no channel configured (webhook or mailer)")
	}
	var err error
	if o.Webhook != nil {
		if n.webhook, err = newWebhook(o.Webhook, n.now); err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
	}
	if o.Mailer != nil {
		if n.mailer, err = newMailer(o.Mailer); err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"queue size", &o.QueueSize, 1000},
		{"workers", &o.Workers, 2},
		{"max attempts", &o.MaxAttempts, 6},
		{"history", &o.History, 200},
	}
	for _, f := range ints {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 0 {
			return nil, fmt.Errorf("notify: %s: negative (%d)", f.name, *f.v)
		}
	}
	if o.RetryInitial == 0 {
		o.RetryInitial = time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = 5 * time.Minute
	}
	if o.RetryInitial < 0 || o.RetryMax < o.RetryInitial {
		return nil, fmt.Errorf("notify: retry initial %s and max %s: want 0 < initial <= max", o.RetryInitial, o.RetryMax)
	}
	if o.ThrottleWindow == 0 {
		o.ThrottleWindow = time.Hour
	}
	n.queueSize = o.QueueSize
	n.maxAttempts = o.MaxAttempts
	n.backoff = backoff{initial: o.RetryInitial, max: o.RetryMax}
	n.throttle = newThrottle(o.ThrottleWindow)
	n.history = newHistory(o.History)

	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Go(func() { n.work(ctx) })
	}
	go func() {
		wg.Wait()
		close(n.done)
	}()
	return n, nil
}

// Send queues a for delivery without blocking, on the channels a.Channels
// picks, and reports whether it was queued. It is not when the notifier
// is closed or its queue is full (dropped), when the same realm, user and
// device had an alert within the throttle window (throttled), or when no
// picked channel can take it (failed). Each case is recorded in Outcomes
// and counted in Stats.
func (n *Notifier) Send(a Alert) bool {
	now := n.now()
	if a.ID == "" {
		a.ID = newID()
	}
	if a.At.IsZero() {
		a.At = now
	}
	// The caller may reuse its slices.
	a.Signals = slices.Clone(a.Signals)
	a.Evidence = bytes.Clone(a.Evidence)
	a.Channels = slices.Clone(a.Channels)

	plans := n.plan(a)
	if len(plans) == 0 {
		return false
	}
	var body []byte
	deliverable := false
	for i := range plans {
		if plans[i].err == nil && plans[i].channel == ChannelWebhook && body == nil {
			var err error
			if body, err = json.Marshal(a); err != nil {
				plans[i].err = fmt.Errorf("encoding alert: %w", err)
			}
		}
		deliverable = deliverable || plans[i].err == nil
	}

	n.mu.Lock()
	state, reason := StatePending, ""
	switch {
	case !deliverable:
		state = StateFailed
	case n.closed:
		state, reason = StateDropped, "notifier closed"
	case n.pending >= n.queueSize:
		state, reason = StateDropped, "queue full"
	case !n.throttle.allow(throttleKey{a.Realm, a.User, a.DeviceID}, now):
		state, reason = StateThrottled, "an alert for this realm, user and device was sent within the throttle window"
	}
	j := &job{alert: a, body: body}
	emit := make([]Outcome, 0, len(plans))
	for _, p := range plans {
		o := &Outcome{
			AlertID: a.ID, Realm: a.Realm, User: a.User, Channel: p.channel,
			State: state, Error: reason, Queued: now, Updated: now,
		}
		if p.err != nil {
			o.State, o.Error = StateFailed, p.err.Error()
		}
		n.history.add(o)
		n.count(o.State)
		if o.State == StatePending {
			j.left++
			n.seq++
			heap.Push(&n.queue, &delivery{job: j, channel: p.channel, to: p.to, out: o, due: time.Now(), seq: n.seq})
		}
		emit = append(emit, *o)
	}
	queued := j.left > 0 // j belongs to the workers once mu is released
	if queued {
		n.pending++
		n.broadcast()
	}
	n.mu.Unlock()
	for _, o := range emit {
		n.emit(o)
	}
	return queued
}

type plan struct {
	channel Channel
	to      string // e-mail recipient
	err     error  // why it cannot be delivered
}

// plan lists the channels a goes to, each with why it cannot, if so.
func (n *Notifier) plan(a Alert) []plan {
	var chans []Channel
	for _, c := range a.Channels {
		if !slices.Contains(chans, c) {
			chans = append(chans, c)
		}
	}
	if len(chans) == 0 {
		if n.webhook != nil {
			chans = append(chans, ChannelWebhook)
		}
		if n.mailer != nil && a.Recipient != "" {
			chans = append(chans, ChannelEmail)
		}
	}
	plans := make([]plan, 0, len(chans))
	for _, c := range chans {
		p := plan{channel: c}
		switch c {
		case ChannelWebhook:
			if n.webhook == nil {
				p.err = errors.New("no webhook configured")
			}
		case ChannelEmail:
			if n.mailer == nil {
				p.err = errors.New("no mailer configured")
			} else {
				p.to, p.err = recipient(a)
			}
		default:
			p.err = fmt.Errorf("unknown channel %q", oneLine(string(c), 40))
		}
		if p.err == nil && !validID(a.ID) {
			p.err = errors.New("alert id: want 1 to 128 of A-Z, a-z, 0-9, '.', '_' and '-'")
		}
		plans = append(plans, p)
	}
	return plans
}

// work attempts due deliveries until the notifier is closed and the queue
// empty, or ctx ends.
func (n *Notifier) work(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		n.mu.Lock()
		if len(n.queue) == 0 && n.closed {
			n.mu.Unlock()
			return
		}
		var d *delivery
		wait := time.Duration(-1)
		if len(n.queue) > 0 {
			if w := time.Until(n.queue[0].due); w > 0 {
				wait = w
			} else {
				d = heap.Pop(&n.queue).(*delivery)
			}
		}
		changed := n.changed
		n.mu.Unlock()

		if d != nil {
			n.attempt(ctx, d)
		} else {
			if wait >= 0 {
				timer.Reset(wait)
			}
			select {
			case <-changed:
			case <-timer.C:
			case <-ctx.Done():
			}
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// attempt makes one attempt of d and records what came of it.
func (n *Notifier) attempt(ctx context.Context, d *delivery) {
	d.attempts++
	var r attemptResult
	switch d.channel {
	case ChannelWebhook:
		r = n.webhook.deliver(ctx, d.job.body, d.job.alert.ID, d.attempts)
	case ChannelEmail:
		r = n.mailer.deliver(ctx, d.job.alert, d.to, n.now())
	}
	now := n.now()

	n.mu.Lock()
	o := d.out
	o.Attempts, o.Status, o.Updated, o.NextAttempt, o.Error = d.attempts, r.status, now, time.Time{}, ""
	if r.err != nil {
		o.Error = r.err.Error()
	}
	switch {
	case r.err == nil:
		o.State = StateDelivered
		n.finish(d)
	case ctx.Err() != nil:
		o.State, o.Error = StateFailed, "notifier closed during the attempt: "+o.Error
		n.finish(d)
	case r.retry && d.attempts < n.maxAttempts:
		wait := n.backoff.delay(d.attempts, r.retryAfter)
		d.due, o.NextAttempt = time.Now().Add(wait), now.Add(wait)
		n.stats.Retries++
		n.seq++
		d.seq = n.seq
		heap.Push(&n.queue, d)
		n.broadcast()
	default:
		o.State = StateFailed
		n.finish(d)
	}
	n.count(o.State)
	snap := *o
	n.mu.Unlock()
	n.emit(snap)
}

// finish ends d. The caller holds mu.
func (n *Notifier) finish(d *delivery) {
	d.job.left--
	if d.job.left == 0 {
		n.pending--
	}
}

// count counts a final state. The caller holds mu.
func (n *Notifier) count(s State) {
	switch s {
	case StateDelivered:
		n.stats.Delivered++
	case StateFailed:
		n.stats.Failed++
	case StateDropped:
		n.stats.Dropped++
	case StateThrottled:
		n.stats.Throttled++
	}
}

// broadcast wakes the waiting workers. The caller holds mu.
func (n *Notifier) broadcast() {
	close(n.changed)
	n.changed = make(chan struct{})
}

func (n *Notifier) emit(o Outcome) {
	if n.onOutcome != nil {
		n.onOutcome(o)
	}
}

// Close stops accepting alerts and works the queue, retries included,
// until it is empty or ctx ends. Then it aborts attempts in flight,
// records what was left as failed, and returns once every goroutine it
// started has ended: ctx's error if it ended first, else nil. Later calls
// wait the same way.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		n.broadcast()
	}
	n.mu.Unlock()
	var err error
	select {
	case <-n.done:
	case <-ctx.Done():
		err = ctx.Err()
		n.cancel()
		<-n.done
	}
	n.closeOnce.Do(func() {
		n.cancel()
		now := n.now()
		var emit []Outcome
		n.mu.Lock()
		for len(n.queue) > 0 {
			d := heap.Pop(&n.queue).(*delivery)
			o := d.out
			o.State, o.Updated, o.NextAttempt = StateFailed, now, time.Time{}
			o.Error = "notifier closed before delivery; last error: " + or(o.Error, "none")
			n.finish(d)
			n.count(o.State)
			emit = append(emit, *o)
		}
		n.mu.Unlock()
		for _, o := range emit {
			n.emit(o)
		}
		if n.webhook != nil {
			n.webhook.client.CloseIdleConnections()
		}
	})
	return err
}

// Outcomes returns the recorded outcomes of realm, of user in it unless
// user is empty, newest first. Only the latest (Options.History) are
// kept.
func (n *Notifier) Outcomes(realm, user string) []Outcome {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.history.find(realm, user)
}

// Stats returns the counters.
func (n *Notifier) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.stats
	s.Pending = n.pending
	return s
}

// deliveries is a heap by due time, then by order queued.
type deliveries []*delivery

func (q deliveries) Len() int { return len(q) }
func (q deliveries) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q deliveries) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *deliveries) Push(x any)   { *q = append(*q, x.(*delivery)) }
func (q *deliveries) Pop() any {
	old := *q
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return d
}
