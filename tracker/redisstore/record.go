package redisstore

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"

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

// sessionRecord is a session as the store keeps it: the model's session
// and what only the store reads (the token's hash, the IP as max_ips
// counts it, the last date counted, the references of its descriptions).
type sessionRecord struct {
	*store.Session
	tokenHash, ipKey, day string
	// agentRef and locRef name the shared descriptions the record refers
	// to (descriptions.go); resolved into Agent and Location, and
	// loginLocRef into LoginLocation.
	agentRef, locRef, loginLocRef string
}

// deviceRecord is a device as the store keeps it.
type deviceRecord struct {
	*store.Device
	agentRef, locRef string
}

// sessionsOf returns the sessions of records.
func sessionsOf(recs []*sessionRecord) []*store.Session {
	out := make([]*store.Session, len(recs))
	for i, r := range recs {
		out[i] = r.Session
	}
	return out
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// field is one position of a record and where it is decoded to.
type field struct {
	i   int
	dst any
}

func unmarshalFields(rec []json.RawMessage, what string, fields []field) error {
	for _, f := range fields {
		if err := json.Unmarshal(rec[f.i], f.dst); err != nil {
			return fmt.Errorf("decoding %s field %d: %w", what, f.i, err)
		}
	}
	return nil
}

// setTimes sets a session's times from a record's milliseconds.
func setTimes(s *store.Session, started, last, ended float64) {
	s.StartedAt = fromMS(int64(started))
	s.LastSeen = fromMS(int64(last))
	if ended != 0 {
		t := fromMS(int64(ended))
		s.EndedAt = &t
	}
}

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func encodeSession(s *sessionRecord) string {
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
func decodeSession(raw, realm, user string) (*sessionRecord, error) {
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
	s := &sessionRecord{Session: &store.Session{Realm: realm, User: user}}
	var started, last, ended float64
	if err := unmarshalFields(rec, "session", []field{
		{sID, &s.ID}, {sReason, &s.EndReason}, {sIP, &s.IP}, {sDevice, &s.DeviceID}, {sToken, &s.tokenHash},
		{sBrowser, &s.Agent.Browser}, {sBrowserVersion, &s.Agent.BrowserVersion}, {sOS, &s.Agent.OS},
		{sOSVersion, &s.Agent.OSVersion}, {sDeviceFamily, &s.Agent.DeviceFamily}, {sDeviceType, &s.Agent.DeviceType},
		{sCity, &s.Location.City}, {sRegion, &s.Location.Region}, {sCountry, &s.Location.Country},
		{sCountryCode, &s.Location.CountryCode}, {sTimeZone, &s.Location.TimeZone}, {sIPKey, &s.ipKey}, {sDay, &s.day},
		{sStarted, &started}, {sLastSeen, &last}, {sEnded, &ended},
	}); err != nil {
		return nil, err
	}
	_ = json.Unmarshal(rec[sLatitude], &s.Location.Latitude)
	_ = json.Unmarshal(rec[sLongitude], &s.Location.Longitude)
	setTimes(s.Session, started, last, ended)
	return s, nil
}

func encodeDevice(d *store.Device) string {
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

func decodeDevice(raw, user string) (*store.Device, error) {
	var rec []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("decoding device record: %w", err)
	}
	if len(rec) < deviceFields {
		return nil, fmt.Errorf("decoding device record: %d fields, want %d", len(rec), deviceFields)
	}
	d := &store.Device{User: user}
	var first, last float64
	var blocked int
	if err := unmarshalFields(rec, "device", []field{
		{dID, &d.ID}, {dFirstSeen, &first}, {dLastSeen, &last}, {dBlocked, &blocked}, {dLastIP, &d.LastIP},
		{dBrowser, &d.Agent.Browser}, {dBrowserVersion, &d.Agent.BrowserVersion}, {dOS, &d.Agent.OS},
		{dOSVersion, &d.Agent.OSVersion}, {dDeviceFamily, &d.Agent.DeviceFamily}, {dDeviceType, &d.Agent.DeviceType},
		{dCity, &d.Location.City}, {dRegion, &d.Location.Region}, {dCountry, &d.Location.Country},
		{dCountryCode, &d.Location.CountryCode}, {dTimeZone, &d.Location.TimeZone},
	}); err != nil {
		return nil, err
	}
	d.FirstSeen, d.LastSeen, d.Blocked = fromMS(int64(first)), fromMS(int64(last)), blocked != 0
	return d, nil
}

// normalizeIdle shows an active session whose last activity is older than
// idle as closed by idle timeout. Stores close such sessions lazily (at the
// user's next write or the sweep), so readers must not see them as active.
func normalizeIdle(s *store.Session, now time.Time, idle time.Duration) {
	if s.EndedAt == nil && idle > 0 && now.Sub(s.LastSeen) > idle {
		t := s.LastSeen
		s.EndedAt, s.EndReason = &t, store.EndIdle
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
func decodeTrail(raw string) []store.TrailEntry {
	var rec [][]json.RawMessage
	if json.Unmarshal([]byte(raw), &rec) != nil {
		return nil
	}
	out := make([]store.TrailEntry, 0, len(rec))
	for _, e := range rec {
		if len(e) < 2 {
			continue
		}
		var at float64
		var path string
		if json.Unmarshal(e[0], &at) != nil || json.Unmarshal(e[1], &path) != nil {
			continue
		}
		out = append(out, store.TrailEntry{Time: fromMS(int64(at)), Path: path})
	}
	return out
}

// The Redis store writes a compact layout (v2): a record leaves out its id
// (the hash field holds it) and refers to its agent and location by the
// reference of a shared description (descriptions.go), which thousands of
// sessions have in common. Positions 1–8 are those of the first layout, so
// the scripts read both; records of the first layout (21 or 23 fields) are
// still read.
const (
	sStoredIPKey = sToken + 1 + iota
	sStoredDay
	sStoredAgent
	sStoredLoc
	// Where the session started, set once it moved (written by the
	// scripts); records before have 12 fields.
	sStoredLoginIP
	sStoredLoginLoc
	storedSessionFields
)

// firstLayoutMin is the fewest fields of a first-layout session record.
const firstLayoutMin = sessionFieldsV1

// sameIP in a stored session's IP key means "the IP itself", which is what
// max_ips counts unless ip_prefix is set.
const sameIP = "="

const (
	dStoredAgent = dLastIP + 1 + iota
	dStoredLoc
	storedDeviceFields
)

// encodeStoredSession writes s in the Redis layout; s.agentRef and s.locRef
// must be set.
func encodeStoredSession(s *sessionRecord) string {
	var ended int64
	if s.EndedAt != nil {
		ended = ms(*s.EndedAt)
	}
	ipKey := s.ipKey
	if ipKey != "" && ipKey == s.IP {
		ipKey = sameIP
	}
	loginIP, loginLoc := "", ""
	if s.LoginIP != "" && s.LoginIP != s.IP {
		loginIP, loginLoc = s.LoginIP, s.loginLocRef
	}
	rec := [storedSessionFields]any{
		"", ms(s.StartedAt), ms(s.LastSeen), ended, s.EndReason, s.IP, s.DeviceID, s.tokenHash,
		ipKey, s.day, s.agentRef, s.locRef, loginIP, loginLoc,
	}
	b, _ := json.Marshal(rec)
	return string(b)
}

// decodeStoredSession reads a Redis session record whose hash field is id.
// Agent and Location stay empty until the references are resolved.
func decodeStoredSession(raw, id, realm, user string) (*sessionRecord, error) {
	var rec []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("decoding session record: %w", err)
	}
	if len(rec) >= firstLayoutMin || len(rec) < sStoredLoginIP {
		s, err := decodeSession(raw, realm, user)
		if err != nil {
			return nil, err
		}
		if s.ID == "" {
			s.ID = id
		}
		if s.ipKey == sameIP { // the scripts write it into old records too
			s.ipKey = s.IP
		}
		return s, nil
	}
	for len(rec) < storedSessionFields {
		rec = append(rec, json.RawMessage(`""`)) // a record from before the login place
	}
	s := &sessionRecord{Session: &store.Session{Realm: realm, User: user}}
	var started, last, ended float64
	if err := unmarshalFields(rec, "session", []field{
		{sID, &s.ID}, {sStarted, &started}, {sLastSeen, &last}, {sEnded, &ended}, {sReason, &s.EndReason},
		{sIP, &s.IP}, {sDevice, &s.DeviceID}, {sToken, &s.tokenHash}, {sStoredIPKey, &s.ipKey},
		{sStoredDay, &s.day}, {sStoredAgent, &s.agentRef}, {sStoredLoc, &s.locRef},
		{sStoredLoginIP, &s.LoginIP}, {sStoredLoginLoc, &s.loginLocRef},
	}); err != nil {
		return nil, err
	}
	if s.ID == "" {
		s.ID = id
	}
	if s.ipKey == sameIP {
		s.ipKey = s.IP
	}
	setTimes(s.Session, started, last, ended)
	return s, nil
}

// encodeStoredDevice writes d in the Redis layout; d.agentRef and d.locRef
// must be set.
func encodeStoredDevice(d *deviceRecord) string {
	blocked := 0
	if d.Blocked {
		blocked = 1
	}
	b, _ := json.Marshal([storedDeviceFields]any{"", ms(d.FirstSeen), ms(d.LastSeen), blocked, d.LastIP, d.agentRef, d.locRef})
	return string(b)
}

// decodeStoredDevice reads a Redis device record whose hash field is id.
func decodeStoredDevice(raw, id, user string) (*deviceRecord, error) {
	var rec []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("decoding device record: %w", err)
	}
	if len(rec) != storedDeviceFields {
		d, err := decodeDevice(raw, user)
		if err != nil {
			return nil, err
		}
		if d.ID == "" {
			d.ID = id
		}
		return &deviceRecord{Device: d}, nil
	}
	d := &deviceRecord{Device: &store.Device{User: user}}
	var first, last float64
	var blocked int
	if err := unmarshalFields(rec, "device", []field{
		{dID, &d.ID}, {dFirstSeen, &first}, {dLastSeen, &last}, {dBlocked, &blocked}, {dLastIP, &d.LastIP},
		{dStoredAgent, &d.agentRef}, {dStoredLoc, &d.locRef},
	}); err != nil {
		return nil, err
	}
	if d.ID == "" {
		d.ID = id
	}
	d.FirstSeen, d.LastSeen, d.Blocked = fromMS(int64(first)), fromMS(int64(last)), blocked != 0
	return d, nil
}
