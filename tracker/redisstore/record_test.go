package redisstore

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/caddy-sessions/caddy-sessions/restrict"
)

func ptr[T any](v T) *T { return &v }

// msUTC is t as records keep it: millisecond precision, UTC.
func msUTC(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

func TestSessionRecordRoundTrip(t *testing.T) {
	started := time.Date(2025, 3, 30, 1, 59, 59, 123_000_000, time.UTC)
	for _, c := range []struct {
		name                  string
		in                    store.Session
		tokenHash, ipKey, day string
	}{
		{name: "closed with location", in: store.Session{
			ID: "abcdefghij234567", StartedAt: started, LastSeen: started.Add(90 * time.Second),
			EndedAt: ptr(started.Add(2 * time.Minute)), EndReason: store.EndRevoked, IP: "2001:db8::1", DeviceID: "AAAAAAAAAAAAAAAA",
			Agent:    store.Agent{Browser: "Chrome", BrowserVersion: "124.0", OS: "Windows", OSVersion: "10", DeviceFamily: "Other", DeviceType: "desktop"},
			Location: store.Location{City: "Linköping", Region: "Östergötland County", Country: "Sweden", CountryCode: "SE", TimeZone: "Europe/Stockholm", Latitude: ptr(58.41), Longitude: ptr(15.62)},
		}, tokenHash: "tokenhash_-0123456789ab", ipKey: "198.51.100.0/24", day: "2025-03-30"},
		{name: "active, no location", in: store.Session{
			ID: "s1", StartedAt: started, LastSeen: started, IP: "198.51.100.7", DeviceID: "d",
			Agent: store.Agent{Browser: "Other", OS: "Other", DeviceFamily: "Other", DeviceType: "desktop"},
		}},
		{name: "quotes, escapes and unicode", in: store.Session{
			ID: `id"with\quotes`, StartedAt: started, LastSeen: started, IP: "", DeviceID: "dev\n\t\x00",
			Agent:    store.Agent{Browser: `"><script>alert(1)</script>`, BrowserVersion: "1.0 \u2028\u2029", OS: "日本語", DeviceType: "mobile"},
			Location: store.Location{City: "Zürich 🇨🇭", Country: `"Switzerland"`, Latitude: ptr(-0.01), Longitude: ptr(0.0)},
		}},
		{name: "latitude only", in: store.Session{ID: "x", StartedAt: started, LastSeen: started, Location: store.Location{Latitude: ptr(12.5)}}},
		{name: "zero", in: store.Session{ID: "z", StartedAt: time.UnixMilli(0).UTC(), LastSeen: time.UnixMilli(0).UTC()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := &sessionRecord{Session: &c.in, tokenHash: c.tokenHash, ipKey: c.ipKey, day: c.day}
			raw := encodeSession(in)
			got, err := decodeSession(raw, "realm ü", "user {x}")
			if err != nil {
				t.Fatalf("decodeSession(%s): %v", raw, err)
			}
			sess := c.in
			sess.Realm, sess.User = "realm ü", "user {x}"
			want := sessionRecord{Session: &sess, tokenHash: c.tokenHash, ipKey: c.ipKey, day: c.day}
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("round trip of\n%+v\ngave\n%+v\n(record %s)", want, *got, raw)
			}
			// A record is a JSON array: cjson in the Redis scripts reads it.
			var arr []any
			if err := json.Unmarshal([]byte(raw), &arr); err != nil || len(arr) != sessionFields {
				t.Errorf("record %s is not a %d-element JSON array: %v", raw, sessionFields, err)
			}
		})
	}
}

func TestSessionRecordKeepsMilliseconds(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 678_999_999, time.FixedZone("X", 3600))
	s := &store.Session{ID: "a", StartedAt: at, LastSeen: at.Add(time.Nanosecond), EndedAt: ptr(at.Add(time.Millisecond))}
	got, err := decodeSession(encodeSession(&sessionRecord{Session: s}), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !got.StartedAt.Equal(msUTC(at)) || got.StartedAt.Location() != time.UTC {
		t.Errorf("StartedAt = %v, want %v", got.StartedAt, msUTC(at))
	}
	if want := msUTC(at.Add(time.Nanosecond)); !got.LastSeen.Equal(want) {
		t.Errorf("LastSeen = %v, want %v", got.LastSeen, want)
	}
	if got.EndedAt == nil || !got.EndedAt.Equal(msUTC(at.Add(time.Millisecond))) {
		t.Errorf("EndedAt = %v", got.EndedAt)
	}
}

func TestDeviceRecordRoundTrip(t *testing.T) {
	first := time.Date(2024, 12, 31, 23, 59, 59, 999_000_000, time.UTC)
	for _, c := range []struct {
		name string
		in   store.Device
	}{
		{"blocked", store.Device{
			ID: "AAAAAAAAAAAAAAAA", FirstSeen: first, LastSeen: first.Add(time.Hour), Blocked: true, LastIP: "203.0.113.9",
			Agent:    store.Agent{Browser: "Mobile Safari", BrowserVersion: "17.4", OS: "iOS", OSVersion: "17.4", DeviceFamily: "iPhone", DeviceType: "mobile"},
			Location: store.Location{City: "London", Region: "England", Country: "United Kingdom", CountryCode: "GB", TimeZone: "Europe/London"},
		}},
		{"not blocked, unknown location", store.Device{ID: "d", FirstSeen: first, LastSeen: first}},
		{"unicode and quotes", store.Device{ID: `"d"`, FirstSeen: first, LastSeen: first, LastIP: `\`,
			Agent: store.Agent{Browser: "Brôwser \"x\"", OS: "ОС"}, Location: store.Location{City: "Köln", Country: "🇩🇪"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := encodeDevice(&c.in)
			got, err := decodeDevice(raw, "user {x}")
			if err != nil {
				t.Fatalf("decodeDevice(%s): %v", raw, err)
			}
			want := c.in
			want.User = "user {x}"
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("round trip of\n%+v\ngave\n%+v", want, *got)
			}
		})
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	valid := encodeSession(&sessionRecord{Session: &store.Session{ID: "a"}})
	validDev := encodeDevice(&store.Device{ID: "d"})
	for _, c := range []struct {
		name string
		raw  string
	}{
		{"empty", ""},
		{"garbage", "garbage"},
		{"truncated JSON", valid[:len(valid)/2]},
		{"object", `{"id":"a"}`},
		{"null", "null"},
		{"empty array", "[]"},
		{"short", `["a",1,2]`},
		{"string number", strings.Replace(valid, `"a",`, `1,`, 1)},
		{"number string", `["a","later",0,0,"","","","","","","","","","","","","","","",null,null,"",""]`},
		{"nested garbage", `[[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[]]`},
	} {
		t.Run("session/"+c.name, func(t *testing.T) {
			if s, err := decodeSession(c.raw, "r", "u"); err == nil {
				t.Errorf("decodeSession(%q) = %+v, want an error", c.raw, s)
			}
		})
	}
	for _, c := range []struct {
		name string
		raw  string
	}{
		{"empty", ""},
		{"garbage", "\x00\xff"},
		{"truncated JSON", validDev[:len(validDev)-3]},
		{"object", `{}`},
		{"short", `["d",1]`},
		{"blocked not a number", `["d",0,0,"yes","","","","","","","","","","","",""]`},
		{"nested garbage", `[{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}]`},
	} {
		t.Run("device/"+c.name, func(t *testing.T) {
			if d, err := decodeDevice(c.raw, "u"); err == nil {
				t.Errorf("decodeDevice(%q) = %+v, want an error", c.raw, d)
			}
		})
	}
}

// Fields are only ever appended (record.go), so a record with fields this
// version does not know decodes fine.
func TestDecodeRecordWithExtraFields(t *testing.T) {
	in := &store.Session{ID: "a", StartedAt: time.UnixMilli(1000).UTC(), LastSeen: time.UnixMilli(2000).UTC(), IP: "x"}
	raw := encodeSession(&sessionRecord{Session: in})
	raw = raw[:len(raw)-1] + `,"future",42,null]`
	got, err := decodeSession(raw, "", "")
	if err != nil {
		t.Fatalf("decodeSession with extra fields: %v", err)
	}
	if got.ID != "a" || got.IP != "x" || !got.LastSeen.Equal(in.LastSeen) {
		t.Errorf("decoded %+v", got)
	}
	draw := encodeDevice(&store.Device{ID: "d", LastIP: "y"})
	draw = draw[:len(draw)-1] + `,"future"]`
	if d, err := decodeDevice(draw, "u"); err != nil || d.ID != "d" || d.LastIP != "y" {
		t.Errorf("decodeDevice with extra fields = %+v, %v", d, err)
	}
}

// A session written before the newest fields were appended (the 21-field
// layout, before ip key and day) must still decode: stored history and
// snapshots outlive an upgrade.
func TestDecodeOlderSessionRecord(t *testing.T) {
	old := `["sid",1700000000000,1700000060000,0,"","198.51.100.1","dev","th","Firefox","125.0","Linux","","Other","desktop","London","England","United Kingdom","GB","Europe/London",51.51,-0.09]`
	s, err := decodeSession(old, "r", "u")
	if err != nil {
		t.Fatalf("decodeSession of a 21-field record: %v", err)
	}
	if s.ID != "sid" || s.IP != "198.51.100.1" || s.tokenHash != "th" || !s.Active() || s.ipKey != "" || s.day != "" {
		t.Errorf("decoded %+v", s)
	}
}

func TestViolationRecordRoundTrip(t *testing.T) {
	in := &restrict.Violation{ID: "1700000000000-3", Time: time.UnixMilli(1700000000000).UTC(), User: "u {x}", Policy: restrict.PolicyIPs,
		Limit: 2, Observed: 3, IP: "198.51.100.1", Location: "Linköping, Sweden", Device: "dev", Session: "sid", Action: restrict.ActionBlock, Viewed: true}
	got, err := decodeViolation(encodeViolation(in), "u {x}")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("round trip of %+v gave %+v", in, got)
	}
	for _, raw := range []string{"", "x", "[]", `["a",1]`} {
		if _, err := decodeViolation(raw, "u"); err == nil {
			t.Errorf("decodeViolation(%q) succeeded", raw)
		}
	}
}

func TestNormalizeIdle(t *testing.T) {
	last := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	ended := last.Add(time.Minute)
	for _, c := range []struct {
		name       string
		s          store.Session
		now        time.Time
		idle       time.Duration
		wantEnded  *time.Time
		wantReason string
	}{
		{"fresh", store.Session{LastSeen: last}, last.Add(time.Minute), time.Hour, nil, ""},
		{"exactly idle", store.Session{LastSeen: last}, last.Add(time.Hour), time.Hour, nil, ""},
		{"past idle", store.Session{LastSeen: last}, last.Add(time.Hour + time.Millisecond), time.Hour, &last, store.EndIdle},
		{"already ended", store.Session{LastSeen: last, EndedAt: &ended, EndReason: store.EndLogout}, last.Add(48 * time.Hour), time.Hour, &ended, store.EndLogout},
		{"no idle limit", store.Session{LastSeen: last}, last.Add(48 * time.Hour), 0, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := c.s
			normalizeIdle(&s, c.now, c.idle)
			if (s.EndedAt == nil) != (c.wantEnded == nil) || (s.EndedAt != nil && !s.EndedAt.Equal(*c.wantEnded)) || s.EndReason != c.wantReason {
				t.Errorf("got ended %v (%q), want %v (%q)", s.EndedAt, s.EndReason, c.wantEnded, c.wantReason)
			}
		})
	}
}
