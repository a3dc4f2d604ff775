package tracker

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/caddy-sessions/caddy-sessions/restrict"
)

// Sessions and devices are stored as positional JSON arrays: both stores and
// the Redis Lua scripts (cjson) read them, and leaving out field names keeps a
// closed session's history entry small. The Lua scripts address these
// positions (1-based there), so only append new fields at the end.
const (
	sID = iota
	sStarted
	sLastSeen
	sEnded
	sReason
	sIP
	sDevice
	sToken
	sBrowser
	sBrowserVersion
	sOS
	sOSVersion
	sDeviceFamily
	sDeviceType
	sCity
	sRegion
	sCountry
	sCountryCode
	sTimeZone
	sLatitude
	sLongitude
	sIPKey // the IP as counted by max_ips
	sDay   // the last local date this session was counted on
	sessionFields
)

// sessionFieldsV1 is the length of the first record layout; older records
// are read with the later fields empty.
const sessionFieldsV1 = sIPKey

const (
	dID = iota
	dFirstSeen
	dLastSeen
	dBlocked
	dLastIP
	dBrowser
	dBrowserVersion
	dOS
	dOSVersion
	dDeviceFamily
	dDeviceType
	dCity
	dRegion
	dCountry
	dCountryCode
	dTimeZone
	deviceFields
)

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func encodeSession(s *Session) string {
	var ended int64
	if s.EndedAt != nil {
		ended = ms(*s.EndedAt)
	}
	rec := [sessionFields]any{
		s.ID, ms(s.StartedAt), ms(s.LastSeen), ended, s.EndReason, s.IP, s.DeviceID, s.tokenHash,
		s.Agent.Browser, s.Agent.BrowserVersion, s.Agent.OS, s.Agent.OSVersion, s.Agent.DeviceFamily, s.Agent.DeviceType,
		s.Location.City, s.Location.Region, s.Location.Country, s.Location.CountryCode, s.Location.TimeZone,
		s.Location.Latitude, s.Location.Longitude, s.ipKey, s.day,
	}
	b, _ := json.Marshal(rec) // only strings, numbers and nil: cannot fail
	return string(b)
}

// decodeSession parses a stored session. realm and user come from the key.
func decodeSession(raw, realm, user string) (*Session, error) {
	var rec []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("decoding session record: %w", err)
	}
	if len(rec) < sessionFieldsV1 {
		return nil, fmt.Errorf("decoding session record: %d fields, want %d", len(rec), sessionFieldsV1)
	}
	for len(rec) < sessionFields {
		rec = append(rec, json.RawMessage(`""`)) // fields added later
	}
	s := &Session{Realm: realm, User: user}
	var started, last, ended float64
	strs := []struct {
		i   int
		dst *string
	}{
		{sID, &s.ID}, {sReason, &s.EndReason}, {sIP, &s.IP}, {sDevice, &s.DeviceID}, {sToken, &s.tokenHash},
		{sBrowser, &s.Agent.Browser}, {sBrowserVersion, &s.Agent.BrowserVersion}, {sOS, &s.Agent.OS},
		{sOSVersion, &s.Agent.OSVersion}, {sDeviceFamily, &s.Agent.DeviceFamily}, {sDeviceType, &s.Agent.DeviceType},
		{sCity, &s.Location.City}, {sRegion, &s.Location.Region}, {sCountry, &s.Location.Country},
		{sCountryCode, &s.Location.CountryCode}, {sTimeZone, &s.Location.TimeZone}, {sIPKey, &s.ipKey}, {sDay, &s.day},
	}
	for _, f := range strs {
		if err := json.Unmarshal(rec[f.i], f.dst); err != nil {
			return nil, fmt.Errorf("decoding session field %d: %w", f.i, err)
		}
	}
	for _, f := range []struct {
		i   int
		dst *float64
	}{{sStarted, &started}, {sLastSeen, &last}, {sEnded, &ended}} {
		if err := json.Unmarshal(rec[f.i], f.dst); err != nil {
			return nil, fmt.Errorf("decoding session field %d: %w", f.i, err)
		}
	}
	_ = json.Unmarshal(rec[sLatitude], &s.Location.Latitude)
	_ = json.Unmarshal(rec[sLongitude], &s.Location.Longitude)
	s.StartedAt = fromMS(int64(started))
	s.LastSeen = fromMS(int64(last))
	if ended != 0 {
		t := fromMS(int64(ended))
		s.EndedAt = &t
	}
	return s, nil
}

func encodeDevice(d *Device) string {
	blocked := 0
	if d.Blocked {
		blocked = 1
	}
	rec := [deviceFields]any{
		d.ID, ms(d.FirstSeen), ms(d.LastSeen), blocked, d.LastIP,
		d.Agent.Browser, d.Agent.BrowserVersion, d.Agent.OS, d.Agent.OSVersion, d.Agent.DeviceFamily, d.Agent.DeviceType,
		d.Location.City, d.Location.Region, d.Location.Country, d.Location.CountryCode, d.Location.TimeZone,
	}
	b, _ := json.Marshal(rec)
	return string(b)
}

func decodeDevice(raw, user string) (*Device, error) {
	var rec []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("decoding device record: %w", err)
	}
	if len(rec) < deviceFields {
		return nil, fmt.Errorf("decoding device record: %d fields, want %d", len(rec), deviceFields)
	}
	d := &Device{User: user}
	var first, last float64
	var blocked int
	for _, f := range []struct {
		i   int
		dst any
	}{
		{dID, &d.ID}, {dFirstSeen, &first}, {dLastSeen, &last}, {dBlocked, &blocked}, {dLastIP, &d.LastIP},
		{dBrowser, &d.Agent.Browser}, {dBrowserVersion, &d.Agent.BrowserVersion}, {dOS, &d.Agent.OS},
		{dOSVersion, &d.Agent.OSVersion}, {dDeviceFamily, &d.Agent.DeviceFamily}, {dDeviceType, &d.Agent.DeviceType},
		{dCity, &d.Location.City}, {dRegion, &d.Location.Region}, {dCountry, &d.Location.Country},
		{dCountryCode, &d.Location.CountryCode}, {dTimeZone, &d.Location.TimeZone},
	} {
		if err := json.Unmarshal(rec[f.i], f.dst); err != nil {
			return nil, fmt.Errorf("decoding device field %d: %w", f.i, err)
		}
	}
	d.FirstSeen, d.LastSeen, d.Blocked = fromMS(int64(first)), fromMS(int64(last)), blocked != 0
	return d, nil
}

// normalizeIdle shows an active session whose last activity is older than
// idle as closed by idle timeout. Stores close such sessions lazily (at the
// user's next write or the sweep), so readers must not see them as active.
func normalizeIdle(s *Session, now time.Time, idle time.Duration) {
	if s.EndedAt == nil && idle > 0 && now.Sub(s.LastSeen) > idle {
		t := s.LastSeen
		s.EndedAt, s.EndReason = &t, EndIdle
	}
}

// Violation records: [id, time, policy, limit, observed, ip, location,
// device, session, action, viewed].
func decodeViolation(raw, user string) (*restrict.Violation, error) {
	var rec []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &rec); err != nil || len(rec) < 11 {
		return nil, fmt.Errorf("decoding violation record: %v", err)
	}
	v := &restrict.Violation{User: user}
	var at float64
	var viewed int
	for i, dst := range []any{&v.ID, &at, &v.Policy, &v.Limit, &v.Observed, &v.IP, &v.Location, &v.Device, &v.Session, &v.Action, &viewed} {
		if err := json.Unmarshal(rec[i], dst); err != nil {
			return nil, fmt.Errorf("decoding violation field %d: %w", i, err)
		}
	}
	v.Time, v.Viewed = fromMS(int64(at)), viewed != 0
	return v, nil
}

func encodeViolation(v *restrict.Violation) string {
	viewed := 0
	if v.Viewed {
		viewed = 1
	}
	b, _ := json.Marshal([]any{v.ID, ms(v.Time), v.Policy, v.Limit, v.Observed, v.IP, v.Location, v.Device, v.Session, v.Action, viewed})
	return string(b)
}

// decodeTrail reads a trail: [[ms, path], ...].
func decodeTrail(raw string) []TrailEntry {
	var rec [][]json.RawMessage
	if json.Unmarshal([]byte(raw), &rec) != nil {
		return nil
	}
	out := make([]TrailEntry, 0, len(rec))
	for _, e := range rec {
		if len(e) < 2 {
			continue
		}
		var at float64
		var path string
		if json.Unmarshal(e[0], &at) != nil || json.Unmarshal(e[1], &path) != nil {
			continue
		}
		out = append(out, TrailEntry{Time: fromMS(int64(at)), Path: path})
	}
	return out
}
