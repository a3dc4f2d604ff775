package admin

import (
	"context"
	"net/http"
	"net/url"
	"slices"
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
		{"GET /{$}", a.index},
		{"GET /{realm}/settings", a.getSettings},
		{"PUT /{realm}/settings", a.putSettings},
		{"PATCH /{realm}/settings", a.putSettings},
		{"GET /{realm}/users", a.users},
		{"GET /{realm}/users/{user}", a.user},
		{"DELETE /{realm}/users/{user}", a.erase},
		{"GET /{realm}/users/{user}/sessions", a.listSessions},
		{"DELETE /{realm}/users/{user}/sessions", a.revokeAll},
		{"DELETE /{realm}/users/{user}/sessions/{id}", a.revoke},
		{"GET /{realm}/users/{user}/sessions.csv", a.sessionsCSV},
		{"GET /{realm}/users/{user}/export", a.export},
		{"GET /{realm}/users/{user}/devices", a.devices},
		{"PUT /{realm}/users/{user}/devices/{device}", a.blockDevice},
		{"GET /{realm}/users/{user}/violations", a.violations},
		{"GET /{realm}/users/{user}/risk", a.risks},
		{"GET /{realm}/users/{user}/alerts", a.alerts},
		{"PATCH /{realm}/users/{user}/violations", a.markViewed},
		{"PATCH /{realm}/users/{user}/violations/{id}", a.markViewed},
		{"PUT /{realm}/users/{user}/exempt", a.exempt},
		{"PUT /{realm}/users/{user}/limits", a.limits},
		{"GET /{realm}/users/{user}/activity", a.activity},
		{"GET /{realm}/users/{user}/activity/{date}", a.activityDay},
	}
}

// pageRoutes are the dashboard and its files, under the mount's UI path.
func (a *API) pageRoutes() []route {
	return []route{
		{"GET /{$}", a.dashboard},
		{"GET /assets/{file}", a.asset},
	}
}

// docRoute is the API's contract (OpenAPI), beside its routes.
func (a *API) docRoute() route { return route{"GET /openapi.json", a.openAPI} }

// methods a route may have, for Allow.
var methods = []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodPost}

type callKey struct{}

// mount says where an API's routes live and how it guards them.
type mount struct {
	// api is the path prefix of the JSON routes ("/sessions" on Caddy's
	// admin endpoint); ui that of the dashboard ("/sessions/ui").
	api, ui string
	// realms, when set, are the only realms served.
	realms []string
	// title is the dashboard's title.
	title string
	// csrfAlways requires the CSRF header on every state-changing
	// request, not only on those a browser sent (see checkCSRF).
	csrfAlways bool
	// audit records a state-changing request that succeeded.
	audit func(r *http.Request, realm, user string)
}

// newMux builds the router: each route runs with its call in the
// request's context and leaves its error there.
func (a *API) newMux() *http.ServeMux {
	mux := http.NewServeMux()
	add := func(prefix string, rt route) {
		method, pattern, _ := strings.Cut(rt.pattern, " ")
		serve := rt.serve
		mux.HandleFunc(method+" "+prefix+pattern, func(w http.ResponseWriter, r *http.Request) {
			res := r.Context().Value(callKey{}).(*result)
			if res.err = checkCSRF(r, a.mount.csrfAlways); res.err != nil {
				return
			}
			c := &call{w: w, r: r}
			if strings.Contains(pattern, "{realm}") {
				c.realm = c.param("realm")
				t, err := a.lookup(c.realm)
				if err != nil {
					res.err = err
					return
				}
				c.t = t
			}
			res.err = serve(c)
			if res.err == nil && changesState(r.Method) && a.mount.audit != nil {
				a.mount.audit(r, c.realm, c.param("user"))
			}
		})
	}
	for _, rt := range append(a.routes(), a.docRoute()) {
		add(a.mount.api, rt)
	}
	if a.mount.ui != "" {
		for _, rt := range a.pageRoutes() {
			add(a.mount.ui, rt)
		}
	}
	return mux
}

// lookup is the tracker for realm, if this mount serves it.
func (a *API) lookup(realm string) (Realm, error) {
	if !a.serves(realm) {
		return nil, apiErr(http.StatusNotFound, "unknown realm %q", realm)
	}
	return lookup(realm)
}

func (a *API) serves(realm string) bool {
	return len(a.mount.realms) == 0 || slices.Contains(a.mount.realms, realm)
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
