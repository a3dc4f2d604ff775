package sessions

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sessions/caddy-sessions/tracker"
)

// preparedRequest is a request as Caddy hands it to its first handler.
func preparedRequest(cookie string) (*http.Request, *caddy.Replacer) {
	r := httptest.NewRequest(http.MethodGet, "/account", nil)
	r.RemoteAddr = "10.1.2.3:41234"
	r.Header.Set("User-Agent", benchUA)
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	repl := caddy.NewReplacer()
	return caddyhttp.PrepareRequest(r, repl, httptest.NewRecorder(), &caddyhttp.Server{}), repl
}

// placeholderValues shows the four placeholders, "-" for an empty value.
func placeholderValues(repl *caddy.Replacer) string {
	return repl.ReplaceKnown("{http.sessions.user}|{http.sessions.id}|{http.sessions.device}|{http.sessions.new}", "-")
}

// The last publication in a request wins, whether its values were mapped
// or set, as it did when every one was set.
func TestPublishPlaceholdersLastWins(t *testing.T) {
	vars := func(user, id, dev string) tracker.Vars {
		return tracker.NewVars(user, id, dev, "")
	}
	a, b := vars("alice", "sa", "da"), vars("bob", "sb", "db")
	publish := func(repl *caddy.Replacer, v tracker.Vars) {
		publishPlaceholders(repl, sessionLookup(v), v, false)
	}
	setNew := func(repl *caddy.Replacer, v tracker.Vars) {
		(&Handler{}).setPlaceholders(repl, tracker.Result{Vars: v, New: true})
	}
	for _, c := range []struct {
		name  string
		steps []func(*caddy.Replacer)
		want  string
	}{
		{"nothing", nil, "{http.sessions.user}|{http.sessions.id}|{http.sessions.device}|{http.sessions.new}"},
		{"mapped", []func(*caddy.Replacer){func(r *caddy.Replacer) { publish(r, a) }}, "alice|sa|da|false"},
		{"cleared", []func(*caddy.Replacer){clearPlaceholders}, "-|-|-|false"},
		{"cleared then mapped", []func(*caddy.Replacer){clearPlaceholders, func(r *caddy.Replacer) { publish(r, a) }}, "alice|sa|da|false"},
		{"mapped then cleared", []func(*caddy.Replacer){func(r *caddy.Replacer) { publish(r, a) }, clearPlaceholders}, "-|-|-|false"},
		{"mapped twice", []func(*caddy.Replacer){func(r *caddy.Replacer) { publish(r, a) }, func(r *caddy.Replacer) { publish(r, b) }}, "bob|sb|db|false"},
		{"mapped then set", []func(*caddy.Replacer){func(r *caddy.Replacer) { publish(r, a) }, func(r *caddy.Replacer) { setNew(r, b) }}, "bob|sb|db|true"},
		{"set then mapped", []func(*caddy.Replacer){func(r *caddy.Replacer) { setNew(r, a) }, func(r *caddy.Replacer) { publish(r, b) }}, "bob|sb|db|false"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, repl := preparedRequest("")
			for _, step := range c.steps {
				step(repl)
			}
			if got := placeholderValues(repl); got != c.want {
				t.Errorf("placeholders = %q, want %q", got, c.want)
			}
		})
	}
}

// Through the handler: a known session's request gets its placeholders on
// a fresh replacer, and a second handler in the same request (another
// cookie) overrides what the first one published.
func TestServeHTTPPlaceholders(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	h := &Handler{Realm: "ph", SessionCookie: CookieNames{"sid"}, Secret: secret}
	provisionTest(t, h)
	other := &Handler{Realm: "ph2", SessionCookie: CookieNames{"other"}, Secret: secret}
	provisionTest(t, other)
	dev, devCookie := h.keys.NewDevice()
	res, err := h.tracker.Login(context.Background(), tracker.Request{
		Realm: "ph", Token: "tok-1", User: "alice", IP: "10.1.2.3", UserAgent: benchUA, DeviceID: dev,
	})
	if err != nil {
		t.Fatal(err)
	}
	cookie := "sid=tok-1; " + h.DeviceCookie + "=" + devCookie
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	want := "alice|" + res.SessionID + "|" + dev + "|false"
	for i := range 3 { // the first fills the cache's lookup, the others use it
		r, repl := preparedRequest(cookie)
		if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
			t.Fatal(err)
		}
		if got := placeholderValues(repl); got != want {
			t.Fatalf("request %d: placeholders = %q, want %q", i, got, want)
		}
	}
	// other finds no cookie of its own: it clears, then h publishes.
	r, repl := preparedRequest(cookie)
	if err := other.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	if got := placeholderValues(repl); got != "-|-|-|false" {
		t.Fatalf("after an untracked handler: %q", got)
	}
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	if got := placeholderValues(repl); got != want {
		t.Fatalf("after the tracking handler: %q, want %q", got, want)
	}
	// And the other way round.
	r, repl = preparedRequest(cookie)
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	if err := other.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	if got := placeholderValues(repl); got != "-|-|-|false" {
		t.Fatalf("untracked handler after the tracking one: %q", got)
	}
}
