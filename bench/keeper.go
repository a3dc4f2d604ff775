package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The keeper holds B's sessions in steady state for the whole run.
//
// The module refreshes a session at its first request once refresh_interval
// has passed since the session's last write. Real traffic has those
// deadlines spread evenly over the interval. Without the keeper, the bench
// would open all sessions within a few seconds (so their deadlines stay
// bunched forever) and B would idle while A and C run, so that every B run
// starts with every session due: a burst of refreshes, not the steady
// sessions/refresh_interval.
//
// So sessions are opened at staggered times (session i at start +
// i*period/n, see openSessions), and the keeper then sends one request of
// session i at start + k*period + i*period/n, k = 1, 2, ..., until the end
// of the run: n/period requests per second to B's Caddy, spread evenly,
// during every scenario's runs alike. period is refresh_interval plus a
// little slack (keeperSlack), so each keeper request finds its session due
// unless the load generator refreshed it first; either way every session is
// refreshed once per refresh_interval or a little more, at its own phase.

// keeperSlack is how much longer than refresh_interval the keeper's cycle
// is: more than the worst delay of a keeper request under saturation (so
// two of its requests to one session are never less than refresh_interval
// apart at the module), and small, so that refreshes stay close to
// sessions / refresh_interval per second.
func keeperSlack(refresh time.Duration) time.Duration {
	return min(refresh/10, 500*time.Millisecond)
}

// keeperWorkers bounds the keeper's concurrent requests; a request waits
// for Caddy for a few ms under saturation, so a handful suffice.
const keeperWorkers = 16

// slotAt is when session i of n is due in cycle c of a schedule that starts
// at start (c = 0: when it is opened).
func slotAt(start time.Time, period time.Duration, c, i, n int) time.Time {
	return start.Add(time.Duration(c)*period + time.Duration(int64(period)*int64(i)/int64(n)))
}

type keeperJob struct {
	i  int
	at time.Time
}

type keeper struct {
	site   string
	sess   []session
	start  time.Time
	period time.Duration
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	served atomic.Int64 // requests answered (any status)
	failed atomic.Int64 // transport errors and non-200 answers
	late   atomic.Int64 // requests started over a second after their slot

	mu       sync.Mutex
	firstErr string
}

// keeperCounts is a snapshot of the keeper's counters.
type keeperCounts struct{ served, failed, late int64 }

func (a keeperCounts) sub(b keeperCounts) keeperCounts {
	return keeperCounts{a.served - b.served, a.failed - b.failed, a.late - b.late}
}

// startKeeper starts cycle 1 of the schedule at start (cycle 0 is the
// opening of the sessions); sess must hold their device cookies.
func startKeeper(site string, sess []session, start time.Time, period time.Duration) *keeper {
	ctx, cancel := context.WithCancel(context.Background())
	k := &keeper{site: site, sess: sess, start: start, period: period, ctx: ctx, cancel: cancel,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: keeperWorkers}}}
	jobs := make(chan keeperJob, 4096)
	for range keeperWorkers {
		k.wg.Add(1)
		go k.worker(jobs)
	}
	k.wg.Add(1)
	go k.schedule(jobs)
	return k
}

func (k *keeper) schedule(jobs chan<- keeperJob) {
	defer k.wg.Done()
	defer close(jobs)
	n := len(k.sess)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for c := 1; ; c++ {
		for i := range n {
			at := slotAt(k.start, k.period, c, i, n)
			if d := time.Until(at); d > 0 {
				t.Reset(d)
				select {
				case <-t.C:
				case <-k.ctx.Done():
					return
				}
			}
			select {
			case jobs <- keeperJob{i, at}:
			case <-k.ctx.Done():
				return
			}
		}
	}
}

func (k *keeper) worker(jobs <-chan keeperJob) {
	defer k.wg.Done()
	for j := range jobs {
		if time.Since(j.at) > time.Second {
			k.late.Add(1)
		}
		err := k.touch(k.sess[j.i])
		if k.ctx.Err() != nil {
			return
		}
		if err != nil {
			k.failed.Add(1)
			k.mu.Lock()
			if k.firstErr == "" {
				k.firstErr = err.Error()
			}
			k.mu.Unlock()
		}
	}
}

func (k *keeper) touch(s session) error {
	req, err := http.NewRequestWithContext(k.ctx, http.MethodGet, k.site+"/", nil)
	if err != nil {
		return err
	}
	setSessionHeaders(req, s)
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	k.served.Add(1)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("session of %s: %s", s.user, resp.Status)
	}
	return nil
}

func (k *keeper) counts() keeperCounts {
	if k == nil {
		return keeperCounts{}
	}
	return keeperCounts{k.served.Load(), k.failed.Load(), k.late.Load()}
}

// rate is the keeper's request rate, one request per session per period.
func (k *keeper) rate() float64 {
	return float64(len(k.sess)) / k.period.Seconds()
}

// stop ends the keeper and waits for its requests.
func (k *keeper) stop() {
	if k == nil {
		return
	}
	k.once.Do(func() {
		k.cancel()
		k.wg.Wait()
		k.client.CloseIdleConnections()
	})
}

func (k *keeper) firstError() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.firstErr
}

// userAgent is the browser User-Agent of every request of the bench.
const userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"

// setSessionHeaders makes req a request of session s as the load generator
// sends it: sid (and, once known, device) cookie, user header, User-Agent.
func setSessionHeaders(req *http.Request, s session) {
	ck := "sid=" + s.token
	if s.device != "" {
		ck += "; sessions_device=" + s.device
	}
	req.Header.Set("Cookie", ck)
	req.Header.Set("X-Bench-User", s.user)
	req.Header.Set("User-Agent", userAgent)
}
