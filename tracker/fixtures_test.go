package tracker

import (
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// The fixtures of the tracker's tests; the stores' conformance suite
// (package redisstore) has its own.

// suitePolicy: retention is long compared to the wall-clock runtime, so
// Redis TTLs (which count real time) never expire anything a test needs.
var suitePolicy = store.Policy{
	Idle:       30 * time.Minute,
	Retention:  24 * time.Hour,
	Refresh:    time.Minute,
	RevokeHold: 10 * time.Minute,
}

const testSecret = "test secret: 0123456789abcdef"

func testKeyring(tb testing.TB) *Keyring {
	tb.Helper()
	k, err := NewKeyring([]byte(testSecret))
	if err != nil {
		tb.Fatalf("NewKeyring: %v", err)
	}
	return k
}

var (
	testAgent = store.Agent{Browser: "Firefox", BrowserVersion: "125.0", OS: "Linux", DeviceFamily: "Other", DeviceType: "desktop"}
	testLat   = 51.51
	testLon   = -0.09
	testLoc   = store.Location{City: "London", Region: "England", Country: "United Kingdom", CountryCode: "GB",
		TimeZone: "Europe/London", Latitude: &testLat, Longitude: &testLon}
)

const (
	ip1 = "198.51.100.1"
	ip2 = "203.0.113.9"
)

func ids(ss []*store.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}
