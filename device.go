package sessions

import (
	"net"
	"net/http"
	"strings"
	"time"
)

// This file owns the module's device cookie on the handler's side: which
// device a request is on (the tracker decides), and the cookie the answer
// sets, with its domain.

// deviceFor is the device of a request (tracker.DeviceFor decides) and
// the device cookie to set, "" when the request's is valid. A client of an
// app with no session cookie configured (a user placeholder alone) gets a
// device derived from what it sends, so one that keeps no cookies stays one
// device.
func (h *Handler) deviceFor(id ident, user string) (dev, setCookie string) {
	dev, setCookie, _ = h.tracker.DeviceFor(id.cookies.device, h.derivesDevice(), id.realm, user, id.ua, id.ip)
	return dev, setCookie
}

func (h *Handler) derivesDevice() bool { return len(h.cookies.patterns) == 0 }

// setDeviceCookie gives the client the device cookie value the tracker
// decided on.
func (h *Handler) setDeviceCookie(w http.ResponseWriter, r *http.Request, value string) {
	http.SetCookie(w, &http.Cookie{
		Name: h.DeviceCookie, Value: value, Path: "/", Domain: h.deviceCookieDomain(r.Host),
		// Browsers cap cookie lifetime at 400 days.
		MaxAge: int((400 * 24 * time.Hour).Seconds()), HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
	})
}

// deviceCookieDomain is device_cookie_domain when host is within it
// (a browser refuses a Domain the host is not in), else "" (host only).
func (h *Handler) deviceCookieDomain(host string) string {
	d := strings.ToLower(strings.TrimPrefix(h.DeviceCookieDomain, "."))
	if d == "" {
		return ""
	}
	if hst, _, err := net.SplitHostPort(host); err == nil {
		host = hst
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == d || strings.HasSuffix(host, "."+d) {
		return d
	}
	return ""
}
