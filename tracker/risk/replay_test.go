package risk

// A deterministic replay of a month of realistic traffic through Evaluate:
// how many clean users each signal alerts, which traffic patterns cause
// it, and how often injected account takeovers and sharing are detected.
//
// The model (per user, seeded from the user's number, so the result does
// not depend on scheduling):
//   - a home city from a table of real cities (Europe, North America,
//     Asia); home broadband geolocates in the home city or a town up to
//     ~60 km away (accuracy 5-100 km), mobile data to the carrier's hubs
//     in the same area (accuracy 20-200 km);
//   - a laptop and a phone (25% also a work PC in the home city or a
//     commuting town, across a border for some: Malmö/Copenhagen,
//     Windsor/Detroit, Johor Bahru/Singapore, ...); 0-4 logins a day per
//     device, sessions of minutes to hours, a session ends at logout or
//     after 30 minutes idle; phone sessions move between home Wi-Fi and
//     mobile data (Moved events);
//   - 10% take a train trip (200-700 km, at train speed) a month, 3% fly
//     abroad (flight time for the distance plus airport time); abroad,
//     half keep their phone on roaming data, which is home-routed and so
//     geolocates at home while the laptop is on the hotel's Wi-Fi;
//   - 3% get a new phone a month, 1% a new laptop;
//   - 2% use a VPN on the laptop now and then (exit in another city or
//     country).
//
// A 30-day warm-up builds history; the 30 days after it are measured. The
// history given to Evaluate is what the tracker reads: the user's
// sessions, newest start first, kept 30 days after they end, at most 50,
// the event's own session left out (built incrementally for speed, and
// checked against the plain construction on a sample of events).
//
// 300 more users, with the same traffic, each suffer one injected
// scenario, 50 times each: (a) the session token replayed from another
// device and browser in another country; (b) the token moved to a
// flatmate's browser at the same address; (c) the account shared with
// someone >1000 km away, used at the same time; (d) five new devices in a
// week; (e) a login from a new device in another country while the owner
// is at home; (f) as (a) but with the device cookie taken along (an
// infostealer takes the whole cookie jar).

// The replay is in files by concern: replay_world_test.go (cities and
// browsers), replay_users_test.go (users, their devices and trips),
// replay_sessions_test.go (the sessions they open), replay_attacks_test.go
// (the injected scenarios), replay_evaluate_test.go (each user's events
// through Evaluate, with the history the tracker reads); this file runs
// it, prints the table and holds the assertions.

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	rSeed      = 20250303
	rCleanN    = 3000 // clean users
	rAttackN   = 300  // users who suffer one injected scenario each
	rWarmDays  = 30
	rDays      = 60 // warm-up and measured month
	rIdle      = 30 * time.Minute
	rRetention = 30 * 24 * time.Hour
	rHistCap   = 50 // sessions the tracker reads, the event's own included
	rDay       = 24 * time.Hour
	rHour      = time.Hour
	rMin       = time.Minute
	// The product goal: under 1% of clean users alerted a month.
	rGoal = 0.01
)

var (
	rEpoch   = time.Date(2025, time.March, 3, 0, 0, 0, 0, time.UTC) // a Monday
	rMeasure = rEpoch.Add(rWarmDays * rDay)
)

func TestReplayFalseAlarmsAndDetection(t *testing.T) {
	began := time.Now()
	g := newRGeo()
	th := DefaultThresholds()
	n := rCleanN + rAttackN
	results := make([]rResult, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var w rWorker
			for {
				id := int(next.Add(1) - 1)
				if id >= n {
					return
				}
				sc := -1
				if id >= rCleanN {
					sc = (id - rCleanN) % scN
				}
				results[id] = w.run(newRUser(g, id, sc), th)
			}
		}()
	}
	wg.Wait()

	// Clean traffic: users alerted at least once in the measured month.
	var users, events, anySig, alerting, bothNew, manyNew int
	var perSig, noVPNRoam [5]int
	var cause [5]map[string]int
	traits := map[string]int{}
	var samples []string
	for k := range cause {
		cause[k] = map[string]int{}
	}
	for _, r := range results[:rCleanN] {
		users++
		events += r.events
		for _, c := range rCauseNames(r.traits) {
			traits[c]++
		}
		hit, hitAlerting := false, false
		for k, a := range r.alerted {
			if !a {
				continue
			}
			perSig[k]++
			hit = true
			hitAlerting = hitAlerting || Signals[k] != NewDevice
			for _, c := range rCauseNames(r.causes[k]) {
				cause[k][c]++
			}
			if r.noVPNRoam[k] {
				noVPNRoam[k]++
			}
		}
		anySig += b2i(hit)
		alerting += b2i(hitAlerting)
		bothNew += b2i(r.bothNew)
		manyNew += b2i(r.manyNew)
		samples = append(samples, r.samples...)
	}
	// Attacks: instances with a finding on an attacker's event.
	var inst, det, detLoc, instBoth, instMany [scN]int
	var fired [scN][5]int
	for _, r := range results[rCleanN:] {
		sc := r.scenario
		inst[sc]++
		if r.events == 0 {
			t.Fatalf("%s: an instance without attacker events", rScenarioNames[sc])
		}
		d, dl := false, false
		for k, f := range r.fired {
			if f {
				fired[sc][k]++
				d = true
				dl = dl || Signals[k] != NewDevice
			}
		}
		det[sc] += b2i(d)
		detLoc[sc] += b2i(dl)
		instBoth[sc] += b2i(r.bothNew)
		instMany[sc] += b2i(r.manyNew)
	}
	for _, r := range results {
		if r.badHistory > 0 {
			t.Fatalf("a history differs from referenceHistory (%d times for a user)", r.badHistory)
		}
	}

	rate := func(a, b int) float64 { return float64(a) / float64(b) }
	pct := func(a, b int) string { return fmt.Sprintf("%.1f%%", 100*rate(a, b)) }
	goal := func(a int) string {
		if rate(a, users) < rGoal {
			return "yes"
		}
		return "**no**"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| Traffic | Signal | Population | Alerted / detected | Rate | Under 1%% | From |\n|---|---|--:|--:|--:|:-:|---|\n")
	for k, s := range Signals {
		fmt.Fprintf(&b, "| clean, 30 days | %s | %d users | %d | %s | %s | %s |\n", s, users, perSig[k], pct(perSig[k], users), goal(perSig[k]), rBreakdown(cause[k]))
	}
	fmt.Fprintf(&b, "| clean, 30 days | **any signal** | %d users | %d | %s | %s | |\n", users, anySig, pct(anySig, users), goal(anySig))
	fmt.Fprintf(&b, "| clean, 30 days | **any but new_device** | %d users | %d | %s | %s | |\n", users, alerting, pct(alerting, users), goal(alerting))
	for sc := range scN {
		var parts []string
		for k, s := range Signals {
			if fired[sc][k] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", s, fired[sc][k]))
			}
		}
		fmt.Fprintf(&b, "| %s | any signal | %d instances | %d | %s | | %s; without new_device %d (%s) |\n",
			rScenarioNames[sc], inst[sc], det[sc], pct(det[sc], inst[sc]), strings.Join(parts, ", "), detLoc[sc], pct(detLoc[sc], inst[sc]))
	}
	t.Logf("replay of %d clean users (%d events evaluated in the measured month; in it %s) and %d attacked users, %+v, %v:%s",
		users, events, rBreakdown(traits), rAttackN, th, time.Since(began).Round(time.Millisecond), b.String())
	it, dc := slices.Index(Signals, ImpossibleTravel), slices.Index(Signals, DistantConcurrent)
	t.Logf("rules on the findings: new_device+new_country on one login: clean %s, (e) %d/%d; new_device 3 times in 7 days: clean %s, (d) %d/%d; "+
		"without VPN or roaming data: impossible_travel clean %s, distant_concurrent clean %s",
		pct(bothNew, users), instBoth[scCredTheft], inst[scCredTheft], pct(manyNew, users), instMany[scFiveDevices], inst[scFiveDevices],
		pct(noVPNRoam[it], users), pct(noVPNRoam[dc], users))
	for _, s := range samples[:min(len(samples), 5)] {
		t.Logf("no known cause: %s", s)
	}

	// Detection: (a) to (e) every time, each by the signal made for it
	// (new_country for (e) unless the victim has been to the thief's
	// country lately). (f) by cookie_moved when the thief's browser is of
	// another family than the victim's (about three in four here: the
	// thief's agent differs in browser or OS, and the OS alone does not
	// count on one device); the others only when distant_concurrent finds
	// another of the victim's sessions active.
	for sc := range scN {
		if inst[sc] < 50 {
			t.Errorf("%s: %d instances, want at least 50", rScenarioNames[sc], inst[sc])
		}
		if sc != scJar && det[sc] != inst[sc] {
			t.Errorf("%s: detected %d of %d", rScenarioNames[sc], det[sc], inst[sc])
		}
		// (f): today's 78% with a margin, so that a change for the worse
		// shows.
		if sc == scJar && det[sc]*100 < inst[sc]*70 {
			t.Errorf("%s: detected %d of %d, want 70%%", rScenarioNames[sc], det[sc], inst[sc])
		}
	}
	for _, c := range []struct {
		sc   int
		want Signal
		min  int // percent of instances
	}{{scTheft, CookieMoved, 100}, {scFlatmate, CookieMoved, 100}, {scTwoCities, DistantConcurrent, 100},
		{scFiveDevices, NewDevice, 100}, {scCredTheft, NewDevice, 100}, {scCredTheft, NewCountry, 90}, {scJar, CookieMoved, 60}} {
		if k := slices.Index(Signals, c.want); fired[c.sc][k]*100 < inst[c.sc]*c.min {
			t.Errorf("%s: %s fired on %d of %d, want %d%%", rScenarioNames[c.sc], c.want, fired[c.sc][k], inst[c.sc], c.min)
		}
	}
	// False alarms: the goal where it is met, and where it is not today's
	// level with a margin, so that a change for the worse shows.
	bounds := map[Signal]float64{CookieMoved: rGoal, NewDevice: 0.05, NewCountry: 0.085, ImpossibleTravel: 0.04, DistantConcurrent: 0.03}
	for k, s := range Signals {
		if r := rate(perSig[k], users); r >= bounds[s] {
			t.Errorf("clean traffic: %s alerted %.2f%% of users, bound %.1f%%", s, 100*r, 100*bounds[s])
		} else if r >= rGoal {
			t.Logf("goal not met: %s alerts %.2f%% of clean users a month (%s)", s, 100*r, rBreakdown(cause[k]))
		}
	}
	if r := rate(anySig, users); r >= 0.14 {
		t.Errorf("clean traffic: %.2f%% of users alerted, bound 14%%", 100*r)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func rCauseNames(t uint16) []string {
	var out []string
	if t&tagVPN != 0 {
		out = append(out, "VPN")
	}
	if t&(tagTrain|tagFlight) != 0 {
		out = append(out, "travel")
	}
	if t&tagRoam != 0 {
		out = append(out, "roaming")
	}
	if t&tagNewDev != 0 {
		out = append(out, "new device")
	}
	if t&tagBorder != 0 {
		out = append(out, "border commute")
	}
	if t&tagHomeBack != 0 {
		out = append(out, "home country forgotten")
	}
	if t&tagDormant != 0 {
		out = append(out, "device unused >30 days")
	}
	if t&tagAbroad != 0 {
		out = append(out, "abroad")
	}
	if len(out) == 0 {
		out = append(out, "everyday")
	}
	return out
}

func rBreakdown(m map[string]int) string {
	var parts []string
	for _, k := range []string{"VPN", "travel", "abroad", "roaming", "new device", "device unused >30 days", "border commute", "home country forgotten", "everyday"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}
