package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/alerttest"
)

var testSecret = []byte("0123456789abcdef-test-secret")

// waitUntil polls cond until it holds, failing the test after 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fastOptions are Options whose retries take milliseconds.
func fastOptions(o Options) Options {
	if o.RetryInitial == 0 {
		o.RetryInitial = time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 20 * time.Millisecond
	}
	return o
}

// newNotifier starts a notifier closed at the end of the test.
func newNotifier(t *testing.T, o Options) *Notifier {
	t.Helper()
	n, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n
}

// outcome waits until the alert's delivery on ch is final and returns it.
func outcome(t *testing.T, n *Notifier, a Alert, ch Channel) Outcome {
	t.Helper()
	var got Outcome
	waitUntil(t, "alert "+a.ID+" on "+string(ch)+" is final", func() bool {
		for _, o := range n.Outcomes(a.Realm, a.User) {
			if o.AlertID == a.ID && o.Channel == ch && o.State != StatePending {
				got = o
				return true
			}
		}
		return false
	})
	return got
}

// verifySignature is a receiver's check that a request is signed with
// testSecret, within tolerance of now (0 skips the time check); a request
// that is not fails the test.
func verifySignature(t *testing.T, tolerance time.Duration) func(http.Header, []byte) error {
	return func(h http.Header, body []byte) error {
		err := Verify(testSecret, h.Get(SignatureHeader), body, time.Now(), tolerance)
		if err != nil {
			t.Errorf("receiver: %v", err)
		}
		return err
	}
}

// newReceiver starts a real webhook receiver that requires testSecret's
// signature (5 minutes' tolerance); handle (nil: 200) answers the n-th
// request.
func newReceiver(t *testing.T, handle func(n int, w http.ResponseWriter, r *http.Request)) *alerttest.Receiver {
	t.Helper()
	return alerttest.StartReceiverFunc(t, verifySignature(t, 5*time.Minute), handle)
}

// decodeAlert decodes a webhook request's body.
func decodeAlert(t *testing.T, body []byte) Alert {
	t.Helper()
	var a Alert
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("decoding a webhook body: %v", err)
	}
	return a
}

// goroutinesBack waits until no more goroutines run than before.
func goroutinesBack(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
