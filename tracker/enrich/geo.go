package enrich

import (
	"fmt"
	"math"
	"net/netip"

	"github.com/oschwald/geoip2-golang/v2"
)

// Geo looks up approximate locations in a MaxMind City database.
type Geo struct {
	db *geoip2.Reader
}

// OpenGeo opens and checks a MaxMind City (GeoIP2 or GeoLite2) database.
func OpenGeo(path string) (*Geo, error) {
	db, err := geoip2.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening geoip database %q: %w", path, err)
	}
	// A corrupt file can open fine and fail on lookups: try one now so a
	// bad file fails at start, not on the first request.
	if _, err := db.City(netip.MustParseAddr("81.2.69.142")); err != nil {
		db.Close()
		return nil, fmt.Errorf("reading geoip database %q: %w", path, err)
	}
	return &Geo{db: db}, nil
}

// Lookup returns the location of ip; the zero Location when unknown.
func (g *Geo) Lookup(ip string) Location {
	if g == nil {
		return Location{}
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return Location{}
	}
	c, err := g.db.City(addr.Unmap())
	if err != nil || !c.HasData() {
		return Location{}
	}
	loc := Location{
		City:        c.City.Names.English,
		Country:     c.Country.Names.English,
		CountryCode: c.Country.ISOCode,
		TimeZone:    c.Location.TimeZone,
	}
	if len(c.Subdivisions) > 0 {
		loc.Region = c.Subdivisions[0].Names.English
	}
	// Two decimals (about 1 km) is all an approximate location needs.
	if c.Location.Latitude != nil && c.Location.Longitude != nil {
		lat, lon := round2(*c.Location.Latitude), round2(*c.Location.Longitude)
		loc.Latitude, loc.Longitude = &lat, &lon
		loc.AccuracyKm = int(c.Location.AccuracyRadius)
	}
	return loc
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// Close releases the database.
func (g *Geo) Close() error {
	if g == nil {
		return nil
	}
	return g.db.Close()
}
