package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The webhook's request headers.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>">"; see Sign and Verify.
	SignatureHeader = "Sessions-Signature"
	// EventHeader names the kind of event: "risk".
	EventHeader = "Sessions-Event"
	// IdempotencyHeader carries the alert ID, the same on every attempt,
	// so that a receiver can ignore repeats.
	IdempotencyHeader = "Idempotency-Key"
	// AttemptHeader carries the attempt number, from 1.
	AttemptHeader = "Sessions-Attempt"
)

// minSecret is the shortest webhook secret accepted.
const minSecret = 16

// Webhook configures delivery by HTTP POST of the alert as JSON, signed
// with Secret. Deliveries are retried on transport errors, 5xx and 429
// (honouring Retry-After up to the notifier's RetryMax), not on other
// statuses. Redirects are followed only to the same scheme and host, and
// only when they keep the POST (307, 308).
type Webhook struct {
	// URL receives the POSTs: absolute, http or https.
	URL string
	// Secret signs every request; at least 16 bytes. It is never logged
	// nor part of an error.
	Secret []byte
	// Timeout bounds one attempt, from connecting to reading the status.
	// Default: 10s.
	Timeout time.Duration
}

type webhook struct {
	url     string
	display string // url without userinfo, query or fragment, for errors
	secret  []byte
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
}

func newWebhook(w *Webhook, now func() time.Time) (*webhook, error) {
	u, err := url.Parse(w.URL)
	if err != nil {
		// url.Parse's error quotes the whole URL, secrets included.
		return nil, errors.New("webhook url: not a valid URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook url %q: must be an absolute http or https URL", redactURL(u))
	}
	if len(w.Secret) < minSecret {
		return nil, fmt.Errorf("webhook secret: shorter than %d bytes", minSecret)
	}
	timeout := w.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	if timeout < 0 {
		return nil, fmt.Errorf("webhook timeout: negative (%s)", timeout)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	return &webhook{
		url:     w.URL,
		display: redactURL(u),
		secret:  bytes.Clone(w.Secret),
		timeout: timeout,
		now:     now,
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: sameOriginPost,
		},
	}, nil
}

// sameOriginPost follows a redirect only when it stays on the original
// scheme and host and keeps the method (307, 308; 301 to 303 turn a POST
// into a bodiless GET), at most 3 times. Otherwise the client returns the
// redirect response itself, which deliver reports.
func sameOriginPost(req *http.Request, via []*http.Request) error {
	first := via[0]
	if len(via) > 3 || req.Method != first.Method ||
		req.URL.Scheme != first.URL.Scheme || req.URL.Host != first.URL.Host {
		return http.ErrUseLastResponse
	}
	return nil
}

// redactURL is u without userinfo, query and fragment.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery, c.ForceQuery = "", false
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}

// attemptResult is what one delivery attempt came to.
type attemptResult struct {
	status     int           // HTTP status or SMTP code; 0 if none
	err        error         // nil: delivered
	retry      bool          // err is worth another attempt
	retryAfter time.Duration // the receiver asked to wait this long
}

func (w *webhook) deliver(ctx context.Context, body []byte, alertID string, attempt int) attemptResult {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return attemptResult{err: fmt.Errorf("webhook %s: building request: %w", w.display, stripURLError(err))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "caddy-sessions-notify")
	req.Header.Set(EventHeader, "risk")
	req.Header.Set(IdempotencyHeader, alertID)
	req.Header.Set(AttemptHeader, strconv.Itoa(attempt))
	req.Header.Set(SignatureHeader, Sign(w.secret, w.now(), body))
	resp, err := w.client.Do(req)
	if err != nil {
		err = stripURLError(err)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %s: %w", w.timeout, err)
		}
		return attemptResult{err: fmt.Errorf("webhook %s: %w", w.display, err), retry: true}
	}
	// Drain a little so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	r := attemptResult{status: resp.StatusCode}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return r
	case code >= 300 && code < 400:
		r.err = fmt.Errorf("webhook %s: answered %d: redirect not followed (only same-host 307 and 308 are)", w.display, code)
	case code == http.StatusTooManyRequests || code >= 500:
		r.err = fmt.Errorf("webhook %s: answered %d", w.display, code)
		r.retry = true
		r.retryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	default:
		r.err = fmt.Errorf("webhook %s: answered %d", w.display, code)
	}
	return r
}

// stripURLError drops the *url.Error wrapper, whose text quotes the whole
// URL (query included); callers name the redacted URL instead.
func stripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Sign returns the SignatureHeader value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 under secret of "<t>.<body>">".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// ErrSignature is wrapped by every error Verify returns.
var ErrSignature = errors.New("invalid webhook signature")

// Verify checks a SignatureHeader value for body, as a receiver should
// before trusting a delivery: the header must hold a timestamp t and at
// least one v1 signature matching the body under secret (several v1 are
// allowed, for rotating secrets), and t must be within tolerance of now
// (refusing replays; tolerance <= 0 skips that check). Receivers should
// also ignore repeated Idempotency-Key values.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: empty secret", ErrSignature)
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: more than one timestamp", ErrSignature)
			}
			ts = v
		case "v1":
			if s, err := hex.DecodeString(v); err == nil && len(s) == sha256.Size {
				sigs = append(sigs, s)
			}
		}
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: no timestamp or no v1 signature", ErrSignature)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || strconv.FormatInt(unix, 10) != ts {
		return fmt.Errorf("%w: malformed timestamp", ErrSignature)
	}
	if tolerance > 0 {
		age := now.Sub(time.Unix(unix, 0))
		if age > tolerance || age < -tolerance {
			return fmt.Errorf("%w: timestamp %s from now, beyond the %s tolerance", ErrSignature, age.Round(time.Second), tolerance)
		}
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no signature matches", ErrSignature)
}
