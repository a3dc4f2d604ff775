package risk

// The replay of one user (see replay_test.go): the user's events in time
// order through Evaluate, with the history the tracker would read for
// each, and what the findings say about clean and attacked traffic.

import (
	"fmt"
	"slices"
	"time"
)

type rEvent struct {
	at  time.Time
	s   *rSess
	seg int // 0: opened
}

type rResult struct {
	scenario int
	traits   uint16    // what the user did in the measured month
	events   int       // evaluated: measured events (attacked users: the attacker's)
	alerted  [5]bool   // clean: a finding of the signal in the measured month
	causes   [5]uint16 // clean: what those findings were tagged with
	fired    [5]bool   // attacked: the signal fired on an attacker's event
	// What alert rules built on the findings would do: new_device and
	// new_country on one login; new_device 3 times in 7 days (clean or
	// attacked); a finding from neither a VPN nor roaming data (clean).
	bothNew, manyNew bool
	noVPNRoam        [5]bool
	samples          []string // clean findings without a known cause
	badHistory       int      // sampled histories that differ from referenceHistory
}

type rWorker struct {
	rev   []Sighting // every session's sighting, newest start first
	revS  []*rSess
	live  []int // rev indexes of sessions started and not ended
	begun int   // sessions started before the last event
	old   int   // sessions started before its retention horizon
	idx   []int
	hist  []Sighting // a history that is not a window of rev
	inBuf []*rSess
	in    []*rSess // the sessions of the last history
}

func (w *rWorker) run(u *rUser, th Thresholds) rResult {
	res := rResult{scenario: u.scenario, traits: u.traits()}
	u.materialize(u.plan())
	if u.scenario >= 0 {
		u.inject()
	}
	slices.SortStableFunc(u.sess, func(a, b *rSess) int { return a.start.Compare(b.start) })
	w.reset(u)
	// Events: each session's opening, and each change of IP or device.
	var evs []rEvent
	for _, s := range u.sess {
		evs = append(evs, rEvent{s.start, s, 0})
		s.tags = 0
		for i, sg := range s.segs {
			s.tags |= sg.tag
			if i > 0 && (sg.loc != s.segs[i-1].loc || sg.dev != s.segs[i-1].dev) {
				evs = append(evs, rEvent{sg.at, s, i})
			}
		}
	}
	slices.SortStableFunc(evs, func(a, b rEvent) int { return a.at.Compare(b.at) })
	seen := map[string]bool{} // devices the user used
	all := func(Signal) bool { return true }
	var newDevs []time.Time
	for n, e := range evs {
		sg := e.s.segs[e.seg]
		newDev, devices := !seen[sg.dev.id], len(seen)
		seen[sg.dev.id] = true
		tags, attack := sg.tag, sg.attack
		if e.seg > 0 {
			tags |= e.s.segs[e.seg-1].tag
			attack = max(attack, e.s.segs[e.seg-1].attack)
		}
		// Warm-up builds history only; an attacked user's own events are
		// not measured.
		if e.at.Before(rMeasure) || (u.scenario >= 0 && attack == 0) {
			continue
		}
		ev := Event{Kind: Opened, At: e.at, SessionID: e.s.id, DeviceID: sg.dev.id, NewDevice: newDev, Login: true, Location: *sg.loc, Agent: sg.dev.agent}
		if e.seg > 0 {
			before := e.s.sightingSeg(e.at.Add(-1), e.seg-1)
			ev.Kind, ev.Login, ev.Session = Moved, false, &before
		}
		h := w.history(u, e, devices)
		if n%97 == 0 {
			if ref := referenceHistory(u, e, devices); !slices.Equal(h.Sessions, ref.Sessions) || h.Devices != ref.Devices {
				res.badHistory++
			}
		}
		res.events++
		fs := Evaluate(ev, h, th, all)
		has := func(s Signal) bool { return slices.ContainsFunc(fs, func(f Finding) bool { return f.Signal == s }) }
		res.bothNew = res.bothNew || (has(NewDevice) && has(NewCountry))
		if has(NewDevice) {
			newDevs = append(newDevs, e.at)
			if len(newDevs) >= 3 && e.at.Sub(newDevs[len(newDevs)-3]) <= 7*rDay {
				res.manyNew = true
			}
		}
		for _, f := range fs {
			k := slices.Index(Signals, f.Signal)
			if u.scenario >= 0 {
				res.fired[k] = true
				continue
			}
			t := tags
			if o := f.Evidence.OtherSession; o != "" {
				for i, s := range h.Sessions {
					if s.SessionID == o {
						t |= w.in[i].tags
					}
				}
			}
			if f.Signal == NewCountry && ev.Location.CountryCode == rCities[u.home].cc {
				t |= tagHomeBack
			}
			if f.Signal == NewDevice && sg.tag&tagNewDev == 0 {
				t |= tagDormant
			}
			res.noVPNRoam[k] = res.noVPNRoam[k] || t&(tagVPN|tagRoam) == 0
			res.alerted[k] = true
			res.causes[k] |= t
			if t == 0 && len(res.samples) < 2 {
				res.samples = append(res.samples, fmt.Sprintf("user %d %s %s at %s: %s %+v", u.id, ev.Kind, f.Signal,
					e.at.Format(time.RFC3339), ev.Location.String(), f.Evidence))
			}
		}
	}
	return res
}

// referenceHistory is history the plain way, to check it on a sample.
func referenceHistory(u *rUser, e rEvent, devices int) History {
	var read []*rSess
	for i := len(u.sess) - 1; i >= 0 && len(read) < rHistCap; i-- {
		if s := u.sess[i]; s == e.s || (s.start.Before(e.at) && !s.end().Before(e.at.Add(-rRetention))) {
			read = append(read, s)
		}
	}
	h := History{Devices: devices}
	for _, s := range read {
		if s != e.s {
			h.Sessions = append(h.Sessions, s.sighting(e.at))
		}
	}
	return h
}

// reset prepares w for u's sessions, sorted by start.
func (w *rWorker) reset(u *rUser) {
	n := len(u.sess)
	w.rev, w.revS = slices.Grow(w.rev[:0], n)[:n], slices.Grow(w.revS[:0], n)[:n]
	for i, s := range u.sess {
		s.idx = i
		w.revS[n-1-i] = s
	}
	w.live, w.begun, w.old = w.live[:0], 0, 0
}

// history is what the tracker reads for e (tracker/assess.go): the
// user's 50 newest sessions by start, the event's own (already stored)
// among them, kept 30 days after they end; then the own one left out.
// devices is how many devices the user used before e. Events come in time
// order.
//
// w.rev holds every session's sighting, newest start first, refreshed
// until the session has ended (then it no longer changes); the history is
// a window of it unless a session inside is left out.
func (w *rWorker) history(u *rUser, e rEvent, devices int) History {
	n := len(u.sess)
	for w.begun < n && u.sess[w.begun].start.Before(e.at) {
		w.live = append(w.live, n-1-w.begun)
		w.begun++
	}
	horizon := e.at.Add(-rRetention)
	for w.old < w.begun && u.sess[w.old].start.Before(horizon) {
		w.old++
	}
	live := w.live[:0]
	for _, j := range w.live {
		s := w.revS[j]
		w.rev[j] = s.sighting(e.at)
		if e.at.Before(s.end()) {
			live = append(live, j)
		}
	}
	w.live = live
	// rev[first:kept] started before e and within retention; older ones
	// are kept if they ended within it. The own session is newer than
	// first when it opens now (own < first), or in rev when it moves.
	first, kept, own := n-w.begun, n-w.old, n-1-e.s.idx
	window := func(lo, hi int) History {
		w.in = w.revS[lo:hi]
		return History{Sessions: w.rev[lo:hi], Devices: devices}
	}
	if kept-first >= rHistCap {
		switch {
		case own < first:
			return window(first, first+rHistCap-1)
		case own >= first+rHistCap:
			return window(first, first+rHistCap)
		case own == first:
			return window(first+1, first+rHistCap)
		}
	}
	idx, read := w.idx[:0], 0
	if own < first {
		read++
	}
	for j := first; j < n && read < rHistCap; j++ {
		s := w.revS[j]
		if j >= kept {
			if s.start.Add(rDay).Before(horizon) {
				break // no session lasts a day: all older ones have expired
			}
			if s.end().Before(horizon) {
				continue
			}
		}
		read++
		if j != own {
			idx = append(idx, j)
		}
	}
	w.idx = idx
	if len(idx) == 0 {
		w.in = nil
		return History{Devices: devices}
	}
	if lo, hi := idx[0], idx[len(idx)-1]; hi-lo == len(idx)-1 {
		return window(lo, hi+1)
	}
	w.hist, w.inBuf = w.hist[:0], w.inBuf[:0]
	for _, j := range idx {
		w.hist, w.inBuf = append(w.hist, w.rev[j]), append(w.inBuf, w.revS[j])
	}
	w.in = w.inBuf
	return History{Sessions: w.hist, Devices: devices}
}
