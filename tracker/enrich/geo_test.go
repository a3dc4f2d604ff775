package enrich

import (
	"path/filepath"
	"strings"
	"testing"
)

const geoTestDB = "../testdata/geoip/GeoIP2-City-Test.mmdb"

func openTestGeo(t *testing.T) *Geo {
	t.Helper()
	g, err := OpenGeo(geoTestDB)
	if err != nil {
		t.Fatalf("OpenGeo(%s): %v", geoTestDB, err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

func TestGeoLookup(t *testing.T) {
	g := openTestGeo(t)
	for _, c := range []struct {
		ip                                     string
		city, region, country, code, zone, str string
		lat, lon                               float64
	}{
		{"81.2.69.142", "London", "England", "United Kingdom", "GB", "Europe/London", "London, England, United Kingdom", 51.51, -0.09},
		{"::ffff:81.2.69.142", "London", "England", "United Kingdom", "GB", "Europe/London", "London, England, United Kingdom", 51.51, -0.09},
		{"216.160.83.56", "Milton", "Washington", "United States", "US", "America/Los_Angeles", "Milton, Washington, United States", 47.25, -122.31},
		{"89.160.20.112", "Linköping", "Östergötland County", "Sweden", "SE", "Europe/Stockholm", "Linköping, Östergötland County, Sweden", 58.42, 15.62},
	} {
		t.Run(c.ip, func(t *testing.T) {
			l := g.Lookup(c.ip)
			if l.City != c.city || l.Region != c.region || l.Country != c.country || l.CountryCode != c.code || l.TimeZone != c.zone {
				t.Errorf("Lookup(%s) = %+v", c.ip, l)
			}
			if !l.Known() || l.String() != c.str {
				t.Errorf("String() = %q, want %q", l.String(), c.str)
			}
			if l.Latitude == nil || l.Longitude == nil {
				t.Fatalf("no coordinates: %+v", l)
			}
			if *l.Latitude != c.lat || *l.Longitude != c.lon {
				t.Errorf("coordinates = %v, %v; want %v, %v (two decimals)", *l.Latitude, *l.Longitude, c.lat, c.lon)
			}
		})
	}
}

func TestGeoLookupUnknown(t *testing.T) {
	g := openTestGeo(t)
	var nilGeo *Geo
	for _, c := range []struct {
		name string
		g    *Geo
		ip   string
	}{
		{"loopback", g, "127.0.0.1"},
		{"private", g, "10.1.2.3"},
		{"IPv6 loopback", g, "::1"},
		{"empty", g, ""},
		{"garbage", g, "not an ip"},
		{"with port", g, "81.2.69.142:443"},
		{"CIDR", g, "81.2.69.0/24"},
		{"out of range", g, "300.1.1.1"},
		{"nil Geo", nilGeo, "81.2.69.142"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := c.g.Lookup(c.ip)
			if l.Known() || l.String() != UnknownLocation || l.Latitude != nil || l.City != "" || l.CountryCode != "" {
				t.Errorf("Lookup(%q) = %+v (%q), want unknown", c.ip, l, l.String())
			}
		})
	}
	if err := nilGeo.Close(); err != nil {
		t.Errorf("nil Geo Close: %v", err)
	}
}

func TestLocationString(t *testing.T) {
	for _, c := range []struct {
		l    Location
		want string
	}{
		{Location{}, UnknownLocation},
		{Location{Region: "England", TimeZone: "Europe/London"}, UnknownLocation},
		{Location{Country: "Japan"}, "Japan"},
		{Location{City: "Milton", Country: "United States"}, "Milton, United States"},
		{Location{City: "London", Region: "England", Country: "United Kingdom"}, "London, England, United Kingdom"},
	} {
		if got := c.l.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.l, got, c.want)
		}
	}
	if UnknownLocation != "Unknown location" {
		t.Errorf("UnknownLocation = %q", UnknownLocation)
	}
}

func TestOpenGeoErrors(t *testing.T) {
	for _, c := range []struct{ name, path string }{
		{"corrupt", "../testdata/geoip/GeoIP2-City-Test-Invalid-Node-Count.mmdb"},
		{"missing", filepath.Join(t.TempDir(), "missing.mmdb")},
		{"not a database", "../testdata/geoip/LICENSE-MIT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := OpenGeo(c.path)
			if err == nil {
				_ = g.Close()
				t.Fatalf("OpenGeo(%s) succeeded", c.path)
			}
			if g != nil {
				t.Errorf("OpenGeo returned a Geo with the error")
			}
			if !strings.Contains(err.Error(), c.path) {
				t.Errorf("error %q does not name the path %s", err, c.path)
			}
		})
	}
}
