package admin

import (
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// Self answers a logged-in user's own requests under the self-service path:
//
//	GET    <path>       the user's sessions, the current one marked; a
//	                    browser asking for text/html gets the page
//	GET    <path>_/<file>      the page's script and style
//	DELETE <path><id>   end one of them, never the current one (409)
//	POST   <path><id>/delete   the same
//
// It only ever acts on the caller's own user. A state-changing request
// must be same-origin and carry CSRFHeader.
type Self struct {
	Prefix  string
	Realm   string
	Tracker Realm
	// Page is how the page looks.
	Page SelfPage
}

// SelfPage is the operator's touch on the "your sessions" page.
type SelfPage struct {
	// Title is the page's title; default "Your sessions".
	Title string `json:"title,omitempty"`
	// BackURL and BackLabel make a link back to the app.
	BackURL   string `json:"back_url,omitempty"`
	BackLabel string `json:"back_label,omitempty"`
}

// Serve handles r for user, whose current session is current. It writes
// JSON answers, errors included.
func (s Self) Serve(w http.ResponseWriter, r *http.Request, user, current string) {
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(s.Prefix, "/")), "/")
	ctx := r.Context()
	if file, ok := strings.CutPrefix(rest, "_/"); ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		if err := serveAsset(w, r, file); err != nil {
			writeAPIError(w, err)
		}
		return
	}
	if rest == "" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, "use GET to list, DELETE <id> to end a session")
			return
		}
		if wantsHTML(r) {
			if err := s.page(w); err != nil {
				writeAPIError(w, err)
			}
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
			// Risk signals are for admins: a thief on a flagged session
			// must not learn it was flagged.
			sess.Risk = nil
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
	if err := checkCSRF(r, true); err != nil {
		writeAPIError(w, err)
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
	sess.Risk = nil
	_ = writeJSON(w, http.StatusOK, sess)
}

// page writes the "your sessions" page; it fetches the list itself.
func (s Self) page(w http.ResponseWriter) error {
	base := strings.TrimSuffix(s.Prefix, "/") + "/"
	p := selfPage{Title: s.Page.Title, API: base, Assets: base + "_", BackURL: s.Page.BackURL, BackLabel: s.Page.BackLabel}
	if p.Title == "" {
		p.Title = "Your sessions"
	}
	if p.BackLabel == "" {
		p.BackLabel = "Back"
	}
	return renderPage(w, "self.html", p)
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
