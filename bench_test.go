package sessions

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
)

const benchUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"

// provisionTest provisions h on a memory store of its own that keeps no
// snapshot: saving 10,000 sessions every 30 s would land in a benchmark's
// timed loop (under valgrind, surely).
func provisionTest(tb testing.TB, h *Handler) {
	tb.Helper()
	tb.Setenv("XDG_DATA_HOME", tb.TempDir())
	if _, _, err := stores.LoadOrNew("memory", func() (caddy.Destructor, error) {
		return &pooledStore{Store: redisstore.NewMemory()}, nil
	}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _, _ = stores.Delete("memory") })
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	h.logger = zap.NewNop() // not 10,000 "session opened" lines
	tb.Cleanup(func() { _ = h.Cleanup() })
}

// newBenchHandler provisions a handler on the memory store with n sessions
// already logged in, and returns the Cookie header of each.
func newBenchHandler(b *testing.B, n int) (*Handler, []string) {
	b.Helper()
	h := &Handler{Realm: "bench", SessionCookie: CookieNames{"sid"}, Secret: "0123456789abcdef0123456789abcdef",
		// No refresh falls due in the timed loop, however slow the run
		// (valgrind): refreshes are not the hot path.
		RefreshInterval: caddy.Duration(10 * time.Minute)}
	provisionTest(b, h)
	cookies := make([]string, n)
	for i := range cookies {
		tok := fmt.Sprintf("token-%06d", i)
		dev, _ := h.keys.NewDevice()
		if _, err := h.tracker.Login(context.Background(), tracker.Request{
			Realm: "bench", Token: tok, User: fmt.Sprintf("user%d", i%(n/2+1)), IP: "10.1.2.3", UserAgent: benchUA, DeviceID: dev,
		}); err != nil {
			b.Fatal(err)
		}
		cookies[i] = "theme=dark; sid=" + tok + "; " + h.DeviceCookie + "=" + h.keys.DeviceCookie(dev)
	}
	return h, cookies
}

// benchRequests hands out requests the way Caddy's Server.ServeHTTP hands
// them to the first handler: each with a fresh replacer, vars and context
// (caddyhttp.PrepareRequest). A replacer reused across requests would hide
// what the handler's placeholders cost on a new one.
type benchRequests struct {
	tmpl    *http.Request
	srv     *caddyhttp.Server
	w       http.ResponseWriter
	cookies []string
	i       int
}

func newBenchRequests(cookies []string, w http.ResponseWriter) *benchRequests {
	r := httptest.NewRequest(http.MethodGet, "/products/1", nil)
	r.RemoteAddr = "10.1.2.3:41234"
	r.Header.Set("User-Agent", benchUA)
	if len(cookies) > 0 {
		r.Header.Set("Cookie", "")
	}
	return &benchRequests{tmpl: r, srv: &caddyhttp.Server{}, w: w, cookies: cookies}
}

// next is the next session's request. One template is reused, as a
// request's headers are in the CPU cache when Caddy calls its handlers
// (it just parsed them); the sessions' cache entries are not.
func (br *benchRequests) next() *http.Request {
	if len(br.cookies) > 0 {
		br.tmpl.Header["Cookie"][0] = br.cookies[br.i%len(br.cookies)]
		br.i++
	}
	return caddyhttp.PrepareRequest(br.tmpl, caddy.NewReplacer(), br.w, br.srv)
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// benchServe runs serve over br's requests. handler=none passes every
// request straight to next: Caddy's own per-request setup, to subtract
// from handler=sessions.
func benchServe(b *testing.B, h *Handler, br *benchRequests, w *discard, next caddyhttp.Handler) {
	for _, name := range []string{"sessions", "none"} {
		b.Run("handler="+name, func(b *testing.B) {
			serve := h.ServeHTTP
			if name == "none" {
				serve = func(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
					return next.ServeHTTP(w, r)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				if err := serve(w, br.next(), next); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServeHTTPKnownSession is the hot path: requests on 10,000 known
// sessions, each from its known IP and device, answered from the local
// cache. The handler's own cost is handler=sessions minus handler=none.
func BenchmarkServeHTTPKnownSession(b *testing.B) {
	h, cookies := newBenchHandler(b, 10000)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	w := &discard{h: http.Header{}}
	br := newBenchRequests(cookies, w)
	// Warm: the first request of each session fills the cache.
	for range cookies {
		if err := h.ServeHTTP(w, br.next(), next); err != nil {
			b.Fatal(err)
		}
	}
	benchServe(b, h, br, w, next)
}

// BenchmarkServeHTTPAnonymous is a request without identity: it must cost
// next to nothing.
func BenchmarkServeHTTPAnonymous(b *testing.B) {
	h, _ := newBenchHandler(b, 2)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	w := &discard{h: http.Header{}}
	benchServe(b, h, newBenchRequests(nil, w), w, next)
}
