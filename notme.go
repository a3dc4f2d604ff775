package sessions

// This file owns the "this wasn't me" link every alert carries and the
// page it opens: signed, expiring and single-use; a GET only shows what
// happened, the page's one button (a POST) revokes that session, blocks
// that device and records a violation.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// notMeClaim is what a link says: realm, user, finding, the user's time
// zone (to show times in) and when it expires (Unix seconds).
type notMeClaim struct {
	R string `json:"r"`
	U string `json:"u"`
	F string `json:"f"`
	Z string `json:"z,omitempty"`
	X int64  `json:"x"`
}

// notMeLink is the signed link of a finding.
func (h *Handler) notMeLink(realm, user, finding, zone string, expires time.Time) string {
	b, _ := json.Marshal(notMeClaim{R: realm, U: user, F: finding, Z: zone, X: expires.Unix()})
	payload := base64.RawURLEncoding.EncodeToString(b)
	return h.Risk.Notify.Link + "?t=" + payload + "." + h.keys.SignLink(payload)
}

var (
	errLinkInvalid = errors.New("this link is not valid")
	errLinkExpired = errors.New("this link has expired")
)

// maxLinkToken bounds what is decoded of a link.
const maxLinkToken = 4096

// readNotMe verifies a link's token.
func (h *Handler) readNotMe(token string, now time.Time) (notMeClaim, error) {
	var c notMeClaim
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > maxLinkToken || !h.keys.VerifyLink(payload, sig) {
		return c, errLinkInvalid
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil || json.Unmarshal(b, &c) != nil || c.F == "" {
		return c, errLinkInvalid
	}
	if now.Unix() > c.X {
		return c, errLinkExpired
	}
	return c, nil
}

// notMePage is what the page shows.
type notMePage struct {
	State   string // confirm, done, used, expired, invalid, error
	Token   string
	What    []string
	When    string
	Device  string
	Where   string
	IP      string
	Outcome tracker.ReportOutcome
}

// serveNotMe answers the link's path: GET and HEAD show the finding and
// the button; POST (the button) acts, once.
func (h *Handler) serveNotMe(w http.ResponseWriter, r *http.Request) error {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Security-Policy", notMeCSP)
	hdr.Set("Referrer-Policy", "no-referrer") // the token is in the URL
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return h.showNotMe(w, r, r.URL.Query().Get("t"))
	case http.MethodPost:
		if !sameOriginPost(r) {
			return h.notMePage(w, http.StatusForbidden, notMePage{State: "invalid"})
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxLinkToken+64)
		if err := r.ParseForm(); err != nil {
			return h.notMePage(w, http.StatusBadRequest, notMePage{State: "invalid"})
		}
		return h.confirmNotMe(w, r, r.PostForm.Get("t"))
	}
	hdr.Set("Allow", "GET, HEAD, POST")
	return h.notMePage(w, http.StatusMethodNotAllowed, notMePage{State: "invalid"})
}

func (h *Handler) showNotMe(w http.ResponseWriter, r *http.Request, token string) error {
	c, f, status, state := h.notMeFinding(r, token)
	if f == nil {
		return h.notMePage(w, status, notMePage{State: state})
	}
	p := describeFinding(c, f)
	p.State, p.Token = "confirm", token
	if used, err := h.tracker.Claimed(r.Context(), f.ID); err == nil && used {
		p.State, status = "used", http.StatusGone
	}
	return h.notMePage(w, status, p)
}

func (h *Handler) confirmNotMe(w http.ResponseWriter, r *http.Request, token string) error {
	c, f, status, state := h.notMeFinding(r, token)
	if f == nil {
		return h.notMePage(w, status, notMePage{State: state})
	}
	p := describeFinding(c, f)
	ctx := detached(r)
	// Claimed for as long as the link could be presented, and taken back
	// if the report fails, so that a retry can act.
	first, err := h.tracker.Claim(ctx, f.ID, h.Risk.Notify.linkTTL()+time.Hour)
	switch {
	case err != nil:
		h.storeError(err)
		return h.notMePage(w, http.StatusServiceUnavailable, notMePage{State: "error"})
	case !first:
		p.State = "used"
		return h.notMePage(w, http.StatusGone, p)
	}
	out, err := h.tracker.Report(ctx, c.R, c.U, f)
	if err != nil {
		h.storeError(err)
		if rerr := h.tracker.Release(ctx, f.ID); rerr != nil {
			h.storeError(rerr)
		}
		return h.notMePage(w, http.StatusServiceUnavailable, notMePage{State: "error"})
	}
	h.logger.Info("user reported a sign-in as not theirs", zap.String("realm", c.R), zap.String("finding", f.ID),
		zap.Bool("session_ended", out.SessionEnded), zap.Bool("device_blocked", out.DeviceBlocked))
	p.State, p.Outcome = "done", out
	return h.notMePage(w, http.StatusOK, p)
}

// notMeFinding reads the token and its finding; without one, the status
// and page state to answer with.
func (h *Handler) notMeFinding(r *http.Request, token string) (notMeClaim, *store.RiskRecord, int, string) {
	c, err := h.readNotMe(token, time.Now())
	switch {
	case errors.Is(err, errLinkExpired):
		return c, nil, http.StatusGone, "expired"
	case err != nil:
		return c, nil, http.StatusNotFound, "invalid"
	}
	f, err := h.tracker.Finding(r.Context(), c.R, c.U, c.F)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return c, nil, http.StatusNotFound, "invalid"
	case err != nil:
		h.storeError(err)
		return c, nil, http.StatusServiceUnavailable, "error"
	}
	return c, f, http.StatusOK, ""
}

// describeFinding renders a finding for the page, times in the user's zone.
func describeFinding(c notMeClaim, f *store.RiskRecord) notMePage {
	zone, err := time.LoadLocation(c.Z)
	if err != nil || c.Z == "" {
		zone = time.UTC
	}
	p := notMePage{
		When:   f.At.In(zone).Format("Monday 2 January 2006, 15:04 MST"),
		Device: agentText(f.Agent.Browser, f.Agent.OS),
		Where:  f.Location.String(),
		IP:     f.IP,
		What:   []string{signalWords(f.Signal)},
	}
	if p.Device == "" {
		p.Device = "an unknown browser"
	}
	return p
}

// signalWords says what a signal means to the user.
func signalWords(s string) string {
	switch s {
	case "cookie_moved":
		return "Your signed-in session was used from another browser."
	case "new_device":
		return "Someone signed in to your account from a device you have not used before."
	case "new_country":
		return "Someone signed in to your account from a country you have not signed in from recently."
	case "impossible_travel":
		return "Someone signed in to your account from a place too far from your last sign-in to have travelled there since."
	case "distant_concurrent":
		return "Your account was in use in two distant places at the same time."
	}
	return "An unusual sign-in to your account."
}

// sameOriginPost refuses a POST a browser marks as cross-site.
func sameOriginPost(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		// The form's token is what authorises the POST: a page that
		// could submit it could open the link itself. Browsers send
		// "null" under no-referrer.
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func (h *Handler) notMePage(w http.ResponseWriter, status int, p notMePage) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	return notMeTemplate.Execute(w, p)
}

// notMeStyle is the page's only style; the CSP allows it by its hash.
const notMeStyle = `body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1d2430}` +
	`h1{font-size:1.5rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{color:#5b6473}` +
	`button{font:inherit;background:#b42318;color:#fff;border:0;border-radius:.4rem;padding:.6rem 1.2rem;cursor:pointer}` +
	`button:focus-visible{outline:3px solid #1d4ed8;outline-offset:2px}.note{color:#5b6473}.ok{color:#05603a}`

var notMeCSP = func() string {
	sum := sha256.Sum256([]byte(notMeStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

var notMeTemplate = template.Must(template.New("notme").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex">
<title>{{if eq .State "done"}}Done{{else}}Was this you?{{end}}</title>
<style>` + notMeStyle + `</style></head><body>
{{- if eq .State "confirm" "done" "used"}}
<h1>{{if eq .State "done"}}We locked that sign-in out{{else}}Was this you?{{end}}</h1>
{{range .What}}<p>{{.}}</p>{{end}}
<dl id="finding">
<dt>When</dt><dd>{{.When}}</dd>
<dt>Device</dt><dd>{{.Device}}</dd>
<dt>Approximate location</dt><dd>{{.Where}}</dd>
{{if .IP}}<dt>IP address</dt><dd>{{.IP}}</dd>{{end}}
</dl>
{{end -}}
{{if eq .State "confirm"}}
<p>If this was you, there is nothing to do: you can close this page.</p>
<form method="post">
<input type="hidden" name="t" value="{{.Token}}">
<button type="submit" id="not-me">This wasn't me</button>
</form>
<p class="note">The button signs that session out everywhere and blocks that device. Opening this page changed nothing.</p>
{{else if eq .State "done"}}
<p class="ok" id="result">{{if .Outcome.SessionEnded}}That session is signed out. {{end}}{{if .Outcome.DeviceBlocked}}That device is blocked. {{end}}The site's administrators have been told.</p>
<p><strong>Change your password now</strong>: whoever signed in may know it.</p>
{{else if eq .State "used"}}
<p id="result">This link has been used already: that sign-in was locked out when it was.</p>
{{else if eq .State "expired"}}
<h1>This link has expired</h1>
<p id="result">If you still think someone else is using your account, sign in and check your sessions, and change your password.</p>
{{else if eq .State "error"}}
<h1>Something went wrong</h1>
<p id="result">We could not act on this link right now. Please try again in a minute.</p>
{{else}}
<h1>This link is not valid</h1>
<p id="result">It may have been copied incompletely. Open it again from the e-mail.</p>
{{end}}
</body></html>
`))
