package alerttest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Delivery is one request a Receiver got.
type Delivery struct {
	// Method and Path are the request's method and URL path.
	Method, Path string
	// Header and Body are the request's header and body.
	Header http.Header
	Body   []byte
	// Status is what the receiver answered: 405 to a method other than
	// POST, 401 to a request verify refused, else the scripted status. It
	// is 0 while the request is being answered, and stays 0 if the client
	// went away before an answer was written.
	Status int
	// Err is why the request was refused: what verify returned (Status
	// 401), or the error reading the body (Status 0).
	Err error
}

// Receiver is a real HTTP webhook receiver (httptest) on a loopback port.
type Receiver struct {
	// URL is the server's base URL, e.g. "http://127.0.0.1:41234"; it
	// serves every path.
	URL string

	srv       *httptest.Server
	verify    func(h http.Header, body []byte) error
	handle    func(n int, w http.ResponseWriter, r *http.Request)
	closeOnce sync.Once

	mu       sync.Mutex
	accepted int        // POSTs verify let through
	reqs     []Delivery // every request, in order of arrival
}

// StartReceiver starts a receiver closed by tb.Cleanup. It answers every
// method but POST with 405. It passes each POST's header and body to verify
// (if not nil); a request verify refuses is answered 401 and recorded as
// such (Delivery.Status, Delivery.Err). The n-th accepted request (1-based)
// is answered with the status respond(n) gives, or 200 if respond is nil.
func StartReceiver(tb testing.TB, verify func(h http.Header, body []byte) error, respond func(n int) int) *Receiver {
	tb.Helper()
	return StartReceiverFunc(tb, verify, func(n int, w http.ResponseWriter, _ *http.Request) {
		status := http.StatusOK
		if respond != nil {
			status = respond(n)
		}
		w.WriteHeader(status)
	})
}

// StartReceiverFunc is StartReceiver with a handler for the accepted
// requests instead of a status: handle (may be nil) writes the answer to
// the n-th accepted request (1-based), e.g. with a Retry-After or Location
// header, or holds it until r.Context() ends. The request's body has been
// read already (Delivery.Body). An answer it does not write is 200.
// Closing the receiver (tb.Cleanup or Close) first closes the client
// connections, which ends r.Context(), then waits for handle to return.
func StartReceiverFunc(tb testing.TB, verify func(h http.Header, body []byte) error, handle func(n int, w http.ResponseWriter, r *http.Request)) *Receiver {
	tb.Helper()
	rc := &Receiver{verify: verify, handle: handle}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	rc.URL = rc.srv.URL
	tb.Cleanup(rc.Close)
	return rc
}

// Close stops the receiver: a test can use it to make the URL refuse
// connections. It is safe to call more than once.
func (rc *Receiver) Close() {
	rc.closeOnce.Do(func() {
		rc.srv.CloseClientConnections() // ends handlers holding a request
		rc.srv.Close()
	})
}

// Requests returns every request received so far, in order of arrival.
func (rc *Receiver) Requests() []Delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Delivery(nil), rc.reqs...)
}

// Delivered returns the requests answered 2xx so far, in order of arrival.
func (rc *Receiver) Delivered() []Delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var ds []Delivery
	for _, d := range rc.reqs {
		if d.Status >= 200 && d.Status < 300 {
			ds = append(ds, d)
		}
	}
	return ds
}

// WaitDelivered waits until at least n requests have been answered 2xx and
// returns them all; it fails the test if they are not within timeout.
func (rc *Receiver) WaitDelivered(tb testing.TB, n int, timeout time.Duration) []Delivery {
	tb.Helper()
	if !waitFor(timeout, func() bool { return len(rc.Delivered()) >= n }) {
		var statuses []int
		for _, d := range rc.Requests() {
			statuses = append(statuses, d.Status)
		}
		tb.Fatalf("alerttest: %d deliveries within %s, want %d; all requests answered %v", len(rc.Delivered()), timeout, n, statuses)
	}
	return rc.Delivered()
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	d := Delivery{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()}
	body, err := io.ReadAll(r.Body)
	d.Body = body
	var status int
	switch {
	case err != nil:
		d.Err = err // the client went away: no answer
	case r.Method != http.MethodPost:
		status = http.StatusMethodNotAllowed
		w.Header().Set("Allow", http.MethodPost)
	case rc.verify != nil:
		if d.Err = rc.verify(d.Header, body); d.Err != nil {
			status = http.StatusUnauthorized
		}
	}
	rc.mu.Lock()
	i := len(rc.reqs)
	rc.reqs = append(rc.reqs, d) // Status 0 until answered
	var n int
	if err == nil && status == 0 {
		rc.accepted++
		n = rc.accepted
	}
	rc.mu.Unlock()
	switch {
	case err != nil:
	case status != 0:
		http.Error(w, http.StatusText(status), status)
	default:
		status = rc.answer(n, w, r)
	}
	rc.mu.Lock()
	rc.reqs[i].Status = status
	rc.mu.Unlock()
}

// answer runs handle and returns the status it answered, 0 if the client
// went away before an answer.
func (rc *Receiver) answer(n int, w http.ResponseWriter, r *http.Request) int {
	sw := &statusWriter{ResponseWriter: w}
	if rc.handle != nil {
		rc.handle(n, sw, r)
	}
	if sw.status == 0 && r.Context().Err() == nil {
		sw.WriteHeader(http.StatusOK)
	}
	return sw.status
}

// statusWriter remembers the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
