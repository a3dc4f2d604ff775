package sessions

// The {http.sessions.*} placeholders: set on tracked requests, known and
// empty on the others, mapped once per cached session on the hot path.

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sessions/caddy-sessions/tracker"
)

const (
	phUser   = "http.sessions.user"
	phID     = "http.sessions.id"
	phDevice = "http.sessions.device"
	phNew    = "http.sessions.new"
	phRisk   = "http.sessions.risk"
)

// clearPlaceholders makes {http.sessions.*} known and empty on requests
// the handler does not track, so header_up or logs never send the
// placeholder's literal text to the app.
func clearPlaceholders(repl *caddy.Replacer) {
	publishPlaceholders(repl, noSession, tracker.Vars{}, false)
}

func noSession(key string) (any, bool) {
	switch key {
	case phUser, phID, phDevice, phRisk:
		return "", true
	case phNew:
		return false, true
	}
	return nil, false
}

// sessionLookup answers the placeholders of a known session on a request
// that did not open it, from values the tracker boxed once per session:
// one small allocation per request.
func sessionLookup(v tracker.Vars) caddy.ReplacerFunc {
	return func(key string) (any, bool) {
		switch key {
		case phUser:
			return v.User(), true
		case phID:
			return v.Session(), true
		case phDevice:
			return v.Device(), true
		case phRisk:
			return v.Risk(), true
		case phNew:
			return false, true
		}
		return nil, false
	}
}

// publishPlaceholders maps lookup into the replacer rather than setting
// the four values: Caddy makes a fresh replacer per request, and Set would
// cost four locked map writes plus the map's first allocation. A mapped
// lookup is asked after the Set values and after lookups mapped before
// it, so if something answers already (the handler ran earlier in this
// request), the values are Set: the last one wins, as with Set alone.
func publishPlaceholders(repl *caddy.Replacer, lookup caddy.ReplacerFunc, v tracker.Vars, isNew bool) {
	if _, known := repl.Get(phUser); !known {
		repl.Map(lookup)
		return
	}
	repl.Set(phUser, v.User())
	repl.Set(phID, v.Session())
	repl.Set(phDevice, v.Device())
	repl.Set(phRisk, v.Risk())
	repl.Set(phNew, isNew)
}

func (h *Handler) setPlaceholders(repl *caddy.Replacer, res tracker.Result) {
	repl.Set(phUser, res.Vars.User())
	repl.Set(phID, res.Vars.Session())
	repl.Set(phDevice, res.Vars.Device())
	repl.Set(phRisk, res.Vars.Risk())
	repl.Set(phNew, res.New)
}
