package sessions

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// cookieWatch sees the app's answer as its header is written, without
// buffering it: the status, and whether the session cookie was set to a new
// value or deleted.
type cookieWatch struct {
	caddyhttp.ResponseWriterWrapper
	name   string // session cookie name, or prefix with wild
	wild   bool
	wrote  bool
	status int
	// newValue is a non-empty value the answer set the cookie to.
	newValue string
	deleted  bool
	// onHeader runs once the status and headers are known, before they
	// are sent: what it records is in place before the client can act
	// on the answer.
	onHeader func()
}

var watchPool = sync.Pool{New: func() any { return new(cookieWatch) }}

func newCookieWatch(w http.ResponseWriter, name string, wild bool) *cookieWatch {
	c := watchPool.Get().(*cookieWatch)
	*c = cookieWatch{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, name: name, wild: wild}
	return c
}

func (c *cookieWatch) release() {
	*c = cookieWatch{}
	watchPool.Put(c)
}

func (c *cookieWatch) WriteHeader(status int) {
	// 1xx informational answers (103 Early Hints) come before the real one.
	if !c.wrote && (status >= 200 || status == http.StatusSwitchingProtocols) {
		c.wrote, c.status = true, status
		c.inspect()
		if c.onHeader != nil {
			c.onHeader()
		}
	}
	c.ResponseWriterWrapper.WriteHeader(status)
}

func (c *cookieWatch) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriterWrapper.Write(b)
}

// ReadFrom must not bypass WriteHeader, as the embedded one would.
func (c *cookieWatch) ReadFrom(r io.Reader) (int64, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriterWrapper.ReadFrom(r)
}

func (c *cookieWatch) inspect() {
	if c.name == "" {
		return
	}
	for _, line := range c.Header()["Set-Cookie"] {
		if !strings.HasPrefix(line, c.name) && !strings.HasPrefix(strings.TrimSpace(line), c.name) {
			continue
		}
		ck, err := http.ParseSetCookie(line)
		if err != nil {
			continue
		}
		if ck.Name != c.name && !(c.wild && strings.HasPrefix(ck.Name, c.name)) {
			continue
		}
		if ck.Value == "" || ck.MaxAge < 0 || (!ck.Expires.IsZero() && ck.Expires.Before(time.Now())) {
			c.deleted, c.newValue = true, ""
		} else {
			c.deleted, c.newValue = false, ck.Value
		}
	}
}
