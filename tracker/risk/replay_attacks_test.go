package risk

// The replay's injected scenarios (see replay_test.go): account takeovers
// and sharing, (a) to (f), added to an attacked user's own traffic.

import (
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
)

// Attack scenarios.
const (
	scTheft = iota
	scFlatmate
	scTwoCities
	scFiveDevices
	scCredTheft
	scJar
	scN
)

var rScenarioNames = [scN]string{
	"(a) cookie theft, other device and country",
	"(b) cookie moved to a flatmate's browser, same city",
	"(c) two cities at once, >1000 km (sharing)",
	"(d) five new devices in a week (sharing)",
	"(e) credential theft, new device and country",
	"(f) cookie jar theft (session and device cookie), other country",
}

// measured sessions of the user's own, in the measured month, at least
// minDur long, from day 31 to day 57.
func (u *rUser) victimSessions(minDur time.Duration, ok func(*rSess) bool) []*rSess {
	var out []*rSess
	from, to := rMeasure.Add(rDay), rMeasure.Add(27*rDay)
	for _, s := range u.sess {
		if s.attack == 0 && s.start.After(from) && s.start.Before(to) && s.lastAct.Sub(s.start) >= minDur && (ok == nil || ok(s)) {
			out = append(out, s)
		}
	}
	return out
}

// otherAgent is a desktop agent of another browser family (and, when os,
// or another OS family) than a.
func (u *rUser) otherAgent(a enrich.Agent, os bool) enrich.Agent {
	for {
		b := u.agent(rDesktop)
		if family(b.Browser) != family(a.Browser) || (os && family(b.OS) != family(a.OS)) {
			return b
		}
	}
}

func (u *rUser) abroadCity() int {
	for {
		c := u.r.IntN(len(rCities))
		if rCities[c].cc != rCities[u.home].cc {
			return c
		}
	}
}

// hijack: the attacker's requests on s's token from at for d, then the
// victim's again if the session goes on.
func (u *rUser) hijack(s *rSess, at time.Time, d time.Duration, dev *rDevice, loc *enrich.Location, sc int) {
	end := at.Add(d)
	var after *rSeg
	if end.Before(s.lastAct) {
		v := s.segs[s.segAt(end)]
		after = &rSeg{at: end, dev: v.dev, loc: v.loc, tag: v.tag}
	} else {
		s.lastAct, s.logout = end, false
	}
	var segs []rSeg
	for _, sg := range s.segs {
		if sg.at.Before(at) {
			segs = append(segs, sg)
		}
	}
	segs = append(segs, rSeg{at: at, dev: dev, loc: loc, attack: int8(1 + sc)})
	if after != nil {
		segs = append(segs, *after)
		for _, sg := range s.segs {
			if sg.at.After(end) {
				segs = append(segs, sg)
			}
		}
	}
	s.segs = segs
}

// attackerSession opens a session for the attacker (or a sharer).
func (u *rUser) attackerSession(dev *rDevice, start time.Time, d time.Duration, loc *enrich.Location, sc int) {
	s := u.newSess(start, d, false)
	s.attack = int8(1 + sc)
	s.segs = []rSeg{{at: start, dev: dev, loc: loc, attack: s.attack}}
	u.sess = append(u.sess, s)
}

func (u *rUser) inject() {
	sc := u.scenario
	switch sc {
	case scTheft, scJar:
		vs := u.victimSessions(20*rMin, nil)
		s := vs[u.r.IntN(len(vs))]
		at := s.start.Add(u.dur(5*rMin, s.lastAct.Sub(s.start)-5*rMin))
		victim := s.segs[s.segAt(at)].dev
		loc := u.place(u.abroadCity(), 10, false)
		dev := u.device(u.otherAgent(victim.agent, true))
		if sc == scJar {
			// Infostealers take the whole cookie jar: the device cookie
			// comes along, so the request is on the victim's device id.
			dev.id = victim.id
		}
		u.hijack(s, at, u.dur(5*rMin, time.Hour), dev, loc, sc)
	case scFlatmate:
		vs := u.victimSessions(20*rMin, func(s *rSess) bool { return s.segs[0].loc == u.net[0] && len(s.segs) == 1 })
		s := vs[u.r.IntN(len(vs))]
		at := s.start.Add(u.dur(5*rMin, s.lastAct.Sub(s.start)-5*rMin))
		victim := s.segs[0].dev.agent
		u.hijack(s, at, u.dur(10*rMin, 2*rHour), u.device(u.otherAgent(victim, false)), u.net[0], sc)
	case scTwoCities:
		atHome := func(s *rSess) bool { c, _, _ := u.where(s.start); return c == ctxHome }
		far := u.g.far[u.home]
		city := far[u.r.IntN(len(far))]
		for _, c := range far { // a sharer is more often a few hours' flight away
			if u.g.km[u.home][c] < 3000 && u.r.Float64() < 0.2 {
				city = c
			}
		}
		loc := u.place(city, 10, false)
		dev := u.device(u.agent(append(append([]rAgent{}, rDesktop...), rMobile...)))
		// The sharer uses the account now and then, both months...
		tz := time.Duration(rCities[city].tz) * rHour
		for d := range rDays {
			if u.r.Float64() < 0.3 {
				start := rEpoch.Add(time.Duration(d)*rDay - tz + time.Duration(u.uniform(18, 23.5)*float64(rHour)))
				u.attackerSession(dev, start, u.logDur(20*rMin, 2*rHour), loc, sc)
			}
		}
		// ...and at least once while the owner does, at home.
		vs := u.victimSessions(30*rMin, atHome)
		s := vs[u.r.IntN(len(vs))]
		at := s.start.Add(u.dur(2*rMin, min(s.lastAct.Sub(s.start)-2*rMin, time.Hour)))
		u.attackerSession(dev, at, u.logDur(20*rMin, 90*rMin), loc, sc)
	case scFiveDevices:
		day := rMeasure.Add(time.Duration(1+u.r.IntN(20)) * rDay)
		var cities []int
		for i, c := range rCities {
			if c.cc == rCities[u.home].cc {
				cities = append(cities, i)
			}
		}
		for range 5 {
			city := u.home
			if u.r.Float64() < 0.5 {
				city = cities[u.r.IntN(len(cities))]
			}
			loc := u.place(city, 10, false)
			dev := u.device(u.agent(append(append([]rAgent{}, rDesktop...), rMobile...)))
			first := day.Add(u.dur(0, 7*rDay))
			u.attackerSession(dev, first, u.logDur(10*rMin, 2*rHour), loc, sc)
			for range u.r.IntN(3) {
				if at := first.Add(u.dur(2*rHour, 3*rDay)); at.Before(day.Add(7 * rDay)) {
					u.attackerSession(dev, at, u.logDur(10*rMin, 2*rHour), loc, sc)
				}
			}
		}
	case scCredTheft:
		// While the owner is at home: half the time in the middle of one of
		// the owner's sessions.
		var at time.Time
		for at.IsZero() {
			if vs := u.victimSessions(10*rMin, nil); u.r.Float64() < 0.5 && len(vs) > 0 {
				s := vs[u.r.IntN(len(vs))]
				at = s.start.Add(u.dur(rMin, s.lastAct.Sub(s.start)))
			} else {
				at = rMeasure.Add(u.dur(rDay, 28*rDay))
			}
			if c, _, _ := u.where(at); c != ctxHome {
				at = time.Time{}
			}
		}
		loc := u.place(u.abroadCity(), 10, false)
		u.attackerSession(u.device(u.agent(rDesktop)), at, u.logDur(5*rMin, time.Hour), loc, sc)
	}
}
