package sessions

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are labeled by realm, reason, policy and action only: never by
// user, IP or device (unbounded and personal).
type metrics struct {
	opened     *prometheus.CounterVec
	closed     *prometheus.CounterVec
	refused    *prometheus.CounterVec
	violations *prometheus.CounterVec
	refreshes  *prometheus.CounterVec
	risk       *prometheus.CounterVec
	alerts     *prometheus.CounterVec
}

func register[T prometheus.Collector](reg *prometheus.Registry, c T) T {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector.(T)
		}
	}
	return c
}

func newMetrics(reg *prometheus.Registry) *metrics {
	const ns, sub = "caddy", "sessions"
	return &metrics{
		opened: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "opened_total", Help: "Sessions opened.",
		}, []string{"realm"})),
		closed: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "closed_total", Help: "Sessions closed, by end reason.",
		}, []string{"realm", "reason"})),
		refused: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "refused_total", Help: "Requests refused, by reason (revoked, device_blocked, a policy).",
		}, []string{"realm", "reason"})),
		violations: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "violations_total", Help: "Limit violations, by policy and action taken.",
		}, []string{"realm", "policy", "action"})),
		alerts: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "alerts_total", Help: "Risk alerts by channel and outcome (delivered, failed, dropped, throttled).",
		}, []string{"realm", "channel", "state"})),
		risk: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "risk_total", Help: "Risk findings recorded, by signal and action.",
		}, []string{"realm", "signal", "action"})),
		refreshes: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "refreshes_total", Help: "Refreshes of last activity, by outcome (written, ended, failed, dropped).",
		}, []string{"realm", "outcome"})),
	}
}

// metricRealm is the realm as a label: the handler's realm, or "*" for a
// placeholder realm, whose values clients may choose.
func (h *Handler) metricRealm() string {
	if !h.realmDynamic {
		return h.realm
	}
	return "*"
}
