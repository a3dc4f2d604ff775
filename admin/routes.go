package admin

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// The admin API, declared: one net/http pattern per endpoint. A request
// whose path matches no pattern is a 404; one whose path matches with
// another method is a 405 naming the methods that would (Allow). Errors are
// caddy.APIError, which Caddy's admin server writes as {"error": ...}.

// call is one admin request: its writer and request, and the tracker and
// realm its {realm} names.
type call struct {
	w     http.ResponseWriter
	r     *http.Request
	t     Realm
	realm string
}

// param is a path wildcard, unescaped: ids may hold "/" (as %2F) or any
// other byte.
func (c *call) param(name string) string {
	v, err := url.PathUnescape(c.r.PathValue(name))
	if err != nil {
		return c.r.PathValue(name)
	}
	return v
}

func (c *call) user() string { return c.param("user") }

type route struct {
	pattern string
	serve   func(*call) error
}

func (a *API) routes() []route {
	return []route{
		{"GET /sessions/{$}", a.index},
		{"GET /sessions/{realm}/settings", a.getSettings},
		{"PUT /sessions/{realm}/settings", a.putSettings},
		{"PATCH /sessions/{realm}/settings", a.putSettings},
		{"GET /sessions/{realm}/users", a.users},
		{"GET /sessions/{realm}/users/{user}", a.user},
		{"DELETE /sessions/{realm}/users/{user}", a.erase},
		{"GET /sessions/{realm}/users/{user}/sessions", a.listSessions},
		{"DELETE /sessions/{realm}/users/{user}/sessions", a.revokeAll},
		{"DELETE /sessions/{realm}/users/{user}/sessions/{id}", a.revoke},
		{"GET /sessions/{realm}/users/{user}/sessions.csv", a.sessionsCSV},
		{"GET /sessions/{realm}/users/{user}/export", a.export},
		{"GET /sessions/{realm}/users/{user}/devices", a.devices},
		{"PUT /sessions/{realm}/users/{user}/devices/{device}", a.blockDevice},
		{"GET /sessions/{realm}/users/{user}/violations", a.violations},
		{"PATCH /sessions/{realm}/users/{user}/violations", a.markViewed},
		{"PATCH /sessions/{realm}/users/{user}/violations/{id}", a.markViewed},
		{"PUT /sessions/{realm}/users/{user}/exempt", a.exempt},
		{"PUT /sessions/{realm}/users/{user}/limits", a.limits},
		{"GET /sessions/{realm}/users/{user}/activity", a.activity},
		{"GET /sessions/{realm}/users/{user}/activity/{date}", a.activityDay},
	}
}

// methods a route may have, for Allow.
var methods = []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodPost}

type callKey struct{}

// newMux builds the router: each route runs with its call in the
// request's context and leaves its error there.
func (a *API) newMux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		serve := rt.serve
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			res := r.Context().Value(callKey{}).(*result)
			c := &call{w: w, r: r}
			if strings.Contains(rt.pattern, "{realm}") {
				c.realm = c.param("realm")
				t, err := lookup(c.realm)
				if err != nil {
					res.err = err
					return
				}
				c.t = t
			}
			res.err = serve(c)
		})
	}
	return mux
}

type result struct{ err error }

// routingPath is the escaped path with "." and ".." segments (user ids
// like any other) escaped too, so the router takes them as ids rather
// than cleaning them away.
func routingPath(escaped string) string {
	segs := strings.Split(escaped, "/")
	for i, s := range segs {
		if s == "." || s == ".." {
			segs[i] = strings.ReplaceAll(s, ".", "%2E")
		}
	}
	return strings.Join(segs, "/")
}

// serve routes an admin request. The router matches the escaped path, so
// an id's %2F stays inside its segment and no id is "cleaned" into a
// redirect; call.param unescapes it.
func (a *API) serve(w http.ResponseWriter, r *http.Request) error {
	routed := r.Clone(r.Context())
	routed.URL.Path, routed.URL.RawPath = routingPath(r.URL.EscapedPath()), ""
	if _, pattern := a.mux.Handler(routed); pattern == "" {
		var allow []string
		for _, m := range methods {
			probe := routed.Clone(routed.Context())
			probe.Method = m
			if _, p := a.mux.Handler(probe); p != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			return apiErr(http.StatusNotFound, "no such endpoint %s", r.URL.Path)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed; use %s", r.Method, strings.Join(allow, ", "))
	}
	res := &result{}
	a.mux.ServeHTTP(w, routed.WithContext(context.WithValue(routed.Context(), callKey{}, res)))
	return res.err
}
