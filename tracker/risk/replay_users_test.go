package risk

// The replay's users (see replay_test.go): where each lives and works, the
// devices they own and replace, the IP geolocations they show, the trips
// they take, and where they are at any time.

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
)

// Causes a session's requests are tagged with, to explain findings.
const (
	tagVPN uint16 = 1 << iota
	tagTrain
	tagFlight
	tagRoam     // phone on roaming data abroad (home-routed: geolocates at home)
	tagNewDev   // a device the user got this month
	tagBorder   // office across a border
	tagHomeBack // new_country for the user's home country (history forgot it)
	tagDormant  // new_device for a device unused for over 30 days
	tagAbroad   // (a trait) went abroad
)

type rDevice struct {
	id    string
	agent enrich.Agent
	last  *rSess // its latest session, while planning
}

type rTrip struct {
	kind      uint16 // tagTrain or tagFlight
	dest      int
	abroad    bool
	laptop    bool // the laptop comes along
	phoneData int  // abroad: 0 roaming (home-routed), 1 Wi-Fi only, 2 local SIM
	hotel     *enrich.Location
	destMob   *enrich.Location
	// outbound: leave home, depart, arrive, at the hotel; and back.
	leave, depart, arrive, atDest             time.Time
	leaveDest, departBack, arriveBack, atHome time.Time
}

const (
	ctxHome = iota
	ctxAway
	ctxTransit
)

type rOwned struct {
	from time.Time
	dev  *rDevice
	tag  uint16
}

type rUser struct {
	id       int
	g        *rGeo
	r        *rand.Rand
	scenario int // -1: clean
	home     int
	work     int // -1: no work PC
	active   float64
	net      [2]*enrich.Location // home broadband geolocations
	mob      []*enrich.Location  // mobile data geolocations around home
	office   *enrich.Location
	officeT  uint16
	laptops  []rOwned
	phones   []rOwned
	workpc   *rDevice
	vpn      []*enrich.Location // VPN exits, the usual one first; nil: no VPN
	trips    []*rTrip
	sess     []*rSess
	nextDev  int
	nextSess int
}

func (u *rUser) pick(w []int) int {
	t := 0
	for _, x := range w {
		t += x
	}
	n := u.r.IntN(t)
	for i, x := range w {
		if n < x {
			return i
		}
		n -= x
	}
	return len(w) - 1
}

func (u *rUser) agent(list []rAgent) enrich.Agent {
	w := make([]int, len(list))
	for i, a := range list {
		w[i] = a.w
	}
	return list[u.pick(w)].a
}

func (u *rUser) device(a enrich.Agent) *rDevice {
	u.nextDev++
	return &rDevice{id: "u" + strconv.Itoa(u.id) + "-d" + strconv.Itoa(u.nextDev), agent: a}
}

func (u *rUser) uniform(a, b float64) float64 { return a + u.r.Float64()*(b-a) }

func (u *rUser) dur(a, b time.Duration) time.Duration {
	return a + time.Duration(u.r.Int64N(int64(b-a)))
}

// logDur is log-uniform between a and b: many short sessions, some long.
func (u *rUser) logDur(a, b time.Duration) time.Duration {
	return time.Duration(math.Exp(u.uniform(math.Log(float64(a)), math.Log(float64(b)))))
}

var (
	rFixedAcc  = []int{5, 10, 20, 50, 100}
	rFixedW    = []int{1, 3, 3, 2, 1}
	rMobileAcc = []int{20, 50, 100, 200}
	rMobileW   = []int{1, 3, 3, 2}
)

// place is an IP's geolocation: in city, up to jitter km from its centre.
func (u *rUser) place(city int, jitter float64, mobile bool) *enrich.Location {
	c := rCities[city]
	lat := c.lat + u.uniform(-1, 1)*jitter/111
	lon := c.lon + u.uniform(-1, 1)*jitter/(111*math.Cos(c.lat*math.Pi/180))
	acc := rFixedAcc[u.pick(rFixedW)]
	if mobile {
		acc = rMobileAcc[u.pick(rMobileW)]
	}
	return &enrich.Location{City: c.name, Country: rCountries[c.cc], CountryCode: c.cc, Latitude: &lat, Longitude: &lon, AccuracyKm: acc}
}

// nearby is the city itself or, with probability p, a town within 60 km.
func (u *rUser) nearby(city int, p float64) int {
	if n := u.g.near[city]; len(n) > 0 && u.r.Float64() < p {
		return n[u.r.IntN(len(n))]
	}
	return city
}

func newRUser(g *rGeo, id, scenario int) *rUser {
	u := &rUser{id: id, g: g, r: rand.New(rand.NewPCG(rSeed, uint64(id))), scenario: scenario, work: -1}
	u.home = u.pick(g.homeW)
	u.active = []float64{0.3, 0.6, 0.9}[u.pick([]int{25, 50, 25})] // days with logins
	u.net[0] = u.place(u.nearby(u.home, 0.2), 10, false)
	u.net[1] = u.place(u.nearby(u.home, 0.4), 10, false)
	for range 1 + u.r.IntN(3) {
		u.mob = append(u.mob, u.place(u.nearby(u.home, 0.5), 5, true))
	}
	u.laptops = []rOwned{{dev: u.device(u.agent(rDesktop))}}
	u.phones = []rOwned{{dev: u.device(u.agent(rMobile))}}
	if u.r.Float64() < 0.25 {
		u.work = u.nearby(u.home, 0.3)
		if b := g.border[u.home]; len(b) > 0 && u.r.Float64() < 0.4 {
			u.work = b[u.r.IntN(len(b))]
			u.officeT = tagBorder
		}
		u.office = u.place(u.work, 5, false)
		u.workpc = u.device(u.agent(rWork))
	}
	if u.r.Float64() < 0.02 {
		for range 1 + u.r.IntN(3) {
			e := g.exits[u.r.IntN(len(g.exits))]
			if e != u.home {
				u.vpn = append(u.vpn, u.place(e, 3, false))
			}
		}
	}
	for m := range 2 {
		base := time.Duration(m*rWarmDays) * rDay
		if u.r.Float64() < 0.03 {
			at := rEpoch.Add(base + time.Duration(u.r.IntN(rWarmDays))*rDay + u.dur(9*rHour, 20*rHour) - time.Duration(rCities[u.home].tz)*rHour)
			a := u.phones[len(u.phones)-1].dev.agent
			if u.r.Float64() < 0.15 {
				a = u.agent(rMobile)
			}
			u.phones = append(u.phones, rOwned{from: at, dev: u.device(a), tag: tagNewDev})
		}
		if u.r.Float64() < 0.01 {
			at := rEpoch.Add(base + time.Duration(u.r.IntN(rWarmDays))*rDay + u.dur(9*rHour, 20*rHour) - time.Duration(rCities[u.home].tz)*rHour)
			u.laptops = append(u.laptops, rOwned{from: at, dev: u.device(u.agent(rDesktop)), tag: tagNewDev})
		}
		if t := g.train[u.home]; len(t) > 0 && u.r.Float64() < 0.10 {
			u.addTrip(tagTrain, t, base)
		}
		if u.r.Float64() < 0.03 {
			u.addTrip(tagFlight, nil, base)
		}
	}
	return u
}

// traits: what the user does in the measured month, to describe the
// population.
func (u *rUser) traits() uint16 {
	var t uint16
	if u.vpn != nil {
		t |= tagVPN
	}
	t |= u.officeT
	for _, o := range append(u.phones[1:], u.laptops[1:]...) {
		if !o.from.Before(rMeasure) {
			t |= tagNewDev
		}
	}
	for _, tr := range u.trips {
		if tr.atHome.After(rMeasure) && tr.leave.Before(rMeasure.Add(rWarmDays*rDay)) {
			t |= tr.kind
			if tr.abroad {
				t |= tagAbroad
				if tr.phoneData == 0 {
					t |= tagRoam
				}
			}
		}
	}
	return t
}

func owned(list []rOwned, t time.Time) rOwned {
	o := list[0]
	for _, x := range list[1:] {
		if !x.from.After(t) {
			o = x
		}
	}
	return o
}

func (u *rUser) addTrip(kind uint16, dests []int, base time.Duration) {
	g, home := u.g, rCities[u.home]
	tr := &rTrip{kind: kind, laptop: u.r.Float64() < 0.6}
	var stay int
	if kind == tagTrain {
		w := make([]int, len(dests))
		for i, d := range dests {
			w[i] = 1 + rCities[d].weight
		}
		tr.dest = dests[u.pick(w)]
		stay = 1 + u.r.IntN(5)
	} else {
		var near, all []int
		for i, c := range rCities {
			if c.cc != home.cc && c.weight > 0 {
				all = append(all, i)
				if g.km[u.home][i] < 3000 {
					near = append(near, i)
				}
			}
		}
		if len(near) > 0 && u.r.Float64() < 0.6 {
			all = near
		}
		tr.dest = all[u.r.IntN(len(all))]
		stay = 3 + u.r.IntN(12)
	}
	dest := rCities[tr.dest]
	tr.abroad = dest.cc != home.cc
	tr.phoneData = u.pick([]int{50, 30, 20})
	tr.hotel = u.place(tr.dest, 8, false)
	tr.destMob = u.place(u.nearby(tr.dest, 0.5), 5, true)
	km := g.km[u.home][tr.dest]
	var pre, post, ride time.Duration
	if kind == tagTrain {
		pre, post = u.dur(20*rMin, 60*rMin), u.dur(15*rMin, 40*rMin)
		ride = time.Duration(km/u.uniform(110, 220)*float64(rHour)) + 15*rMin
	} else {
		pre, post = u.dur(90*rMin, 3*rHour), u.dur(40*rMin, 100*rMin)
		ride = time.Duration(km/u.uniform(750, 850)*float64(rHour)) + 40*rMin
	}
	day := time.Duration(u.r.IntN(rWarmDays - 15))
	tr.depart = rEpoch.Add(base + day*rDay + u.dur(7*rHour, 17*rHour) - time.Duration(home.tz)*rHour)
	tr.leave = tr.depart.Add(-pre)
	tr.arrive = tr.depart.Add(ride)
	tr.atDest = tr.arrive.Add(post)
	backDay := tr.arrive.Add(time.Duration(dest.tz) * rHour).Truncate(rDay).Add(time.Duration(stay) * rDay)
	tr.departBack = backDay.Add(u.dur(9*rHour, 18*rHour) - time.Duration(dest.tz)*rHour)
	tr.leaveDest = tr.departBack.Add(-pre)
	tr.arriveBack = tr.departBack.Add(ride)
	tr.atHome = tr.arriveBack.Add(post)
	for _, o := range u.trips {
		if tr.leave.Before(o.atHome.Add(rDay)) && o.leave.Before(tr.atHome.Add(rDay)) {
			return // overlaps another trip: stay home
		}
	}
	u.trips = append(u.trips, tr)
}

// where is the user's context at t, and until when it lasts.
func (u *rUser) where(t time.Time) (int, *rTrip, time.Time) {
	next := rEpoch.Add(rDays * rDay * 2)
	for _, tr := range u.trips {
		switch {
		case t.Before(tr.leave):
			if tr.leave.Before(next) {
				next = tr.leave
			}
		case t.Before(tr.atDest):
			return ctxTransit, tr, tr.atDest
		case t.Before(tr.leaveDest):
			return ctxAway, tr, tr.leaveDest
		case t.Before(tr.atHome):
			return ctxTransit, tr, tr.atHome
		}
	}
	return ctxHome, nil, next
}
