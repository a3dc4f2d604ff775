package tracker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
	"github.com/caddy-sessions/caddy-sessions/tracker/risk"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// The GeoIP test database's addresses.
const (
	riskLondon    = "81.2.69.142"   // London, GB
	riskBoxford   = "2.125.160.216" // Boxford, GB (about 80 km from London)
	riskMilton    = "216.160.83.56" // Milton, US
	riskLinkoping = "89.160.20.112" // Linköping, SE
	riskChangchun = "175.16.199.0"  // Changchun, CN

	uaChromeWin = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaIPhone    = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)

// riskFixture is a tracker with every signal on at action, the test GeoIP
// database and a clock, recording the findings it reports.
type riskFixture struct {
	t     *testing.T
	tr    *Tracker
	mem   *redisstore.Memory
	clock *fakeClock
	mu    sync.Mutex
	found []RiskEvent
}

func newRiskFixture(t *testing.T, actions map[risk.Signal]string) *riskFixture {
	geo, err := enrich.OpenGeo(rxGeoDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = geo.Close() })
	f := &riskFixture{t: t, mem: redisstore.NewMemory(), clock: newFakeClock()}
	f.tr = newTestTracker(t, f.mem, withClock(f.clock), func(cfg *Config) {
		cfg.Geo = geo
		cfg.Risk = &RiskPolicy{Actions: actions, Thresholds: risk.DefaultThresholds()}
		cfg.Hooks.Risk = func(_ context.Context, ev RiskEvent) { f.mu.Lock(); f.found = append(f.found, ev); f.mu.Unlock() }
	})
	return f
}

func allSignals(action string) map[risk.Signal]string {
	m := map[risk.Signal]string{}
	for _, s := range risk.Signals {
		m[s] = action
	}
	return m
}

// signals are the signals reported since the last call.
func (f *riskFixture) signals() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ev := range f.found {
		out = append(out, ev.Record.Signal)
	}
	f.found = nil
	return out
}

func (f *riskFixture) login(token, ip, ua, deviceCookie string) Result {
	f.t.Helper()
	dev, setCookie, _ := f.tr.DeviceFor(deviceCookie, false, "shop", "alice", ua, ip)
	res, err := f.tr.Login(context.Background(), Request{Realm: "shop", Token: token, User: "alice", IP: ip, UserAgent: ua, DeviceID: dev})
	if err != nil {
		f.t.Fatalf("Login: %v", err)
	}
	if setCookie != "" {
		res.SetDeviceCookie = setCookie
	}
	return res
}

func (f *riskFixture) visit(token, ip, ua, deviceCookie string) Result {
	f.t.Helper()
	return observe(f.t, f.tr, Request{Realm: "shop", Token: token, IP: ip, UserAgent: ua, DeviceCookie: deviceCookie})
}

func TestRiskSignalsAtLogin(t *testing.T) {
	f := newRiskFixture(t, allSignals(RiskLog))
	first := f.login("t1", riskLondon, uaChromeWin, "")
	if got := f.signals(); len(got) != 0 {
		t.Fatalf("a user's first login raised %v", got)
	}
	laptop := first.SetDeviceCookie
	// The same laptop again, hours later: nothing.
	f.clock.Add(3 * time.Hour)
	f.login("t2", riskLondon, uaChromeWin, laptop)
	if got := f.signals(); len(got) != 0 {
		t.Fatalf("the same device and city again raised %v", got)
	}
	// A phone in a town 80 km away: a new device, no travel (within the
	// floor and the accuracy radii).
	f.clock.Add(time.Hour)
	phone := f.login("t3", riskBoxford, uaIPhone, "")
	if got := strings.Join(f.signals(), ","); got != "new_device" {
		t.Fatalf("a phone nearby raised %q, want new_device", got)
	}
	if phone.Vars.Risk() != "new_device" {
		t.Errorf("{http.sessions.risk} on the phone's login = %v, want new_device", phone.Vars.Risk())
	}
	// Linköping 3 h later on the laptop (about 1,400 km: 470 km/h): a
	// new country, no impossible travel; the London sessions idled out.
	f.clock.Add(3 * time.Hour)
	f.login("t4", riskLinkoping, uaChromeWin, laptop)
	if got := strings.Join(f.signals(), ","); got != "new_country" {
		t.Fatalf("Linköping 3 h after Boxford raised %q, want new_country", got)
	}
	// Milton (US) 20 minutes later: impossible travel, another country,
	// and the Linköping session still active.
	f.clock.Add(20 * time.Minute)
	f.login("t5", riskMilton, uaChromeWin, laptop)
	if got := strings.Join(f.signals(), ","); got != "new_country,impossible_travel,distant_concurrent" {
		t.Fatalf("Milton 20 min after Linköping raised %q", got)
	}
	list, total, err := f.tr.Risks(context.Background(), "shop", "alice", 0, 10)
	if err != nil || total != 5 {
		t.Fatalf("Risks = %d (%v), want the 5 findings", total, err)
	}
	var travel store.RiskRecord
	for _, r := range list {
		if r.Signal == string(risk.ImpossibleTravel) {
			travel = *r
		}
	}
	if travel.Location.City != "Milton" || !strings.Contains(string(travel.Evidence), `"speed_kmh"`) || !strings.Contains(string(travel.Evidence), "Linköping") {
		t.Errorf("impossible_travel record = %+v %s", travel, travel.Evidence)
	}
}

// TestRiskCopiedCookie: a logged-in browser's session cookie in another
// browser elsewhere is cookie_moved; each enforcing action does what it
// says, and the cookie's owner is never handed over.
func TestRiskCopiedCookie(t *testing.T) {
	for _, c := range []struct {
		action                   string
		thiefRefused, ownerSaved bool
		reason                   string
	}{
		{RiskLog, false, true, ""},
		{RiskBlock, true, true, string(risk.CookieMoved)},
		{RiskRevoke, true, false, store.EndRevoked},
		{RiskChallenge, true, false, store.EndRevoked},
	} {
		t.Run(c.action, func(t *testing.T) {
			f := newRiskFixture(t, map[risk.Signal]string{risk.CookieMoved: c.action})
			own := f.login("tok", riskLondon, uaChromeWin, "")
			cookie := own.SetDeviceCookie
			if r := f.visit("tok", riskLondon, uaChromeWin, cookie); r.Refused || len(f.signals()) != 0 {
				t.Fatalf("the owner's own visit: %+v", r)
			}
			f.clock.Add(time.Minute)
			thief := f.visit("tok", riskChangchun, uaIPhone, "")
			if got := strings.Join(f.signals(), ","); got != "cookie_moved" {
				t.Fatalf("the copied cookie raised %q, want cookie_moved", got)
			}
			if thief.Refused != c.thiefRefused || thief.Reason != c.reason || thief.Challenge != (c.action == RiskChallenge) {
				t.Fatalf("the thief's request: %+v, want refused %v reason %q", thief, c.thiefRefused, c.reason)
			}
			if thief.SetDeviceCookie == cookie || thief.DeviceID == own.DeviceID {
				t.Fatalf("the thief was handed the owner's device (%s)", thief.DeviceID)
			}
			// The thief again: refused again (or, with log, let through
			// and not reported twice).
			again := f.visit("tok", riskChangchun, uaIPhone, "")
			if again.Refused != c.thiefRefused || len(f.signals()) != 0 {
				t.Errorf("the thief again: %+v", again)
			}
			f.clock.Add(time.Minute)
			owner := f.visit("tok", riskLondon, uaChromeWin, cookie)
			if owner.Refused == c.ownerSaved {
				t.Errorf("the owner after %s: %+v, want refused %v", c.action, owner, !c.ownerSaved)
			}
			sessions, _, _ := f.tr.Sessions(context.Background(), "shop", "alice", "all", 0, 10)
			if len(sessions) != 1 || strings.Join(sessions[0].Risk, ",") != "cookie_moved" {
				t.Fatalf("sessions = %+v, want one with risk cookie_moved", sessions)
			}
		})
	}
}

// TestRiskQuietOnTheSameBrowser: a session that predates the device
// cookie (the module just deployed), or whose cookie was cleared, seen on
// the same browser from the same place is no stolen cookie.
func TestRiskQuietOnTheSameBrowser(t *testing.T) {
	f := newRiskFixture(t, allSignals(RiskBlock))
	own := f.login("tok", riskLondon, uaChromeWin, "")
	f.clock.Add(time.Minute)
	// The same browser without its device cookie, from another address
	// of the same place.
	if r := f.visit("tok", riskLondon, uaChromeWin, ""); r.Refused {
		t.Fatalf("the same browser without its cookie: %+v", r)
	}
	if got := f.signals(); len(got) != 0 {
		t.Fatalf("raised %v", got)
	}
	if r := f.visit("tok", riskLondon, uaChromeWin, own.SetDeviceCookie); r.Refused {
		t.Fatalf("the owner: %+v", r)
	}
}

// TestRiskNotOnTheHotPath: requests answered from the cache read no
// history.
func TestRiskNotOnTheHotPath(t *testing.T) {
	f := newRiskFixture(t, allSignals(RiskLog))
	cs := &historyCounter{Store: f.mem}
	f.tr.cfg.Store = cs
	own := f.login("tok", riskLondon, uaChromeWin, "")
	reads := cs.n.Load()
	if reads != 1 {
		t.Fatalf("a login read the history %d times, want 1", reads)
	}
	for range 100 {
		f.visit("tok", riskLondon, uaChromeWin, own.SetDeviceCookie)
	}
	if n := cs.n.Load(); n != reads {
		t.Errorf("100 cached requests read the history %d times", n-reads)
	}
}

// historyCounter counts the history reads (Sessions).
type historyCounter struct {
	store.Store
	n atomic.Int64
}

func (h *historyCounter) Sessions(ctx context.Context, req store.ListRequest) ([]*store.Session, int, error) {
	h.n.Add(1)
	return h.Store.Sessions(ctx, req)
}

// TestRiskStolenCookieJar: the session cookie and the device cookie taken
// to another browser arrive on the owner's device id; block would lock the
// owner out with the thief, so the session is revoked instead.
func TestRiskStolenCookieJar(t *testing.T) {
	f := newRiskFixture(t, map[risk.Signal]string{risk.CookieMoved: RiskBlock})
	own := f.login("tok", riskLondon, uaChromeWin, "")
	f.clock.Add(time.Minute)
	thief := f.visit("tok", riskChangchun, uaIPhone, own.SetDeviceCookie)
	if !thief.Refused || thief.Reason != store.EndRevoked || thief.DeviceID != own.DeviceID {
		t.Fatalf("the stolen jar: %+v, want refused as revoked on the owner's device id", thief)
	}
	list, _, _ := f.tr.Risks(context.Background(), "shop", "alice", 0, 10)
	if len(list) != 1 || list[0].Signal != string(risk.CookieMoved) || list[0].Action != RiskRevoke {
		t.Fatalf("findings = %+v, want cookie_moved recorded as revoke", list)
	}
	devs, _ := f.tr.Devices(context.Background(), "shop", "alice")
	for _, d := range devs {
		if d.Blocked {
			t.Errorf("device %s blocked: the owner's device must not be", d.ID)
		}
	}
}

// TestRiskReplayedAfterIdle: a session cookie replayed in another browser
// after its session idled out opens a new session; the token's previous
// session makes it cookie_moved all the same.
func TestRiskReplayedAfterIdle(t *testing.T) {
	f := newRiskFixture(t, map[risk.Signal]string{risk.CookieMoved: RiskRevoke})
	f.login("tok", riskLondon, uaChromeWin, "")
	f.clock.Add(suitePolicy.Idle + time.Hour)
	thief := f.visit("tok", riskChangchun, uaIPhone, "")
	if got := strings.Join(f.signals(), ","); got != "cookie_moved" || !thief.Refused || thief.Reason != store.EndRevoked {
		t.Fatalf("the cookie replayed after idling out: signals %q, %+v; want cookie_moved, revoked", got, thief)
	}
}

// cancellingStore cancels the request's context as soon as Seen answered:
// a client hanging up between the store's answer and the assessment.
type cancellingStore struct {
	store.Store
	cancel context.CancelFunc
}

func (c *cancellingStore) Seen(ctx context.Context, req store.SeenRequest) (store.SeenResult, error) {
	res, err := c.Store.Seen(ctx, req)
	c.cancel()
	return res, err
}

// TestRiskClientHangsUp: the assessment does not depend on the client
// staying: the copied cookie is found and refused although the request's
// context was cancelled right after Seen.
func TestRiskClientHangsUp(t *testing.T) {
	f := newRiskFixture(t, map[risk.Signal]string{risk.CookieMoved: RiskBlock})
	own := f.login("tok", riskLondon, uaChromeWin, "")
	ctx, cancel := context.WithCancel(context.Background())
	f.tr.cfg.Store = &cancellingStore{Store: f.mem, cancel: cancel}
	res, err := f.tr.Observe(ctx, Request{Realm: "shop", Token: "tok", IP: riskChangchun, UserAgent: uaIPhone})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Refused || res.Reason != string(risk.CookieMoved) || res.DeviceID == own.DeviceID {
		t.Fatalf("the copy whose client hung up: %+v, want refused as cookie_moved", res)
	}
}

// failingRiskStore fails RecordRisk: the verdict stands, and the entry is
// not cached, so the next request is assessed again.
type failingRiskStore struct {
	store.Store
	fail atomic.Bool
}

func (s *failingRiskStore) RecordRisk(ctx context.Context, realm, user string, rec store.RiskRecord, p store.Policy) (bool, error) {
	if s.fail.Load() {
		return false, errors.New("store down")
	}
	return s.Store.RecordRisk(ctx, realm, user, rec, p)
}

func TestRiskStoreFailsDuringAssessment(t *testing.T) {
	f := newRiskFixture(t, map[risk.Signal]string{risk.CookieMoved: RiskLog})
	f.login("tok", riskLondon, uaChromeWin, "")
	fs := &failingRiskStore{Store: f.mem}
	fs.fail.Store(true)
	f.tr.cfg.Store = fs
	if r := f.visit("tok", riskChangchun, uaIPhone, ""); r.Refused {
		t.Fatalf("with log, a failed record refuses nothing: %+v", r)
	}
	fs.fail.Store(false)
	f.visit("tok", riskChangchun, uaIPhone, "")
	if got := strings.Join(f.signals(), ","); got != "cookie_moved" {
		t.Fatalf("the next request after the store came back: signals %q, want cookie_moved (not answered from the cache)", got)
	}
}
