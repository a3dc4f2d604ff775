// Package admin serves the caddy-sessions admin API on Caddy's admin
// endpoint (module admin.api.sessions, under /sessions/) and the end users'
// self-service answers.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sessions/caddy-sessions/tracker"
)

func init() {
	caddy.RegisterModule(API{})
}

// API is the admin API of caddy-sessions. It has no configuration: it
// serves every realm that a sessions handler of the running config tracks.
// Caddy's admin endpoint listens on localhost:2019 by default, so this API is
// never public unless the operator exposes the admin endpoint.
type API struct{}

// CaddyModule returns the Caddy module information.
func (API) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.sessions",
		New: func() caddy.Module { return new(API) },
	}
}

// Routes implements caddy.AdminRouter.
func (a *API) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/sessions/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// pathSegments splits the escaped path after /sessions/ and unescapes each
// segment, so user ids may contain "/" (as %2F) or any other byte.
func pathSegments(r *http.Request) ([]string, error) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/sessions/")
	rest = strings.TrimSuffix(rest, "/")
	if rest == "" {
		return nil, nil
	}
	parts := strings.Split(rest, "/")
	for i, p := range parts {
		s, err := url.PathUnescape(p)
		if err != nil {
			return nil, apiErr(http.StatusBadRequest, "bad path segment %q", p)
		}
		parts[i] = s
	}
	return parts, nil
}

func apiErr(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// methodNotAllowed answers 405; the Allow header goes on w's header, which
// Caddy's admin server keeps when it writes the error.
func methodNotAllowed(r *http.Request, allowed ...string) error {
	if w, ok := r.Context().Value(respKey{}).(http.ResponseWriter); ok {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
	}
	return apiErr(http.StatusMethodNotAllowed, "method %s not allowed; use %s", r.Method, strings.Join(allowed, ", "))
}

// respKey carries the response writer to methodNotAllowed.
type respKey struct{}

func (a *API) serve(w http.ResponseWriter, r *http.Request) error {
	r = r.WithContext(context.WithValue(r.Context(), respKey{}, w))
	seg, err := pathSegments(r)
	if err != nil {
		return err
	}
	if len(seg) == 0 {
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, http.MethodGet)
		}
		return writeJSON(w, http.StatusOK, map[string]any{"realms": realmNames(), "cache_entries": cacheEntries()})
	}
	t := lookup(seg[0])
	if t == nil {
		return apiErr(http.StatusNotFound, "unknown realm %q", seg[0])
	}
	realm := seg[0]
	if len(seg) == 2 && seg[1] == "settings" {
		return a.settings(w, r, t, realm)
	}
	if len(seg) == 2 && seg[1] == "users" {
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, http.MethodGet)
		}
		return a.users(w, r, t, realm)
	}
	if len(seg) < 3 || seg[1] != "users" {
		return apiErr(http.StatusNotFound, "no such endpoint %s", r.URL.Path)
	}
	user, rest := seg[2], seg[3:]
	if len(rest) == 0 {
		switch r.Method {
		case http.MethodGet:
			sum, err := t.User(r.Context(), realm, user)
			if err != nil {
				return storeErr(err, "user")
			}
			return writeJSON(w, http.StatusOK, sum)
		case http.MethodDelete:
			if err := needUser(r, t, realm, user); err != nil {
				return err
			}
			n, err := t.Erase(r.Context(), realm, user)
			if err != nil {
				return storeErr(err, "user")
			}
			return writeJSON(w, http.StatusOK, map[string]any{"user": user, "erased": true, "revoked_sessions": n})
		}
		return methodNotAllowed(r, http.MethodGet, http.MethodDelete)
	}
	switch rest[0] {
	case "sessions":
		return a.sessions(w, r, t, realm, user, rest[1:])
	case "devices":
		return a.devices(w, r, t, realm, user, rest[1:])
	case "violations":
		return a.violations(w, r, t, realm, user, rest[1:])
	case "exempt":
		return a.exempt(w, r, t, realm, user, rest[1:])
	case "limits":
		return a.limits(w, r, t, realm, user, rest[1:])
	case "activity":
		return a.activity(w, r, t, realm, user, rest[1:])
	case "sessions.csv":
		if len(rest) == 1 {
			return a.sessionsCSV(w, r, t, realm, user)
		}
	case "export":
		if len(rest) == 1 {
			return a.export(w, r, t, realm, user)
		}
	}
	return apiErr(http.StatusNotFound, "no such endpoint %s", r.URL.Path)
}

func (a *API) sessions(w http.ResponseWriter, r *http.Request, t *tracker.Tracker, realm, user string, rest []string) error {
	ctx := r.Context()
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		if err := needUser(r, t, realm, user); err != nil {
			return err
		}
		q, err := parseListQuery(r.URL.Query())
		if err != nil {
			return err
		}
		list, total, err := t.Sessions(ctx, realm, user, q.state, q.offset, q.limit)
		if err != nil {
			return storeErr(err, "session")
		}
		return writeJSON(w, http.StatusOK, page(list, total, q))
	case len(rest) == 0 && r.Method == http.MethodDelete:
		if err := needUser(r, t, realm, user); err != nil {
			return err
		}
		closed, err := t.RevokeAll(ctx, realm, user, "")
		if err != nil {
			return storeErr(err, "session")
		}
		if closed == nil {
			closed = []*tracker.Session{}
		}
		return writeJSON(w, http.StatusOK, map[string]any{"revoked": closed})
	case len(rest) == 1 && r.Method == http.MethodDelete:
		s, err := t.Revoke(ctx, realm, user, rest[0])
		if err != nil {
			return storeErr(err, "session")
		}
		return writeJSON(w, http.StatusOK, s)
	case len(rest) == 0:
		return methodNotAllowed(r, http.MethodGet, http.MethodDelete)
	case len(rest) == 1:
		return methodNotAllowed(r, http.MethodDelete)
	}
	return apiErr(http.StatusNotFound, "no such endpoint %s", r.URL.Path)
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

func page(list []*tracker.Session, total int, q listQuery) map[string]any {
	if list == nil {
		list = []*tracker.Session{}
	}
	out := map[string]any{"sessions": list, "total": total, "offset": q.offset, "limit": q.limit}
	if next := q.offset + len(list); next < total {
		out["next_offset"] = next
	}
	return out
}

// storeErr turns a store error into an API error; what names the thing
// that was not found.
func storeErr(err error, what string) error {
	if errors.Is(err, tracker.ErrNotFound) {
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
