package sessions

import (
	"net/http"
	"strings"
)

// cookieValue finds a cookie without parsing them all (http.Request.Cookie
// allocates every cookie). With wild, name is a prefix. It returns the full
// name found and the value.
func cookieValue(r *http.Request, name string, wild bool) (string, string, bool) {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok {
				continue
			}
			if k == name || (wild && strings.HasPrefix(k, name)) {
				v = strings.Trim(v, `"`)
				if v == "" {
					continue
				}
				return k, v, true
			}
		}
	}
	return "", "", false
}

// expireCookie tells the browser to drop the app's session cookie.
func expireCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
	})
}

// realmFor is the configured realm, or the request's host.
func (h *Handler) realmFor(r *http.Request) string {
	if h.Realm != "" {
		return h.Realm
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	return strings.ToLower(host)
}
