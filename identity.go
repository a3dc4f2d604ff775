package sessions

import (
	"net/http"
	"strings"
)

// cookieValue finds a cookie without parsing them all (http.Request.Cookie
// allocates every cookie). With wild, name is a prefix. It returns the full
// name found and the value.
func cookieValue(r *http.Request, name string, wild bool) (string, string, bool) {
	k, v, _ := cookieValues(r, name, wild, "")
	return k, v, v != ""
}

// cookieValues is cookieValue that also finds the cookie named dev (if not
// ""), in the same pass: the first non-empty value of each.
func cookieValues(r *http.Request, name string, wild bool, dev string) (found, value, devValue string) {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			if i := strings.IndexByte(line, ';'); i >= 0 {
				part, line = line[:i], line[i+1:]
			} else {
				part, line = line, ""
			}
			part = strings.TrimSpace(part)
			i := strings.IndexByte(part, '=')
			if i < 0 {
				continue
			}
			k := part[:i]
			if value == "" && (k == name || (wild && strings.HasPrefix(k, name))) {
				if v := strings.Trim(part[i+1:], `"`); v != "" {
					found, value = k, v
				}
			}
			if devValue == "" && dev != "" && k == dev {
				devValue = strings.Trim(part[i+1:], `"`)
			}
			if value != "" && (devValue != "" || dev == "") {
				return found, value, devValue
			}
		}
	}
	return found, value, devValue
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
