package admin

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// CSRFHeader must be sent, with the value "1", on every state-changing
// request a browser makes to the dashboard's API or to self-service. A
// cross-site form or image cannot set a header, and a cross-site script
// cannot send one without a CORS preflight, which nothing here answers.
const CSRFHeader = "X-Sessions-CSRF"

func changesState(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// fromBrowser reports whether r carries what every current browser adds
// to a state-changing request (Origin, Sec-Fetch-Site). A client that
// sends neither is not a browser, so it cannot have been forged into
// sending an admin's or a user's credentials.
func fromBrowser(r *http.Request) bool {
	return r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != ""
}

// checkCSRF refuses a state-changing request that is cross-site or lacks
// CSRFHeader. With always unset (the admin endpoint's API, which scripts
// call), requests that do not come from a browser need no header.
func checkCSRF(r *http.Request, always bool) error {
	if !changesState(r.Method) || (!always && !fromBrowser(r)) {
		return nil
	}
	if !sameOrigin(r) {
		return apiErr(http.StatusForbidden, "cross-site request refused")
	}
	if r.Header.Get(CSRFHeader) != "1" {
		return apiErr(http.StatusForbidden, "state-changing requests need the header %s: 1 (CSRF defence)", CSRFHeader)
	}
	return nil
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
	if err != nil || u.Host == "" || u.Path != "" {
		return false // "null", or not an origin
	}
	scheme := requestScheme(r)
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(hostPort(u.Host, scheme), hostPort(r.Host, scheme))
}

// requestScheme is the scheme the browser used: https when Caddy
// terminated TLS, or when a trusted proxy in front says so.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if p := strings.ToLower(r.Header.Get("X-Forwarded-Proto")); p == "https" || p == "http" {
			return p
		}
	}
	return "http"
}

// hostPort spells host with its port, the scheme's default if none.
func hostPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "80"
	if scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// auditLog records a state-changing admin request that succeeded: who
// (the admin, as the auth handler in front named them), what, on whom.
func auditLog(logger *zap.Logger, r *http.Request, admin, realm, user string) {
	logger.Info("admin action",
		zap.String("admin", admin),
		zap.String("method", r.Method),
		zap.String("path", r.URL.EscapedPath()),
		zap.String("realm", realm),
		zap.String("user", user),
		zap.String("remote_ip", remoteIP(r)),
	)
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
