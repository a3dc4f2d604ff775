package sessions

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sessions/caddy-sessions/tracker"
)

const benchUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"

// newBenchHandler provisions a handler on the memory store with n sessions
// already logged in, and returns requests that carry them.
func newBenchHandler(b *testing.B, n int) (*Handler, []*http.Request) {
	b.Helper()
	b.Setenv("XDG_DATA_HOME", b.TempDir())
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	h := &Handler{Realm: "bench", SessionCookie: "sid", Secret: "0123456789abcdef0123456789abcdef"}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Cleanup() })
	reqs := make([]*http.Request, n)
	for i := range reqs {
		tok := fmt.Sprintf("token-%06d", i)
		dev, _ := h.keys.NewDevice()
		if _, err := h.tracker.Login(context.Background(), tracker.Request{
			Realm: "bench", Token: tok, User: fmt.Sprintf("user%d", i%(n/2+1)), IP: "10.1.2.3", UserAgent: benchUA, DeviceID: dev,
		}); err != nil {
			b.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, "/products/1", nil)
		r.Header.Set("Cookie", "theme=dark; sid="+tok+"; "+h.DeviceCookie+"="+h.keys.DeviceCookie(dev))
		r.Header.Set("User-Agent", benchUA)
		repl := caddy.NewReplacer()
		c := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
		c = context.WithValue(c, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "10.1.2.3"})
		reqs[i] = r.WithContext(c)
	}
	return h, reqs
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkServeHTTPKnownSession is the hot path: a request on a known
// session from its known IP and device, answered from the local cache.
func BenchmarkServeHTTPKnownSession(b *testing.B) {
	h, reqs := newBenchHandler(b, 10000)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	w := &discard{h: http.Header{}}
	// Warm: the first request of each session fills the cache.
	for _, r := range reqs {
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		clear(w.h)
		if err := h.ServeHTTP(w, reqs[i%len(reqs)], next); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeHTTPAnonymous is a request without identity: it must cost
// next to nothing.
func BenchmarkServeHTTPAnonymous(b *testing.B) {
	h, _ := newBenchHandler(b, 2)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("User-Agent", benchUA)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
}
