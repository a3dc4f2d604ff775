// Package admin serves the caddy-sessions admin API on Caddy's admin
// endpoint (module admin.api.sessions, under /sessions/; the routes are
// declared in routes.go, the realms' trackers registered in registry.go)
// and the end users' self-service answers (selfservice.go).
package admin

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

func init() {
	caddy.RegisterModule(API{})
}

// API is the admin API of caddy-sessions. It has no configuration: it
// serves every realm that a sessions handler of the running config tracks.
// Caddy's admin endpoint listens on localhost:2019 by default, so this API is
// never public unless the operator exposes the admin endpoint.
type API struct {
	mux   *http.ServeMux
	mount mount
}

// CaddyModule returns the Caddy module information.
func (API) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.sessions",
		New: func() caddy.Module { return new(API) },
	}
}

// Routes implements caddy.AdminRouter: the JSON API under /sessions/, the
// dashboard under /sessions/ui/. Requests a browser sends must carry the
// CSRF header to change anything (checkCSRF); API clients need not.
func (a *API) Routes() []caddy.AdminRoute {
	logger := caddy.Log().Named("admin.api.sessions")
	a.mount = mount{api: "/sessions", ui: "/sessions/ui", audit: func(r *http.Request, realm, user string) {
		auditLog(logger, r, "admin endpoint", realm, user)
	}}
	a.mux = a.newMux()
	return []caddy.AdminRoute{{Pattern: "/sessions/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func apiErr(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// index lists the realms served and the tokens cached on this instance.
func (a *API) index(c *call) error {
	realms := slices.DeleteFunc(realmNames(), func(r string) bool { return !a.serves(r) })
	return writeJSON(c.w, http.StatusOK, map[string]any{"realms": realms, "cache_entries": cacheEntries(), "denied_tokens": deniedTokens()})
}

// dashboard is the admin dashboard's page.
func (a *API) dashboard(c *call) error {
	return renderPage(c.w, "dashboard.html", dashboardPage{
		Title: a.title(), API: a.mount.api, Assets: a.mount.ui + "/assets",
	})
}

func (a *API) title() string {
	if a.mount.title != "" {
		return a.mount.title
	}
	return "Sessions"
}

// asset is one of the dashboard's files.
func (a *API) asset(c *call) error { return serveAsset(c.w, c.r, c.param("file")) }

//go:embed openapi.json
var openAPIDoc []byte

// openAPI is the API's contract.
func (a *API) openAPI(c *call) error {
	securityHeaders(c.w.Header())
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Cache-Control", "no-cache")
	_, err := c.w.Write(openAPIDoc)
	return err
}

// user is a user's summary.
func (a *API) user(c *call) error {
	sum, err := c.t.User(c.r.Context(), c.realm, c.user())
	if err != nil {
		return storeErr(err, "user")
	}
	return writeJSON(c.w, http.StatusOK, sum)
}

// erase deletes everything held about a user.
func (a *API) erase(c *call) error {
	user := c.user()
	if err := needUser(c, user); err != nil {
		return err
	}
	n, err := c.t.Erase(c.r.Context(), c.realm, user)
	if err != nil {
		return storeErr(err, "user")
	}
	return writeJSON(c.w, http.StatusOK, map[string]any{"user": user, "erased": true, "revoked_sessions": n})
}

// listSessions pages through a user's sessions, newest first.
func (a *API) listSessions(c *call) error {
	user := c.user()
	if err := needUser(c, user); err != nil {
		return err
	}
	q, err := parseListQuery(c.r.URL.Query())
	if err != nil {
		return err
	}
	list, total, err := c.t.Sessions(c.r.Context(), c.realm, user, q.state, q.offset, q.limit)
	if err != nil {
		return storeErr(err, "session")
	}
	return writeJSON(c.w, http.StatusOK, page(list, total, q))
}

// revokeAll revokes every active session of a user.
func (a *API) revokeAll(c *call) error {
	user := c.user()
	if err := needUser(c, user); err != nil {
		return err
	}
	closed, err := c.t.RevokeAll(c.r.Context(), c.realm, user, "")
	if err != nil {
		return storeErr(err, "session")
	}
	if closed == nil {
		closed = []*store.Session{}
	}
	return writeJSON(c.w, http.StatusOK, map[string]any{"revoked": closed})
}

// revoke revokes one session.
func (a *API) revoke(c *call) error {
	s, err := c.t.Revoke(c.r.Context(), c.realm, c.user(), c.param("id"))
	if err != nil {
		return storeErr(err, "session")
	}
	return writeJSON(c.w, http.StatusOK, s)
}

type listQuery struct {
	state         string
	offset, limit int
}

const maxLimit = 500

func parseListQuery(q url.Values) (listQuery, error) {
	lq := listQuery{state: "active", limit: 50}
	if s := q.Get("state"); s != "" {
		if s != "active" && s != "closed" && s != "all" {
			return lq, apiErr(http.StatusBadRequest, "state: %q is not active, closed or all", s)
		}
		lq.state = s
	}
	for _, f := range []struct {
		name string
		dst  *int
		max  int
	}{{"offset", &lq.offset, 1 << 30}, {"limit", &lq.limit, maxLimit}} {
		v := q.Get(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > f.max {
			return lq, apiErr(http.StatusBadRequest, "%s: %q is not a number from 0 to %d", f.name, v, f.max)
		}
		*f.dst = n
	}
	if lq.limit == 0 {
		lq.limit = 50
	}
	return lq, nil
}

func page(list []*store.Session, total int, q listQuery) map[string]any {
	return pageOf("sessions", list, total, q)
}

// pageOf is one page of a list under key, with total, offset, limit and,
// unless it is the last page, next_offset; a nil list is an empty one.
func pageOf[T any](key string, list []T, total int, q listQuery) map[string]any {
	if list == nil {
		list = []T{}
	}
	out := map[string]any{key: list, "total": total, "offset": q.offset, "limit": q.limit}
	if next := q.offset + len(list); next < total {
		out["next_offset"] = next
	}
	return out
}

// storeErr turns a store error into an API error; what names the thing
// that was not found.
func storeErr(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return apiErr(http.StatusNotFound, "%s not found", what)
	}
	return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err, Message: "session store unavailable"}
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// Interface guards
var (
	_ caddy.Module      = (*API)(nil)
	_ caddy.AdminRouter = (*API)(nil)
)
