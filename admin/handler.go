package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterDirective("sessions_admin", parseHandlerCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("sessions_admin", httpcaddyfile.After, "forward_auth")
}

// Handler serves the admin dashboard and the JSON API it uses on a site,
// under Prefix: the page at <prefix>/, its files at <prefix>/assets/, the
// API at <prefix>/api/ (the same routes as on Caddy's admin endpoint,
// where the dashboard is at /sessions/ui/). It has no authentication of
// its own: put it behind basic_auth, forward_auth or another auth handler
// in the same route. Every state-changing request needs the CSRF header
// and is written to the audit log with the admin's identity.
//
// Requests outside Prefix go to the next handler.
type Handler struct {
	// Prefix is the path the dashboard lives under, such as
	// /admin/sessions (no trailing slash).
	Prefix string `json:"prefix"`
	// Realms, when set, are the only realms the dashboard shows and acts
	// on; by default every realm of the running config.
	Realms []string `json:"realms,omitempty"`
	// Title is the page title; default "Sessions".
	Title string `json:"title,omitempty"`
	// AuditUser names the admin in audit log lines: a placeholder
	// replaced per request; default {http.auth.user.id}, which Caddy's
	// auth handlers set.
	AuditUser string `json:"audit_user,omitempty"`

	api    *API
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sessions_admin",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision implements caddy.Provisioner.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := h.Validate(); err != nil {
		return err
	}
	if h.AuditUser == "" {
		h.AuditUser = "{http.auth.user.id}"
	}
	h.Prefix = strings.TrimSuffix(h.Prefix, "/")
	h.api = &API{mount: mount{
		api: h.Prefix + "/api", ui: h.Prefix, realms: h.Realms, title: h.Title, csrfAlways: true,
		audit: func(r *http.Request, realm, user string) {
			repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
			who := h.AuditUser
			if repl != nil {
				who = repl.ReplaceAll(h.AuditUser, "")
			}
			auditLog(h.logger, r, who, realm, user)
		},
	}}
	h.api.mux = h.api.newMux()
	return nil
}

// Validate implements caddy.Validator.
func (h *Handler) Validate() error {
	p := strings.TrimSuffix(h.Prefix, "/")
	if p == "" || !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "{}*?#%") {
		return fmt.Errorf("prefix: %q must be a path starting with / (such as /admin/sessions), without placeholders or wildcards", h.Prefix)
	}
	for _, r := range h.Realms {
		if r == "" || strings.Contains(r, "{") {
			return fmt.Errorf("realm: %q must be a realm name, not empty or a placeholder", r)
		}
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	p := r.URL.Path
	if p != h.Prefix && !strings.HasPrefix(p, h.Prefix+"/") {
		return next.ServeHTTP(w, r)
	}
	if p == h.Prefix {
		http.Redirect(w, r, h.Prefix+"/", http.StatusFound)
		return nil
	}
	if err := h.api.serve(w, r); err != nil {
		var ae caddy.APIError
		if !errors.As(err, &ae) {
			ae = caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err, Message: "internal error"}
		}
		if ae.HTTPStatus >= 500 {
			h.logger.Error("sessions admin request", zap.String("path", r.URL.Path), zap.Error(ae.Err))
		}
		securityHeaders(w.Header())
		writeAPIError(w, ae)
	}
	return nil
}

// parseHandlerCaddyfile reads:
//
//	sessions_admin <prefix> {
//		realm <name>...
//		title <text>
//		audit_user <placeholder>
//	}
//
// The prefix is the handler's own argument, not a request matcher: the
// handler passes requests outside it to the next one.
func parseHandlerCaddyfile(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	m := new(Handler)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return h.NewRoute(nil, m), nil
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if !d.NextArg() {
		return d.ArgErr()
	}
	h.Prefix = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "realm":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.Realms = append(h.Realms, args...)
		case "title", "audit_user":
			name := d.Val()
			if !d.NextArg() {
				return d.ArgErr()
			}
			if name == "title" {
				h.Title = d.Val()
			} else {
				h.AuditUser = d.Val()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unknown subdirective %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
