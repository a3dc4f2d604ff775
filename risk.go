package sessions

// This file owns the risk block: its configuration (JSON and Caddyfile),
// the tracker's risk policy made of it, the sessions.risk event and metric,
// and the answers a risk action gives (a 403, a revocation, a challenge's
// redirect).

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/risk"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// EventRisk is emitted for every risk finding recorded.
const EventRisk = "sessions.risk"

// RiskConfig turns risk signals on: what each one does, and the
// thresholds of the location signals.
type RiskConfig struct {
	// Signals maps a signal (cookie_moved, new_device, new_country,
	// impossible_travel, distant_concurrent) to what is done when it is
	// raised. Signals not named are off.
	Signals map[string]*RiskAction `json:"signals,omitempty"`
	// SpeedKmh is the fastest plausible travel. Default 900.
	SpeedKmh float64 `json:"speed_kmh,omitempty"`
	// FloorKm: distances up to this are never travel. Default 100.
	FloorKm float64 `json:"floor_km,omitempty"`
	// ConcurrentKm: two active sessions further apart are
	// distant_concurrent. Default 500.
	ConcurrentKm float64 `json:"concurrent_km,omitempty"`
	// Notify says where the alerts of notify (and of block, revoke and
	// challenge) go.
	Notify *NotifyConfig `json:"notify,omitempty"`
}

// RiskAction is what is done when a signal is raised: log, notify, block,
// revoke or challenge (with URL), or off.
type RiskAction struct {
	Action string `json:"action"`
	// URL, for challenge, is where the browser is sent to log in again
	// (placeholders expanded per request, e.g.
	// /login?redirect_to={http.request.uri}).
	URL string `json:"url,omitempty"`
}

const riskOff = "off"

// provision checks the block, naming the field and value at fault.
func (rc *RiskConfig) provision() error {
	if rc == nil {
		return nil
	}
	for name, a := range rc.Signals {
		if !risk.Valid(risk.Signal(name)) {
			return fmt.Errorf("risk: unknown signal %q (want one of %s)", name, signalList())
		}
		if a == nil {
			return fmt.Errorf("risk: %s: no action", name)
		}
		switch a.Action {
		case riskOff, tracker.RiskLog, tracker.RiskNotify, tracker.RiskBlock, tracker.RiskRevoke:
			if a.URL != "" {
				return fmt.Errorf("risk: %s: url %q is only for challenge", name, a.URL)
			}
		case tracker.RiskChallenge:
			if a.URL == "" {
				return fmt.Errorf("risk: %s: challenge needs the URL to send the browser to", name)
			}
			if u, err := url.Parse(a.URL); err != nil || (u.Scheme == "" && !strings.HasPrefix(a.URL, "/")) || (u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https") {
				return fmt.Errorf("risk: %s: challenge url %q must be an http(s) URL or a path starting with /", name, a.URL)
			}
		default:
			return fmt.Errorf("risk: %s: unknown action %q (want off, log, notify, block, revoke or challenge <url>)", name, a.Action)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"speed_kmh", rc.SpeedKmh}, {"floor_km", rc.FloorKm}, {"concurrent_km", rc.ConcurrentKm}} {
		if f.v < 0 {
			return fmt.Errorf("risk: %s: %v must not be negative", f.name, f.v)
		}
	}
	if rc.Notify != nil {
		return rc.Notify.check()
	}
	for name, a := range rc.Signals {
		if a.Action == tracker.RiskNotify {
			return fmt.Errorf("risk: %s notify: no notify block says where alerts go", name)
		}
	}
	return nil
}

func signalList() string {
	var s []string
	for _, x := range risk.Signals {
		s = append(s, string(x))
	}
	return strings.Join(s, ", ")
}

// policy is the tracker's view of the block; nil when no signal is on.
func (rc *RiskConfig) policy() *tracker.RiskPolicy {
	if rc == nil {
		return nil
	}
	p := &tracker.RiskPolicy{Actions: map[risk.Signal]string{}, Thresholds: risk.DefaultThresholds()}
	for name, a := range rc.Signals {
		if a.Action != riskOff {
			p.Actions[risk.Signal(name)] = a.Action
		}
	}
	if len(p.Actions) == 0 {
		return nil
	}
	if rc.SpeedKmh > 0 {
		p.Thresholds.SpeedKmh = rc.SpeedKmh
	}
	if rc.FloorKm > 0 {
		p.Thresholds.FloorKm = rc.FloorKm
	}
	if rc.ConcurrentKm > 0 {
		p.Thresholds.ConcurrentKm = rc.ConcurrentKm
	}
	return p
}

// challengeURL is where a challenge of signal sends the browser.
func (rc *RiskConfig) challengeURL(signal string) string {
	if rc == nil || rc.Signals[signal] == nil {
		return ""
	}
	return rc.Signals[signal].URL
}

// parseRisk reads
//
//	risk {
//		<signal> off|log|notify|block|revoke|challenge <url>
//		speed <km/h>
//		distance_floor <km>
//		concurrent_distance <km>
//	}
func parseRisk(d *caddyfile.Dispenser) (*RiskConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	rc := &RiskConfig{Signals: map[string]*RiskAction{}}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return nil, d.Errf("risk %s: specified more than once", sub)
		}
		seen[sub] = true
		args := d.RemainingArgs()
		switch sub {
		case "notify":
			nc, err := parseNotify(d)
			if err != nil {
				return nil, err
			}
			rc.Notify = nc
		case "speed", "distance_floor", "concurrent_distance":
			if len(args) != 1 {
				return nil, d.Errf("risk %s: want one number, got %q", sub, strings.Join(args, " "))
			}
			v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSuffix(args[0], "km/h"), "km"), 64)
			if err != nil || v <= 0 {
				return nil, d.Errf("risk %s: %q is not a positive number", sub, args[0])
			}
			switch sub {
			case "speed":
				rc.SpeedKmh = v
			case "distance_floor":
				rc.FloorKm = v
			default:
				rc.ConcurrentKm = v
			}
		default:
			if !risk.Valid(risk.Signal(sub)) {
				return nil, d.Errf("risk: unknown signal or option %q (signals: %s; options: speed, distance_floor, concurrent_distance)", sub, signalList())
			}
			switch {
			case len(args) == 1 && args[0] != tracker.RiskChallenge:
				rc.Signals[sub] = &RiskAction{Action: args[0]}
			case len(args) == 2 && args[0] == tracker.RiskChallenge:
				rc.Signals[sub] = &RiskAction{Action: args[0], URL: args[1]}
			default:
				return nil, d.Errf("risk %s: want off, log, notify, block, revoke or challenge <url>, got %q", sub, strings.Join(args, " "))
			}
		}
	}
	if err := rc.provision(); err != nil {
		return nil, d.Err(err.Error())
	}
	return rc, nil
}

// riskHook reports a finding: the sessions.risk event, the metric and a
// log line.
func (h *Handler) riskHook(realm string) func(context.Context, tracker.RiskEvent) {
	return func(ctx context.Context, ev tracker.RiskEvent) {
		h.metrics.risk.WithLabelValues(realm, ev.Record.Signal, ev.Record.Action).Inc()
		e := ev.Finding.Evidence
		data := map[string]any{
			"realm": ev.Realm, "user": ev.User, "signal": ev.Record.Signal, "action": ev.Record.Action, "finding": ev.Record.ID,
			"session": ev.Record.SessionID, "device": ev.Record.DeviceID, "ip": ev.Record.IP,
			"location": ev.Location.String(), "browser": ev.Agent.Browser, "os": ev.Agent.OS,
		}
		if e.From != nil {
			data["previous_location"] = e.From.String()
		}
		if e.DistanceKm > 0 {
			data["distance_km"] = e.DistanceKm
		}
		if e.SpeedKmh > 0 {
			data["speed_kmh"] = e.SpeedKmh
		}
		if len(e.Devices) > 0 {
			data["devices"] = e.Devices
		}
		if e.OtherSession != "" {
			data["other_session"] = e.OtherSession
		}
		h.emit(EventRisk, data)
		if h.notifier != nil && alerts(ev.Record.Action) {
			h.sendAlert(ctx, ev)
		}
	}
}

// challenge answers a request whose session a challenge ended: its app
// cookies expired and a redirect to the challenge URL (expanded), so the
// app asks for the login again.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, id ident, signal string) error {
	repl.Set("http.sessions.block_reason", signal)
	for _, c := range id.cookies.found {
		if c.value != "" {
			expireCookie(w, r, c.name)
		}
	}
	w.Header().Set("Location", h.challengeTarget(repl, signal))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// challengeTarget expands the challenge URL's placeholders, each value
// query-escaped: {http.request.uri} becomes one parameter's value.
func (h *Handler) challengeTarget(repl *caddy.Replacer, signal string) string {
	out, err := repl.ReplaceFunc(h.Risk.challengeURL(signal), func(_ string, v any) (any, error) {
		return url.QueryEscape(fmt.Sprint(v)), nil
	})
	if err != nil {
		return "/"
	}
	return out
}

// refuseLogin turns a login answer into the answer a risk action calls
// for: the app's session cookies and body never reach the browser.
func (h *Handler) refuseLogin(cw *cookieWatch, repl *caddy.Replacer, res tracker.Result) {
	repl.Set("http.sessions.block_reason", res.RiskSignal)
	switch {
	case res.Challenge:
		cw.replaceAnswer(http.StatusSeeOther, h.challengeTarget(repl, res.RiskSignal), h.DeviceCookie)
	case res.Reason == store.EndRevoked:
		cw.replaceAnswer(h.revokeStatus, h.revokeTo, h.DeviceCookie)
	default:
		cw.replaceAnswer(http.StatusForbidden, "", h.DeviceCookie)
	}
}

// riskSignals lists the signals on, for the provisioning log.
func (rc *RiskConfig) riskSignals() []string {
	var out []string
	for name, a := range rc.Signals {
		if a.Action != riskOff {
			out = append(out, name+"="+a.Action)
		}
	}
	sort.Strings(out)
	return out
}
