// Package enrich owns what the module derives from a request's user agent
// and IP: browser, OS and device type (uap-core's patterns, matched by its
// own lazily compiled matcher, uap.go) and approximate location (a MaxMind
// City database, geo.go). It has no Caddy imports.
package enrich

// Agent is the parsed user agent of a session or device.
type Agent struct {
	Browser        string `json:"browser"`
	BrowserVersion string `json:"browser_version"`
	OS             string `json:"os"`
	OSVersion      string `json:"os_version"`
	DeviceFamily   string `json:"device_family"`
	// DeviceType is "mobile", "tablet" or "desktop".
	DeviceType string `json:"device_type"`
}

// Location is the approximate location of an IP address. An empty City and
// Country mean "Unknown location".
type Location struct {
	City        string   `json:"city,omitempty"`
	Region      string   `json:"region,omitempty"`
	Country     string   `json:"country,omitempty"`
	CountryCode string   `json:"country_code,omitempty"`
	TimeZone    string   `json:"time_zone,omitempty"`
	Latitude    *float64 `json:"latitude,omitempty"`
	Longitude   *float64 `json:"longitude,omitempty"`
	// AccuracyKm is the database's accuracy radius around the
	// coordinates, 0 when it gives none.
	AccuracyKm int `json:"accuracy_km,omitempty"`
}

// UnknownLocation is how a location without data is shown.
const UnknownLocation = "Unknown location"

// Known reports whether the location has any data.
func (l Location) Known() bool { return l.Country != "" || l.City != "" }

// String renders "City, Region, Country" or UnknownLocation.
func (l Location) String() string {
	if !l.Known() {
		return UnknownLocation
	}
	s := ""
	for _, part := range []string{l.City, l.Region, l.Country} {
		if part == "" {
			continue
		}
		if s != "" {
			s += ", "
		}
		s += part
	}
	return s
}
