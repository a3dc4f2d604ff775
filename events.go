package sessions

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// Event names emitted through Caddy's events app.
const (
	EventSessionOpened = "sessions.session_opened"
	EventSessionClosed = "sessions.session_closed"
	EventViolation     = "sessions.violation"
	EventDeviceNew     = "sessions.device_new"
	EventDeviceBlocked = "sessions.device_blocked"
	EventImpersonation = "sessions.impersonation"
)

func (h *Handler) emit(name string, data map[string]any) {
	if h.events == nil {
		return
	}
	h.events.Emit(h.ctx, name, data)
}

func sessionData(s *store.Session) map[string]any {
	d := map[string]any{
		"realm": s.Realm, "user": s.User, "session": s.ID, "device": s.DeviceID, "ip": s.IP,
		"location": s.Location.String(), "browser": s.Agent.Browser, "os": s.Agent.OS, "device_type": s.Agent.DeviceType,
	}
	if s.EndedAt != nil {
		d["reason"] = s.EndReason
	}
	return d
}

// hooks turn tracker changes into events, metrics and debug logs.
func (h *Handler) hooks() tracker.Hooks {
	realm := h.metricRealm()
	return tracker.Hooks{
		SessionOpened: func(s *store.Session) {
			h.metrics.opened.WithLabelValues(realm).Inc()
			h.emit(EventSessionOpened, sessionData(s))
			if c := h.logger.Check(zapcore.DebugLevel, "session opened"); c != nil {
				c.Write(zap.String("session", s.ID), zap.String("realm", s.Realm))
			}
		},
		SessionClosed: func(s *store.Session) {
			h.metrics.closed.WithLabelValues(realm, s.EndReason).Inc()
			h.emit(EventSessionClosed, sessionData(s))
			if c := h.logger.Check(zapcore.DebugLevel, "session closed"); c != nil {
				c.Write(zap.String("session", s.ID), zap.String("realm", s.Realm), zap.String("reason", s.EndReason))
			}
		},
		DeviceNew: func(r string, d *store.Device) {
			h.emit(EventDeviceNew, map[string]any{"realm": r, "user": d.User, "device": d.ID, "ip": d.LastIP,
				"location": d.Location.String(), "browser": d.Agent.Browser, "os": d.Agent.OS})
		},
		Violation: func(r string, v *restrict.Violation) {
			h.metrics.violations.WithLabelValues(realm, v.Policy, v.Action).Inc()
			h.emit(EventViolation, map[string]any{"realm": r, "user": v.User, "policy": v.Policy, "limit": v.Limit,
				"observed": v.Observed, "action": v.Action, "ip": v.IP, "device": v.Device, "violation": v.ID})
		},
		Refused: func(_, reason string) {
			h.metrics.refused.WithLabelValues(realm, reason).Inc()
		},
		DeviceBlocked: func(r, user, device string, blocked bool) {
			h.emit(EventDeviceBlocked, map[string]any{"realm": r, "user": user, "device": device, "blocked": blocked})
		},
		Refreshed: func(outcome string, n int) {
			h.metrics.refreshes.WithLabelValues(realm, outcome).Add(float64(n))
		},
		Risk: h.riskHook(realm),
	}
}

// loadEvents finds the events app if the config has one: events are
// optional, and loading the app would create an unconfigured one.
func loadEvents(ctx caddy.Context) *caddyevents.App {
	app, err := ctx.AppIfConfigured("events")
	if err != nil {
		return nil
	}
	ev, _ := app.(*caddyevents.App)
	return ev
}
