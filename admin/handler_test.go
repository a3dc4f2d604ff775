package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestHandlerCaddyfile(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    Handler
		wantErr string
	}{
		{in: `sessions_admin /admin/sessions`, want: Handler{Prefix: "/admin/sessions"}},
		{in: "sessions_admin /ops/ {\n realm shop school\n realm other\n title \"Ops: sessions\"\n audit_user {http.request.header.X-User}\n}",
			want: Handler{Prefix: "/ops/", Realms: []string{"shop", "school", "other"}, Title: "Ops: sessions", AuditUser: "{http.request.header.X-User}"}},
		{in: `sessions_admin`, wantErr: "wrong argument count"},
		{in: `sessions_admin /a /b`, wantErr: "wrong argument count"},
		{in: "sessions_admin /a {\n realm\n}", wantErr: "wrong argument count"},
		{in: "sessions_admin /a {\n title a b\n}", wantErr: "wrong argument count"},
		{in: "sessions_admin /a {\n colour red\n}", wantErr: `unknown subdirective "colour"`},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.in))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || h.Prefix != c.want.Prefix || strings.Join(h.Realms, ",") != strings.Join(c.want.Realms, ",") ||
			h.Title != c.want.Title || h.AuditUser != c.want.AuditUser {
			t.Errorf("%q: %+v, %v; want %+v", c.in, h, err, c.want)
		}
	}
}

// Validate names the field and the value, for JSON and Caddyfile alike.
func TestHandlerValidate(t *testing.T) {
	for _, c := range []struct {
		h    Handler
		want string
	}{
		{Handler{}, `prefix: ""`},
		{Handler{Prefix: "/"}, `prefix: "/"`},
		{Handler{Prefix: "admin"}, `prefix: "admin"`},
		{Handler{Prefix: "/{http.request.host}"}, `prefix: "/{http.request.host}"`},
		{Handler{Prefix: "/a/*"}, `prefix: "/a/*"`},
		{Handler{Prefix: "/a", Realms: []string{"{host}"}}, `realm: "{host}"`},
	} {
		if err := c.h.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error with %q", c.h, err, c.want)
		}
	}
	if err := (&Handler{Prefix: "/admin/sessions/", Realms: []string{"shop"}}).Validate(); err != nil {
		t.Errorf("a good config refused: %v", err)
	}
}

func TestWantsHTML(t *testing.T) {
	for accept, want := range map[string]bool{
		"": false, "*/*": false, "application/json": false, "text/html": true,
		"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8": true,
		"application/json, text/html;q=0.5":                                          false, "text/html;q=0": false, "text/html;q=abc": false,
	} {
		r := httptestRequest(accept)
		if got := wantsHTML(r); got != want {
			t.Errorf("wantsHTML(Accept %q) = %v, want %v", accept, got, want)
		}
	}
}

func httptestRequest(accept string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	return r
}
