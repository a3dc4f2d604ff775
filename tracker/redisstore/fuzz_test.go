package redisstore

import (
	"reflect"
	"testing"
)

// FuzzRecordCodec: whatever a Redis record holds (a record written by
// another version, a corrupted one), decoding never panics, and a record
// that decodes encodes back to one that decodes to the same session and
// device.
func FuzzRecordCodec(f *testing.F) {
	for _, s := range []string{
		`["",1700000000000,1700000060000,0,"","198.51.100.1","dev","th","=","2026-12-02","AAAAAAAAAA","BBBBBBBBBB"]`,
		`["sid",1700000000000,1700000060000,0,"","198.51.100.1","dev","th","Firefox","125.0","Linux","","Other","desktop","London","England","United Kingdom","GB","Europe/London",51.51,-0.09]`,
		`["",1,2,3,"revoked","2001:db8::1","\u0000","x","2001:db8::/64","","",""]`,
		`["",1e300,-1,null,{},[],true,"","","","",""]`,
		`["",0,0,0,1,0,1,0,"a",1]`,
		`[]`, `{}`, `null`, `"x"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if rec, err := decodeStoredSession(raw, "sid", "realm", "user"); err == nil {
			again, err := decodeStoredSession(encodeStoredSession(rec), "other", "realm", "user")
			if err != nil {
				t.Fatalf("session %s: re-encoded record does not decode: %v", raw, err)
			}
			// The stored layout refers to descriptions rather than
			// holding them: compare what it keeps.
			// It does not hold the id either (the hash field does).
			again.Agent, again.Location, again.ID = rec.Agent, rec.Location, rec.ID
			if !reflect.DeepEqual(again, rec) {
				t.Fatalf("session %s: round trip\n%+v\n%+v", raw, *rec.Session, *again.Session)
			}
		}
		if d, err := decodeStoredDevice(raw, "dev", "user"); err == nil {
			again, err := decodeStoredDevice(encodeStoredDevice(d), "other", "user")
			if err != nil {
				t.Fatalf("device %s: re-encoded record does not decode: %v", raw, err)
			}
			again.Agent, again.Location, again.ID = d.Agent, d.Location, d.ID
			if !reflect.DeepEqual(again, d) {
				t.Fatalf("device %s: round trip\n%+v\n%+v", raw, *d.Device, *again.Device)
			}
		}
		_, _ = decodeViolation(raw, "user")
		_ = decodeTrail(raw)
	})
}
