package risk

// Table tests of Evaluate and its helpers, one rule at a time; the
// replay (replay_test.go) measures the rules together on a month of
// generated traffic.

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
)

var t0 = time.Date(2025, time.March, 3, 12, 0, 0, 0, time.UTC)

// place is a location with coordinates.
func place(city, cc string, lat, lon float64) enrich.Location {
	return enrich.Location{City: city, Country: cc, CountryCode: cc, Latitude: &lat, Longitude: &lon}
}

// fuzzy is l with an accuracy radius.
func fuzzy(l enrich.Location, km int) enrich.Location {
	l.AccuracyKm = km
	return l
}

// north is a place km due north of l (along a meridian, so DistanceKm
// gives km back).
func north(l enrich.Location, km float64) enrich.Location {
	return place("north of "+l.City, l.CountryCode, *l.Latitude+km/(earthRadiusKm*math.Pi/180), *l.Longitude)
}

var (
	london  = place("London", "GB", 51.5074, -0.1278)
	paris   = place("Paris", "FR", 48.8566, 2.3522)
	newYork = place("New York", "US", 40.7128, -74.0060)
	rome    = place("Rome", "IT", 41.9028, 12.4964)
	// Somewhere in France, as a database without coordinates has it.
	franceOnly = enrich.Location{Country: "France", CountryCode: "FR"}
)

func agent(browser, os string) enrich.Agent { return enrich.Agent{Browser: browser, OS: os} }

var (
	chromeWin = agent("Chrome", "Windows")
	firefoxW  = agent("Firefox", "Windows")
	safariMac = agent("Safari", "Mac OS X")
)

// only turns on the signals given.
func only(ss ...Signal) func(Signal) bool {
	return func(s Signal) bool { return slices.Contains(ss, s) }
}

func signals(fs []Finding) []Signal {
	var out []Signal
	for _, f := range fs {
		out = append(out, f.Signal)
	}
	return out
}

func find(fs []Finding, s Signal) (Finding, bool) {
	for _, f := range fs {
		if f.Signal == s {
			return f, true
		}
	}
	return Finding{}, false
}

func TestDistanceKm(t *testing.T) {
	for _, c := range []struct {
		name string
		a, b enrich.Location
		want float64
	}{
		{"London-Paris", london, paris, 344},
		{"Paris-London", paris, london, 344},
		{"London-New York", london, newYork, 5570},
		{"New York-Paris", newYork, paris, 5837},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := DistanceKm(*c.a.Latitude, *c.a.Longitude, *c.b.Latitude, *c.b.Longitude)
			if math.Abs(got-c.want) > c.want/100 {
				t.Errorf("DistanceKm = %.1f km, want %.0f km within 1%%", got, c.want)
			}
		})
	}
	if d := DistanceKm(*paris.Latitude, *paris.Longitude, *paris.Latitude, *paris.Longitude); d != 0 {
		t.Errorf("DistanceKm from Paris to Paris = %v, want 0", d)
	}
	// Antipodes: the rounding guard (math.Min(1, ...)) keeps it finite.
	if d := DistanceKm(0, 0, 0, 180); math.Abs(d-math.Pi*earthRadiusKm) > 1 {
		t.Errorf("DistanceKm to the antipode = %v, want half the circumference", d)
	}
}

func TestApart(t *testing.T) {
	far := north(london, 150) // 150 km from London
	for _, c := range []struct {
		name  string
		a, b  enrich.Location
		limit float64
		want  bool
	}{
		{"150 km, no radii, 100 km floor", london, far, 100, true},
		{"150 km, 50 km radii each, 100 km floor", fuzzy(london, 50), fuzzy(far, 50), 100, false},
		{"150 km, a 100 km radius on one side", london, fuzzy(far, 100), 100, false},
		{"150 km, 20 km radii each, 100 km floor", fuzzy(london, 20), fuzzy(far, 20), 100, true},
		{"150 km, 200 km limit", london, far, 200, false},
		{"no coordinates on the first", franceOnly, far, 0, false},
		{"no coordinates on the second", london, franceOnly, 0, false},
		{"no coordinates on either", franceOnly, franceOnly, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, got := apart(c.a, c.b, c.limit)
			if got != c.want {
				t.Errorf("apart = %.1f km, %v; want %v", d, got, c.want)
			}
			if !hasCoords(c.a) || !hasCoords(c.b) {
				if d != 0 {
					t.Errorf("distance without coordinates = %v, want 0", d)
				}
			} else if math.Abs(d-150) > 0.01 {
				t.Errorf("distance = %v, want 150", d)
			}
		})
	}
}

// TestNoCoordinatesNoVerdict: a place without coordinates (a country-level
// geolocation) on either side is never travel, nor concurrent.
func TestNoCoordinatesNoVerdict(t *testing.T) {
	for _, c := range []struct {
		name        string
		here, there enrich.Location
	}{
		{"here without coordinates", franceOnly, newYork},
		{"there without coordinates", newYork, franceOnly},
		{"neither", franceOnly, franceOnly},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := History{Devices: 1, Sessions: []Sighting{{SessionID: "s1", DeviceID: "d1", Start: t0.Add(-time.Hour), Last: t0.Add(-time.Minute),
				Active: true, Login: c.there, Location: c.there, Agent: chromeWin}}}
			opened := Event{Kind: Opened, At: t0, SessionID: "s2", DeviceID: "d1", Login: true, Location: c.here, Agent: chromeWin}
			if fs := Evaluate(opened, h, DefaultThresholds(), only(ImpossibleTravel, DistantConcurrent)); len(fs) != 0 {
				t.Errorf("opened: %v", signals(fs))
			}
			prior := Sighting{SessionID: "s2", DeviceID: "d2", Start: t0.Add(-time.Hour), Last: t0.Add(-time.Minute), Active: true, Login: c.there, Location: c.there, Agent: chromeWin}
			moved := Event{Kind: Moved, At: t0, SessionID: "s2", DeviceID: "d3", Location: c.here, Agent: chromeWin, Session: &prior}
			if fs := Evaluate(moved, h, DefaultThresholds(), only(CookieMoved, DistantConcurrent)); len(fs) != 0 {
				t.Errorf("moved (same browser, another device): %v", signals(fs))
			}
		})
	}
	// The same with coordinates raises all three: the cases above are
	// quiet for want of coordinates alone.
	h := History{Devices: 1, Sessions: []Sighting{{SessionID: "s1", DeviceID: "d1", Start: t0.Add(-time.Hour), Last: t0.Add(-time.Minute),
		Active: true, Login: newYork, Location: newYork, Agent: chromeWin}}}
	opened := Event{Kind: Opened, At: t0, SessionID: "s2", DeviceID: "d1", Login: true, Location: paris, Agent: chromeWin}
	if got := signals(Evaluate(opened, h, DefaultThresholds(), only(ImpossibleTravel, DistantConcurrent))); !slices.Equal(got, []Signal{ImpossibleTravel, DistantConcurrent}) {
		t.Errorf("with coordinates, opened: %v", got)
	}
	prior := Sighting{SessionID: "s2", DeviceID: "d2", Location: newYork, Agent: chromeWin}
	moved := Event{Kind: Moved, At: t0, SessionID: "s2", DeviceID: "d3", Location: paris, Agent: chromeWin, Session: &prior}
	if got := signals(Evaluate(moved, h, DefaultThresholds(), only(CookieMoved))); !slices.Equal(got, []Signal{CookieMoved}) {
		t.Errorf("with coordinates, moved: %v", got)
	}
}

func TestImpossibleTravel(t *testing.T) {
	sighting := func(id string, start, last time.Duration, l enrich.Location) Sighting {
		return Sighting{SessionID: id, DeviceID: "d-" + id, Start: t0.Add(start), Last: t0.Add(last), Login: l, Location: l}
	}
	th := DefaultThresholds()
	for _, c := range []struct {
		name     string
		here     enrich.Location
		sessions []Sighting // newest start first
		th       Thresholds
		want     string // the other session, "" for none
		elapsedS float64
	}{{
		// The newest started was last seen in Paris half an hour ago;
		// an older one was seen in London 5 minutes ago: from London.
		name: "the most recently seen, not the newest started", here: paris, th: th, want: "old", elapsedS: 300,
		sessions: []Sighting{sighting("new", -time.Hour, -30*time.Minute, paris), sighting("old", -10*time.Hour, -5*time.Minute, london)},
	}, {
		name: "the newest started seen last", here: paris, th: th,
		sessions: []Sighting{sighting("new", -time.Hour, -5*time.Minute, paris), sighting("old", -10*time.Hour, -30*time.Minute, london)},
	}, {
		name: "the most recently seen has no coordinates: the next", here: paris, th: th, want: "old", elapsedS: 600,
		sessions: []Sighting{sighting("new", -time.Hour, -time.Minute, franceOnly), sighting("old", -10*time.Hour, -10*time.Minute, london)},
	}, {
		name: "the event's own session is not a previous one", here: paris, th: th,
		sessions: []Sighting{sighting("own", -time.Hour, -time.Minute, london), sighting("old", -10*time.Hour, -5*time.Hour, paris)},
	}, {
		// 344 km over 3 hours: 115 km/h.
		name: "plausible speed", here: paris, th: th,
		sessions: []Sighting{sighting("old", -5*time.Hour, -3*time.Hour, london)},
	}, {
		name: "within the floor", here: north(london, 90), th: th,
		sessions: []Sighting{sighting("old", -time.Hour, -time.Minute, london)},
	}, {
		// 344 km in 10 seconds is 124,000 km/h, in the minute it counts
		// as 20,600 km/h: under 30,000.
		name: "seen 10 s ago counts as a minute", here: paris, th: Thresholds{SpeedKmh: 30000, FloorKm: 100},
		sessions: []Sighting{sighting("old", -time.Hour, -10*time.Second, london)},
	}, {
		name: "seen 10 s ago, over the speed at a minute", here: paris, th: Thresholds{SpeedKmh: 20000, FloorKm: 100}, want: "old", elapsedS: 60,
		sessions: []Sighting{sighting("old", -time.Hour, -10*time.Second, london)},
	}, {
		// Another instance's clock a little ahead.
		name: "seen after the event counts as a minute", here: paris, th: th, want: "old", elapsedS: 60,
		sessions: []Sighting{sighting("old", -time.Hour, 5*time.Second, london)},
	}, {
		name: "speed threshold 0: off", here: newYork, th: Thresholds{SpeedKmh: 0, FloorKm: 100, ConcurrentKm: 500},
		sessions: []Sighting{sighting("old", -time.Hour, -time.Minute, london)},
	}, {
		name: "no previous session", here: newYork, th: th,
	}} {
		t.Run(c.name, func(t *testing.T) {
			ev := Event{Kind: Opened, At: t0, SessionID: "own", DeviceID: "d-own", Login: true, Location: c.here}
			fs := Evaluate(ev, History{Sessions: c.sessions, Devices: 1}, c.th, only(ImpossibleTravel))
			f, ok := find(fs, ImpossibleTravel)
			if got := f.Evidence.OtherSession; ok != (c.want != "") || got != c.want {
				t.Fatalf("impossible_travel %v from %q, want from %q", ok, got, c.want)
			}
			if !ok {
				return
			}
			e := f.Evidence
			if e.ElapsedS != c.elapsedS {
				t.Errorf("elapsed %v s, want %v", e.ElapsedS, c.elapsedS)
			}
			if want := e.DistanceKm / (c.elapsedS / 3600); math.Abs(e.SpeedKmh-want) > want/1000 {
				t.Errorf("speed %v km/h, want %v (%v km in %v s)", e.SpeedKmh, want, e.DistanceKm, c.elapsedS)
			}
			if e.From == nil || e.To == nil || e.From.City != "London" || e.To.City != c.here.City {
				t.Errorf("from %v to %v", e.From, e.To)
			}
		})
	}
}

func TestDistantConcurrent(t *testing.T) {
	active := func(id string, l enrich.Location) Sighting {
		return Sighting{SessionID: id, DeviceID: "d-" + id, Start: t0.Add(-time.Hour), Last: t0.Add(-time.Minute), Active: true, Login: l, Location: l}
	}
	ended := active("ended", newYork)
	ended.Active = false
	th := DefaultThresholds()
	for _, c := range []struct {
		name     string
		sessions []Sighting
		th       Thresholds
		want     string
	}{
		{"the farthest active session", []Sighting{active("rome", rome), active("far", newYork), active("paris", paris)}, th, "far"},
		{"only within the concurrent distance", []Sighting{active("near", paris)}, th, ""},
		{"an ended session is not concurrent", []Sighting{ended}, th, ""},
		{"the event's own session is not another", []Sighting{active("own", newYork)}, th, ""},
		{"no coordinates", []Sighting{active("somewhere", franceOnly)}, th, ""},
		{"concurrent threshold 0: off", []Sighting{active("far", newYork)}, Thresholds{SpeedKmh: 900, FloorKm: 100, ConcurrentKm: 0}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := Event{Kind: Opened, At: t0, SessionID: "own", DeviceID: "d-own", Login: true, Location: london}
			f, ok := find(Evaluate(ev, History{Sessions: c.sessions, Devices: 1}, c.th, only(DistantConcurrent)), DistantConcurrent)
			if got := f.Evidence.OtherSession; ok != (c.want != "") || got != c.want {
				t.Fatalf("distant_concurrent %v with %q, want with %q", ok, got, c.want)
			}
		})
	}
}

// TestThresholdsOff: 0 turns the speed and concurrent checks off, each
// alone.
func TestThresholdsOff(t *testing.T) {
	h := History{Devices: 1, Sessions: []Sighting{{SessionID: "s1", DeviceID: "d1", Start: t0.Add(-time.Hour), Last: t0.Add(-time.Minute),
		Active: true, Login: london, Location: london}}}
	ev := Event{Kind: Opened, At: t0, SessionID: "s2", DeviceID: "d1", Login: true, Location: newYork}
	on := only(ImpossibleTravel, DistantConcurrent)
	for _, c := range []struct {
		name string
		th   Thresholds
		want []Signal
	}{
		{"defaults", DefaultThresholds(), []Signal{ImpossibleTravel, DistantConcurrent}},
		{"speed 0", Thresholds{SpeedKmh: 0, FloorKm: 100, ConcurrentKm: 500}, []Signal{DistantConcurrent}},
		{"concurrent 0", Thresholds{SpeedKmh: 900, FloorKm: 100, ConcurrentKm: 0}, []Signal{ImpossibleTravel}},
		{"both 0", Thresholds{FloorKm: 100}, nil},
		{"negative", Thresholds{SpeedKmh: -1, FloorKm: 100, ConcurrentKm: -1}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := signals(Evaluate(ev, h, c.th, on)); !slices.Equal(got, c.want) {
				t.Errorf("findings %v, want %v", got, c.want)
			}
		})
	}
}

func TestNewDevice(t *testing.T) {
	for _, c := range []struct {
		name      string
		kind      string
		login     bool
		newDevice bool
		devices   int
		want      bool
	}{
		{"a login on a new device, the user had another", Opened, true, true, 1, true},
		{"a login on the user's first device", Opened, true, true, 0, false},
		{"a login on a known device", Opened, true, false, 2, false},
		{"first sight of a token, not a login", Opened, false, true, 1, false},
		{"a known session moved to a new device", Moved, true, true, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := Event{Kind: c.kind, At: t0, SessionID: "s2", DeviceID: "d2", NewDevice: c.newDevice, Login: c.login, Location: london, Agent: firefoxW}
			if c.kind == Moved {
				ev.Session = &Sighting{SessionID: "s2", DeviceID: "d1", Location: london, Agent: firefoxW}
			}
			f, ok := find(Evaluate(ev, History{Devices: c.devices}, DefaultThresholds(), only(NewDevice)), NewDevice)
			if ok != c.want {
				t.Fatalf("new_device %v, want %v", ok, c.want)
			}
			if ok && (!slices.Equal(f.Evidence.Devices, []string{"d2"}) || !slices.Equal(f.Evidence.Agents, []string{"Firefox on Windows"})) {
				t.Errorf("evidence %+v", f.Evidence)
			}
		})
	}
}

func TestNewCountry(t *testing.T) {
	gb := Sighting{SessionID: "s1", DeviceID: "d1", Login: london, Location: london}
	loginFR := gb
	loginFR.Login = paris
	seenFR := gb
	seenFR.Location = paris
	for _, c := range []struct {
		name     string
		kind     string
		login    bool
		here     enrich.Location
		sessions []Sighting
		want     bool
	}{
		{"a login from a country not in the history", Opened, true, paris, []Sighting{gb}, true},
		{"a country-level location will do", Opened, true, franceOnly, []Sighting{gb}, true},
		{"first sight of a token, not a login", Opened, false, paris, []Sighting{gb}, false},
		{"no history", Opened, true, paris, nil, false},
		{"the country where a session started", Opened, true, paris, []Sighting{gb, loginFR}, false},
		{"the country where a session was last seen", Opened, true, paris, []Sighting{gb, seenFR}, false},
		{"the user's country", Opened, true, london, []Sighting{gb}, false},
		{"no country", Opened, true, enrich.Location{}, []Sighting{gb}, false},
		{"a known session moved abroad", Moved, true, paris, []Sighting{gb}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := Event{Kind: c.kind, At: t0, SessionID: "s2", DeviceID: "d1", Login: c.login, Location: c.here}
			if c.kind == Moved {
				ev.Session = &Sighting{SessionID: "s2", DeviceID: "d1", Location: london}
			}
			f, ok := find(Evaluate(ev, History{Sessions: c.sessions, Devices: 1}, DefaultThresholds(), only(NewCountry)), NewCountry)
			if ok != c.want {
				t.Fatalf("new_country %v, want %v", ok, c.want)
			}
			if ok && (f.Evidence.To == nil || f.Evidence.To.CountryCode != "FR") {
				t.Errorf("evidence %+v", f.Evidence)
			}
		})
	}
}

func TestCookieMoved(t *testing.T) {
	for _, c := range []struct {
		name string
		// The session's device and agent; the request's.
		sessDev  string
		sessUA   enrich.Agent
		dev      string
		ua       enrich.Agent
		here     enrich.Location
		want     bool
		distance bool // evidence of a distance
	}{
		// Another device (another device cookie, or none).
		{"another device, another browser", "d1", chromeWin, "d2", firefoxW, london, true, false},
		{"another device, another OS", "d1", chromeWin, "d2", agent("Chrome", "Mac OS X"), london, true, false},
		{"another device, far away", "d1", chromeWin, "d2", chromeWin, newYork, true, true},
		{"another device, same browser family, same place (a session that predates the module)", "d1", agent("Chrome", "Windows"),
			"d2", enrich.Agent{Browser: "Chrome", BrowserVersion: "126.0", OS: "Windows", OSVersion: "11"}, north(london, 50), false, false},
		{"another device, Chrome Mobile and Chrome on one OS", "d1", agent("Chrome Mobile", "Android"), "d2", agent("Chrome", "Android"), london, false, false},
		{"a session without a device", "", chromeWin, "d2", firefoxW, newYork, false, false},
		// The session's own device: its device cookie came along.
		{"own device, another browser family (a stolen cookie jar)", "d1", chromeWin, "d1", firefoxW, london, true, false},
		{"own device, another browser family, far away", "d1", chromeWin, "d1", safariMac, newYork, true, true},
		{"own device, same browser far away (a VPN)", "d1", chromeWin, "d1", chromeWin, newYork, false, false},
		{"own device, Chrome Mobile and Chrome (desktop mode)", "d1", agent("Chrome Mobile", "Android"), "d1", agent("Chrome", "Linux"), london, false, false},
		{"own device, iPad desktop mode", "d1", agent("Mobile Safari", "iOS"), "d1", safariMac, london, false, false},
		{"own device, Edge Mobile and Edge", "d1", agent("Edge Mobile", "Android"), "d1", agent("Edge", "Linux"), london, false, false},
		{"own device, Opera Mobile and Opera", "d1", agent("Opera Mobile", "Android"), "d1", agent("Opera", "Linux"), london, false, false},
		{"own device, another OS alone", "d1", chromeWin, "d1", agent("Chrome", "Mac OS X"), london, false, false},
		{"own device, request agent empty", "d1", chromeWin, "d1", enrich.Agent{}, newYork, false, false},
		{"own device, request browser Other", "d1", chromeWin, "d1", agent("Other", "Other"), london, false, false},
		{"own device, session agent empty", "d1", enrich.Agent{}, "d1", firefoxW, london, false, false},
		{"own device, session browser Other", "d1", agent("Other", "Windows"), "d1", firefoxW, london, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			prior := Sighting{SessionID: "s1", DeviceID: c.sessDev, Start: t0.Add(-time.Hour), Last: t0.Add(-time.Minute), Active: true, Login: london, Location: london, Agent: c.sessUA}
			ev := Event{Kind: Moved, At: t0, SessionID: "s1", DeviceID: c.dev, Location: c.here, Agent: c.ua, Session: &prior}
			f, ok := find(Evaluate(ev, History{Devices: 1}, DefaultThresholds(), only(CookieMoved)), CookieMoved)
			if ok != c.want {
				t.Fatalf("cookie_moved %v, want %v", ok, c.want)
			}
			if !ok {
				return
			}
			e := f.Evidence
			if e.OtherSession != "s1" || !slices.Equal(e.Devices, []string{c.sessDev, c.dev}) || !slices.Equal(e.Agents, []string{agentName(c.sessUA), agentName(c.ua)}) {
				t.Errorf("evidence %+v", e)
			}
			if (e.DistanceKm > 0) != c.distance {
				t.Errorf("distance %v km, want one: %v", e.DistanceKm, c.distance)
			}
		})
	}
	// A Moved event without the session before it: nothing to compare.
	ev := Event{Kind: Moved, At: t0, SessionID: "s1", DeviceID: "d2", Location: newYork, Agent: firefoxW}
	if fs := Evaluate(ev, History{}, DefaultThresholds(), only(CookieMoved)); len(fs) != 0 {
		t.Errorf("without a session: %v", signals(fs))
	}
}

// TestEvaluateOrderAndSwitches: findings come in the order of Signals,
// and only for the signals on.
func TestEvaluateOrderAndSwitches(t *testing.T) {
	// A login in New York on a new device, 10 minutes after London on
	// another, still active: every signal of a login.
	h := History{Devices: 1, Sessions: []Sighting{{SessionID: "s1", DeviceID: "d1", Start: t0.Add(-time.Hour), Last: t0.Add(-10 * time.Minute),
		Active: true, Login: london, Location: london, Agent: chromeWin}}}
	opened := Event{Kind: Opened, At: t0, SessionID: "s2", DeviceID: "d2", NewDevice: true, Login: true, Location: newYork, Agent: safariMac}
	// s1's token from another browser in New York: both signals of a move.
	moved := Event{Kind: Moved, At: t0, SessionID: "s3", DeviceID: "d3", Location: newYork, Agent: safariMac,
		Session: &Sighting{SessionID: "s3", DeviceID: "d1", Location: london, Agent: chromeWin}}
	all := func(Signal) bool { return true }
	for _, c := range []struct {
		name string
		ev   Event
		on   func(Signal) bool
		want []Signal
	}{
		{"login, all on", opened, all, []Signal{NewDevice, NewCountry, ImpossibleTravel, DistantConcurrent}},
		{"login, two on (asked out of order)", opened, only(DistantConcurrent, NewDevice), []Signal{NewDevice, DistantConcurrent}},
		{"login, one on", opened, only(NewCountry), []Signal{NewCountry}},
		{"login, none on", opened, only(), nil},
		{"login, only a signal of moves on", opened, only(CookieMoved), nil},
		{"move, all on", moved, all, []Signal{CookieMoved, DistantConcurrent}},
		{"move, one on", moved, only(DistantConcurrent), []Signal{DistantConcurrent}},
		{"move, only signals of logins on", moved, only(NewDevice, NewCountry, ImpossibleTravel), nil},
		{"an unknown kind", Event{Kind: "other", At: t0, SessionID: "s2", Location: newYork}, all, nil},
		// s1's token replayed from another browser after its session
		// idled out: a new session, its token's previous one compared
		// as a move; on a login the same previous session is not.
		{"replayed token, cookie_moved on", Event{Kind: Opened, At: t0, SessionID: "s4", DeviceID: "d4", Location: london, Agent: safariMac,
			Session: &Sighting{SessionID: "s1", DeviceID: "d1", Location: london, Agent: chromeWin}}, only(CookieMoved), []Signal{CookieMoved}},
		{"replayed token at a login", Event{Kind: Opened, At: t0, SessionID: "s4", DeviceID: "d4", Login: true, Location: london, Agent: safariMac,
			Session: &Sighting{SessionID: "s1", DeviceID: "d1", Location: london, Agent: chromeWin}}, only(CookieMoved), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := signals(Evaluate(c.ev, h, DefaultThresholds(), c.on)); !slices.Equal(got, c.want) {
				t.Errorf("findings %v, want %v", got, c.want)
			}
		})
	}
	// Signals itself lists them in the order documented.
	if want := []Signal{CookieMoved, NewDevice, NewCountry, ImpossibleTravel, DistantConcurrent}; !slices.Equal(Signals, want) {
		t.Errorf("Signals = %v, want %v", Signals, want)
	}
}

func TestValid(t *testing.T) {
	for _, s := range Signals {
		if !Valid(s) {
			t.Errorf("Valid(%q) = false", s)
		}
	}
	for _, s := range []Signal{"", "cookie-moved", "Cookie_Moved", "new_ip"} {
		if Valid(s) {
			t.Errorf("Valid(%q) = true", s)
		}
	}
}
