package sessions

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sessions/caddy-sessions/tracker"
)

// cookieWatch sees the app's answer as its header is written, without
// buffering it: the status, and which session cookies were set to a new
// value or deleted.
type cookieWatch struct {
	caddyhttp.ResponseWriterWrapper
	set    *cookieSet
	wrote  bool
	status int
	// override, when set by what judges the answer, replaces its status
	// (refuseAnswer); discard drops the app's body (replaceAnswer).
	override int
	discard  bool
	// set[i] is what the answer did to the cookie of pattern i.
	changes [maxCookiePatterns]cookieChange
	changed bool
	// onHeader runs once the status and headers are known, before they
	// are sent: what it records is in place before the client can act
	// on the answer.
	onHeader func()
	// tracked, instead of onHeader on the hot path (a closure over the
	// request would be allocated per request): the answer to a tracked
	// request, judged by Handler.judgeTracked with these fields.
	tracked *Handler
	req     *http.Request
	res     tracker.Result
	had     [maxCookiePatterns]sessionCookie
	token   string
}

// cookieChange is a session cookie the answer set or deleted.
type cookieChange struct {
	name    string
	value   string // the new value, "" when deleted
	deleted bool
}

var watchPool = sync.Pool{New: func() any { return new(cookieWatch) }}

func newCookieWatch(w http.ResponseWriter, set *cookieSet) *cookieWatch {
	c := watchPool.Get().(*cookieWatch)
	*c = cookieWatch{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, set: set}
	return c
}

func (c *cookieWatch) release() {
	*c = cookieWatch{}
	watchPool.Put(c)
}

func (c *cookieWatch) WriteHeader(status int) {
	// 1xx informational answers (103 Early Hints) come before the real one.
	if !c.wrote && (status >= 200 || status == http.StatusSwitchingProtocols) {
		c.judge(status)
		if c.override != 0 {
			status = c.override
		}
	}
	c.ResponseWriterWrapper.WriteHeader(status)
}

// refuseAnswer turns the answer being judged into a refusal: its session
// cookies never reach the browser, and its status is status. For what the
// module must record before the answer may go out and could not (a login
// refused by a limit, a store that failed with fail_closed).
func (c *cookieWatch) refuseAnswer(status int) {
	c.override = status
	h := c.Header()
	var keep []string
	for _, line := range h["Set-Cookie"] {
		if ck, err := http.ParseSetCookie(line); err == nil {
			if idx, _ := c.set.match(ck.Name); idx >= 0 {
				continue
			}
		}
		keep = append(keep, line)
	}
	if len(keep) == 0 {
		delete(h, "Set-Cookie")
	} else {
		h["Set-Cookie"] = keep
	}
	h.Del("Location")
}

// replaceAnswer refuses the answer being judged (refuseAnswer) and drops
// its body and every cookie it sets but the module's own (keep): the
// client gets status and location (if any), an empty body, nothing of the
// app's answer to a login the module refused (no remember-me cookie
// either).
func (c *cookieWatch) replaceAnswer(status int, location string, keep ...string) {
	c.refuseAnswer(status)
	c.discard = true
	h := c.Header()
	var kept []string
	for _, line := range h["Set-Cookie"] {
		if ck, err := http.ParseSetCookie(line); err == nil && slices.Contains(keep, ck.Name) {
			kept = append(kept, line)
		}
	}
	if len(kept) == 0 {
		h.Del("Set-Cookie")
	} else {
		h["Set-Cookie"] = kept
	}
	for _, k := range []string{"Content-Length", "Content-Encoding", "Etag", "Last-Modified", "Content-Range"} {
		h.Del(k)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if location != "" {
		h.Set("Location", location)
	}
}

// judge records the answer's status and what it does to the session
// cookies, and runs what waits for them.
func (c *cookieWatch) judge(status int) {
	c.wrote, c.status = true, status
	c.inspect()
	switch {
	case c.tracked != nil:
		c.tracked.judgeTracked(c)
	case c.onHeader != nil:
		c.onHeader()
	}
}

// serve runs next through the watcher. A handler chain that returns
// without writing leaves net/http to send 200 with the header as it
// stands: that answer is judged too (its Set-Cookie counts).
func (c *cookieWatch) serve(next caddyhttp.Handler, r *http.Request) error {
	err := next.ServeHTTP(c, r)
	if err == nil && !c.wrote {
		c.judge(http.StatusOK)
		if c.override != 0 {
			c.ResponseWriterWrapper.WriteHeader(c.override)
		}
	}
	return err
}

func (c *cookieWatch) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if c.discard {
		return len(b), nil
	}
	return c.ResponseWriterWrapper.Write(b)
}

// ReadFrom must not bypass WriteHeader, as the embedded one would.
func (c *cookieWatch) ReadFrom(r io.Reader) (int64, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if c.discard {
		return io.Copy(io.Discard, r)
	}
	return c.ResponseWriterWrapper.ReadFrom(r)
}

func (c *cookieWatch) inspect() {
	if c.set == nil || len(c.set.patterns) == 0 {
		return
	}
	for _, line := range c.Header()["Set-Cookie"] {
		ck, err := http.ParseSetCookie(line)
		if err != nil {
			continue
		}
		idx, plain := c.set.match(ck.Name)
		if idx < 0 || !plain {
			continue
		}
		ch := cookieChange{name: ck.Name}
		if ck.Value == "" || ck.MaxAge < 0 || (!ck.Expires.IsZero() && ck.Expires.Before(time.Now())) {
			ch.deleted = true
		} else if plainValue(ck.Value) {
			ch.value = ck.Value
		} else {
			continue
		}
		// The last Set-Cookie of a name wins, as in the browser.
		c.changes[idx] = ch
		c.changed = true
	}
}
