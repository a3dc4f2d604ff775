package tracker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
)

// rxActivityFx is a memory store, a scenario on it, and a tracker on the
// same store with an injected clock.
type rxActivityFx struct {
	*rxFx
	clock *rxClock
	tr    *Tracker
}

func rxNewActivity(t *testing.T, tz *time.Location, now time.Time) *rxActivityFx {
	env := &rxEnv{Store: redisstore.NewMemory(), name: "memory"}
	f := rxNew(t, env)
	f.p = rxDaysPolicy
	clock := rxNewClock(now)
	tr := rxTracker(t, Config{Store: env.Store, Policy: f.p, TimeZone: tz, Now: clock.Now})
	return &rxActivityFx{rxFx: f, clock: clock, tr: tr}
}

// session opens tok at from in loc's zone (days counted there), refreshes
// it at to, and ends it there unless active.
func (f *rxActivityFx) session(tok string, from, to time.Time, loc store.Location, agent store.Agent, active bool) string {
	f.t.Helper()
	tz := zone(loc.TimeZone)
	if tz == nil {
		tz = f.tr.cfg.TimeZone
	}
	sid := f.open(rxHit{tok: tok, when: from, days: f.daysArg(from, tz), loc: &loc, agent: &agent})
	if to.After(from) {
		f.touchAt(sid, to, tz)
	}
	if !active {
		s, err := f.env.EndToken(f.ctx, f.realm, f.user, f.th(tok), store.EndLogout, false, to, f.p)
		if err != nil || s == nil || s.EndReason != store.EndLogout {
			f.t.Fatalf("EndToken(%s at %v) = %+v, %v", tok, to, s, err)
		}
	}
	return sid
}

func TestActivityWindow(t *testing.T) {
	ams := rxZone(t, "Europe/Amsterdam")
	today := rxLocal(ams, 2026, 6, 20, 12, 0)
	f := rxNewActivity(t, ams, today)
	noZone := store.Location{}
	day := func(back int, h, m int) time.Time { return rxLocal(ams, 2026, 6, 20-back, h, m) }
	f.session("today", day(0, 9, 0), day(0, 10, 0), noZone, rxAgent, false)
	f.session("13 days ago", day(13, 9, 0), day(13, 9, 30), noZone, rxAgent, false)
	f.session("14 days ago", day(14, 9, 0), day(14, 9, 45), noZone, rxAgent, false)

	rep, err := f.tr.Activity(f.ctx, f.realm, f.user, 14, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	// 14 days are today and the 13 before it.
	want := []DayRow{
		{Date: "2026-06-07", ActiveSeconds: 1800, Active: "30m0s", Sessions: 1},
		{Date: "2026-06-20", ActiveSeconds: 3600, Active: "1h0m0s", Sessions: 1},
	}
	if rep.From != "2026-06-07" || rep.To != "2026-06-20" || !reflect.DeepEqual(rep.Days, want) {
		t.Errorf("Activity(14) = %s..%s %+v, want 2026-06-07..2026-06-20 %+v", rep.From, rep.To, rep.Days, want)
	}
	if rep.UserTimeZone != "Europe/Amsterdam" || rep.AdminTimeZone != "UTC" || !rep.ZoneDiffers || rep.User != f.user {
		t.Errorf("zones: user %q admin %q differs %v", rep.UserTimeZone, rep.AdminTimeZone, rep.ZoneDiffers)
	}
	rep, err = f.tr.Activity(f.ctx, f.realm, f.user, 15, ams)
	if err != nil {
		t.Fatal(err)
	}
	if rep.From != "2026-06-06" || len(rep.Days) != 3 || rep.Days[0].Date != "2026-06-06" || rep.Days[0].ActiveSeconds != 2700 {
		t.Errorf("Activity(15) = %s..%s %+v, want the day 14 days ago first", rep.From, rep.To, rep.Days)
	}
	if rep.ZoneDiffers {
		t.Error("ZoneDiffers with the admin in the user's zone")
	}
	// The window follows the local date: at 00:30 in Amsterdam it is
	// already the 21st there, though still the 20th in UTC.
	f.clock.Set(rxLocal(ams, 2026, 6, 21, 0, 30))
	rep, err = f.tr.Activity(f.ctx, f.realm, f.user, 14, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if rep.From != "2026-06-08" || rep.To != "2026-06-21" || len(rep.Days) != 1 || rep.Days[0].Date != "2026-06-20" {
		t.Errorf("Activity at 00:30 local = %s..%s %+v", rep.From, rep.To, rep.Days)
	}
}

func TestActivityUserZone(t *testing.T) {
	la := rxZone(t, "America/Los_Angeles")
	now := time.Date(2026, 6, 20, 3, 0, 0, 0, time.UTC) // 19 June, 20:00 in Los Angeles
	f := rxNewActivity(t, time.UTC, now)
	laLoc := store.Location{City: "Los Angeles", Country: "United States", TimeZone: "America/Los_Angeles"}
	tokyo := store.Location{City: "Tokyo", Country: "Japan", TimeZone: "Asia/Tokyo"}
	f.session("old", rxLocal(la, 2026, 6, 10, 9, 0), rxLocal(la, 2026, 6, 10, 9, 20), tokyo, rxAgent, false)
	f.session("latest", rxLocal(la, 2026, 6, 19, 18, 0), rxLocal(la, 2026, 6, 19, 19, 0), laLoc, rxAgent, false)

	rep, err := f.tr.Activity(f.ctx, f.realm, f.user, 14, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if rep.UserTimeZone != "America/Los_Angeles" {
		t.Errorf("user zone %q, want that of the latest session", rep.UserTimeZone)
	}
	if rep.To != "2026-06-19" || !rep.ZoneDiffers {
		t.Errorf("to %q differs %v, want the user's local date 2026-06-19 and differs", rep.To, rep.ZoneDiffers)
	}
	if len(rep.Days) == 0 || rep.Days[len(rep.Days)-1] != (DayRow{Date: "2026-06-19", ActiveSeconds: 3600, Active: "1h0m0s", Sessions: 1}) {
		t.Errorf("days %+v, want 2026-06-19 last with 1h", rep.Days)
	}
	rep, err = f.tr.Activity(f.ctx, f.realm, f.user, 14, la)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ZoneDiffers || rep.AdminTimeZone != "America/Los_Angeles" {
		t.Errorf("same zone: differs %v admin %q", rep.ZoneDiffers, rep.AdminTimeZone)
	}
	// Without any location zone, the realm default applies.
	g := rxNewActivity(t, la, now)
	g.session("x", rxLocal(la, 2026, 6, 19, 10, 0), rxLocal(la, 2026, 6, 19, 10, 30), store.Location{}, rxAgent, false)
	rep, err = g.tr.Activity(g.ctx, g.realm, g.user, 14, la)
	if err != nil {
		t.Fatal(err)
	}
	if rep.UserTimeZone != "America/Los_Angeles" || rep.ZoneDiffers || len(rep.Days) != 1 || rep.Days[0].ActiveSeconds != 1800 {
		t.Errorf("realm default zone: %+v", rep)
	}
}

func TestActivityDay(t *testing.T) {
	ams := rxZone(t, "Europe/Amsterdam")
	amsLoc := store.Location{City: "Amsterdam", Country: "Netherlands", CountryCode: "NL", TimeZone: "Europe/Amsterdam"}
	mobile := store.Agent{Browser: "Mobile Safari", BrowserVersion: "17.4", OS: "iOS", OSVersion: "17.4", DeviceFamily: "iPhone", DeviceType: "mobile"}
	tablet := store.Agent{Browser: "Mobile Safari", BrowserVersion: "17.4", OS: "iOS", OSVersion: "17.4", DeviceFamily: "iPad", DeviceType: "tablet"}
	desktop := store.Agent{Browser: "Chrome", BrowserVersion: "124.0", OS: "Windows", OSVersion: "10", DeviceFamily: "Other", DeviceType: "desktop"}
	f := rxNewActivity(t, time.UTC, rxLocal(ams, 2026, 6, 11, 8, 10))
	at := func(d, h, m int) time.Time { return rxLocal(ams, 2026, 6, d, h, m) }
	f.session("s0", at(9, 10, 0), at(9, 11, 0), amsLoc, desktop, false)
	s4 := f.session("s4", at(9, 23, 30), at(10, 0, 30), amsLoc, desktop, false)
	s1 := f.session("s1", at(10, 9, 0), at(10, 10, 30), amsLoc, mobile, false)
	s2 := f.session("s2", at(10, 23, 30), at(11, 0, 40), amsLoc, tablet, false)
	s3 := f.session("s3", at(11, 8, 0), at(11, 8, 0), amsLoc, desktop, true)

	rep, err := f.tr.ActivityDay(f.ctx, f.realm, f.user, "2026-06-10", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if rep.UserTimeZone != "Europe/Amsterdam" || !rep.ZoneDiffers || rep.Date != "2026-06-10" {
		t.Errorf("report: zone %q differs %v date %q", rep.UserTimeZone, rep.ZoneDiffers, rep.Date)
	}
	want := []DaySession{
		{ID: s2, DeviceType: "Tablet", Start: "2026-06-10T23:30:00+02:00", End: "2026-06-11T00:40:00+02:00",
			Duration: "1h10m0s", DurationSec: 4200, OnThisDaySec: 1800,
			AdminStart: "2026-06-10T21:30:00Z", AdminEnd: "2026-06-10T22:40:00Z",
			IP: rxIPA, Location: "Amsterdam, Netherlands", Browser: "Mobile Safari 17.4", OS: "iOS 17.4"},
		{ID: s1, DeviceType: "Mobile", Start: "2026-06-10T09:00:00+02:00", End: "2026-06-10T10:30:00+02:00",
			Duration: "1h30m0s", DurationSec: 5400, OnThisDaySec: 5400,
			AdminStart: "2026-06-10T07:00:00Z", AdminEnd: "2026-06-10T08:30:00Z",
			IP: rxIPA, Location: "Amsterdam, Netherlands", Browser: "Mobile Safari 17.4", OS: "iOS 17.4"},
		{ID: s4, DeviceType: "Web", Start: "2026-06-09T23:30:00+02:00", End: "2026-06-10T00:30:00+02:00",
			Duration: "1h0m0s", DurationSec: 3600, OnThisDaySec: 1800,
			AdminStart: "2026-06-09T21:30:00Z", AdminEnd: "2026-06-09T22:30:00Z",
			IP: rxIPA, Location: "Amsterdam, Netherlands", Browser: "Chrome 124.0", OS: "Windows 10"},
	}
	if !reflect.DeepEqual(rep.Sessions, want) {
		t.Errorf("ActivityDay(2026-06-10, UTC) =\n%+v\nwant\n%+v", rep.Sessions, want)
	}

	rep, err = f.tr.ActivityDay(f.ctx, f.realm, f.user, "2026-06-10", ams)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ZoneDiffers || len(rep.Sessions) != 3 {
		t.Fatalf("same zone: differs %v, %d sessions", rep.ZoneDiffers, len(rep.Sessions))
	}
	for _, s := range rep.Sessions {
		if s.AdminStart != "" || s.AdminEnd != "" {
			t.Errorf("session %s has admin times %q %q though the zones are equal", s.ID, s.AdminStart, s.AdminEnd)
		}
	}

	rep, err = f.tr.ActivityDay(f.ctx, f.realm, f.user, "2026-06-11", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Sessions) != 2 || rep.Sessions[0].ID != s3 || rep.Sessions[1].ID != s2 {
		t.Fatalf("2026-06-11: %+v, want s3 then s2", rep.Sessions)
	}
	if a := rep.Sessions[0]; a.End != "active" || a.AdminEnd != "active" || a.DurationSec != 600 || a.DeviceType != "Web" {
		t.Errorf("active session: %+v", a)
	}
	if rep.Sessions[1].OnThisDaySec != 2400 {
		t.Errorf("s2 on 2026-06-11: %d s, want 2400", rep.Sessions[1].OnThisDaySec)
	}
	rep, err = f.tr.ActivityDay(f.ctx, f.realm, f.user, "2026-06-08", time.UTC)
	if err != nil || len(rep.Sessions) != 0 {
		t.Errorf("a day without sessions: %+v, %v", rep, err)
	}
	if _, err := f.tr.ActivityDay(f.ctx, f.realm, f.user, "2026-13-01", time.UTC); err == nil {
		t.Error("a bad date gave no error")
	}
}

// TestActivityDeviceLabels: real user agents through Observe end up as
// Mobile, Tablet and Web.
func TestActivityDeviceLabels(t *testing.T) {
	ctx := context.Background()
	clock := rxNewClock(time.Now().UTC().Truncate(time.Millisecond))
	tr := rxTracker(t, Config{Store: redisstore.NewMemory(), Policy: rxPolicy, Now: clock.Now})
	uas := map[string]string{
		"Mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
		"Tablet": "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
		"Web":    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	}
	want := map[string]string{}
	for label, ua := range uas {
		res, err := tr.Observe(ctx, Request{Realm: "r", Token: "tok-" + label, User: "u", IP: rxIPA, UserAgent: ua, DeviceID: "dev-" + label})
		if err != nil || !res.New {
			t.Fatalf("Observe %s: %+v %v", label, res, err)
		}
		want[res.SessionID] = label
	}
	rep, err := tr.ActivityDay(ctx, "r", "u", clock.Now().Format(dateLayout), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range rep.Sessions {
		got[s.ID] = s.DeviceType
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("labels = %v, want %v", got, want)
	}
}

// TestActivitySettingsShared: a switch changed on one instance is used by
// another instance on the same Redis within a second.
func TestActivitySettingsShared(t *testing.T) {
	rxForEachRedis(t, func(t *testing.T, env *rxEnv) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A second client stands for the second instance.
		var rdbB redis.UniversalClient
		if env.name == "cluster" {
			rdbB = redis.NewClusterClient(&redis.ClusterOptions{Addrs: env.rdb.(*redis.ClusterClient).Options().Addrs})
		} else {
			rdbB = redis.NewClient(&redis.Options{Addr: env.rdb.(*redis.Client).Options().Addr})
		}
		stB := redisstore.New(rdbB)
		t.Cleanup(func() { _ = stB.Close() })
		// Fixed clocks: the settings cache never times out, so only the
		// invalidation can bring the change.
		clock := rxNewClock(time.Now().UTC())
		trA := rxTracker(t, Config{Store: env.Store, Policy: rxPolicy, Now: clock.Now})
		trB := rxTracker(t, Config{Store: stB, Policy: rxPolicy, Now: clock.Now})
		trB.Start()
		defer trB.Stop()
		rxWaitSubscribed(t, ctx, env.Store, stB)

		realm := "settings/" + env.name
		if got := trB.Settings(ctx, realm); got != store.DefaultSettings() {
			t.Fatalf("B before = %+v, want the defaults", got)
		}
		next := store.Settings{Tracking: true, Geolocation: false, IPPrecision: store.IPTruncated, ActivityTrail: true}
		start := time.Now()
		if err := trA.SetSettings(ctx, realm, next); err != nil {
			t.Fatal(err)
		}
		for trB.Settings(ctx, realm) != next {
			if time.Since(start) > time.Second {
				t.Fatalf("B still has %+v a second after A set %+v", trB.Settings(ctx, realm), next)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if got, ok, err := stB.Settings(ctx, realm); err != nil || !ok || got != next {
			t.Errorf("stored = %+v %v %v", got, ok, err)
		}
		// And back.
		if err := trA.SetSettings(ctx, realm, store.DefaultSettings()); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		for trB.Settings(ctx, realm) != store.DefaultSettings() {
			if time.Since(start) > time.Second {
				t.Fatal("B did not see the switch back within a second")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// rxWaitSubscribed waits until sub hears what pub publishes: its Redis
// subscription is live.
func rxWaitSubscribed(t *testing.T, ctx context.Context, pub, sub store.Store) {
	t.Helper()
	heard := make(chan struct{}, 1)
	cancel := sub.Subscribe(func(inv store.Invalidation) {
		if inv.Realm == "rx-probe" {
			select {
			case heard <- struct{}{}:
			default:
			}
		}
	}, nil)
	defer cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := pub.Publish(ctx, store.Invalidation{Realm: "rx-probe"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-heard:
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("subscription not live after 10 s")
		}
	}
}

const rxGeoDB = "testdata/geoip/GeoIP2-City-Test.mmdb"

// TestActivityPrivacySwitches: geolocation and IP precision apply to new
// entries only, and the location is looked up from the full address.
func TestActivityPrivacySwitches(t *testing.T) {
	geo, err := enrich.OpenGeo(rxGeoDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = geo.Close() })
	ctx := context.Background()
	clock := rxNewClock(time.Now().UTC().Truncate(time.Millisecond))
	st := redisstore.NewMemory()
	tr := rxTracker(t, Config{Store: st, Policy: rxPolicy, Now: clock.Now, Geo: geo})
	const realm, user, london, london2 = "r", "u", "81.2.69.142", "81.2.69.143"
	sids := map[string]string{}
	observe := func(tok, ip, dev string) {
		t.Helper()
		clock.Add(time.Second)
		res, err := tr.Observe(ctx, Request{Realm: realm, Token: tok, User: user, IP: ip, DeviceID: dev})
		if err != nil || !res.Tracked || res.Refused {
			t.Fatalf("Observe(%s): %+v %v", tok, res, err)
		}
		sids[tok] = res.SessionID
	}
	session := func(tok string) *store.Session {
		t.Helper()
		list, _, err := tr.Sessions(ctx, realm, user, "all", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if s.ID == sids[tok] {
				return s
			}
		}
		t.Fatalf("no session for %s", tok)
		return nil
	}
	device := func(id string) *store.Device {
		t.Helper()
		devs, err := tr.Devices(ctx, realm, user)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range devs {
			if d.ID == id {
				return d
			}
		}
		t.Fatalf("no device %s", id)
		return nil
	}
	set := func(s store.Settings) {
		t.Helper()
		if err := tr.SetSettings(ctx, realm, s); err != nil {
			t.Fatal(err)
		}
	}
	wantLondon := func(what string, l store.Location, coords bool) {
		t.Helper()
		if l.City != "London" || l.Country != "United Kingdom" || l.TimeZone != "Europe/London" {
			t.Errorf("%s: location %+v, want London", what, l)
		}
		if coords != (l.Latitude != nil && l.Longitude != nil) {
			t.Errorf("%s: coordinates present = %v, want %v", what, l.Latitude != nil, coords)
		}
	}

	observe("geo-on", london, "dev-1")
	if s := session("geo-on"); s.IP != london {
		t.Errorf("full precision IP %q", s.IP)
	}
	wantLondon("geolocation on", session("geo-on").Location, true)

	set(store.Settings{Tracking: true, Geolocation: false, IPPrecision: store.IPFull})
	observe("geo-off", london, "dev-2")
	if l := session("geo-off").Location; l != (store.Location{}) || l.String() != store.UnknownLocation {
		t.Errorf("geolocation off: location %+v (%q), want none", l, l.String())
	}
	if l := device("dev-2").Location; l.Known() || l.Latitude != nil {
		t.Errorf("geolocation off: device location %+v", l)
	}
	// Not retroactive: the earlier session keeps where it started, and
	// its device its location, also after a request from a new IP, whose
	// own location is not recorded (geolocation is off now).
	clock.Add(2 * time.Minute)
	if res, err := tr.Observe(ctx, Request{Realm: realm, Token: "geo-on", User: user, IP: london2, DeviceID: "dev-1"}); err != nil || res.Refused || res.SessionID != sids["geo-on"] {
		t.Fatalf("%+v %v", res, err)
	}
	if s := session("geo-on"); s.IP != london2 {
		t.Fatalf("the request did not reach the store: session IP %q", s.IP)
	}
	moved := session("geo-on")
	wantLondon("earlier session's login location after the switch", moved.LoginLocation, true)
	if moved.LoginIP != london || moved.Location.Known() {
		t.Errorf("earlier session after the switch: login IP %q, location now %+v; want %s and none", moved.LoginIP, moved.Location, london)
	}
	if l := device("dev-1").Location; l.City != "London" {
		t.Errorf("earlier device after the switch: location %+v", l)
	}

	set(store.Settings{Tracking: true, Geolocation: true, IPPrecision: store.IPTruncated})
	observe("trunc-v4", london, "dev-3")
	if s := session("trunc-v4"); s.IP != "81.2.69.0" {
		t.Errorf("truncated IPv4 = %q, want 81.2.69.0", s.IP)
	}
	// 81.2.69.0 itself has no location in the test database: London
	// proves the lookup used the full address.
	wantLondon("truncated", session("trunc-v4").Location, true)
	if d := device("dev-3"); d.LastIP != "81.2.69.0" {
		t.Errorf("truncated device IP %q", d.LastIP)
	}
	observe("trunc-v6", "2001:218:1234:5678::1", "dev-4")
	if s := session("trunc-v6"); s.IP != "2001:218:1234::" || s.Location.Country != "Japan" {
		t.Errorf("truncated IPv6 = %q at %+v, want 2001:218:1234:: in Japan", s.IP, s.Location)
	}
	if s := session("geo-on"); s.IP != london2 {
		t.Errorf("truncation changed an earlier session's IP to %q", s.IP)
	}

	set(store.Settings{Tracking: true, Geolocation: true, IPPrecision: store.IPNone})
	observe("no-ip", london, "dev-5")
	if s := session("no-ip"); s.IP != "" {
		t.Errorf("precision none: IP %q", s.IP)
	}
	wantLondon("precision none", session("no-ip").Location, true)
	if d := device("dev-5"); d.LastIP != "" {
		t.Errorf("precision none: device IP %q", d.LastIP)
	}
}

// TestActivityTrail: the extended trail keeps the last TrailLen paths, only
// with consent and only when switched on.
func TestActivityTrail(t *testing.T) {
	ctx := context.Background()
	clock := rxNewClock(time.Now().UTC().Truncate(time.Millisecond))
	st := redisstore.NewMemory()
	tr := rxTracker(t, Config{Store: st, Policy: rxPolicy, Now: clock.Now, TrailLen: 3,
		Settings: store.Settings{Tracking: true, Geolocation: true, IPPrecision: store.IPFull, ActivityTrail: true}})
	tr.Start()
	stopped := false
	defer func() {
		if !stopped {
			tr.Stop()
		}
	}()
	const realm, user = "r", "u"
	start := clock.Now()
	sids := map[string]string{}
	for i := range 5 {
		clock.Set(start.Add(time.Duration(i) * time.Minute))
		for _, c := range []struct {
			tok     string
			consent bool
		}{{"consent", true}, {"no-consent", false}} {
			res, err := tr.Observe(ctx, Request{Realm: realm, Token: c.tok, User: user, IP: rxIPA, DeviceID: "dev-" + c.tok,
				Path: fmt.Sprintf("/course/%d", i), Consent: c.consent})
			if err != nil || res.Refused {
				t.Fatalf("Observe: %+v %v", res, err)
			}
			sids[c.tok] = res.SessionID
		}
	}
	tr.Stop() // flushes the pending refreshes
	stopped = true
	trail, err := st.Trail(ctx, realm, user, sids["consent"])
	if err != nil {
		t.Fatal(err)
	}
	want := []store.TrailEntry{
		{Time: start.Add(2 * time.Minute), Path: "/course/2"},
		{Time: start.Add(3 * time.Minute), Path: "/course/3"},
		{Time: start.Add(4 * time.Minute), Path: "/course/4"},
	}
	if len(trail) != len(want) {
		t.Fatalf("trail = %+v, want %+v", trail, want)
	}
	for i := range want {
		if trail[i].Path != want[i].Path || !trail[i].Time.Equal(want[i].Time) {
			t.Errorf("trail[%d] = %+v, want %+v", i, trail[i], want[i])
		}
	}
	if trail, _ := st.Trail(ctx, realm, user, sids["no-consent"]); len(trail) != 0 {
		t.Errorf("without consent the trail is %+v, want empty", trail)
	}

	// Trail switched off: nothing kept, consent or not.
	tr2 := rxTracker(t, Config{Store: st, Policy: rxPolicy, Now: clock.Now, TrailLen: 3})
	res, err := tr2.Observe(ctx, Request{Realm: "r2", Token: "x", User: user, IP: rxIPA, DeviceID: "d", Path: "/secret", Consent: true})
	if err != nil || !res.New {
		t.Fatalf("%+v %v", res, err)
	}
	if trail, _ := st.Trail(ctx, "r2", user, res.SessionID); len(trail) != 0 {
		t.Errorf("trail off: %+v, want empty", trail)
	}
}

// rxLeaks lists keys that name user's hash tag or hold the user id.
func rxLeaks(t *testing.T, ctx context.Context, env *rxEnv, realm, user string) []string {
	t.Helper()
	keys, err := env.scan(ctx, "*")
	if err != nil {
		t.Fatal(err)
	}
	tag := redisstore.Keys(realm, user).Tag
	var out []string
	for _, k := range keys {
		v, err := redistest.ValueText(ctx, env.rdb, k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k, tag) || strings.Contains(v, user) {
			out = append(out, fmt.Sprintf("%s = %.120q", k, v))
		}
	}
	return out
}

// TestActivityErase: export holds everything; erase leaves no key of the
// user and no value naming them, and the user's token stays refused.
func TestActivityErase(t *testing.T) {
	rxForEachRedis(t, func(t *testing.T, env *rxEnv) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		clock := rxNewClock(time.Now().UTC().Truncate(time.Millisecond))
		cfg := Config{Store: env.Store, Policy: rxPolicy, Now: clock.Now, TrailLen: 5,
			Limits:   restrict.Limits{IPs: rxLimit(1, time.Hour, restrict.ActionBlock)},
			Settings: store.Settings{Tracking: true, Geolocation: true, IPPrecision: store.IPFull, ActivityTrail: true}}
		tr := rxTracker(t, cfg)
		const realm = "erase-realm"
		user := "erase-me-ü-7f3a9c@example.org"
		bystander := "stays-4e1d@example.org"

		res, err := tr.Login(ctx, Request{Realm: realm, Token: "tok-a", User: user, IP: rxIPA, DeviceID: "dev-1", Path: "/course", Consent: true})
		if err != nil || !res.New {
			t.Fatalf("Login: %+v %v", res, err)
		}
		sidA := res.SessionID
		if _, err := tr.Login(ctx, Request{Realm: realm, Token: "tok-z", User: bystander, IP: rxIPC, DeviceID: "dev-z"}); err != nil {
			t.Fatal(err)
		}
		clock.Add(time.Minute)
		res, err = tr.Observe(ctx, Request{Realm: realm, Token: "tok-b", User: user, IP: rxIPB, DeviceID: "dev-2"})
		if err != nil || !res.Refused || res.Reason != restrict.PolicyIPs {
			t.Fatalf("second IP: %+v %v, want refused max_ips", res, err)
		}
		tr.Start()
		clock.Add(2 * time.Minute)
		if res, err := tr.Observe(ctx, Request{Realm: realm, Token: "tok-a", User: user, IP: rxIPA, DeviceID: "dev-1", Path: "/lesson", Consent: true}); err != nil || res.Refused {
			t.Fatalf("%+v %v", res, err)
		}
		tr.Stop() // flush the refresh

		ex, err := tr.Export(ctx, realm, user)
		if err != nil {
			t.Fatal(err)
		}
		if len(ex.Sessions) != 1 || ex.Sessions[0].ID != sidA || len(ex.Devices) != 1 || len(ex.Violations) != 1 || len(ex.Days) == 0 {
			t.Errorf("export: %d sessions, %d devices, %d violations, %d days", len(ex.Sessions), len(ex.Devices), len(ex.Violations), len(ex.Days))
		}
		if tr := ex.Trails[sidA]; len(tr) != 2 || tr[0].Path != "/course" || tr[1].Path != "/lesson" {
			t.Errorf("export trail = %+v", tr)
		}
		if ex.Summary == nil || ex.Summary.User != user || ex.User != user {
			t.Errorf("export summary %+v", ex.Summary)
		}
		var total time.Duration
		for _, d := range ex.Days {
			total += time.Duration(d.ActiveSeconds) * time.Second
		}
		if total != 3*time.Minute {
			t.Errorf("export days %v: %v active, want 3m", ex.Days, total)
		}
		if leaks := rxLeaks(t, ctx, env, realm, user); len(leaks) == 0 {
			t.Fatal("before erase no key holds the user: the check would prove nothing")
		}

		n, err := tr.Erase(ctx, realm, user)
		if err != nil || n != 1 {
			t.Fatalf("Erase = %d, %v; want 1 session revoked", n, err)
		}
		if leaks := rxLeaks(t, ctx, env, realm, user); len(leaks) > 0 {
			t.Errorf("after erase, keys still hold the user:\n%s", strings.Join(leaks, "\n"))
		}
		if leaks := rxLeaks(t, ctx, env, realm, bystander); len(leaks) == 0 {
			t.Error("erase removed the other user's data too")
		}
		if _, err := tr.Export(ctx, realm, user); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("export after erase: %v, want ErrNotFound", err)
		}
		// The cookie token is refused, on this instance and on a fresh one.
		clock.Add(time.Minute)
		for i, inst := range []*Tracker{tr, rxTracker(t, cfg)} {
			res, err := inst.Observe(ctx, Request{Realm: realm, Token: "tok-a", IP: rxIPA, DeviceID: "dev-1"})
			if err != nil || !res.Refused {
				t.Errorf("instance %d: erased user's token: %+v %v, want refused", i, res, err)
			}
		}
		if leaks := rxLeaks(t, ctx, env, realm, user); len(leaks) > 0 {
			t.Errorf("the refused token recreated data:\n%s", strings.Join(leaks, "\n"))
		}
	})
}

// TestActivityEraseIdleToken: a token whose session ended by idle timeout
// is still bound to the user; erasing the user must not leave it behind.
func TestActivityEraseIdleToken(t *testing.T) {
	run := func(t *testing.T, env *rxEnv) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		clock := rxNewClock(time.Now().UTC().Truncate(time.Millisecond))
		tr := rxTracker(t, Config{Store: env.Store, Policy: rxPolicy, Now: clock.Now})
		const realm = "erase-idle"
		user := "idle-erase-me-9b2c@example.org"
		if res, err := tr.Login(ctx, Request{Realm: realm, Token: "tok-old", User: user, IP: rxIPA, DeviceID: "dev-1"}); err != nil || !res.New {
			t.Fatalf("%+v %v", res, err)
		}
		clock.Add(rxPolicy.Idle + 5*time.Minute)
		// The new login closes the old session as idle.
		if res, err := tr.Login(ctx, Request{Realm: realm, Token: "tok-new", User: user, IP: rxIPA, DeviceID: "dev-1"}); err != nil || !res.New {
			t.Fatalf("%+v %v", res, err)
		}
		if _, err := tr.Erase(ctx, realm, user); err != nil {
			t.Fatal(err)
		}
		if env.rdb != nil {
			if leaks := rxLeaks(t, ctx, env, realm, user); len(leaks) > 0 {
				t.Errorf("after erase, keys still hold the user:\n%s", strings.Join(leaks, "\n"))
			}
		}
		if u, err := env.TokenUser(ctx, tr.TokenHash("tok-old")); err != nil || u == user {
			t.Errorf("after erase the old token is still bound to the user (%q, %v)", u, err)
		}
		fresh := rxTracker(t, Config{Store: env.Store, Policy: rxPolicy, Now: clock.Now})
		for _, tok := range []string{"tok-new", "tok-old"} {
			res, err := fresh.Observe(ctx, Request{Realm: realm, Token: tok, IP: rxIPA, DeviceID: "dev-1"})
			if err != nil || res.New || (res.Tracked && !res.Refused) {
				t.Errorf("%s after erase: %+v %v, want refused or untracked, never a new session", tok, res, err)
			}
		}
		if _, err := env.User(ctx, realm, user, clock.Now(), rxPolicy); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after erase and the old token's request, the store holds the user again (%v)", err)
		}
	}
	t.Run("memory", func(t *testing.T) { run(t, &rxEnv{Store: redisstore.NewMemory(), name: "memory"}) })
	rxForEachRedis(t, run)
}
