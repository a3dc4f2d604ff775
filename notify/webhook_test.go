package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/alerttest"
)

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	body := []byte(`{"id":"a1"}`)
	good := Sign(testSecret, now, body)
	other := Sign([]byte("another-secret-of-16-bytes"), now, body)
	_, v1, _ := strings.Cut(good, ",")
	tests := []struct {
		name    string
		secret  []byte
		header  string
		body    []byte
		now     time.Time
		wantErr string // "" for valid
	}{
		{"valid", testSecret, good, body, now, ""},
		{"valid within tolerance", testSecret, good, body, now.Add(4 * time.Minute), ""},
		{"valid with spaces", testSecret, strings.ReplaceAll(good, ",", ", "), body, now, ""},
		{"rotation: second v1 matches", testSecret, other + "," + v1, body, now, ""},
		{"tampered body", testSecret, good, []byte(`{"id":"a2"}`), now, "no signature matches"},
		{"wrong secret", []byte("wrong-secret-wrong-secret"), good, body, now, "no signature matches"},
		{"replayed later", testSecret, good, body, now.Add(6 * time.Minute), "tolerance"},
		{"from the future", testSecret, good, body, now.Add(-6 * time.Minute), "tolerance"},
		{"timestamp changed", testSecret, strings.Replace(good, "t=1760000000", "t=1760000001", 1), body, now, "no signature matches"},
		{"no timestamp", testSecret, v1, body, now, "no timestamp"},
		{"no signature", testSecret, "t=1760000000", body, now, "no v1"},
		{"two timestamps", testSecret, "t=1," + good, body, now, "more than one timestamp"},
		{"signed timestamp", testSecret, strings.Replace(good, "t=", "t=+", 1), body, now, "malformed timestamp"},
		{"empty header", testSecret, "", body, now, "no timestamp"},
		{"empty secret", nil, good, body, now, "empty secret"},
		{"v0 only", testSecret, strings.Replace(good, "v1=", "v0=", 1), body, now, "no v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.header, tt.body, tt.now, 5*time.Minute)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Verify = %v, want ErrSignature with %q", err, tt.wantErr)
			}
		})
	}
	if err := Verify(testSecret, good, body, now.Add(time.Hour), 0); err != nil {
		t.Errorf("tolerance 0 should skip the time check: %v", err)
	}
}

func TestWebhookDelivers(t *testing.T) {
	rc := newReceiver(t, nil)
	n := newNotifier(t, fastOptions(Options{Webhook: &Webhook{URL: rc.URL + "/hook", Secret: testSecret}}))
	a := Alert{
		Realm: "shop", User: "alice", Signals: []string{"new_country", "impossible_travel"},
		At: time.Date(2025, 12, 2, 8, 1, 0, 0, time.UTC), SessionID: "s1", DeviceID: "d1",
		IP: "192.0.2.7", Location: "London, England, United Kingdom", Agent: "Firefox on Linux",
		TimeZone: "Europe/London", Evidence: json.RawMessage(`{"km":8000}`),
		Link: "https://example.com/not-me?t=1", Recipient: "alice@example.com",
		Channels: []Channel{ChannelWebhook},
	}
	if !n.Send(a) {
		t.Fatal("Send = false")
	}
	outs := n.Outcomes("shop", "alice")
	if len(outs) != 1 {
		t.Fatalf("outcomes = %+v", outs)
	}
	a.ID = outs[0].AlertID
	if o := outcome(t, n, a, ChannelWebhook); o.State != StateDelivered || o.Attempts != 1 || o.Status != 200 || o.Error != "" {
		t.Fatalf("outcome = %+v", o)
	}
	reqs := rc.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	for k, want := range map[string]string{
		"Content-Type":    "application/json",
		EventHeader:       "risk",
		IdempotencyHeader: a.ID,
		AttemptHeader:     "1",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &fields); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"agent", "at", "device_id", "evidence", "id", "ip", "link", "location", "realm", "recipient", "session_id", "signals", "time_zone", "user"}
	if !slices.Equal(keys, want) {
		t.Errorf("JSON keys = %v, want %v", keys, want)
	}
	if string(fields["evidence"]) != `{"km":8000}` {
		t.Errorf("evidence = %s", fields["evidence"])
	}
	if got := decodeAlert(t, r.Body); got.At != a.At || got.Location != a.Location || !slices.Equal(got.Signals, a.Signals) {
		t.Errorf("decoded alert = %+v", got)
	}
	if s := n.Stats(); s.Delivered != 1 || s.Failed != 0 || s.Retries != 0 || s.Pending != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestWebhookRetries5xx(t *testing.T) {
	rc := newReceiver(t, func(hit int, w http.ResponseWriter, r *http.Request) {
		if hit <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	events := make(chan Outcome, 100)
	n := newNotifier(t, fastOptions(Options{
		Webhook:   &Webhook{URL: rc.URL, Secret: testSecret},
		OnOutcome: func(o Outcome) { events <- o },
	}))
	a := Alert{ID: "retry-1", Realm: "r", User: "bob", Signals: []string{"new_device"}}
	if !n.Send(a) {
		t.Fatal("Send = false")
	}
	o := outcome(t, n, a, ChannelWebhook)
	if o.State != StateDelivered || o.Attempts != 3 || o.Status != 200 || o.Error != "" {
		t.Fatalf("outcome = %+v", o)
	}
	if hits, delivered := len(rc.Requests()), len(rc.Delivered()); hits != 3 || delivered != 1 {
		t.Errorf("receiver: %d hits, %d delivered; want 3, 1", hits, delivered)
	}
	for i, r := range rc.Requests() {
		if got := r.Header.Get(IdempotencyHeader); got != "retry-1" {
			t.Errorf("attempt %d: idempotency key %q", i+1, got)
		}
		if got := r.Header.Get(AttemptHeader); got != fmt.Sprint(i+1) {
			t.Errorf("attempt %d: attempt header %q", i+1, got)
		}
	}
	if s := n.Stats(); s.Delivered != 1 || s.Retries != 2 || s.Failed != 0 {
		t.Errorf("stats = %+v", s)
	}
	// The hook saw: queued, two retries scheduled, delivered (the first
	// call, from Send, may come after a worker's).
	var states []string
	for range 4 {
		e := <-events
		states = append(states, fmt.Sprintf("%s/%d", e.State, e.Attempts))
	}
	slices.Sort(states)
	if want := []string{"delivered/3", "pending/0", "pending/1", "pending/2"}; !slices.Equal(states, want) {
		t.Errorf("OnOutcome saw %v, want %v", states, want)
	}
}

func TestWebhookRetryAfterCapped(t *testing.T) {
	rc := newReceiver(t, func(hit int, w http.ResponseWriter, r *http.Request) {
		if hit == 1 {
			// An hour: honoured only up to RetryMax (20ms here).
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	n := newNotifier(t, fastOptions(Options{Webhook: &Webhook{URL: rc.URL, Secret: testSecret}}))
	a := Alert{ID: "429", Realm: "r", User: "u"}
	n.Send(a)
	if o := outcome(t, n, a, ChannelWebhook); o.State != StateDelivered || o.Attempts != 2 {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestWebhook4xxNotRetried(t *testing.T) {
	rc := newReceiver(t, func(hit int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	})
	// The URL's userinfo and query must not reach errors.
	u := strings.Replace(rc.URL, "http://", "http://user:hunter2@", 1) + "/hook?token=sekrit"
	n := newNotifier(t, fastOptions(Options{Webhook: &Webhook{URL: u, Secret: testSecret}}))
	a := Alert{ID: "400", Realm: "r", User: "u"}
	n.Send(a)
	o := outcome(t, n, a, ChannelWebhook)
	if o.State != StateFailed || o.Attempts != 1 || o.Status != 400 {
		t.Fatalf("outcome = %+v", o)
	}
	if want := "webhook " + rc.URL + "/hook: answered 400"; o.Error != want {
		t.Errorf("error = %q, want %q", o.Error, want)
	}
	if hits := len(rc.Requests()); hits != 1 {
		t.Errorf("%d hits, want 1", hits)
	}
	if s := n.Stats(); s.Failed != 1 || s.Retries != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestWebhookTransportErrorRedacted(t *testing.T) {
	rc := newReceiver(t, nil)
	u := strings.Replace(rc.URL, "http://", "http://user:hunter2@", 1) + "/hook?token=sekrit"
	rc.Close() // nothing listens there any more
	n := newNotifier(t, fastOptions(Options{Webhook: &Webhook{URL: u, Secret: testSecret}, MaxAttempts: 2}))
	a := Alert{ID: "refused", Realm: "r", User: "u"}
	n.Send(a)
	o := outcome(t, n, a, ChannelWebhook)
	if o.State != StateFailed || o.Attempts != 2 || !strings.HasPrefix(o.Error, "webhook "+rc.URL+"/hook: ") {
		t.Fatalf("outcome = %+v", o)
	}
	for _, secret := range []string{"hunter2", "sekrit", string(testSecret)} {
		if strings.Contains(o.Error, secret) {
			t.Errorf("error %q holds %q", o.Error, secret)
		}
	}
}

func TestWebhookTimeout(t *testing.T) {
	rc := newReceiver(t, func(hit int, w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until the client gives up
	})
	n := newNotifier(t, fastOptions(Options{
		Webhook:     &Webhook{URL: rc.URL, Secret: testSecret, Timeout: 50 * time.Millisecond},
		MaxAttempts: 2,
	}))
	a := Alert{ID: "slow", Realm: "r", User: "u"}
	n.Send(a)
	o := outcome(t, n, a, ChannelWebhook)
	if o.State != StateFailed || o.Attempts != 2 || !strings.Contains(o.Error, "timed out after 50ms") {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestWebhookRedirects(t *testing.T) {
	elsewhere := newReceiver(t, nil)
	tests := []struct {
		name     string
		status   int
		location func(rc *alerttest.Receiver) string
		want     State
	}{
		{"307 to another host", http.StatusTemporaryRedirect, func(*alerttest.Receiver) string { return elsewhere.URL + "/hook" }, StateFailed},
		{"308 to another host", http.StatusPermanentRedirect, func(*alerttest.Receiver) string { return elsewhere.URL + "/hook" }, StateFailed},
		{"302 same host (would become a GET)", http.StatusFound, func(rc *alerttest.Receiver) string { return rc.URL + "/moved" }, StateFailed},
		{"307 same host", http.StatusTemporaryRedirect, func(rc *alerttest.Receiver) string { return rc.URL + "/moved" }, StateDelivered},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rc *alerttest.Receiver
			rc = newReceiver(t, func(hit int, w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/hook" {
					w.Header().Set("Location", tt.location(rc))
					w.WriteHeader(tt.status)
				}
			})
			n := newNotifier(t, fastOptions(Options{Webhook: &Webhook{URL: rc.URL + "/hook", Secret: testSecret}}))
			a := Alert{ID: fmt.Sprint("redirect-", i), Realm: "r", User: "u"}
			n.Send(a)
			o := outcome(t, n, a, ChannelWebhook)
			if o.State != tt.want || o.Attempts != 1 {
				t.Fatalf("outcome = %+v", o)
			}
			if tt.want == StateFailed && (o.Status != tt.status || !strings.Contains(o.Error, "redirect not followed")) {
				t.Errorf("outcome = %+v", o)
			}
			if tt.want == StateDelivered {
				if hits, delivered := len(rc.Requests()), len(rc.Delivered()); hits != 2 || delivered != 1 {
					t.Errorf("receiver: %d hits, %d delivered", hits, delivered)
				}
			}
		})
	}
	if hits := len(elsewhere.Requests()); hits != 0 {
		t.Errorf("the other host got %d requests", hits)
	}
}

func TestWebhookConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		w    Webhook
		want string
	}{
		{"relative url", Webhook{URL: "/hook", Secret: testSecret}, "absolute http or https"},
		{"ftp url", Webhook{URL: "ftp://user:pw@example.com/x?q=secretq", Secret: testSecret}, "absolute http or https"},
		{"bad url", Webhook{URL: "http://user:pw@[::1/x?q=secretq", Secret: testSecret}, "not a valid URL"},
		{"short secret", Webhook{URL: "https://example.com", Secret: []byte("pw-too-short")}, "shorter than 16"},
		{"negative timeout", Webhook{URL: "https://example.com", Secret: testSecret, Timeout: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Options{Webhook: &tt.w})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want %q", err, tt.want)
			}
			for _, s := range []string{"pw", "secretq", string(tt.w.Secret)} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds %q", err, s)
				}
			}
		})
	}
}
