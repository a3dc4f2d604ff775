// Package risk owns the risk signals: what each one means and when it is
// raised (Evaluate), from an event (a session opened, or a known session
// seen on another IP or device) and the user's recent history. It reads
// nothing and stores nothing: the tracker gives it the history and acts on
// what it finds (record, alert, refuse, revoke, challenge).
package risk

import (
	"math"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
)

// Signal names one kind of finding.
type Signal string

// The signals.
const (
	// CookieMoved: a known session's token from another device (no device
	// cookie, or another one) with another browser or OS family, or from a
	// distant location; or on the session's own device from another
	// browser family (the device cookie taken along with it).
	CookieMoved Signal = "cookie_moved"
	// NewDevice: a login from a device the user never used, when the user
	// had used another one.
	NewDevice Signal = "new_device"
	// NewCountry: a login from a country the user's history does not hold.
	NewCountry Signal = "new_country"
	// ImpossibleTravel: from the user's previous session, a distance over
	// the elapsed time above the speed threshold.
	ImpossibleTravel Signal = "impossible_travel"
	// DistantConcurrent: another session of the user active at the same
	// time from further away than the concurrent distance.
	DistantConcurrent Signal = "distant_concurrent"
)

// Signals lists every signal, in the order findings are reported.
var Signals = []Signal{CookieMoved, NewDevice, NewCountry, ImpossibleTravel, DistantConcurrent}

// Valid reports whether s is a known signal.
func Valid(s Signal) bool {
	for _, k := range Signals {
		if k == s {
			return true
		}
	}
	return false
}

// Thresholds tune the location signals.
type Thresholds struct {
	// SpeedKmh is the fastest plausible travel (impossible_travel).
	SpeedKmh float64
	// FloorKm: distances up to this (plus both accuracy radii) are never
	// travel, nor a moved cookie's distance.
	FloorKm float64
	// ConcurrentKm: two active sessions further apart than this are
	// distant_concurrent.
	ConcurrentKm float64
}

// DefaultThresholds: 900 km/h (an airliner), 100 km, 500 km.
func DefaultThresholds() Thresholds {
	return Thresholds{SpeedKmh: 900, FloorKm: 100, ConcurrentKm: 500}
}

// Kinds of events.
const (
	// Opened: a session was opened (a login, or first sight of a token).
	Opened = "opened"
	// Moved: a known session was seen on another IP or another device.
	Moved = "moved"
)

// Sighting is one session of the user as the store holds it.
type Sighting struct {
	SessionID string
	DeviceID  string
	Start     time.Time
	Last      time.Time
	Active    bool
	// Login is where it started, Location where it was last seen.
	Login, Location enrich.Location
	Agent           enrich.Agent
}

// Event is what just happened.
type Event struct {
	Kind      string // Opened or Moved
	At        time.Time
	SessionID string
	// DeviceID is the request's device; NewDevice says the user never
	// used it before this request.
	DeviceID  string
	NewDevice bool
	// Login: the session was opened by an observed login (new_device and
	// new_country are raised on logins only; first sight of a token is
	// not a sign-in the user just made).
	Login    bool
	Location enrich.Location
	Agent    enrich.Agent
	// Session, for Moved: the session before this request (its device,
	// agent and where it was last seen). For Opened without a login: the
	// token's previous session, if the store still holds it (a cookie
	// replayed after its session idled out), compared as a move.
	Session *Sighting
}

// History is what the store holds of the user, the event's session left
// out.
type History struct {
	// Sessions, newest start first, within retention (as many as the
	// tracker reads).
	Sessions []Sighting
	// Devices is how many devices the user had used before the event.
	Devices int
}

// Evidence is what a finding rests on.
type Evidence struct {
	From       *enrich.Location `json:"from,omitempty"`
	To         *enrich.Location `json:"to,omitempty"`
	DistanceKm float64          `json:"distance_km,omitempty"`
	SpeedKmh   float64          `json:"speed_kmh,omitempty"`
	// ElapsedS is the time between the two sightings, in seconds.
	ElapsedS float64 `json:"elapsed_s,omitempty"`
	// Devices: the session's device and the request's (cookie_moved), or
	// the other session's and this one's.
	Devices []string `json:"devices,omitempty"`
	// Agents: the browser and OS of each side, "Firefox on Linux".
	Agents []string `json:"agents,omitempty"`
	// OtherSession is the session compared with.
	OtherSession string `json:"other_session,omitempty"`
}

// Finding is one signal raised.
type Finding struct {
	Signal   Signal   `json:"signal"`
	Evidence Evidence `json:"evidence"`
}

// Evaluate returns the findings of ev for the signals on reports on, in
// the order of Signals.
func Evaluate(ev Event, h History, th Thresholds, on func(Signal) bool) []Finding {
	var out []Finding
	add := func(s Signal, e Evidence) { out = append(out, Finding{Signal: s, Evidence: e}) }
	switch ev.Kind {
	case Moved:
		if on(CookieMoved) && ev.Session != nil {
			if e, ok := cookieMoved(ev, th); ok {
				add(CookieMoved, e)
			}
		}
		// The session's new place against the user's other sessions.
		// Not impossible_travel against the session's own last place:
		// measured in the replay, a phone moving between roaming data
		// (geolocated at home) and hotel Wi-Fi, or a session kept through
		// a trip, doubles its false alarms (3.0% to 6.8% of users).
		if on(DistantConcurrent) {
			if e, ok := distantConcurrent(ev, h, th); ok {
				add(DistantConcurrent, e)
			}
		}
	case Opened:
		if on(CookieMoved) && ev.Session != nil && !ev.Login {
			if e, ok := cookieMoved(ev, th); ok {
				add(CookieMoved, e)
			}
		}
		if on(NewDevice) && ev.Login && ev.NewDevice && h.Devices > 0 {
			add(NewDevice, Evidence{Devices: []string{ev.DeviceID}, Agents: []string{agentName(ev.Agent)}, To: loc(ev.Location)})
		}
		if on(NewCountry) && ev.Login && ev.Location.CountryCode != "" && len(h.Sessions) > 0 && !knownCountry(h, ev.Location.CountryCode) {
			add(NewCountry, Evidence{To: loc(ev.Location)})
		}
		if on(ImpossibleTravel) {
			if e, ok := impossibleTravel(ev, h, th); ok {
				add(ImpossibleTravel, e)
			}
		}
		if on(DistantConcurrent) {
			if e, ok := distantConcurrent(ev, h, th); ok {
				add(DistantConcurrent, e)
			}
		}
	}
	return out
}

func loc(l enrich.Location) *enrich.Location {
	if !l.Known() {
		return nil
	}
	return &l
}

// cookieMoved: another device, and another browser or OS family or a
// location beyond the floor. A device the session merely lacks a cookie
// for on the same browser, OS and place (a session that predates the
// module's device cookie, a cookie cleared) stays quiet.
//
// On the session's own device, another browser family: the device cookie
// is a signed random id, not bound to the browser, so a stolen cookie jar
// (session and device cookie, an infostealer's haul) arrives on the
// victim's device id. One browser's requests keep their family whatever
// the OS string says (an iPad in desktop mode reports macOS), so the OS
// and the place alone do not count here, nor does an unknown family on
// either side.
func cookieMoved(ev Event, th Thresholds) (Evidence, bool) {
	s := ev.Session
	if s.DeviceID == "" {
		return Evidence{}, false
	}
	e := Evidence{
		Devices: []string{s.DeviceID, ev.DeviceID}, Agents: []string{agentName(s.Agent), agentName(ev.Agent)},
		From: loc(s.Location), To: loc(ev.Location), OtherSession: s.SessionID,
	}
	d, far := apart(s.Location, ev.Location, th.FloorKm)
	if far {
		e.DistanceKm = round1(d)
	}
	if ev.DeviceID == s.DeviceID {
		return e, knownApart(s.Agent.Browser, ev.Agent.Browser)
	}
	otherAgent := family(s.Agent.Browser) != family(ev.Agent.Browser) || family(s.Agent.OS) != family(ev.Agent.OS)
	return e, otherAgent || far
}

// knownApart reports whether two browser or OS names are of two known,
// different families.
func knownApart(a, b string) bool {
	fa, fb := family(a), family(b)
	return fa != "" && fb != "" && fa != fb
}

// impossibleTravel compares the event's place with the other session seen
// most recently that has coordinates: from where it was last seen, at its
// last activity, to here now.
func impossibleTravel(ev Event, h History, th Thresholds) (Evidence, bool) {
	if !hasCoords(ev.Location) || th.SpeedKmh <= 0 {
		return Evidence{}, false
	}
	var prev *Sighting
	for i := range h.Sessions {
		s := &h.Sessions[i]
		if s.SessionID != ev.SessionID && hasCoords(s.Location) && (prev == nil || s.Last.After(prev.Last)) {
			prev = s
		}
	}
	if prev == nil {
		return Evidence{}, false
	}
	d, far := apart(prev.Location, ev.Location, th.FloorKm)
	if !far {
		return Evidence{}, false
	}
	// Seen at both places within a minute: as good as at once.
	elapsed := max(ev.At.Sub(prev.Last), time.Minute)
	speed := d / elapsed.Hours()
	if speed <= th.SpeedKmh {
		return Evidence{}, false
	}
	return Evidence{
		From: loc(prev.Location), To: loc(ev.Location), DistanceKm: round1(d), SpeedKmh: round1(speed),
		ElapsedS: math.Round(elapsed.Seconds()), OtherSession: prev.SessionID, Devices: []string{prev.DeviceID, ev.DeviceID},
	}, true
}

// distantConcurrent: the farthest other active session beyond the
// concurrent distance.
func distantConcurrent(ev Event, h History, th Thresholds) (Evidence, bool) {
	if !hasCoords(ev.Location) || th.ConcurrentKm <= 0 {
		return Evidence{}, false
	}
	var best Evidence
	found := false
	for _, s := range h.Sessions {
		if !s.Active || s.SessionID == ev.SessionID || !hasCoords(s.Location) {
			continue
		}
		d, far := apart(s.Location, ev.Location, th.ConcurrentKm)
		if far && d > best.DistanceKm {
			best = Evidence{From: loc(s.Location), To: loc(ev.Location), DistanceKm: round1(d), OtherSession: s.SessionID, Devices: []string{s.DeviceID, ev.DeviceID}}
			found = true
		}
	}
	return best, found
}

func knownCountry(h History, cc string) bool {
	for _, s := range h.Sessions {
		if s.Login.CountryCode == cc || s.Location.CountryCode == cc {
			return true
		}
	}
	return false
}

// apart is the distance between a and b in km and whether it exceeds
// limit plus both accuracy radii (so two fuzzy places that could be one
// are never apart). Without coordinates on both, nothing is apart.
func apart(a, b enrich.Location, limit float64) (float64, bool) {
	if !hasCoords(a) || !hasCoords(b) {
		return 0, false
	}
	d := DistanceKm(*a.Latitude, *a.Longitude, *b.Latitude, *b.Longitude)
	return d, d > limit+float64(a.AccuracyKm+b.AccuracyKm)
}

func hasCoords(l enrich.Location) bool { return l.Latitude != nil && l.Longitude != nil }

// earthRadiusKm is the mean radius of the Earth.
const earthRadiusKm = 6371.0

// DistanceKm is the great-circle distance between two points (haversine).
func DistanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(a)))
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// family is a browser or OS name without what changes between versions
// and builds of one product ("Chrome Mobile" is Chrome, "Mac OS X" is
// macOS as far as theft goes, "Other" is unknown).
func family(name string) string {
	switch name {
	case "", "Other":
		return ""
	case "Chrome Mobile", "Chrome Mobile iOS", "Chrome Mobile WebView", "HeadlessChrome", "Chromium":
		return "Chrome"
	case "Mobile Safari", "Mobile Safari UI/WKWebView", "Safari":
		return "Safari"
	case "Firefox Mobile", "Firefox iOS":
		return "Firefox"
	case "Edge Mobile":
		return "Edge"
	case "Opera Mobile":
		return "Opera"
	case "Mac OS X", "macOS":
		return "macOS"
	}
	return name
}

func agentName(a enrich.Agent) string {
	switch {
	case a.Browser == "" && a.OS == "":
		return "unknown"
	case a.OS == "":
		return a.Browser
	case a.Browser == "":
		return a.OS
	}
	return a.Browser + " on " + a.OS
}
