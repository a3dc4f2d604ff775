package admin

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// Self answers a logged-in user's own requests under the self-service path:
//
//	GET    <path>       the user's sessions, the current one marked
//	DELETE <path><id>   end one of them, never the current one (409)
//	POST   <path><id>/delete   the same, for HTML forms
//
// It only ever acts on the caller's own user, and refuses cross-site
// state-changing requests.
type Self struct {
	Prefix  string
	Realm   string
	Tracker Realm
}

// Serve handles r for user, whose current session is current. It writes
// JSON answers, errors included.
func (s Self) Serve(w http.ResponseWriter, r *http.Request, user, current string) {
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(s.Prefix, "/")), "/")
	ctx := r.Context()
	if rest == "" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, "use GET to list, DELETE <id> to end a session")
			return
		}
		q, err := parseListQuery(r.URL.Query())
		if err != nil {
			writeAPIError(w, err)
			return
		}
		list, total, err := s.Tracker.Sessions(ctx, s.Realm, user, q.state, q.offset, q.limit)
		if err != nil {
			writeAPIError(w, storeErr(err, "session"))
			return
		}
		for _, sess := range list {
			sess.Current = sess.ID == current
		}
		out := page(list, total, q)
		out["user"], out["current"] = user, current
		_ = writeJSON(w, http.StatusOK, out)
		return
	}
	id, action, _ := strings.Cut(rest, "/")
	if !(r.Method == http.MethodDelete && action == "") && !(r.Method == http.MethodPost && action == "delete") {
		writeError(w, http.StatusMethodNotAllowed, "use DELETE <id> or POST <id>/delete")
		return
	}
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-site request refused")
		return
	}
	if id == current {
		writeError(w, http.StatusConflict, "this is your current session: log out instead")
		return
	}
	// Only sessions of the caller: the store is asked under the caller's
	// user, so another user's id is simply not found.
	sess, err := s.Tracker.Revoke(ctx, s.Realm, user, id)
	if err != nil {
		writeAPIError(w, storeErr(err, "session"))
		return
	}
	_ = writeJSON(w, http.StatusOK, sess)
}

// sameOrigin refuses requests a browser marks as coming from another site.
// Clients that send neither header are not browsers and cannot be forged
// into sending the user's cookies.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	_ = writeJSON(w, status, map[string]string{"error": msg})
}

func writeAPIError(w http.ResponseWriter, err error) {
	status, msg := http.StatusInternalServerError, "internal error"
	var ae caddy.APIError
	if errors.As(err, &ae) {
		status, msg = ae.HTTPStatus, ae.Message
	}
	writeError(w, status, msg)
}
