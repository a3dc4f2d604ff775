package risk

// The replay's sessions (see replay_test.go): what each user does day by
// day on laptop, phone and work PC, at home, away and in transit, turned
// into sessions whose requests move between places and devices.

import (
	"slices"
	"strconv"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
)

// rSeg: from at, the session's requests come from dev at loc.
type rSeg struct {
	at     time.Time
	dev    *rDevice
	loc    *enrich.Location
	tag    uint16
	attack int8 // 1+scenario for the attacker's requests
}

type rSess struct {
	id      string
	start   time.Time
	lastAct time.Time     // last request
	every   time.Duration // requests come this often while in use
	logout  bool
	segs    []rSeg
	attack  int8 // 1+scenario when the attacker opened it
	tags    uint16
	idx     int // in the user's sessions sorted by start
}

func (s *rSess) end() time.Time {
	if s.logout {
		return s.lastAct
	}
	return s.lastAct.Add(rIdle)
}

// segAt is the segment in use at t (the last one started at or before t).
func (s *rSess) segAt(t time.Time) int {
	i := 0
	for i+1 < len(s.segs) && !s.segs[i+1].at.After(t) {
		i++
	}
	return i
}

// lastBy is the last request at or before t while seg i is in use.
func (s *rSess) lastBy(t time.Time, i int) time.Time {
	if !t.Before(s.lastAct) {
		return s.lastAct
	}
	g := s.start.Add(t.Sub(s.start) / s.every * s.every)
	if a := s.segs[i].at; a.After(g) {
		g = a
	}
	return g
}

// sighting is the session as the store holds it at t.
func (s *rSess) sighting(t time.Time) Sighting {
	i := s.segAt(t)
	return s.sightingSeg(t, i)
}

func (s *rSess) sightingSeg(t time.Time, i int) Sighting {
	sg := s.segs[i]
	return Sighting{
		SessionID: s.id, DeviceID: sg.dev.id, Start: s.start, Last: s.lastBy(t, i), Active: t.Before(s.end()),
		Login: *s.segs[0].loc, Location: *sg.loc, Agent: sg.dev.agent,
	}
}

// truncate makes t the session's last request.
func (s *rSess) truncate(t time.Time) {
	if t.Before(s.start) {
		t = s.start
	}
	if !t.Before(s.lastAct) {
		return
	}
	s.lastAct = t
	for len(s.segs) > 1 && s.segs[len(s.segs)-1].at.After(t) {
		s.segs = s.segs[:len(s.segs)-1]
	}
}

type rStep struct {
	off time.Duration
	loc *enrich.Location
	tag uint16
}

type rIntent struct {
	dev    *rDevice
	start  time.Time
	dur    time.Duration
	steps  []rStep
	logout bool
	tag    uint16 // on every step
}

func (u *rUser) plan() []rIntent {
	var out []rIntent
	home := rCities[u.home]
	for d := range rDays {
		noon := rEpoch.Add(time.Duration(d)*rDay + 12*rHour - time.Duration(home.tz)*rHour)
		c, tr, _ := u.where(noon)
		tz := home.tz
		if c == ctxAway {
			tz = rCities[tr.dest].tz
		}
		midnight := rEpoch.Add(time.Duration(d)*rDay - time.Duration(tz)*rHour)
		if u.r.Float64() >= u.active {
			continue
		}
		weekday := d%7 < 5
		// Laptop: mornings, some midday, mostly evenings.
		for range u.pick([]int{35, 40, 15, 7, 3}) {
			h := []float64{u.uniform(7, 10), u.uniform(10, 17), u.uniform(17, 23.5)}[u.pick([]int{30, 20, 50})]
			start := midnight.Add(time.Duration(h * float64(rHour)))
			in, ok := u.laptopSession(start, u.logDur(5*rMin, 4*rHour))
			if !ok {
				continue
			}
			out = append(out, in)
			// The phone in use while the laptop is (at home, on the sofa).
			if u.r.Float64() < 0.3 {
				ps := start.Add(time.Duration(u.r.Float64() * float64(in.dur)))
				if in, ok := u.phoneSession(ps, u.logDur(2*rMin, 40*rMin), weekday); ok {
					out = append(out, in)
				}
			}
		}
		for range u.pick([]int{25, 40, 20, 10, 5}) {
			start := midnight.Add(time.Duration(u.uniform(7, 23.8) * float64(rHour)))
			if in, ok := u.phoneSession(start, u.logDur(1*rMin, 90*rMin), weekday); ok {
				out = append(out, in)
			}
		}
		if u.workpc != nil && weekday {
			for range 1 + u.r.IntN(2) {
				start := midnight.Add(time.Duration(u.uniform(8, 16) * float64(rHour)))
				c, _, next := u.where(start)
				if dur, ok := fit(start, u.dur(time.Hour, 4*rHour), next); ok && c == ctxHome {
					out = append(out, rIntent{dev: u.workpc, start: start, dur: dur, steps: []rStep{{0, u.office, u.officeT}}, logout: u.r.Float64() < 0.25})
				}
			}
		}
	}
	for _, tr := range u.trips {
		out = append(out, u.transit(tr)...)
	}
	return out
}

// fit cuts a session at the next change of context.
func fit(start time.Time, dur time.Duration, next time.Time) (time.Duration, bool) {
	if end := start.Add(dur); end.After(next) {
		dur = next.Sub(start) - rMin
	}
	return dur, dur >= rMin
}

func (u *rUser) laptopSession(start time.Time, dur time.Duration) (rIntent, bool) {
	c, tr, next := u.where(start)
	if c == ctxTransit || (c == ctxAway && !tr.laptop) {
		return rIntent{}, false
	}
	dur, ok := fit(start, dur, next)
	if !ok {
		return rIntent{}, false
	}
	o := owned(u.laptops, start)
	in := rIntent{dev: o.dev, start: start, dur: dur, logout: u.r.Float64() < 0.25, tag: o.tag}
	var base *enrich.Location
	if c == ctxAway {
		base, in.tag = tr.hotel, in.tag|tr.kind
	} else {
		switch u.pick([]int{85, 8, 4, 3}) {
		case 0:
			base = u.net[0]
		case 1:
			base = u.net[1]
		case 2: // tethered to the phone
			base = u.mob[u.r.IntN(len(u.mob))]
		default: // a café
			base = u.place(u.home, 8, false)
		}
	}
	in.steps = []rStep{{0, base, 0}}
	if u.vpn != nil && u.r.Float64() < 0.3 {
		exit := u.vpn[0]
		if u.r.Float64() < 0.3 {
			exit = u.vpn[u.r.IntN(len(u.vpn))]
		}
		if u.r.Float64() < 0.6 {
			in.steps = []rStep{{0, exit, tagVPN}}
		} else {
			in.steps = append(in.steps, rStep{time.Duration(u.r.Float64() * float64(dur)), exit, tagVPN})
		}
	}
	return in, true
}

func (u *rUser) phoneSession(start time.Time, dur time.Duration, weekday bool) (rIntent, bool) {
	c, tr, next := u.where(start)
	if c == ctxTransit {
		return rIntent{}, false
	}
	dur, ok := fit(start, dur, next)
	if !ok {
		return rIntent{}, false
	}
	o := owned(u.phones, start)
	in := rIntent{dev: o.dev, start: start, dur: dur, logout: u.r.Float64() < 0.1, tag: o.tag}
	mob := u.mob[u.r.IntN(len(u.mob))]
	if c == ctxAway {
		in.tag |= tr.kind
		l := u.awayPhone(tr)
		in.steps = []rStep{{0, l, u.roamTag(tr, l)}}
		return in, true
	}
	local := start.Add(time.Duration(rCities[u.home].tz) * rHour)
	if h := local.Hour(); u.office != nil && weekday && h >= 9 && h < 17 {
		if u.r.Float64() < 0.4 {
			in.steps = []rStep{{0, u.office, u.officeT}}
		} else {
			in.steps = []rStep{{0, mob, 0}}
		}
		return in, true
	}
	wifi := u.net[0]
	off := time.Duration(u.uniform(0.2, 0.8) * float64(dur))
	switch u.pick([]int{55, 30, 10, 5}) {
	case 0:
		in.steps = []rStep{{0, wifi, 0}}
	case 1:
		in.steps = []rStep{{0, mob, 0}}
	case 2: // leaves home
		in.steps = []rStep{{0, wifi, 0}, {off, mob, 0}}
	default: // comes home
		in.steps = []rStep{{0, mob, 0}, {off, wifi, 0}}
	}
	return in, true
}

// awayPhone: the hotel's Wi-Fi, or mobile data (abroad: roaming, which is
// home-routed, or a local SIM).
func (u *rUser) awayPhone(tr *rTrip) *enrich.Location {
	if u.r.Float64() < 0.5 {
		return tr.hotel
	}
	return u.travelMobile(tr)
}

func (u *rUser) travelMobile(tr *rTrip) *enrich.Location {
	if !tr.abroad {
		return tr.destMob
	}
	switch tr.phoneData {
	case 0:
		return u.mob[0]
	case 1:
		return tr.hotel
	}
	return tr.destMob
}

func (u *rUser) roamTag(tr *rTrip, l *enrich.Location) uint16 {
	if tr.abroad && tr.phoneData == 0 && l == u.mob[0] {
		return tagRoam
	}
	return 0
}

// transit: the phone on the way there and back.
func (u *rUser) transit(tr *rTrip) []rIntent {
	var out []rIntent
	phone := func(at time.Time) rOwned { return owned(u.phones, at) }
	add := func(start time.Time, dur time.Duration, steps ...rStep) {
		if dur < rMin {
			return
		}
		o := phone(start)
		out = append(out, rIntent{dev: o.dev, start: start, dur: dur, steps: steps, tag: tr.kind | o.tag})
	}
	home := u.mob[0]
	// Outbound: at the station or airport, then on board or after landing.
	start := tr.leave.Add(u.dur(5*rMin, 20*rMin))
	if tr.kind == tagTrain && !tr.abroad {
		mid := tr.depart.Add(tr.arrive.Sub(tr.depart) / 2)
		add(start, tr.arrive.Sub(start)-u.dur(0, 10*rMin), rStep{0, home, 0}, rStep{mid.Sub(start), tr.destMob, 0})
	} else {
		add(start, tr.depart.Sub(start)-u.dur(5*rMin, 25*rMin), rStep{0, home, 0})
	}
	l := u.travelMobile(tr)
	at := tr.arrive.Add(u.dur(5*rMin, 45*rMin))
	add(at, u.logDur(3*rMin, 40*rMin), rStep{0, l, u.roamTag(tr, l)})
	// Back: before leaving, then at home.
	l = u.awayPhone(tr)
	start = tr.leaveDest.Add(u.dur(5*rMin, 20*rMin))
	add(start, tr.departBack.Sub(start)-u.dur(5*rMin, 25*rMin), rStep{0, l, u.roamTag(tr, l)})
	at = tr.arriveBack.Add(u.dur(5*rMin, 40*rMin))
	add(at, u.logDur(3*rMin, 30*rMin), rStep{0, u.mob[u.r.IntN(len(u.mob))], 0})
	return out
}

// materialize turns intents into sessions: a device's new session cuts the
// previous one short (the browser logged in again).
func (u *rUser) materialize(plan []rIntent) {
	slices.SortStableFunc(plan, func(a, b rIntent) int { return a.start.Compare(b.start) })
	for _, in := range plan {
		if p := in.dev.last; p != nil && in.start.Before(p.lastAct) {
			p.truncate(in.start.Add(-rMin))
		}
		s := u.newSess(in.start, in.dur, in.logout)
		for _, st := range in.steps {
			if st.off >= in.dur {
				continue
			}
			s.segs = append(s.segs, rSeg{at: in.start.Add(st.off), dev: in.dev, loc: st.loc, tag: st.tag | in.tag})
		}
		in.dev.last = s
		u.sess = append(u.sess, s)
	}
}

func (u *rUser) newSess(start time.Time, dur time.Duration, logout bool) *rSess {
	u.nextSess++
	return &rSess{id: "u" + strconv.Itoa(u.id) + "-s" + strconv.Itoa(u.nextSess), start: start, lastAct: start.Add(dur),
		every: time.Duration(1+u.r.IntN(10)) * rMin, logout: logout}
}
